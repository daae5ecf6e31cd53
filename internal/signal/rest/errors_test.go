package rest

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const rateLimitMsg = "Failed to send message due to rate limiting. Use the attached challenge tokens to lift the rate limit restrictions via the '/v1/accounts/{number}/rate-limit-challenge' endpoint."

func TestStatusErrors(t *testing.T) {
	send := func(ctx context.Context, c *Client) error {
		_, err := c.Send(ctx, SendRequest{Recipients: []string{"+15550000002"}, Message: "hi"})
		return err
	}
	getGroup := func(ctx context.Context, c *Client) error { _, err := c.GetGroup(ctx, restGroupID); return err }
	tests := []struct {
		name         string
		reply        reply
		call         func(context.Context, *Client) error
		wantAPI      *APIError       // expected errors.As(*APIError) result
		wantRL       *RateLimitError // expected errors.As(*RateLimitError) result, nil if none
		wantText     string
		notFound     bool
		hasChallenge bool
		outcome      Outcome
	}{
		{
			name:     "400 json",
			reply:    reply{400, "application/json", `{"error":"Couldn't process request - invalid request"}`},
			call:     send,
			wantAPI:  &APIError{Status: 400, Message: "Couldn't process request - invalid request", Endpoint: "/v2/send", Method: "POST"},
			wantText: "rest: POST /v2/send: signal-cli-rest-api returned 400: Couldn't process request - invalid request",
			outcome:  OutcomeAPIError,
		},
		{
			name:     "400 json body with text/plain content type",
			reply:    reply{400, "text/plain; charset=utf-8", `{"error":"Couldn't process request - invalid request"}`},
			call:     func(ctx context.Context, c *Client) error { return c.TypingStart(ctx, "") },
			wantAPI:  &APIError{Status: 400, Message: "Couldn't process request - invalid request", Endpoint: "/v1/typing-indicator/{number}", Method: "PUT"},
			wantText: "rest: PUT /v1/typing-indicator/{number}: signal-cli-rest-api returned 400: Couldn't process request - invalid request",
			outcome:  OutcomeAPIError,
		},
		{
			name:     "400 with status line prefix",
			reply:    reply{400, "text/plain; charset=utf-8", "Bad Request\n{\"error\":\"Couldn't process request - recipient missing\"}"},
			call:     func(ctx context.Context, c *Client) error { return c.React(ctx, Reaction{}) },
			wantAPI:  &APIError{Status: 400, Message: "Couldn't process request - recipient missing", Endpoint: "/v1/reactions/{number}", Method: "POST"},
			wantText: "rest: POST /v1/reactions/{number}: signal-cli-rest-api returned 400: Couldn't process request - recipient missing",
			outcome:  OutcomeAPIError,
		},
		{
			name:     "404 group not found",
			reply:    reply{404, "application/json", `{"error":"No group with that id found"}`},
			call:     getGroup,
			wantAPI:  &APIError{Status: 404, Message: "No group with that id found", Endpoint: "/v1/groups/{number}/{groupid}", Method: "GET"},
			wantText: "rest: GET /v1/groups/{number}/{groupid}: signal-cli-rest-api returned 404: No group with that id found",
			notFound: true,
			outcome:  OutcomeAPIError,
		},
		{
			name:     "404 attachment not found",
			reply:    reply{404, "application/json", `{"error":"No attachment with that name found"}`},
			call:     func(ctx context.Context, c *Client) error { _, err := c.GetAttachment(ctx, "x.png", 10); return err },
			wantAPI:  &APIError{Status: 404, Message: "No attachment with that name found", Endpoint: "/v1/attachments/{id}", Method: "GET"},
			wantText: "rest: GET /v1/attachments/{id}: signal-cli-rest-api returned 404: No attachment with that name found",
			notFound: true,
			outcome:  OutcomeAPIError,
		},
		{
			name:     "404 from the router is not a missing resource",
			reply:    reply{404, "text/plain", "404 page not found"},
			call:     getGroup,
			wantAPI:  &APIError{Status: 404, Message: "404 page not found", Endpoint: "/v1/groups/{number}/{groupid}", Method: "GET", NoRoute: true},
			wantText: "rest: GET /v1/groups/{number}/{groupid}: signal-cli-rest-api returned 404: 404 page not found (no such endpoint; check BaseURL and the server version)",
			outcome:  OutcomeAPIError,
		},
		{
			name:    "429 with challenge token",
			reply:   reply{429, "application/json", `{"error":"` + rateLimitMsg + `","challenge_tokens":["9c2d3f6e-0a1b-4c5d-8e7f-001122334455"],"account":"+15550000001"}`},
			call:    send,
			wantAPI: &APIError{Status: 429, Message: rateLimitMsg, Endpoint: "/v2/send", Method: "POST"},
			wantRL: &RateLimitError{Status: 429, Message: rateLimitMsg, ChallengeTokens: []string{"9c2d3f6e-0a1b-4c5d-8e7f-001122334455"},
				Account: "+15550000001", Endpoint: "/v2/send", Method: "POST"},
			wantText:     "rest: POST /v2/send: rate limited by Signal (429): " + rateLimitMsg + "; pause sending from this account: solve a captcha and submit it with the challenge token through the rate-limit-challenge endpoint",
			hasChallenge: true,
			outcome:      OutcomeRateLimited,
		},
		{
			name:    "429 with an empty token",
			reply:   reply{429, "application/json", `{"error":"` + rateLimitMsg + `","challenge_tokens":[""],"account":"+15550000001"}`},
			call:    send,
			wantAPI: &APIError{Status: 429, Message: rateLimitMsg, Endpoint: "/v2/send", Method: "POST"},
			wantRL: &RateLimitError{Status: 429, Message: rateLimitMsg, ChallengeTokens: []string{""},
				Account: "+15550000001", Endpoint: "/v2/send", Method: "POST"},
			wantText: "rest: POST /v2/send: rate limited by Signal (429): " + rateLimitMsg + "; pause sending from this account: no challenge token was given, so wait before sending again",
			outcome:  OutcomeRateLimited,
		},
		{
			name:     "429 without tokens",
			reply:    reply{429, "application/json", `{"error":"rate limited","account":"+15550000009"}`},
			call:     send,
			wantAPI:  &APIError{Status: 429, Message: "rate limited", Endpoint: "/v2/send", Method: "POST"},
			wantRL:   &RateLimitError{Status: 429, Message: "rate limited", Account: "+15550000009", Endpoint: "/v2/send", Method: "POST"},
			wantText: "rest: POST /v2/send: rate limited by Signal (429): rate limited; pause sending from this account: no challenge token was given, so wait before sending again",
			outcome:  OutcomeRateLimited,
		},
		{
			name:  "400 rate limit text of normal mode",
			reply: reply{400, "application/json", `{"error":"CAPTCHA proof required for sending to \"+15550000002\", available options \"RECAPTCHA, PUSH_CHALLENGE\" with challenge token \"abc-123\", or wait \"86400\" seconds."}`},
			call:  send,
			wantAPI: &APIError{Status: 400, Message: `CAPTCHA proof required for sending to "+15550000002", available options "RECAPTCHA, PUSH_CHALLENGE" with challenge token "abc-123", or wait "86400" seconds.`,
				Endpoint: "/v2/send", Method: "POST"},
			wantRL: &RateLimitError{Status: 400, Message: `CAPTCHA proof required for sending to "+15550000002", available options "RECAPTCHA, PUSH_CHALLENGE" with challenge token "abc-123", or wait "86400" seconds.`,
				ChallengeTokens: []string{"abc-123"}, Account: testNumber, Endpoint: "/v2/send", Method: "POST"},
			wantText:     `rest: POST /v2/send: rate limited by Signal (400): CAPTCHA proof required for sending to "+15550000002", available options "RECAPTCHA, PUSH_CHALLENGE" with challenge token "abc-123", or wait "86400" seconds.; pause sending from this account: solve a captcha and submit it with the challenge token through the rate-limit-challenge endpoint`,
			hasChallenge: true,
			outcome:      OutcomeRateLimited,
		},
		{
			name:     "500 json",
			reply:    reply{500, "application/json", `{"error":"Couldn't get list of accounts: boom"}`},
			call:     func(ctx context.Context, c *Client) error { _, err := c.Accounts(ctx); return err },
			wantAPI:  &APIError{Status: 500, Message: "Couldn't get list of accounts: boom", Endpoint: "/v1/accounts", Method: "GET"},
			wantText: "rest: GET /v1/accounts: signal-cli-rest-api returned 500: Couldn't get list of accounts: boom",
			outcome:  OutcomeAPIError,
		},
		{
			name:     "500 empty body",
			reply:    reply{500, "", ""},
			call:     func(ctx context.Context, c *Client) error { return c.Health(ctx) },
			wantAPI:  &APIError{Status: 500, Message: "Internal Server Error", Endpoint: "/v1/health", Method: "GET"},
			wantText: "rest: GET /v1/health: signal-cli-rest-api returned 500: Internal Server Error",
			outcome:  OutcomeAPIError,
		},
		{
			name:     "502 html from a proxy",
			reply:    reply{502, "text/html", "<html>\n <body>Bad   Gateway</body>\n</html>"},
			call:     func(ctx context.Context, c *Client) error { _, err := c.About(ctx); return err },
			wantAPI:  &APIError{Status: 502, Message: "<html> <body>Bad Gateway</body> </html>", Endpoint: "/v1/about", Method: "GET"},
			wantText: "rest: GET /v1/about: signal-cli-rest-api returned 502: <html> <body>Bad Gateway</body> </html>",
			outcome:  OutcomeAPIError,
		},
		{
			name:     "redirect is not followed",
			reply:    reply{301, "text/html", ""},
			call:     func(ctx context.Context, c *Client) error { _, err := c.ListAttachments(ctx); return err },
			wantAPI:  &APIError{Status: 301, Message: "Moved Permanently", Endpoint: "/v1/attachments", Method: "GET"},
			wantText: "rest: GET /v1/attachments: signal-cli-rest-api returned 301: Moved Permanently",
			outcome:  OutcomeAPIError,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := newRecorder(t, tt.reply)
			var obs observed
			c := newTestClient(t, rec.srv.URL, func(o *Options) { o.Observer = obs.observe })
			err := tt.call(context.Background(), c)
			if err == nil {
				t.Fatal("err = nil")
			}
			if err.Error() != tt.wantText {
				t.Errorf("Error() =\n%q\nwant\n%q", err.Error(), tt.wantText)
			}
			var apiErr *APIError
			if !errors.As(err, &apiErr) {
				t.Fatalf("errors.As(*APIError) failed for %T", err)
			}
			if d := cmp.Diff(tt.wantAPI, apiErr); d != "" {
				t.Errorf("APIError (-want +got):\n%s", d)
			}
			var rl *RateLimitError
			isRL := errors.As(err, &rl)
			if isRL != (tt.wantRL != nil) || IsRateLimited(err) != (tt.wantRL != nil) {
				t.Fatalf("rate limit: As=%v IsRateLimited=%v, want %v", isRL, IsRateLimited(err), tt.wantRL != nil)
			}
			if isRL {
				if d := cmp.Diff(tt.wantRL, rl); d != "" {
					t.Errorf("RateLimitError (-want +got):\n%s", d)
				}
				if rl.HasChallenge() != tt.hasChallenge {
					t.Errorf("HasChallenge = %v, want %v", rl.HasChallenge(), tt.hasChallenge)
				}
			}
			if IsNotFound(err) != tt.notFound || errors.Is(err, ErrNotFound) != tt.notFound {
				t.Errorf("IsNotFound = %v, want %v", IsNotFound(err), tt.notFound)
			}
			if errors.Is(err, ErrUnknownOutcome) {
				t.Error("a definite status answer must not be ErrUnknownOutcome")
			}
			calls := obs.get()
			if len(calls) != 1 || calls[0].Outcome != tt.outcome || calls[0].Status != tt.reply.status {
				t.Errorf("observed %+v, want one call with outcome %q and status %d", calls, tt.outcome, tt.reply.status)
			}
		})
	}
}

