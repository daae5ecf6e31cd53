package emulator

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// Tests in this file are named after the items of the reference's §8 checklist, "Send and
// actions".

func errBody(msg string) string {
	b, _ := json.Marshal(apiError{Error: msg})
	return string(b)
}

func TestChecklistSendV2ValidationOrderAndClassification(t *testing.T) {
	e := start(t, Config{})
	if _, err := e.AddGroup(bot, Group{ID: testGroupID, Name: "Ops"}); err != nil {
		t.Fatal(err)
	}
	short := "group.ZUhoNGVIaDRlSGg0ZUhoNGVIaDRlQT09" // double base64 of 16 bytes
	unknownGroup := RESTGroupID("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=")
	tests := []struct {
		name, body, want string
	}{
		{"bad json", `{"number":`, "Couldn't process request - invalid request"},
		{"wrong type", `{"number":"+1","recipients":"+2"}`, "Couldn't process request - invalid request"},
		{"no recipients before no number", `{}`, "Couldn't process request - please provide at least one recipient"},
		{"no number", `{"recipients":["+15550000002"]}`, "Couldn't process request - please provide a valid number"},
		{"sticker delimiter", `{"number":"+1","recipients":["+2"],"sticker":"abc"}`, "Couldn't process request - please provide valid sticker delimiter"},
		{"view once", `{"number":"+1","recipients":["+2"],"view_once":true}`, "'view_once' can only be set for image attachments!"},
		{"sticker before view once", `{"number":"+1","recipients":["+2"],"view_once":true,"sticker":"x"}`, "Couldn't process request - please provide valid sticker delimiter"},
		{"group size", `{"number":"+1","recipients":["` + short + `"]}`, "Invalid Signal group size (16"},
		{"invalid identifier long", `{"number":"+1","recipients":["group.!!!!!!!!!!!!"]}`, "Invalid identifier group.!!!!!!!!!!!!"},
		{"invalid identifier second decode", `{"number":"+1","recipients":["group.ISEhIQ=="]}`, "Invalid identifier group.ISEhIQ=="},
		{"short group prefix is a username", `{"number":"+1","recipients":["group.abc","+2"]}`, "Signal Messenger phone numbers and usernames cannot be specified together in one request! Please split them up into multiple REST API calls."},
		{"groups and numbers", `{"number":"+1","recipients":["` + restGroupID + `","+2"]}`, "Signal Messenger Groups and phone numbers cannot be specified together in one request! Please split them up into multiple REST API calls."},
		{"groups and uuid numbers", `{"number":"+1","recipients":["3f1c7a52-8e0b-4d1e-9a52-5a0c2b7d9e11","` + restGroupID + `"]}`, "Signal Messenger Groups and phone numbers cannot be specified together in one request! Please split them up into multiple REST API calls."},
		{"groups and usernames", `{"number":"+1","recipients":["` + restGroupID + `","alice.01"]}`, "Signal Messenger Groups and usernames cannot be specified together in one request! Please split them up into multiple REST API calls."},
		{"numbers and usernames", `{"number":"+1","recipients":["+2","alice.01"]}`, "Signal Messenger phone numbers and usernames cannot be specified together in one request! Please split them up into multiple REST API calls."},
		{"internal id is a username", `{"number":"+1","recipients":["+2","` + testGroupID + `"]}`, "Signal Messenger phone numbers and usernames cannot be specified together in one request! Please split them up into multiple REST API calls."},
		{"two groups", `{"number":"+1","recipients":["` + restGroupID + `","` + unknownGroup + `"]}`, "A signal message cannot be sent to more than one group at once! Please use multiple REST API calls for that."},
		{"all three kinds", `{"number":"+1","recipients":["+2","alice.01","` + restGroupID + `"]}`, "Signal Messenger Groups and phone numbers cannot be specified together in one request! Please split them up into multiple REST API calls."},
		{"preview url", `{"number":"+1","recipients":["+2"],"link_preview":{}}`, "Please provide a valid Link Preview URL"},
		{"preview https", `{"number":"+1","recipients":["+2"],"link_preview":{"url":"http://x"}}`, "Link Preview URL must start with https://.."},
		{"preview title", `{"number":"+1","recipients":["+2"],"link_preview":{"url":"https://x"}}`, "Please provide a valid Link Preview Title"},
		{"preview in message", `{"number":"+1","recipients":["+2"],"link_preview":{"url":"https://x","title":"t"}}`, "Link Preview URL is missing in the message!"},
		{"attachment base64", `{"number":"+1","recipients":["+2"],"base64_attachments":["abc$"]}`, "illegal base64 data at input byte 3"},
		{"attachment no padding", `{"number":"+1","recipients":["+2"],"base64_attachments":["data:image/png;base64,aGk"]}`, "illegal base64 data at input byte 0"},
		{"attachment empty", `{"number":"+1","recipients":["+2"],"base64_attachments":["data:image/png;filename=a.png;base64,"]}`, "The base64 data does not exist."},
		{"preview before attachment", `{"number":"+1","recipients":["+2"],"base64_attachments":["!"],"link_preview":{}}`, "Please provide a valid Link Preview URL"},
		{"unknown account last", `{"number":"+1","recipients":["+2"],"base64_attachments":["aGk="]}`, "Specified account does not exist"},
		{"unknown group", `{"number":"` + bot + `","recipients":["` + unknownGroup + `"]}`, "Group not found: AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			do(t, http.MethodPost, e.URL()+"/v2/send", tt.body).expect(t, 400, errBody(tt.want))
		})
	}
	oks := []string{
		`{"number":"` + bot + `","recipients":["+15550000002"],"message":"hi"}`,
		`{"number":"` + bot + `","recipient":"+15550000002"}`,
		`{"number":"` + bot + `","recipients":["3f1c7a52-8e0b-4d1e-9a52-5a0c2b7d9e11"]}`,
		`{"number":"` + bot + `","recipients":["` + restGroupID + `"],"message":"to the group"}`,
		`{"number":"` + bot + `","recipients":["alice.01"],"unknown_field":1}`,
		`{"number":"` + bot + `","recipients":["+2"],"view_once":true,"base64_attachments":["data:image/png;filename=a.png;base64,aGk="],"sticker":"ab:1"}`,
		`{"number":"` + bot + `","recipients":["+2"],"message":"see https://x.org","link_preview":{"url":"https://x.org","title":"t","base64_thumbnail":"aGk="}}`,
	}
	for i, b := range oks {
		r := do(t, http.MethodPost, e.URL()+"/v2/send", b)
		if r.status != 201 {
			t.Fatalf("ok case %d: %d %s", i, r.status, r.body)
		}
	}
}

