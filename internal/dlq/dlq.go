// Package dlq is the operator's view of parked work (ARCHITECTURE §7.4,
// §7.5, §9.2): it presents the per-shard dead-letter streams P:{A.sN}:dlq as
// one queue ordered by parking time, and the ingester's quarantine
// P:{A}:quarantine the same way. It lists with filters, shows, replays (one
// atomic move per entry, so an interrupted replay neither loses nor
// duplicates), purges, counts, exports and imports JSON lines, keeps an audit
// trail of every change, trims by count and age for the leader's
// housekeeping, and serves the /dlq health endpoint. dlqctl is its CLI.
//
// Every walk over the queue pages through the streams (bounded memory for any
// depth) and stops at the last entry that existed when it started, so entries
// parked again while a replay runs are not replayed twice in one run.
package dlq

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/signal-client/signal-client/internal/streams"
)

// Source selects the stream family a Queue works on.
type Source int

// Sources.
const (
	DeadLetters Source = iota // the per-shard DLQ streams
	Quarantine                // the ingester's quarantine of undecodable frames
)

func (s Source) String() string {
	if s == Quarantine {
		return "quarantine"
	}
	return "dlq"
}

// Item is one parked entry or quarantined frame.
type Item struct {
	Source       Source
	Shard        int    // -1 for the quarantine
	StreamID     string // id in the DLQ (or quarantine) stream; its time is when it was parked
	SourceID     string // id the entry had in the shard stream when it was parked
	OriginalID   string // id of the first append, kept through replays
	ReplayCount  int
	Kind         string
	Conversation string // full conversation key (contains ids: show only on request)
	Timestamp    int64  // upstream envelope timestamp, ms
	Reason       string
	Error        string // last error (DLQ, already redacted) or decoder detail (quarantine)
	Attempts     int64
	FirstFailed  time.Time
	LastFailed   time.Time
	Process      string // worker (DLQ) or ingester (quarantine) that wrote it
	Payload      []byte
	Size         int               // quarantine: size of the frame as received
	Fields       map[string]string // every stored field, verbatim (for export)
}

// ID is the entry's id across the whole queue: "<shard>:<stream id>" in the
// DLQ, the stream id in the quarantine.
func (it Item) ID() string {
	if it.Source == Quarantine {
		return it.StreamID
	}
	return strconv.Itoa(it.Shard) + ":" + it.StreamID
}

// ParkedAt is when the entry was parked (the time part of its stream id).
func (it Item) ParkedAt() time.Time {
	id, _ := parseID(it.StreamID)
	return time.UnixMilli(int64(id.ms))
}

// Replayable reports whether a worker could handle the entry again.
func (it Item) Replayable() bool {
	return it.Source == DeadLetters && it.Fields[streams.FieldMeta] != "" && len(it.Payload) > 0
}

func parseItem(src Source, shard int, m redis.XMessage) Item {
	it := Item{Source: src, Shard: shard, StreamID: m.ID, Fields: make(map[string]string, len(m.Values))}
	for k, v := range m.Values {
		s, _ := v.(string)
		it.Fields[k] = s
	}
	f := it.Fields
	ms := func(k string) time.Time {
		n, err := strconv.ParseInt(f[k], 10, 64)
		if err != nil || n <= 0 {
			return time.Time{}
		}
		return time.UnixMilli(n)
	}
	it.Payload = []byte(f[streams.FieldPayload])
	it.Reason = f[streams.DLQFieldReason]
	if src == Quarantine {
		it.Shard = -1
		it.Error = f["detail"]
		it.Process = f["ing"]
		it.Size, _ = strconv.Atoi(f["size"])
		it.FirstFailed, it.LastFailed = ms("ra"), ms("ra")
		return it
	}
	if e, err := streams.ParseEntry(m); err == nil {
		it.Kind, it.Conversation, it.Timestamp = e.Kind, e.Conversation, e.Timestamp
	}
	it.SourceID = f[streams.DLQFieldSource]
	it.OriginalID = f[streams.FieldOriginalID]
	if it.OriginalID == "" {
		it.OriginalID = it.SourceID
	}
	it.ReplayCount, _ = strconv.Atoi(f[streams.FieldReplayCount])
	it.Error = f[streams.DLQFieldError]
	it.Attempts, _ = strconv.ParseInt(f[streams.DLQFieldAttempts], 10, 64)
	it.FirstFailed, it.LastFailed = ms(streams.DLQFieldFirst), ms(streams.DLQFieldLast)
	it.Process = f[streams.DLQFieldWorker]
	it.Size = len(it.Payload)
	return it
}

