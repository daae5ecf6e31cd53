package signal

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	gojson "github.com/goccy/go-json"
	"strings"
	"unicode/utf8"
)

// Decoding errors. Every error returned by Decode, DecodeBatch and
// DecodeWebhook wraps exactly one of them (test with errors.Is). Their texts,
// and the details added around them, never quote frame content, so they are
// safe to log.
var (
	// ErrEmpty: the frame has no bytes or only whitespace.
	ErrEmpty = errors.New("frame is empty")
	// ErrTooLarge: the frame is over Decoder.MaxFrameBytes.
	ErrTooLarge = errors.New("frame is larger than the configured limit")
	// ErrInvalidUTF8: the bytes are not UTF-8. signal-cli always writes UTF-8
	// and websocket text frames must be UTF-8, so the frame was corrupted on
	// the way.
	ErrInvalidUTF8 = errors.New("frame is not valid UTF-8")
	// ErrNotJSON: the bytes are not one complete JSON value (for example a
	// frame cut short, or log text mixed into a poll-mode body, §2.1).
	ErrNotJSON = errors.New("frame is not valid JSON")
	// ErrNotObject: valid JSON, but not an object.
	ErrNotObject = errors.New("frame is not a JSON object")
	// ErrBadField: a known field has a JSON type this model cannot hold
	// (for example a string where an object belongs).
	ErrBadField = errors.New("frame has a field of the wrong JSON type")
	// ErrNotArray: a poll-mode body is not a JSON array.
	ErrNotArray = errors.New("poll body is not a JSON array")
	// ErrNotReceive: a webhook body is not a JSON-RPC "receive" notification.
	ErrNotReceive = errors.New("webhook body is not a receive notification")
	// ErrNoParams: a webhook receive notification has no params.
	ErrNoParams = errors.New("webhook receive notification has no params")
)

// FrameType says which of the three frame shapes a Frame is.
type FrameType string

// Frame shapes.
const (
	// FrameWrapper is signal-cli's wrapper object with an envelope, an
	// exception, or both (§3.1).
	FrameWrapper FrameType = "wrapper"
	// FrameError is the {"error":"..."} frame the REST process sends to every
	// socket when the daemon reports a JSON-RPC error (§2.2).
	FrameError FrameType = "error"
	// FrameUnknown is a JSON object with none of the keys envelope,
	// exception or error. It is kept, not rejected, so that a new
	// signal-cli shape is counted and stored instead of lost.
	FrameUnknown FrameType = "unknown"
)

// Frame is one decoded frame. Its methods accept a nil receiver and then
// behave as for an unknown frame.
type Frame struct {
	// Raw holds the frame's bytes exactly as received (a copy, so the
	// caller may reuse its buffer). For a batch element or webhook params it
	// is that value's bytes as they appear in the body, which for a given
	// event are the same bytes a websocket frame carries.
	Raw []byte
	// Type is the frame's shape.
	Type FrameType
	// Account is the receiving account (the bot's number); set on wrappers.
	Account string
	// Envelope is nil for error and unknown frames, and for a wrapper that
	// carries only an exception.
	Envelope *Envelope
	// Exception is set when signal-cli failed to process the envelope.
	Exception *Exception
	// ErrorMessage is the text of an error frame. A non-string "error"
	// value is kept as its JSON text.
	ErrorMessage string
}

// wireFrame is the union of the top-level keys of every frame shape.
type wireFrame struct {
	Account   string          `json:"account"`
	Envelope  *Envelope       `json:"envelope"`
	Exception *Exception      `json:"exception"`
	Error     json.RawMessage `json:"error"`
}

// Decoder decodes frames with limits. The zero value has no limits; the
// package-level functions use it.
type Decoder struct {
	// MaxFrameBytes rejects a frame (a websocket frame, a batch element or
	// webhook params) longer than this with ErrTooLarge; 0 means no limit.
	// Bound whole request bodies at the transport (websocket read limit,
	// http.MaxBytesReader): this check runs after they are in memory.
	MaxFrameBytes int
	// ShareRaw makes Frame.Raw, and the frame's strings where it can, parts
	// of the input itself instead of a copy, for a caller that never changes
	// the input while it or anything it hands on uses the frame (the
	// ingester, which appends those very bytes; the worker, whose payload is
	// a read-only view of the Redis reply).
	ShareRaw bool
}

