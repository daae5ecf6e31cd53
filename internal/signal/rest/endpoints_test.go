package rest

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const restGroupID = "group.UjZmRzQvQy9FVHhQUHhJdStPYmdTK2hTbDZEbURrQlA3bGxuQWY4S3BsVT0="

func TestEndpoints(t *testing.T) {
	groupsBody := `[{"name":"Ops","description":"d","id":"` + restGroupID + `","internal_id":"R6fG4/C/ETxPPxIu+ObgS+hSl6DmDkBP7llnAf8KplU=","members":["+15550000002","0b9d3f2e-1111-4c5d-8e7f-001122334455"],"blocked":false,"pending_invites":[],"pending_requests":[],"invite_link":"","admins":["+15550000002"],"permissions":{"add_members":"only-admins","edit_group":"every-member","send_messages":"every-member"}}]`
	expandedBody := `[{"name":"Ops","id":"` + restGroupID + `","members":[{"number":"+15550000002","uuid":"u-2"},{"number":"","uuid":"u-3"}],"admins":[{"number":"+15550000002","uuid":"u-2"}],"member":true}]`
	wantGroup := Group{
		Name: "Ops", Description: "d", ID: restGroupID,
		InternalID:      "R6fG4/C/ETxPPxIu+ObgS+hSl6DmDkBP7llnAf8KplU=",
		Members:         []GroupMember{{Number: "+15550000002"}, {UUID: "0b9d3f2e-1111-4c5d-8e7f-001122334455"}},
		PendingInvites:  []GroupMember{},
		PendingRequests: []GroupMember{},
		Admins:          []GroupMember{{Number: "+15550000002"}},
		Permissions:     GroupPermissions{AddMembers: "only-admins", EditGroup: "every-member", SendMessages: "every-member"},
	}
	fullSend := SendRequest{
		Recipients:        []string{restGroupID},
		Message:           "hi @x https://example.org",
		Base64Attachments: []string{AttachmentData("image/png", "a.png", []byte{1, 2, 3})},
		Sticker:           "abcd:1",
		Mentions:          []Mention{{Start: 3, Length: 1, Author: "+15550000003"}},
		QuoteTimestamp:    1767225600000,
		QuoteAuthor:       "+15550000002",
		QuoteMessage:      "q",
		QuoteMentions:     []Mention{{Start: 0, Length: 1, Author: "u-1"}},
		TextMode:          TextModeStyled,
		EditTimestamp:     1767225500000,
		NotifySelf:        ptr(false),
		LinkPreview:       &LinkPreview{URL: "https://example.org", Title: "T", Description: "D", Base64Thumbnail: "AAAA"},
		ViewOnce:          true,
	}
	reaction := Reaction{Recipient: "+15550000002", Reaction: "👍", TargetAuthor: "+15550000002", Timestamp: 1767225611000}
	const reactionBody = `{"recipient":"+15550000002","reaction":"👍","target_author":"+15550000002","timestamp":1767225611000}`

	tests := []struct {
		name     string
		reply    reply
		call     func(context.Context, *Client) (any, error)
		method   string
		uri      string
		body     string // exact; "" means no body
		want     any
		endpoint string
	}{
		{
			name:  "send minimal",
			reply: reply{201, "application/json", `{"timestamp":"1767225611000"}`},
			call: func(ctx context.Context, c *Client) (any, error) {
				return c.Send(ctx, SendRequest{Recipients: []string{"+15550000002"}, Message: "hi"})
			},
			method: "POST", uri: "/v2/send",
			body:     `{"number":"+15550000001","recipients":["+15550000002"],"message":"hi"}`,
			want:     SendResult{Timestamp: 1767225611000},
			endpoint: EndpointSend,
		},
		{
			name:  "send every field",
			reply: reply{201, "application/json", `[{"timestamp":"1767225611001"}]`},
			call: func(ctx context.Context, c *Client) (any, error) {
				return c.Send(ctx, fullSend)
			},
			method: "POST", uri: "/v2/send",
			body: `{"number":"+15550000001","recipients":["` + restGroupID + `"],"message":"hi @x https://example.org",` +
				`"base64_attachments":["data:image/png;filename=a.png;base64,AQID"],"sticker":"abcd:1",` +
				`"mentions":[{"start":3,"length":1,"author":"+15550000003"}],"quote_timestamp":1767225600000,` +
				`"quote_author":"+15550000002","quote_message":"q","quote_mentions":[{"start":0,"length":1,"author":"u-1"}],` +
				`"text_mode":"styled","edit_timestamp":1767225500000,"notify_self":false,` +
				`"link_preview":{"url":"https://example.org","title":"T","description":"D","base64_thumbnail":"AAAA"},"view_once":true}`,
			want:     SendResult{Timestamp: 1767225611001},
			endpoint: EndpointSend,
		},
		{
			name:  "send notify_self true is sent explicitly",
			reply: reply{201, "application/json", `{"timestamp":1767225611002}`},
			call: func(ctx context.Context, c *Client) (any, error) {
				return c.Send(ctx, SendRequest{Recipients: []string{"u-2"}, NotifySelf: ptr(true)})
			},
			method: "POST", uri: "/v2/send",
			body:     `{"number":"+15550000001","recipients":["u-2"],"message":"","notify_self":true}`,
			want:     SendResult{Timestamp: 1767225611002},
			endpoint: EndpointSend,
		},
		{
			name:  "react",
			reply: reply{204, "", ""},
			call: func(ctx context.Context, c *Client) (any, error) {
				return nil, c.React(ctx, reaction)
			},
			method: "POST", uri: "/v1/reactions/+15550000001", body: reactionBody, endpoint: EndpointReactions,
		},
		{
			name:  "remove reaction",
			reply: reply{204, "", ""},
			call: func(ctx context.Context, c *Client) (any, error) {
				return nil, c.RemoveReaction(ctx, reaction)
			},
			method: "DELETE", uri: "/v1/reactions/+15550000001", body: reactionBody, endpoint: EndpointReactions,
		},
		{
			name:  "read receipt",
			reply: reply{204, "", ""},
			call: func(ctx context.Context, c *Client) (any, error) {
				return nil, c.SendReceipt(ctx, Receipt{Recipient: "u-2", ReceiptType: ReceiptRead, Timestamp: 5})
			},
			method: "POST", uri: "/v1/receipts/+15550000001",
			body: `{"recipient":"u-2","receipt_type":"read","timestamp":5}`, endpoint: EndpointReceipts,
		},
		{
			name:  "viewed receipt",
			reply: reply{204, "", ""},
			call: func(ctx context.Context, c *Client) (any, error) {
				return nil, c.SendReceipt(ctx, Receipt{Recipient: "+15550000002", ReceiptType: ReceiptViewed, Timestamp: 6})
			},
			method: "POST", uri: "/v1/receipts/+15550000001",
			body: `{"recipient":"+15550000002","receipt_type":"viewed","timestamp":6}`, endpoint: EndpointReceipts,
		},
		{
			name:  "typing start",
			reply: reply{204, "", ""},
			call: func(ctx context.Context, c *Client) (any, error) {
				return nil, c.TypingStart(ctx, restGroupID)
			},
			method: "PUT", uri: "/v1/typing-indicator/+15550000001",
			body: `{"recipient":"` + restGroupID + `"}`, endpoint: EndpointTyping,
		},
		{
			name:  "typing stop",
			reply: reply{204, "", ""},
			call: func(ctx context.Context, c *Client) (any, error) {
				return nil, c.TypingStop(ctx, "+15550000002")
			},
			method: "DELETE", uri: "/v1/typing-indicator/+15550000001",
			body: `{"recipient":"+15550000002"}`, endpoint: EndpointTyping,
		},
		{
			name:  "remote delete object",
			reply: reply{201, "application/json", `{"timestamp":"1767225700000"}`},
			call: func(ctx context.Context, c *Client) (any, error) {
				return c.RemoteDelete(ctx, "+15550000002", 1767225611000)
			},
			method: "DELETE", uri: "/v1/remote-delete/+15550000001",
			body: `{"recipient":"+15550000002","timestamp":1767225611000}`, want: int64(1767225700000), endpoint: EndpointRemoteDelete,
		},
		{
			name:  "remote delete array",
			reply: reply{201, "application/json", `[{"timestamp":"1767225700001"}]`},
			call: func(ctx context.Context, c *Client) (any, error) {
				return c.RemoteDelete(ctx, restGroupID, 7)
			},
			method: "DELETE", uri: "/v1/remote-delete/+15550000001",
			body: `{"recipient":"` + restGroupID + `","timestamp":7}`, want: int64(1767225700001), endpoint: EndpointRemoteDelete,
		},
		{
			name:  "list groups",
			reply: reply{200, "application/json", groupsBody},
			call: func(ctx context.Context, c *Client) (any, error) {
				return c.ListGroups(ctx, false)
			},
			method: "GET", uri: "/v1/groups/+15550000001", want: []Group{wantGroup}, endpoint: EndpointGroups,
		},
		{
			name:  "list groups expanded",
			reply: reply{200, "application/json", expandedBody},
			call: func(ctx context.Context, c *Client) (any, error) {
				return c.ListGroups(ctx, true)
			},
			method: "GET", uri: "/v1/groups/+15550000001?expand=true",
			want: []Group{{
				Name: "Ops", ID: restGroupID,
				Members: []GroupMember{{Number: "+15550000002", UUID: "u-2"}, {UUID: "u-3"}},
				Admins:  []GroupMember{{Number: "+15550000002", UUID: "u-2"}},
				Member:  ptr(true),
			}},
			endpoint: EndpointGroups,
		},
		{
			name:  "get group",
			reply: reply{200, "application/json", groupsBody[1 : len(groupsBody)-1]},
			call: func(ctx context.Context, c *Client) (any, error) {
				return c.GetGroup(ctx, restGroupID)
			},
			method: "GET", uri: "/v1/groups/+15550000001/" + restGroupID, want: wantGroup, endpoint: EndpointGroup,
		},
		{
			name:  "get attachment",
			reply: reply{200, "image/png", "\x89PNG-bytes"},
			call: func(ctx context.Context, c *Client) (any, error) {
				return c.GetAttachment(ctx, "Xy9_abc.png", 1024)
			},
			method: "GET", uri: "/v1/attachments/Xy9_abc.png",
			want: Attachment{Data: []byte("\x89PNG-bytes"), ContentType: "image/png"}, endpoint: EndpointAttachment,
		},
		{
			name:  "delete attachment",
			reply: reply{204, "", ""},
			call: func(ctx context.Context, c *Client) (any, error) {
				return nil, c.DeleteAttachment(ctx, "Xy9_abc.png")
			},
			method: "DELETE", uri: "/v1/attachments/Xy9_abc.png", endpoint: EndpointAttachment,
		},
		{
			name:  "list attachments",
			reply: reply{200, "application/json", `["a.png","b"]`},
			call: func(ctx context.Context, c *Client) (any, error) {
				return c.ListAttachments(ctx)
			},
			method: "GET", uri: "/v1/attachments", want: []string{"a.png", "b"}, endpoint: EndpointAttachments,
		},
		{
			name:  "about",
			reply: reply{200, "application/json", `{"versions":["v1","v2"],"build":2,"mode":"json-rpc","version":"0.100","capabilities":{"v2/send":["quotes","mentions"]}}`},
			call: func(ctx context.Context, c *Client) (any, error) {
				return c.About(ctx)
			},
			method: "GET", uri: "/v1/about",
			want: About{Versions: []string{"v1", "v2"}, Build: 2, Mode: ModeJSONRPC, Version: "0.100",
				Capabilities: map[string][]string{"v2/send": {"quotes", "mentions"}}},
			endpoint: EndpointAbout,
		},
		{
			name:  "health",
			reply: reply{204, "", ""},
			call: func(ctx context.Context, c *Client) (any, error) {
				return nil, c.Health(ctx)
			},
			method: "GET", uri: "/v1/health", endpoint: EndpointHealth,
		},
		{
			name:  "accounts",
			reply: reply{200, "application/json", `["+15550000001","+15550000009"]`},
			call: func(ctx context.Context, c *Client) (any, error) {
				return c.Accounts(ctx)
			},
			method: "GET", uri: "/v1/accounts", want: []string{"+15550000001", "+15550000009"}, endpoint: EndpointAccounts,
		},
		{
			name:  "rate limit challenge",
			reply: reply{204, "", ""},
			call: func(ctx context.Context, c *Client) (any, error) {
				return nil, c.RateLimitChallenge(ctx, "9c2d3f6e", "signalcaptcha://abc")
			},
			method: "POST", uri: "/v1/accounts/+15550000001/rate-limit-challenge",
			body: `{"challenge_token":"9c2d3f6e","captcha":"signalcaptcha://abc"}`, endpoint: EndpointRateLimitChallenge,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := newRecorder(t, tt.reply)
			var obs observed
			c := newTestClient(t, rec.srv.URL, func(o *Options) { o.Observer = obs.observe })
			got, err := tt.call(context.Background(), c)
			if err != nil {
				t.Fatalf("call: %v", err)
			}
			wantCT := ""
			if tt.body != "" {
				wantCT = "application/json"
			}
			accept := "application/json"
			if tt.endpoint == EndpointAttachment && tt.method == "GET" {
				accept = "*/*"
			}
			want := []recorded{{Method: tt.method, URI: tt.uri, ContentType: wantCT, Accept: accept, Auth: "Bearer tok", UserAgent: "test-agent", Body: tt.body}}
			if d := cmp.Diff(want, rec.requests()); d != "" {
				t.Errorf("request (-want +got):\n%s", d)
			}
			if tt.want != nil {
				if d := cmp.Diff(tt.want, got); d != "" {
					t.Errorf("result (-want +got):\n%s", d)
				}
			}
			calls := obs.get()
			if len(calls) != 1 {
				t.Fatalf("observer calls = %d, want 1", len(calls))
			}
			gotCall := calls[0]
			gotCall.Duration, gotCall.Wait = 0, 0
			wantCall := Call{Endpoint: tt.endpoint, Method: tt.method, Status: tt.reply.status, Outcome: OutcomeOK}
			if gotCall != wantCall {
				t.Errorf("observed %+v, want %+v", gotCall, wantCall)
			}
			if s := c.Stats(); s.InFlight != 0 || s.Waiting != 0 {
				t.Errorf("stats after call = %+v, want nothing in flight or waiting", s)
			}
		})
	}
}

