package emulator

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"
)

func decodeJSON(t *testing.T, r response, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(r.body), v); err != nil {
		t.Fatalf("decode %q: %v", r.body, err)
	}
}

func TestAdminInjectEventsAndErrors(t *testing.T) {
	e := start(t, Config{Accounts: []string{bot, otherAcct}})
	a := dial(t, e, bot, nil)
	b := dial(t, e, otherAcct, nil)
	if err := e.WaitSockets(ctxT(t), "", 2); err != nil {
		t.Fatal(err)
	}
	u := e.URL() + "/_emulator/"
	f1, f2 := frameFor(bot, "one"), frameFor(otherAcct, "two")
	// Explicit account: frames go verbatim to that account's sockets.
	do(t, http.MethodPost, u+"inject", `{"account":"`+bot+`","frame":`+string(f1)+`}`).expect(t, 200, `{"delivered":[1]}`)
	if got := a.next(t); string(got) != string(f1) {
		t.Fatalf("frame %s", got)
	}
	// Without an account, the account is read from each frame.
	do(t, http.MethodPost, u+"inject", `{"frames":[`+string(f1)+`,`+string(f2)+`]}`).expect(t, 200, `{"delivered":[1,1]}`)
	a.next(t)
	b.next(t)
	do(t, http.MethodPost, u+"inject", `{"account":"`+bot+`","raw_frames":["not json at all"]}`).expect(t, 200, `{"delivered":[1]}`)
	if got := string(a.next(t)); got != "not json at all" {
		t.Fatalf("raw frame %q", got)
	}
	// Generated events.
	r := do(t, http.MethodPost, u+"events", `{"events":[{"kind":"text","text":"hi"},{"kind":"reaction","target":5,"emoji":"🎉"},{"kind":"receipt","receipt":"read","timestamps":[5]},{"kind":"attachment","attachment":{"id":"pic.png","data":"`+base64.StdEncoding.EncodeToString([]byte("\x89PNG\r\n\x1a\nxx"))+`"}}]}`)
	var res struct {
		Results []struct{ Timestamp, Sockets int64 }
	}
	decodeJSON(t, r, &res)
	if r.status != 200 || len(res.Results) != 4 || res.Results[0].Sockets != 1 || res.Results[1].Timestamp <= res.Results[0].Timestamp {
		t.Fatalf("events: %d %s", r.status, r.body)
	}
	for _, want := range []string{`"message":"hi"`, `"emoji":"🎉"`, `"isRead":true`, `"id":"pic.png"`} {
		if got := string(a.next(t)); !strings.Contains(got, want) {
			t.Fatalf("event frame %s lacks %s", got, want)
		}
	}
	do(t, http.MethodGet, e.URL()+"/v1/attachments/pic.png", "").expect(t, 200, "\x89PNG\r\n\x1a\nxx")
	do(t, http.MethodPost, u+"events", `{"events":[{"kind":"poll"}]}`).expect(t, 400, `{"error":"emulator admin: emulator: build event: unknown kind \"poll\""}`)
	do(t, http.MethodPost, u+"error", `{"message":"boom"}`).expect(t, 200, `{"delivered":2}`)
	for _, c := range []*wsClient{a, b} {
		if got := string(c.next(t)); got != `{"error":"boom"}` {
			t.Fatalf("error frame %s", got)
		}
	}
	if r := do(t, http.MethodPost, u+"inject", `{"bogus":1}`); r.status != 400 || !strings.Contains(r.body, "unknown field") {
		t.Fatalf("unknown field: %d %s", r.status, r.body)
	}
	// Admin calls are not recorded; the two websocket upgrades and the attachment GET are.
	if cs := e.Calls(); len(cs) != 3 || cs[0].Status != 101 || cs[2].Route != "/v1/attachments/{attachment}" {
		t.Fatalf("calls %+v", cs)
	}
}