// Decode decodes one websocket text frame with no size limit.
func Decode(raw []byte) (*Frame, error) { return Decoder{}.Decode(raw) }

// DecodeBatch decodes a poll-mode body with no size limit; see
// Decoder.DecodeBatch.
func DecodeBatch(raw []byte) ([]*Frame, error) { return Decoder{}.DecodeBatch(raw) }

// DecodeWebhook decodes a webhook body with no size limit; see
// Decoder.DecodeWebhook.
func DecodeWebhook(raw []byte) (*Frame, error) { return Decoder{}.DecodeWebhook(raw) }

// Decode decodes one websocket text frame (§2.2): a wrapper, an error frame,
// or an unrecognised object. It returns an error wrapping one of ErrEmpty,
// ErrTooLarge, ErrInvalidUTF8, ErrNotJSON, ErrNotObject or ErrBadField; a
// caller that must not lose the frame can then store the raw bytes under
// RawDigest. Decode never panics.
func (d Decoder) Decode(raw []byte) (*Frame, error) {
	f, err := d.decode(raw)
	if err != nil {
		return nil, fmt.Errorf("signal: decode: %w", err)
	}
	return f, nil
}

// DecodeScoped decodes raw like Decode and passes the frame to fn. The frame
// and its parts are valid only until fn returns: their memory is reused for
// a later frame. Strings read from the frame stay valid (they are parts of
// raw, or of its one copy); pointers into it, and the frame, do not. It is
// for callers that read a few fields of every frame and keep none of it
// (the ingester): the common frame then costs no allocation of its own.
func (d Decoder) DecodeScoped(raw []byte, fn func(*Frame)) error {
	if err := d.check(raw); err != nil {
		return fmt.Errorf("signal: decode: %w", err)
	}
	blk := blockPool.Get().(*subsetBlock)
	defer func() {
		*blk = subsetBlock{}
		blockPool.Put(blk)
	}()
	if f, ok := decodeSubsetInto(blk, raw, d.ShareRaw); ok {
		d.finishSubset(f, raw)
		fn(f)
		return nil
	}
	f, err := d.decodeFull(raw)
	if err != nil {
		return fmt.Errorf("signal: decode: %w", err)
	}
	fn(f)
	return nil
}

func (d Decoder) decode(raw []byte) (*Frame, error) {
	if err := d.check(raw); err != nil {
		return nil, err
	}
	if f, ok := decodeSubset(raw, d.ShareRaw); ok {
		d.finishSubset(f, raw)
		return f, nil
	}
	return d.decodeFull(raw)
}

// check refuses what no decoder may read: empty, oversize, not UTF-8.
func (d Decoder) check(raw []byte) error {
	if len(bytes.TrimSpace(raw)) == 0 {
		return ErrEmpty
	}
	if d.MaxFrameBytes > 0 && len(raw) > d.MaxFrameBytes {
		return fmt.Errorf("%w: %d bytes, limit %d; raise the frame limit if signal-cli legitimately sends frames this large",
			ErrTooLarge, len(raw), d.MaxFrameBytes)
	}
	if !utf8.Valid(raw) {
		return ErrInvalidUTF8
	}
	return nil
}

// finishSubset completes a frame of the common shape, decoded exactly as
// decodeFull would (subset.go).
func (d Decoder) finishSubset(f *Frame, raw []byte) {
	f.Raw = raw
	if !d.ShareRaw {
		f.Raw = bytes.Clone(raw)
	}
}

// decodeFull decodes a checked frame of any shape.
func (d Decoder) decodeFull(raw []byte) (*Frame, error) {
	var w wireFrame
	// goccy/go-json decodes this model 4–5× faster than encoding/json
	// (BenchmarkDecodeFast); encoding/json stays the reference: it decodes
	// again whatever goccy refuses, so errors and their texts are its own,
	// and FuzzDecode checks that both accept the same frames identically.
	if gojson.Unmarshal(raw, &w) != nil {
		w = wireFrame{}
		err := json.Unmarshal(raw, &w)
		if err := classifyJSONError(raw, err); err != nil {
			return nil, err
		}
	} else if t := jsonTypeOf(raw); t != "object" {
		return nil, fmt.Errorf("%w: got a JSON %s", ErrNotObject, t)
	}
	if !d.ShareRaw {
		raw = bytes.Clone(raw)
	}
	f := &Frame{
		Raw:       raw,
		Account:   w.Account,
		Envelope:  w.Envelope,
		Exception: w.Exception,
	}
	switch {
	case w.Envelope != nil || w.Exception != nil:
		f.Type = FrameWrapper
		normalizeEnvelope(w.Envelope)
	case len(w.Error) > 0 && string(w.Error) != "null":
		f.Type = FrameError
		var s string
		if json.Unmarshal(w.Error, &s) == nil {
			f.ErrorMessage = s
		} else {
			f.ErrorMessage = string(w.Error)
		}
	default:
		f.Type = FrameUnknown
	}
	return f, nil
}

