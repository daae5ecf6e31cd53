package sender

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/signal-client/signal-client/internal/streams"
)

// The sender's pipelined Redis calls. internal/streams runs each of its
// scripts in a round trip of its own; a keyed send would then cost four
// (record lookup, admission, slot release, record write). Here the lookup
// goes with the first admission and the release with the record write, so a
// keyed call costs two round trips. The records and the semaphore live in
// different hash slots, so they cannot share one script on Redis Cluster;
// a pipeline may span slots.
//
// The scripts stay internal/streams' own (every script lives there); this
// file only queues them on a pipeline (Store.QueueAdmit, QueueRecordSent).

// pipelined runs the commands build queues in one round trip. A script
// answered NOSCRIPT (Redis restarted or flushed its scripts) did not run: the
// scripts are loaded and the whole pipeline runs once more, which is safe
// because every pipeline here is safe to repeat (a read, an admission that
// did not run, a ZREM of a unique holder, an HSET of the same value).
// Callers read each command's own error.
func (s *Sender) pipelined(ctx context.Context, build func(p redis.Pipeliner) []redis.Cmder) []redis.Cmder {
	rdb := s.store.Client()
	run := func() []redis.Cmder {
		p := rdb.Pipeline()
		cmds := build(p)
		_, _ = p.Exec(ctx)
		return cmds
	}
	cmds := run()
	for _, c := range cmds {
		if isNoScript(c.Err()) {
			if err := streams.LoadScripts(ctx, rdb); err != nil {
				return cmds
			}
			return run()
		}
	}
	return cmds
}

func isNoScript(err error) bool {
	return err != nil && strings.HasPrefix(err.Error(), "NOSCRIPT")
}

// admitLookup runs the admission and reads the call's sent record in one
// round trip. found says a record exists (rec is its value). When the
// lookup fails, a slot the admission took is given back and err is set.
func (s *Sender) admitLookup(ctx context.Context, o op, req streams.AdmitReq) (res streams.AdmitRes, rec string, found bool, err error) {
	keys := s.store.Keys()
	var get *redis.StringCmd
	var adm *redis.Cmd
	s.pipelined(ctx, func(p redis.Pipeliner) []redis.Cmder {
		get = p.HGet(ctx, keys.Sent(o.key.Shard, o.key.Original), strconv.Itoa(o.key.Seq))
		adm = s.store.QueueAdmit(ctx, p, req)
		return []redis.Cmder{get, adm}
	})
	res, aerr := streams.ParseAdmit(adm)
	rec, gerr := get.Result()
	if errors.Is(gerr, redis.Nil) {
		gerr = nil
	} else if gerr == nil {
		found = true
	}
	if gerr != nil {
		if aerr == nil && res.Code == streams.Admitted && req.Holder != "" {
			s.settleRedis(ctx, o, req.Holder, "") // the caller gives the gate token back
		}
		return streams.AdmitRes{}, "", false, fmt.Errorf("streams: read sent record: %w", gerr)
	}
	return res, rec, found, aerr
}

// settle ends a call in one round trip: it gives back the call's semaphore
// slot (holder, "" for none; with its gate token) and writes its sent record (rec, "" for none).
// A slot that cannot be released frees itself when its lease ends; a record
// that cannot be written leaves only a retry of this handling able to repeat
// the call.
func (s *Sender) settle(ctx context.Context, o op, holder, rec string) {
	if holder == "" && rec == "" {
		return
	}
	if holder != "" && s.gate != nil {
		// After the slot is given back (or left to its lease).
		defer s.leaveGate()
	}
	s.settleRedis(ctx, o, holder, rec)
}

// settleRedis is settle without the gate token.
func (s *Sender) settleRedis(ctx context.Context, o op, holder, rec string) {
	var cancel context.CancelFunc = func() {}
	ctx = context.WithoutCancel(ctx)
	if rec == "" {
		ctx, cancel = context.WithTimeout(ctx, 2*time.Second)
	}
	defer cancel()
	keys := s.store.Keys()
	var zrem *redis.IntCmd
	var write *redis.Cmd
	s.pipelined(ctx, func(p redis.Pipeliner) []redis.Cmder {
		var cmds []redis.Cmder
		if holder != "" {
			// internal/streams' releaseSlot script is exactly this ZREM.
			zrem = p.ZRem(ctx, keys.APISemaphore(), holder)
			cmds = append(cmds, zrem)
		}
		if rec != "" {
			write = s.store.QueueRecordSent(ctx, p, o.key.Shard, o.key.Original, o.key.Seq, rec, s.cfg.SentTTL)
			cmds = append(cmds, write)
		}
		return cmds
	})
	if zrem != nil && zrem.Err() != nil {
		s.log.Warn("could not release a REST slot; it frees itself when its lease ends", zap.Error(zrem.Err()))
	}
	if write != nil && write.Err() != nil {
		if rec == recordUnknown {
			s.log.Warn("could not record an unknown outcome", zap.String("endpoint", o.endpoint), zap.Error(write.Err()))
		} else {
			// The call happened; only a retry of this handling could repeat it.
			s.log.Warn("could not record a confirmed call; a retry of this message may repeat it", zap.String("endpoint", o.endpoint), zap.Error(write.Err()))
		}
	}
}
