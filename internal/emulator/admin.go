package emulator

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// jsonDuration accepts a Go duration string ("250ms", "2s") or a number of milliseconds.
type jsonDuration time.Duration

func (d *jsonDuration) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		v, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("duration %q: %w", s, err)
		}
		*d = jsonDuration(v)
		return nil
	}
	var ms float64
	if err := json.Unmarshal(b, &ms); err != nil {
		return fmt.Errorf("duration must be a string like \"250ms\" or a number of milliseconds: %w", err)
	}
	*d = jsonDuration(time.Duration(ms * float64(time.Millisecond)))
	return nil
}

func (d jsonDuration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

type restFaultJSON struct {
	ID              string       `json:"id,omitempty"`
	Method          string       `json:"method,omitempty"`
	Route           string       `json:"route,omitempty"`
	Account         string       `json:"account,omitempty"`
	Recipient       string       `json:"recipient,omitempty"`
	Count           int          `json:"count,omitempty"`
	Probability     float64      `json:"probability,omitempty"`
	Latency         jsonDuration `json:"latency,omitempty"`
	Status          int          `json:"status,omitempty"`
	Body            string       `json:"body,omitempty"`
	ContentType     string       `json:"content_type,omitempty"`
	Error           string       `json:"error,omitempty"`
	RateLimit       bool         `json:"rate_limit,omitempty"`
	ChallengeTokens []string     `json:"challenge_tokens,omitempty"`
	Hang            bool         `json:"hang,omitempty"`
}

func (j restFaultJSON) fault() RESTFault {
	return RESTFault{
		Method: j.Method, Route: j.Route, Account: j.Account, Recipient: j.Recipient,
		Count: j.Count, Probability: j.Probability, Latency: time.Duration(j.Latency),
		Status: j.Status, Body: j.Body, ContentType: j.ContentType, Error: j.Error,
		RateLimit: j.RateLimit, ChallengeTokens: j.ChallengeTokens, Hang: j.Hang,
	}
}

func restFaultToJSON(id string, f RESTFault) restFaultJSON {
	return restFaultJSON{
		ID: id, Method: f.Method, Route: f.Route, Account: f.Account, Recipient: f.Recipient,
		Count: f.Count, Probability: f.Probability, Latency: jsonDuration(f.Latency),
		Status: f.Status, Body: f.Body, ContentType: f.ContentType, Error: f.Error,
		RateLimit: f.RateLimit, ChallengeTokens: f.ChallengeTokens, Hang: f.Hang,
	}
}

type socketFaultJSON struct {
	ID              string       `json:"id,omitempty"`
	ClientID        string       `json:"client_id,omitempty"`
	Index           int64        `json:"index,omitempty"`
	Account         string       `json:"account,omitempty"`
	DropProbability float64      `json:"drop_probability,omitempty"`
	DropEvery       int          `json:"drop_every,omitempty"`
	DropNext        int          `json:"drop_next,omitempty"`
	Stall           bool         `json:"stall,omitempty"`
	WriteDelay      jsonDuration `json:"write_delay,omitempty"`
}

func (j socketFaultJSON) fault() SocketFault {
	return SocketFault{
		SocketSelector:  SocketSelector{ClientID: j.ClientID, Index: j.Index, Account: j.Account},
		DropProbability: j.DropProbability, DropEvery: j.DropEvery, DropNext: j.DropNext,
		Stall: j.Stall, WriteDelay: time.Duration(j.WriteDelay),
	}
}

type generatorJSON struct {
	Account       string         `json:"account"`
	Direct        int            `json:"direct"`
	Hidden        int            `json:"hidden"`
	Groups        int            `json:"groups"`
	Conversations int            `json:"conversations"`
	GroupMembers  int            `json:"group_members"`
	Rate          float64        `json:"rate"`
	Burst         int            `json:"burst"`
	Count         int            `json:"count"`
	Duration      jsonDuration   `json:"duration"`
	Seed          uint64         `json:"seed"`
	Weights       map[string]int `json:"weights"`
	BaseTimeMS    int64          `json:"base_time_ms"`
	KeepRaw       bool           `json:"keep_raw"`
}

func (j generatorJSON) config() GeneratorConfig {
	c := GeneratorConfig{
		Account: j.Account, Direct: j.Direct, Hidden: j.Hidden, Groups: j.Groups,
		Conversations: j.Conversations, GroupMembers: j.GroupMembers, Rate: j.Rate, Burst: j.Burst,
		Count: j.Count, Duration: time.Duration(j.Duration), Seed: j.Seed, KeepRaw: j.KeepRaw,
	}
	if j.Weights != nil {
		c.Weights = map[EventKind]int{}
		for k, v := range j.Weights {
			c.Weights[EventKind(k)] = v
		}
	}
	if j.BaseTimeMS > 0 {
		c.BaseTime = time.UnixMilli(j.BaseTimeMS)
	}
	return c
}

// injectJSON is the body of POST /_emulator/inject and /_emulator/stage.
type injectJSON struct {
	Account string            `json:"account"`
	Frame   json.RawMessage   `json:"frame"`
	Frames  []json.RawMessage `json:"frames"`
	// Raw frames are injected verbatim even when they are not JSON.
	RawFrames []string `json:"raw_frames"`
}

func (j injectJSON) frames() [][]byte {
	var frames [][]byte
	if len(j.Frame) > 0 {
		frames = append(frames, j.Frame)
	}
	for _, f := range j.Frames {
		frames = append(frames, f)
	}
	for _, f := range j.RawFrames {
		frames = append(frames, []byte(f))
	}
	return frames
}

type adminGroupJSON struct {
	Account string `json:"account"`
	Group
}

// serveAdmin serves the control API documented in the package comment.
func (e *Emulator) serveAdmin(w http.ResponseWriter, r *http.Request) {
	path := strings.TrimSuffix(strings.TrimPrefix(r.URL.Path, adminPrefix), "/")
	body, err := io.ReadAll(io.LimitReader(r.Body, 64<<20))
	if err != nil {
		adminError(w, http.StatusBadRequest, "read body: "+err.Error())
		return
	}
	decode := func(v any) bool {
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		if err := dec.Decode(v); err != nil {
			adminError(w, http.StatusBadRequest, "invalid JSON body: "+err.Error())
			return false
		}
		return true
	}
	m := r.Method
	switch {
	case path == "" && m == http.MethodGet:
		writeJSON(w, http.StatusOK, adminIndex)

	case path == "inject" && m == http.MethodPost:
		var req injectJSON
		if !decode(&req) {
			return
		}
		frames := req.frames()
		var delivered []int
		if req.Account != "" {
			delivered = e.injectOwned(req.Account, frames)
		} else {
			delivered = make([]int, 0, len(frames))
			for _, f := range frames {
				delivered = append(delivered, e.InjectParams(f))
			}
		}
		writeJSON(w, http.StatusOK, map[string]any{"delivered": delivered})

	case path == "stage" && m == http.MethodPost:
		var req injectJSON
		if !decode(&req) {
			return
		}
		frames := req.frames()
		total := e.stageOwned(req.Account, frames)
		writeJSON(w, http.StatusOK, map[string]int{"staged": len(frames), "total": total})
	case path == "stage" && m == http.MethodGet:
		writeJSON(w, http.StatusOK, map[string]int{"total": e.Staged()})
	case path == "stage" && m == http.MethodDelete:
		writeJSON(w, http.StatusOK, map[string]int{"discarded": e.DiscardStaged()})
	case path == "stage/release" && m == http.MethodPost:
		var req struct {
			Wait bool `json:"wait"`
		}
		if len(bytes.TrimSpace(body)) > 0 && !decode(&req) {
			return
		}
		res, err := e.ReleaseStaged(r.Context(), req.Wait)
		if err != nil {
			adminError(w, http.StatusServiceUnavailable, "released, but gave up waiting for the writes: "+err.Error())
			return
		}
		writeJSON(w, http.StatusOK, res)

	case path == "events" && m == http.MethodPost:
		var req struct {
			Events []EventSpec `json:"events"`
		}
		if !decode(&req) {
			return
		}
		type result struct {
			Timestamp int64 `json:"timestamp"`
			Sockets   int   `json:"sockets"`
		}
		out := make([]result, 0, len(req.Events))
		for _, s := range req.Events {
			ts, n, err := e.InjectEvent(s)
			if err != nil {
				adminError(w, http.StatusBadRequest, err.Error())
				return
			}
			out = append(out, result{ts, n})
		}
		writeJSON(w, http.StatusOK, map[string]any{"results": out})

	case path == "error" && m == http.MethodPost:
		var req struct {
			Message string `json:"message"`
		}
		if !decode(&req) {
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"delivered": e.InjectError(req.Message)})

	case path == "calls" && m == http.MethodGet:
		f, err := callFilterFromQuery(r)
		if err != nil {
			adminError(w, http.StatusBadRequest, err.Error())
			return
		}
		calls := e.Calls(f)
		if calls == nil {
			calls = []Call{}
		}
		writeJSON(w, http.StatusOK, calls)
	case path == "calls" && m == http.MethodDelete:
		e.ResetCalls()
		w.WriteHeader(http.StatusNoContent)

	case path == "stats" && m == http.MethodGet:
		writeJSON(w, http.StatusOK, e.Stats())

	case path == "sockets" && m == http.MethodGet:
		out := []SocketStats{}
		for _, k := range e.hub.openSockets() {
			out = append(out, k.stats())
		}
		writeJSON(w, http.StatusOK, out)

	case path == "faults" && m == http.MethodGet:
		rest := []restFaultJSON{}
		for id, f := range e.faults.RESTRules() {
			rest = append(rest, restFaultToJSON(id, f))
		}
		socks := []socketFaultJSON{}
		for id, f := range e.faults.SocketRules() {
			socks = append(socks, socketFaultJSON{ID: id, ClientID: f.ClientID, Index: f.Index, Account: f.Account,
				DropProbability: f.DropProbability, DropEvery: f.DropEvery, DropNext: f.DropNext, Stall: f.Stall, WriteDelay: jsonDuration(f.WriteDelay)})
		}
		writeJSON(w, http.StatusOK, map[string]any{"delivery": e.faults.Delivery(), "rest": rest, "sockets": socks})
	case path == "faults" && m == http.MethodDelete:
		e.faults.Clear()
		w.WriteHeader(http.StatusNoContent)
	case path == "faults/delivery" && (m == http.MethodPut || m == http.MethodPost):
		var req struct {
			Mode DeliveryMode `json:"mode"`
		}
		if !decode(&req) {
			return
		}
		if err := e.faults.SetDelivery(req.Mode); err != nil {
			adminError(w, http.StatusBadRequest, err.Error())
			return
		}
		w.WriteHeader(http.StatusNoContent)
	case path == "faults/rest" && m == http.MethodPost:
		var req restFaultJSON
		if !decode(&req) {
			return
		}
		writeJSON(w, http.StatusCreated, map[string]string{"id": e.faults.AddREST(req.fault())})
	case path == "faults/rest" && m == http.MethodDelete:
		e.faults.ClearREST()
		w.WriteHeader(http.StatusNoContent)
	case strings.HasPrefix(path, "faults/rest/") && m == http.MethodDelete:
		if !e.faults.RemoveREST(strings.TrimPrefix(path, "faults/rest/")) {
			adminError(w, http.StatusNotFound, "no REST fault with that id")
			return
		}
		w.WriteHeader(http.StatusNoContent)
	case path == "faults/sockets" && m == http.MethodPost:
		var req socketFaultJSON
		if !decode(&req) {
			return
		}
		writeJSON(w, http.StatusCreated, map[string]string{"id": e.faults.AddSocket(req.fault())})
	case path == "faults/sockets" && m == http.MethodDelete:
		e.faults.ClearSockets()
		w.WriteHeader(http.StatusNoContent)
	case strings.HasPrefix(path, "faults/sockets/") && m == http.MethodDelete:
		if !e.faults.RemoveSocket(strings.TrimPrefix(path, "faults/sockets/")) {
			adminError(w, http.StatusNotFound, "no socket fault with that id")
			return
		}
		w.WriteHeader(http.StatusNoContent)
	case path == "faults/drop-sockets" && m == http.MethodPost:
		var req struct {
			ClientID string `json:"client_id"`
			Index    int64  `json:"index"`
			Account  string `json:"account"`
		}
		if !decode(&req) {
			return
		}
		n := e.faults.DropSockets(SocketSelector{ClientID: req.ClientID, Index: req.Index, Account: req.Account})
		writeJSON(w, http.StatusOK, map[string]int{"closed": n})
	case path == "faults/crash" && m == http.MethodPost:
		var req struct {
			Down        jsonDuration `json:"down"`
			HoldEvents  bool         `json:"hold_events"`
			ReplayDelay jsonDuration `json:"replay_delay"`
		}
		if !decode(&req) {
			return
		}
		// Answer first: the crash cuts this very connection.
		writeJSON(w, http.StatusAccepted, map[string]string{"down": time.Duration(req.Down).String()})
		if f, ok := w.(http.Flusher); ok {
			f.Flush()
		}
		opts := CrashOptions{Down: time.Duration(req.Down), HoldEvents: req.HoldEvents, ReplayDelay: time.Duration(req.ReplayDelay)}
		if e.track() {
			go func() {
				defer e.wg.Done()
				time.Sleep(20 * time.Millisecond)
				_ = e.faults.Crash(opts)
			}()
		}

	case path == "generator/start" && m == http.MethodPost:
		var req generatorJSON
		if !decode(&req) {
			return
		}
		g, err := e.StartGenerator(req.config())
		if err != nil {
			adminError(w, http.StatusBadRequest, err.Error())
			return
		}
		writeJSON(w, http.StatusAccepted, map[string]any{"status": g.Status(), "conversations": g.Conversations()})
	case path == "generator/stop" && m == http.MethodPost:
		e.StopGenerator()
		g := e.Generator()
		if g == nil {
			adminError(w, http.StatusNotFound, "no generator was started")
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"status": g.Status()})
	case path == "generator" && m == http.MethodGet:
		g := e.Generator()
		if g == nil {
			adminError(w, http.StatusNotFound, "no generator was started")
			return
		}
		out := map[string]any{"status": g.Status(), "conversations": g.Conversations()}
		if r.URL.Query().Get("emitted") == "true" {
			em := g.Emitted()
			if s := r.URL.Query().Get("since"); s != "" {
				n, err := strconv.Atoi(s)
				if err != nil || n < 0 {
					adminError(w, http.StatusBadRequest, "since must be an emitted index (a non-negative integer)")
					return
				}
				if n > len(em) {
					n = len(em)
				}
				em = em[n:]
			}
			out["emitted"] = em
		}
		writeJSON(w, http.StatusOK, out)

	case path == "groups" && m == http.MethodPost:
		var req adminGroupJSON
		if !decode(&req) {
			return
		}
		g, err := e.AddGroup(req.Account, req.Group)
		if err != nil {
			adminError(w, http.StatusBadRequest, err.Error())
			return
		}
		writeJSON(w, http.StatusCreated, map[string]any{"id": g.RESTID(), "group": g})
	case path == "groups" && m == http.MethodGet:
		account := r.URL.Query().Get("account")
		if account == "" {
			account = e.cfg.Accounts[0]
		}
		writeJSON(w, http.StatusOK, e.Groups(account))
	case path == "attachments" && m == http.MethodPost:
		var req struct {
			ID   string `json:"id"`
			Data []byte `json:"data"`
		}
		if !decode(&req) {
			return
		}
		id, err := e.AddAttachment(req.ID, req.Data)
		if err != nil {
			adminError(w, http.StatusBadRequest, err.Error())
			return
		}
		writeJSON(w, http.StatusCreated, map[string]string{"id": id})
	case path == "accounts" && m == http.MethodPost:
		var req struct {
			Number string `json:"number"`
		}
		if !decode(&req) {
			return
		}
		if req.Number == "" {
			adminError(w, http.StatusBadRequest, "number is required")
			return
		}
		e.AddAccount(req.Number)
		w.WriteHeader(http.StatusNoContent)
	default:
		adminError(w, http.StatusNotFound, "unknown admin endpoint "+m+" "+r.URL.Path+": GET "+adminPrefix+" lists them")
	}
}

