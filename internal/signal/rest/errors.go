package rest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
)

var (
	// ErrUnknownOutcome marks a failed non-idempotent call (send, remote delete, reactions,
	// receipts, rate-limit challenge) whose request may have reached the server and taken
	// effect: a timeout, a dropped connection, or a 2xx answer that could not be read. The
	// returned error wraps both this sentinel and the cause. Do not retry such a call
	// automatically; a retried send can deliver the message twice (reference §7 item 6).
	ErrUnknownOutcome = errors.New("outcome unknown: the request may have reached signal-cli-rest-api and taken effect, so it was not retried; check whether it did before repeating it")

	// ErrNotFound matches (through errors.Is) an *APIError for a 404 that names a missing
	// resource, such as an unknown group or attachment. A 404 from the router (no such
	// endpoint, APIError.NoRoute) does not match.
	ErrNotFound = errors.New("not found")

	// ErrRateLimited matches (through errors.Is) every *RateLimitError.
	ErrRateLimited = errors.New("rate limited")

	// ErrAttachmentTooLarge is wrapped by GetAttachment when the attachment exceeds maxBytes.
	ErrAttachmentTooLarge = errors.New("attachment exceeds the size limit")
)

// APIError is a non-2xx answer from signal-cli-rest-api. Nearly every upstream failure is a 400,
// including server-side ones (reference §4.0), so Status alone says little; Message carries the
// upstream text.
type APIError struct {
	// Status is the HTTP status code.
	Status int
	// Message is the upstream "error" text, or the trimmed body when it held no JSON error,
	// or the status text for an empty body. It can contain phone numbers or group ids.
	Message string
	// Endpoint is the path template, e.g. "/v1/groups/{number}/{groupid}".
	Endpoint string
	// Method is the HTTP method.
	Method string
	// NoRoute is true for a 404 whose body held no JSON error, such as the router's
	// "404 page not found": the endpoint does not exist at BaseURL (wrong path prefix or too
	// old a server), which says nothing about the resource.
	NoRoute bool
}

// Error reports status, endpoint template and upstream message.
func (e *APIError) Error() string {
	if e.NoRoute {
		return fmt.Sprintf("rest: %s %s: signal-cli-rest-api returned %d: %s (no such endpoint; check BaseURL and the server version)",
			e.Method, e.Endpoint, e.Status, e.Message)
	}
	return fmt.Sprintf("rest: %s %s: signal-cli-rest-api returned %d: %s", e.Method, e.Endpoint, e.Status, e.Message)
}

// Is makes errors.Is(err, ErrNotFound) true for a 404 about a missing resource.
func (e *APIError) Is(target error) bool {
	return target == ErrNotFound && e.Status == http.StatusNotFound && !e.NoRoute
}

// RateLimitError reports that Signal rate-limited the bot account. In json-rpc mode this is a
// 429 from /v2/send (reference §4.1). In normal/native mode, and on the other endpoints that
// send messages, it is a 400 whose text mentions rate limiting or a required proof (captcha),
// which this client also maps here.
//
// Treat it as "pause sending from this account and alert an operator", not as a retryable
// error: the limit is lifted with Client.RateLimitChallenge and a captcha solved by a human,
// and the message may even have been delivered (#881).
//
// errors.As(err, &apiErr) with an *APIError target also succeeds, yielding the status and message.
type RateLimitError struct {
	// Status is 429, or 400 in normal/native mode.
	Status int
	// Message is the upstream error text.
	Message string
	// ChallengeTokens are the tokens for RateLimitChallenge as the server sent them. They can be
	// empty strings ([""]) when Signal limits without a challenge, or absent.
	ChallengeTokens []string
	// Account is the rate-limited account as reported by the server (the client's own number
	// when the server did not say).
	Account string
	// Endpoint is the path template.
	Endpoint string
	// Method is the HTTP method.
	Method string
}

// Error reports the endpoint, the upstream message and what to do.
func (e *RateLimitError) Error() string {
	what := "no challenge token was given, so wait before sending again"
	if e.HasChallenge() {
		what = "solve a captcha and submit it with the challenge token through the rate-limit-challenge endpoint"
	}
	return fmt.Sprintf("rest: %s %s: rate limited by Signal (%d): %s; pause sending from this account: %s",
		e.Method, e.Endpoint, e.Status, e.Message, what)
}

