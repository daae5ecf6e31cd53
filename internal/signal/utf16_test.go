package signal

import (
	"errors"
	"testing"
	"unicode/utf16"
)

func TestUTF16Len(t *testing.T) {
	tests := []struct {
		s    string
		want int
	}{
		{"", 0},
		{"abc", 3},
		{"é", 1},      // 2 UTF-8 bytes, 1 unit
		{"€", 1},      // 3 bytes, 1 unit
		{"👍", 2},      // astral: surrogate pair
		{"👍🏽", 4},     // emoji + skin tone modifier, both astral
		{"\uFFFC", 1}, // the mention placeholder
		{"a\xffb", 3}, // an invalid byte counts as U+FFFD
		{"👨‍👩‍👧", 8},  // family: 3 astral + 2 ZWJ
	}
	for _, tt := range tests {
		if got := UTF16Len(tt.s); got != tt.want {
			t.Errorf("UTF16Len(%q) = %d, want %d", tt.s, got, tt.want)
		}
		if tt.s != "a\xffb" {
			if ref := len(utf16.Encode([]rune(tt.s))); ref != tt.want {
				t.Errorf("reference length of %q = %d", tt.s, ref)
			}
		}
	}
}

func TestOffsetConversions(t *testing.T) {
	s := "a👍é\uFFFCz" // bytes: a(0) 👍(1-4) é(5-6) FFFC(7-9) z(10); units: a0 👍1-2 é3 FFFC4 z5
	pairs := [][2]int{{0, 0}, {1, 1}, {5, 3}, {7, 4}, {10, 5}, {11, 6}}
	for _, p := range pairs {
		if got, err := UTF16ToByteOffset(s, p[1]); err != nil || got != p[0] {
			t.Errorf("UTF16ToByteOffset(%d) = %d, %v; want %d", p[1], got, err, p[0])
		}
		if got, err := ByteToUTF16Offset(s, p[0]); err != nil || got != p[1] {
			t.Errorf("ByteToUTF16Offset(%d) = %d, %v; want %d", p[0], got, err, p[1])
		}
	}
	errs := []struct {
		name string
		err  error
		is   error
		text string
	}{
		{"unit inside pair", second(UTF16ToByteOffset(s, 2)), ErrUTF16Split, "signal: utf16: offset falls inside a character: UTF-16 offset 2"},
		{"unit past end", second(UTF16ToByteOffset(s, 7)), ErrUTF16Range, "signal: utf16: UTF-16 offset out of range: offset 7, text has 6 units"},
		{"unit negative", second(UTF16ToByteOffset(s, -1)), ErrUTF16Range, "signal: utf16: UTF-16 offset out of range: offset -1 is negative"},
		{"byte inside emoji", second(ByteToUTF16Offset(s, 2)), ErrUTF16Split, "signal: utf16: offset falls inside a character: byte offset 2"},
		{"byte inside last char", second(ByteToUTF16Offset("ab€", 4)), ErrUTF16Split, "signal: utf16: offset falls inside a character: byte offset 4"},
		{"byte past end", second(ByteToUTF16Offset(s, 12)), ErrUTF16Range, "signal: utf16: UTF-16 offset out of range: byte offset 12, text has 11 bytes"},
		{"byte negative", second(ByteToUTF16Offset(s, -1)), ErrUTF16Range, ""},
	}
	for _, tt := range errs {
		if !errors.Is(tt.err, tt.is) || (tt.text != "" && tt.err.Error() != tt.text) {
			t.Errorf("%s: %v, want %q", tt.name, tt.err, tt.text)
		}
	}
}

func second[T any](_ T, err error) error { return err }

func TestSliceUTF16(t *testing.T) {
	s := "👍 Hey \uFFFC!"
	tests := []struct {
		start, length int
		want          string
		is            error
	}{
		{0, 2, "👍", nil},
		{3, 3, "Hey", nil},
		{7, 1, "\uFFFC", nil},
		{0, 0, "", nil},
		{9, 0, "", nil},
		{0, 9, s, nil},
		{1, 1, "", ErrUTF16Split},
		{0, 1, "", ErrUTF16Split},
		{8, 2, "", ErrUTF16Range},
		{10, 0, "", ErrUTF16Range},
		{0, -1, "", ErrUTF16Range},
		{-1, 1, "", ErrUTF16Range},
		{1, maxInt, "", ErrUTF16Range},
	}
	for _, tt := range tests {
		got, err := SliceUTF16(s, tt.start, tt.length)
		if got != tt.want || !errors.Is(err, tt.is) || (tt.is == nil) != (err == nil) {
			t.Errorf("SliceUTF16(%d, %d) = %q, %v; want %q, %v", tt.start, tt.length, got, err, tt.want, tt.is)
		}
	}
}
