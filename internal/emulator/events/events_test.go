package events

import (
	"encoding/json"
	"strings"
	"testing"
)

// referenceFrames are the §3.8 example payloads of the reference, verbatim (the \uFFFC
// escape of example c is turned into the raw character signal-cli emits).
var referenceFrames = map[string]string{
	"a": `{"envelope":{"source":"+15550000002","sourceNumber":"+15550000002","sourceUuid":"3f1c7a52-8e0b-4d1e-9a52-5a0c2b7d9e11","sourceName":"Alice","sourceDevice":1,"timestamp":1767225600123,"serverReceivedTimestamp":1767225600456,"serverDeliveredTimestamp":1767225600789,"dataMessage":{"timestamp":1767225600123,"message":"/help","expiresInSeconds":0,"isExpirationUpdate":false,"viewOnce":false}},"account":"+15550000001"}`,
	"b": `{"envelope":{"source":"b7e2d0c4-1a2b-4c3d-8e9f-0a1b2c3d4e5f","sourceNumber":null,"sourceUuid":"b7e2d0c4-1a2b-4c3d-8e9f-0a1b2c3d4e5f","sourceName":"Bob","sourceDevice":2,"timestamp":1767225601000,"serverReceivedTimestamp":1767225601100,"serverDeliveredTimestamp":1767225601150,"dataMessage":{"timestamp":1767225601000,"message":"hi bot","expiresInSeconds":0,"isExpirationUpdate":false,"viewOnce":false}},"account":"+15550000001"}`,
	"c": `{"envelope":{"source":"+15550000002","sourceNumber":"+15550000002","sourceUuid":"3f1c7a52-8e0b-4d1e-9a52-5a0c2b7d9e11","sourceName":"Alice","sourceDevice":1,"timestamp":1767225602000,"serverReceivedTimestamp":1767225602050,"serverDeliveredTimestamp":1767225602060,"dataMessage":{"timestamp":1767225602000,"message":"Hey \uFFFC can you check?","expiresInSeconds":604800,"isExpirationUpdate":false,"viewOnce":false,"mentions":[{"name":"+15550000001","number":"+15550000001","uuid":"0a0b0c0d-1111-2222-3333-444455556666","start":4,"length":1}],"groupInfo":{"groupId":"R6fG4/C/ETxPPxIu+ObgS+hSl6DmDkBP7llnAf8KplU=","groupName":"Ops","revision":7,"type":"DELIVER"}}},"account":"+15550000001"}`,
	"d": `{"envelope":{"source":"+15550000002","sourceNumber":"+15550000002","sourceUuid":"3f1c7a52-8e0b-4d1e-9a52-5a0c2b7d9e11","sourceName":"Alice","sourceDevice":1,"timestamp":1767225603000,"serverReceivedTimestamp":1767225603010,"serverDeliveredTimestamp":1767225603020,"dataMessage":{"timestamp":1767225603000,"message":null,"expiresInSeconds":0,"isExpirationUpdate":false,"viewOnce":false,"reaction":{"emoji":"👍","targetAuthor":"+15550000001","targetAuthorNumber":"+15550000001","targetAuthorUuid":"0a0b0c0d-1111-2222-3333-444455556666","targetSentTimestamp":1767225599000,"isRemove":false},"groupInfo":{"groupId":"R6fG4/C/ETxPPxIu+ObgS+hSl6DmDkBP7llnAf8KplU=","groupName":"Ops","revision":7,"type":"DELIVER"}}},"account":"+15550000001"}`,
	"e": `{"envelope":{"source":"+15550000002","sourceNumber":"+15550000002","sourceUuid":"3f1c7a52-8e0b-4d1e-9a52-5a0c2b7d9e11","sourceName":"Alice","sourceDevice":1,"timestamp":1767225604000,"serverReceivedTimestamp":1767225604005,"serverDeliveredTimestamp":1767225604006,"receiptMessage":{"when":1767225604000,"isDelivery":false,"isRead":true,"isViewed":false,"timestamps":[1767225599000,1767225599500]}},"account":"+15550000001"}`,
	"f": `{"envelope":{"source":"+15550000002","sourceNumber":"+15550000002","sourceUuid":"3f1c7a52-8e0b-4d1e-9a52-5a0c2b7d9e11","sourceName":"Alice","sourceDevice":1,"timestamp":1767225605000,"serverReceivedTimestamp":1767225605001,"serverDeliveredTimestamp":1767225605002,"typingMessage":{"action":"STARTED","timestamp":1767225605000,"groupId":"R6fG4/C/ETxPPxIu+ObgS+hSl6DmDkBP7llnAf8KplU="}},"account":"+15550000001"}`,
	"g": `{"envelope":{"source":"+15550000002","sourceNumber":"+15550000002","sourceUuid":"3f1c7a52-8e0b-4d1e-9a52-5a0c2b7d9e11","sourceName":"Alice","sourceDevice":1,"timestamp":1767225606000,"serverReceivedTimestamp":1767225606400,"serverDeliveredTimestamp":1767225606500,"dataMessage":{"timestamp":1767225606000,"message":"here is the screenshot","expiresInSeconds":0,"isExpirationUpdate":false,"viewOnce":false,"quote":{"id":1767225599000,"author":"+15550000001","authorNumber":"+15550000001","authorUuid":"0a0b0c0d-1111-2222-3333-444455556666","text":"send me a screenshot","attachments":[]},"attachments":[{"contentType":"image/jpeg","filename":"IMG_0042.jpg","id":"Xr3fE6X2wq1ZyFf7sD8m.jpg","size":183422,"width":1170,"height":2532,"caption":null,"uploadTimestamp":1767225605900}]}},"account":"+15550000001"}`,
	"h": `{"envelope":{"source":"+15550000001","sourceNumber":"+15550000001","sourceUuid":"0a0b0c0d-1111-2222-3333-444455556666","sourceName":"Bot Owner","sourceDevice":1,"timestamp":1767225607000,"serverReceivedTimestamp":1767225607010,"serverDeliveredTimestamp":1767225607020,"syncMessage":{"sentMessage":{"destination":null,"destinationNumber":null,"destinationUuid":null,"timestamp":1767225607000,"message":"deploying now","expiresInSeconds":0,"isExpirationUpdate":false,"viewOnce":false,"groupInfo":{"groupId":"R6fG4/C/ETxPPxIu+ObgS+hSl6DmDkBP7llnAf8KplU=","groupName":"Ops","revision":7,"type":"DELIVER"}}}},"account":"+15550000001"}`,
	"i": `{"envelope":{"source":"+15550000002","sourceNumber":"+15550000002","sourceUuid":"3f1c7a52-8e0b-4d1e-9a52-5a0c2b7d9e11","sourceName":"Alice","sourceDevice":1,"timestamp":1767225608000,"serverReceivedTimestamp":1767225608010,"serverDeliveredTimestamp":1767225608020,"editMessage":{"targetSentTimestamp":1767225600123,"dataMessage":{"timestamp":1767225608000,"message":"/help me","expiresInSeconds":0,"isExpirationUpdate":false,"viewOnce":false}}},"account":"+15550000001"}`,
	"j": `{"envelope":{"source":"+15550000002","sourceNumber":"+15550000002","sourceUuid":"3f1c7a52-8e0b-4d1e-9a52-5a0c2b7d9e11","sourceName":"Alice","sourceDevice":1,"timestamp":1767225609000,"serverReceivedTimestamp":1767225609010,"serverDeliveredTimestamp":1767225609020,"dataMessage":{"timestamp":1767225609000,"message":null,"expiresInSeconds":0,"isExpirationUpdate":false,"viewOnce":false,"remoteDelete":{"timestamp":1767225600123}}},"account":"+15550000001"}`,
	"k": `{"account":"+15550000001","exception":{"message":"Untrusted identity key!","type":"UntrustedIdentityException"},"envelope":{"source":"+15550000002","sourceNumber":"+15550000002","sourceUuid":"3f1c7a52-8e0b-4d1e-9a52-5a0c2b7d9e11","sourceName":"Alice","sourceDevice":1,"timestamp":1767225610000,"serverReceivedTimestamp":1767225610010,"serverDeliveredTimestamp":1767225610020}}`,
}

