package bot

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"
)

// State is a conversation's persistent key/value state: small JSON values
// (up to MaxStateValue bytes each), optionally expiring.
//
// Writes are applied together with the message's acknowledgement: a message
// that fails and is retried applied none of its writes, one that succeeded
// is never retried, so every write happens exactly once per message. Reads
// see the message's own writes and those of earlier messages of the same
// conversation, even before they are committed. Because a conversation's
// messages run one at a time, Incr and CompareAndSet are atomic without a
// lock.
type State struct{ c *Context }

// MaxStateValue caps one encoded value.
const MaxStateValue = 64 << 10

// ErrStateTooLarge is returned by writes of values over MaxStateValue.
var ErrStateTooLarge = errors.New("bot: state value larger than 64 KiB; keep large data elsewhere and store a reference")

// keyExpiryField records when the whole hash should expire: "0" once any
// value without a TTL was written (the hash then never expires), else the
// latest expiry in ms. It lets the hash's TTL follow its longest-lived value
// without reading every value.
const keyExpiryField = "\x00exp"

// StateOption modifies a write.
type StateOption func(*stateWrite)

type stateWrite struct{ ttl time.Duration }

// TTL makes a value expire after d.
func TTL(d time.Duration) StateOption { return func(w *stateWrite) { w.ttl = d } }

// encoded values are "<expiry unix ms, 0 = none>|<json>".
func encodeState(v any, exp int64) (string, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return "", fmt.Errorf("bot: state: encode value: %w", err)
	}
	s := strconv.FormatInt(exp, 10) + "|" + string(b)
	if len(s) > MaxStateValue {
		return "", ErrStateTooLarge
	}
	return s, nil
}

func decodeState(raw string) (exp int64, js string, err error) {
	e, j, ok := strings.Cut(raw, "|")
	if !ok {
		return 0, "", errors.New("bot: state: stored value is not in the expected format")
	}
	exp, err = strconv.ParseInt(e, 10, 64)
	if err != nil {
		return 0, "", errors.New("bot: state: stored value has a malformed expiry")
	}
	return exp, j, nil
}

// raw reads a live value: its JSON and expiry (ok false when absent or expired).
func (s *State) raw(name string) (js string, exp int64, ok bool, err error) {
	if s.c.u.State == nil {
		return "", 0, false, errors.New("bot: state: this runtime has no state store")
	}
	v, ok, err := s.c.u.State.Read(s.c, name)
	if err != nil || !ok {
		return "", 0, false, err
	}
	exp, js, err = decodeState(v)
	if err != nil {
		return "", 0, false, err
	}
	if exp > 0 && exp <= time.Now().UnixMilli() {
		return "", 0, false, nil
	}
	return js, exp, true, nil
}

func checkName(name string) error {
	if name == "" || strings.HasPrefix(name, "\x00") {
		return errors.New("bot: state: names must be non-empty and not start with NUL")
	}
	return nil
}

// Get decodes the value name into v; ok is false when there is none.
func (s *State) Get(name string, v any) (ok bool, err error) {
	if err := checkName(name); err != nil {
		return false, err
	}
	js, _, ok, err := s.raw(name)
	if err != nil || !ok {
		return false, err
	}
	if err := json.Unmarshal([]byte(js), v); err != nil {
		return false, fmt.Errorf("bot: state: decode %q: %w", name, err)
	}
	return true, nil
}

// Set stores v (encoded as JSON) under name.
func (s *State) Set(name string, v any, opts ...StateOption) error {
	if err := checkName(name); err != nil {
		return err
	}
	var w stateWrite
	for _, o := range opts {
		o(&w)
	}
	var exp int64
	if w.ttl > 0 {
		exp = time.Now().Add(w.ttl).UnixMilli()
	}
	enc, err := encodeState(v, exp)
	if err != nil {
		return err
	}
	if err := s.keyExpiry(exp); err != nil {
		return err
	}
	s.c.u.State.Write(StateOp{Op: "set", Field: name, Value: enc})
	return nil
}

// keyExpiry keeps the hash's TTL at its longest-lived value's.
func (s *State) keyExpiry(exp int64) error {
	if s.c.u.State == nil {
		return errors.New("bot: state: this runtime has no state store")
	}
	cur, ok, err := s.c.u.State.Read(s.c, keyExpiryField)
	if err != nil {
		return err
	}
	if ok && cur == "0" {
		return nil // some value never expires, so neither does the hash
	}
	if exp == 0 {
		s.c.u.State.Write(StateOp{Op: "persist"})
		s.c.u.State.Write(StateOp{Op: "set", Field: keyExpiryField, Value: "0"})
		return nil
	}
	prev, _ := strconv.ParseInt(cur, 10, 64)
	if ok && prev >= exp {
		return nil
	}
	// The write is applied a few ms from now; a second of slack covers it.
	ttl := time.Until(time.UnixMilli(exp)) + time.Second
	s.c.u.State.Write(StateOp{Op: "set", Field: keyExpiryField, Value: strconv.FormatInt(exp, 10)})
	s.c.u.State.Write(StateOp{Op: "expire", TTL: ttl})
	return nil
}

// Delete removes name.
func (s *State) Delete(name string) error {
	if err := checkName(name); err != nil {
		return err
	}
	if s.c.u.State == nil {
		return errors.New("bot: state: this runtime has no state store")
	}
	s.c.u.State.Write(StateOp{Op: "del", Field: name})
	return nil
}

// Incr adds delta to the integer under name (absent counts as 0) and returns
// the new value; an existing expiry is kept.
func (s *State) Incr(name string, delta int64) (int64, error) {
	if err := checkName(name); err != nil {
		return 0, err
	}
	js, exp, ok, err := s.raw(name)
	if err != nil {
		return 0, err
	}
	var n int64
	if ok {
		if err := json.Unmarshal([]byte(js), &n); err != nil {
			return 0, fmt.Errorf("bot: state: incr %q: the value is not an integer", name)
		}
	}
	n += delta
	enc, err := encodeState(n, exp)
	if err != nil {
		return 0, err
	}
	if !ok {
		if err := s.keyExpiry(exp); err != nil {
			return 0, err
		}
	}
	s.c.u.State.Write(StateOp{Op: "set", Field: name, Value: enc})
	return n, nil
}

// CompareAndSet stores next under name if its current value equals old
// (compared as decoded JSON; a nil old means "absent") and reports whether it
// did.
func (s *State) CompareAndSet(name string, old, next any, opts ...StateOption) (bool, error) {
	if err := checkName(name); err != nil {
		return false, err
	}
	js, _, ok, err := s.raw(name)
	if err != nil {
		return false, err
	}
	if old == nil {
		if ok {
			return false, nil
		}
	} else {
		if !ok {
			return false, nil
		}
		want, err := json.Marshal(old)
		if err != nil {
			return false, fmt.Errorf("bot: state: encode old value: %w", err)
		}
		var a, b any
		if json.Unmarshal([]byte(js), &a) != nil || json.Unmarshal(want, &b) != nil || !reflect.DeepEqual(a, b) {
			return false, nil
		}
	}
	return true, s.Set(name, next, opts...)
}
