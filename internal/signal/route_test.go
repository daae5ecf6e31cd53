package signal

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
)

func TestGroupRESTID(t *testing.T) {
	if got := GroupRESTID(groupInt); got != groupREST {
		t.Errorf("GroupRESTID = %q, want %q", got, groupREST)
	}
	if got := GroupRESTID(""); got != "" {
		t.Errorf("GroupRESTID(\"\") = %q, want empty", got)
	}
	got, err := GroupInternalID(groupREST)
	if err != nil || got != groupInt {
		t.Errorf("GroupInternalID = %q, %v; want %q", got, err, groupInt)
	}
	// §6: base64 of base64 text never contains '/' or '+', so REST ids are
	// path-safe; and the round trip holds for any 32-byte id.
	for range 200 {
		raw := make([]byte, 32)
		if _, err := rand.Read(raw); err != nil {
			t.Fatal(err)
		}
		internal := base64.StdEncoding.EncodeToString(raw)
		rest := GroupRESTID(internal)
		if strings.ContainsAny(rest[len(GroupRESTPrefix):], "/+.") {
			t.Fatalf("REST id %q is not path-safe", rest)
		}
		back, err := GroupInternalID(rest)
		if err != nil || back != internal {
			t.Fatalf("round trip of %q: %q, %v", internal, back, err)
		}
		if err := ValidateGroupInternalID(internal); err != nil {
			t.Fatalf("ValidateGroupInternalID(%q): %v", internal, err)
		}
	}
}

func TestGroupInternalIDErrors(t *testing.T) {
	b64 := base64.StdEncoding.EncodeToString
	short := b64(make([]byte, 31))
	tests := []struct {
		name string
		in   string
		is   error
		text string
	}{
		{"internal id passed", groupInt, ErrGroupPrefix,
			`signal: group id: REST group id does not start with "group."; pass the REST id (group.<base64>), not the internal id from received JSON`},
		{"empty", "", ErrGroupPrefix, ""},
		{"prefix only", "group.", ErrGroupEncoding, "signal: group id: group id is not standard base64: nothing follows the prefix"},
		{"outer not base64", "group.%%%%", ErrGroupEncoding,
			"signal: group id: group id is not standard base64: outer layer (the REST encoding): illegal base64 data at input byte 0"},
		{"outer unpadded", strings.TrimRight(groupREST, "="), ErrGroupEncoding, ""},
		{"outer with line break", groupREST[:20] + "\n" + groupREST[20:], ErrGroupEncoding,
			"signal: group id: group id is not standard base64: outer layer (the REST encoding): not canonical (line breaks, or non-zero padding bits)"},
		{"inner not base64", "group." + b64([]byte("not base64!")), ErrGroupEncoding,
			"signal: group id: group id is not standard base64: inner layer (the internal id): illegal base64 data at input byte 3"},
		{"inner url alphabet", "group." + b64([]byte(strings.NewReplacer("/", "_", "+", "-").Replace(groupInt))), ErrGroupEncoding, ""},
		{"31 bytes", "group." + b64([]byte(short)), ErrGroupSize, "signal: group id: group id does not decode to 32 bytes: got 31 bytes"},
		{"single base64 of 32 bytes", "group." + groupInt, ErrGroupEncoding, ""},
	}
	for _, tt := range tests {
		got, err := GroupInternalID(tt.in)
		if got != "" || !errors.Is(err, tt.is) || (tt.text != "" && err.Error() != tt.text) {
			t.Errorf("%s: %q, %v; want error %q", tt.name, got, err, tt.text)
		}
	}
	if err := ValidateGroupInternalID(short); !errors.Is(err, ErrGroupSize) {
		t.Errorf("ValidateGroupInternalID(31 bytes) = %v", err)
	}
	if err := ValidateGroupInternalID("R6fG4"); !errors.Is(err, ErrGroupEncoding) {
		t.Errorf("ValidateGroupInternalID(truncated) = %v", err)
	}
}

