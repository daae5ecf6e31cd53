package streams

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// The optimistic append (ARCHITECTURE §5.3). The script path hands every
// payload to Lua, and Redis's Lua hashes every byte of every argument it
// receives (its string interning, patched to hash whole strings): about a
// sixth of the Redis time of an append. A leader's entries are new with
// near certainty, so for them one shard's run goes as a transaction that
// keeps the payloads out of Lua, and its check needs no script at all:
//
//	WATCH ddw b1..bk
//	SADD ddt m...; PEXPIRE ddt 10000; SINTERSTORE ddw ddt b; DEL ddt   (each bucket b, its markers m)
//	MULTI
//	XADD in * m <meta> p <payload>  (each entry)
//	SADD b <markers>; PEXPIRE b ttl NX; PEXPIRE b ttl GT  (each bucket)
//	EXEC
//	DEL ddw
//
// The check intersects the run's markers, put in this store's scratch set
// ddt, with each bucket into the watched key ddw. An empty intersection
// writes nothing (ddw does not exist: SINTERSTORE of nothing into a missing
// key is no change); a marker found writes ddw, and a client's own write to
// a key it watches discards its EXEC. Any other writer's marker added to a
// bucket between the WATCH and the EXEC discards it too. A discarded
// transaction changed nothing; its entries then go through the script,
// which decides each. So the transaction commits only when no copy existed,
// and commits atomically (markers and entries together, also in the AOF):
// the guarantees of the script path hold. A run holding the same marker
// twice never tries the transaction (repeatsDigest): the check only sees
// markers already in Redis. The scratch set is the store's own (a random
// token), because another client's commands may run between ours; it
// expires if a crash leaves it behind. A stale ddw (a crash after a copy was
// found) is deleted by the next check's empty intersection, which discards
// that one transaction too: safe, and once.
//
// Measured by Redis's own clock (INFO commandstats over a 20 000-message
// no-op burst): the Lua check cost Redis 112 µs per call, 2 µs per entry,
// more than the XADD; the plain commands cost less than half of that.
//
// If the check fails (refused by an ACL, or by OOM), the transaction would
// commit unchecked: the entries are reported so (Unchecked, counted and
// logged by the ingester) and the store takes the script path for txPause.

// txPause is how long the script path is used alone after an unchecked
// transaction.
const txPause = 5 * time.Minute

// txOutcome is what became of one transaction.
type txOutcome int

const (
	txFailed    txOutcome = iota // errors written into the results
	txAborted                    // discarded: nothing changed, the script must decide
	txCommitted                  // results written
)

// txCall is one queued transaction.
type txCall struct {
	watch, multi, exec *redis.Cmd
	checks             []*redis.Cmd // the check's commands, in order
	xadds              []*redis.Cmd
}

// scratchTTL bounds the life of a scratch set a crash left behind.
const scratchTTL = "10000"

// queueTx queues the transaction of call c on pipe. c holds the script's
// arguments (layout: dedupAppendMany); the transaction reuses them.
func queueTx(ctx context.Context, pipe redis.Pipeliner, c *appendCall, watch, scratch string) *txCall {
	buckets := c.keys[1 : 1+c.nb]
	f := 2 // tx calls carry fresh entries only: m and p
	slots, digests := c.args[2].([]byte), c.args[3].([]byte)
	// Each bucket's markers, boxed by pointer (stringView), for the check and
	// for the SADD that records them.
	markers := make([]string, len(slots))
	members := make([][]any, len(buckets))
	for m := range slots {
		markers[m] = stringView(digests[16*m : 16*m+16])
		j := int(slots[m]) - 1
		members[j] = append(members[j], &markers[m])
	}
	watchArgs := make([]any, 0, 2+c.nb)
	watchArgs = append(watchArgs, "WATCH", watch)
	for _, b := range buckets {
		watchArgs = append(watchArgs, b)
	}
	t := &txCall{watch: pipe.Do(ctx, watchArgs...)}
	for j, b := range buckets {
		add := make([]any, 0, 2+len(members[j]))
		add = append(add, "SADD", scratch)
		add = append(add, members[j]...)
		t.checks = append(t.checks, pipe.Do(ctx, add...), pipe.Do(ctx, "PEXPIRE", scratch, scratchTTL),
			pipe.Do(ctx, "SINTERSTORE", watch, scratch, b), pipe.Do(ctx, "DEL", scratch))
	}
	t.multi = pipe.Do(ctx, "MULTI")
	var stream any = c.keys[0] // boxed once
	o := 4 + f
	t.xadds = make([]*redis.Cmd, len(c.idx))
	args := make([]any, 7*len(c.idx)) // every XADD's arguments, in one allocation
	for k := range c.idx {
		v := c.args[o+f*k : o+f*k+f]
		a := args[7*k : 7*k+7 : 7*k+7]
		a[0], a[1], a[2], a[3], a[4], a[5], a[6] = "XADD", stream, "*", FieldMeta, v[0], FieldPayload, v[1]
		t.xadds[k] = pipe.Do(ctx, a...)
	}
	ttl := c.args[0]
	for j, b := range buckets {
		add := make([]any, 0, 2+len(members[j]))
		add = append(add, "SADD", b)
		add = append(add, members[j]...)
		pipe.Do(ctx, add...)
		pipe.Do(ctx, "PEXPIRE", b, ttl, "NX")
		pipe.Do(ctx, "PEXPIRE", b, ttl, "GT")
	}
	t.exec = pipe.Do(ctx, "EXEC")
	pipe.Do(ctx, "DEL", watch) // a copy found leaves the intersection there
	return t
}

