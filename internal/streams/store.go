package streams

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
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
	return metaConversation(m)
}

// metaConversation is the conversation part of a metadata field ("" when
// unreadable).
func metaConversation(meta string) string {
	parts, ok := splitMeta(meta)
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

// ParseEntry reads a stream message, as go-redis returns it, back into an Entry.
func ParseEntry(m redis.XMessage) (Entry, error) { return ParseMessage(MessageOf(m)) }

// ParseMessage reads a stream message back into an Entry. The Entry's
// strings and payload share the message's memory.
func ParseMessage(m Message) (Entry, error) {
	meta := m.Value(FieldMeta)
	parts, ok := splitMeta(meta)
	if !ok {
		return Entry{ID: m.ID}, fmt.Errorf("%w: entry %s has metadata %.40q (this build reads format %q)", ErrFormat, m.ID, meta, FormatVersion)
	}
	e := Entry{
		ID:           m.ID,
		Kind:         parts[1],
		Ingester:     parts[5],
		Conversation: parts[6],
		Payload:      readOnlyBytes(m.Value(FieldPayload)),
	}
	e.Timestamp, _ = strconv.ParseInt(parts[2], 10, 64)
	e.ReceivedAt, _ = strconv.ParseInt(parts[3], 10, 64)
	e.Epoch, _ = strconv.ParseInt(parts[4], 10, 64)
	if len(m.Values) > 4 { // only replayed entries have more than m and p
		e.OriginalID = m.Value(FieldOriginalID)
		if rc := m.Value(FieldReplayCount); rc != "" {
			e.ReplayCount, _ = strconv.Atoi(rc)
		}
	}
	return e, nil
}

// Store is the Redis side of one deployment.
type Store struct {
	rdb    redis.UniversalClient
	keys   Keys
	shards int
	// scriptOnly turns the optimistic append transaction off (tests);
	// txPausedUntil (unix ns) pauses it after an unchecked commit.
	scriptOnly    bool
	txPausedUntil atomic.Int64
	// token names this store's scratch sets (DedupScratch): random, so no
	// other client's commands touch them.
	token string
}

// NewStore binds a client to a key layout and shard count.
func NewStore(rdb redis.UniversalClient, keys Keys, shards int) *Store {
	var b [6]byte
	_, _ = rand.Read(b[:]) // crypto/rand does not fail on supported platforms
	return &Store{rdb: rdb, keys: keys, shards: shards, token: hex.EncodeToString(b[:])}
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
