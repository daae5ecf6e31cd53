package config

import (
	"math"
	"net"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// parseDuration accepts Go syntax ("500ms", "1m30s") or a bare number of
// seconds ("3", "0.5"), because the Python original took whole seconds and its
// users' environment files still say LOCK_TTL_SECONDS=10.
func parseDuration(s string) (time.Duration, bool) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, false
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		if math.IsNaN(f) || math.IsInf(f, 0) || math.Abs(f) > float64(math.MaxInt64)/float64(time.Second) {
			return 0, false
		}
		return time.Duration(math.Round(f * float64(time.Second))), true
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, false
	}
	return d, true
}

func parseInt(s string) (int, bool) {
	n, err := strconv.Atoi(strings.TrimSpace(s))
	return n, err == nil
}

// parseBool accepts the spellings pydantic accepted, so existing environment
// files keep working.
func parseBool(s string) (bool, bool) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "true", "1", "yes", "on", "t", "y":
		return true, true
	case "false", "0", "no", "off", "f", "n":
		return false, true
	}
	return false, false
}

func parseFloat(s string) (float64, bool) {
	f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, false
	}
	return f, true
}

var (
	e164Re      = regexp.MustCompile(`^\+[1-9][0-9]{6,14}$`)
	keyPrefixRe = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)
	instanceRe  = regexp.MustCompile(`^[A-Za-z0-9_.:-]{1,128}$`)
	schemeRe    = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9+.-]*://`)
	authTokenRe = regexp.MustCompile("^[A-Za-z0-9!#$%&'*+.^_`|~-]*$")
	hostRe      = regexp.MustCompile(`^[A-Za-z0-9_.:%-]+$`)
)

// normalizeSignalURL turns a signal-cli-rest-api base URL given with an http,
// https, ws or wss scheme (or none, which means http) into an http(s) base
// URL without a trailing slash: the REST client and the websocket dialer
// derive their own schemes from it.
func normalizeSignalURL(s string) (string, bool) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", true
	}
	if !schemeRe.MatchString(s) {
		s = "http://" + s
	}
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" {
		return "", false
	}
	switch strings.ToLower(u.Scheme) {
	case "http", "ws":
		u.Scheme = "http"
	case "https", "wss":
		u.Scheme = "https"
	default:
		return "", false
	}
	if u.Port() != "" {
		if p, err := strconv.Atoi(u.Port()); err != nil || p < 1 || p > 65535 {
			return "", false
		}
	}
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = ""
	return u.String(), true
}

func validWSPath(s string) bool {
	if !strings.HasPrefix(s, "/") || strings.ContainsAny(s, "?# ") {
		return false
	}
	rest := strings.ReplaceAll(s, "{phone_number}", "")
	return !strings.ContainsAny(rest, "{}")
}

func validRedisURL(s string) bool {
	u, err := url.Parse(s)
	if err != nil {
		return false
	}
	switch u.Scheme {
	case "redis", "rediss":
		return u.Host != ""
	case "unix":
		return u.Path != ""
	}
	return false
}

func validHost(s string) bool {
	return hostRe.MatchString(s)
}

// maskURL hides the password of a URL; an unparsable URL is hidden whole,
// because it may still hold one.
func maskURL(s string) string {
	if s == "" {
		return ""
	}
	u, err := url.Parse(s)
	if err != nil {
		return "*****"
	}
	return u.Redacted()
}

// maskPhone keeps the "+" and the last two digits of a phone number, the form
// logs and --print-config use.
func maskPhone(p string) string {
	if len(p) <= 3 {
		return strings.Repeat("*", len(p))
	}
	prefix := ""
	if strings.HasPrefix(p, "+") {
		prefix, p = "+", p[1:]
	}
	return prefix + strings.Repeat("*", len(p)-2) + p[len(p)-2:]
}

func kebab(name string) string {
	return strings.ReplaceAll(strings.ToLower(name), "_", "-")
}

// levenshtein is used only to suggest the intended key of a mistyped one.
func levenshtein(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// validLoopbackAddr accepts host:port on a loopback host.
func validLoopbackAddr(s string) bool {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return false
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