// Pseudonym names a conversation without revealing it: the kind prefix and
// the 16 hex digits that also name the conversation's state key
// (P:{A.sN}:st:<digits>), so an operator can correlate without seeing ids.
func Pseudonym(conv string) string {
	if conv == "" {
		return ""
	}
	kind, _, ok := strings.Cut(conv, ":")
	if !ok || len(kind) > 2 {
		kind = "c"
	}
	sum := sha256.Sum256([]byte(conv))
	return kind + "#" + hex.EncodeToString(sum[:8])
}

// matchConversation accepts the full key ("u:<uuid>"), its pseudonym, or the
// bare identifier after the kind prefix (a uuid, number or group id).
func matchConversation(filter, conv string) bool {
	if filter == "" {
		return true
	}
	if conv == "" {
		return false
	}
	if filter == conv || filter == Pseudonym(conv) {
		return true
	}
	_, rest, ok := strings.Cut(conv, ":")
	return ok && !strings.Contains(filter, ":") && !strings.Contains(filter, "#") && rest == filter
}

// candidateKeys are the conversation keys a filter can name, to narrow the
// shards read; nil when any shard may match (a pseudonym).
func candidateKeys(filter string) []string {
	if filter == "" || strings.Contains(filter, "#") {
		return nil
	}
	if strings.Contains(filter, ":") {
		return []string{filter}
	}
	return []string{"u:" + filter, "n:" + filter, "g:" + filter}
}

// Filter narrows a selection. Zero fields match everything.
type Filter struct {
	Shards       []int
	Reasons      []string
	Conversation string    // full key, bare id or pseudonym
	Since, Until time.Time // parking time, inclusive
	Limit        int       // at most this many matches; 0 = no limit
}

// IsZero reports whether the filter selects everything.
func (f Filter) IsZero() bool {
	return len(f.Shards) == 0 && len(f.Reasons) == 0 && f.Conversation == "" && f.Since.IsZero() && f.Until.IsZero() && f.Limit == 0
}

func (f Filter) match(it Item) bool {
	if len(f.Reasons) > 0 {
		ok := false
		for _, r := range f.Reasons {
			ok = ok || r == it.Reason
		}
		if !ok {
			return false
		}
	}
	return matchConversation(f.Conversation, it.Conversation)
}

// String describes the filter without any identifier (for audit records).
func (f Filter) String() string {
	var parts []string
	if len(f.Shards) > 0 {
		s := make([]string, len(f.Shards))
		for i, n := range f.Shards {
			s[i] = strconv.Itoa(n)
		}
		parts = append(parts, "shard="+strings.Join(s, ","))
	}
	if len(f.Reasons) > 0 {
		parts = append(parts, "reason="+strings.Join(f.Reasons, ","))
	}
	if f.Conversation != "" {
		c := f.Conversation
		if !strings.Contains(c, "#") {
			c = "<given>"
			if strings.Contains(f.Conversation, ":") {
				c = Pseudonym(f.Conversation)
			}
		}
		parts = append(parts, "conversation="+c)
	}
	if !f.Since.IsZero() {
		parts = append(parts, "since="+f.Since.UTC().Format(time.RFC3339))
	}
	if !f.Until.IsZero() {
		parts = append(parts, "until="+f.Until.UTC().Format(time.RFC3339))
	}
	if f.Limit > 0 {
		parts = append(parts, "limit="+strconv.Itoa(f.Limit))
	}
	return strings.Join(parts, " ")
}

// Selection says which entries a command works on: explicit ids, or every
// entry matching Filter (All with a zero filter selects everything).
type Selection struct {
	IDs    []string
	All    bool
	Filter Filter
}

// IsEmpty reports whether the selection names nothing at all (a mutating
// command refuses it rather than guessing "everything").
func (s Selection) IsEmpty() bool { return len(s.IDs) == 0 && !s.All && s.Filter.IsZero() }

// String describes the selection without identifiers of people.
func (s Selection) String() string {
	if len(s.IDs) > 0 {
		return fmt.Sprintf("ids(%d)", len(s.IDs))
	}
	f := s.Filter.String()
	if s.All && f == "" {
		return "all"
	}
	return f
}

