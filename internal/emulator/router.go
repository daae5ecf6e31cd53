package emulator

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// adminPrefix is where the emulator's own control API lives, next to the emulated REST API.
const adminPrefix = "/_emulator/"

type handlerFunc func(c *reqCtx)

type route struct {
	method  string
	pattern string
	segs    []string
	h       handlerFunc
}

type router struct {
	routes []*route
}

func (rt *router) add(method, pattern string, h handlerFunc) {
	rt.routes = append(rt.routes, &route{method: method, pattern: pattern, segs: strings.Split(pattern, "/"), h: h})
}

// match finds the route for method and the decoded path. Like gin (httprouter) a parameter
// never matches an empty segment.
func (rt *router) match(method, path string) (*route, map[string]string) {
	segs := strings.Split(path, "/")
	for _, r := range rt.routes {
		if r.method != method || len(r.segs) != len(segs) {
			continue
		}
		params := map[string]string{}
		ok := true
		for i, s := range r.segs {
			if strings.HasPrefix(s, "{") {
				if segs[i] == "" {
					ok = false
					break
				}
				params[s[1:len(s)-1]] = segs[i]
				continue
			}
			if s != segs[i] {
				ok = false
				break
			}
		}
		if ok {
			return r, params
		}
	}
	return nil, nil
}

func (e *Emulator) newRouter() *router {
	rt := &router{}
	rt.add(http.MethodGet, "/v1/about", e.handleAbout)
	rt.add(http.MethodGet, "/v1/health", e.handleHealth)
	rt.add(http.MethodGet, "/v1/accounts", e.handleAccounts)
	rt.add(http.MethodPost, "/v1/accounts/{number}/rate-limit-challenge", e.handleRateLimitChallenge)
	rt.add(http.MethodPost, "/v1/send", e.handleSendV1)
	rt.add(http.MethodPost, "/v2/send", e.handleSendV2)
	rt.add(http.MethodGet, "/v1/receive/{number}", e.handleReceive)
	rt.add(http.MethodPost, "/v1/reactions/{number}", e.handleReaction(false))
	rt.add(http.MethodDelete, "/v1/reactions/{number}", e.handleReaction(true))
	rt.add(http.MethodPost, "/v1/receipts/{number}", e.handleReceipt)
	rt.add(http.MethodPut, "/v1/typing-indicator/{number}", e.handleTyping)
	rt.add(http.MethodDelete, "/v1/typing-indicator/{number}", e.handleTyping)
	rt.add(http.MethodDelete, "/v1/remote-delete/{number}", e.handleRemoteDelete)
	rt.add(http.MethodGet, "/v1/groups/{number}", e.handleListGroups)
	rt.add(http.MethodPost, "/v1/groups/{number}", e.handleCreateGroup)
	rt.add(http.MethodGet, "/v1/groups/{number}/{groupid}", e.handleGetGroup)
	rt.add(http.MethodPut, "/v1/groups/{number}/{groupid}", e.handleUpdateGroup)
	rt.add(http.MethodDelete, "/v1/groups/{number}/{groupid}", e.handleDeleteGroup)
	rt.add(http.MethodPost, "/v1/groups/{number}/{groupid}/members", e.handleGroupMembers(true, false))
	rt.add(http.MethodDelete, "/v1/groups/{number}/{groupid}/members", e.handleGroupMembers(false, false))
	rt.add(http.MethodPost, "/v1/groups/{number}/{groupid}/admins", e.handleGroupMembers(true, true))
	rt.add(http.MethodDelete, "/v1/groups/{number}/{groupid}/admins", e.handleGroupMembers(false, true))
	rt.add(http.MethodPost, "/v1/groups/{number}/{groupid}/block", e.handleGroupAction("block"))
	rt.add(http.MethodPost, "/v1/groups/{number}/{groupid}/join", e.handleGroupAction("join"))
	rt.add(http.MethodPost, "/v1/groups/{number}/{groupid}/quit", e.handleGroupAction("quit"))
	rt.add(http.MethodGet, "/v1/attachments", e.handleListAttachments)
	rt.add(http.MethodGet, "/v1/attachments/{attachment}", e.handleGetAttachment)
	rt.add(http.MethodDelete, "/v1/attachments/{attachment}", e.handleDeleteAttachment)
	return rt
}