func TestBaseURLPrefixAndAuthHeader(t *testing.T) {
	tests := []struct {
		name     string
		suffix   string // appended to the server URL
		token    string
		scheme   *string
		wantURI  string
		wantAuth string
	}{
		{name: "no token", suffix: "", wantURI: "/v1/health", wantAuth: ""},
		{name: "bearer default", suffix: "/", token: "t1", wantURI: "/v1/health", wantAuth: "Bearer t1"},
		{name: "custom scheme and prefix", suffix: "/signal/", token: "t2", scheme: ptr("Token"), wantURI: "/signal/v1/health", wantAuth: "Token t2"},
		{name: "bare token", suffix: "/a/b", token: "t3", scheme: ptr(""), wantURI: "/a/b/v1/health", wantAuth: "t3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := newRecorder(t, reply{204, "", ""})
			c := newTestClient(t, rec.srv.URL+tt.suffix, func(o *Options) {
				o.Token, o.AuthScheme, o.UserAgent = tt.token, tt.scheme, ""
			})
			if err := c.Health(context.Background()); err != nil {
				t.Fatalf("Health: %v", err)
			}
			want := []recorded{{Method: "GET", URI: tt.wantURI, Accept: "application/json", Auth: tt.wantAuth, UserAgent: DefaultUserAgent}}
			if d := cmp.Diff(want, rec.requests()); d != "" {
				t.Errorf("request (-want +got):\n%s", d)
			}
		})
	}
}