func TestAdminCallsStatsAndReset(t *testing.T) {
	e := start(t, Config{})
	do(t, http.MethodPost, e.URL()+"/v2/send", `{"number":"`+bot+`","recipients":["+15550000002"],"message":"x"}`)
	mid := time.Now()
	do(t, http.MethodGet, e.URL()+"/v1/health", "")
	do(t, http.MethodGet, e.URL()+"/nope", "")
	var calls []map[string]any
	decodeJSON(t, do(t, http.MethodGet, e.URL()+"/_emulator/calls", ""), &calls)
	if len(calls) != 3 || calls[0]["route"] != "/v2/send" || calls[0]["status"] != 201.0 || calls[0]["account"] != bot ||
		calls[0]["raw_body"] != `{"number":"`+bot+`","recipients":["+15550000002"],"message":"x"}` || calls[0]["body"].(map[string]any)["message"] != "x" {
		t.Fatalf("calls %v", calls)
	}
	decodeJSON(t, do(t, http.MethodGet, e.URL()+"/_emulator/calls?route=/v1/health", ""), &calls)
	if len(calls) != 1 || calls[0]["status"] != 204.0 {
		t.Fatalf("route filter %v", calls)
	}
	decodeJSON(t, do(t, http.MethodGet, e.URL()+"/_emulator/calls?since_id=1&path=/n", ""), &calls)
	if len(calls) != 1 || calls[0]["path"] != "/nope" || calls[0]["status"] != 404.0 {
		t.Fatalf("since_id+path filter %v", calls)
	}
	decodeJSON(t, do(t, http.MethodGet, e.URL()+"/_emulator/calls?since="+mid.Format(time.RFC3339Nano), ""), &calls)
	if len(calls) != 2 {
		t.Fatalf("since filter %v", calls)
	}
	do(t, http.MethodGet, e.URL()+"/_emulator/calls?since=yesterday", "").expect(t, 400, `{"error":"emulator admin: since must be an RFC 3339 time, e.g. 2026-01-01T00:00:00Z"}`)
	var st Stats
	decodeJSON(t, do(t, http.MethodGet, e.URL()+"/_emulator/stats", ""), &st)
	if !st.Up || st.CallsByRoute["POST /v2/send"] != 1 || st.CallsByRoute["GET unknown"] != 1 || st.Delivery != DeliveryReliable {
		t.Fatalf("stats %+v", st)
	}
	do(t, http.MethodDelete, e.URL()+"/_emulator/calls", "").expect(t, 204, "")
	do(t, http.MethodGet, e.URL()+"/_emulator/calls", "").expect(t, 200, "[]")
	do(t, http.MethodGet, e.URL()+"/_emulator/nothing", "").expect(t, 404, `{"error":"emulator admin: unknown admin endpoint GET /_emulator/nothing: GET /_emulator/ lists them"}`)
	if r := do(t, http.MethodGet, e.URL()+"/_emulator/", ""); r.status != 200 || !strings.Contains(r.body, "/_emulator/faults/crash") {
		t.Fatalf("index %d %s", r.status, r.body)
	}
}

