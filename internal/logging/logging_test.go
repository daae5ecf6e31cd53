package logging

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

var (
	phone      = "+15551234567"
	phoneTail  = "5551234567" // must not appear either
	maskedNum  = "+*********67"
	uuid       = "3f2a9c4e-8b1d-4e6f-9a0b-1c2d3e4f5a6b"
	groupID    = base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{0xA7, 0x3c, 0x11, 0xfe}, 8)) // 32 bytes → 44 chars
	groupREST  = "group." + base64.StdEncoding.EncodeToString([]byte(groupID))
	body       = "meet me at the old mill at noon"
	attachment = "passport-scan.jpg"
	rawFrame   = `{"envelope":{"source":"` + phone + `","sourceUuid":"` + uuid + `","timestamp":1700000000000,` +
		`"dataMessage":{"message":"` + body + `","groupInfo":{"groupId":"` + groupID + `"},` +
		`"attachments":[{"filename":"` + attachment + `"}]}},"account":"+15550000001"}`
	key = []byte("test-key-0123456789abcdef")
)

// forbidden are the strings no redacted line may contain.
func forbidden() []string {
	return []string{phone, phoneTail, uuid, strings.ToUpper(uuid), groupID, strings.TrimPrefix(groupREST, "group."), body, attachment, "%2B1555"}
}

type stringer string

func (s stringer) String() string { return string(s) }

type attachmentInfo struct {
	Filename    string `json:"filename"`
	ContentType string `json:"contentType"`
	Size        int    `json:"size"`
}

func newTestLogger(t *testing.T, redact bool, format string) (*zap.Logger, *bytes.Buffer) {
	t.Helper()
	var buf bytes.Buffer
	l, err := New(Options{Level: "debug", Format: format, Redact: redact, RedactionKey: key, Output: &buf})
	if err != nil {
		t.Fatal(err)
	}
	return l, &buf
}