// IDError reports ids that name no entry, or a bare stream id found in
// several shards. Nothing was changed when it is returned.
type IDError struct {
	Unknown   []string
	Ambiguous map[string][]string // bare id → full ids
}

func (e *IDError) Error() string {
	var parts []string
	if len(e.Unknown) > 0 {
		parts = append(parts, "no entry with id "+strings.Join(e.Unknown, ", ")+" (list the current ids with `dlqctl list`)")
	}
	keys := make([]string, 0, len(e.Ambiguous))
	for k := range e.Ambiguous {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("id %s is in several shards (%s): give it as <shard>:<id>", k, strings.Join(e.Ambiguous[k], ", ")))
	}
	return "dlq: " + strings.Join(parts, "; ") + "; nothing was changed"
}

// InvalidIDError is an id that cannot name an entry at all.
type InvalidIDError struct {
	ID       string
	Expected string
}

func (e *InvalidIDError) Error() string {
	return fmt.Sprintf("dlq: %q is not a valid id: expected %s", e.ID, e.Expected)
}

// ErrNotReplayable is returned by Replay on the quarantine.
var ErrNotReplayable = errors.New("dlq: quarantined frames are not replayable as they are: they could not be decoded into a message. " +
	"Inspect one with `dlqctl show --quarantine ID --reveal`, keep them with `dlqctl export --quarantine`, then purge them")

// Queue is one source (DLQ or quarantine) of one deployment.
type Queue struct {
	store *streams.Store
	src   Source
	// PageBudget bounds the entries held in memory by one walk (shared by
	// the shards being merged); default 2048.
	PageBudget int
}

// New returns the queue of src in store's deployment.
func New(store *streams.Store, src Source) *Queue {
	return &Queue{store: store, src: src, PageBudget: 2048}
}

// Source returns the queue's source.
func (q *Queue) Source() Source { return q.src }

// Store returns the deployment's store.
func (q *Queue) Store() *streams.Store { return q.store }

func (q *Queue) key(shard int) string {
	if q.src == Quarantine {
		return q.store.Keys().Quarantine()
	}
	return q.store.Keys().DLQ(shard)
}

// shardsFor lists the shards a filter can match (-1 alone for the quarantine).
func (q *Queue) shardsFor(f Filter) ([]int, error) {
	if q.src == Quarantine {
		if len(f.Shards) > 0 || f.Conversation != "" {
			return nil, errors.New("dlq: the quarantine has no shards or conversations (its frames could not be decoded): filter it by --reason, --since, --until or --limit")
		}
		return []int{-1}, nil
	}
	n := q.store.Shards()
	allowed := map[int]bool{}
	for _, s := range f.Shards {
		if s < 0 || s >= n {
			return nil, fmt.Errorf("dlq: shard %d does not exist: this deployment has shards 0 to %d", s, n-1)
		}
		allowed[s] = true
	}
	if keys := candidateKeys(f.Conversation); keys != nil {
		narrowed := map[int]bool{}
		for _, k := range keys {
			s := streams.ShardOf(k, n)
			if len(allowed) == 0 || allowed[s] {
				narrowed[s] = true
			}
		}
		allowed = narrowed
		if len(allowed) == 0 {
			return nil, nil
		}
	}
	var out []int
	for s := 0; s < n; s++ {
		if len(allowed) == 0 || allowed[s] {
			out = append(out, s)
		}
	}
	return out, nil
}

// ErrStop ends a Scan early without an error.
var ErrStop = errors.New("dlq: stop")