func TestChecklistSendV2SuccessBodiesAndTimestamps(t *testing.T) {
	for _, profile := range []string{ProfileRelease, ProfileHead} {
		t.Run(profile, func(t *testing.T) {
			e := start(t, Config{Profile: profile})
			var last int64
			for i := 0; i < 20; i++ {
				r := do(t, http.MethodPost, e.URL()+"/v2/send", `{"number":"`+bot+`","recipients":["+15550000002"],"message":"m"}`)
				if r.status != 201 || r.header.Get("Content-Type") != "application/json; charset=utf-8" {
					t.Fatalf("send: %d %s %s", r.status, r.header.Get("Content-Type"), r.body)
				}
				var ts string
				if profile == ProfileHead {
					var arr []map[string]string
					if err := json.Unmarshal([]byte(r.body), &arr); err != nil || len(arr) != 1 {
						t.Fatalf("head body %s: %v", r.body, err)
					}
					ts = arr[0]["timestamp"]
					if r.body != `[{"timestamp":"`+ts+`"}]` {
						t.Fatalf("head body %s", r.body)
					}
				} else {
					var obj map[string]string
					if err := json.Unmarshal([]byte(r.body), &obj); err != nil {
						t.Fatalf("release body %s: %v", r.body, err)
					}
					ts = obj["timestamp"]
					if r.body != `{"timestamp":"`+ts+`"}` {
						t.Fatalf("release body %s", r.body)
					}
				}
				n, err := strconv.ParseInt(ts, 10, 64)
				if err != nil || n <= last {
					t.Fatalf("timestamp %q not strictly increasing after %d", ts, last)
				}
				last = n
			}
			// Concurrent sends still get unique timestamps, recorded on the calls.
			var wg sync.WaitGroup
			for i := 0; i < 20; i++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					do(t, http.MethodPost, e.URL()+"/v2/send", `{"number":"`+bot+`","recipients":["+15550000002"]}`)
				}()
			}
			wg.Wait()
			seen := map[int64]bool{}
			for _, c := range e.Calls(CallFilter{Route: "/v2/send", Status: 201}) {
				if c.Timestamp == 0 || seen[c.Timestamp] {
					t.Fatalf("call %d timestamp %d missing or duplicate", c.ID, c.Timestamp)
				}
				seen[c.Timestamp] = true
			}
			if len(seen) != 40 {
				t.Fatalf("%d sends recorded, want 40", len(seen))
			}
		})
	}
}

