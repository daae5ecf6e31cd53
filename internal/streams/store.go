package streams

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// FormatVersion is the stream entry format (ARCHITECTURE §4).
const FormatVersion = "1"

// Entry field names (ARCHITECTURE §4). The routing metadata travels in one
// field: every field costs Redis work per entry (measured: 2 fields append
// 20–40 % faster than 8), and workers read the metadata as a whole anyway.
const (
	FieldMeta        = "m" // "v|kind|ts|received-at|epoch|ingester|conversation"
	FieldPayload     = "p"
	FieldOriginalID  = "o"
	FieldReplayCount = "rc"
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

// Meta encodes the routing metadata field. The conversation goes last so it
// may contain any character; the ingester id has '|' replaced.
func (e Entry) Meta() string {
	return FormatVersion + "|" + e.Kind + "|" + strconv.FormatInt(e.Timestamp, 10) + "|" + strconv.FormatInt(e.ReceivedAt, 10) + "|" +
		strconv.FormatInt(e.Epoch, 10) + "|" + strings.ReplaceAll(e.Ingester, "|", "_") + "|" + e.Conversation
}

// Fields returns the XADD field/value list.
func (e Entry) Fields() []any {
	f := []any{FieldMeta, e.Meta(), FieldPayload, e.Payload}
	if e.OriginalID != "" {
		f = append(f, FieldOriginalID, e.OriginalID, FieldReplayCount, strconv.Itoa(e.ReplayCount))
	}
	return f
}

// appendMeta appends e.Meta() to dst.
func appendMeta(dst []byte, e *Entry) []byte {
	dst = append(dst, FormatVersion...)
	dst = append(dst, '|')
	dst = append(dst, e.Kind...)
	dst = append(dst, '|')
	dst = strconv.AppendInt(dst, e.Timestamp, 10)
	dst = append(dst, '|')
	dst = strconv.AppendInt(dst, e.ReceivedAt, 10)
	dst = append(dst, '|')
	dst = strconv.AppendInt(dst, e.Epoch, 10)
	dst = append(dst, '|')
	for i := 0; i < len(e.Ingester); i++ {
		if c := e.Ingester[i]; c == '|' {
			dst = append(dst, '_')
		} else {
			dst = append(dst, c)
		}
	}
	dst = append(dst, '|')
	return append(dst, e.Conversation...)
}

// ErrFormat marks an entry this version cannot read.
var ErrFormat = errors.New("streams: unsupported entry format")

// ConversationOf returns an entry's conversation key without parsing the
// rest ("" when the metadata is unreadable).
func ConversationOf(values map[string]any) string {
	m, _ := values[FieldMeta].(string)
	parts, ok := splitMeta(m)
	if !ok {
		return ""
	}
	return parts[6]
}

// splitMeta splits the metadata field into its 7 parts (the last keeps any
// further '|') without allocating, and checks the format version.
func splitMeta(m string) (parts [7]string, ok bool) {
	for i := 0; i < 6; i++ {
		j := strings.IndexByte(m, '|')
		if j < 0 {
			return parts, false
		}
		parts[i], m = m[:j], m[j+1:]
	}
	parts[6] = m
	return parts, parts[0] == FormatVersion
}

// ParseEntry reads a stream message back into an Entry.
func ParseEntry(m redis.XMessage) (Entry, error) {
	get := func(k string) string {
		v, _ := m.Values[k].(string)
		return v
	}
	parts, ok := splitMeta(get(FieldMeta))
	if !ok {
		return Entry{ID: m.ID}, fmt.Errorf("%w: entry %s has metadata %.40q (this build reads format %q)", ErrFormat, m.ID, get(FieldMeta), FormatVersion)
	}
	e := Entry{
		ID:           m.ID,
		Kind:         parts[1],
		Ingester:     parts[5],
		Conversation: parts[6],
		Payload:      readOnlyBytes(get(FieldPayload)),
		OriginalID:   get(FieldOriginalID),
	}
	e.Timestamp, _ = strconv.ParseInt(parts[2], 10, 64)
	e.ReceivedAt, _ = strconv.ParseInt(parts[3], 10, 64)
	e.Epoch, _ = strconv.ParseInt(parts[4], 10, 64)
	if rc := get(FieldReplayCount); rc != "" {
		e.ReplayCount, _ = strconv.Atoi(rc)
	}
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
	ID        string // the new entry's id; empty for a duplicate
	Duplicate bool
	Err       error
}

// DedupBucketWidth is the width of one dedup bucket (ARCHITECTURE §5.3): an
// entry's marker goes into the bucket floor(envelope timestamp / width) of
// its shard. It is fixed, not derived from DEDUP_WINDOW, so replicas with
// different windows still share markers; a marker lives from DEDUP_WINDOW to
// DEDUP_WINDOW + about one width after it is set.
const DedupBucketWidth = time.Minute

// DedupBucket is the dedup bucket set of shard n for a bucket number
// (envelope timestamp ms / DedupBucketWidth ms); its members are the
// DedupDigest of identities. (A key name outside keys.go: it is only ever
// built here, next to the script that uses it.)
func (k Keys) DedupBucket(n int, bucket int64) string {
	return k.shard(n, "ddb:"+strconv.FormatInt(bucket, 10))
}

// DedupDigest is the marker field of an identity in its bucket: the first 16
// bytes of SHA-256 of the identity key, as raw bytes.
func DedupDigest(identity string) string {
	sum := sha256.Sum256([]byte(identity))
	return string(sum[:16])
}

// dedupBucketOf returns the bucket of an envelope timestamp; ok is false for
// entries without one, which use a string marker (Keys.Dedup).
func dedupBucketOf(ts int64) (int64, bool) {
	if ts <= 0 {
		return 0, false
	}
	return ts / DedupBucketWidth.Milliseconds(), true
}

// AppendBatch runs dedup-and-append for every request: one script call per
// shard (more only when entries with other field sets, i.e. replays, are
// mixed in), taking that shard's requests in order. A large batch is split
// by shard into appendLanes pipelines on their own connections, sent at the
// same time, so that Redis runs one lane's scripts while the client encodes
// or decodes another's; a shard is in one lane, so its order holds. A
// request's Entry.Timestamp picks its dedup bucket: copies of an event have
// the same timestamp because it is part of their identity. It returns
// per-request results; the error is non-nil only when the whole batch
// failed (e.g. Redis unreachable).
func (s *Store) AppendBatch(ctx context.Context, reqs []Append, dedupTTL time.Duration) ([]AppendResult, error) {
	if len(reqs) == 0 {
		return nil, nil
	}
	ttl := strconv.FormatInt(dedupTTL.Milliseconds(), 10)
	var order []int
	groups := make(map[int][]int, 16)
	for i, r := range reqs {
		g, ok := groups[r.Shard]
		if !ok {
			order = append(order, r.Shard)
		}
		groups[r.Shard] = append(g, i)
	}
	out := make([]AppendResult, len(reqs))
	if len(reqs) < laneMinEntries || len(order) < 2 {
		failed, err := s.appendLane(ctx, reqs, order, groups, ttl, out)
		if failed {
			return out, fmt.Errorf("streams: append batch: %w", err)
		}
		return out, nil
	}
	// Greedy balance: each shard (largest first would be better, but order of
	// appearance is good enough) goes to the lane with the fewest entries.
	var lanes [appendLanes][]int
	var load [appendLanes]int
	for _, shard := range order {
		l := 0
		for j := 1; j < appendLanes; j++ {
			if load[j] < load[l] {
				l = j
			}
		}
		lanes[l] = append(lanes[l], shard)
		load[l] += len(groups[shard])
	}
	var failed [appendLanes]bool
	var errs [appendLanes]error
	var wg sync.WaitGroup
	for l := 1; l < appendLanes; l++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			failed[l], errs[l] = s.appendLane(ctx, reqs, lanes[l], groups, ttl, out)
		}()
	}
	failed[0], errs[0] = s.appendLane(ctx, reqs, lanes[0], groups, ttl, out)
	wg.Wait()
	for l := range failed {
		if !failed[l] {
			return out, nil
		}
	}
	return out, fmt.Errorf("streams: append batch: %w", errs[0])
}

