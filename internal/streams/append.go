package streams

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Append is one dedup-and-append request.
type Append struct {
	Shard    int
	Identity string // dedup identity (ARCHITECTURE §5.3)
	Entry    Entry
	// Repair marks a request that is probably a copy of an entry already
	// appended (a standby's repair offer): it skips the optimistic
	// transaction, which a duplicate would abort, and goes to the script.
	Repair bool
}

// AppendResult is the outcome of one Append.
type AppendResult struct {
	ID        string // the new entry's id; empty for a duplicate
	Duplicate bool
	Err       error
	// Fallback: the optimistic transaction was aborted (a copy, or another
	// writer on the bucket) and the script decided this entry.
	Fallback bool
	// Unchecked: the entry was appended by a transaction whose duplicate
	// check did not run (ARCHITECTURE §5.3); it may be a duplicate.
	Unchecked bool
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

// DedupWatch is the key of shard n that the optimistic append watches and
// its duplicate check writes to discard the transaction (txappend.go).
func (k Keys) DedupWatch(n int) string { return k.shard(n, "ddw") }

// DedupScratch is shard n's scratch set of one store (token): the optimistic
// append's check puts a run's markers there to intersect them with a bucket.
func (k Keys) DedupScratch(n int, token string) string { return k.shard(n, "ddt:"+token) }

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

// AppendBatch runs dedup-and-append for every request: one script call (or,
// for a run of fresh entries, one optimistic transaction: txappend.go) per
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
	return s.AppendPrepared(ctx, s.PrepareAppend(ctx, reqs, dedupTTL))
}

// PreparedAppend is an AppendBatch planned but not sent: its script
// arguments and first pipelines are built. Planning is a large share of the
// client's work per entry (about 40 % in the append benchmark's profile) and
// needs no round trip, so a caller with more entries waiting plans the next
// batch while the current one is at Redis
// (ARCHITECTURE §5.3). Send it once, with AppendPrepared; until then it holds
// the requests' payloads.
type PreparedAppend struct {
	n     int
	ttl   time.Duration
	reqs  []Append
	tx    bool // planned while the transaction was allowed
	lanes []preparedLane
}

// Len is the number of requests.
func (p *PreparedAppend) Len() int { return p.n }

// preparedLane is one lane's calls and, when any is a transaction, its
// first pipeline, queued.
type preparedLane struct {
	calls []appendCall
	pipe  redis.Pipeliner
	txs   []*txCall
	cmds  []*redis.Cmd
}