// Argument errors are caught before any request, so no call reaches the server.
func TestArgumentErrors(t *testing.T) {
	tests := []struct {
		name string
		call func(context.Context, *Client) error
		want string
	}{
		{
			name: "send without recipients",
			call: func(ctx context.Context, c *Client) error {
				_, err := c.Send(ctx, SendRequest{Message: "x"})
				return err
			},
			want: "rest: send: no recipients; set SendRequest.Recipients to a number, UUID, username or one group id",
		},
		{
			name: "internal group id",
			call: func(ctx context.Context, c *Client) error {
				_, err := c.GetGroup(ctx, "R6fG4/C/ETxPPxIu+ObgS+hSl6DmDkBP7llnAf8KplU=")
				return err
			},
			want: `rest: get group: the id must be a REST group id ("group." + base64 of the internal id), not the internal id from received messages`,
		},
		{
			name: "empty attachment id",
			call: func(ctx context.Context, c *Client) error { _, err := c.GetAttachment(ctx, "", 10); return err },
			want: `rest: get attachment: attachment id must be a file name as found in a received message's attachments[].id (not empty, no "/")`,
		},
		{
			name: "attachment id with slash",
			call: func(ctx context.Context, c *Client) error { return c.DeleteAttachment(ctx, "../x") },
			want: `rest: delete attachment: attachment id must be a file name as found in a received message's attachments[].id (not empty, no "/")`,
		},
		{
			name: "challenge without captcha",
			call: func(ctx context.Context, c *Client) error { return c.RateLimitChallenge(ctx, "tok", "") },
			want: "rest: rate limit challenge: both the challenge token and the captcha are required; get the token from the rate-limit error and solve the captcha at signalcaptchas.org",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := newRecorder(t, reply{204, "", ""})
			var obs observed
			c := newTestClient(t, rec.srv.URL, func(o *Options) { o.Observer = obs.observe })
			err := tt.call(context.Background(), c)
			if err == nil || err.Error() != tt.want {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
			if n := len(rec.requests()); n != 0 {
				t.Errorf("server saw %d requests, want 0", n)
			}
			if n := len(obs.get()); n != 0 {
				t.Errorf("observer saw %d calls, want 0", n)
			}
		})
	}
}

func TestIsIdempotent(t *testing.T) {
	tests := []struct {
		endpoint string
		want     bool
	}{
		{EndpointSend, false},
		{EndpointReactions, false},
		{EndpointReceipts, false},
		{EndpointRemoteDelete, false},
		{EndpointRateLimitChallenge, false},
		{EndpointTyping, true},
		{EndpointGroups, true},
		{EndpointGroup, true},
		{EndpointAttachments, true},
		{EndpointAttachment, true},
		{EndpointAbout, true},
		{EndpointHealth, true},
		{EndpointAccounts, true},
		{"/v1/unknown", false},
	}
	for _, tt := range tests {
		if got := IsIdempotent(tt.endpoint); got != tt.want {
			t.Errorf("IsIdempotent(%q) = %v, want %v", tt.endpoint, got, tt.want)
		}
	}
}
