package dlqctl

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/signal-client/signal-client/internal/dlq"
)

func parseRate(s string) (float64, error) {
	s = strings.TrimSpace(s)
	if s == "" || s == "0" {
		return 0, nil
	}
	num, unit, _ := strings.Cut(s, "/")
	n, err := strconv.ParseFloat(num, 64)
	per := map[string]float64{"": 1, "s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600}[unit]
	if err != nil || n <= 0 || per == 0 {
		return 0, usagef("--rate %q: expected entries per second such as 100 or 100/s (or 6000/m)", s)
	}
	return n / per, nil
}

// progress shows a run's counts on a terminal, at most five times a second.
type progress struct {
	w     io.Writer
	on    bool
	verb  string
	start time.Time
	last  time.Time
	shown bool
}

func (p *progress) update(r dlq.Result) {
	if !p.on {
		return
	}
	now := time.Now()
	if now.Sub(p.last) < 200*time.Millisecond {
		return
	}
	p.last = now
	rate := float64(r.Done) / now.Sub(p.start).Seconds()
	fmt.Fprintf(p.w, "\r\033[K%s: %d done of %d selected so far (%.0f/s)", p.verb, r.Done, r.Matched, rate)
	p.shown = true
}

func (p *progress) end() {
	if p.shown {
		fmt.Fprint(p.w, "\r\033[K")
	}
}

// mutation runs one audited command: a start record before anything
// changes, an end record with the counts (also when it failed or was
// interrupted). Dry runs change nothing and leave no record.
type mutation struct {
	a         *app
	e         *env
	command   string
	src       dlq.Source
	selection string
	dryRun    bool
	asJSON    bool
	verb      string // "replay" → "replayed" / "would replay"
	past      string
	out       io.Writer // where the summary goes (default stdout)
}

func (m *mutation) run(ctx context.Context, fn func(ctx context.Context, progress func(dlq.Result)) (dlq.Result, error)) error {
	rec := dlq.AuditRecord{Run: dlq.NewRunID(), Who: m.a.who(), Command: m.command, Source: m.src.String(), Selection: m.selection, DryRun: m.dryRun}
	if !m.dryRun {
		rec.Phase = "start"
		if err := dlq.WriteAudit(ctx, m.e.store, m.e.log, rec); err != nil {
			return fmt.Errorf("audit record not written, nothing changed: %w", err)
		}
	}
	p := &progress{w: m.a.io.Stderr, on: m.a.io.Terminal, verb: m.command, start: time.Now()}
	res, err := fn(ctx, p.update)
	p.end()
	if !m.dryRun {
		rec.Phase, rec.At = "end", time.Now()
		rec.Matched, rec.Done, rec.Skipped = res.Matched, res.Done, res.Gone+res.NotReplayable+res.Duplicates
		switch {
		case err == nil:
			rec.Outcome = "ok"
		case ctx.Err() != nil:
			rec.Outcome = "interrupted"
		default:
			rec.Outcome = "failed: " + err.Error()
		}
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		if aerr := dlq.WriteAudit(actx, m.e.store, m.e.log, rec); aerr != nil && err == nil {
			err = fmt.Errorf("%s finished but its audit end record was not written: %w", m.command, aerr)
		}
		cancel()
	}
	m.report(res, err)
	return ctxErr(ctx, err)
}

func (m *mutation) report(res dlq.Result, err error) {
	w := m.out
	if w == nil {
		w = m.a.io.Stdout
	}
	if m.asJSON {
		b, _ := json.Marshal(res)
		fmt.Fprintf(w, "%s\n", b)
	} else if res.Matched > 0 || res.Done > 0 {
		verb := m.past
		if m.dryRun {
			verb = "would " + m.verb
		}
		line := fmt.Sprintf("%s %d %s", verb, res.Done, plural(res.Done, "entry", "entries"))
		if len(res.ByReason) > 0 {
			line += " (" + breakdown(res.ByReason) + ")"
		}
		var notes []string
		if res.Gone > 0 {
			notes = append(notes, fmt.Sprintf("%d already gone (replayed or purged meanwhile)", res.Gone))
		}
		if res.NotReplayable > 0 {
			notes = append(notes, fmt.Sprintf("%d not replayable (no payload; left in the DLQ: purge them)", res.NotReplayable))
		}
		if res.Duplicates > 0 {
			notes = append(notes, fmt.Sprintf("%d already imported or still present (skipped)", res.Duplicates))
		}
		if len(notes) > 0 {
			line += "; " + strings.Join(notes, "; ")
		}
		fmt.Fprintln(w, line)
	}
	if err == nil && res.Matched == 0 {
		fmt.Fprintf(m.a.io.Stderr, "dlqctl: nothing matched; nothing to %s\n", m.verb)
	}
	if err != nil && errors.Is(err, context.Canceled) {
		fmt.Fprintf(m.a.io.Stderr, "dlqctl: interrupted after %d %s; the entries not yet done are untouched: run the same command again to continue\n",
			res.Done, plural(res.Done, "entry", "entries"))
	}
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

func breakdown(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		name := k
		if name == "" {
			name = "no reason"
		}
		parts[i] = fmt.Sprintf("%s %d", name, m[k])
	}
	return strings.Join(parts, ", ")
}

// checkIDs refuses unknown ids before anything is recorded or changed.
func checkIDs(ctx context.Context, q *dlq.Queue, sel dlq.Selection) error {
	if len(sel.IDs) == 0 {
		return nil
	}
	_, err := q.Get(ctx, sel.IDs)
	return err
}

func (a *app) replayCmd() *cobra.Command {
	var f selFlags
	var dryRun, asJSON, yes bool
	var rate string
	c := &cobra.Command{
		Use:   "replay [ID...]",
		Short: "Move entries back to the end of their shard streams (by ids, --all or filters)",
		Long: "replay moves each selected entry back to the end of its shard stream and out of the DLQ in one atomic step,\n" +
			"oldest first: a replay killed at any point neither loses nor duplicates an entry (run it again to continue).\n" +
			"A replayed entry keeps its original id (so sends it already made are not repeated) and gets a fresh attempt\n" +
			"budget. It lands AFTER newer messages of its conversation: replay does not restore the original order.",
		RunE: func(cmd *cobra.Command, args []string) error {
			sel, err := f.selection(args, "replay", time.Now())
			if err != nil {
				return err
			}
			if f.quarantine {
				return dlq.ErrNotReplayable
			}
			r, err := parseRate(rate)
			if err != nil {
				return err
			}
			e, err := a.open(cmd.Context())
			if err != nil {
				return err
			}
			defer e.close()
			q := dlq.New(e.store, dlq.DeadLetters)
			if err := checkIDs(cmd.Context(), q, sel); err != nil {
				return err
			}
			m := &mutation{a: a, e: e, command: "replay", src: dlq.DeadLetters, selection: sel.String(), dryRun: dryRun, asJSON: asJSON, verb: "replay", past: "replayed"}
			return m.run(cmd.Context(), func(ctx context.Context, prog func(dlq.Result)) (dlq.Result, error) {
				return q.Replay(ctx, sel, dlq.Options{DryRun: dryRun, Rate: r, Progress: prog})
			})
		},
	}
	f.bind(c.Flags(), true, 0, "replay at most this many (0 = no limit)")
	c.Flags().BoolVar(&dryRun, "dry-run", false, "count what would be replayed; change nothing")
	c.Flags().StringVar(&rate, "rate", "", "replay at most this many entries per second, e.g. 50 or 50/s (default: no limit)")
	c.Flags().BoolVar(&yes, "yes", false, "accepted for scripts; replay asks for no confirmation (nothing is lost: entries move, atomically)")
	c.Flags().BoolVar(&asJSON, "json", false, "print the counts as JSON")
	return c
}

func (a *app) purgeCmd() *cobra.Command {
	var f selFlags
	var dryRun, yes, asJSON bool
	var rate string
	c := &cobra.Command{
		Use:   "purge [ID...]",
		Short: "Delete entries for good (by ids, --all or filters); needs --yes",
		RunE: func(cmd *cobra.Command, args []string) error {
			sel, err := f.selection(args, "purge", time.Now())
			if err != nil {
				return err
			}
			r, err := parseRate(rate)
			if err != nil {
				return err
			}
			e, err := a.open(cmd.Context())
			if err != nil {
				return err
			}
			defer e.close()
			q := dlq.New(e.store, f.source())
			if err := checkIDs(cmd.Context(), q, sel); err != nil {
				return err
			}
			if !yes && !dryRun {
				res, err := q.Purge(cmd.Context(), sel, dlq.Options{DryRun: true})
				if err != nil {
					return err
				}
				if res.Matched == 0 {
					fmt.Fprintln(a.io.Stderr, "dlqctl: nothing matched; nothing to purge")
					return nil
				}
				return usagef("purge would delete %d %s for good (%s): add --yes to delete them, or export them first (dlqctl export); nothing was changed",
					res.Done, plural(res.Done, "entry", "entries"), breakdown(res.ByReason))
			}
			m := &mutation{a: a, e: e, command: "purge", src: f.source(), selection: sel.String(), dryRun: dryRun, asJSON: asJSON, verb: "purge", past: "purged"}
			return m.run(cmd.Context(), func(ctx context.Context, prog func(dlq.Result)) (dlq.Result, error) {
				return q.Purge(ctx, sel, dlq.Options{DryRun: dryRun, Rate: r, Progress: prog})
			})
		},
	}
	f.bind(c.Flags(), true, 0, "purge at most this many (0 = no limit)")
	c.Flags().BoolVar(&dryRun, "dry-run", false, "count what would be deleted; change nothing")
	c.Flags().BoolVar(&yes, "yes", false, "really delete (required)")
	c.Flags().StringVar(&rate, "rate", "", "delete at most this many entries per second (default: no limit)")
	c.Flags().BoolVar(&asJSON, "json", false, "print the counts as JSON")
	return c
}

func (a *app) exportCmd() *cobra.Command {
	var f selFlags
	var output string
	c := &cobra.Command{
		Use:   "export [ID...]",
		Short: "Write entries as JSON lines (all of them unless ids or filters say otherwise)",
		Long: "export writes one JSON object per line (format signal-client-dlq/1) with every stored field, payloads included:\n" +
			"keep the file as carefully as the DLQ itself. `dlqctl import` reads it back, into this or another deployment.",
		RunE: func(cmd *cobra.Command, args []string) error {
			f.all = len(args) == 0 // no ids: everything the filters leave
			sel, err := f.selection(args, "export", time.Now())
			if err != nil {
				return err
			}
			e, err := a.open(cmd.Context())
			if err != nil {
				return err
			}
			defer e.close()
			w := a.io.Stdout
			var file *os.File
			if output != "" && output != "-" {
				file, err = os.OpenFile(output, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
				if err != nil {
					return usagef("export: %v (choose a new file name: export never overwrites)", err)
				}
				defer file.Close()
				w = file
			}
			q := dlq.New(e.store, f.source())
			if err := checkIDs(cmd.Context(), q, sel); err != nil {
				return err
			}
			m := &mutation{a: a, e: e, command: "export", src: f.source(), selection: sel.String(), verb: "export", past: "exported"}
			if file == nil {
				m.out = a.io.Stderr // stdout carries the records
			}
			err = m.run(cmd.Context(), func(ctx context.Context, _ func(dlq.Result)) (dlq.Result, error) {
				return q.Export(ctx, sel, w)
			})
			if file != nil {
				if cerr := file.Close(); cerr != nil && err == nil {
					err = fmt.Errorf("export: %w", cerr)
				}
			}
			return err
		},
	}
	f.bind(c.Flags(), false, 0, "export at most this many (0 = no limit)")
	c.Flags().StringVarP(&output, "output", "o", "", "write to this new file (mode 0600) instead of stdout")
	return c
}

func (a *app) importCmd() *cobra.Command {
	var quarantine, dryRun, asJSON bool
	var rate string
	c := &cobra.Command{
		Use:   "import [FILE]",
		Short: "Append entries from a JSON-lines export (FILE or stdin); running it twice adds nothing twice",
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 1 {
				return usagef("import reads one file (or stdin); got %d arguments", len(args))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := parseRate(rate)
			if err != nil {
				return err
			}
			in := a.io.Stdin
			name := "stdin"
			if len(args) == 1 && args[0] != "-" {
				f, err := os.Open(args[0])
				if err != nil {
					return usagef("import: %v", err)
				}
				defer f.Close()
				in, name = f, args[0]
			}
			e, err := a.open(cmd.Context())
			if err != nil {
				return err
			}
			defer e.close()
			src := dlq.DeadLetters
			if quarantine {
				src = dlq.Quarantine
			}
			q := dlq.New(e.store, src)
			m := &mutation{a: a, e: e, command: "import", src: src, selection: "file=" + name, dryRun: dryRun, asJSON: asJSON, verb: "import", past: "imported"}
			return m.run(cmd.Context(), func(ctx context.Context, prog func(dlq.Result)) (dlq.Result, error) {
				return q.Import(ctx, in, dlq.Options{DryRun: dryRun, Rate: r, Progress: prog})
			})
		},
	}
	c.Flags().BoolVar(&quarantine, "quarantine", false, "the file holds quarantine records")
	c.Flags().BoolVar(&dryRun, "dry-run", false, "read and check the file; change nothing")
	c.Flags().StringVar(&rate, "rate", "", "import at most this many entries per second (default: no limit)")
	c.Flags().BoolVar(&asJSON, "json", false, "print the counts as JSON")
	return c
}