// appendLanes is how many pipelines a large batch is split into, and
// laneMinEntries the batch size from which it is split (a small batch, the
// usual case at low load, goes in one round trip on one connection).
const (
	appendLanes    = 2
	laneMinEntries = 128
)

// appendLane runs the requests of some shards in one pipelined round trip
// and writes their results into out. failed reports that no call succeeded
// because the round trip failed (err).
func (s *Store) appendLane(ctx context.Context, reqs []Append, shards []int, groups map[int][]int, ttl string, out []AppendResult) (failed bool, err error) {
	calls := s.planAppends(reqs, shards, groups, ttl)
	cmds, err := s.evalPipelined(ctx, len(calls), func(pipe redis.Pipeliner, g int) *redis.Cmd {
		return dedupAppendMany.EvalSha(ctx, pipe, calls[g].keys, calls[g].args...)
	})
	if cmds == nil {
		for _, c := range calls {
			for _, i := range c.idx {
				out[i].Err = err
			}
		}
		return true, err
	}
	failed = err != nil
	for g, c := range calls {
		vals, cerr := cmds[g].Slice()
		if cerr == nil && len(vals) != len(c.idx) {
			cerr = fmt.Errorf("streams: append: unexpected reply of %d values for %d entries", len(vals), len(c.idx))
		}
		if cerr != nil {
			for _, i := range c.idx {
				out[i].Err = cerr
			}
			continue
		}
		failed = false
		for k, i := range c.idx {
			id, _ := vals[k].(string)
			out[i] = AppendResult{ID: id, Duplicate: id == ""}
		}
	}
	return failed, err
}

