package dlq

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/signal-client/signal-client/internal/streams"
)

// Options tune a replay, purge or import.
type Options struct {
	// DryRun counts what would be done and changes nothing.
	DryRun bool
	// Rate caps the entries changed per second (0 = as fast as Redis goes).
	Rate float64
	// Batch is the most entries sent in one round trip (default 100, and at
	// most a tenth of a second's worth of Rate).
	Batch int
	// Progress, when set, is called after every batch.
	Progress func(Result)
	// OpTimeout bounds one round trip (default 30s).
	OpTimeout time.Duration
}

func (o *Options) defaults() {
	if o.Batch <= 0 {
		o.Batch = 100
	}
	if o.Rate > 0 {
		o.Batch = max(1, min(o.Batch, int(o.Rate/10)))
	}
	if o.OpTimeout <= 0 {
		o.OpTimeout = 30 * time.Second
	}
}

// Result counts what a replay, purge or import did.
type Result struct {
	Matched       int            `json:"matched"`                  // entries selected (read from the file, for an import)
	Done          int            `json:"done"`                     // replayed, purged or imported (in a dry run: would be)
	Gone          int            `json:"gone,omitempty"`           // removed by someone else meanwhile
	NotReplayable int            `json:"not_replayable,omitempty"` // no payload a worker could handle (left parked)
	Duplicates    int            `json:"duplicates,omitempty"`     // import: already imported or still present
	ByShard       map[int]int    `json:"by_shard,omitempty"`       // done, per shard
	ByReason      map[string]int `json:"by_reason,omitempty"`      // done, per reason
	DryRun        bool           `json:"dry_run,omitempty"`
}

func (r *Result) count(it Item) {
	r.Done++
	if r.ByShard == nil {
		r.ByShard, r.ByReason = map[int]int{}, map[string]int{}
	}
	if it.Shard >= 0 {
		r.ByShard[it.Shard]++
	}
	r.ByReason[it.Reason]++
}

// pacer spaces batches so that at most rate entries start per second; a
// batch never exceeds a tenth of a second's worth, so the bound holds at any
// moment, not only on average.
type pacer struct {
	rate  float64
	start time.Time
	sent  int
}

func (p *pacer) wait(ctx context.Context, n int) error {
	if p.rate <= 0 {
		p.sent += n
		return nil
	}
	if p.start.IsZero() {
		p.start = time.Now()
	}
	due := p.start.Add(time.Duration(float64(p.sent) / p.rate * float64(time.Second)))
	if d := time.Until(due); d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
	p.sent += n
	return nil
}

// batcher collects items and flushes them through fn, paced. Redis calls run
// on a context that an interrupt does not cancel, so a batch in flight
// completes and is counted; ctx ends the run between batches.
type batcher struct {
	ctx   context.Context
	opts  Options
	pace  pacer
	items []Item
	res   *Result
	fn    func(ctx context.Context, items []Item) error
}

func (b *batcher) add(it Item) error {
	b.res.Matched++
	if b.opts.DryRun {
		b.res.count(it)
		if b.opts.Progress != nil && b.res.Matched%b.opts.Batch == 0 {
			b.opts.Progress(*b.res)
		}
		return nil
	}
	b.items = append(b.items, it)
	if len(b.items) >= b.opts.Batch {
		return b.flush()
	}
	return nil
}

func (b *batcher) flush() error {
	if len(b.items) == 0 {
		return nil
	}
	if err := b.ctx.Err(); err != nil {
		return err
	}
	if err := b.pace.wait(b.ctx, len(b.items)); err != nil {
		return err
	}
	octx, cancel := context.WithTimeout(context.WithoutCancel(b.ctx), b.opts.OpTimeout)
	defer cancel()
	err := b.fn(octx, b.items)
	b.items = b.items[:0]
	if b.opts.Progress != nil {
		b.opts.Progress(*b.res)
	}
	return err
}

func (q *Queue) run(ctx context.Context, sel Selection, opts Options, fn func(ctx context.Context, items []Item, res *Result) error) (Result, error) {
	opts.defaults()
	res := Result{DryRun: opts.DryRun}
	b := &batcher{ctx: ctx, opts: opts, pace: pacer{rate: opts.Rate}, res: &res}
	b.fn = func(octx context.Context, items []Item) error { return fn(octx, items, &res) }
	err := q.each(ctx, sel, b.add)
	if err == nil {
		err = b.flush()
	}
	if opts.DryRun && opts.Progress != nil {
		opts.Progress(res)
	}
	return res, err
}

