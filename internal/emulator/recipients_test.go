package emulator

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/signal-client/signal-client/internal/emulator/events"
)

func TestClassifyRecipient(t *testing.T) {
	tests := []struct {
		in      string
		want    recipientKind
		wantErr string
	}{
		{"+15550000002", recipientNumber, ""},
		{"+1 555 000", recipientNumber, ""},
		{"", recipientNumber, ""},
		{"+", recipientNumber, ""},
		{"3f1c7a52-8e0b-4d1e-9a52-5a0c2b7d9e11", recipientNumber, ""},
		{"3F1C7A52-8E0B-4D1E-9A52-5A0C2B7D9E11", recipientNumber, ""},
		{"{3f1c7a52-8e0b-4d1e-9a52-5a0c2b7d9e11}", recipientNumber, ""},
		{"urn:uuid:3f1c7a52-8e0b-4d1e-9a52-5a0c2b7d9e11", recipientNumber, ""},
		{"3f1c7a528e0b4d1e9a525a0c2b7d9e11", recipientNumber, ""},
		{"3f1c7a52-8e0b-4d1e-9a52-5a0c2b7d9e1", recipientUsername, ""},
		{"15550000002", recipientUsername, ""},
		{"+1555abc", recipientUsername, ""},
		{"alice.01", recipientUsername, ""},
		{testGroupID, recipientUsername, ""},
		{restGroupID, recipientGroup, ""},
		{"group.abc", recipientUsername, ""},
		{"group.abcdefghij!", recipientGroup, "Invalid identifier group.abcdefghij!"},
		{"group.ISEhIQ==", recipientGroup, "Invalid identifier group.ISEhIQ=="},
		{"group.", recipientGroup, "Invalid Signal group size (0"},
		{RESTGroupID("AAAA"), recipientGroup, "Invalid Signal group size (3"},
	}
	for _, tt := range tests {
		got, err := classifyRecipient(tt.in)
		gotErr := ""
		if err != nil {
			gotErr = err.Error()
		}
		if got != tt.want || gotErr != tt.wantErr {
			t.Errorf("classify(%q) = %v, %q; want %v, %q", tt.in, got, gotErr, tt.want, tt.wantErr)
		}
	}
	if RESTGroupID(testGroupID) != restGroupID {
		t.Fatal("REST id conversion")
	}
	if in, err := InternalGroupID(restGroupID); err != nil || in != testGroupID {
		t.Fatalf("internal id conversion: %q %v", in, err)
	}
	if _, err := InternalGroupID("group.!!"); err == nil || err.Error() != "Invalid group id" {
		t.Fatalf("bad REST id: %v", err)
	}
	// The REST id never contains '/' or '+', so it is path safe (reference §6).
	if strings.ContainsAny(restGroupID, "/+") {
		t.Fatal("REST id not path safe")
	}
}

func TestBuildEventKinds(t *testing.T) {
	e := New(Config{})
	if _, err := e.AddGroup(bot, Group{ID: testGroupID, Name: "Ops", Revision: 7}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		spec EventSpec
		want []string
	}{
		{EventSpec{Text: "hi", Group: restGroupID, Timestamp: 10}, []string{`"timestamp":10`, `"groupInfo":{"groupId":"` + testGroupID + `","groupName":"Ops","revision":7,"type":"DELIVER"}`}},
		{EventSpec{Kind: KindTyping, Group: testGroupID, Typing: events.TypingStopped}, []string{`"typingMessage":{"action":"STOPPED"`, `"groupId":"` + testGroupID + `"`}},
		{EventSpec{Kind: KindEdit, Target: 3, Text: "new"}, []string{`"editMessage":{"targetSentTimestamp":3,"dataMessage":{`, `"message":"new"`}},
		{EventSpec{Kind: KindDelete, Target: 3}, []string{`"message":null`, `"remoteDelete":{"timestamp":3}`}},
		{EventSpec{Kind: KindReaction, Target: 3, Remove: true, TargetAuthor: &events.Contact{UUID: "b7e2d0c4-1a2b-4c3d-8e9f-0a1b2c3d4e5f"}},
			[]string{`"emoji":"👍","targetAuthor":"b7e2d0c4-1a2b-4c3d-8e9f-0a1b2c3d4e5f","targetAuthorNumber":null`, `"isRemove":true`}},
		{EventSpec{Kind: KindSync, Text: "from phone", From: events.Contact{Number: bot}, Destination: &events.Contact{Number: "+15550000002"}},
			[]string{`"syncMessage":{"sentMessage":{"destination":"+15550000002","destinationNumber":"+15550000002","destinationUuid":null`, `"sourceUuid":"` + AccountUUID(bot) + `"`}},
		{EventSpec{Kind: KindException}, []string{`{"account":"+15550000001","exception":{"message":"Untrusted identity key!","type":"UntrustedIdentityException"},"envelope":{`}},
		{EventSpec{Kind: KindReceipt, Receipt: events.ReceiptViewed, Timestamps: []int64{1, 2}}, []string{`"isViewed":true,"timestamps":[1,2]`}},
		{EventSpec{From: events.Contact{UUID: "b7e2d0c4-1a2b-4c3d-8e9f-0a1b2c3d4e5f", Device: 3}, Text: "hidden"}, []string{`"source":"b7e2d0c4-1a2b-4c3d-8e9f-0a1b2c3d4e5f","sourceNumber":null`, `"sourceDevice":3`}},
	}
	for i, tt := range tests {
		frame, ts, err := e.BuildEvent(tt.spec)
		if err != nil {
			t.Fatalf("case %d: %v", i, err)
		}
		if !json.Valid(frame) || ts == 0 {
			t.Fatalf("case %d: invalid frame %s", i, frame)
		}
		for _, w := range tt.want {
			if !strings.Contains(string(frame), w) {
				t.Errorf("case %d: frame %s lacks %s", i, frame, w)
			}
		}
	}
	if _, _, err := e.BuildEvent(EventSpec{Kind: KindReceipt, Receipt: "seen"}); err == nil {
		t.Fatal("unknown receipt kind accepted")
	}
	if _, _, err := e.BuildEvent(EventSpec{Group: "group.!!"}); err == nil {
		t.Fatal("bad group id accepted")
	}
	if AccountUUID(bot) != AccountUUID(bot) || len(AccountUUID(bot)) != 36 || AccountUUID(bot) == AccountUUID(otherAcct) {
		t.Fatal("AccountUUID must be stable, well-formed and distinct")
	}
}
