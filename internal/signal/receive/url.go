package receive

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"
)

// DefaultPathTemplate is the receive endpoint of signal-cli-rest-api. {phone_number} is replaced by
// the path-escaped number.
const DefaultPathTemplate = "/v1/receive/{phone_number}"

var e164 = regexp.MustCompile(`^\+[1-9][0-9]{1,14}$`)

// buildURL turns the service address into the websocket URL, with the same rules as the Python
// client (SIGNAL_SERVICE_URL, SIGNAL_WS_PATH) so that an existing configuration keeps pointing at
// the same place: http maps to ws, https to wss, an address without scheme gets ws, the base path
// is kept, and a template starting with "/" is appended to the base path while one without a
// leading "/" replaces it (it is taken relative to the host root).
func buildURL(serviceURL, number, template string) (string, error) {
	s := strings.TrimSpace(serviceURL)
	if s == "" {
		return "", errors.New("receive: ServiceURL is empty; set it (SIGNAL_SERVICE_URL) to the signal-cli-rest-api address, e.g. http://signal-api:8080")
	}
	if !strings.Contains(s, "://") {
		s = "ws://" + s
	}
	u, err := url.Parse(s)
	if err != nil {
		// url.Error repeats the whole input, which may carry credentials; keep only the cause.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return "", fmt.Errorf("receive: ServiceURL is not a valid URL; use e.g. http://signal-api:8080: %w", err)
	}
	switch strings.ToLower(u.Scheme) {
	case "http", "ws":
		u.Scheme = "ws"
	case "https", "wss":
		u.Scheme = "wss"
	default:
		return "", fmt.Errorf("receive: unsupported scheme %q in ServiceURL; use http, https, ws or wss", u.Scheme)
	}
	if u.Host == "" {
		return "", errors.New("receive: ServiceURL has no host; use e.g. http://signal-api:8080")
	}
	if u.User != nil {
		return "", errors.New("receive: ServiceURL must not contain credentials; pass them as the token (SIGNAL_API_TOKEN) instead")
	}
	if !e164.MatchString(number) {
		// The number itself is not echoed: error texts end up in logs.
		return "", errors.New("receive: Number is not an E.164 phone number; expected + followed by 2 to 15 digits, e.g. +4915112345678")
	}
	if template == "" {
		template = DefaultPathTemplate
	}
	if strings.ContainsAny(template, "?#") {
		return "", errors.New("receive: PathTemplate (SIGNAL_WS_PATH) must be a path only, without query or fragment")
	}
	p := strings.ReplaceAll(template, "{phone_number}", url.PathEscape(number))
	if strings.HasPrefix(p, "/") {
		p = strings.TrimRight(u.EscapedPath(), "/") + p
	} else {
		p = "/" + p
	}
	out := u.Scheme + "://" + u.Host + p
	if u.RawQuery != "" {
		out += "?" + u.RawQuery
	}
	if _, err := url.Parse(out); err != nil {
		return "", errors.New("receive: PathTemplate (SIGNAL_WS_PATH) does not give a valid URL path; use e.g. /v1/receive/{phone_number}")
	}
	return out, nil
}

// numberPattern catches E.164 numbers in texts we did not build ourselves (error strings from
// the network stack or a proxy), raw or with the "+" percent-encoded.
var numberPattern = regexp.MustCompile(`(\+|%2[bB])[0-9]{6,15}`)

// redactor removes the receive URL, the number and the token from error texts before they reach
// logs or State.LastError.
type redactor struct {
	r *strings.Replacer
}

func newRedactor(wsURL, number, token string) redactor {
	pairs := []string{wsURL, "<receive-url>"}
	if esc := url.PathEscape(number); esc != number {
		pairs = append(pairs, esc, "<number>")
	}
	pairs = append(pairs, number, "<number>", url.QueryEscape(number), "<number>")
	// A very short token would match ordinary words; such a token is not a secret anyway.
	if len(token) >= 6 {
		pairs = append(pairs, token, "<token>")
	}
	return redactor{r: strings.NewReplacer(pairs...)}
}

func (r redactor) redact(s string) string {
	return numberPattern.ReplaceAllString(r.r.Replace(s), "<number>")
}