// Replay moves the selected entries back to the end of their shard streams,
// oldest first, each in one atomic step (ARCHITECTURE §7.5). When ctx ends
// the entries of the batch in flight are finished and counted, and ctx's
// error is returned with the counts so far.
func (q *Queue) Replay(ctx context.Context, sel Selection, opts Options) (Result, error) {
	if q.src == Quarantine {
		return Result{}, ErrNotReplayable
	}
	return q.run(ctx, sel, opts, func(octx context.Context, items []Item, res *Result) error {
		reqs := make([]streams.ReplayReq, len(items))
		for i, it := range items {
			reqs[i] = streams.ReplayReq{Shard: it.Shard, ID: it.StreamID}
		}
		out, err := q.store.ReplayDLQ(octx, reqs)
		for i, r := range out {
			switch {
			case r.Err != nil:
				if err == nil {
					err = r.Err
				}
			case r.Status == streams.ReplayDone:
				res.count(items[i])
			case r.Status == streams.ReplayGone:
				res.Gone++
			case r.Status == streams.ReplayNotReplayable:
				res.NotReplayable++
			}
		}
		if err != nil {
			return fmt.Errorf("dlq: replay: %w", err)
		}
		return nil
	})
}

// Purge deletes the selected entries.
func (q *Queue) Purge(ctx context.Context, sel Selection, opts Options) (Result, error) {
	return q.run(ctx, sel, opts, func(octx context.Context, items []Item, res *Result) error {
		byShard := map[int][]int{}
		var order []int
		for i, it := range items {
			if _, ok := byShard[it.Shard]; !ok {
				order = append(order, it.Shard)
			}
			byShard[it.Shard] = append(byShard[it.Shard], i)
		}
		pipe := q.store.Client().Pipeline()
		// One XDEL per entry: its reply says whether that entry was still there.
		cmds := make([]interface{ Val() int64 }, len(items))
		for _, s := range order {
			for _, i := range byShard[s] {
				cmds[i] = pipe.XDel(octx, q.key(s), items[i].StreamID)
			}
		}
		if _, err := pipe.Exec(octx); err != nil {
			return fmt.Errorf("dlq: purge: %w", err)
		}
		for i, c := range cmds {
			if c.Val() == 1 {
				res.count(items[i])
			} else {
				res.Gone++
			}
		}
		return nil
	})
}

// ExportFormat names the JSON-lines record format.
const ExportFormat = "signal-client-dlq/1"

// Record is one exported entry (one JSON line).
type Record struct {
	Format   string `json:"format"`
	Source   string `json:"source"` // "dlq" or "quarantine"
	ID       string `json:"id"`
	Shard    *int   `json:"shard,omitempty"`
	StreamID string `json:"stream_id"`
	// Fields holds every stored field whose value is valid UTF-8; the others
	// are in FieldsBase64, so bytes survive the round trip exactly.
	Fields       map[string]string `json:"fields"`
	FieldsBase64 map[string]string `json:"fields_base64,omitempty"`
}

func recordOf(it Item) Record {
	r := Record{Format: ExportFormat, Source: it.Source.String(), ID: it.ID(), StreamID: it.StreamID, Fields: map[string]string{}}
	if it.Source == DeadLetters {
		s := it.Shard
		r.Shard = &s
	}
	for k, v := range it.Fields {
		if utf8.ValidString(v) {
			r.Fields[k] = v
		} else {
			if r.FieldsBase64 == nil {
				r.FieldsBase64 = map[string]string{}
			}
			r.FieldsBase64[k] = base64.StdEncoding.EncodeToString([]byte(v))
		}
	}
	return r
}

// Export writes the selected entries as JSON lines, oldest first. The lines
// hold the payloads: keep the file as carefully as the DLQ itself.
func (q *Queue) Export(ctx context.Context, sel Selection, w io.Writer) (Result, error) {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	res := Result{}
	err := q.each(ctx, sel, func(it Item) error {
		res.Matched++
		if err := enc.Encode(recordOf(it)); err != nil {
			return fmt.Errorf("dlq: export: %w", err)
		}
		res.count(it)
		return nil
	})
	return res, err
}

// ImportMarkerTTL is how long an imported record is remembered, so running
// the same import twice (or again after a crash) adds nothing twice.
const ImportMarkerTTL = 24 * time.Hour

// LineError is a malformed import line; the lines before it were imported.
type LineError struct {
	Line int
	Err  error
}

func (e *LineError) Error() string {
	return fmt.Sprintf("dlq: import: record %d: %v (the records before it were imported; fix the file and run the import again: records already imported are skipped)", e.Line, e.Err)
}

func (e *LineError) Unwrap() error { return e.Err }

