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
// keeps the payloads out of Lua:
//
//	WATCH ddw b1..bk
//	EVAL dedupCheck (ddw b1..bk; slots, digests)  -- a copy: SET ddw, which aborts the EXEC
//	MULTI
//	XADD in * m <meta> p <payload>  (each entry)
//	SADD b <markers>; PEXPIRE b ttl NX; PEXPIRE b ttl GT  (each bucket)
//	EXEC
//
// The check runs before the transaction and writes only when it finds a
// copy (a marker in a bucket, or the same marker twice in the run): that
// write touches a watched key, so the EXEC is discarded. Any other writer's
// marker added to a bucket between the WATCH and the EXEC discards it too.
// A discarded transaction changed nothing; its entries then go through the
// script, which decides each. So the transaction commits only when no copy
// existed, and commits atomically (markers and entries together, also in the
// AOF): the guarantees of the script path hold.
//
// The check is sent with EVAL, never EVALSHA: a NOSCRIPT refusal would let
// the transaction commit unchecked. If the check fails anyway (refused by an
// ACL, or a state like BUSY that cleared before the queued commands came),
// the entries are appended unchecked: they are reported so (Unchecked,
// counted and logged by the ingester) and the store takes the script path
// for txPause.

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
	watch, check, multi, exec *redis.Cmd
	xadds                     []*redis.Cmd
}

// queueTx queues the transaction of call c on pipe. c holds the script's
// arguments (layout: dedupAppendMany); the transaction reuses them.
func queueTx(ctx context.Context, pipe redis.Pipeliner, c *appendCall, watch string) *txCall {
	buckets := c.keys[1 : 1+c.nb]
	f := 2 // tx calls carry fresh entries only: m and p
	slots, digests := c.args[2].([]byte), c.args[3].([]byte)
	watchArgs := make([]any, 0, 2+c.nb)
	watchArgs = append(watchArgs, "WATCH", watch)
	checkKeys := make([]string, 0, 1+c.nb)
	checkKeys = append(checkKeys, watch)
	for _, b := range buckets {
		watchArgs = append(watchArgs, b)
		checkKeys = append(checkKeys, b)
	}
	t := &txCall{watch: pipe.Do(ctx, watchArgs...)}
	t.check = dedupCheck.Eval(ctx, pipe, checkKeys, slots, digests)
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
	markers := make([]string, len(slots)) // boxed by pointer (stringView)
	for j, b := range buckets {
		add := make([]any, 2, 2+len(c.idx))
		add[0], add[1] = "SADD", b
		for m := range slots {
			if int(slots[m]) == j+1 {
				markers[m] = stringView(digests[16*m : 16*m+16])
				add = append(add, &markers[m])
			}
		}
		pipe.Do(ctx, add...)
		pipe.Do(ctx, "PEXPIRE", b, ttl, "NX")
		pipe.Do(ctx, "PEXPIRE", b, ttl, "GT")
	}
	t.exec = pipe.Do(ctx, "EXEC")
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
	checked := true
	if n, cerr := t.check.Int64(); cerr != nil || n != 0 || t.watch.Err() != nil {
		// The check did not run, or found a copy and the EXEC ran anyway,
		// or nothing was watched.
		checked = false
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
