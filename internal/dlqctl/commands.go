package dlqctl

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/signal-client/signal-client/internal/dlq"
)

// selFlags are the selection flags shared by list, replay, purge and export.
type selFlags struct {
	quarantine   bool
	all          bool
	shards       []int
	reasons      []string
	conversation string
	since, until string
	limit        int
}

func (f *selFlags) bind(fs *pflag.FlagSet, withAll bool, defLimit int, limitHelp string) {
	fs.BoolVar(&f.quarantine, "quarantine", false, "work on the ingester's quarantine of undecodable frames instead of the DLQ")
	if withAll {
		fs.BoolVar(&f.all, "all", false, "select every entry (filters still narrow it)")
	}
	fs.IntSliceVar(&f.shards, "shard", nil, "only these shards (repeat or comma-separate)")
	fs.StringSliceVar(&f.reasons, "reason", nil, "only these reasons: handler_error, panic, timeout, format (quarantine: malformed, oversize, upstream_error, exception)")
	fs.StringVar(&f.conversation, "conversation", "", "only this conversation: its key (u:<uuid>, n:<number>, g:<group id>), the bare id, or the pseudonym list shows (u#...)")
	fs.StringVar(&f.since, "since", "", "only entries parked at or after this time (2026-03-01T12:00:00Z, 2026-03-01) or this long ago (90m, 6h, 2d)")
	fs.StringVar(&f.until, "until", "", "only entries parked at or before this time, or this long ago")
	fs.IntVar(&f.limit, "limit", defLimit, limitHelp)
}

func (f *selFlags) source() dlq.Source {
	if f.quarantine {
		return dlq.Quarantine
	}
	return dlq.DeadLetters
}

func (f *selFlags) filter(now time.Time) (dlq.Filter, error) {
	out := dlq.Filter{Shards: f.shards, Reasons: f.reasons, Conversation: strings.TrimSpace(f.conversation), Limit: f.limit}
	if f.limit < 0 {
		return out, usagef("--limit %d: expected 0 (no limit) or more", f.limit)
	}
	var err error
	if f.since != "" {
		if out.Since, err = parseWhen("--since", f.since, now); err != nil {
			return out, err
		}
	}
	if f.until != "" {
		if out.Until, err = parseWhen("--until", f.until, now); err != nil {
			return out, err
		}
	}
	if !out.Since.IsZero() && !out.Until.IsZero() && out.Until.Before(out.Since) {
		return out, usagef("--until %s is before --since %s", f.until, f.since)
	}
	return out, nil
}

// selection builds a Selection from ids or flags; mutating commands refuse
// an empty one rather than guess "everything".
func (f *selFlags) selection(args []string, verb string, now time.Time) (dlq.Selection, error) {
	flt, err := f.filter(now)
	if err != nil {
		return dlq.Selection{}, err
	}
	sel := dlq.Selection{IDs: args, All: f.all, Filter: flt}
	if len(args) > 0 && (f.all || !flt.IsZero()) {
		return sel, usagef("give either ids or --all/filters to %s, not both", verb)
	}
	if sel.IsEmpty() {
		return sel, usagef("say which entries to %s: give ids, --all, or a filter such as --reason handler_error (see --help)", verb)
	}
	return sel, nil
}

func parseWhen(flag, s string, now time.Time) (time.Time, error) {
	s = strings.TrimSpace(s)
	if strings.HasSuffix(s, "d") {
		if n, err := strconv.ParseFloat(strings.TrimSuffix(s, "d"), 64); err == nil && n >= 0 {
			return now.Add(-time.Duration(n * float64(24*time.Hour))), nil
		}
	}
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	for _, layout := range []string{"2006-01-02T15:04:05", "2006-01-02 15:04:05", "2006-01-02T15:04", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, s, time.UTC); err == nil {
			return t, nil
		}
	}
	return time.Time{}, usagef("%s %q: expected a time such as 2026-03-01T12:00:00Z or 2026-03-01 (UTC), or how long ago such as 90m, 6h or 2d", flag, s)
}