func TestChecklistSendV1(t *testing.T) {
	e := start(t, Config{})
	if _, err := e.AddGroup(bot, Group{ID: testGroupID}); err != nil {
		t.Fatal(err)
	}
	b64 := strings.TrimPrefix(restGroupID, groupPrefix)
	do(t, http.MethodPost, e.URL()+"/v1/send", `{"number":"`+bot+`"}`).expect(t, 400, errBody("Please specify at least one recipient"))
	do(t, http.MethodPost, e.URL()+"/v1/send", `{"number":"`+bot+`","recipients":["a","b"],"is_group":true}`).expect(t, 400, errBody("More than one recipient is currently not allowed"))
	do(t, http.MethodPost, e.URL()+"/v1/send", `{"number":"`+bot+`","recipients":["`+restGroupID+`"],"is_group":true}`).expect(t, 400, errBody("Invalid group id"))
	do(t, http.MethodPost, e.URL()+"/v1/send", `{"number":"+1","recipients":["+2"]}`).expect(t, 400, errBody(ErrTextUnknownAccount))
	for _, b := range []string{
		`{"number":"` + bot + `","recipients":["+2"],"message":"v1"}`,
		`{"number":"` + bot + `","recipients":["` + b64 + `"],"is_group":true}`,
	} {
		r := do(t, http.MethodPost, e.URL()+"/v1/send", b)
		if r.status != 201 || !strings.HasPrefix(r.body, `{"timestamp":"`) {
			t.Fatalf("v1 send: %d %s", r.status, r.body)
		}
	}
}

func TestChecklistRateLimit429(t *testing.T) {
	send := `{"number":"` + bot + `","recipients":["+15550000002"]}`
	t.Run("json-rpc", func(t *testing.T) {
		e := start(t, Config{})
		e.Faults().RateLimitSend([]string{"9c2d3f6e-0a1b-4c5d-8e7f-001122334455"}, 0)
		want := `{"error":"Failed to send message due to rate limiting. Use the attached challenge tokens to lift the rate limit restrictions via the '/v1/accounts/{number}/rate-limit-challenge' endpoint.","challenge_tokens":["9c2d3f6e-0a1b-4c5d-8e7f-001122334455"],"account":"+15550000001"}`
		r := do(t, http.MethodPost, e.URL()+"/v2/send", send)
		r.expect(t, 429, want)
		if r.header.Get("Content-Type") != "application/json; charset=utf-8" {
			t.Fatalf("Content-Type %q", r.header.Get("Content-Type"))
		}
		// Validation still comes first.
		do(t, http.MethodPost, e.URL()+"/v2/send", `{"number":"`+bot+`"}`).expect(t, 400, errBody("Couldn't process request - please provide at least one recipient"))
		// Solving the challenge lifts it.
		do(t, http.MethodPost, e.URL()+"/v1/accounts/"+bot+"/rate-limit-challenge", `{"challenge_token":"wrong","captcha":"signalcaptcha://x"}`).expect(t, 204, "")
		do(t, http.MethodPost, e.URL()+"/v2/send", send).expect(t, 429, want)
		do(t, http.MethodPost, e.URL()+"/v1/accounts/"+bot+"/rate-limit-challenge", `{"challenge_token":"9c2d3f6e-0a1b-4c5d-8e7f-001122334455","captcha":"signalcaptcha://x"}`).expect(t, 204, "")
		if r := do(t, http.MethodPost, e.URL()+"/v2/send", send); r.status != 201 {
			t.Fatalf("after challenge: %d %s", r.status, r.body)
		}
		do(t, http.MethodPost, e.URL()+"/v1/accounts/+1/rate-limit-challenge", `{}`).expect(t, 400, errBody(ErrTextUnknownAccount))

		id := e.Faults().RateLimitSend([]string{""}, 1)
		do(t, http.MethodPost, e.URL()+"/v2/send", send).expect(t, 429, strings.Replace(want, `"9c2d3f6e-0a1b-4c5d-8e7f-001122334455"`, `""`, 1))
		if e.Faults().RemoveREST(id) {
			t.Fatal("count-limited rule still installed after its last use")
		}
		e.Faults().RateLimitSend(nil, 1)
		do(t, http.MethodPost, e.URL()+"/v2/send", send).expect(t, 429, strings.Replace(want, `"challenge_tokens":["9c2d3f6e-0a1b-4c5d-8e7f-001122334455"],`, "", 1))
		// On other endpoints signal-cli's rate limit is a plain 400.
		e.Faults().AddREST(RESTFault{Route: "/v1/reactions/{number}", RateLimit: true, Count: 1})
		do(t, http.MethodPost, e.URL()+"/v1/reactions/"+bot, `{"recipient":"+2","reaction":"x","target_author":"+2","timestamp":1}`).expect(t, 400, errBody("Failed to send message due to rate limiting"))
	})
	t.Run("normal mode gives 400 text", func(t *testing.T) {
		e := start(t, Config{Mode: ModeNormal})
		e.Faults().RateLimitSend([]string{"tok-1"}, 1)
		do(t, http.MethodPost, e.URL()+"/v2/send", send).expect(t, 400, errBody("CAPTCHA proof required for sending to \"+15550000002\", available options \"RECAPTCHA, PUSH_CHALLENGE\" with challenge token \"tok-1\", or wait \"86400\" seconds.\nFailed to send message due to rate limiting"))
	})
}