func TestAdminFaults(t *testing.T) {
	e := start(t, Config{})
	u := e.URL() + "/_emulator/faults"
	var created struct{ ID string }
	decodeJSON(t, do(t, http.MethodPost, u+"/rest", `{"route":"/v2/send","rate_limit":true,"challenge_tokens":[""],"count":1}`), &created)
	do(t, http.MethodPost, e.URL()+"/v2/send", `{"number":"`+bot+`","recipients":["+2"]}`).expect(t, 429, `{"error":"Failed to send message due to rate limiting. Use the attached challenge tokens to lift the rate limit restrictions via the '/v1/accounts/{number}/rate-limit-challenge' endpoint.","challenge_tokens":[""],"account":"+15550000001"}`)
	decodeJSON(t, do(t, http.MethodPost, u+"/rest", `{"route":"/v1/health","status":503,"latency":"10ms"}`), &created)
	do(t, http.MethodGet, e.URL()+"/v1/health", "").expect(t, 503, defaultFaultBody)
	var listed struct {
		Delivery string
		Rest     []restFaultJSON
		Sockets  []socketFaultJSON
	}
	decodeJSON(t, do(t, http.MethodGet, u, ""), &listed)
	if len(listed.Rest) != 1 || listed.Rest[0].ID != created.ID || time.Duration(listed.Rest[0].Latency) != 10*time.Millisecond || listed.Delivery != "reliable" {
		t.Fatalf("listed %+v", listed)
	}
	do(t, http.MethodDelete, u+"/rest/"+created.ID, "").expect(t, 204, "")
	do(t, http.MethodDelete, u+"/rest/"+created.ID, "").expect(t, 404, `{"error":"emulator admin: no REST fault with that id"}`)
	do(t, http.MethodGet, e.URL()+"/v1/health", "").expect(t, 204, "")

	do(t, http.MethodPut, u+"/delivery", `{"mode":"busy-drop"}`).expect(t, 204, "")
	if e.Faults().Delivery() != DeliveryBusyDrop {
		t.Fatal("delivery not switched")
	}
	if r := do(t, http.MethodPut, u+"/delivery", `{"mode":"lossy"}`); r.status != 400 {
		t.Fatalf("bad mode: %d", r.status)
	}
	c := dial(t, e, bot, http.Header{ClientIDHeader: {"x"}})
	if err := e.WaitSockets(ctxT(t), bot, 1); err != nil {
		t.Fatal(err)
	}
	do(t, http.MethodPut, u+"/delivery", `{"mode":"reliable"}`).expect(t, 204, "")
	decodeJSON(t, do(t, http.MethodPost, u+"/sockets", `{"client_id":"x","drop_next":1}`), &created)
	e.Inject(bot, frameFor(bot, "dropped"))
	e.Inject(bot, frameFor(bot, "kept"))
	if got := string(c.next(t)); !strings.Contains(got, `"kept"`) {
		t.Fatalf("got %s", got)
	}
	do(t, http.MethodDelete, u+"/sockets/"+created.ID, "").expect(t, 204, "")
	// The client can read a frame before the server's write call returns.
	waitFor(t, "delivery counted", func() bool { return sock(t, e, 1).Delivered == 1 })
	var sockets []SocketStats
	decodeJSON(t, do(t, http.MethodGet, e.URL()+"/_emulator/sockets", ""), &sockets)
	if len(sockets) != 1 || sockets[0].ClientID != "x" || sockets[0].Dropped != 1 || sockets[0].Delivered != 1 {
		t.Fatalf("sockets %+v", sockets)
	}
	do(t, http.MethodPost, u+"/drop-sockets", `{"client_id":"x"}`).expect(t, 200, `{"closed":1}`)
	c.waitErr(t)
	do(t, http.MethodDelete, u, "").expect(t, 204, "")

	// Crash through the admin API: answered first, then the port closes.
	do(t, http.MethodPost, u+"/crash", `{"down":"200ms"}`).expect(t, 202, `{"down":"200ms"}`)
	waitFor(t, "crash", func() bool { return !e.Up() })
	if err := e.WaitUp(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	do(t, http.MethodGet, e.URL()+"/v1/health", "").expect(t, 204, "")
}

func TestAdminGeneratorGroupsAttachmentsAccounts(t *testing.T) {
	e := start(t, Config{})
	u := e.URL() + "/_emulator/"
	do(t, http.MethodGet, u+"generator", "").expect(t, 404, `{"error":"emulator admin: no generator was started"}`)
	r := do(t, http.MethodPost, u+"generator/start", `{"conversations":3,"count":12,"rate":0,"seed":9,"weights":{"text":1},"base_time_ms":1767225600000}`)
	var started struct {
		Conversations []GenConversation
	}
	decodeJSON(t, r, &started)
	if r.status != 202 || len(started.Conversations) != 3 {
		t.Fatalf("start: %d %s", r.status, r.body)
	}
	if err := e.Generator().Wait(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	var got struct {
		Status  GeneratorStatus
		Emitted []Emitted
	}
	decodeJSON(t, do(t, http.MethodGet, u+"generator?emitted=true&since=10", ""), &got)
	if got.Status.Emitted != 12 || got.Status.Running || len(got.Emitted) != 2 || got.Emitted[0].Index != 10 || got.Emitted[0].Kind != KindText {
		t.Fatalf("generator status %+v", got)
	}
	do(t, http.MethodPost, u+"generator/start", `{"rate":1}`).expect(t, 400, `{"error":"emulator admin: emulator: generator needs a count or a duration so it stops by itself"}`)
	if r := do(t, http.MethodPost, u+"generator/start", `{"rate":1,"duration":"1h"}`); r.status != 202 {
		t.Fatalf("start slow generator: %d %s", r.status, r.body)
	}
	r = do(t, http.MethodPost, u+"generator/stop", "")
	decodeJSON(t, r, &got)
	if r.status != 200 || got.Status.Running || got.Status.Reason != "stopped" {
		t.Fatalf("stop: %s", r.body)
	}

	r = do(t, http.MethodPost, u+"groups", `{"internal_id":"`+testGroupID+`","name":"Ops","members":[{"number":"+15550000002","uuid":"3f1c7a52-8e0b-4d1e-9a52-5a0c2b7d9e11"}]}`)
	if r.status != 201 || !strings.Contains(r.body, `"id":"`+restGroupID+`"`) {
		t.Fatalf("add group: %d %s", r.status, r.body)
	}
	do(t, http.MethodPost, u+"groups", `{"internal_id":"c2hvcnQ=","name":"bad"}`).expect(t, 400, `{"error":"emulator admin: emulator: add group: internal id must be standard base64 of 32 bytes, got 5 bytes"}`)
	if r := do(t, http.MethodGet, e.URL()+"/v1/groups/"+bot+"/"+restGroupID, ""); r.status != 200 || !strings.Contains(r.body, `"members":["+15550000002"]`) {
		t.Fatalf("group via REST: %d %s", r.status, r.body)
	}
	var groups []Group
	decodeJSON(t, do(t, http.MethodGet, u+"groups", ""), &groups)
	if len(groups) != 4 { // three from the generator + Ops
		t.Fatalf("groups %+v", groups)
	}

	r = do(t, http.MethodPost, u+"attachments", `{"data":"`+base64.StdEncoding.EncodeToString([]byte("%PDF-1.4 doc"))+`"}`)
	var att struct{ ID string }
	decodeJSON(t, r, &att)
	if r.status != 201 || !strings.HasSuffix(att.ID, ".pdf") {
		t.Fatalf("attachment: %d %s", r.status, r.body)
	}
	if r := do(t, http.MethodGet, e.URL()+"/v1/attachments/"+att.ID, ""); r.status != 200 || r.header.Get("Content-Type") != "application/pdf" {
		t.Fatalf("served attachment: %d %v", r.status, r.header)
	}
	do(t, http.MethodPost, u+"attachments", `{"id":"../x","data":""}`).expect(t, 400, `{"error":"emulator admin: emulator: add attachment: invalid id \"../x\": use a plain file name"}`)

	do(t, http.MethodPost, u+"accounts", `{"number":"+15550000042"}`).expect(t, 204, "")
	do(t, http.MethodGet, e.URL()+"/v1/accounts", "").expect(t, 200, `["+15550000001","+15550000042"]`)
	do(t, http.MethodPost, u+"accounts", `{}`).expect(t, 400, `{"error":"emulator admin: number is required"}`)
}

func TestCallLogIsBounded(t *testing.T) {
	e := start(t, Config{MaxRecordedCalls: 20})
	for i := 0; i < 45; i++ {
		do(t, http.MethodGet, e.URL()+"/v1/health", "")
	}
	calls := e.Calls()
	if len(calls) > 20 || calls[len(calls)-1].ID != 45 {
		t.Fatalf("%d calls kept, last id %d", len(calls), calls[len(calls)-1].ID)
	}
	for i := 1; i < len(calls); i++ {
		if calls[i].ID != calls[i-1].ID+1 {
			t.Fatal("kept calls are not the most recent ones")
		}
	}
	// CallsByRoute counts the calls still recorded.
	do(t, http.MethodGet, e.URL()+"/nope", "")
	calls = e.Calls()
	if st := e.Stats(); st.CallsByRoute["GET /v1/health"] != int64(len(calls)-1) || st.CallsByRoute["GET unknown"] != 1 || len(st.CallsByRoute) != 2 {
		t.Fatalf("CallsByRoute %v with %d calls recorded", st.CallsByRoute, len(calls))
	}
	e.ResetCalls()
	if st := e.Stats(); len(st.CallsByRoute) != 0 {
		t.Fatalf("CallsByRoute after reset: %v", st.CallsByRoute)
	}
}