// itemJSON is the --json form of an entry.
type itemJSON struct {
	ID            string  `json:"id"`
	Shard         *int    `json:"shard,omitempty"`
	StreamID      string  `json:"stream_id"`
	ParkedAt      string  `json:"parked_at"`
	Conversation  string  `json:"conversation,omitempty"`
	Kind          string  `json:"kind,omitempty"`
	Reason        string  `json:"reason"`
	Error         string  `json:"error"`
	Attempts      int64   `json:"attempts"`
	FirstFailedAt string  `json:"first_failed_at"`
	LastFailedAt  string  `json:"last_failed_at"`
	SourceID      string  `json:"source_id,omitempty"`
	OriginalID    string  `json:"original_id,omitempty"`
	ReplayCount   int     `json:"replay_count"`
	Process       string  `json:"process,omitempty"`
	PayloadBytes  int     `json:"payload_bytes"`
	Replayable    bool    `json:"replayable"`
	Payload       *string `json:"payload,omitempty"`
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

// conversationShown is the conversation as dlqctl prints it: its pseudonym
// unless --reveal (output is pasted into tickets; ids stay out by default).
func conversationShown(it dlq.Item, reveal bool) string {
	if reveal {
		return it.Conversation
	}
	return dlq.Pseudonym(it.Conversation)
}

func toJSON(it dlq.Item, reveal bool) itemJSON {
	j := itemJSON{ID: it.ID(), StreamID: it.StreamID, ParkedAt: stamp(it.ParkedAt()), Conversation: conversationShown(it, reveal),
		Kind: it.Kind, Reason: it.Reason, Error: it.Error, Attempts: it.Attempts, FirstFailedAt: stamp(it.FirstFailed),
		LastFailedAt: stamp(it.LastFailed), SourceID: it.SourceID, OriginalID: it.OriginalID, ReplayCount: it.ReplayCount,
		Process: it.Process, PayloadBytes: len(it.Payload), Replayable: it.Replayable()}
	if it.Source == dlq.DeadLetters {
		s := it.Shard
		j.Shard = &s
	}
	if reveal {
		p := string(it.Payload)
		j.Payload = &p
	}
	return j
}

// jsonArray streams a JSON array element by element (bounded memory).
type jsonArray struct {
	w     io.Writer
	n     int
	empty bool
}

func (a *jsonArray) add(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	sep := ",\n  "
	if a.n == 0 {
		sep = "[\n  "
	}
	a.n++
	_, err = fmt.Fprintf(a.w, "%s%s", sep, b)
	return err
}

func (a *jsonArray) close() error {
	if a.n == 0 {
		_, err := io.WriteString(a.w, "[]\n")
		return err
	}
	_, err := io.WriteString(a.w, "\n]\n")
	return err
}

func oneLine(s string, max int) string {
	s = strings.Join(strings.Fields(s), " ")
	if utf8.RuneCountInString(s) > max {
		r := []rune(s)
		s = string(r[:max-1]) + "…"
	}
	return s
}

func tableTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format("2006-01-02 15:04:05Z")
}

func (a *app) listCmd() *cobra.Command {
	var f selFlags
	var asJSON, reveal bool
	c := &cobra.Command{
		Use:   "list",
		Short: "List parked entries, oldest parked first (a table, or --json)",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			flt, err := f.filter(time.Now())
			if err != nil {
				return err
			}
			e, err := a.open(cmd.Context())
			if err != nil {
				return err
			}
			defer e.close()
			q := dlq.New(e.store, f.source())
			limit := flt.Limit
			if limit > 0 {
				flt.Limit = limit + 1 // one more, to say whether there are more
			}
			out := a.io.Stdout
			arr := &jsonArray{w: out}
			var tw *tabwriter.Writer
			if !asJSON {
				tw = tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
				if f.quarantine {
					fmt.Fprintln(tw, "ID\tRECEIVED\tREASON\tBYTES\tINGESTER\tDETAIL")
				} else {
					fmt.Fprintln(tw, "ID\tPARKED\tREASON\tATTEMPTS\tREPLAYS\tKIND\tCONVERSATION\tERROR")
				}
			}
			n, more := 0, false
			err = q.Scan(cmd.Context(), flt, func(it dlq.Item) error {
				if limit > 0 && n == limit {
					more = true
					return dlq.ErrStop
				}
				n++
				if asJSON {
					return arr.add(toJSON(it, reveal))
				}
				if f.quarantine {
					_, err := fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\n", it.ID(), tableTime(it.ParkedAt()), it.Reason, it.Size, it.Process, oneLine(it.Error, 60))
					return err
				}
				conv := conversationShown(it, reveal)
				if conv == "" {
					conv = "-"
				}
				_, err := fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%s\t%s\t%s\n", it.ID(), tableTime(it.ParkedAt()), it.Reason, it.Attempts,
					it.ReplayCount, it.Kind, conv, oneLine(it.Error, 60))
				return err
			})
			if err != nil {
				return err
			}
			if asJSON {
				err = arr.close()
			} else if n > 0 {
				err = tw.Flush()
			}
			if err != nil {
				return err
			}
			switch {
			case n == 0:
				fmt.Fprintln(a.io.Stderr, "dlqctl: no entries match")
			case more:
				fmt.Fprintf(a.io.Stderr, "dlqctl: showing the oldest %d matching entries; --limit 0 lists all of them\n", limit)
			}
			return nil
		},
	}
	f.bind(c.Flags(), false, 100, "list at most this many (0 = all)")
	c.Flags().BoolVar(&asJSON, "json", false, "print a JSON array of objects (id, shard, stream_id, conversation, reason, error, attempts, first_failed_at, last_failed_at, ...)")
	c.Flags().BoolVar(&reveal, "reveal", false, "show conversation keys (they contain phone numbers, uuids or group ids) and payloads")
	return c
}