// Import reads JSON lines written by Export and appends every record to this
// queue, in file order. A DLQ record goes to the shard its conversation maps
// to in this deployment (so entries can move between clusters with other
// shard counts). Records imported before (within ImportMarkerTTL) or still
// present under their exported id are counted as duplicates, not added.
func (q *Queue) Import(ctx context.Context, r io.Reader, opts Options) (Result, error) {
	opts.defaults()
	res := Result{DryRun: opts.DryRun}
	dec := json.NewDecoder(r)
	var reqs []streams.ImportReq
	var items []Item
	pace := pacer{rate: opts.Rate}
	flush := func() error {
		if len(reqs) == 0 {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := pace.wait(ctx, len(reqs)); err != nil {
			return err
		}
		octx, cancel := context.WithTimeout(context.WithoutCancel(ctx), opts.OpTimeout)
		defer cancel()
		out, err := q.store.ImportEntries(octx, reqs, ImportMarkerTTL)
		for i, o := range out {
			switch {
			case o.Err != nil:
				if err == nil {
					err = o.Err
				}
			case o.Status == streams.ImportAdded:
				res.count(items[i])
			default:
				res.Duplicates++
			}
		}
		reqs, items = reqs[:0], items[:0]
		if opts.Progress != nil {
			opts.Progress(res)
		}
		if err != nil {
			return fmt.Errorf("dlq: import: %w", err)
		}
		return nil
	}
	for line := 1; ; line++ {
		var rec Record
		var req streams.ImportReq
		var it Item
		err := dec.Decode(&rec)
		if errors.Is(err, io.EOF) {
			break
		}
		if err == nil {
			req, it, err = q.importReq(rec)
		}
		if err != nil {
			// What came before the bad record goes in, as the message says.
			if ferr := flush(); ferr != nil {
				return res, ferr
			}
			return res, &LineError{Line: line, Err: err}
		}
		res.Matched++
		if opts.DryRun {
			res.count(it)
			continue
		}
		reqs = append(reqs, req)
		items = append(items, it)
		if len(reqs) >= opts.Batch {
			if err := flush(); err != nil {
				return res, err
			}
		}
	}
	if err := flush(); err != nil {
		return res, err
	}
	if opts.DryRun && opts.Progress != nil {
		opts.Progress(res)
	}
	return res, nil
}

func (q *Queue) importReq(rec Record) (streams.ImportReq, Item, error) {
	if rec.Format != ExportFormat {
		return streams.ImportReq{}, Item{}, fmt.Errorf("format %q: expected %q (a line written by `dlqctl export`)", rec.Format, ExportFormat)
	}
	if rec.Source != q.src.String() {
		hint := "import it without --quarantine"
		if rec.Source == Quarantine.String() {
			hint = "import it with --quarantine"
		}
		return streams.ImportReq{}, Item{}, fmt.Errorf("a %s record cannot go into the %s: %s", rec.Source, q.src, hint)
	}
	fields := map[string]string{}
	for k, v := range rec.Fields {
		fields[k] = v
	}
	for k, v := range rec.FieldsBase64 {
		b, err := base64.StdEncoding.DecodeString(v)
		if err != nil {
			return streams.ImportReq{}, Item{}, fmt.Errorf("field %s: %w", k, err)
		}
		fields[k] = string(b)
	}
	if len(fields) == 0 {
		return streams.ImportReq{}, Item{}, errors.New("the record has no fields")
	}
	digest := rec.Source + "|" + rec.ID + "|" + fields[streams.FieldOriginalID] + "|" + fields["ra"] + "|" + fields[streams.DLQFieldLast]
	req := streams.ImportReq{Shard: -1, Digest: digest}
	if q.src == DeadLetters {
		conv := streams.ConversationOf(map[string]any{streams.FieldMeta: fields[streams.FieldMeta]})
		shard := 0
		switch {
		case conv != "":
			shard = streams.ShardOf(conv, q.store.Shards())
		case rec.Shard != nil && *rec.Shard >= 0:
			shard = *rec.Shard % q.store.Shards()
		}
		fields[streams.DLQFieldShard] = strconv.Itoa(shard)
		req.Shard = shard
		if rec.Shard != nil && *rec.Shard == shard {
			req.ProbeID, req.ProbeField, req.ProbeValue = rec.StreamID, streams.FieldOriginalID, fields[streams.FieldOriginalID]
		}
	} else {
		req.ProbeID, req.ProbeField, req.ProbeValue = rec.StreamID, "ra", fields["ra"]
	}
	// A stable field order: routing fields first, then the rest sorted.
	names := make([]string, 0, len(fields))
	for k := range fields {
		if k != streams.FieldMeta && k != streams.FieldPayload {
			names = append(names, k)
		}
	}
	sort.Strings(names)
	for _, k := range []string{streams.FieldPayload, streams.FieldMeta} {
		if _, ok := fields[k]; ok {
			names = append([]string{k}, names...)
		}
	}
	for _, k := range names {
		req.Fields = append(req.Fields, k, fields[k])
	}
	it := Item{Source: q.src, Shard: req.Shard, StreamID: rec.StreamID, Reason: fields[streams.DLQFieldReason]}
	return req, it, nil
}
