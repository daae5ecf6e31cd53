// Package streams owns the Redis side of signal-client: every key name and
// every Lua script live here (as asynq's internal/rdb does), so the key layout
// of docs/ARCHITECTURE.md §3 exists in exactly one place and every script can
// be checked to name all its keys in KEYS and touch a single hash slot.
package streams

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash/fnv"
	"regexp"
	"strconv"
)

// GroupName is the consumer group on every shard stream, and OwnerConsumer the
// one consumer name used in it: only the shard's lease holder reads a shard, so
// the consumer's pending list is exactly the shard's in-flight entries,
// whoever held the lease before (ARCHITECTURE §6.4).
const (
	GroupName     = "workers"
	OwnerConsumer = "owner"
)

// MaxShards bounds WORKER_SHARD_COUNT.
const MaxShards = 4096

var prefixRE = regexp.MustCompile(`^[A-Za-z0-9_.-]+$`)

// Keys builds key names for one deployment (prefix + account).
type Keys struct {
	prefix string
	acct   string
}

// AccountID is the account part of every key: the first 12 hex digits of
// SHA-256 of the bot's number, so no phone number appears in key names.
func AccountID(number string) string {
	sum := sha256.Sum256([]byte(number))
	return hex.EncodeToString(sum[:])[:12]
}

// NewKeys validates the prefix and returns the key builder for an account.
func NewKeys(prefix, number string) (Keys, error) {
	if !prefixRE.MatchString(prefix) {
		return Keys{}, fmt.Errorf("streams: key prefix %q: expected letters, digits, '_', '.' or '-' (no braces, colons or spaces)", prefix)
	}
	if number == "" {
		return Keys{}, fmt.Errorf("streams: empty account number")
	}
	return Keys{prefix: prefix, acct: AccountID(number)}, nil
}

// Account returns the account id used in key names.
func (k Keys) Account() string { return k.acct }

// Prefix returns the configured key prefix.
func (k Keys) Prefix() string { return k.prefix }

func (k Keys) global(name string) string { return k.prefix + ":{" + k.acct + "}:" + name }

func (k Keys) shard(n int, name string) string {
	return k.prefix + ":{" + k.acct + ".s" + strconv.Itoa(n) + "}:" + name
}

// Meta is the deployment's metadata hash (shard count, format).
func (k Keys) Meta() string { return k.global("meta") }

// Leader is the ingester leader lock (redislock).
func (k Keys) Leader() string { return k.global("ingest:leader") }

// LeaderEpoch holds the last ingester leader epoch.
func (k Keys) LeaderEpoch() string { return k.global("ingest:epoch") }

// IngestMembers is the zset of live ingesters.
func (k Keys) IngestMembers() string { return k.global("ingest:members") }

// SpoolReplay marks a leader replaying its outage spool.
func (k Keys) SpoolReplay() string { return k.global("ingest:spool-replay") }

// Quarantine is the stream of frames that could not be ingested.
func (k Keys) Quarantine() string { return k.global("quarantine") }

// Workers is the worker membership zset.
func (k Keys) Workers() string { return k.global("workers") }

// Rate is the cluster-wide GCRA rate-limit key.
func (k Keys) Rate() string { return k.global("rate") }

// APISemaphore is the cluster-wide REST in-flight semaphore.
func (k Keys) APISemaphore() string { return k.global("apisem") }

// Audit is the dlqctl audit stream.
func (k Keys) Audit() string { return k.global("audit") }

// UserLock is the key of ctx.Lock(key): the user's key is hashed so it can
// hold anything without breaking the layout.
func (k Keys) UserLock(key string) string { return k.global("lock:" + digest16(key)) }

// Stream is the inbound stream of shard n.
func (k Keys) Stream(n int) string { return k.shard(n, "in") }

// DLQ is the dead-letter stream of shard n.
func (k Keys) DLQ(n int) string { return k.shard(n, "dlq") }

// Lease is the lease key of shard n.
func (k Keys) Lease(n int) string { return k.shard(n, "lease") }

// LeaseEpoch is the epoch counter of shard n.
func (k Keys) LeaseEpoch(n int) string { return k.shard(n, "epoch") }

// Attempts is the attempt-count hash of shard n.
func (k Keys) Attempts(n int) string { return k.shard(n, "att") }

// Started is the started-entries marker of shard n: the ids of first attempts
// running unrecorded on the fast path (ARCHITECTURE §7.1).
func (k Keys) Started(n int) string { return k.shard(n, "started") }

// Dedup is the dedup marker of an identity key in shard n.
func (k Keys) Dedup(n int, identity string) string { return k.shard(n, "dd:"+digest16(identity)) }

// State is the state hash of a conversation (in the conversation's shard n).
func (k Keys) State(n int, conversation string) string {
	return k.shard(n, "st:"+digest16(conversation))
}

// Sent is the effectively-once record hash of an original entry id in shard n.
func (k Keys) Sent(n int, originalID string) string { return k.shard(n, "sent:"+originalID) }

// ShardTag returns the hash tag shared by every key of shard n.
func (k Keys) ShardTag(n int) string { return "{" + k.acct + ".s" + strconv.Itoa(n) + "}" }

func digest16(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:8])
}

// ShardOf maps a conversation key to its shard: FNV-1a 64 of the key modulo
// the shard count. Stable across processes, versions and architectures, which
// is what per-conversation ordering depends on; changing it is a format change.
func ShardOf(conversation string, shards int) int {
	if shards <= 1 {
		return 0
	}
	h := fnv.New64a()
	_, _ = h.Write([]byte(conversation))
	return int(h.Sum64() % uint64(shards))
}

// QuarantineDedup is the dedup marker of a quarantined frame's digest.
func (k Keys) QuarantineDedup(digest string) string { return k.global("qd:" + digest16(digest)) }