// Seed §9 item 1: the Python original replied to groups with the internal
// id, which the REST API treats as a username. Every group frame must route
// replies to the REST id, while the receipt still goes to the person.
func TestPythonBugGroupReplyUsesRESTID(t *testing.T) {
	for _, file := range []string{"c_group_mention.json", "d_group_reaction.json", "f_group_typing.json", "h_sync_sent_group.json"} {
		f := mustDecode(t, readTestdata(t, file))
		if got := f.ReplyRecipient(); got != groupREST {
			t.Errorf("%s: ReplyRecipient = %q, want the REST id %q", file, got, groupREST)
		}
		if c := f.Conversation(); c.GroupID != groupInt || !c.IsGroup {
			t.Errorf("%s: Conversation = %+v", file, c)
		}
	}
	c := mustDecode(t, readTestdata(t, "c_group_mention.json"))
	if c.ReceiptRecipient() != alice {
		t.Errorf("group receipt goes to %q, want the sender", c.ReceiptRecipient())
	}
}

// Seed §9 item 2: the Python original looked for editMessage inside
// dataMessage and dropped every real edit, which signal-cli puts on the
// envelope.
func TestPythonBugEnvelopeLevelEdit(t *testing.T) {
	f := mustDecode(t, readTestdata(t, "i_edit.json"))
	if f.Kind() != KindEdit || f.Text() != "/help me" {
		t.Fatalf("edit: kind %q text %q", f.Kind(), f.Text())
	}
	if got, ok := f.EditTarget(); !ok || got != *ref(alice, aliceUUID, alice, 1767225600123) {
		t.Errorf("EditTarget = %+v, %v; want message (a)", got, ok)
	}
	// A group edit belongs to the group named inside the edit.
	group := bytes.Replace(readTestdata(t, "i_edit.json"), []byte(`"viewOnce":false}`),
		[]byte(`"viewOnce":false,"groupInfo":{"groupId":"`+groupInt+`","groupName":"Ops","revision":7,"type":"DELIVER"}}`), 1)
	g := mustDecode(t, group)
	if g.Conversation() != groupChat || g.ReplyRecipient() != groupREST {
		t.Errorf("group edit: conversation %+v", g.Conversation())
	}
}

// Seed §9 item 3: a mention of a user who hides their number has
// "number":null; the Python original then dropped the whole message.
func TestPythonBugHiddenNumberMention(t *testing.T) {
	raw := `{"envelope":{"source":"+15550000002","sourceNumber":"+15550000002","sourceUuid":"` + aliceUUID + `","sourceName":"Alice","sourceDevice":1,"timestamp":1767225611000,"serverReceivedTimestamp":1,"serverDeliveredTimestamp":2,` +
		`"dataMessage":{"timestamp":1767225611000,"message":"\uFFFC !ping \uFFFC","expiresInSeconds":0,"isExpirationUpdate":false,"viewOnce":false,` +
		`"mentions":[{"name":"` + bobUUID + `","number":null,"uuid":"` + bobUUID + `","start":0,"length":1},{"name":"+15550000001","number":"+15550000001","uuid":"` + botUUID + `","start":8,"length":1}],` +
		`"groupInfo":{"groupId":"` + groupInt + `","groupName":"Ops","revision":7,"type":"DELIVER"}}},"account":"+15550000001"}`
	f := mustDecode(t, []byte(raw))
	if f.Kind() != KindMessage {
		t.Fatalf("Kind = %q, want message", f.Kind())
	}
	d := f.Data()
	if len(d.Mentions) != 2 || d.Mentions[0].Number != "" || d.Mentions[0].UUID != bobUUID || d.Mentions[0].Start != 0 {
		t.Fatalf("mentions = %+v", d.Mentions)
	}
	if !d.Mentions[0].Is(bobUUID) || d.Mentions[0].Is("") {
		t.Error("a hidden-number mention must match by uuid, and never match an empty id")
	}
	q, _ := f.QuoteTarget()
	want := []OutgoingMention{{Author: bobUUID, Start: 0, Length: 1}, {Author: bot, Start: 8, Length: 1}}
	if len(q.Mentions) != 2 || q.Mentions[0] != want[0] || q.Mentions[1] != want[1] {
		t.Errorf("quote mentions = %+v, want %+v", q.Mentions, want)
	}
	if got := d.TextWithoutMentionsOf(bobUUID); got != "!ping \uFFFC" {
		t.Errorf("without Bob = %q", got)
	}
	if got := d.TextWithoutMentionsOf(botUUID); got != "\uFFFC !ping" {
		t.Errorf("without the bot (by uuid) = %q", got)
	}
	if got := d.TextWithoutMentionsOf(bot); got != "\uFFFC !ping" {
		t.Errorf("without the bot (by number) = %q", got)
	}
	names := map[string]string{bobUUID: "Bob", botUUID: "Bot"}
	if got := d.RenderMentions(func(m Mention) string { return names[m.UUID] }); got != "@Bob !ping @Bot" {
		t.Errorf("rendered = %q", got)
	}
}

