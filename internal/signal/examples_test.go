package signal

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// Identities of the reference's §3.8 examples.
const (
	bot       = "+15550000001"
	botUUID   = "0a0b0c0d-1111-2222-3333-444455556666"
	alice     = "+15550000002"
	aliceUUID = "3f1c7a52-8e0b-4d1e-9a52-5a0c2b7d9e11"
	bobUUID   = "b7e2d0c4-1a2b-4c3d-8e9f-0a1b2c3d4e5f"
	groupInt  = "R6fG4/C/ETxPPxIu+ObgS+hSl6DmDkBP7llnAf8KplU="
	groupREST = "group.UjZmRzQvQy9FVHhQUHhJdStPYmdTK2hTbDZEbURrQlA3bGxuQWY4S3BsVT0="
)

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustDecode(t testing.TB, raw []byte) *Frame {
	t.Helper()
	f, err := Decode(raw)
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	return f
}

var (
	aliceChat = Conversation{Key: "u:" + aliceUUID, Recipient: alice}
	groupChat = Conversation{Key: "g:" + groupInt, IsGroup: true, GroupID: groupInt, Recipient: groupREST}
)

func ref(author, uuid, number string, ts int64) *MessageRef {
	return &MessageRef{Author: author, AuthorUUID: uuid, AuthorNumber: number, Timestamp: ts}
}

// TestReferenceExamples checks every example payload of §3.8 (a)-(k) end to
// end: shape, kind, conversation, routing, targets and identity.
func TestReferenceExamples(t *testing.T) {
	tests := []struct {
		file      string
		kind      Kind
		conv      Conversation
		receipt   string
		quote     *QuoteRef
		reaction  *MessageRef // ReactionTarget
		reactedTo *MessageRef
		edit      *MessageRef
		del       *MessageRef
		idKey     string
		text      string
	}{
		{
			file: "a_direct_text.json", kind: KindMessage, conv: aliceChat, receipt: alice,
			quote:    &QuoteRef{MessageRef: *ref(alice, aliceUUID, alice, 1767225600123), Text: "/help"},
			reaction: ref(alice, aliceUUID, alice, 1767225600123),
			idKey:    bot + ":" + aliceUUID + ":1:1767225600123:message", text: "/help",
		},
		{
			// Hidden number: route by uuid (§6, §7 item 10).
			file: "b_hidden_number.json", kind: KindMessage,
			conv:     Conversation{Key: "u:" + bobUUID, Recipient: bobUUID},
			receipt:  bobUUID,
			quote:    &QuoteRef{MessageRef: *ref(bobUUID, bobUUID, "", 1767225601000), Text: "hi bot"},
			reaction: ref(bobUUID, bobUUID, "", 1767225601000),
			idKey:    bot + ":" + bobUUID + ":2:1767225601000:message", text: "hi bot",
		},
		{
			file: "c_group_mention.json", kind: KindMessage, conv: groupChat, receipt: alice,
			quote: &QuoteRef{
				MessageRef: *ref(alice, aliceUUID, alice, 1767225602000),
				Text:       "Hey \uFFFC can you check?",
				Mentions:   []OutgoingMention{{Author: bot, Start: 4, Length: 1}},
			},
			reaction: ref(alice, aliceUUID, alice, 1767225602000),
			idKey:    bot + ":" + aliceUUID + ":1:1767225602000:message", text: "Hey \uFFFC can you check?",
		},
		{
			file: "d_group_reaction.json", kind: KindReaction, conv: groupChat, receipt: alice,
			reactedTo: ref(bot, botUUID, bot, 1767225599000),
			idKey:     bot + ":" + aliceUUID + ":1:1767225603000:reaction",
		},
		{
			file: "e_read_receipt.json", kind: KindReceipt, conv: aliceChat, receipt: alice,
			idKey: bot + ":" + aliceUUID + ":1:1767225604000:receipt",
		},
		{
			file: "f_group_typing.json", kind: KindTyping, conv: groupChat, receipt: alice,
			idKey: bot + ":" + aliceUUID + ":1:1767225605000:typing",
		},
		{
			file: "g_attachment_quote.json", kind: KindMessage, conv: aliceChat, receipt: alice,
			quote:    &QuoteRef{MessageRef: *ref(alice, aliceUUID, alice, 1767225606000), Text: "here is the screenshot"},
			reaction: ref(alice, aliceUUID, alice, 1767225606000),
			idKey:    bot + ":" + aliceUUID + ":1:1767225606000:message", text: "here is the screenshot",
		},
		{
			// The owner wrote into the group from their phone: the chat is the
			// group, the author (for quotes) is the account itself.
			file: "h_sync_sent_group.json", kind: KindSyncSent, conv: groupChat, receipt: bot,
			quote:    &QuoteRef{MessageRef: *ref(bot, botUUID, bot, 1767225607000), Text: "deploying now"},
			reaction: ref(bot, botUUID, bot, 1767225607000),
			idKey:    bot + ":" + botUUID + ":1:1767225607000:sync_sent", text: "deploying now",
		},
		{
			// An edit keeps the identity of the message it edits.
			file: "i_edit.json", kind: KindEdit, conv: aliceChat, receipt: alice,
			quote:    &QuoteRef{MessageRef: *ref(alice, aliceUUID, alice, 1767225600123), Text: "/help me"},
			reaction: ref(alice, aliceUUID, alice, 1767225600123),
			edit:     ref(alice, aliceUUID, alice, 1767225600123),
			idKey:    bot + ":" + aliceUUID + ":1:1767225608000:edit", text: "/help me",
		},
		{
			file: "j_remote_delete.json", kind: KindRemoteDelete, conv: aliceChat, receipt: alice,
			del:   ref(alice, aliceUUID, alice, 1767225600123),
			idKey: bot + ":" + aliceUUID + ":1:1767225609000:remote_delete",
		},
		{
			file: "k_exception.json", kind: KindException, conv: aliceChat, receipt: alice,
			idKey: bot + ":" + aliceUUID + ":1:1767225610000:exception",
		},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			raw := readTestdata(t, tt.file)
			f := mustDecode(t, raw)
			if !bytes.Equal(f.Raw, raw) {
				t.Errorf("Raw differs from the input")
			}
			if f.Type != FrameWrapper || f.Account != bot {
				t.Errorf("Type, Account = %q, %q; want wrapper, %q", f.Type, f.Account, bot)
			}
			if got := f.Kind(); got != tt.kind {
				t.Errorf("Kind = %q, want %q", got, tt.kind)
			}
			if got := f.Conversation(); got != tt.conv {
				t.Errorf("Conversation = %+v\nwant %+v", got, tt.conv)
			}
			if got := f.ReplyRecipient(); got != tt.conv.Recipient {
				t.Errorf("ReplyRecipient = %q, want %q", got, tt.conv.Recipient)
			}
			if got := f.ReceiptRecipient(); got != tt.receipt {
				t.Errorf("ReceiptRecipient = %q, want %q", got, tt.receipt)
			}
			checkOpt(t, "QuoteTarget", tt.quote, func() (QuoteRef, bool) { return f.QuoteTarget() })
			checkOpt(t, "ReactionTarget", tt.reaction, f.ReactionTarget)
			checkOpt(t, "ReactedTo", tt.reactedTo, f.ReactedTo)
			checkOpt(t, "EditTarget", tt.edit, f.EditTarget)
			checkOpt(t, "RemoteDeleteTarget", tt.del, f.RemoteDeleteTarget)
			id, ok := f.Identity()
			if !ok || id.Key() != tt.idKey {
				t.Errorf("Identity().Key() = %q, %v; want %q, true", id.Key(), ok, tt.idKey)
			}
			if got := f.Text(); got != tt.text {
				t.Errorf("Text = %q, want %q", got, tt.text)
			}
		})
	}
}

