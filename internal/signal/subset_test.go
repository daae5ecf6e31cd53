package signal

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math/bits"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"
	"unicode/utf8"
)

// The subset decoder either declines or builds exactly what encoding/json
// (the reference) builds from the same bytes, and it never accepts bytes the
// reference rejects.
func checkSubset(t *testing.T, raw []byte) (accepted bool) {
	t.Helper()
	if len(bytes.TrimSpace(raw)) == 0 || !utf8.Valid(raw) {
		return false
	}
	got, ok := decodeSubset(raw, false)
	if !ok {
		return false
	}
	want, err := decodeStd(raw)
	if err != nil {
		t.Fatalf("subset accepted %q, encoding/json rejects it: %v", raw, err)
	}
	if want.Envelope == nil || want.Exception != nil || len(want.Error) != 0 {
		t.Fatalf("subset accepted %q, which is not a plain wrapper for encoding/json", raw)
	}
	if !reflect.DeepEqual(got.Envelope, want.Envelope) || got.Account != want.Account || got.Type != FrameWrapper {
		t.Fatalf("subset differs from encoding/json for %q:\nsubset %#v\nstd    %#v", raw, got.Envelope, want.Envelope)
	}
	// And the full decoder (with the subset inside) agrees with the one
	// without it, also when it shares the input's bytes.
	for _, d := range []Decoder{{}, {ShareRaw: true}} {
		in := bytes.Clone(raw)
		var scoped Frame
		if err := d.DecodeScoped(in, func(f *Frame) { scoped = *f; scoped.Envelope = cloneEnvelope(f.Envelope) }); err != nil ||
			!reflect.DeepEqual(scoped.Envelope, want.Envelope) || !bytes.Equal(scoped.Raw, raw) {
			t.Fatalf("DecodeScoped (share %v) differs for %q: %v\n%#v", d.ShareRaw, raw, err, scoped.Envelope)
		}
		full, err := d.Decode(in)
		if err != nil || !reflect.DeepEqual(full.Envelope, want.Envelope) || !bytes.Equal(full.Raw, raw) {
			t.Fatalf("Decode (ShareRaw %v) of %q: %v %#v", d.ShareRaw, raw, err, full)
		}
		// A shared frame's strings are views of the input; a copied one's are not.
		for i := range in {
			in[i] = 0
		}
		changed := !reflect.DeepEqual(full.Envelope, want.Envelope)
		sender := want.Envelope.SourceUUID+want.Envelope.Source+want.Envelope.SourceNumber != ""
		if d.ShareRaw && sender && !changed {
			t.Fatalf("Decode (ShareRaw) of %q: the frame's strings are copies, not views of the input", raw)
		}
		if !d.ShareRaw && changed {
			t.Fatalf("Decode of %q: the frame changed with its input: %#v", raw, full.Envelope)
		}
	}
	return true
}

var subsetSeeds = []string{
	`{"envelope":{"source":"+1","timestamp":1}}`,
	`{"envelope":{"dataMessage":null,"sourceNumber":null},"account":null}`,
	`{"envelope":{"dataMessage":{}}}`,
	`{"envelope":{"dataMessage":{"message":null,"groupInfo":null}}}`,
	`{"envelope":{"dataMessage":{"message":"","groupInfo":{"groupId":"x","type":"UPDATE","revision":-0}}}}`,
	` { "envelope" : { "timestamp" : -9223372036854775808 , "sourceDevice" : 9223372036854775807 } } ` + "\n",
	`{"envelope":{"timestamp":9223372036854775808}}`,
	`{"envelope":{"timestamp":01}}`,
	`{"envelope":{"timestamp":1.0}}`,
	`{"envelope":{"timestamp":1e3}}`,
	`{"envelope":{"timestamp":"12"}}`,
	`{"envelope":{"timestamp":-}}`,
	`{"envelope":{"Timestamp":1}}`,
	`{"Envelope":{"timestamp":1}}`,
	`{"envelope":{"timestamp":1,"timestamp":2}}`,
	`{"envelope":{"sourceName":"a\"b"}}`,
	`{"envelope":{"sourceName":"tab	tab"}}`,
	`{"envelope":{"sourceName":"é ü 😀"}}`,
	`{"envelope":{"dataMessage":{"viewOnce":null,"isExpirationUpdate":true}}}`,
	`{"envelope":{"dataMessage":{"viewOnce":tru}}}`,
	`{"envelope":{"dataMessage":{"viewOnce":1}}}`,
	`{"envelope":{"dataMessage":{"message":1}}}`,
	`{"envelope":{"source":1}}`,
	`{"envelope":{}} x`,
	`{"envelope":{},}`,
	`{"envelope":{"source":"a",}}`,
	`{"envelope":{}}{}`,
	`{"envelope":null}`,
	`{"envelope":[]}`,
	`{"envelope":{},"exception":{"message":"m"}}`,
	`{"account":"+1"}`,
	`{}`,
	`[]`,
	`{"envelope":{"source":"a"`,
}

func TestSubsetMatchesEncodingJSON(t *testing.T) {
	accepted := 0
	for _, s := range subsetSeeds {
		if checkSubset(t, []byte(s)) {
			accepted++
		}
	}
	files, _ := filepath.Glob(filepath.Join("testdata", "*.json"))
	common := 0
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		if checkSubset(t, b) {
			common++
		}
	}
	// The plain direct and hidden-number texts take the subset; mentions,
	// receipts, typing and the rest take the full decoder.
	if common < 2 || accepted < 8 {
		t.Fatalf("subset took %d fixtures and %d seeds: it no longer covers the common shape", common, accepted)
	}
	// Declines what it must.
	for _, s := range []string{`{"envelope":{"timestamp":1.0}}`, `{"envelope":{"Timestamp":1}}`, `{"envelope":{"timestamp":1,"timestamp":2}}`,
		`{"envelope":{"sourceName":"a\"b"}}`, `{"envelope":{},"exception":{}}`, `{"envelope":null}`, `{"envelope":{"dataMessage":{"mentions":{}}}}`} {
		if _, ok := decodeSubset([]byte(s), false); ok {
			t.Errorf("subset accepted %s", s)
		}
	}
}

