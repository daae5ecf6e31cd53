package dlq

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/signal-client/signal-client/internal/streams"
)

// Stats describes a queue as a whole.
type Stats struct {
	Source   Source
	Depth    int64
	ByReason map[string]int64
	ByShard  map[int]int64 // non-empty shards only
	Oldest   *Oldest       // nil when empty
}

// Oldest is the entry parked longest ago.
type Oldest struct {
	ID       string
	Shard    int
	StreamID string
	ParkedAt time.Time
}

// Stats counts the queue by reason and shard (inside Redis: no entry is
// transferred) and finds its oldest entry.
func (q *Queue) Stats(ctx context.Context) (Stats, error) {
	shards, _ := q.shardsFor(Filter{})
	keys := make([]string, len(shards))
	for i, s := range shards {
		keys[i] = q.key(s)
	}
	sums, err := q.store.SummarizeStreams(ctx, keys)
	if err != nil {
		return Stats{}, fmt.Errorf("dlq: stats: %w", err)
	}
	st := Stats{Source: q.src, ByReason: map[string]int64{}, ByShard: map[int]int64{}}
	var oldest streamID
	for i, sum := range sums {
		if sum.Length == 0 {
			continue
		}
		st.Depth += sum.Length
		if shards[i] >= 0 {
			st.ByShard[shards[i]] = sum.Length
		}
		for r, n := range sum.ByReason {
			st.ByReason[r] += n
		}
		id, err := parseID(sum.FirstID)
		if err != nil {
			continue
		}
		if st.Oldest == nil || id.less(oldest) {
			oldest = id
			it := Item{Source: q.src, Shard: shards[i], StreamID: sum.FirstID}
			st.Oldest = &Oldest{ID: it.ID(), Shard: shards[i], StreamID: sum.FirstID, ParkedAt: it.ParkedAt()}
		}
	}
	return st, nil
}

// ShardDepth is one stream's depth and oldest entry (zero time when empty).
type ShardDepth struct {
	Shard  int // -1 for the quarantine
	Depth  int64
	Oldest time.Time
}

// Depths reads the depth and oldest entry of the given shards (ignored for
// the quarantine, which has one stream) in one round trip: what a metrics
// scrape needs, cheaper than Stats.
func (q *Queue) Depths(ctx context.Context, shards []int) ([]ShardDepth, error) {
	if q.src == Quarantine {
		shards = []int{-1}
	}
	if len(shards) == 0 {
		return nil, nil
	}
	pipe := q.store.Client().Pipeline()
	lens := make([]*redis.IntCmd, len(shards))
	firsts := make([]*redis.XMessageSliceCmd, len(shards))
	for i, s := range shards {
		lens[i] = pipe.XLen(ctx, q.key(s))
		firsts[i] = pipe.XRangeN(ctx, q.key(s), "-", "+", 1)
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("dlq: depths: %w", err)
	}
	out := make([]ShardDepth, len(shards))
	for i, s := range shards {
		out[i] = ShardDepth{Shard: s, Depth: lens[i].Val()}
		if f := firsts[i].Val(); len(f) > 0 {
			out[i].Oldest = Item{StreamID: f[0].ID}.ParkedAt()
		}
	}
	return out, nil
}

// Handler serves /dlq: the Python original's keys `enabled` and `depth`,
// plus `by_reason`, `by_shard` (non-empty shards), `oldest` and the same
// for the quarantine. A nil store answers {"enabled":false,"depth":0}.
// Answers are cached for a second so a busy dashboard costs Redis little;
// Redis unreachable is a 503 with the error.
func Handler(store *streams.Store) http.Handler {
	h := &handler{cacheFor: time.Second, timeout: 2 * time.Second}
	if store != nil {
		h.dlq, h.quarantine = New(store, DeadLetters), New(store, Quarantine)
	}
	return h
}

type handler struct {
	dlq, quarantine *Queue
	cacheFor        time.Duration
	timeout         time.Duration

	mu     sync.Mutex
	at     time.Time
	code   int
	cached []byte
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	if h.dlq == nil {
		_ = json.NewEncoder(w).Encode(map[string]any{"enabled": false, "depth": 0})
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.cached == nil || time.Since(h.at) >= h.cacheFor {
		h.code, h.cached = h.render(r.Context())
		h.at = time.Now()
	}
	w.WriteHeader(h.code)
	_, _ = w.Write(h.cached)
}

func (h *handler) render(ctx context.Context) (int, []byte) {
	ctx, cancel := context.WithTimeout(ctx, h.timeout)
	defer cancel()
	st, err := h.dlq.Stats(ctx)
	if err != nil {
		b, _ := json.Marshal(map[string]any{"enabled": true, "error": "redis unreachable or too slow: " + err.Error()})
		return http.StatusServiceUnavailable, append(b, '\n')
	}
	qst, err := h.quarantine.Stats(ctx)
	if err != nil {
		b, _ := json.Marshal(map[string]any{"enabled": true, "error": "redis unreachable or too slow: " + err.Error()})
		return http.StatusServiceUnavailable, append(b, '\n')
	}
	body := statsJSON(st, time.Now())
	body["enabled"] = true
	body["quarantine"] = statsJSON(qst, time.Now())
	b, _ := json.Marshal(body)
	return http.StatusOK, append(b, '\n')
}

// StatsJSON is the JSON form of Stats shared by /dlq and `dlqctl stats --json`.
func StatsJSON(st Stats, now time.Time) map[string]any { return statsJSON(st, now) }

func statsJSON(st Stats, now time.Time) map[string]any {
	byShard := map[string]int64{}
	for s, n := range st.ByShard {
		byShard[strconv.Itoa(s)] = n
	}
	m := map[string]any{"depth": st.Depth, "by_reason": st.ByReason, "oldest": nil}
	if st.Source == DeadLetters {
		m["by_shard"] = byShard
	}
	if st.Oldest != nil {
		o := map[string]any{"id": st.Oldest.ID, "stream_id": st.Oldest.StreamID,
			"parked_at": st.Oldest.ParkedAt.UTC().Format(time.RFC3339Nano), "age_seconds": now.Sub(st.Oldest.ParkedAt).Seconds()}
		if st.Source == DeadLetters {
			o["shard"] = st.Oldest.Shard
		}
		m["oldest"] = o
	}
	return m
}