func checkOpt[T any](t *testing.T, name string, want *T, get func() (T, bool)) {
	t.Helper()
	got, ok := get()
	switch {
	case want == nil && ok:
		t.Errorf("%s = %+v, true; want none", name, got)
	case want != nil && !ok:
		t.Errorf("%s = none; want %+v", name, *want)
	case want != nil && !reflect.DeepEqual(got, *want):
		t.Errorf("%s = %+v\nwant %+v", name, got, *want)
	}
}

// TestReferenceExampleFields spot-checks decoded values of the examples that
// the table above does not reach.
func TestReferenceExampleFields(t *testing.T) {
	c := mustDecode(t, readTestdata(t, "c_group_mention.json"))
	d := c.Envelope.DataMessage
	if int64(d.ExpiresInSeconds) != 604800 || d.IsExpirationUpdate || d.ViewOnce {
		t.Errorf("c: timer fields = %d %v %v", d.ExpiresInSeconds, d.IsExpirationUpdate, d.ViewOnce)
	}
	wantMention := []Mention{{Name: bot, Number: bot, UUID: botUUID, Start: 4, Length: 1}}
	if !reflect.DeepEqual(d.Mentions, wantMention) {
		t.Errorf("c: mentions = %+v", d.Mentions)
	}
	wantGroup := &GroupInfo{GroupID: groupInt, GroupName: "Ops", Revision: 7, Type: GroupDeliver}
	if !reflect.DeepEqual(d.GroupInfo, wantGroup) {
		t.Errorf("c: groupInfo = %+v", d.GroupInfo)
	}
	if e := c.Envelope; e.SourceName != "Alice" || e.SourceDevice != 1 ||
		e.ServerReceivedTimestamp != 1767225602050 || e.ServerDeliveredTimestamp != 1767225602060 {
		t.Errorf("c: envelope metadata = %+v", e)
	}

	dd := mustDecode(t, readTestdata(t, "d_group_reaction.json")).Envelope.DataMessage
	wantReaction := &Reaction{Emoji: "👍", TargetAuthor: bot, TargetAuthorNumber: bot, TargetAuthorUUID: botUUID, TargetSentTimestamp: 1767225599000}
	if !reflect.DeepEqual(dd.Reaction, wantReaction) || dd.Message != nil {
		t.Errorf("d: reaction = %+v, message = %v", dd.Reaction, dd.Message)
	}

	r := mustDecode(t, readTestdata(t, "e_read_receipt.json")).Envelope.ReceiptMessage
	wantReceipt := &ReceiptMessage{When: 1767225604000, IsRead: true, Timestamps: []Int64{1767225599000, 1767225599500}}
	if !reflect.DeepEqual(r, wantReceipt) {
		t.Errorf("e: receipt = %+v", r)
	}

	ty := mustDecode(t, readTestdata(t, "f_group_typing.json")).Envelope.TypingMessage
	if *ty != (TypingMessage{Action: "STARTED", Timestamp: 1767225605000, GroupID: groupInt}) {
		t.Errorf("f: typing = %+v", ty)
	}

	g := mustDecode(t, readTestdata(t, "g_attachment_quote.json")).Envelope.DataMessage
	sz, w, h, up := Int64(183422), Int64(1170), Int64(2532), Int64(1767225605900)
	wantAtt := []Attachment{{ContentType: "image/jpeg", Filename: "IMG_0042.jpg", ID: "Xr3fE6X2wq1ZyFf7sD8m.jpg",
		Size: &sz, Width: &w, Height: &h, UploadTimestamp: &up}}
	if !reflect.DeepEqual(g.Attachments, wantAtt) {
		t.Errorf("g: attachments = %+v", g.Attachments)
	}
	quoted := "send me a screenshot"
	wantQuote := &Quote{ID: 1767225599000, Author: bot, AuthorNumber: bot, AuthorUUID: botUUID, Text: &quoted, Attachments: []QuotedAttachment{}}
	if !reflect.DeepEqual(g.Quote, wantQuote) {
		t.Errorf("g: quote = %+v", g.Quote)
	}

	h8 := mustDecode(t, readTestdata(t, "h_sync_sent_group.json")).Envelope.SyncMessage.SentMessage
	if h8.Destination != "" || h8.DestinationNumber != "" || h8.DestinationUUID != "" ||
		h8.Text() != "deploying now" || h8.GroupInfo.GroupID != groupInt || h8.Timestamp != 1767225607000 {
		t.Errorf("h: sentMessage = %+v", h8)
	}

	k := mustDecode(t, readTestdata(t, "k_exception.json"))
	if *k.Exception != (Exception{Message: "Untrusted identity key!", Type: "UntrustedIdentityException"}) {
		t.Errorf("k: exception = %+v", k.Exception)
	}
	if e := k.Envelope; e.DataMessage != nil || e.Timestamp != 1767225610000 {
		t.Errorf("k: envelope = %+v", e)
	}
}