// classifyJSONError turns the result of unmarshalling raw into a JSON object
// target into one of the package's errors, or nil.
func classifyJSONError(raw []byte, err error) error {
	var syn *json.SyntaxError
	if errors.As(err, &syn) {
		// The scanner's text names at most one offending character.
		return fmt.Errorf("%w: %s at byte %d of %d", ErrNotJSON, syn.Error(), syn.Offset, len(raw))
	}
	// The input is syntactically valid JSON from here on (encoding/json
	// checks validity before decoding), so its first byte names its type.
	if t := jsonTypeOf(raw); t != "object" {
		return fmt.Errorf("%w: got a JSON %s", ErrNotObject, t)
	}
	if err == nil {
		return nil
	}
	var typ *json.UnmarshalTypeError
	if errors.As(err, &typ) {
		field := typ.Field
		if field == "" {
			field = "(top level)"
		}
		return fmt.Errorf("%w: field %s holds a JSON %s where %s belongs; the sender is not signal-cli or its format changed, keep the raw frame and report its shape",
			ErrBadField, field, typ.Value, typ.Type)
	}
	// Other errors come from json.Number and similar leaf decoders; their
	// texts can quote content, so they are not passed on.
	return fmt.Errorf("%w: a numeric field holds a value that is not a number", ErrBadField)
}

// jsonTypeOf names the type of a syntactically valid JSON value.
func jsonTypeOf(raw []byte) string {
	b := bytes.TrimLeft(raw, " \t\r\n")
	if len(b) == 0 {
		return "nothing"
	}
	switch b[0] {
	case '{':
		return "object"
	case '[':
		return "array"
	case '"':
		return "string"
	case 't', 'f':
		return "boolean"
	case 'n':
		return "null"
	default:
		return "number"
	}
}

// normalizeEnvelope fixes up what encoding/json cannot express with tags:
// a JSON null in a json.RawMessage field arrives as the bytes "null".
func normalizeEnvelope(e *Envelope) {
	if e == nil {
		return
	}
	normalizeData(e.DataMessage)
	if e.EditMessage != nil {
		normalizeData(e.EditMessage.DataMessage)
	}
	if s := e.SyncMessage; s != nil && s.SentMessage != nil {
		normalizeData(&s.SentMessage.DataMessage)
		if s.SentMessage.EditMessage != nil {
			normalizeData(s.SentMessage.EditMessage.DataMessage)
		}
	}
}

func normalizeData(d *DataMessage) {
	if d != nil && string(d.Contacts) == "null" {
		d.Contacts = nil
	}
}

// BatchError reports the elements of a poll-mode body that failed to
// decode. The elements that decoded are still returned beside it.
type BatchError struct {
	// Total is the number of elements in the body.
	Total int
	// Failures lists the elements that failed, in body order.
	Failures []BatchFailure
}

// BatchFailure is one element of a poll-mode body that failed to decode.
type BatchFailure struct {
	// Index is the element's position in the array.
	Index int
	// Raw is the element's bytes, for RawDigest or a dead-letter store.
	Raw []byte
	// Err wraps one of the package's decoding errors.
	Err error
}

// Error implements error.
func (e *BatchError) Error() string {
	if len(e.Failures) == 0 {
		return "signal: decode batch: no failures"
	}
	first := e.Failures[0]
	return fmt.Sprintf("signal: decode batch: %d of %d elements failed; first at index %d: %v",
		len(e.Failures), e.Total, first.Index, first.Err)
}

// Unwrap lets errors.Is see every element's error.
func (e *BatchError) Unwrap() []error {
	errs := make([]error, len(e.Failures))
	for i, f := range e.Failures {
		errs[i] = f.Err
	}
	return errs
}