// ServeHTTP serves the emulated REST API and, under /_emulator/, the admin API.
func (e *Emulator) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// Handlers are owned goroutines too: Close waits for them (they all give up on close).
	if !e.track() {
		http.Error(w, "emulator closed", http.StatusServiceUnavailable)
		return
	}
	defer e.wg.Done()
	if strings.HasPrefix(r.URL.Path, adminPrefix) {
		e.serveAdmin(w, r)
		return
	}
	start := time.Now()
	body := readBody(r)
	_ = r.Body.Close()
	r.Body = io.NopCloser(bytes.NewReader(body))

	rt, params := e.rt.match(r.Method, r.URL.Path)
	// Call.Body (the body decoded as generic JSON) is filled in when the call
	// log is read (callLog.decodeLocked), not for every call: the handlers
	// decode the body into their own types anyway.
	call := &Call{
		Time:     start,
		Method:   r.Method,
		Path:     r.URL.Path,
		Query:    r.URL.RawQuery,
		ClientID: r.Header.Get(ClientIDHeader),
		RawBody:  body,
	}
	if rt != nil {
		call.Route = rt.pattern
		if n, ok := params["number"]; ok {
			if un, err := url.PathUnescape(n); err == nil {
				call.Account = un
			}
		} else {
			call.Account = bodyNumber(body)
		}
	}
	e.calls.add(call)
	rw := &respWriter{ResponseWriter: w}
	c := &reqCtx{e: e, w: rw, r: r, route: rt, params: params, body: body, call: call}
	defer func() {
		if rw.status == 0 {
			// The handler gave up without answering (client gone, emulator closing, a held
			// call): cut the connection instead of letting net/http send an empty 200.
			rw.abort()
		}
		e.calls.update(call, func(cl *Call) {
			cl.Status = rw.status
			cl.Duration = time.Since(start)
		})
	}()

	if rt == nil {
		e.notFound(rw, r)
		return
	}
	if !c.preFaults() {
		return
	}
	rt.h(c)
}

// maxPresized bounds the buffer allocated up front from a request's
// Content-Length (a bigger body is read in growing chunks).
const maxPresized = 1 << 20

// readBody reads the whole request body, in one allocation when the
// Content-Length is known and modest.
func readBody(r *http.Request) []byte {
	if n := r.ContentLength; n > 0 && n <= maxPresized {
		b := make([]byte, n, n+1)
		m, err := io.ReadFull(r.Body, b)
		if err != nil || m < int(n) {
			return b[:m]
		}
		// A body longer than announced cannot reach here through net/http;
		// read on anyway, like io.ReadAll would.
		rest, _ := io.ReadAll(r.Body)
		return append(b, rest...)
	}
	b, _ := io.ReadAll(r.Body)
	return b
}

// bodyNumber is the top-level "number" string of a JSON object body (the
// account of /v1/send and /v2/send), "" when there is none. It decodes only
// the top level, and matches the key exactly like a lookup in the fully
// decoded object would.
func bodyNumber(body []byte) string {
	if len(bytes.TrimSpace(body)) == 0 {
		return ""
	}
	var top map[string]json.RawMessage
	if json.Unmarshal(body, &top) != nil {
		return ""
	}
	raw, ok := top["number"]
	if !ok {
		return ""
	}
	var n string
	if json.Unmarshal(raw, &n) != nil {
		return ""
	}
	return n
}

// bodyValue is the body decoded as generic JSON (nil when empty or not
// JSON), decoded once per request on first use.
func (c *reqCtx) bodyValue() any {
	if !c.decoded {
		c.decoded = true
		c.generic = decodeBody(c.body)
	}
	return c.generic
}

