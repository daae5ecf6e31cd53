package logging

import (
	"fmt"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// Core wraps core so that every entry it writes is redacted: the message and
// every field, including fields added with With, errors, Stringers, byte
// strings, objects and arrays at any depth, and values logged with zap.Any.
func (r *Redactor) Core(core zapcore.Core) zapcore.Core {
	return &redactCore{Core: core, r: r}
}

type redactCore struct {
	zapcore.Core
	r *Redactor
}

func (c *redactCore) With(fields []zapcore.Field) zapcore.Core {
	return &redactCore{Core: c.Core.With(c.r.Fields(fields)), r: c.r}
}

func (c *redactCore) Check(ent zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.Enabled(ent.Level) {
		return ce.AddCore(ent, c)
	}
	return ce
}

func (c *redactCore) Write(ent zapcore.Entry, fields []zapcore.Field) error {
	ent.Message = c.r.RedactString(ent.Message)
	return c.Core.Write(ent, c.r.Fields(fields))
}

// Fields returns redacted copies of fields.
func (r *Redactor) Fields(fields []zapcore.Field) []zapcore.Field {
	out := make([]zapcore.Field, len(fields))
	for i, f := range fields {
		out[i] = r.Field(f)
	}
	return out
}

// Field returns a redacted copy of one field.
func (r *Redactor) Field(f zapcore.Field) zapcore.Field {
	switch f.Type {
	case zapcore.SkipType, zapcore.NamespaceType:
		return f
	}
	if ContentKey(f.Key) {
		return zap.String(f.Key, Redacted)
	}
	switch f.Type {
	case zapcore.StringType:
		f.String = r.RedactString(f.String)
		return f
	case zapcore.ByteStringType:
		b, _ := f.Interface.([]byte)
		return zap.String(f.Key, r.RedactString(string(b)))
	case zapcore.BinaryType:
		// Opaque bytes may hold anything; their base64 form cannot be
		// scanned for numbers.
		return zap.String(f.Key, "[redacted binary]")
	case zapcore.StringerType:
		return zap.String(f.Key, r.RedactString(safeString(f.Interface)))
	case zapcore.ErrorType:
		return zap.String(f.Key, r.RedactString(safeError(f.Interface)))
	case zapcore.ReflectType:
		if f.Interface == nil {
			return f
		}
		return zap.Reflect(f.Key, r.reflected(f.Interface))
	case zapcore.ObjectMarshalerType:
		m, _ := f.Interface.(zapcore.ObjectMarshaler)
		return zap.Object(f.Key, redactObject{m: m, r: r})
	case zapcore.InlineMarshalerType:
		m, _ := f.Interface.(zapcore.ObjectMarshaler)
		return zap.Inline(redactObject{m: m, r: r})
	case zapcore.ArrayMarshalerType:
		m, _ := f.Interface.(zapcore.ArrayMarshaler)
		return zap.Array(f.Key, redactArray{m: m, r: r})
	}
	return f // numbers, booleans, durations, times
}

// safeString calls String the way zap does: a panicking Stringer (often a nil
// pointer) yields a note instead of killing the log call.
func safeString(v any) (s string) {
	defer func() {
		if p := recover(); p != nil {
			s = fmt.Sprintf("<PANIC=%v>", p)
		}
	}()
	if st, ok := v.(fmt.Stringer); ok {
		return st.String()
	}
	return fmt.Sprint(v)
}

func safeError(v any) (s string) {
	defer func() {
		if p := recover(); p != nil {
			s = fmt.Sprintf("<PANIC=%v>", p)
		}
	}()
	if err, ok := v.(error); ok {
		return err.Error()
	}
	return fmt.Sprint(v)
}

// redactObject marshals the wrapped object through a redacting encoder.
type redactObject struct {
	m zapcore.ObjectMarshaler
	r *Redactor
}

func (o redactObject) MarshalLogObject(enc zapcore.ObjectEncoder) error {
	if o.m == nil {
		return nil
	}
	return o.m.MarshalLogObject(&objectEncoder{ObjectEncoder: enc, r: o.r})
}

type redactArray struct {
	m zapcore.ArrayMarshaler
	r *Redactor
}

func (a redactArray) MarshalLogArray(enc zapcore.ArrayEncoder) error {
	if a.m == nil {
		return nil
	}
	return a.m.MarshalLogArray(&arrayEncoder{ArrayEncoder: enc, r: a.r})
}

// objectEncoder redacts what nested objects add; numbers and the like pass
// through the embedded encoder unchanged.
type objectEncoder struct {
	zapcore.ObjectEncoder
	r *Redactor
}

func (e *objectEncoder) content(key string) bool {
	if ContentKey(key) {
		e.ObjectEncoder.AddString(key, Redacted)
		return true
	}
	return false
}

func (e *objectEncoder) AddString(k, v string) {
	if !e.content(k) {
		e.ObjectEncoder.AddString(k, e.r.RedactString(v))
	}
}

func (e *objectEncoder) AddByteString(k string, v []byte) {
	if !e.content(k) {
		e.ObjectEncoder.AddString(k, e.r.RedactString(string(v)))
	}
}

func (e *objectEncoder) AddBinary(k string, _ []byte) {
	e.ObjectEncoder.AddString(k, "[redacted binary]")
}

func (e *objectEncoder) AddObject(k string, v zapcore.ObjectMarshaler) error {
	if e.content(k) {
		return nil
	}
	return e.ObjectEncoder.AddObject(k, redactObject{m: v, r: e.r})
}

func (e *objectEncoder) AddArray(k string, v zapcore.ArrayMarshaler) error {
	if e.content(k) {
		return nil
	}
	return e.ObjectEncoder.AddArray(k, redactArray{m: v, r: e.r})
}

func (e *objectEncoder) AddReflected(k string, v any) error {
	if e.content(k) {
		return nil
	}
	return e.ObjectEncoder.AddReflected(k, e.r.reflected(v))
}

type arrayEncoder struct {
	zapcore.ArrayEncoder
	r *Redactor
}

func (e *arrayEncoder) AppendString(v string) { e.ArrayEncoder.AppendString(e.r.RedactString(v)) }
func (e *arrayEncoder) AppendByteString(v []byte) {
	e.ArrayEncoder.AppendString(e.r.RedactString(string(v)))
}

func (e *arrayEncoder) AppendObject(v zapcore.ObjectMarshaler) error {
	return e.ArrayEncoder.AppendObject(redactObject{m: v, r: e.r})
}

func (e *arrayEncoder) AppendArray(v zapcore.ArrayMarshaler) error {
	return e.ArrayEncoder.AppendArray(redactArray{m: v, r: e.r})
}

func (e *arrayEncoder) AppendReflected(v any) error {
	return e.ArrayEncoder.AppendReflected(e.r.reflected(v))
}