func TestNewValidation(t *testing.T) {
	tests := []struct {
		name string
		opts Options
		want string
	}{
		{"empty base", Options{Number: testNumber}, "rest: BaseURL is empty; set it to the signal-cli-rest-api address, like http://signal-api:8080"},
		{"websocket scheme", Options{BaseURL: "ws://signal:8080", Number: testNumber}, `rest: BaseURL scheme "ws" is not supported; use http:// or https:// (the websocket URL is configured separately)`},
		{"no scheme", Options{BaseURL: "signal:8080", Number: testNumber}, `rest: BaseURL scheme "signal" is not supported; use http:// or https:// (the websocket URL is configured separately)`},
		{"no host", Options{BaseURL: "http://", Number: testNumber}, "rest: BaseURL has no host; use a form like http://signal-api:8080"},
		{"query", Options{BaseURL: "http://h/?a=1", Number: testNumber}, "rest: BaseURL must not have a query or fragment; give only scheme, host and an optional path prefix"},
		{"user info", Options{BaseURL: "http://u:p@h", Number: testNumber}, "rest: BaseURL must not carry user info; use Options.Token for a reverse proxy's credentials"},
		{"number without plus", Options{BaseURL: "http://h", Number: "15550000001"}, `rest: invalid Number: it must be the bot account in E.164 form with a leading "+", like +15551234567`},
		{"number with spaces", Options{BaseURL: "http://h", Number: "+1 555 000"}, `rest: invalid Number: it must be the bot account in E.164 form with a leading "+", like +15551234567`},
		{"negative timeout", Options{BaseURL: "http://h", Number: testNumber, Timeout: -1}, "rest: Timeout and AttachmentTimeout must not be negative; use 0 for the defaults"},
		{"negative in flight", Options{BaseURL: "http://h", Number: testNumber, MaxInFlight: -1}, "rest: MaxInFlight must not be negative; use 0 for the default of 4"},
		{"token with newline", Options{BaseURL: "http://h", Number: testNumber, Token: "a\nb"}, "rest: Token, AuthScheme and UserAgent must not contain control characters such as newlines; check how the token is loaded"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := New(tt.opts)
			if err == nil || err.Error() != tt.want {
				t.Fatalf("New err = %v, want %q", err, tt.want)
			}
			if c != nil {
				t.Error("New returned a client with an error")
			}
			if strings.Contains(err.Error(), "15550000001") {
				t.Error("error text contains the phone number")
			}
		})
	}
}
