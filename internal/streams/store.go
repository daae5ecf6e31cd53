package streams

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// FormatVersion is the stream entry format (ARCHITECTURE §4).
const FormatVersion = "1"

// Entry field names (ARCHITECTURE §4).
const (
	FieldVersion      = "v"
	FieldKind         = "k"
	FieldConversation = "c"
	FieldTimestamp    = "ts"
	FieldReceivedAt   = "ra"
	FieldIngester     = "ing"
	FieldEpoch        = "ep"
	FieldPayload      = "p"
	FieldOriginalID   = "o"
	FieldReplayCount  = "rc"
)

// KindHeartbeat marks heartbeat entries (ARCHITECTURE §12).
const KindHeartbeat = "heartbeat"

// Entry is one inbound stream entry.
type Entry struct {
	ID           string // stream id; empty before append
	Kind         string
	Conversation string
	Timestamp    int64 // upstream envelope timestamp, ms
	ReceivedAt   int64 // ms
	Ingester     string
	Epoch        int64
	Payload      []byte
	OriginalID   string // set on replayed entries
	ReplayCount  int
}

// Fields returns the XADD field/value list.
func (e Entry) Fields() []any {
	f := []any{
		FieldVersion, FormatVersion,
		FieldKind, e.Kind,
		FieldConversation, e.Conversation,
		FieldTimestamp, strconv.FormatInt(e.Timestamp, 10),
		FieldReceivedAt, strconv.FormatInt(e.ReceivedAt, 10),
		FieldIngester, e.Ingester,
		FieldEpoch, strconv.FormatInt(e.Epoch, 10),
		FieldPayload, e.Payload,
	}
	if e.OriginalID != "" {
		f = append(f, FieldOriginalID, e.OriginalID, FieldReplayCount, strconv.Itoa(e.ReplayCount))
	}
	return f
}

// ErrFormat marks an entry this version cannot read.
var ErrFormat = errors.New("streams: unsupported entry format")

// ParseEntry reads a stream message back into an Entry.
func ParseEntry(m redis.XMessage) (Entry, error) {
	get := func(k string) string {
		v, _ := m.Values[k].(string)
		return v
	}
	if v := get(FieldVersion); v != FormatVersion {
		return Entry{ID: m.ID}, fmt.Errorf("%w: version %q in entry %s (this build reads %q)", ErrFormat, v, m.ID, FormatVersion)
	}
	e := Entry{
		ID:           m.ID,
		Kind:         get(FieldKind),
		Conversation: get(FieldConversation),
		Ingester:     get(FieldIngester),
		Payload:      []byte(get(FieldPayload)),
		OriginalID:   get(FieldOriginalID),
	}
	e.Timestamp, _ = strconv.ParseInt(get(FieldTimestamp), 10, 64)
	e.ReceivedAt, _ = strconv.ParseInt(get(FieldReceivedAt), 10, 64)
	e.Epoch, _ = strconv.ParseInt(get(FieldEpoch), 10, 64)
	e.ReplayCount, _ = strconv.Atoi(get(FieldReplayCount))
	return e, nil
}

// Store is the Redis side of one deployment.
type Store struct {
	rdb    redis.UniversalClient
	keys   Keys
	shards int
}

// NewStore binds a client to a key layout and shard count.
func NewStore(rdb redis.UniversalClient, keys Keys, shards int) *Store {
	return &Store{rdb: rdb, keys: keys, shards: shards}
}

// Keys returns the store's key layout.
func (s *Store) Keys() Keys { return s.keys }

// Shards returns the shard count.
func (s *Store) Shards() int { return s.shards }

// Client returns the underlying Redis client.
func (s *Store) Client() redis.UniversalClient { return s.rdb }

// InitMeta records the shard count on first start and refuses a mismatch
// with a message saying how to change the count safely (ARCHITECTURE §9.4).
func (s *Store) InitMeta(ctx context.Context, numberHint string) error {
	got, err := initMeta.Run(ctx, s.rdb, []string{s.keys.Meta()}, s.shards, FormatVersion, numberHint).Text()
	if err != nil {
		return fmt.Errorf("streams: init meta: %w", err)
	}
	if got != strconv.Itoa(s.shards) {
		return fmt.Errorf("%w: WORKER_SHARD_COUNT=%d but this deployment's streams were created with %s shards (recorded in %s). "+
			"Start with WORKER_SHARD_COUNT=%s, or change the count safely: stop the ingesters, wait until every shard's lag and pending are 0 "+
			"(dlqctl stats), run `dlqctl shards set %d --yes`, then restart everything with the new count",
			ErrShardCountMismatch, s.shards, got, s.keys.Meta(), got, s.shards)
	}
	return nil
}

// EnsureGroups creates the consumer group on every shard stream (MKSTREAM, at
// id 0 so nothing appended before is skipped). Existing groups are kept.
func (s *Store) EnsureGroups(ctx context.Context) error {
	for n := 0; n < s.shards; n++ {
		err := s.rdb.XGroupCreateMkStream(ctx, s.keys.Stream(n), GroupName, "0").Err()
		if err != nil && !strings.HasPrefix(err.Error(), "BUSYGROUP") {
			return fmt.Errorf("streams: create group on shard %d: %w", n, err)
		}
	}
	return nil
}