const (
	bot      = "+15550000001"
	groupID  = "R6fG4/C/ETxPPxIu+ObgS+hSl6DmDkBP7llnAf8KplU="
	botUUID  = "0a0b0c0d-1111-2222-3333-444455556666"
	aliceNum = "+15550000002"
)

var (
	alice    = Contact{Number: aliceNum, UUID: "3f1c7a52-8e0b-4d1e-9a52-5a0c2b7d9e11", Name: "Alice", Device: 1}
	bob      = Contact{UUID: "b7e2d0c4-1a2b-4c3d-8e9f-0a1b2c3d4e5f", Name: "Bob", Device: 2}
	botC     = Contact{Number: bot, UUID: botUUID}
	opsGroup = &Group{ID: groupID, Name: "Ops", Revision: 7}
)

func meta(from Contact, ts, recv, deliv int64) Meta {
	return Meta{Account: bot, From: from, Timestamp: ts, ServerReceived: recv, ServerDelivered: deliv}
}

func TestBuildersMatchReferenceExamples(t *testing.T) {
	tests := []struct {
		name string
		got  []byte
	}{
		{"a", DataMessage(meta(alice, 1767225600123, 1767225600456, 1767225600789), Message{Text: "/help"})},
		{"b", DataMessage(meta(bob, 1767225601000, 1767225601100, 1767225601150), Message{Text: "hi bot"})},
		{"c", DataMessage(meta(alice, 1767225602000, 1767225602050, 1767225602060), Message{
			Text: "Hey \uFFFC can you check?", ExpiresInSeconds: 604800, Group: opsGroup,
			Mentions: []Mention{{Who: botC, Start: 4, Length: 1}},
		})},
		{"d", ReactionMessage(meta(alice, 1767225603000, 1767225603010, 1767225603020),
			Reaction{Emoji: "👍", TargetAuthor: botC, TargetTimestamp: 1767225599000}, opsGroup)},
		{"e", ReceiptMessage(meta(alice, 1767225604000, 1767225604005, 1767225604006),
			Receipt{Kind: ReceiptRead, Timestamps: []int64{1767225599000, 1767225599500}})},
		{"f", TypingMessage(meta(alice, 1767225605000, 1767225605001, 1767225605002), TypingStarted, groupID)},
		{"g", DataMessage(meta(alice, 1767225606000, 1767225606400, 1767225606500), Message{
			Text:  "here is the screenshot",
			Quote: &Quote{ID: 1767225599000, Author: botC, Text: "send me a screenshot"},
			Attachments: []Attachment{{ContentType: "image/jpeg", Filename: "IMG_0042.jpg", ID: "Xr3fE6X2wq1ZyFf7sD8m.jpg",
				Size: 183422, Width: 1170, Height: 2532, UploadTimestamp: 1767225605900}},
		})},
		{"h", SyncSentMessage(meta(Contact{Number: bot, UUID: botUUID, Name: "Bot Owner", Device: 1}, 1767225607000, 1767225607010, 1767225607020),
			nil, Message{Text: "deploying now", Group: opsGroup})},
		{"i", EditMessage(meta(alice, 1767225608000, 1767225608010, 1767225608020), 1767225600123, Message{Text: "/help me"})},
		{"j", RemoteDeleteMessage(meta(alice, 1767225609000, 1767225609010, 1767225609020), 1767225600123, nil)},
		{"k", ExceptionMessage(meta(alice, 1767225610000, 1767225610010, 1767225610020), "UntrustedIdentityException", "Untrusted identity key!")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := strings.ReplaceAll(referenceFrames[tt.name], `\uFFFC`, "\uFFFC")
			if string(tt.got) != want {
				t.Fatalf("frame mismatch\n got: %s\nwant: %s", tt.got, want)
			}
		})
	}
}