func adminError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, apiError{Error: "emulator admin: " + msg})
}

func callFilterFromQuery(r *http.Request) (CallFilter, error) {
	q := r.URL.Query()
	f := CallFilter{Method: q.Get("method"), Route: q.Get("route"), PathPrefix: q.Get("path"), Account: q.Get("account")}
	if s := q.Get("since_id"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return f, errors.New("since_id must be an integer call id")
		}
		f.SinceID = n
	}
	if s := q.Get("since"); s != "" {
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return f, errors.New("since must be an RFC 3339 time, e.g. 2026-01-01T00:00:00Z")
		}
		f.Since = t
	}
	if s := q.Get("status"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			return f, errors.New("status must be an integer")
		}
		f.Status = n
	}
	return f, nil
}

var adminIndex = []string{
	"POST   /_emulator/inject              {account?, frame?, frames?, raw_frames?} -> {delivered:[n]}",
	"POST   /_emulator/stage               {account?, frame?, frames?, raw_frames?} -> {staged, total} (held, not injected)",
	"GET    /_emulator/stage               -> {total}",
	"DELETE /_emulator/stage               -> {discarded}",
	"POST   /_emulator/stage/release       {wait?} -> {released, accepted, unreached, written, took_ms}",
	"POST   /_emulator/events              {events:[EventSpec]} -> {results:[{timestamp, sockets}]}",
	"POST   /_emulator/error               {message} -> {delivered:n}",
	"GET    /_emulator/calls               ?since_id&since&route&path&method&account&status -> [Call]",
	"DELETE /_emulator/calls",
	"GET    /_emulator/stats",
	"GET    /_emulator/sockets",
	"GET    /_emulator/faults",
	"DELETE /_emulator/faults",
	"PUT    /_emulator/faults/delivery     {mode: reliable|busy-drop|global-stall}",
	"POST   /_emulator/faults/rest         RESTFault -> {id}",
	"DELETE /_emulator/faults/rest[/{id}]",
	"POST   /_emulator/faults/sockets      SocketFault -> {id}",
	"DELETE /_emulator/faults/sockets[/{id}]",
	"POST   /_emulator/faults/drop-sockets {client_id?, index?, account?} -> {closed:n}",
	"POST   /_emulator/faults/crash        {down, hold_events?, replay_delay?}",
	"POST   /_emulator/generator/start     GeneratorConfig -> {status, conversations}",
	"POST   /_emulator/generator/stop",
	"GET    /_emulator/generator           ?emitted=true&since=N",
	"POST   /_emulator/groups              {account?, internal_id?, name, members:[{number,uuid}], ...}",
	"GET    /_emulator/groups              ?account",
	"POST   /_emulator/attachments         {id?, data:<base64>} -> {id}",
	"POST   /_emulator/accounts            {number}",
}
