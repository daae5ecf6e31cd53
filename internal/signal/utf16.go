package signal

import (
	"errors"
	"fmt"
	"unicode/utf8"
)

// Mention and text-style offsets count UTF-16 code units (§3.3, §6): a
// character outside the Basic Multilingual Plane (most emoji) counts 2, every
// other character 1. Go strings are UTF-8, so offsets must be converted; the
// Python original used code points and mis-placed mentions after emoji (seed
// §9 item 3). An invalid UTF-8 byte counts as one unit, as the U+FFFD it
// decodes to.

// Offset conversion errors.
var (
	// ErrUTF16Range: an offset or length is negative or past the end.
	ErrUTF16Range = errors.New("UTF-16 offset out of range")
	// ErrUTF16Split: an offset falls inside a character (between the two
	// halves of a surrogate pair, or inside a UTF-8 sequence).
	ErrUTF16Split = errors.New("offset falls inside a character")
)

// unitsOf returns how many UTF-16 code units r needs.
func unitsOf(r rune) int {
	if r >= 0x10000 && r <= utf8.MaxRune {
		return 2
	}
	return 1
}

// UTF16Len returns the length of s in UTF-16 code units.
func UTF16Len(s string) int {
	n := 0
	for _, r := range s {
		n += unitsOf(r)
	}
	return n
}

// UTF16ToByteOffset converts a UTF-16 offset in s to a byte offset. An
// offset equal to UTF16Len(s) gives len(s).
func UTF16ToByteOffset(s string, units int) (int, error) {
	if units < 0 {
		return 0, fmt.Errorf("signal: utf16: %w: offset %d is negative", ErrUTF16Range, units)
	}
	u := 0
	for i, r := range s {
		if u == units {
			return i, nil
		}
		u += unitsOf(r)
		if u > units {
			return 0, fmt.Errorf("signal: utf16: %w: UTF-16 offset %d", ErrUTF16Split, units)
		}
	}
	if u == units {
		return len(s), nil
	}
	return 0, fmt.Errorf("signal: utf16: %w: offset %d, text has %d units", ErrUTF16Range, units, u)
}

// ByteToUTF16Offset converts a byte offset in s, which must fall on a
// character boundary, to a UTF-16 offset.
func ByteToUTF16Offset(s string, byteOffset int) (int, error) {
	if byteOffset < 0 || byteOffset > len(s) {
		return 0, fmt.Errorf("signal: utf16: %w: byte offset %d, text has %d bytes", ErrUTF16Range, byteOffset, len(s))
	}
	u := 0
	for i, r := range s {
		if i == byteOffset {
			return u, nil
		}
		if i > byteOffset {
			return 0, fmt.Errorf("signal: utf16: %w: byte offset %d", ErrUTF16Split, byteOffset)
		}
		u += unitsOf(r)
	}
	// byteOffset == len(s), or inside the last character.
	if byteOffset == len(s) {
		return u, nil
	}
	return 0, fmt.Errorf("signal: utf16: %w: byte offset %d", ErrUTF16Split, byteOffset)
}

// SliceUTF16 returns the part of s at UTF-16 offset start with UTF-16 length
// length, as mentions and text styles describe it.
func SliceUTF16(s string, start, length int) (string, error) {
	lo, hi, err := utf16Span(s, start, length)
	if err != nil {
		return "", err
	}
	return s[lo:hi], nil
}

// utf16Span converts a UTF-16 range to byte offsets.
func utf16Span(s string, start, length int) (lo, hi int, err error) {
	if length < 0 {
		return 0, 0, fmt.Errorf("signal: utf16: %w: length %d is negative", ErrUTF16Range, length)
	}
	if start > maxInt-length {
		return 0, 0, fmt.Errorf("signal: utf16: %w: start %d plus length %d overflows", ErrUTF16Range, start, length)
	}
	if lo, err = UTF16ToByteOffset(s, start); err != nil {
		return 0, 0, err
	}
	if hi, err = UTF16ToByteOffset(s, start+length); err != nil {
		return 0, 0, err
	}
	return lo, hi, nil
}

const maxInt = int(^uint(0) >> 1)