// logCases log personal data in every way zap allows.
var logCases = []struct {
	name string
	log  func(l *zap.Logger)
	// want are strings the redacted output must contain (beyond the absence
	// of forbidden ones), proving the field was rewritten, not dropped.
	want []string
}{
	{"message", func(l *zap.Logger) { l.Info("sending to " + phone + " in " + groupREST + " for " + uuid) },
		[]string{"sending to " + maskedNum + " in h:", " for h:"}},
	{"string field", func(l *zap.Logger) { l.Info("x", zap.String("recipient", phone)) }, []string{maskedNum}},
	{"body field", func(l *zap.Logger) { l.Info("x", zap.String("body", body)) }, []string{`[redacted]`}},
	{"camelCase content key", func(l *zap.Logger) { l.Info("x", zap.String("quoteText", body), zap.String("reply_body", body)) }, []string{`[redacted]`}},
	{"attachment name", func(l *zap.Logger) {
		l.Info("x", zap.String("filename", attachment), zap.String("attachment_filename", attachment))
	}, nil},
	{"error with number", func(l *zap.Logger) {
		l.Error("send failed", zap.Error(fmt.Errorf("rest: send to %s: %w", phone, errors.New("timeout"))))
	}, []string{"rest: send to " + maskedNum + ": timeout"}},
	{"error with escaped number in url", func(l *zap.Logger) {
		l.Warn("x", zap.Error(fmt.Errorf(`Get "http://signal:8080/v1/search?numbers=%%2B15551234567": dial tcp: refused`)))
	}, []string{"%2B*********67"}},
	{"named error with uuid and group", func(l *zap.Logger) {
		l.Warn("x", zap.NamedError("cause", fmt.Errorf("no such recipient %s in %s", uuid, groupID)))
	}, []string{"no such recipient h:"}},
	{"stringer", func(l *zap.Logger) { l.Info("x", zap.Stringer("who", stringer(phone+"/"+uuid))) }, []string{maskedNum + "/h:"}},
	{"byte string", func(l *zap.Logger) { l.Info("x", zap.ByteString("line", []byte("from "+phone))) }, []string{"from " + maskedNum}},
	{"binary", func(l *zap.Logger) { l.Info("x", zap.Binary("blob", []byte(phone))) }, []string{"[redacted binary]"}},
	{"any map nested", func(l *zap.Logger) {
		l.Info("x", zap.Any("meta", map[string]any{
			"source": phone,
			"nested": map[string]any{"text": body, "sourceUuid": uuid, "ids": []any{groupID, groupREST}},
		}))
	}, []string{`"source":"` + maskedNum + `"`, `"text":"[redacted]"`}},
	{"any struct", func(l *zap.Logger) {
		l.Info("x", zap.Any("att", attachmentInfo{Filename: attachment, ContentType: "image/jpeg", Size: 3}))
	}, []string{`"filename":"[redacted]"`, `"contentType":"image/jpeg"`, `"size":3`}},
	{"any slice of structs under content key", func(l *zap.Logger) {
		l.Info("x", zap.Any("attachments", []attachmentInfo{{Filename: attachment}}))
	}, []string{`"attachments":"[redacted]"`}},
	{"object marshaler nested", func(l *zap.Logger) {
		l.Info("x", zap.Object("msg_info", zapcore.ObjectMarshalerFunc(func(enc zapcore.ObjectEncoder) error {
			enc.AddString("from", phone)
			enc.AddInt64("ts", 1700000000000)
			_ = enc.AddObject("inner", zapcore.ObjectMarshalerFunc(func(enc zapcore.ObjectEncoder) error {
				enc.AddString("caption", body)
				enc.AddByteString("group", []byte(groupREST))
				_ = enc.AddReflected("extra", map[string]string{"number": phone})
				return nil
			}))
			return enc.AddArray("ids", zapcore.ArrayMarshalerFunc(func(enc zapcore.ArrayEncoder) error {
				enc.AppendString(uuid)
				enc.AppendByteString([]byte(groupID))
				return enc.AppendObject(zapcore.ObjectMarshalerFunc(func(enc zapcore.ObjectEncoder) error {
					enc.AddString("text", body)
					return nil
				}))
			}))
		})))
	}, []string{`"from":"` + maskedNum + `"`, `"ts":1700000000000`, `"caption":"[redacted]"`, `"number":"` + maskedNum + `"`}},
	{"dict", func(l *zap.Logger) {
		l.Info("x", zap.Dict("d", zap.String("filename", attachment), zap.String("to", phone)))
	},
		[]string{`"filename":"[redacted]"`}},
	{"inline", func(l *zap.Logger) {
		l.Info("x", zap.Inline(zapcore.ObjectMarshalerFunc(func(enc zapcore.ObjectEncoder) error {
			enc.AddString("sender", uuid)
			return nil
		})))
	}, []string{`"sender":"h:`}},
	{"strings array", func(l *zap.Logger) { l.Info("x", zap.Strings("recipients", []string{phone, uuid, groupREST})) },
		[]string{`"recipients":["` + maskedNum + `","h:`}},
	{"errors array", func(l *zap.Logger) { l.Info("x", zap.Errors("errs", []error{errors.New("bad " + phone)})) },
		[]string{"bad " + maskedNum}},
	{"with", func(l *zap.Logger) { l.With(zap.String("conversation", groupID)).Info("x", zap.String("k", "v")) },
		[]string{`"conversation":"h:`}},
	{"namespace", func(l *zap.Logger) { l.Info("x", zap.Namespace("ctx"), zap.String("source", phone)) },
		[]string{`"ctx":{"source":"` + maskedNum + `"}`}},
	{"raw frame as string", func(l *zap.Logger) { l.Warn("bad frame", zap.String("line", rawFrame)) },
		[]string{`\"envelope\":\"[redacted]\"`, `\"account\":\"+*********01\"`}},
	{"truncated raw frame", func(l *zap.Logger) { l.Warn("bad frame", zap.String("head", rawFrame[:60])) },
		[]string{"[redacted raw envelope]"}},
	{"raw frame in error", func(l *zap.Logger) {
		l.Warn("x", zap.Error(fmt.Errorf("decode %s: unexpected EOF", rawFrame[:len(rawFrame)-5])))
	}, []string{"[redacted raw envelope]"}},
	{"raw frame field", func(l *zap.Logger) { l.Warn("x", zap.ByteString("raw", []byte(rawFrame))) }, []string{`"raw":"[redacted]"`}},
	{"reflect of url list", func(l *zap.Logger) {
		l.Info("x", zap.Reflect("urls", []string{"http://signal:8080/v1/receive/" + phone, "http://x/v1/groups/%2B15551234567/" + groupREST}))
	}, []string{"/v1/receive/" + maskedNum}},
	{"sugar", func(l *zap.Logger) {
		s := l.Sugar()
		s.Infow("sent", "to", phone, "text", body)
		s.Infof("reply to %s in %s", uuid, groupREST)
	}, []string{`"to":"` + maskedNum + `"`, `"msg":"reply to h:`}},
}

