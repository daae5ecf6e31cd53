package logging

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"unicode"
)

// Redacted replaces a value whose key says it carries content.
const Redacted = "[redacted]"

// Redactor removes personal data from log text. Phone numbers keep their last
// two digits; uuids and group ids become "h:" + 16 hex digits of an
// HMAC-SHA256 under the redactor's key, so lines about the same id correlate
// while nobody without the key can test a guessed number against them. Values
// under content keys (ContentKey) are replaced whole.
//
// Code that wants to log an id on purpose logs Hash(id) under any key.
type Redactor struct {
	key []byte
}

// NewRedactor returns a redactor keyed with key; an empty key gets a random
// 32-byte key, so hashes then match only within this process.
func NewRedactor(key []byte) *Redactor {
	if len(key) == 0 {
		key = make([]byte, 32)
		if _, err := rand.Read(key); err != nil {
			// crypto/rand does not fail on supported platforms; a fixed
			// key would still hide numbers, only weaker against guessing.
			key = []byte("signal-client: crypto/rand failed")
		}
	}
	return &Redactor{key: bytes.Clone(key)}
}

// Hash is the keyed hash of an id as it appears in redacted logs. Both forms
// of a group id (the internal base64 id and the REST "group.<base64>" id) and
// both cases of a uuid hash alike.
func (r *Redactor) Hash(id string) string {
	m := hmac.New(sha256.New, r.key)
	m.Write([]byte(canonicalID(id)))
	return "h:" + hex.EncodeToString(m.Sum(nil))[:16]
}

// canonicalID maps the spellings of one id to one string.
func canonicalID(id string) string {
	if rest, ok := strings.CutPrefix(id, "group."); ok {
		if u, err := url.PathUnescape(rest); err == nil {
			rest = u
		}
		for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
			if b, err := enc.DecodeString(rest); err == nil && len(b) > 0 {
				return string(b)
			}
		}
		return id
	}
	if uuidRe.MatchString(id) && len(id) == 36 {
		return strings.ToLower(id)
	}
	return id
}

// MaskPhone keeps a phone number's "+" (or "%2B") and last two digits.
func MaskPhone(p string) string {
	prefix := ""
	switch {
	case strings.HasPrefix(p, "+"):
		prefix, p = "+", p[1:]
	case len(p) > 3 && strings.EqualFold(p[:3], "%2b"):
		prefix, p = p[:3], p[3:]
	}
	if len(p) <= 2 {
		return prefix + strings.Repeat("*", len(p))
	}
	return prefix + strings.Repeat("*", len(p)-2) + p[len(p)-2:]
}

var (
	// REST group ids, also URL-escaped inside paths.
	groupRestRe = regexp.MustCompile(`group\.[A-Za-z0-9+/=_%-]{4,}`)
	uuidRe      = regexp.MustCompile(`[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}`)
	// Runs of base64 text; a run that is exactly a 32-byte (v2 group) or
	// 16-byte (v1 group) id is hashed. Padding ends a run, so "id=<b64>="
	// splits into "id=" and "<b64>=".
	b64RunRe = regexp.MustCompile(`[A-Za-z0-9+/_-]+={0,2}`)
	// E.164 numbers, also with the "+" URL-escaped (query strings).
	phoneRe = regexp.MustCompile(`(?:\+|%2[Bb])[0-9]{6,}`)
	// Names that only a raw signal-cli frame carries: a string holding one
	// of them is a raw envelope (or a piece of one) and is dropped whole.
	envelopeMarkers = []string{`"envelope"`, `"dataMessage"`, `"syncMessage"`, `"sourceNumber"`, `"sourceUuid"`, `\"envelope\"`}
)