func decodeBody(body []byte) any {
	if len(bytes.TrimSpace(body)) == 0 {
		return nil
	}
	var v any
	if json.Unmarshal(body, &v) != nil {
		return nil
	}
	return v
}

// notFound redirects to the path without its trailing slash when that route exists for the
// method (gin's RedirectTrailingSlash: 301 for GET, 307 otherwise), else answers gin's
// plain-text 404. A known path with the wrong method is a 404 too.
func (e *Emulator) notFound(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Path
	if len(p) > 1 && strings.HasSuffix(p, "/") {
		if rt, _ := e.rt.match(r.Method, p[:len(p)-1]); rt != nil {
			code := http.StatusMovedPermanently
			if r.Method != http.MethodGet {
				code = http.StatusTemporaryRedirect
			}
			u := *r.URL
			u.Path = p[:len(p)-1]
			u.RawPath = ""
			http.Redirect(w, r, u.String(), code)
			return
		}
	}
	w.Header()["Content-Type"] = []string{"text/plain"}
	w.WriteHeader(http.StatusNotFound)
	_, _ = w.Write([]byte("404 page not found"))
}

// reqCtx carries one REST request through its handler.
type reqCtx struct {
	e      *Emulator
	w      *respWriter
	r      *http.Request
	route  *route
	params map[string]string
	body   []byte
	call   *Call
	// generic is the body decoded as generic JSON once decoded is set
	// (bodyValue).
	generic any
	decoded bool
}

// bind decodes the body like gin's BindJSON: unknown fields are ignored, an empty body or a
// wrong JSON type is an error, and only the first JSON value is read.
func (c *reqCtx) bind(v any) error {
	if len(c.body) == 0 {
		return errors.New("invalid request")
	}
	return json.NewDecoder(bytes.NewReader(c.body)).Decode(v)
}

// bindError answers a bind failure the way gin does: the status is written before the JSON
// body, so the Content-Type is sniffed (text/plain), not application/json.
func (c *reqCtx) bindError() {
	c.w.WriteHeader(http.StatusBadRequest)
	_, _ = c.w.Write(mustJSON(apiError{Error: "Couldn't process request - invalid request"}))
}

// number returns the path number after the handler's own PathUnescape; false means the
// 400 "malformed number" was written.
func (c *reqCtx) number() (string, bool) {
	n, err := url.PathUnescape(c.params["number"])
	if err != nil {
		c.json(http.StatusBadRequest, apiError{Error: "Couldn't process request - malformed number"})
		return "", false
	}
	return n, true
}

type apiError struct {
	Error string `json:"error"`
}

// json writes v like gin's c.JSON (encoding/json with HTML escaping).
func (c *reqCtx) json(status int, v any) {
	writeJSON(c.w, status, v)
}

// rawJSON writes b, already JSON, the way json does.
func (c *reqCtx) rawJSON(status int, b []byte) {
	c.w.Header().Set("Content-Type", "application/json; charset=utf-8")
	c.w.WriteHeader(status)
	_, _ = c.w.Write(b)
}

func (c *reqCtx) fail(msg string) { c.json(http.StatusBadRequest, apiError{Error: msg}) }

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(mustJSON(v))
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		return []byte(`{"error":"emulator: encode response"}`)
	}
	return b
}

// respWriter records the status and keeps websocket hijacking working.
type respWriter struct {
	http.ResponseWriter
	status int
}

func (w *respWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *respWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *respWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	h, ok := w.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, errors.New("emulator: response writer cannot hijack")
	}
	conn, rw, err := h.Hijack()
	if err == nil {
		w.status = http.StatusSwitchingProtocols
	}
	return conn, rw, err
}

// abort closes the connection without writing a response.
func (w *respWriter) abort() {
	if h, ok := w.ResponseWriter.(http.Hijacker); ok {
		if conn, _, err := h.Hijack(); err == nil {
			_ = conn.Close()
		}
	}
}

func (w *respWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}