func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usagef("%s takes no arguments (got %q); use the flags to filter", cmd.Name(), args)
	}
	return nil
}

func (a *app) showCmd() *cobra.Command {
	var quarantine, asJSON, reveal bool
	c := &cobra.Command{
		Use:   "show ID...",
		Short: "Show whole entries; the payload is redacted unless --reveal",
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return usagef("show needs at least one id, such as 3:1712345678901-0 (see `dlqctl list`)")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := a.open(cmd.Context())
			if err != nil {
				return err
			}
			defer e.close()
			src := dlq.DeadLetters
			if quarantine {
				src = dlq.Quarantine
			}
			items, err := dlq.New(e.store, src).Get(cmd.Context(), args)
			if err != nil {
				return err
			}
			if asJSON {
				arr := &jsonArray{w: a.io.Stdout}
				for _, it := range items {
					if err := arr.add(toJSON(it, reveal)); err != nil {
						return err
					}
				}
				return arr.close()
			}
			for i, it := range items {
				if i > 0 {
					fmt.Fprintln(a.io.Stdout)
				}
				if err := showItem(a.io.Stdout, it, reveal); err != nil {
					return err
				}
			}
			return nil
		},
	}
	c.Flags().BoolVar(&quarantine, "quarantine", false, "the ids are quarantine ids")
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	c.Flags().BoolVar(&reveal, "reveal", false, "show the payload and the conversation key (they contain message text, numbers and ids)")
	return c
}

func showItem(w io.Writer, it dlq.Item, reveal bool) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	row := func(k, v string) {
		if v != "" {
			fmt.Fprintf(tw, "%s:\t%s\n", k, v)
		}
	}
	row("id", it.ID())
	if it.Source == dlq.DeadLetters {
		row("shard", strconv.Itoa(it.Shard))
	}
	row("stream id", it.StreamID)
	row("parked at", stamp(it.ParkedAt()))
	row("reason", it.Reason)
	row("error", it.Error)
	if it.Source == dlq.DeadLetters {
		row("attempts", strconv.FormatInt(it.Attempts, 10))
		row("first failed at", stamp(it.FirstFailed))
		row("last failed at", stamp(it.LastFailed))
		row("kind", it.Kind)
		row("conversation", conversationShown(it, reveal))
		if it.Timestamp > 0 {
			row("sent at", stamp(time.UnixMilli(it.Timestamp)))
		}
		row("source id", it.SourceID)
		row("original id", it.OriginalID)
		row("replays", strconv.Itoa(it.ReplayCount))
		row("worker", it.Process)
		row("replayable", strconv.FormatBool(it.Replayable()))
	} else {
		row("ingester", it.Process)
		row("size", strconv.Itoa(it.Size))
	}
	if reveal {
		row("payload", string(it.Payload))
	} else {
		row("payload", fmt.Sprintf("<redacted: %d bytes; --reveal shows it>", len(it.Payload)))
	}
	// Other fields a newer version may add, so nothing stored is hidden.
	known := map[string]bool{"m": true, "p": true, "o": true, "rc": true, "src": true, "shard": true, "attempts": true, "err": true, "reason": true,
		"ff": true, "lf": true, "worker": true, "detail": true, "size": true, "ra": true, "ing": true}
	var extra []string
	for k := range it.Fields {
		if !known[k] {
			extra = append(extra, k)
		}
	}
	sort.Strings(extra)
	for _, k := range extra {
		row("field "+k, oneLine(it.Fields[k], 200))
	}
	return tw.Flush()
}