// Append is one dedup-and-append request.
type Append struct {
	Shard    int
	Identity string // dedup identity (ARCHITECTURE §5.3)
	Entry    Entry
}

// AppendResult is the outcome of one Append.
type AppendResult struct {
	ID        string // the entry's id (the first append's id for a duplicate)
	Duplicate bool
	Err       error
}

// AppendBatch runs dedup-and-append for every request in one pipelined round
// trip. It returns per-request results; the error is non-nil only when the
// whole round trip failed (e.g. Redis unreachable).
func (s *Store) AppendBatch(ctx context.Context, reqs []Append, dedupTTL time.Duration) ([]AppendResult, error) {
	if len(reqs) == 0 {
		return nil, nil
	}
	ttl := strconv.FormatInt(dedupTTL.Milliseconds(), 10)
	run := func() ([]*redis.Cmd, error) {
		pipe := s.rdb.Pipeline()
		cmds := make([]*redis.Cmd, len(reqs))
		for i, r := range reqs {
			args := append([]any{ttl}, r.Entry.Fields()...)
			cmds[i] = dedupAppend.EvalSha(ctx, pipe, []string{s.keys.Dedup(r.Shard, r.Identity), s.keys.Stream(r.Shard)}, args...)
		}
		_, err := pipe.Exec(ctx)
		return cmds, err
	}
	cmds, err := run()
	if isNoScript(err) || (err != nil && anyNoScript(cmds)) {
		if lerr := LoadScripts(ctx, s.rdb); lerr != nil {
			return nil, lerr
		}
		cmds, err = run()
	}
	out := make([]AppendResult, len(reqs))
	allFailed := err != nil
	for i, c := range cmds {
		vals, cerr := c.Slice()
		if cerr != nil {
			out[i].Err = cerr
			continue
		}
		allFailed = false
		if len(vals) == 2 {
			n, _ := vals[0].(int64)
			id, _ := vals[1].(string)
			out[i] = AppendResult{ID: id, Duplicate: n == 0}
		} else {
			out[i].Err = fmt.Errorf("streams: append: unexpected reply %v", vals)
		}
	}
	if allFailed {
		return out, fmt.Errorf("streams: append batch: %w", err)
	}
	return out, nil
}

func anyNoScript(cmds []*redis.Cmd) bool {
	for _, c := range cmds {
		if c != nil && isNoScript(c.Err()) {
			return true
		}
	}
	return false
}

// QuarantineEntry is one frame the ingester could not ingest.
type QuarantineEntry struct {
	Reason     string // malformed, oversize, upstream_error, exception
	Detail     string // the decoder's error text (no content)
	Payload    []byte
	Size       int
	ReceivedAt int64
	Ingester   string
}

// Quarantine appends a frame to the quarantine stream, deduplicated by digest
// so N replicas write one entry.
func (s *Store) Quarantine(ctx context.Context, digest string, q QuarantineEntry, dedupTTL time.Duration, maxLen int64) (bool, error) {
	args := []any{dedupTTL.Milliseconds(), maxLen,
		"reason", q.Reason, "detail", q.Detail, "p", q.Payload, "size", q.Size,
		FieldReceivedAt, q.ReceivedAt, FieldIngester, q.Ingester}
	res, err := dedupAppendCapped.Run(ctx, s.rdb, []string{s.keys.QuarantineDedup(digest), s.keys.Quarantine()}, args...).Slice()
	if err != nil {
		return false, fmt.Errorf("streams: quarantine: %w", err)
	}
	n, _ := res[0].(int64)
	return n == 1, nil
}

// NextEpoch takes a new monotonic epoch from an epoch key (ARCHITECTURE §6.3).
func (s *Store) NextEpoch(ctx context.Context, key string) (int64, error) {
	e, err := nextEpoch.Run(ctx, s.rdb, []string{key}).Int64()
	if err != nil {
		return 0, fmt.Errorf("streams: next epoch: %w", err)
	}
	return e, nil
}

// TakeSpoolReplay lets one replica at a time replay its outage spool
// (ARCHITECTURE §5.6): it takes the mark when free, or renews it when it is
// already this instance's, for ttl.
func (s *Store) TakeSpoolReplay(ctx context.Context, instance string, ttl time.Duration) (bool, error) {
	ok, err := s.rdb.SetNX(ctx, s.keys.SpoolReplay(), instance, ttl).Result()
	if err != nil {
		return false, fmt.Errorf("streams: spool replay mark: %w", err)
	}
	if ok {
		return true, nil
	}
	n, err := refreshLease.Run(ctx, s.rdb, []string{s.keys.SpoolReplay()}, instance, ttl.Milliseconds()).Int64()
	if err != nil {
		return false, fmt.Errorf("streams: spool replay mark: %w", err)
	}
	return n == 1, nil
}

// ClearSpoolReplay gives the replay mark back if it is this instance's.
func (s *Store) ClearSpoolReplay(ctx context.Context, instance string) error {
	if _, err := releaseLease.Run(ctx, s.rdb, []string{s.keys.SpoolReplay()}, instance).Result(); err != nil {
		return fmt.Errorf("streams: clear spool replay: %w", err)
	}
	return nil
}
