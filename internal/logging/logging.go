// Package logging builds the zap loggers of every signal-client binary and
// the redacting core that keeps personal data out of them.
//
// With redaction on (the default, LOG_REDACTION_ENABLED=true) no line holds a
// message body, phone number, uuid, group id, attachment name or raw envelope:
// the Python original redacted four top-level keys and leaked the rest (seed
// §5.5, §9 item 15). Redaction rewrites the message and every field at any
// depth; see Redactor for what each kind of data becomes.
package logging

import (
	"fmt"
	"io"
	"os"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// Options configure New.
type Options struct {
	// Level is debug, info, warn or error; "" means info.
	Level string
	// Format is json or console; "" means json.
	Format string
	// Redact wraps the core in the redacting core.
	Redact bool
	// RedactionKey keys the id hashes; empty means a random key per process
	// (hashes then do not match across processes). Ignored when Redactor is
	// set.
	RedactionKey []byte
	// Redactor, when set, is used instead of one built from RedactionKey, so
	// code that logs Hash(id) on purpose shares the logger's key.
	Redactor *Redactor
	// Output receives the lines; nil means os.Stderr.
	Output io.Writer
}

// ParseLevel accepts debug, info, warn and error.
func ParseLevel(s string) (zapcore.Level, error) {
	switch s {
	case "debug":
		return zapcore.DebugLevel, nil
	case "", "info":
		return zapcore.InfoLevel, nil
	case "warn":
		return zapcore.WarnLevel, nil
	case "error":
		return zapcore.ErrorLevel, nil
	}
	return 0, fmt.Errorf("logging: level %q: expected debug, info, warn or error", s)
}

// New builds a logger. Lines carry ts (RFC 3339, UTC), level, logger, caller,
// msg and the fields; errors at error level and above add no stack trace
// (a panic's stack is logged by whoever recovers it).
func New(o Options) (*zap.Logger, error) {
	level, err := ParseLevel(o.Level)
	if err != nil {
		return nil, err
	}
	ec := zapcore.EncoderConfig{
		TimeKey:       "ts",
		LevelKey:      "level",
		NameKey:       "logger",
		CallerKey:     "caller",
		MessageKey:    "msg",
		StacktraceKey: "stacktrace",
		LineEnding:    zapcore.DefaultLineEnding,
		EncodeLevel:   zapcore.LowercaseLevelEncoder,
		EncodeTime: func(t time.Time, enc zapcore.PrimitiveArrayEncoder) {
			enc.AppendString(t.UTC().Format(time.RFC3339Nano))
		},
		EncodeDuration: zapcore.StringDurationEncoder,
		EncodeCaller:   zapcore.ShortCallerEncoder,
	}
	var enc zapcore.Encoder
	switch o.Format {
	case "", "json":
		enc = zapcore.NewJSONEncoder(ec)
	case "console":
		ec.EncodeLevel = zapcore.CapitalLevelEncoder
		enc = zapcore.NewConsoleEncoder(ec)
	default:
		return nil, fmt.Errorf("logging: format %q: expected json or console", o.Format)
	}
	out := o.Output
	if out == nil {
		out = os.Stderr
	}
	core := zapcore.NewCore(enc, zapcore.Lock(zapcore.AddSync(out)), level)
	if o.Redact {
		r := o.Redactor
		if r == nil {
			r = NewRedactor(o.RedactionKey)
		}
		core = r.Core(core)
	}
	return zap.New(core, zap.AddCaller(), zap.ErrorOutput(zapcore.Lock(zapcore.AddSync(os.Stderr)))), nil
}
