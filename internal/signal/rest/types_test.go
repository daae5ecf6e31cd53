package rest

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestAttachmentData(t *testing.T) {
	tests := []struct {
		name, mime, filename string
		data                 []byte
		want                 string
	}{
		{"with name", "image/png", "cat.png", []byte("hello"), "data:image/png;filename=cat.png;base64,aGVsbG8="},
		{"without name", "text/plain", "", []byte{0xff}, "data:text/plain;base64,/w=="},
		{"empty mime", "", "x.bin", []byte{}, "data:application/octet-stream;filename=x.bin;base64,"},
		{"mime with separator", "text/plain;charset=utf-8", "", []byte("a"), "data:application/octet-stream;base64,YQ=="},
		{"unsafe name", "image/jpeg", "a;b,c/d\\e\nf.jpg", []byte("a"), "data:image/jpeg;filename=a_b_c_d_e_f.jpg;base64,YQ=="},
		{"unicode name kept", "image/jpeg", "fötö.jpg", []byte("a"), "data:image/jpeg;filename=fötö.jpg;base64,YQ=="},
	}
	for _, tt := range tests {
		if got := AttachmentData(tt.mime, tt.filename, tt.data); got != tt.want {
			t.Errorf("%s: AttachmentData = %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestParseTimestampBody(t *testing.T) {
	tests := []struct {
		name    string
		body    string
		want    int64
		wantErr string
		errs    []RecipientError
	}{
		{name: "object string (0.100)", body: `{"timestamp":"1767225611000"}`, want: 1767225611000},
		{name: "object number", body: `{"timestamp":1767225611000}`, want: 1767225611000},
		{name: "array (HEAD)", body: "\n [{\"timestamp\":\"1767225611000\"}]\n", want: 1767225611000},
		{
			name: "array with partial failures",
			body: `[{"timestamp":"1767225611000","errors":{"recipients":[{"number":"+15550000003","uuid":"u-3","reason":"UNREGISTERED_FAILURE"}]}}]`,
			want: 1767225611000,
			errs: []RecipientError{{Number: "+15550000003", UUID: "u-3", Reason: "UNREGISTERED_FAILURE"}},
		},
		{name: "empty body", body: "", wantErr: "empty body, expected a timestamp"},
		{name: "empty array", body: "[]", wantErr: "empty response array, expected one element with a timestamp"},
		{name: "no timestamp", body: "{}", wantErr: "response has no timestamp"},
		{name: "bad timestamp", body: `{"timestamp":"soon"}`, wantErr: `decode response object: timestamp "soon" is not an integer`},
		{name: "not json", body: "Created", wantErr: "decode response object: invalid character 'C' looking for beginning of value"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseTimestampBody([]byte(tt.body))
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("err = %v", err)
			}
			if int64(got.Timestamp) != tt.want {
				t.Errorf("timestamp = %d, want %d", got.Timestamp, tt.want)
			}
			var gotErrs []RecipientError
			if got.Errors != nil {
				gotErrs = got.Errors.Recipients
			}
			if d := cmp.Diff(tt.errs, gotErrs); d != "" {
				t.Errorf("recipient errors (-want +got):\n%s", d)
			}
		})
	}
}

func TestGroupMemberForms(t *testing.T) {
	tests := []struct {
		in     string
		want   GroupMember
		wantID string
	}{
		{`"+15550000002"`, GroupMember{Number: "+15550000002"}, "+15550000002"},
		{`"0b9d3f2e-1111-4c5d-8e7f-001122334455"`, GroupMember{UUID: "0b9d3f2e-1111-4c5d-8e7f-001122334455"}, "0b9d3f2e-1111-4c5d-8e7f-001122334455"},
		{`{"number":"+15550000002","uuid":"u"}`, GroupMember{Number: "+15550000002", UUID: "u"}, "+15550000002"},
		{`{"number":"","uuid":"u"}`, GroupMember{UUID: "u"}, "u"},
	}
	for _, tt := range tests {
		var m GroupMember
		if err := json.Unmarshal([]byte(tt.in), &m); err != nil {
			t.Fatalf("%s: %v", tt.in, err)
		}
		if m != tt.want || m.ID() != tt.wantID {
			t.Errorf("%s: got %+v (id %q), want %+v (id %q)", tt.in, m, m.ID(), tt.want, tt.wantID)
		}
	}
	if err := json.Unmarshal([]byte(`5`), new(GroupMember)); err == nil {
		t.Error("a number decoded as a group member, want an error")
	}
}

func TestAboutReceivesOverWebsocket(t *testing.T) {
	for mode, want := range map[string]bool{ModeJSONRPC: true, ModeNormal: false, ModeNative: false, "": false} {
		if got := (About{Mode: mode}).ReceivesOverWebsocket(); got != want {
			t.Errorf("mode %q: ReceivesOverWebsocket = %v, want %v", mode, got, want)
		}
	}
}

func TestParseErrorBody(t *testing.T) {
	tests := []struct {
		name   string
		body   string
		want   string
		wantOK bool
	}{
		{"plain json", `{"error":"boom"}`, "boom", true},
		{"status line prefix", "Bad Request\n{\"error\":\"websocket: upgrade token not found\"}", "websocket: upgrade token not found", true},
		{"crlf prefix and trailing text", "Bad Request\r\n  {\"error\":\"x\"} trailing", "x", true},
		{"router 404", "404 page not found", "", false},
		{"json without error", `{"message":"x"}`, "", false},
		{"error not a string", `{"error":{"code":1}}`, "", false},
		{"empty", "", "", false},
	}
	for _, tt := range tests {
		eb, ok := parseErrorBody([]byte(tt.body))
		got := ""
		if ok {
			got = *eb.Error
		}
		if ok != tt.wantOK || got != tt.want {
			t.Errorf("%s: got (%q, %v), want (%q, %v)", tt.name, got, ok, tt.want, tt.wantOK)
		}
	}
}

func TestPlainTimestampAgreesWithJSON(t *testing.T) {
	// ref is parseTimestampBody through encoding/json only.
	ref := func(b []byte) (flexInt64, error) {
		b = bytes.TrimSpace(b)
		var tr timestampResponse
		if len(b) == 0 {
			return 0, errors.New("empty")
		}
		if b[0] == '[' {
			var arr []timestampResponse
			if err := json.Unmarshal(b, &arr); err != nil {
				return 0, err
			}
			if len(arr) == 0 {
				return 0, errors.New("empty array")
			}
			tr = arr[0]
		} else if err := json.Unmarshal(b, &tr); err != nil {
			return 0, err
		}
		if tr.Timestamp <= 0 {
			return tr.Timestamp, errors.New("no timestamp")
		}
		return tr.Timestamp, nil
	}
	for _, b := range []string{
		`{"timestamp":"1700000000123"}`, `[{"timestamp":"1700000000123"}]`, `{"timestamp":"0"}`,
		`{"timestamp":"007"}`, `{"timestamp":""}`, `{"timestamp":"12a"}`, `{"timestamp":"99999999999999999999"}`,
		`[{"timestamp":"1"},{"timestamp":"2"}]`, `{"timestamp":"5","errors":{"recipients":[]}}`, `[]`, ``, ` `,
		`{"timestamp":123}`, `{"timestamp":"-3"}`, ` {"timestamp":"42"}` + "\n",
	} {
		got, gerr := parseTimestampBody([]byte(b))
		want, werr := ref([]byte(b))
		if (gerr == nil) != (werr == nil) || got.Timestamp != want {
			t.Errorf("%q: %v %v, encoding/json: %v %v", b, got.Timestamp, gerr, want, werr)
		}
	}
}