// Seed §9 item 4: users are keyed by uuid, not by the deprecated source,
// so a key does not change when a number is revealed or hidden.
func TestPythonBugSenderIdentity(t *testing.T) {
	withNumber := mustDecode(t, readTestdata(t, "a_direct_text.json"))
	hidden := mustDecode(t, readTestdataReplaced(t, "a_direct_text.json",
		`"source":"+15550000002","sourceNumber":"+15550000002"`, `"source":"`+aliceUUID+`","sourceNumber":null`))
	if withNumber.Sender().ID() != aliceUUID || hidden.Sender().ID() != aliceUUID {
		t.Errorf("Sender.ID = %q / %q, want the uuid", withNumber.Sender().ID(), hidden.Sender().ID())
	}
	if withNumber.Conversation().Key != hidden.Conversation().Key {
		t.Errorf("conversation key changed with the number's visibility: %q vs %q",
			withNumber.Conversation().Key, hidden.Conversation().Key)
	}
	a, _ := withNumber.Identity()
	b, _ := hidden.Identity()
	if a.Key() != b.Key() {
		t.Errorf("identity changed with the number's visibility")
	}
	if withNumber.ReplyRecipient() != alice || hidden.ReplyRecipient() != aliceUUID {
		t.Errorf("replies go to %q / %q; want number, then uuid", withNumber.ReplyRecipient(), hidden.ReplyRecipient())
	}
}

func readTestdataReplaced(t *testing.T, name, old, new string) []byte {
	t.Helper()
	b := readTestdata(t, name)
	out := bytes.Replace(b, []byte(old), []byte(new), 1)
	if bytes.Equal(out, b) {
		t.Fatalf("%s: %q not found", name, old)
	}
	return out
}