// DecodeBatch decodes a poll-mode body (GET /v1/receive, §2.1): a JSON array
// of wrapper objects, "[]" when there is nothing. If the body itself is not
// a JSON array it returns nil and an error wrapping ErrEmpty, ErrInvalidUTF8,
// ErrNotJSON or ErrNotArray. Otherwise it returns every element that decoded,
// in order, and, if some did not, a *BatchError listing them, so one bad
// element never costs the others: handle the frames first, then the error.
func (d Decoder) DecodeBatch(raw []byte) ([]*Frame, error) {
	if len(bytes.TrimSpace(raw)) == 0 {
		return nil, fmt.Errorf("signal: decode batch: %w", ErrEmpty)
	}
	if !utf8.Valid(raw) {
		return nil, fmt.Errorf("signal: decode batch: %w", ErrInvalidUTF8)
	}
	var elems []json.RawMessage
	err := json.Unmarshal(raw, &elems)
	var syn *json.SyntaxError
	if errors.As(err, &syn) {
		return nil, fmt.Errorf("signal: decode batch: %w: %s at byte %d of %d", ErrNotJSON, syn.Error(), syn.Offset, len(raw))
	}
	if t := jsonTypeOf(raw); t != "array" {
		hint := ""
		if t == "object" {
			hint = "; decode a single frame with Decode"
		}
		return nil, fmt.Errorf("signal: decode batch: %w: got a JSON %s%s", ErrNotArray, t, hint)
	}
	if err != nil { // cannot happen for a valid array into []RawMessage
		return nil, fmt.Errorf("signal: decode batch: %w: %v", ErrNotJSON, err)
	}
	frames := make([]*Frame, 0, len(elems))
	var be *BatchError
	for i, el := range elems {
		f, err := d.decode(el)
		if err != nil {
			if be == nil {
				be = &BatchError{Total: len(elems)}
			}
			be.Failures = append(be.Failures, BatchFailure{
				Index: i,
				Raw:   el,
				Err:   fmt.Errorf("signal: decode batch element %d: %w", i, err),
			})
			continue
		}
		frames = append(frames, f)
	}
	if be != nil {
		return frames, be
	}
	return frames, nil
}

// webhookBody is a JSON-RPC notification as posted by RECEIVE_WEBHOOK_URL.
type webhookBody struct {
	Method string          `json:"method"`
	Params json.RawMessage `json:"params"`
}

// DecodeWebhook decodes a RECEIVE_WEBHOOK_URL body (§2.4): the JSON-RPC
// notification {"jsonrpc":"2.0","method":"receive","params":<wrapper>} with
// a trailing newline. The params are decoded as by Decode, and Frame.Raw is
// the params' bytes, so the same event stores the same bytes whichever
// transport brought it. Besides Decode's errors it returns ErrNotReceive
// (method missing or not "receive") and ErrNoParams.
func (d Decoder) DecodeWebhook(raw []byte) (*Frame, error) {
	if len(bytes.TrimSpace(raw)) == 0 {
		return nil, fmt.Errorf("signal: decode webhook: %w", ErrEmpty)
	}
	if !utf8.Valid(raw) {
		return nil, fmt.Errorf("signal: decode webhook: %w", ErrInvalidUTF8)
	}
	var w webhookBody
	if err := classifyJSONError(raw, json.Unmarshal(raw, &w)); err != nil {
		if errors.Is(err, ErrBadField) {
			err = fmt.Errorf("%w: its method is not a JSON string", ErrNotReceive)
		}
		return nil, fmt.Errorf("signal: decode webhook: %w", err)
	}
	if w.Method != "receive" {
		what := "has no method"
		if w.Method != "" {
			what = fmt.Sprintf("has method %q", truncate(w.Method, 40))
		}
		return nil, fmt.Errorf("signal: decode webhook: %w: the body %s; point RECEIVE_WEBHOOK_URL only at this endpoint", ErrNotReceive, what)
	}
	if len(w.Params) == 0 || string(w.Params) == "null" {
		return nil, fmt.Errorf("signal: decode webhook: %w", ErrNoParams)
	}
	f, err := d.decode(w.Params)
	if err != nil {
		return nil, fmt.Errorf("signal: decode webhook params: %w", err)
	}
	return f, nil
}

// truncate shortens s to at most n bytes without splitting a rune.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[:n]
	for len(s) > 0 && !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return strings.TrimSpace(s) + "..."
}
