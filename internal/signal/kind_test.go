package signal

import (
	"regexp"
	"testing"
)

// TestDataKinds walks the data-message rules of Kind in order, including
// the precedence between them.
func TestDataKinds(t *testing.T) {
	gi := func(typ string) string { return `"groupInfo":{"groupId":"` + groupInt + `","type":"` + typ + `"}` }
	tests := []struct {
		name string
		data string
		want Kind
	}{
		{"text", `"message":"hi"`, KindMessage},
		{"empty body", `"message":""`, KindMessage},
		{"attachment only", `"message":null,"attachments":[{"contentType":"image/png"}]`, KindMessage},
		{"sticker", `"message":null,"sticker":{"packId":"ab","stickerId":1}`, KindMessage},
		{"quote without text", `"message":null,"quote":{"id":1,"text":null,"attachments":[]}`, KindMessage},
		{"shared contact", `"message":null,"contacts":[{}]`, KindMessage},
		{"payment", `"message":null,"payment":{"note":"n","receipt":"AA=="}`, KindMessage},
		{"story reply", `"message":"nice","storyContext":{"authorUuid":"u","sentTimestamp":1}`, KindMessage},
		{"group text", `"message":"hi",` + gi("DELIVER"), KindMessage},
		{"profile key update", `"message":null,"expiresInSeconds":0,"isExpirationUpdate":false,"viewOnce":false`, KindIgnored},
		{"nothing", ``, KindIgnored},
		{"empty lists", `"message":null,"attachments":null,"mentions":null`, KindIgnored},
		{"old-style timer change", `"message":null,"expiresInSeconds":3600`, KindIgnored},
		{"timer change", `"message":null,"expiresInSeconds":3600,"isExpirationUpdate":true`, KindTimerUpdate},
		{"group update", `"message":null,` + gi("UPDATE"), KindGroupUpdate},
		{"group update beats timer", `"isExpirationUpdate":true,` + gi("UPDATE"), KindGroupUpdate},
		{"reaction", `"reaction":{"emoji":"x","targetSentTimestamp":1}`, KindReaction},
		{"reaction removal", `"reaction":{"emoji":"x","targetSentTimestamp":1,"isRemove":true}`, KindReaction},
		{"story reaction", `"reaction":{"emoji":"x","targetSentTimestamp":1},"storyContext":{"sentTimestamp":1}`, KindReaction},
		{"reaction beats delete", `"reaction":{"emoji":"x"},"remoteDelete":{"timestamp":1}`, KindReaction},
		{"remote delete", `"remoteDelete":{"timestamp":1}`, KindRemoteDelete},
		{"admin delete", `"adminDelete":{"targetSentTimestamp":1},` + gi("DELIVER"), KindRemoteDelete},
		{"poll create", `"pollCreate":{"question":"q","options":["a"]}`, KindPoll},
		{"poll vote", `"pollVote":{"targetSentTimestamp":1}`, KindPoll},
		{"poll terminate", `"pollTerminate":{"targetSentTimestamp":1}`, KindPoll},
		{"pin", `"pinMessage":{"targetSentTimestamp":1,"pinDurationSeconds":0}`, KindPin},
		{"unpin", `"unpinMessage":{"targetSentTimestamp":1}`, KindPin},
		{"delete beats poll", `"remoteDelete":{"timestamp":1},"pollTerminate":{"targetSentTimestamp":1}`, KindRemoteDelete},
	}
	for _, tt := range tests {
		raw := `{"account":"+15550000001","envelope":{"sourceUuid":"` + aliceUUID + `","timestamp":5,"dataMessage":{"timestamp":5`
		if tt.data != "" {
			raw += "," + tt.data
		}
		raw += `}}}`
		f := mustDecode(t, []byte(raw))
		if got := f.Kind(); got != tt.want {
			t.Errorf("%s: Kind = %q, want %q", tt.name, got, tt.want)
		}
	}
}

// TestEnvelopeKinds covers the other envelope contents and their order.
func TestEnvelopeKinds(t *testing.T) {
	tests := []struct {
		name string
		body string
		want Kind
	}{
		{"edit", `"editMessage":{"targetSentTimestamp":1,"dataMessage":{"message":"x"}}`, KindEdit},
		{"edit without content", `"editMessage":{"targetSentTimestamp":1}`, KindEdit},
		{"sync sent", `"syncMessage":{"sentMessage":{"message":"x"}}`, KindSyncSent},
		{"sync empty", `"syncMessage":{}`, KindSyncOther},
		{"story", `"storyMessage":{"allowsReplies":true}`, KindStory},
		{"call", `"callMessage":{"offerMessage":{"id":1,"type":"AUDIO_CALL","opaque":""}}`, KindCall},
		{"receipt", `"receiptMessage":{"when":1,"isDelivery":true,"timestamps":[1]}`, KindReceipt},
		{"typing", `"typingMessage":{"action":"STARTED","timestamp":1}`, KindTyping},
		{"no content", ``, KindIgnored},
		{"data beats edit", `"dataMessage":{"message":"x"},"editMessage":{"targetSentTimestamp":1}`, KindMessage},
		{"null data falls through", `"dataMessage":null,"receiptMessage":{"when":1}`, KindReceipt},
	}
	for _, tt := range tests {
		raw := `{"account":"+15550000001","envelope":{"sourceUuid":"` + aliceUUID + `","timestamp":5`
		if tt.body != "" {
			raw += "," + tt.body
		}
		raw += `}}`
		f := mustDecode(t, []byte(raw))
		if got := f.Kind(); got != tt.want {
			t.Errorf("%s: Kind = %q, want %q", tt.name, got, tt.want)
		}
	}
}

// TestKindNames pins the wire names: they are stored in Redis and used as
// metric labels, so a rename is a breaking change.
func TestKindNames(t *testing.T) {
	want := []string{"message", "reaction", "remote_delete", "group_update", "timer_update", "edit",
		"sync_sent", "sync_other", "receipt", "typing", "call", "story", "exception", "error", "poll",
		"pin", "ignored", "unknown"}
	got := Kinds()
	if len(got) != len(want) {
		t.Fatalf("Kinds() has %d kinds, want %d", len(got), len(want))
	}
	valid := regexp.MustCompile(`^[a-z][a-z_]*$`)
	for i, k := range got {
		if string(k) != want[i] || !valid.MatchString(string(k)) || !k.Valid() {
			t.Errorf("Kinds()[%d] = %q, want %q", i, k, want[i])
		}
		if p, ok := ParseKind(want[i]); !ok || p != k {
			t.Errorf("ParseKind(%q) = %q, %v", want[i], p, ok)
		}
	}
	got[0] = "changed"
	if Kinds()[0] != KindMessage {
		t.Error("Kinds returns the package's own slice")
	}
	for _, bad := range []string{"", "Message", "sync", "message "} {
		if _, ok := ParseKind(bad); ok {
			t.Errorf("ParseKind(%q) ok", bad)
		}
	}
}
