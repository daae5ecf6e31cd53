package receive

import (
	"strings"
	"testing"
)

func TestBuildURL(t *testing.T) {
	const num = "+4912345678"
	tests := []struct {
		name, service, number, template string
		want, wantErr                   string
	}{
		{name: "http to ws", service: "http://signal-api:8080", want: "ws://signal-api:8080/v1/receive/+4912345678"},
		{name: "https to wss", service: "https://signal.example.org", want: "wss://signal.example.org/v1/receive/+4912345678"},
		{name: "ws kept", service: "ws://10.0.0.1:8080/", want: "ws://10.0.0.1:8080/v1/receive/+4912345678"},
		{name: "wss kept", service: "WSS://h:443", want: "wss://h:443/v1/receive/+4912345678"},
		{name: "bare host port", service: "localhost:8080", want: "ws://localhost:8080/v1/receive/+4912345678"},
		{name: "base path kept", service: "https://proxy/signal/", want: "wss://proxy/signal/v1/receive/+4912345678"},
		{name: "query kept", service: "http://h/base?x=1", want: "ws://h/base/v1/receive/+4912345678?x=1"},
		{name: "custom template appended", service: "http://proxy/signal", template: "/ws/{phone_number}/stream", want: "ws://proxy/signal/ws/+4912345678/stream"},
		{name: "relative template from root", service: "http://proxy/signal", template: "ws/{phone_number}", want: "ws://proxy/ws/+4912345678"},
		{name: "template without placeholder", service: "http://h", template: "/receive", want: "ws://h/receive"},
		{name: "bad scheme", service: "ftp://h", wantErr: `receive: unsupported scheme "ftp" in ServiceURL; use http, https, ws or wss`},
		{name: "empty", service: " ", wantErr: "receive: ServiceURL is empty; set it (SIGNAL_SERVICE_URL) to the signal-cli-rest-api address, e.g. http://signal-api:8080"},
		{name: "no host", service: "http:///x", wantErr: "receive: ServiceURL has no host; use e.g. http://signal-api:8080"},
		{name: "credentials", service: "http://u:secret@h", wantErr: "receive: ServiceURL must not contain credentials; pass them as the token (SIGNAL_API_TOKEN) instead"},
		{name: "invalid url hides input", service: "http://h:99x/path-secret", wantErr: `receive: ServiceURL is not a valid URL; use e.g. http://signal-api:8080: invalid port ":99x" after host`},
		{name: "number without plus", service: "http://h", number: "4912345678", wantErr: "receive: Number is not an E.164 phone number; expected + followed by 2 to 15 digits, e.g. +4915112345678"},
		{name: "number with slash", service: "http://h", number: "+49/1", wantErr: "receive: Number is not an E.164 phone number; expected + followed by 2 to 15 digits, e.g. +4915112345678"},
		{name: "template with query", service: "http://h", template: "/r/{phone_number}?a=b", wantErr: "receive: PathTemplate (SIGNAL_WS_PATH) must be a path only, without query or fragment"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := tt.number
			if n == "" {
				n = num
			}
			got, err := buildURL(tt.service, n, tt.template)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("error = %v, want %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), "secret") || strings.Contains(err.Error(), "4912345678") {
					t.Fatalf("error leaks input: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if got != tt.want {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestRedact(t *testing.T) {
	const u = "ws://h:8080/v1/receive/+4912345678"
	red := newRedactor(u, "+4912345678", "s3cr3t-token")
	tests := []struct{ in, want string }{
		{`dial ws://h:8080/v1/receive/+4912345678: refused`, `dial <receive-url>: refused`},
		{`GET "/v1/receive/%2B4912345678" failed`, `GET "/v1/receive/<number>" failed`},
		{`account +4912345678 unknown`, `account <number> unknown`},
		{`other account +15550001111 seen`, `other account <number> seen`},
		{`bad auth Bearer s3cr3t-token`, `bad auth Bearer <token>`},
		{`close 1006 (abnormal closure) on 127.0.0.1:8080`, `close 1006 (abnormal closure) on 127.0.0.1:8080`},
	}
	for _, tt := range tests {
		if got := red.redact(tt.in); got != tt.want {
			t.Errorf("redact(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