// Scan calls fn for every entry matching f, oldest parked first across all
// shards, holding at most PageBudget entries in memory. Entries parked after
// Scan started are not visited. fn may return ErrStop.
func (q *Queue) Scan(ctx context.Context, f Filter, fn func(Item) error) error {
	shards, err := q.shardsFor(f)
	if err != nil || len(shards) == 0 {
		return err
	}
	rdb := q.store.Client()
	// Snapshot of each stream's newest entry: the walk's upper bound.
	pipe := rdb.Pipeline()
	last := make([]*redis.XMessageSliceCmd, len(shards))
	for i, s := range shards {
		last[i] = pipe.XRevRangeN(ctx, q.key(s), "+", "-", 1)
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return fmt.Errorf("dlq: scan: %w", err)
	}
	lo := "-"
	if !f.Since.IsZero() {
		lo = strconv.FormatInt(f.Since.UnixMilli(), 10) + "-0"
	}
	var untilID streamID
	if !f.Until.IsZero() {
		untilID = streamID{ms: uint64(f.Until.UnixMilli()), seq: ^uint64(0)}
	}
	var curs []*cursor
	for i, s := range shards {
		msgs, _ := last[i].Result()
		if len(msgs) == 0 {
			continue
		}
		hi, err := parseID(msgs[0].ID)
		if err != nil {
			return fmt.Errorf("dlq: scan: %w", err)
		}
		if !f.Until.IsZero() && untilID.less(hi) {
			hi = untilID
		}
		curs = append(curs, &cursor{shard: s, key: q.key(s), next: lo, hi: hi.String()})
	}
	if len(curs) == 0 {
		return nil
	}
	page := q.PageBudget / len(curs)
	page = max(8, min(page, 512))
	if err := q.fill(ctx, curs, page); err != nil {
		return err
	}
	h := &cursorHeap{}
	for _, c := range curs {
		if len(c.buf) > 0 {
			h.push(c)
		}
	}
	matched := 0
	for h.len() > 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
		c := h.pop()
		m := c.buf[0]
		c.buf = c.buf[1:]
		if len(c.buf) == 0 && !c.done {
			if err := q.fill(ctx, []*cursor{c}, page); err != nil {
				return err
			}
		}
		if len(c.buf) > 0 {
			h.push(c)
		}
		it := parseItem(q.src, c.shard, m)
		if !f.match(it) {
			continue
		}
		if err := fn(it); err != nil {
			if errors.Is(err, ErrStop) {
				return nil
			}
			return err
		}
		matched++
		if f.Limit > 0 && matched >= f.Limit {
			return nil
		}
	}
	return nil
}

type cursor struct {
	shard    int
	key      string
	next, hi string // next start (inclusive id or "(" exclusive), upper bound
	buf      []redis.XMessage
	head     streamID
	done     bool
}

// fill reads the next page of every cursor given, in one round trip.
func (q *Queue) fill(ctx context.Context, curs []*cursor, page int) error {
	pipe := q.store.Client().Pipeline()
	cmds := make([]*redis.XMessageSliceCmd, len(curs))
	for i, c := range curs {
		cmds[i] = pipe.XRangeN(ctx, c.key, c.next, c.hi, int64(page))
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return fmt.Errorf("dlq: read: %w", err)
	}
	for i, c := range curs {
		msgs, _ := cmds[i].Result()
		c.buf = msgs
		if len(msgs) < page {
			c.done = true
		}
		if len(msgs) > 0 {
			c.next = "(" + msgs[len(msgs)-1].ID
			if msgs[len(msgs)-1].ID == c.hi {
				c.done = true
			}
		}
	}
	return nil
}

// cursorHeap orders cursors by the id of their first buffered entry.
type cursorHeap struct{ cs []*cursor }

func (h *cursorHeap) len() int { return len(h.cs) }

func (h *cursorHeap) push(c *cursor) {
	c.head, _ = parseID(c.buf[0].ID)
	h.cs = append(h.cs, c)
	i := len(h.cs) - 1
	for i > 0 {
		p := (i - 1) / 2
		if !h.cs[i].head.less(h.cs[p].head) {
			break
		}
		h.cs[i], h.cs[p] = h.cs[p], h.cs[i]
		i = p
	}
}

func (h *cursorHeap) pop() *cursor {
	top := h.cs[0]
	n := len(h.cs) - 1
	h.cs[0] = h.cs[n]
	h.cs = h.cs[:n]
	i := 0
	for {
		l, r, m := 2*i+1, 2*i+2, i
		if l < n && h.cs[l].head.less(h.cs[m].head) {
			m = l
		}
		if r < n && h.cs[r].head.less(h.cs[m].head) {
			m = r
		}
		if m == i {
			break
		}
		h.cs[i], h.cs[m] = h.cs[m], h.cs[i]
		i = m
	}
	return top
}