func TestChecklistReactionsReceiptsTyping(t *testing.T) {
	e := start(t, Config{})
	if _, err := e.AddGroup(bot, Group{ID: testGroupID}); err != nil {
		t.Fatal(err)
	}
	u := e.URL()
	reactions := []struct {
		body, want string
	}{
		{`{}`, "Couldn't process request - recipient missing"},
		{`{"recipient":"+2"}`, "Couldn't process request - reaction missing"},
		{`{"recipient":"+2","reaction":"👍"}`, "Couldn't process request - target_author missing"},
		{`{"recipient":"+2","reaction":"👍","target_author":"+2"}`, "Couldn't process request - timestamp missing"},
		{`{"recipient":"+2","reaction":"👍","target_author":"+2","timestamp":0}`, "Couldn't process request - timestamp missing"},
		{`{"recipient":"group.!!!!","reaction":"👍","target_author":"+2","timestamp":5}`, "Invalid group id"},
		{`{"recipient":"group.QUFBQQ==","reaction":"👍","target_author":"+2","timestamp":5}`, "Group not found: AAAA"},
	}
	for _, tt := range reactions {
		do(t, http.MethodPost, u+"/v1/reactions/"+bot, tt.body).expect(t, 400, errBody(tt.want))
	}
	do(t, http.MethodPost, u+"/v1/reactions/"+bot, `{"recipient":"`+restGroupID+`","reaction":"👍","target_author":"+2","timestamp":5}`).expect(t, 204, "")
	do(t, http.MethodPost, u+"/v1/reactions/"+bot, `{"recipient":"3f1c7a52-8e0b-4d1e-9a52-5a0c2b7d9e11","reaction":"👍","target_author":"3f1c7a52-8e0b-4d1e-9a52-5a0c2b7d9e11","timestamp":5}`).expect(t, 204, "")
	// DELETE accepts an empty reaction (the server substitutes 👍) but checks the rest.
	do(t, http.MethodDelete, u+"/v1/reactions/"+bot, `{"recipient":"+2","target_author":"+2","timestamp":5}`).expect(t, 204, "")
	do(t, http.MethodDelete, u+"/v1/reactions/"+bot, `{"recipient":"+2","target_author":"+2"}`).expect(t, 400, errBody("Couldn't process request - timestamp missing"))
	do(t, http.MethodDelete, u+"/v1/reactions/"+bot, `{"reaction":""}`).expect(t, 400, errBody("Couldn't process request - recipient missing"))

	receipts := []struct {
		body, want string
	}{
		{`{}`, "Couldn't process request - recipient missing"},
		{`{"recipient":"+2"}`, "Couldn't process request - receipt type must be read or viewed"},
		{`{"recipient":"+2","receipt_type":"delivered","timestamp":5}`, "Couldn't process request - receipt type must be read or viewed"},
		{`{"recipient":"+2","receipt_type":"read"}`, "Couldn't process request - timestamp missing"},
	}
	for _, tt := range receipts {
		do(t, http.MethodPost, u+"/v1/receipts/"+bot, tt.body).expect(t, 400, errBody(tt.want))
	}
	do(t, http.MethodPost, u+"/v1/receipts/"+bot, `{"recipient":"+2","receipt_type":"read","timestamp":5}`).expect(t, 204, "")
	do(t, http.MethodPost, u+"/v1/receipts/"+bot, `{"recipient":"+2","receipt_type":"viewed","timestamp":5}`).expect(t, 204, "")

	for _, m := range []string{http.MethodPut, http.MethodDelete} {
		do(t, m, u+"/v1/typing-indicator/"+bot, `{"recipient":"+2"}`).expect(t, 204, "")
		do(t, m, u+"/v1/typing-indicator/"+bot, `{"recipient":"`+restGroupID+`"}`).expect(t, 204, "")
		do(t, m, u+"/v1/typing-indicator/"+bot, `{}`).expect(t, 400, errBody("No recipients given"))
	}
	do(t, http.MethodPost, u+"/v1/typing-indicator/"+bot, `{"recipient":"+2"}`).expect(t, 404, "404 page not found")
	// Every call is recorded with its parsed body.
	calls := e.Calls(CallFilter{Method: http.MethodDelete, Route: "/v1/reactions/{number}", Status: 204})
	if len(calls) != 1 || calls[0].Account != bot || calls[0].Body.(map[string]any)["recipient"] != "+2" {
		t.Fatalf("recorded DELETE reaction calls: %+v", calls)
	}
}