func TestRedactionRemovesPersonalData(t *testing.T) {
	for _, format := range []string{"json", "console"} {
		for _, tc := range logCases {
			t.Run(format+"/"+tc.name, func(t *testing.T) {
				l, buf := newTestLogger(t, true, format)
				tc.log(l)
				out := buf.String()
				if out == "" {
					t.Fatal("nothing logged")
				}
				for _, f := range forbidden() {
					if strings.Contains(out, f) {
						t.Errorf("output contains %q:\n%s", f, out)
					}
				}
				if format != "json" {
					return // the markers below are written in JSON syntax
				}
				for _, w := range tc.want {
					if !strings.Contains(out, w) {
						t.Errorf("output lacks %q:\n%s", w, out)
					}
				}
			})
		}
	}
}

func TestRedactionOffLeavesFieldsAlone(t *testing.T) {
	l, buf := newTestLogger(t, false, "json")
	l.Info("to "+phone, zap.String("body", body), zap.String("source", uuid), zap.Error(errors.New(groupID)),
		zap.Any("att", attachmentInfo{Filename: attachment}))
	out := buf.String()
	for _, want := range []string{"to " + phone, `"body":"` + body + `"`, `"source":"` + uuid + `"`, `"error":"` + groupID + `"`, `"filename":"` + attachment + `"`} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func TestJSONLineShape(t *testing.T) {
	l, buf := newTestLogger(t, true, "json")
	l.Named("ingest").Warn("appended "+uuid, zap.String("to", phone), zap.Int("shard", 3), zap.String("text", body))
	var m map[string]any
	if err := json.Unmarshal(buf.Bytes(), &m); err != nil {
		t.Fatalf("not one JSON object: %v\n%s", err, buf)
	}
	for _, k := range []string{"ts", "caller"} {
		if _, ok := m[k]; !ok {
			t.Errorf("no %q in %v", k, m)
		}
		delete(m, k)
	}
	r := NewRedactor(key)
	want := map[string]any{
		"level": "warn", "logger": "ingest", "msg": "appended " + r.Hash(uuid),
		"to": maskedNum, "shard": float64(3), "text": Redacted,
	}
	if d := cmp.Diff(want, m); d != "" {
		t.Errorf("line (-want +got):\n%s", d)
	}
}

func TestHash(t *testing.T) {
	r1, r1b, r2 := NewRedactor(key), NewRedactor(key), NewRedactor([]byte("another-key-0123456789"))
	h := r1.Hash(uuid)
	if len(h) != 18 || !strings.HasPrefix(h, "h:") {
		t.Errorf("hash %q: want h: + 16 hex digits", h)
	}
	if r1.Hash(uuid) != h || r1b.Hash(uuid) != h {
		t.Error("hash not stable under one key")
	}
	if r1.Hash(strings.ToUpper(uuid)) != h {
		t.Error("upper-case uuid hashes differently")
	}
	if r2.Hash(uuid) == h {
		t.Error("hash equal under another key")
	}
	if r1.Hash(groupREST) != r1.Hash(groupID) {
		t.Error("REST and internal group id hash differently")
	}
	if r1.Hash(phone) == r1.Hash("+15551234568") {
		t.Error("different numbers hash alike")
	}
	// Random keys (no key configured) differ per redactor.
	if NewRedactor(nil).Hash(uuid) == NewRedactor(nil).Hash(uuid) {
		t.Error("two random keys gave the same hash")
	}
	// The logger and a shared Redactor agree, so code can log Hash(id) on purpose.
	var buf bytes.Buffer
	l, err := New(Options{Redact: true, Redactor: r1, Output: &buf})
	if err != nil {
		t.Fatal(err)
	}
	l.Info("x", zap.String("sender", uuid))
	if !strings.Contains(buf.String(), `"sender":"`+h+`"`) {
		t.Errorf("logger hash differs from Redactor.Hash %s: %s", h, buf.String())
	}
}

func TestRedactString(t *testing.T) {
	r := NewRedactor(key)
	cases := []struct{ in, want string }{
		{"", ""},
		{"nothing to see", "nothing to see"},
		{"shard 3 of 64, 1700000000000-0", "shard 3 of 64, 1700000000000-0"},
		{"call +15551234567 now", "call +*********67 now"},
		{"a %2b15551234567 b", "a %2b*********67 b"},
		{"short +12345 is not a number", "short +12345 is not a number"},
		{"tz +0100", "tz +0100"},
		{"uuid " + uuid + ".", "uuid " + r.Hash(uuid) + "."},
		{"group " + groupID + ",", "group " + r.Hash(groupID) + ","},
		{"groupId=" + groupID, "groupId=" + r.Hash(groupID)},
		{groupREST, r.Hash(groupID)},
		{"v1 group AAAAAAAAAAAAAAAAAAAAAA== x", "v1 group " + r.Hash("AAAAAAAAAAAAAAAAAAAAAA==") + " x"},
		{"b64 that is not an id: QUJD", "b64 that is not an id: QUJD"},
		{`{"source":"+15551234567","text":"hi"}`, `{"source":"+*********67","text":"[redacted]"}`},
		{`[{"number":"+15551234567"}]`, `[{"number":"+*********67"}]`},
		{`"envelope":{"source"`, "[redacted raw envelope]"},
	}
	for _, tc := range cases {
		if got := r.RedactString(tc.in); got != tc.want {
			t.Errorf("RedactString(%q)\n got %q\nwant %q", tc.in, got, tc.want)
		}
	}
}

func TestContentKey(t *testing.T) {
	cases := map[string]bool{
		"body": true, "Body": true, "text": true, "message": true, "raw": true, "raw_message": true,
		"envelope": true, "payload": true, "filename": true, "attachments": true, "caption": true,
		"quote": true, "name": true, "sourceName": true, "quoteText": true, "reply_body": true, "reply-text": true,
		"frame": true, "data_message": true,
		"context": false, "shard": false, "error": false, "source": false, "recipient": false, "count": false,
		"text_len": false, "bodyless": false, "": false, "max_frame_bytes": false,
	}
	for k, want := range cases {
		if got := ContentKey(k); got != want {
			t.Errorf("ContentKey(%q) = %v, want %v", k, got, want)
		}
	}
}

func TestMaskPhone(t *testing.T) {
	cases := map[string]string{"+15551234567": "+*********67", "%2B4915112345678": "%2B***********78", "+12": "+**", "+1": "+*"}
	for in, want := range cases {
		if got := MaskPhone(in); got != want {
			t.Errorf("MaskPhone(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestOptionsErrors(t *testing.T) {
	if _, err := New(Options{Level: "loud"}); err == nil || err.Error() != `logging: level "loud": expected debug, info, warn or error` {
		t.Errorf("level: %v", err)
	}
	if _, err := New(Options{Format: "text"}); err == nil || err.Error() != `logging: format "text": expected json or console` {
		t.Errorf("format: %v", err)
	}
	var buf bytes.Buffer
	l, err := New(Options{Level: "warn", Output: &buf})
	if err != nil {
		t.Fatal(err)
	}
	l.Info("hidden")
	l.Warn("shown")
	if strings.Contains(buf.String(), "hidden") || !strings.Contains(buf.String(), "shown") {
		t.Errorf("level filter: %s", buf.String())
	}
}

func TestPanickingStringer(t *testing.T) {
	var s *strings.Builder // nil: String() panics
	l, buf := newTestLogger(t, true, "json")
	l.Info("x", zap.Stringer("s", s))
	if !strings.Contains(buf.String(), `"s":"<PANIC=`) {
		t.Errorf("got %s", buf.String())
	}
}

func TestDocsListContentKeys(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "..", "docs", "configuration.md"))
	if err != nil {
		t.Fatal(err)
	}
	for k := range contentKeys {
		if !strings.Contains(string(data), "`"+k+"`") {
			t.Errorf("docs/configuration.md does not list content key %q", k)
		}
	}
}