// Get returns the entries with the given ids (see Item.ID; in the DLQ a bare
// stream id is looked up in every shard), oldest first. Unknown or ambiguous
// ids return an *IDError.
func (q *Queue) Get(ctx context.Context, ids []string) ([]Item, error) {
	type probe struct {
		given string
		shard int
		id    string
	}
	var probes []probe
	for _, given := range ids {
		shard, id, err := q.parseGivenID(given)
		if err != nil {
			return nil, err
		}
		if shard == -2 { // bare id in the DLQ: every shard
			for s := 0; s < q.store.Shards(); s++ {
				probes = append(probes, probe{given, s, id})
			}
			continue
		}
		probes = append(probes, probe{given, shard, id})
	}
	pipe := q.store.Client().Pipeline()
	cmds := make([]*redis.XMessageSliceCmd, len(probes))
	for i, p := range probes {
		cmds[i] = pipe.XRange(ctx, q.key(p.shard), p.id, p.id)
	}
	if len(probes) > 0 {
		if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
			return nil, fmt.Errorf("dlq: get: %w", err)
		}
	}
	found := map[string][]Item{}
	for i, p := range probes {
		msgs, _ := cmds[i].Result()
		if len(msgs) == 1 {
			found[p.given] = append(found[p.given], parseItem(q.src, p.shard, msgs[0]))
		}
	}
	ierr := &IDError{Ambiguous: map[string][]string{}}
	seen := map[string]bool{}
	var out []Item
	for _, given := range ids {
		its := found[given]
		switch {
		case len(its) == 0:
			ierr.Unknown = append(ierr.Unknown, given)
		case len(its) > 1:
			for _, it := range its {
				ierr.Ambiguous[given] = append(ierr.Ambiguous[given], it.ID())
			}
		default:
			if !seen[its[0].ID()] {
				seen[its[0].ID()] = true
				out = append(out, its[0])
			}
		}
	}
	if len(ierr.Unknown) > 0 || len(ierr.Ambiguous) > 0 {
		return nil, ierr
	}
	sort.SliceStable(out, func(i, j int) bool {
		a, _ := parseID(out[i].StreamID)
		b, _ := parseID(out[j].StreamID)
		return a.less(b)
	})
	return out, nil
}

// parseGivenID splits "<shard>:<stream id>"; shard -2 means "any shard".
func (q *Queue) parseGivenID(given string) (int, string, error) {
	s := strings.TrimSpace(given)
	if q.src == Quarantine {
		s = strings.TrimPrefix(s, "q:")
		if _, err := parseID(s); err != nil {
			return 0, "", &InvalidIDError{ID: given, Expected: "a quarantine stream id such as 1712345678901-0"}
		}
		return -1, s, nil
	}
	shard := -2
	if a, b, ok := strings.Cut(s, ":"); ok {
		n, err := strconv.Atoi(a)
		if err != nil || n < 0 || n >= q.store.Shards() {
			return 0, "", &InvalidIDError{ID: given, Expected: fmt.Sprintf("<shard>:<stream id> with a shard from 0 to %d, such as 3:1712345678901-0", q.store.Shards()-1)}
		}
		shard, s = n, b
	}
	if _, err := parseID(s); err != nil {
		return 0, "", &InvalidIDError{ID: given, Expected: "<shard>:<stream id> such as 3:1712345678901-0"}
	}
	return shard, s, nil
}

// each calls fn for every entry of a selection, oldest first.
func (q *Queue) each(ctx context.Context, sel Selection, fn func(Item) error) error {
	if len(sel.IDs) > 0 {
		items, err := q.Get(ctx, sel.IDs)
		if err != nil {
			return err
		}
		for _, it := range items {
			if err := fn(it); err != nil {
				if errors.Is(err, ErrStop) {
					return nil
				}
				return err
			}
		}
		return nil
	}
	return q.Scan(ctx, sel.Filter, fn)
}

type streamID struct{ ms, seq uint64 }

func parseID(s string) (streamID, error) {
	a, b, ok := strings.Cut(s, "-")
	ms, err1 := strconv.ParseUint(a, 10, 64)
	var seq uint64
	var err2 error
	if ok {
		seq, err2 = strconv.ParseUint(b, 10, 64)
	}
	if err1 != nil || err2 != nil || !ok {
		return streamID{}, fmt.Errorf("bad stream id %q", s)
	}
	return streamID{ms, seq}, nil
}

func (a streamID) less(b streamID) bool { return a.ms < b.ms || (a.ms == b.ms && a.seq < b.seq) }

func (a streamID) String() string {
	return strconv.FormatUint(a.ms, 10) + "-" + strconv.FormatUint(a.seq, 10)
}