func TestChecklistRemoteDeleteIs201(t *testing.T) {
	e := start(t, Config{})
	r := do(t, http.MethodDelete, e.URL()+"/v1/remote-delete/"+bot, `{"recipient":"+15550000002","timestamp":1767225611000}`)
	var body map[string]string
	if r.status != 201 || json.Unmarshal([]byte(r.body), &body) != nil || r.body != `{"timestamp":"`+body["timestamp"]+`"}` {
		t.Fatalf("remote delete: %d %s", r.status, r.body)
	}
	ts, _ := strconv.ParseInt(body["timestamp"], 10, 64)
	if c := e.Calls(CallFilter{Route: "/v1/remote-delete/{number}"}); len(c) != 1 || c[0].Timestamp != ts {
		t.Fatalf("recorded remote delete: %+v", c)
	}
	do(t, http.MethodDelete, e.URL()+"/v1/remote-delete/"+bot, `{"timestamp":1}`).expect(t, 400, errBody("No recipients given"))
}

func TestChecklistGroupsListShapeAndGet(t *testing.T) {
	for _, profile := range []string{ProfileRelease, ProfileHead} {
		t.Run(profile, func(t *testing.T) {
			e := start(t, Config{Profile: profile})
			_, err := e.AddGroup(bot, Group{
				ID: testGroupID, Name: "Ops", Description: "on call",
				Members:     []Member{{Number: bot, UUID: "0a0b0c0d-1111-2222-3333-444455556666"}, {UUID: "b7e2d0c4-1a2b-4c3d-8e9f-0a1b2c3d4e5f"}},
				Admins:      []Member{{Number: bot, UUID: "0a0b0c0d-1111-2222-3333-444455556666"}},
				Permissions: GroupPermissions{AddMembers: PermOnlyAdmins, EditGroup: PermEveryMember, SendMessages: PermOnlyAdmins},
			})
			if err != nil {
				t.Fatal(err)
			}
			member := ""
			if profile == ProfileHead {
				member = `,"member":true`
			}
			entry := `{"name":"Ops","description":"on call","id":"` + restGroupID + `","internal_id":"` + testGroupID + `","members":["+15550000001","b7e2d0c4-1a2b-4c3d-8e9f-0a1b2c3d4e5f"],"blocked":false,"pending_invites":[],"pending_requests":[],"invite_link":"","admins":["+15550000001"],"permissions":{"add_members":"only-admins","edit_group":"only-admins","send_messages":"only-admins"}` + member + `}`
			do(t, http.MethodGet, e.URL()+"/v1/groups/"+bot, "").expect(t, 200, "["+entry+"]")
			do(t, http.MethodGet, e.URL()+"/v1/groups/"+bot+"?expand=false", "").expect(t, 200, "["+entry+"]")
			do(t, http.MethodGet, e.URL()+"/v1/groups/"+bot+"/"+restGroupID, "").expect(t, 200, entry)
			expanded := `{"name":"Ops","description":"on call","id":"` + restGroupID + `","internal_id":"` + testGroupID + `","members":[{"number":"+15550000001","uuid":"0a0b0c0d-1111-2222-3333-444455556666"},{"number":"","uuid":"b7e2d0c4-1a2b-4c3d-8e9f-0a1b2c3d4e5f"}],"blocked":false,"pending_invites":[],"pending_requests":[],"invite_link":"","admins":[{"number":"+15550000001","uuid":"0a0b0c0d-1111-2222-3333-444455556666"}],"permissions":{"add_members":"only-admins","edit_group":"only-admins","send_messages":"only-admins"}` + member + `}`
			do(t, http.MethodGet, e.URL()+"/v1/groups/"+bot+"?expand=true", "").expect(t, 200, "["+expanded+"]")
			do(t, http.MethodGet, e.URL()+"/v1/groups/"+bot+"?expand=yes", "").expect(t, 400, errBody("Couldn't process request - expand parameter needs to be either 'true' or 'false'"))
			do(t, http.MethodGet, e.URL()+"/v1/groups/"+bot+"/"+RESTGroupID("AAAA"), "").expect(t, 404, errBody("No group with that id found"))
			// The id is compared literally: the base64 part alone is not found.
			do(t, http.MethodGet, e.URL()+"/v1/groups/"+bot+"/"+strings.TrimPrefix(restGroupID, groupPrefix), "").expect(t, 404, errBody("No group with that id found"))
			do(t, http.MethodGet, e.URL()+"/v1/groups/"+otherAcct, "").expect(t, 400, errBody(ErrTextUnknownAccount))
			do(t, http.MethodGet, e.URL()+"/v1/groups/%25zz", "").expect(t, 400, errBody("Couldn't process request - malformed number"))
		})
	}
}