// PrepareAppend plans an AppendBatch of reqs (which it keeps until sent).
func (s *Store) PrepareAppend(ctx context.Context, reqs []Append, dedupTTL time.Duration) *PreparedAppend {
	p := &PreparedAppend{n: len(reqs), ttl: dedupTTL, reqs: reqs, tx: s.txAllowed()}
	if len(reqs) == 0 {
		return p
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
	if len(reqs) < laneMinEntries || len(order) < 2 {
		p.lanes = []preparedLane{s.prepareLane(ctx, reqs, order, groups, ttl, p.tx)}
		return p
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
	p.lanes = make([]preparedLane, appendLanes)
	for l := range p.lanes {
		p.lanes[l] = s.prepareLane(ctx, reqs, lanes[l], groups, ttl, p.tx)
	}
	return p
}

// AppendPrepared sends a prepared batch; see AppendBatch. A batch planned
// for the transaction while the store has since paused it is planned again.
func (s *Store) AppendPrepared(ctx context.Context, p *PreparedAppend) ([]AppendResult, error) {
	if p.n == 0 {
		return nil, nil
	}
	if p.reqs == nil {
		return nil, errors.New("streams: append batch: a prepared batch is sent once")
	}
	reqs := p.reqs
	p.reqs = nil
	if p.tx && !s.txAllowed() {
		p = s.PrepareAppend(ctx, reqs, p.ttl)
	}
	out := make([]AppendResult, len(reqs))
	var failed [appendLanes]bool
	var errs [appendLanes]error
	var wg sync.WaitGroup
	for l := 1; l < len(p.lanes); l++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			failed[l], errs[l] = s.appendLane(ctx, &p.lanes[l], out)
		}()
	}
	failed[0], errs[0] = s.appendLane(ctx, &p.lanes[0], out)
	wg.Wait()
	for l := range p.lanes {
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

// prepareLane plans the calls of some shards and, when any may try the
// transaction, queues the lane's first pipeline (sent by appendLane).
func (s *Store) prepareLane(ctx context.Context, reqs []Append, shards []int, groups map[int][]int, ttl string, txOK bool) preparedLane {
	l := preparedLane{calls: s.planAppends(reqs, shards, groups, ttl, txOK)}
	if !anyTx(l.calls) {
		return l
	}
	l.pipe = s.rdb.Pipeline()
	l.txs = make([]*txCall, len(l.calls))
	l.cmds = make([]*redis.Cmd, len(l.calls))
	for g := range l.calls {
		if l.calls[g].tx {
			sh := l.calls[g].shard
			l.txs[g] = queueTx(ctx, l.pipe, &l.calls[g], s.keys.DedupWatch(sh), s.keys.DedupScratch(sh, s.token))
		} else {
			l.cmds[g] = dedupAppendMany.EvalSha(ctx, l.pipe, l.calls[g].keys, l.calls[g].args...)
		}
	}
	return l
}

// appendLane runs a lane's requests in one pipelined round trip and writes
// their results into out. Calls marked tx try the optimistic transaction
// (txappend.go), the others the script; the calls the script must (re)run —
// aborted transactions, NOSCRIPT refusals — go in a second round trip.
// failed reports that no call succeeded because a round trip failed (err).
func (s *Store) appendLane(ctx context.Context, l *preparedLane, out []AppendResult) (failed bool, err error) {
	calls := l.calls
	succeeded := false
	var scripted []int
	if l.pipe != nil {
		if _, err = l.pipe.Exec(ctx); errors.Is(err, redis.Nil) {
			err = nil // a discarded transaction; the calls' own errors are in out
		}
		for g := range calls {
			c := &calls[g]
			if l.txs[g] == nil {
				if isNoScript(l.cmds[g].Err()) {
					scripted = append(scripted, g)
				} else if scriptResults(c, l.cmds[g], out, false) {
					succeeded = true
				}
				continue
			}
			switch s.finishTx(ctx, l.txs[g], c, out) {
			case txAborted:
				scripted = append(scripted, g)
			case txCommitted:
				succeeded = true
			}
		}
	} else {
		scripted = make([]int, len(calls))
		for g := range scripted {
			scripted[g] = g
		}
	}
	if len(scripted) > 0 {
		cmds, serr := s.evalPipelined(ctx, len(scripted), func(pipe redis.Pipeliner, k int) *redis.Cmd {
			c := &calls[scripted[k]]
			return dedupAppendMany.EvalSha(ctx, pipe, c.keys, c.args...)
		})
		// The lane's error is the second round trip's, unless the first
		// already failed for every call (then that is the cause to report).
		if err == nil || succeeded {
			err = serr
		}
		for k, g := range scripted {
			if cmds == nil {
				for _, i := range calls[g].idx {
					out[i].Err = serr
				}
			} else if scriptResults(&calls[g], cmds[k], out, calls[g].tx) {
				succeeded = true
			}
		}
	}
	return !succeeded && err != nil, err
}

// scriptResults writes one dedupAppendMany call's results into out and
// reports whether the call succeeded.
func scriptResults(c *appendCall, cmd *redis.Cmd, out []AppendResult, fallback bool) bool {
	vals, err := cmd.Slice()
	if err == nil && len(vals) != len(c.idx) {
		err = fmt.Errorf("streams: append: unexpected reply of %d values for %d entries", len(vals), len(c.idx))
	}
	if err != nil {
		for _, i := range c.idx {
			out[i].Err = err
		}
		return false
	}
	for k, i := range c.idx {
		id, _ := vals[k].(string)
		out[i] = AppendResult{ID: id, Duplicate: id == "", Fallback: fallback}
	}
	return true
}

// appendCall is one dedupAppendMany call: a run of one shard's requests with
// the same field set.
type appendCall struct {
	idx   []int // request indexes, in order
	keys  []string
	args  []any
	shard int
	nb    int  // buckets: keys[1 : 1+nb]
	tx    bool // try the optimistic transaction first (txappend.go)
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
func (s *Store) planAppends(reqs []Append, order []int, groups map[int][]int, ttl string, txOK bool) []appendCall {
	calls := make([]appendCall, 0, len(order))
	var buckets []int64
	var strKeys []string
	for _, shard := range order {
		idx := groups[shard]
		first := len(calls)
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
			metas := make([]byte, 0, size)      // every entry's FieldMeta, in one allocation
			views := make([]string, 2*len(idx)) // meta and payload of each entry, boxed by pointer (stringView)
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
				sum := sha256.Sum256(readOnlyBytes(r.Identity))
				slots = append(slots, byte(slot))
				digests = append(digests, sum[:16]...)
				start := len(metas)
				metas = appendMeta(metas, &r.Entry)
				views[2*n], views[2*n+1] = stringView(metas[start:]), stringView(r.Entry.Payload)
				values = append(values, &views[2*n], &views[2*n+1])
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
			tx := txOK && !replayed && len(strKeys) == 0 && !anyRepair(reqs, idx[:n]) && !repeatsDigest(digests)
			calls = append(calls, appendCall{idx: idx[:n], keys: keys, args: values, shard: shard, nb: len(buckets), tx: tx})
			idx = idx[n:]
		}
		if len(calls) > first+1 {
			// A shard with several calls: an aborted transaction would land
			// its entries after a later call's, so the script takes them all.
			for g := first; g < len(calls); g++ {
				calls[g].tx = false
			}
		}
	}
	return calls
}

// repeatsDigest reports whether a run holds the same marker twice (the
// same event twice in one batch): the transaction's check only looks for
// markers already in Redis, so such a run goes to the script.
func repeatsDigest(digests []byte) bool {
	seen := make(map[[16]byte]struct{}, len(digests)/16)
	for i := 0; i+16 <= len(digests); i += 16 {
		d := [16]byte(digests[i : i+16])
		if _, ok := seen[d]; ok {
			return true
		}
		seen[d] = struct{}{}
	}
	return false
}

func anyTx(calls []appendCall) bool {
	for i := range calls {
		if calls[i].tx {
			return true
		}
	}
	return false
}

func anyRepair(reqs []Append, idx []int) bool {
	for _, i := range idx {
		if reqs[i].Repair {
			return true
		}
	}
	return false
}

func anyNoScript(cmds []*redis.Cmd) bool {
	for _, c := range cmds {
		if c != nil && isNoScript(c.Err()) {
			return true
		}
	}
	return false
}