func FuzzSubset(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "*.json"))
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, s := range subsetSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		done := make(chan struct{})
		go func() {
			defer close(done)
			if len(bytes.TrimSpace(raw)) > 0 && utf8.Valid(raw) {
				decodeSubset(raw, false)
			}
		}()
		select {
		case <-done:
		case <-time.After(2 * time.Second):
			t.Fatalf("decodeSubset did not return within 2s for %q", raw)
		}
		checkSubset(t, raw)
	})
}

func BenchmarkDecodeSubset(b *testing.B) {
	raw, err := os.ReadFile("testdata/a_direct_text.json")
	if err != nil {
		b.Fatal(err)
	}
	if _, ok := decodeSubset(raw, false); !ok {
		b.Fatal("fixture not in the subset")
	}
	b.Run("Decode", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			if _, err := Decode(raw); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Decode shared", func(b *testing.B) {
		b.ReportAllocs()
		d := Decoder{ShareRaw: true}
		for i := 0; i < b.N; i++ {
			if _, err := d.Decode(raw); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("without subset", func(b *testing.B) {
		b.ReportAllocs()
		// The same frame with a key the subset declines: the full decoder.
		raw := bytes.Replace(raw, []byte(`"viewOnce":false`), []byte(`"viewOnce":false,"textStyles":null`), 1)
		for i := 0; i < b.N; i++ {
			if _, err := Decode(raw); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// cloneEnvelope copies what the subset fills, so the copy outlives a scoped
// frame.
func cloneEnvelope(e *Envelope) *Envelope {
	if e == nil {
		return nil
	}
	c := *e
	if e.DataMessage != nil {
		d := *e.DataMessage
		if d.Message != nil {
			m := *d.Message
			d.Message = &m
		}
		if d.GroupInfo != nil {
			g := *d.GroupInfo
			d.GroupInfo = &g
		}
		c.DataMessage = &d
	}
	return &c
}

// What a DecodeScoped caller keeps (strings) stays intact when the frame's
// memory is reused for the next frames, and a frame no decoder may read
// fails as with Decode, without calling back.
func TestDecodeScopedKeepsStringsAcrossFrames(t *testing.T) {
	names := []string{"a_direct_text.json", "b_hidden_number.json", "c_group_mention.json", "a_direct_text.json"}
	type kept struct{ conv, identity, source, text string }
	keep := func(f *Frame) kept {
		id, _ := f.Identity()
		return kept{f.Conversation().Key, id.Key(), f.Envelope.SourceUUID, f.Envelope.DataMessage.Text()}
	}
	for _, share := range []bool{false, true} {
		d := Decoder{ShareRaw: share}
		var got, want []kept
		for _, name := range names {
			raw, err := os.ReadFile(filepath.Join("testdata", name))
			if err != nil {
				t.Fatal(err)
			}
			f, err := d.Decode(bytes.Clone(raw))
			if err != nil {
				t.Fatal(err)
			}
			want = append(want, keep(f))
			if err := d.DecodeScoped(raw, func(f *Frame) { got = append(got, keep(f)) }); err != nil {
				t.Fatal(err)
			}
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("share %v: kept %q\nwant %q", share, got, want)
		}
	}
	called := false
	err := Decoder{MaxFrameBytes: 10}.DecodeScoped([]byte(`{"envelope":{"timestamp":1}}`), func(*Frame) { called = true })
	if !errors.Is(err, ErrTooLarge) || called {
		t.Errorf("oversize frame: err %v, called %v; want ErrTooLarge without a call", err, called)
	}
}

// specialMask's lowest mark is the first byte that is '"', '\\' or below
// 0x20, for every byte value in every lane, alone and after other bytes
// (borrows), and it marks nothing in a word without one.
func TestSpecialMaskFindsTheFirstSpecialByte(t *testing.T) {
	special := func(c byte) bool { return c == '"' || c == '\\' || c < 0x20 }
	first := func(w [8]byte) int {
		for i, c := range w {
			if special(c) {
				return i
			}
		}
		return 8
	}
	check := func(w [8]byte) {
		m := specialMask(binary.LittleEndian.Uint64(w[:]))
		got := 8
		if m != 0 {
			got = bits.TrailingZeros64(m) >> 3
		}
		if want := first(w); got != want {
			t.Fatalf("word %q: first special byte at %d, mask says %d", w[:], want, got)
		}
	}
	fills := []byte{'a', ' ', 0x7f, 0x80, 0xa2, 0xdc, 0xff, '!', '#', '[', ']'}
	for _, fill := range fills {
		for pos := 0; pos < 8; pos++ {
			for c := 0; c < 256; c++ {
				var w [8]byte
				for i := range w {
					w[i] = fill
				}
				w[pos] = byte(c)
				check(w)
				// A special byte below pos must win over c (borrows run upwards).
				if pos > 0 {
					w[pos-1] = 0
					check(w)
				}
			}
		}
	}
	r := rand.New(rand.NewPCG(1, 2))
	for n := 0; n < 200000; n++ {
		var w [8]byte
		binary.LittleEndian.PutUint64(w[:], r.Uint64())
		check(w)
	}
}