// Is makes errors.Is(err, ErrRateLimited) true.
func (e *RateLimitError) Is(target error) bool { return target == ErrRateLimited }

// As lets errors.As fill an *APIError from a rate-limit error, so code that only looks at
// status and message handles both.
func (e *RateLimitError) As(target any) bool {
	if p, ok := target.(**APIError); ok {
		*p = &APIError{Status: e.Status, Message: e.Message, Endpoint: e.Endpoint, Method: e.Method}
		return true
	}
	return false
}

// HasChallenge reports whether at least one non-empty challenge token was given.
func (e *RateLimitError) HasChallenge() bool {
	for _, t := range e.ChallengeTokens {
		if t != "" {
			return true
		}
	}
	return false
}

// IsNotFound reports whether err says the group, attachment or other resource does not exist.
func IsNotFound(err error) bool { return errors.Is(err, ErrNotFound) }

// IsRateLimited reports whether err is (or wraps) a *RateLimitError.
func IsRateLimited(err error) bool { return errors.Is(err, ErrRateLimited) }

// errorBody is the upstream error shape (api.Error, plus the 429 extras).
type errorBody struct {
	Error           *string  `json:"error"`
	ChallengeTokens []string `json:"challenge_tokens"`
	Account         string   `json:"account"`
}

// parseErrorBody finds the {"error":...} object in an error response. gin writes some bodies
// with a text/plain content type, and the websocket upgrade failure prefixes a status line
// ("Bad Request\n{...}"), so the content type is ignored and the object is looked for at the
// start of the body and after each line break.
func parseErrorBody(b []byte) (errorBody, bool) {
	b = bytes.TrimSpace(b)
	for off := 0; off < len(b); {
		if b[off] == '{' {
			var eb errorBody
			// A Decoder tolerates trailing bytes after the object.
			if err := json.NewDecoder(bytes.NewReader(b[off:])).Decode(&eb); err == nil && eb.Error != nil {
				return eb, true
			}
		}
		nl := bytes.IndexByte(b[off:], '\n')
		if nl < 0 {
			break
		}
		off += nl + 1
		for off < len(b) && (b[off] == ' ' || b[off] == '\t' || b[off] == '\r') {
			off++
		}
	}
	return errorBody{}, false
}

// Normal/native mode reports rate limits as a 400 with signal-cli's text (reference §4.1), and
// endpoints other than /v2/send do so in every mode (§4.13, error code -5).
var (
	rateLimitText = regexp.MustCompile(`(?i)due to rate limiting|proof required`)
	challengeText = regexp.MustCompile(`challenge token "([^"]*)"`)
)

// statusError reads a non-2xx response and builds the typed error.
func (c *Client) statusError(r request, resp *http.Response) error {
	raw, readErr := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	eb, isJSON := parseErrorBody(raw)
	msg := ""
	switch {
	case isJSON:
		msg = *eb.Error
	default:
		msg = strings.Join(strings.Fields(string(raw)), " ")
		if len(msg) > maxMessageLen {
			msg = msg[:maxMessageLen] + "..."
		}
	}
	if msg == "" {
		msg = http.StatusText(resp.StatusCode)
		if readErr != nil {
			msg += " (body unreadable: " + readErr.Error() + ")"
		}
	}

	if resp.StatusCode == http.StatusTooManyRequests ||
		(resp.StatusCode == http.StatusBadRequest && rateLimitText.MatchString(msg)) {
		rl := &RateLimitError{
			Status:          resp.StatusCode,
			Message:         msg,
			ChallengeTokens: eb.ChallengeTokens,
			Account:         eb.Account,
			Endpoint:        r.endpoint,
			Method:          r.method,
		}
		if rl.ChallengeTokens == nil {
			for _, m := range challengeText.FindAllStringSubmatch(msg, -1) {
				rl.ChallengeTokens = append(rl.ChallengeTokens, m[1])
			}
		}
		if rl.Account == "" {
			rl.Account = c.rawNumber
		}
		return rl
	}
	return &APIError{
		Status:   resp.StatusCode,
		Message:  msg,
		Endpoint: r.endpoint,
		Method:   r.method,
		NoRoute:  resp.StatusCode == http.StatusNotFound && !isJSON,
	}
}