func (a *app) statsCmd() *cobra.Command {
	var quarantine, asJSON bool
	c := &cobra.Command{
		Use:   "stats",
		Short: "Depth of the DLQ by reason and shard, and its oldest entry",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := a.open(cmd.Context())
			if err != nil {
				return err
			}
			defer e.close()
			src := dlq.DeadLetters
			if quarantine {
				src = dlq.Quarantine
			}
			st, err := dlq.New(e.store, src).Stats(cmd.Context())
			if err != nil {
				return err
			}
			now := time.Now()
			if asJSON {
				m := dlq.StatsJSON(st, now)
				m["source"] = src.String()
				m["shards"] = e.store.Shards()
				b, err := json.Marshal(m)
				if err != nil {
					return err
				}
				_, err = fmt.Fprintf(a.io.Stdout, "%s\n", b)
				return err
			}
			return printStats(a.io.Stdout, st, now)
		},
	}
	c.Flags().BoolVar(&quarantine, "quarantine", false, "the quarantine instead of the DLQ")
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON (depth, by_reason, by_shard, oldest)")
	return c
}

func printStats(w io.Writer, st dlq.Stats, now time.Time) error {
	fmt.Fprintf(w, "%s depth: %d\n", st.Source, st.Depth)
	if st.Oldest != nil {
		fmt.Fprintf(w, "oldest: %s, parked %s (%s ago)\n", st.Oldest.ID, tableTime(st.Oldest.ParkedAt), age(now.Sub(st.Oldest.ParkedAt)))
	}
	if len(st.ByReason) > 0 {
		reasons := make([]string, 0, len(st.ByReason))
		for r := range st.ByReason {
			reasons = append(reasons, r)
		}
		sort.Strings(reasons)
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "\nREASON\tENTRIES")
		for _, r := range reasons {
			fmt.Fprintf(tw, "%s\t%d\n", r, st.ByReason[r])
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if len(st.ByShard) > 0 {
		shards := make([]int, 0, len(st.ByShard))
		for s := range st.ByShard {
			shards = append(shards, s)
		}
		sort.Ints(shards)
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "\nSHARD\tENTRIES")
		for _, s := range shards {
			fmt.Fprintf(tw, "%d\t%d\n", s, st.ByShard[s])
		}
		return tw.Flush()
	}
	return nil
}

// age is a duration for people: seconds to days.
func age(d time.Duration) string {
	switch {
	case d < time.Hour:
		return d.Round(time.Second).String()
	case d < 48*time.Hour:
		return d.Round(time.Minute).String()
	}
	days := int(d / (24 * time.Hour))
	return fmt.Sprintf("%dd%dh", days, int((d-time.Duration(days)*24*time.Hour)/time.Hour))
}

func (a *app) auditCmd() *cobra.Command {
	var limit int
	var asJSON bool
	c := &cobra.Command{
		Use:   "audit",
		Short: "Show the audit trail of replay, purge, import and export runs, newest first",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := a.open(cmd.Context())
			if err != nil {
				return err
			}
			defer e.close()
			recs, err := dlq.ReadAudit(cmd.Context(), e.store, limit)
			if err != nil {
				return err
			}
			if asJSON {
				arr := &jsonArray{w: a.io.Stdout}
				for _, r := range recs {
					if err := arr.add(map[string]any{"stream_id": r.StreamID, "run": r.Run, "phase": r.Phase, "at": stamp(r.At), "who": r.Who,
						"command": r.Command, "source": r.Source, "selection": r.Selection, "dry_run": r.DryRun, "matched": r.Matched,
						"done": r.Done, "skipped": r.Skipped, "outcome": r.Outcome}); err != nil {
						return err
					}
				}
				return arr.close()
			}
			tw := tabwriter.NewWriter(a.io.Stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "AT\tRUN\tPHASE\tWHO\tCOMMAND\tSOURCE\tSELECTION\tMATCHED\tDONE\tSKIPPED\tOUTCOME")
			for _, r := range recs {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%d\t%d\t%s\n", tableTime(r.At), r.Run, r.Phase, r.Who, r.Command, r.Source,
					r.Selection, r.Matched, r.Done, r.Skipped, oneLine(r.Outcome, 60))
			}
			return tw.Flush()
		},
	}
	c.Flags().IntVar(&limit, "limit", 50, "show at most this many records")
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}

// ctxErr turns a run's context error into errInterrupted.
func ctxErr(ctx context.Context, err error) error {
	if err != nil && ctx.Err() != nil {
		return fmt.Errorf("%w: %v", errInterrupted, err)
	}
	return err
}