// RedactString removes phone numbers, uuids and group ids from free text
// (messages, error texts, Stringers). Text that holds JSON has its content
// keys redacted too; a raw frame that is not valid JSON is dropped whole.
func (r *Redactor) RedactString(s string) string {
	if s == "" {
		return s
	}
	if t := strings.TrimSpace(s); len(t) > 1 && (t[0] == '{' || t[0] == '[') {
		var v any
		d := json.NewDecoder(strings.NewReader(t))
		d.UseNumber()
		if d.Decode(&v) == nil && !d.More() {
			return r.redactJSON(v)
		}
	}
	for _, m := range envelopeMarkers {
		if strings.Contains(s, m) {
			return "[redacted raw envelope]"
		}
	}
	if !strings.ContainsAny(s, "+%-=") && !strings.Contains(s, "group.") {
		return s // fast path: no number, uuid or group id can hide in s
	}
	s = groupRestRe.ReplaceAllStringFunc(s, r.Hash)
	s = uuidRe.ReplaceAllStringFunc(s, r.Hash)
	s = b64RunRe.ReplaceAllStringFunc(s, func(run string) string {
		if (len(run) == 44 && strings.HasSuffix(run, "=") && !strings.HasSuffix(run, "==")) ||
			(len(run) == 24 && strings.HasSuffix(run, "==")) {
			return r.Hash(run)
		}
		return run
	})
	return phoneRe.ReplaceAllStringFunc(s, MaskPhone)
}

// contentWords are key names (or the last word of a key, "reply_text",
// "quoteBody") whose values are message content or a raw frame. Keys are
// compared in lower case with '_', '-' and '.' removed.
var contentKeys = map[string]bool{
	"body": true, "text": true, "message": true, "msg": true, "messagebody": true, "messagetext": true,
	"content": true, "raw": true, "rawmessage": true, "rawenvelope": true, "rawframe": true, "rawjson": true,
	"envelope": true, "frame": true, "payload": true, "datamessage": true, "syncmessage": true,
	"editmessage": true, "storymessage": true, "attachment": true, "attachments": true,
	"attachmentname": true, "filename": true, "caption": true, "quote": true, "quotetext": true,
	"name": true, "sourcename": true, "profilename": true, "displayname": true, "contactname": true,
	"groupname": true, "description": true, "mentions": true, "preview": true, "previews": true,
	"sticker": true, "contact": true, "contacts": true, "reaction": true, "emoji": true,
}

var contentLastWords = map[string]bool{
	"body": true, "text": true, "envelope": true, "payload": true, "filename": true, "caption": true,
	"attachment": true, "attachments": true, "frame": true,
}

// ContentKey reports whether a field or JSON key names message content, so
// that its whole value is replaced by Redacted.
func ContentKey(key string) bool {
	if key == "" {
		return false
	}
	norm := strings.Map(func(r rune) rune {
		if r == '_' || r == '-' || r == '.' {
			return -1
		}
		return unicode.ToLower(r)
	}, key)
	if contentKeys[norm] {
		return true
	}
	return contentLastWords[lastWord(key)]
}

// lastWord is the last word of snake_case, kebab-case, dotted or camelCase.
func lastWord(key string) string {
	i := len(key)
	for i > 0 {
		c := rune(key[i-1])
		if c == '_' || c == '-' || c == '.' {
			break
		}
		if unicode.IsUpper(c) {
			i--
			break
		}
		i--
	}
	return strings.ToLower(strings.TrimLeft(key[i:], "_-."))
}

// redactJSON redacts a decoded JSON tree and encodes it again.
func (r *Redactor) redactJSON(v any) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(r.walk(v)); err != nil {
		return Redacted
	}
	return strings.TrimRight(b.String(), "\n")
}

func (r *Redactor) walk(v any) any {
	switch t := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(t))
		for k, val := range t {
			if ContentKey(k) {
				out[r.RedactString(k)] = Redacted
				continue
			}
			out[r.RedactString(k)] = r.walk(val)
		}
		return out
	case []any:
		out := make([]any, len(t))
		for i, val := range t {
			out[i] = r.walk(val)
		}
		return out
	case string:
		return r.RedactString(t)
	}
	return v
}

// reflected redacts a value logged with zap.Any / zap.Reflect. It goes
// through JSON, as zap's JSON encoder would, and comes back as raw JSON.
func (r *Redactor) reflected(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		return mustJSON(r.RedactString(fmt.Sprintf("%+v", v)))
	}
	var tree any
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	if err := d.Decode(&tree); err != nil {
		return mustJSON(Redacted)
	}
	return json.RawMessage(r.redactJSON(tree))
}

func mustJSON(s string) json.RawMessage {
	b, _ := json.Marshal(s) // a string always marshals
	return b
}