// appendCall is one dedupAppendMany call: a run of one shard's requests with
// the same field set.
type appendCall struct {
	idx  []int // request indexes, in order
	keys []string
	args []any
}

// maxCallBuckets bounds the buckets of one call (a slot is one byte).
const maxCallBuckets = 255

// Field-name lists of the two entry shapes, boxed once (a string in an
// interface allocates).
var (
	argsFresh    = []any{"2", FieldMeta, FieldPayload}
	argsReplayed = []any{"4", FieldMeta, FieldPayload, FieldOriginalID, FieldReplayCount}
)

// planAppends builds the script calls (layout: dedupAppendMany) for the
// requests of the given shards; groups holds each shard's request indexes in
// order.
func (s *Store) planAppends(reqs []Append, order []int, groups map[int][]int, ttl string) []appendCall {
	calls := make([]appendCall, 0, len(order))
	var buckets []int64
	var strKeys []string
	for _, shard := range order {
		idx := groups[shard]
		for len(idx) > 0 {
			replayed := reqs[idx[0]].Entry.OriginalID != ""
			names, perEntry := argsFresh, 2
			if replayed {
				names, perEntry = argsReplayed, 4
			}
			buckets, strKeys = buckets[:0], strKeys[:0]
			slots := make([]byte, 0, len(idx))
			digests := make([]byte, 0, 16*len(idx))
			values := make([]any, 0, 4+len(names)+perEntry*len(idx))
			values = append(values, ttl, names[0], nil, nil)
			values = append(values, names[1:]...)
			size := 0
			for _, i := range idx {
				e := &reqs[i].Entry
				size += 64 + len(e.Kind) + len(e.Ingester) + len(e.Conversation)
			}
			metas := make([]byte, 0, size) // every entry's FieldMeta, in one allocation
			n := 0
			for ; n < len(idx); n++ {
				r := &reqs[idx[n]]
				if (r.Entry.OriginalID != "") != replayed {
					break
				}
				slot := 0
				if b, ok := dedupBucketOf(r.Entry.Timestamp); ok {
					for j, have := range buckets {
						if have == b {
							slot = j + 1
							break
						}
					}
					if slot == 0 {
						if len(buckets) == maxCallBuckets {
							break
						}
						buckets = append(buckets, b)
						slot = len(buckets)
					}
				} else {
					strKeys = append(strKeys, s.keys.Dedup(shard, r.Identity))
				}
				sum := sha256.Sum256([]byte(r.Identity))
				slots = append(slots, byte(slot))
				digests = append(digests, sum[:16]...)
				start := len(metas)
				metas = appendMeta(metas, &r.Entry)
				values = append(values, metas[start:len(metas):len(metas)], r.Entry.Payload)
				if replayed {
					values = append(values, r.Entry.OriginalID, strconv.Itoa(r.Entry.ReplayCount))
				}
			}
			values[2], values[3] = slots, digests
			keys := make([]string, 0, 1+len(buckets)+len(strKeys))
			keys = append(keys, s.keys.Stream(shard))
			for _, b := range buckets {
				keys = append(keys, s.keys.DedupBucket(shard, b))
			}
			keys = append(keys, strKeys...)
			calls = append(calls, appendCall{idx: idx[:n], keys: keys, args: values})
			idx = idx[n:]
		}
	}
	return calls
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
		"ra", q.ReceivedAt, "ing", q.Ingester}
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
