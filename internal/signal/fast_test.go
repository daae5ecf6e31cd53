package signal

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

// decodeStd is the reference: Decode with encoding/json only.
func decodeStd(raw []byte) (*wireFrame, error) {
	var w wireFrame
	if err := classifyJSONError(raw, json.Unmarshal(raw, &w)); err != nil {
		return nil, err
	}
	normalizeEnvelope(w.Envelope)
	return &w, nil
}

// FuzzDecodeMatchesStd checks that the fast decoder (goccy/go-json, with
// encoding/json as fallback) accepts exactly what encoding/json accepts and
// yields the same model.
func FuzzDecodeMatchesStd(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "*.json"))
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, s := range []string{`{}`, `{"envelope":null}`, `{"Envelope":{"timestamp":"12"}}`, `{"envelope":{"timestamp":1.5}}`,
		`{"envelope":{"dataMessage":{"mentions":{}}}}`, `{"envelope":{"sourceDevice":"1"},"account":3}`, `{"envelope":{"timestamp":"0012"}}`,
		`{"envelope":{},"envelope":{"sourceUuid":"x"}}`, `{"error":{"a":1}}`, `[]`, `{"envelope":{"callMessage":{"offerMessage":{"id":18446744073709551615}}}}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		var got *Frame
		var gerr error
		done := make(chan struct{})
		go func() { defer close(done); got, gerr = Decode(raw) }()
		select {
		case <-done:
		case <-time.After(2 * time.Second):
			t.Fatalf("Decode did not return within 2s for %q", raw)
		}
		want, werr := decodeStd(raw)
		if (gerr == nil) != (werr == nil) {
			// Decode adds checks of its own before decoding (empty, UTF-8).
			if gerr != nil && werr == nil && (isDecodeError(gerr)) {
				if _, err := (Decoder{}).decode(raw); err != nil {
					return
				}
			}
			t.Fatalf("fast decode err=%v, encoding/json err=%v for %q", gerr, werr, raw)
		}
		if gerr != nil {
			return
		}
		if !reflect.DeepEqual(got.Envelope, want.Envelope) || !reflect.DeepEqual(got.Exception, want.Exception) || got.Account != want.Account {
			t.Fatalf("fast decode differs from encoding/json for %q:\nfast %+v\nstd  %+v", raw, got.Envelope, want.Envelope)
		}
	})
}

func BenchmarkDecodeFast(b *testing.B) {
	raw, err := os.ReadFile("testdata/c_group_mention.json")
	if err != nil {
		b.Fatal(err)
	}
	b.Run("goccy+fallback", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			if _, err := Decode(raw); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encoding/json", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			if _, err := decodeStd(raw); err != nil {
				b.Fatal(err)
			}
		}
	})
}
