package signal

import (
	"encoding/json"
	"reflect"
	"strconv"
)

// Int64 is an int64 that decodes tolerantly: from a JSON integer, from a JSON
// string of decimal digits (optionally with a leading '-'), and from null,
// which leaves the value unchanged (zero in a fresh struct). signal-cli writes
// numbers, but the same fields travel as strings elsewhere in the API (the
// /v2/send response carries its timestamp as a string, §6), and fixtures or
// relays written by hand often quote them. Fractions, exponents, out-of-range
// values and any other JSON type are rejected with a *json.UnmarshalTypeError
// so the decoder can name the field.
//
// It encodes as a plain JSON number.
type Int64 int64

var int64Type = reflect.TypeFor[int64]()

// UnmarshalJSON implements json.Unmarshaler.
func (n *Int64) UnmarshalJSON(b []byte) error {
	if len(b) == 0 {
		return &json.UnmarshalTypeError{Value: "empty", Type: int64Type}
	}
	switch b[0] {
	case 'n': // null: keep the zero value, like encoding/json does for int64
		return nil
	case '"':
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return &json.UnmarshalTypeError{Value: "string", Type: int64Type}
		}
		v, ok := parseDecimal(s)
		if !ok {
			return &json.UnmarshalTypeError{Value: "string that is not an integer", Type: int64Type}
		}
		*n = Int64(v)
		return nil
	case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		v, ok := parseDecimalBytes(b)
		if !ok {
			// Do not echo the literal: error texts end up in logs.
			return &json.UnmarshalTypeError{Value: "number that is not a 64-bit integer", Type: int64Type}
		}
		*n = Int64(v)
		return nil
	case 't', 'f':
		return &json.UnmarshalTypeError{Value: "bool", Type: int64Type}
	case '{':
		return &json.UnmarshalTypeError{Value: "object", Type: int64Type}
	case '[':
		return &json.UnmarshalTypeError{Value: "array", Type: int64Type}
	}
	return &json.UnmarshalTypeError{Value: "invalid value", Type: int64Type}
}

// parseDecimal accepts -?[0-9]+ within the int64 range and nothing else (no
// '+', no spaces, no underscores, which strconv would otherwise allow in
// some forms).
func parseDecimal(s string) (int64, bool) {
	digits := s
	if len(digits) > 0 && digits[0] == '-' {
		digits = digits[1:]
	}
	if digits == "" {
		return 0, false
	}
	for i := 0; i < len(digits); i++ {
		if digits[i] < '0' || digits[i] > '9' {
			return 0, false
		}
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, false
	}
	return v, true
}

// parseDecimalBytes is parseDecimal of string(b) without the conversion (a
// frame has half a dozen numbers; each conversion would allocate) and
// without strconv.
func parseDecimalBytes[T string | []byte](b T) (int64, bool) {
	neg := len(b) > 0 && b[0] == '-'
	digits := b
	if neg {
		digits = b[1:]
	}
	if len(digits) == 0 {
		return 0, false
	}
	var u uint64
	for i := 0; i < len(digits); i++ {
		c := digits[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		if u > (1<<64-1)/10 {
			return 0, false
		}
		u *= 10
		d := uint64(c - '0')
		if u > 1<<64-1-d {
			return 0, false
		}
		u += d
	}
	if neg {
		if u > 1<<63 {
			return 0, false
		}
		return -int64(u), true // -(1<<63) wraps to itself, which is right
	}
	if u > 1<<63-1 {
		return 0, false
	}
	return int64(u), true
}

// Ptr64 returns the value of p, or 0 when p is nil. It keeps call sites that
// read optional numbers (attachment sizes, dimensions) short.
func Ptr64(p *Int64) int64 {
	if p == nil {
		return 0
	}
	return int64(*p)
}