func TestSyncSentDirectHasDestination(t *testing.T) {
	got := SyncSentMessage(meta(botC, 10, 11, 12), &bob, Message{Text: "x"})
	var v struct {
		Envelope struct {
			SyncMessage struct {
				SentMessage map[string]any `json:"sentMessage"`
			} `json:"syncMessage"`
		} `json:"envelope"`
	}
	if err := json.Unmarshal(got, &v); err != nil {
		t.Fatal(err)
	}
	sm := v.Envelope.SyncMessage.SentMessage
	if sm["destination"] != bob.UUID || sm["destinationNumber"] != nil || sm["destinationUuid"] != bob.UUID {
		t.Fatalf("unexpected destination fields: %v", sm)
	}
	if _, ok := sm["groupInfo"]; ok {
		t.Fatalf("1:1 sync must not carry groupInfo: %s", got)
	}
}

func TestDefaultsAndEscaping(t *testing.T) {
	got := string(DataMessage(Meta{Account: bot, From: alice, Timestamp: 100}, Message{Text: "a<b & c>d"}))
	want := `{"envelope":{"source":"+15550000002","sourceNumber":"+15550000002","sourceUuid":"3f1c7a52-8e0b-4d1e-9a52-5a0c2b7d9e11","sourceName":"Alice","sourceDevice":1,"timestamp":100,"serverReceivedTimestamp":110,"serverDeliveredTimestamp":120,"dataMessage":{"timestamp":100,"message":"a<b & c>d","expiresInSeconds":0,"isExpirationUpdate":false,"viewOnce":false}},"account":"+15550000001"}`
	if got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
	if e := string(ErrorFrame("boom <x>")); e != `{"error":"boom \u003cx\u003e"}` {
		t.Fatalf("error frame = %s", e)
	}
	n := string(Notification([]byte(`{"account":"+1"}`)))
	if n != "{\"jsonrpc\":\"2.0\",\"method\":\"receive\",\"params\":{\"account\":\"+1\"}}\n" {
		t.Fatalf("notification = %q", n)
	}
}

func TestReceiptKindsSetExactlyOneFlag(t *testing.T) {
	for _, k := range []ReceiptKind{ReceiptDelivery, ReceiptRead, ReceiptViewed} {
		var v struct {
			Envelope struct {
				R map[string]any `json:"receiptMessage"`
			} `json:"envelope"`
		}
		if err := json.Unmarshal(ReceiptMessage(meta(alice, 5, 6, 7), Receipt{Kind: k, Timestamps: []int64{1}}), &v); err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, f := range []string{"isDelivery", "isRead", "isViewed"} {
			if v.Envelope.R[f] == true {
				n++
			}
		}
		if n != 1 {
			t.Fatalf("%s: %d flags set: %v", k, n, v.Envelope.R)
		}
	}
}