func TestGroupMutationEndpoints(t *testing.T) {
	e := start(t, Config{})
	u := e.URL() + "/v1/groups/" + bot
	do(t, http.MethodPost, u, `{"name":"New","permissions":{"add_members":"nobody"}}`).expect(t, 400, errBody("Invalid add members permission provided - only 'every-member' and 'only-admins' allowed!"))
	do(t, http.MethodPost, u, `{"name":"New","group_link":"open"}`).expect(t, 400, errBody("Invalid group link provided - only 'enabled', 'enabled-with-approval' and 'disabled' allowed!"))
	r := do(t, http.MethodPost, u, `{"name":"New","members":["+15550000002"],"permissions":{"add_members":"only-admins"}}`)
	var created struct{ ID string }
	if r.status != 201 || json.Unmarshal([]byte(r.body), &created) != nil || !strings.HasPrefix(created.ID, groupPrefix) {
		t.Fatalf("create group: %d %s", r.status, r.body)
	}
	internal, err := InternalGroupID(created.ID)
	if err != nil {
		t.Fatal(err)
	}
	do(t, http.MethodPut, u+"/"+created.ID, `{"name":"Renamed"}`).expect(t, 204, "")
	do(t, http.MethodPost, u+"/"+created.ID+"/members", `{"members":["+15550000003"]}`).expect(t, 204, "")
	do(t, http.MethodDelete, u+"/"+created.ID+"/members", `{"members":["+15550000002"]}`).expect(t, 204, "")
	do(t, http.MethodPost, u+"/"+RESTGroupID("AAAA")+"/members", `{"members":["+1"]}`).expect(t, 404, errBody("No group with that group id ("+RESTGroupID("AAAA")+") found"))
	do(t, http.MethodPost, u+"/"+created.ID+"/block", "").expect(t, 204, "")
	g := e.Groups(bot)
	if len(g) != 1 || g[0].ID != internal || g[0].Name != "Renamed" || !g[0].Blocked || len(g[0].Members) != 2 || g[0].Members[1].Number != "+15550000003" {
		t.Fatalf("group state: %+v", g)
	}
	// A message to the new group now succeeds.
	if r := do(t, http.MethodPost, e.URL()+"/v2/send", `{"number":"`+bot+`","recipients":["`+created.ID+`"]}`); r.status != 201 {
		t.Fatalf("send to created group: %d %s", r.status, r.body)
	}
	do(t, http.MethodDelete, u+"/"+created.ID, "").expect(t, 200, "")
	if len(e.Groups(bot)) != 0 {
		t.Fatal("group not deleted")
	}
	do(t, http.MethodDelete, u+"/"+created.ID, "").expect(t, 400, errBody("Group not found: "+internal))
}