// TestSameEventThreeTransports is example (l): the websocket frame, the
// poll-mode array and the webhook body of one event decode to the same
// frame with the same raw bytes and identity.
func TestSameEventThreeTransports(t *testing.T) {
	a := readTestdata(t, "a_direct_text.json")
	e := readTestdata(t, "e_read_receipt.json")
	ws := mustDecode(t, readTestdata(t, "l_websocket.json"))
	if !bytes.Equal(ws.Raw, a) {
		t.Fatalf("websocket frame is not example (a)")
	}

	frames, err := DecodeBatch(readTestdata(t, "l_poll.json"))
	if err != nil {
		t.Fatalf("DecodeBatch: %v", err)
	}
	if len(frames) != 2 {
		t.Fatalf("DecodeBatch returned %d frames, want 2", len(frames))
	}
	if !bytes.Equal(frames[0].Raw, a) || !bytes.Equal(frames[1].Raw, e) {
		t.Errorf("batch Raw values are not the exact elements")
	}
	if frames[0].Kind() != KindMessage || frames[1].Kind() != KindReceipt {
		t.Errorf("batch kinds = %q, %q", frames[0].Kind(), frames[1].Kind())
	}

	wh, err := DecodeWebhook(readTestdata(t, "l_webhook.json"))
	if err != nil {
		t.Fatalf("DecodeWebhook: %v", err)
	}
	if !bytes.Equal(wh.Raw, a) {
		t.Errorf("webhook Raw = %q, want the params bytes (example a)", wh.Raw)
	}
	for name, f := range map[string]*Frame{"poll": frames[0], "webhook": wh} {
		if !reflect.DeepEqual(f, ws) {
			t.Errorf("%s frame differs from the websocket frame:\n%+v\n%+v", name, f, ws)
		}
		if RawDigest(f.Raw) != RawDigest(ws.Raw) {
			t.Errorf("%s RawDigest differs", name)
		}
	}
}
