package signal

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// decodeErrors are the sentinels every decoding error must wrap.
var decodeErrors = []error{ErrEmpty, ErrTooLarge, ErrInvalidUTF8, ErrNotJSON, ErrNotObject, ErrBadField, ErrNotArray, ErrNotReceive, ErrNoParams}

func isDecodeError(err error) bool {
	for _, s := range decodeErrors {
		if errors.Is(err, s) {
			return true
		}
	}
	return false
}

// FuzzDecode feeds arbitrary bytes to Decode (and to DecodeBatch and
// DecodeWebhook, which share its code). It is seeded with every file in
// testdata and the edge cases of the unit tests; plain `go test` runs the
// seeds as regression cases.
func FuzzDecode(f *testing.F) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.json"))
	if err != nil || len(files) < 14 {
		f.Fatalf("testdata seeds: %d files, %v", len(files), err)
	}
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, s := range []string{
		fullFrame, "", " ", "null", "[]", "[1,{}]", `"x"`, "42", "{", `{"error":"x"}`, `{"error":{}}`, `{}`,
		`{"envelope":{}}`, `{"envelope":{"syncMessage":{}}}`, `{"envelope":"x"}`, "{\"a\":\"\xff\"}",
		`{"envelope":{"sourceUuid":"u","timestamp":"12","callMessage":{"offerMessage":{"id":18446744073709551615}}}}`,
		`{"envelope":{"sourceUuid":"u","timestamp":1,"dataMessage":{"message":"👍 \uFFFC","mentions":[{"uuid":"u","start":1,"length":1},{"start":-5,"length":9223372036854775807}]}}}`,
		`{"envelope":{"sourceUuid":"u","timestamp":1,"dataMessage":{"message":"\uFFFC\uFFFC","mentions":[{"uuid":"u","start":0,"length":2},{"uuid":"u","start":1,"length":1}]}}}`,
		`{"jsonrpc":"2.0","method":"receive","params":{"envelope":{"timestamp":1}}}`,
	} {
		f.Add([]byte(s))
	}

	f.Fuzz(func(t *testing.T, raw []byte) {
		input := bytes.Clone(raw)
		fr, err := Decode(raw)
		if !bytes.Equal(raw, input) {
			t.Fatal("Decode modified its input")
		}
		if err != nil {
			if fr != nil || !isDecodeError(err) {
				t.Fatalf("Decode = %v, %v: error without a sentinel", fr, err)
			}
		} else {
			checkFrame(t, fr)
			if !bytes.Equal(fr.Raw, raw) {
				t.Fatalf("Raw = %q, want the input %q", fr.Raw, raw)
			}
		}

		frames, err := DecodeBatch(raw)
		if err != nil && !isDecodeError(err) {
			t.Fatalf("DecodeBatch error without a sentinel: %v", err)
		}
		for _, b := range frames {
			checkFrame(t, b)
			if !bytes.Contains(raw, b.Raw) {
				t.Fatalf("batch element Raw %q is not part of the body", b.Raw)
			}
		}

		wh, err := DecodeWebhook(raw)
		if err != nil {
			if wh != nil || !isDecodeError(err) {
				t.Fatalf("DecodeWebhook = %v, %v", wh, err)
			}
		} else {
			checkFrame(t, wh)
			if !bytes.Contains(raw, wh.Raw) {
				t.Fatalf("webhook Raw %q is not part of the body", wh.Raw)
			}
		}
	})
}

// checkFrame asserts the invariants of a decoded frame and runs every
// derived accessor.
func checkFrame(t *testing.T, f *Frame) {
	t.Helper()
	k := f.Kind()
	if !k.Valid() {
		t.Fatalf("Kind %q is not a known kind", k)
	}
	switch f.Type {
	case FrameWrapper, FrameError, FrameUnknown:
	default:
		t.Fatalf("Type %q", f.Type)
	}
	c := f.Conversation()
	switch {
	case c.Key == "":
		if c != (Conversation{}) {
			t.Fatalf("Conversation without key: %+v", c)
		}
	case strings.HasPrefix(c.Key, "g:"):
		if !c.IsGroup || c.GroupID != c.Key[2:] || c.Recipient != GroupRESTID(c.GroupID) {
			t.Fatalf("group conversation %+v", c)
		}
	case strings.HasPrefix(c.Key, "u:"), strings.HasPrefix(c.Key, "n:"):
		if c.IsGroup || c.GroupID != "" || c.Recipient == "" {
			t.Fatalf("person conversation %+v", c)
		}
	default:
		t.Fatalf("conversation key %q has no known prefix", c.Key)
	}
	if (k == KindError || k == KindUnknown) && c.Key != "" {
		t.Fatalf("%s frame has conversation %q", k, c.Key)
	}
	if f.ReplyRecipient() != c.Recipient {
		t.Fatalf("ReplyRecipient %q != Conversation.Recipient %q", f.ReplyRecipient(), c.Recipient)
	}
	f.ReceiptRecipient()
	if id, ok := f.Identity(); ok {
		if id.Kind != k || id.Timestamp == 0 || id.Sender == "" || id.Key() == "" {
			t.Fatalf("identity %+v", id)
		}
	} else if id != (Identity{}) {
		t.Fatalf("absent identity not zero: %+v", id)
	}
	if q, ok := f.QuoteTarget(); ok && (q.Author == "" || q.Timestamp == 0) {
		t.Fatalf("quote target %+v", q)
	}
	f.ReactionTarget()
	f.ReactedTo()
	f.EditTarget()
	f.RemoteDeleteTarget()
	f.Sender()
	if d := f.Data(); d != nil {
		text := d.Text()
		if stripped := d.TextWithoutMentionsOf("u", bot); len(stripped) > len(text) {
			t.Fatalf("stripping mentions grew the text")
		}
		d.RenderMentions(nil)
		OutgoingMentions(d.Mentions)
		for _, m := range d.Mentions {
			SliceUTF16(text, int(m.Start), int(m.Length))
		}
	}
	RawDigest(f.Raw)
}