func TestChecklistAttachments(t *testing.T) {
	e := start(t, Config{})
	png := []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR rest of image")
	if _, err := e.AddAttachment("Xr3fE6X2wq1ZyFf7sD8m.png", png); err != nil {
		t.Fatal(err)
	}
	if _, err := e.AddAttachment("note.txt", []byte("plain words")); err != nil {
		t.Fatal(err)
	}
	r := do(t, http.MethodGet, e.URL()+"/v1/attachments/Xr3fE6X2wq1ZyFf7sD8m.png", "")
	r.expect(t, 200, string(png))
	if r.header.Get("Content-Type") != "image/png" || r.header.Get("Content-Length") != strconv.Itoa(len(png)) {
		t.Fatalf("headers: %v", r.header)
	}
	if ct := do(t, http.MethodGet, e.URL()+"/v1/attachments/note.txt", "").header.Get("Content-Type"); ct != "text/plain; charset=utf-8" {
		t.Fatalf("text attachment Content-Type %q", ct)
	}
	do(t, http.MethodGet, e.URL()+"/v1/attachments", "").expect(t, 200, `["Xr3fE6X2wq1ZyFf7sD8m.png","note.txt"]`)
	do(t, http.MethodGet, e.URL()+"/v1/attachments/missing.jpg", "").expect(t, 404, errBody("No attachment with that name found"))
	do(t, http.MethodGet, e.URL()+"/v1/attachments/..", "").expect(t, 400, errBody("Please provide a valid attachment name"))
	do(t, http.MethodDelete, e.URL()+"/v1/attachments/note.txt", "").expect(t, 204, "")
	do(t, http.MethodDelete, e.URL()+"/v1/attachments/note.txt", "").expect(t, 404, errBody("No attachment with that name found"))
	do(t, http.MethodGet, e.URL()+"/v1/attachments/note.txt", "").expect(t, 404, errBody("No attachment with that name found"))
}

func TestChecklistHealthAboutAccounts(t *testing.T) {
	e := start(t, Config{Accounts: []string{bot, otherAcct}, Version: "0.99"})
	r := do(t, http.MethodGet, e.URL()+"/v1/health", "")
	r.expect(t, 204, "")
	do(t, http.MethodGet, e.URL()+"/v1/about", "").expect(t, 200, `{"versions":["v1","v2"],"build":2,"mode":"json-rpc","version":"0.99","capabilities":{"v2/send":["quotes","mentions"]}}`)
	do(t, http.MethodGet, e.URL()+"/v1/accounts", "").expect(t, 200, `["+15550000001","+15550000077"]`)
	e2 := start(t, Config{})
	do(t, http.MethodGet, e2.URL()+"/v1/about", "").expect(t, 200, `{"versions":["v1","v2"],"build":2,"mode":"json-rpc","version":"0.100","capabilities":{"v2/send":["quotes","mentions"]}}`)
}

func TestChecklistUnknownNumberOnJSONRPCCalls(t *testing.T) {
	e := start(t, Config{})
	const n = "+15559999999"
	want := errBody(ErrTextUnknownAccount)
	calls := []struct{ method, path, body string }{
		{http.MethodPost, "/v2/send", `{"number":"` + n + `","recipients":["+15550000002"]}`},
		{http.MethodPost, "/v1/send", `{"number":"` + n + `","recipients":["+15550000002"]}`},
		{http.MethodPost, "/v1/reactions/" + n, `{"recipient":"+2","reaction":"x","target_author":"+2","timestamp":1}`},
		{http.MethodDelete, "/v1/reactions/" + n, `{"recipient":"+2","target_author":"+2","timestamp":1}`},
		{http.MethodPost, "/v1/receipts/" + n, `{"recipient":"+2","receipt_type":"read","timestamp":1}`},
		{http.MethodPut, "/v1/typing-indicator/" + n, `{"recipient":"+2"}`},
		{http.MethodDelete, "/v1/typing-indicator/" + n, `{"recipient":"+2"}`},
		{http.MethodDelete, "/v1/remote-delete/" + n, `{"recipient":"+2","timestamp":1}`},
		{http.MethodGet, "/v1/groups/" + n, ""},
		{http.MethodGet, "/v1/groups/" + n + "/" + restGroupID, ""},
		{http.MethodPost, "/v1/accounts/" + n + "/rate-limit-challenge", `{"challenge_token":"x"}`},
	}
	for _, c := range calls {
		t.Run(c.method+" "+c.path, func(t *testing.T) {
			do(t, c.method, e.URL()+c.path, c.body).expect(t, 400, want)
		})
	}
}