// finishTx writes the results of a transaction into out and reports its
// outcome. Entries whose XADD failed inside a committed transaction have
// their markers removed again, so that a retry is not taken for a copy.
func (s *Store) finishTx(ctx context.Context, t *txCall, c *appendCall, out []AppendResult) txOutcome {
	fail := func(err error) txOutcome {
		for _, i := range c.idx {
			out[i].Err = err
		}
		return txFailed
	}
	if err := t.multi.Err(); err != nil {
		var refused redis.Error
		if !errors.As(err, &refused) {
			return fail(fmt.Errorf("streams: append transaction: %w", err)) // the round trip failed
		}
		// Not queued: Redis ran the commands one by one, unchecked.
		return s.finishDirect(ctx, t, c, out, fmt.Errorf("streams: append transaction: MULTI refused: %w", err))
	}
	vals, err := t.exec.Slice()
	switch {
	case errors.Is(err, redis.Nil):
		return txAborted
	case err != nil:
		return fail(fmt.Errorf("streams: append transaction: %w", err))
	case len(vals) < len(c.idx):
		return fail(fmt.Errorf("streams: append transaction: unexpected reply of %d values for %d entries", len(vals), len(c.idx)))
	}
	checked := t.watch.Err() == nil
	for k, cmd := range t.checks {
		n, cerr := cmd.Int64()
		// Every check command must have run, and an intersection (every
		// fourth command, SINTERSTORE) found nothing: else the EXEC should
		// have been discarded.
		if cerr != nil || (k%4 == 2 && n != 0) {
			checked = false
		}
	}
	if !checked {
		// The check did not run, or found a copy and the EXEC ran anyway,
		// or nothing was watched.
		s.pauseTx()
	}
	var lost []int
	for k, i := range c.idx {
		switch v := vals[k].(type) {
		case string:
			out[i] = AppendResult{ID: v, Unchecked: !checked}
		case error:
			out[i] = AppendResult{Err: fmt.Errorf("streams: append transaction: xadd: %w", v)}
			lost = append(lost, k)
		default:
			out[i] = AppendResult{Err: fmt.Errorf("streams: append transaction: unexpected xadd reply %T", v)}
			lost = append(lost, k)
		}
	}
	s.unmark(ctx, c, lost, out)
	return txCommitted
}

// finishDirect reads the results of commands Redis ran outside a
// transaction.
func (s *Store) finishDirect(ctx context.Context, t *txCall, c *appendCall, out []AppendResult, why error) txOutcome {
	s.pauseTx()
	var lost []int
	ok := false
	for k, i := range c.idx {
		id, err := t.xadds[k].Text()
		if err != nil || id == "QUEUED" {
			out[i] = AppendResult{Err: fmt.Errorf("%w; xadd: %v", why, err)}
			lost = append(lost, k)
			continue
		}
		ok = true
		out[i] = AppendResult{ID: id, Unchecked: true}
	}
	s.unmark(ctx, c, lost, out)
	if !ok {
		return txFailed
	}
	return txCommitted
}

// unmark removes the markers of the entries of c at positions lost (their
// XADD failed after their marker was added). A failure is added to their
// errors: a retry of them will be taken for a copy until DEDUP_WINDOW ends.
func (s *Store) unmark(ctx context.Context, c *appendCall, lost []int, out []AppendResult) {
	if len(lost) == 0 {
		return
	}
	slots, digests := c.args[2].([]byte), c.args[3].([]byte)
	pipe := s.rdb.Pipeline()
	for _, k := range lost {
		pipe.SRem(ctx, c.keys[int(slots[k])], digests[16*k:16*k+16])
	}
	if _, err := pipe.Exec(ctx); err != nil {
		for _, k := range lost {
			i := c.idx[k]
			out[i].Err = fmt.Errorf("%w (and its dedup marker could not be removed, so a retry within DEDUP_WINDOW is taken for a copy: %v)", out[i].Err, err)
		}
	}
}

// txAllowed reports whether appends may try the transaction now.
func (s *Store) txAllowed() bool {
	return !s.scriptOnly && time.Now().UnixNano() >= s.txPausedUntil.Load()
}

func (s *Store) pauseTx() { s.txPausedUntil.Store(time.Now().Add(txPause).UnixNano()) }
