package dlq

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/user"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/signal-client/signal-client/internal/streams"
)

// AuditRecord is one entry of the audit trail P:{A}:audit. A mutating run
// writes a "start" record before it changes anything and an "end" record
// with the counts, joined by Run: a start without an end is a run that was
// killed (its counts are then in the DLQ and the streams, not here).
type AuditRecord struct {
	StreamID  string // set when read back
	Run       string
	Phase     string // "start" or "end"
	At        time.Time
	Who       string // user@host of the operator (or --actor)
	Command   string // replay, purge, import
	Source    string // dlq or quarantine
	Selection string // what was selected, without identifiers of people
	DryRun    bool
	Matched   int
	Done      int
	Skipped   int
	Outcome   string // "ok", "interrupted", or the error
}

// NewRunID returns a random id joining a run's audit records.
func NewRunID() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Actor is who runs this process, for audit records: $SUDO_USER or the
// login name, at the host name.
func Actor() string {
	name := os.Getenv("SUDO_USER")
	if name == "" {
		if u, err := user.Current(); err == nil {
			name = u.Username
		}
	}
	if name == "" {
		name = os.Getenv("USER")
	}
	if name == "" {
		name = "uid" + strconv.Itoa(os.Getuid())
	}
	host, _ := os.Hostname()
	return name + "@" + host
}

func (r AuditRecord) fields() []any {
	return []any{"run", r.Run, "phase", r.Phase, "at", strconv.FormatInt(r.At.UnixMilli(), 10), "who", r.Who,
		"cmd", r.Command, "source", r.Source, "selection", r.Selection, "dry_run", strconv.FormatBool(r.DryRun),
		"matched", r.Matched, "done", r.Done, "skipped", r.Skipped, "outcome", r.Outcome}
}

// WriteAudit appends rec to the audit stream and logs it (one line, the
// same fields) on log.
func WriteAudit(ctx context.Context, store *streams.Store, log *zap.Logger, rec AuditRecord) error {
	if rec.At.IsZero() {
		rec.At = time.Now()
	}
	if log != nil {
		log.Info("dlqctl audit", zap.String("run", rec.Run), zap.String("phase", rec.Phase), zap.String("who", rec.Who),
			zap.String("cmd", rec.Command), zap.String("source", rec.Source), zap.String("selection", rec.Selection),
			zap.Bool("dry_run", rec.DryRun), zap.Int("matched", rec.Matched), zap.Int("done", rec.Done),
			zap.Int("skipped", rec.Skipped), zap.String("outcome", rec.Outcome))
	}
	if _, err := store.AppendAudit(ctx, rec.fields()); err != nil {
		return fmt.Errorf("dlq: %w", err)
	}
	return nil
}

// ReadAudit returns up to limit audit records, newest first.
func ReadAudit(ctx context.Context, store *streams.Store, limit int) ([]AuditRecord, error) {
	if limit <= 0 {
		limit = 50
	}
	msgs, err := store.Client().XRevRangeN(ctx, store.Keys().Audit(), "+", "-", int64(limit)).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("dlq: read audit: %w", err)
	}
	out := make([]AuditRecord, 0, len(msgs))
	for _, m := range msgs {
		s := func(k string) string { v, _ := m.Values[k].(string); return v }
		n := func(k string) int { v, _ := strconv.Atoi(s(k)); return v }
		at, _ := strconv.ParseInt(s("at"), 10, 64)
		out = append(out, AuditRecord{StreamID: m.ID, Run: s("run"), Phase: s("phase"), At: time.UnixMilli(at), Who: s("who"),
			Command: s("cmd"), Source: s("source"), Selection: s("selection"), DryRun: s("dry_run") == "true",
			Matched: n("matched"), Done: n("done"), Skipped: n("skipped"), Outcome: s("outcome")})
	}
	return out, nil
}