func TestChecklistBindErrorsAreNotJSONTyped(t *testing.T) {
	e := start(t, Config{})
	want := `{"error":"Couldn't process request - invalid request"}`
	calls := []struct{ method, path, body string }{
		{http.MethodPost, "/v2/send", `{`},
		{http.MethodPost, "/v2/send", ""},
		{http.MethodPost, "/v2/send", `{"recipients":[1]}`},
		{http.MethodPost, "/v1/send", `[]`},
		{http.MethodPost, "/v1/reactions/" + bot, `{"timestamp":"5"}`},
		{http.MethodDelete, "/v1/reactions/" + bot, `nope`},
		{http.MethodPost, "/v1/receipts/" + bot, `{"timestamp":1.5}`},
		{http.MethodPut, "/v1/typing-indicator/" + bot, `{"recipient":7}`},
		{http.MethodDelete, "/v1/remote-delete/" + bot, `{"timestamp":"x"}`},
		{http.MethodPost, "/v1/groups/" + bot, `{"members":"+1"}`},
		{http.MethodPost, "/v1/accounts/" + bot + "/rate-limit-challenge", `"x"`},
	}
	for _, c := range calls {
		t.Run(c.method+" "+c.path+" "+c.body, func(t *testing.T) {
			r := do(t, c.method, e.URL()+c.path, c.body)
			r.expect(t, 400, want)
			if ct := r.header.Get("Content-Type"); strings.Contains(ct, "json") {
				t.Fatalf("Content-Type %q must not be JSON", ct)
			}
		})
	}
}

func TestChecklistNoAuthAndUnknownRoutes(t *testing.T) {
	e := start(t, Config{})
	r := do(t, http.MethodGet, e.URL()+"/v1/nothing-here", "")
	r.expect(t, 404, "404 page not found")
	if r.header.Get("Content-Type") != "text/plain" {
		t.Fatalf("404 Content-Type %q", r.header.Get("Content-Type"))
	}
	// A wrong method on a known path is a 404 too (no 405).
	do(t, http.MethodGet, e.URL()+"/v2/send", "").expect(t, 404, "404 page not found")
	do(t, http.MethodPost, e.URL()+"/v1/health", "").expect(t, 404, "404 page not found")
	do(t, http.MethodGet, e.URL()+"/v1//health", "").expect(t, 404, "404 page not found")
	// Trailing slashes redirect: 301 for GET, 307 otherwise.
	r = do(t, http.MethodGet, e.URL()+"/v1/health/", "")
	if r.status != 301 || r.header.Get("Location") != "/v1/health" {
		t.Fatalf("GET trailing slash: %d %v", r.status, r.header)
	}
	r = do(t, http.MethodPost, e.URL()+"/v2/send/", `{}`)
	if r.status != 307 || r.header.Get("Location") != "/v2/send" {
		t.Fatalf("POST trailing slash: %d %v", r.status, r.header)
	}
	r = do(t, http.MethodGet, e.URL()+"/v1/groups/"+bot+"/?expand=true", "")
	if r.status != 301 || r.header.Get("Location") != "/v1/groups/"+bot+"?expand=true" {
		t.Fatalf("GET trailing slash with query: %d %v", r.status, r.header)
	}
	do(t, http.MethodPost, e.URL()+"/v1/health/", "").expect(t, 404, "404 page not found")
	// No auth anywhere: credentials are neither required nor checked.
	do(t, http.MethodGet, e.URL()+"/v1/accounts", "", "Authorization", "Bearer nonsense").expect(t, 200, `["+15550000001"]`)
	if r := do(t, http.MethodPost, e.URL()+"/v2/send", `{"number":"`+bot+`","recipients":["+2"]}`, "Authorization", "Basic Zm9vOmJhcg=="); r.status != 201 {
		t.Fatalf("send with random credentials: %d", r.status)
	}
	if c := e.Calls(CallFilter{Route: ""}); len(c) == 0 {
		t.Fatal("no calls recorded")
	}
}