func TestConversationRules(t *testing.T) {
	env := func(body string) []byte {
		return []byte(`{"account":"+15550000001","envelope":{"source":"+15550000002","sourceNumber":"+15550000002","sourceUuid":"` + aliceUUID + `","sourceDevice":1,"timestamp":5,` + body + `}}`)
	}
	gi := `"groupInfo":{"groupId":"` + groupInt + `","type":"DELIVER"}`
	tests := []struct {
		name string
		raw  []byte
		want Conversation
	}{
		{"typing 1:1", env(`"typingMessage":{"action":"STOPPED","timestamp":5}`), aliceChat},
		{"group story", env(`"storyMessage":{"allowsReplies":true,"groupId":"` + groupInt + `"}`), groupChat},
		{"own story", env(`"storyMessage":{"allowsReplies":false}`), aliceChat},
		{"call", env(`"callMessage":{"busyMessage":{"id":1}}`), aliceChat},
		{"group update", env(`"dataMessage":{"timestamp":5,"message":null,"groupInfo":{"groupId":"` + groupInt + `","type":"UPDATE"}}`), groupChat},
		{"group with empty id", env(`"dataMessage":{"timestamp":5,"message":"x","groupInfo":{"groupId":null,"type":"DELIVER"}}`), aliceChat},
		{"group reaction", env(`"dataMessage":{"timestamp":5,"reaction":{"emoji":"x","targetSentTimestamp":1},` + gi + `}`), groupChat},
		{"legacy source only, number", []byte(`{"envelope":{"source":"+15550000002","timestamp":5,"dataMessage":{"message":"x"}}}`),
			Conversation{Key: "n:+15550000002", Recipient: "+15550000002"}},
		{"legacy source only, uuid", []byte(`{"envelope":{"source":"` + strings.ToUpper(bobUUID) + `","timestamp":5,"dataMessage":{"message":"x"}}}`),
			Conversation{Key: "u:" + bobUUID, Recipient: strings.ToUpper(bobUUID)}},
		{"number only", []byte(`{"envelope":{"sourceNumber":"+15550000002","timestamp":5,"dataMessage":{"message":"x"}}}`),
			Conversation{Key: "n:+15550000002", Recipient: "+15550000002"}},
		{"upper-case uuid", []byte(`{"envelope":{"sourceUuid":"` + strings.ToUpper(aliceUUID) + `","timestamp":5,"dataMessage":{"message":"x"}}}`),
			Conversation{Key: "u:" + aliceUUID, Recipient: strings.ToUpper(aliceUUID)}},
		{"no sender", []byte(`{"envelope":{"timestamp":5,"dataMessage":{"message":"x"}}}`), Conversation{}},
		{"exception with envelope", []byte(`{"exception":{"type":"X"},"envelope":{"sourceUuid":"` + aliceUUID + `","sourceNumber":"+15550000002","timestamp":5,"dataMessage":{"message":"x",` + gi + `}}}`),
			aliceChat},
		{"error frame", []byte(`{"error":"x"}`), Conversation{}},
	}
	for _, tt := range tests {
		f := mustDecode(t, tt.raw)
		if got := f.Conversation(); got != tt.want {
			t.Errorf("%s: Conversation = %+v\nwant %+v", tt.name, got, tt.want)
		}
	}
}

func TestAdminDeleteTarget(t *testing.T) {
	raw := `{"envelope":{"sourceUuid":"` + aliceUUID + `","sourceNumber":"+15550000002","timestamp":5,"dataMessage":{"timestamp":5,"message":null,` +
		`"adminDelete":{"targetAuthor":"` + bobUUID + `","targetAuthorNumber":null,"targetAuthorUuid":"` + bobUUID + `","targetSentTimestamp":4},` +
		`"groupInfo":{"groupId":"` + groupInt + `","type":"DELIVER"}}}}`
	f := mustDecode(t, []byte(raw))
	if f.Kind() != KindRemoteDelete {
		t.Errorf("Kind = %q", f.Kind())
	}
	if got, ok := f.RemoteDeleteTarget(); !ok || got != *ref(bobUUID, bobUUID, "", 4) {
		t.Errorf("RemoteDeleteTarget = %+v, %v; want Bob's message", got, ok)
	}
}

func TestTargetsNeedAuthorAndTimestamp(t *testing.T) {
	for _, raw := range []string{
		`{"envelope":{"timestamp":5,"dataMessage":{"message":"x"}}}`,                    // no author
		`{"envelope":{"sourceUuid":"` + aliceUUID + `","dataMessage":{"message":"x"}}}`, // no timestamp
	} {
		f := mustDecode(t, []byte(raw))
		if _, ok := f.QuoteTarget(); ok {
			t.Errorf("%s: QuoteTarget ok", raw)
		}
		if _, ok := f.ReactionTarget(); ok {
			t.Errorf("%s: ReactionTarget ok", raw)
		}
	}
	poll := mustDecode(t, []byte(`{"envelope":{"sourceUuid":"`+aliceUUID+`","timestamp":5,"dataMessage":{"pollCreate":{"question":"q","options":["a"]}}}}`))
	if q, ok := poll.QuoteTarget(); !ok || q.Timestamp != 5 || q.Author != aliceUUID {
		t.Errorf("a new poll is quotable: %+v, %v", q, ok)
	}
	vote := mustDecode(t, []byte(`{"envelope":{"sourceUuid":"`+aliceUUID+`","timestamp":5,"dataMessage":{"pollVote":{"targetSentTimestamp":4,"optionIndexes":[0]}}}}`))
	if _, ok := vote.QuoteTarget(); ok || vote.Kind() != KindPoll {
		t.Errorf("a vote is not quotable (kind %q)", vote.Kind())
	}
}
