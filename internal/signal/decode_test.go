package signal

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"testing"
)

// fullFrame sets every field the model knows, with non-null values, so that
// the null and missing-key tests below reach every field.
const fullFrame = `{"account":"+15550000001","envelope":{"source":"+15550000002","sourceNumber":"+15550000002","sourceUuid":"3f1c7a52-8e0b-4d1e-9a52-5a0c2b7d9e11","sourceName":"Alice","sourceDevice":1,"timestamp":1767225600123,"serverReceivedTimestamp":1767225600456,"serverDeliveredTimestamp":1767225600789,` +
	`"dataMessage":{"timestamp":1767225600123,"message":"hi \uFFFC","expiresInSeconds":60,"isExpirationUpdate":false,"viewOnce":true,` +
	`"reaction":{"emoji":"x","targetAuthor":"a","targetAuthorNumber":"+1","targetAuthorUuid":"u","targetSentTimestamp":1,"isRemove":true},` +
	`"quote":{"id":1,"author":"a","authorNumber":"+1","authorUuid":"u","text":"t","attachments":[{"contentType":"image/png","filename":"f","thumbnail":{"contentType":"image/png","filename":"f","id":"i","size":1,"width":1,"height":1,"caption":"c","uploadTimestamp":1}}],"mentions":[{"name":"n","number":"+1","uuid":"u","start":0,"length":1}],"textStyles":[{"style":"BOLD","start":0,"length":1}]},` +
	`"payment":{"note":"n","receipt":"AAAA"},` +
	`"mentions":[{"name":"n","number":"+1","uuid":"u","start":3,"length":1}],` +
	`"previews":[{"url":"https://x","title":"t","description":"d","image":{"contentType":"image/png","filename":"f","id":"i","size":1,"width":1,"height":1,"caption":"c","uploadTimestamp":1}}],` +
	`"attachments":[{"contentType":"image/png","filename":"f","id":"i","size":1,"width":1,"height":1,"caption":"c","uploadTimestamp":1}],` +
	`"sticker":{"packId":"ab","stickerId":2},"remoteDelete":{"timestamp":1},"contacts":[{"name":{"nickname":"x"}}],` +
	`"pollCreate":{"question":"q","allowMultiple":true,"options":["a","b"]},` +
	`"pollVote":{"author":"a","authorNumber":"+1","authorUuid":"u","targetSentTimestamp":1,"optionIndexes":[0,1],"voteCount":1},` +
	`"pollTerminate":{"targetSentTimestamp":1},"textStyles":[{"style":"BOLD","start":0,"length":2}],` +
	`"groupInfo":{"groupId":"R6fG4/C/ETxPPxIu+ObgS+hSl6DmDkBP7llnAf8KplU=","groupName":"Ops","revision":7,"type":"DELIVER"},` +
	`"storyContext":{"authorNumber":"+1","authorUuid":"u","sentTimestamp":1},` +
	`"pinMessage":{"targetAuthor":"a","targetAuthorNumber":"+1","targetAuthorUuid":"u","targetSentTimestamp":1,"pinDurationSeconds":60},` +
	`"unpinMessage":{"targetAuthor":"a","targetAuthorNumber":"+1","targetAuthorUuid":"u","targetSentTimestamp":1},` +
	`"adminDelete":{"targetAuthor":"a","targetAuthorNumber":"+1","targetAuthorUuid":"u","targetSentTimestamp":1}},` +
	`"editMessage":{"targetSentTimestamp":1,"dataMessage":{"timestamp":2,"message":"m","expiresInSeconds":0,"isExpirationUpdate":false,"viewOnce":false,"groupInfo":{"groupId":"g","groupName":"n","revision":1,"type":"DELIVER"}}},` +
	`"storyMessage":{"allowsReplies":true,"groupId":"g","fileAttachment":{"contentType":"image/png","filename":"f","id":"i","size":1,"width":1,"height":1,"caption":"c","uploadTimestamp":1},"textAttachment":{"text":"t","style":"BOLD","textForegroundColor":"#fff","textBackgroundColor":"#000","preview":{"url":"u","title":"t","description":"d","image":null},"backgroundGradient":{"startColor":"#000","endColor":"#fff","colors":["#000","#fff"],"positions":[0,1],"angle":90},"backgroundColor":"#111"}},` +
	`"syncMessage":{"sentMessage":{"destination":"+1","destinationNumber":"+1","destinationUuid":"u","timestamp":1,"message":"m","expiresInSeconds":0,"isExpirationUpdate":false,"viewOnce":false,"editMessage":{"targetSentTimestamp":1,"dataMessage":{"timestamp":2,"message":"m2"}}},"sentStoryMessage":{"destinationNumber":"+1","destinationUuid":"u","allowsReplies":true,"groupId":"g"},"blockedNumbers":["+1"],"blockedGroupIds":["g"],"readMessages":[{"sender":"+1","senderNumber":"+1","senderUuid":"u","timestamp":1}],"type":"CONTACTS_SYNC"},` +
	`"callMessage":{"offerMessage":{"id":18446744073709551615,"type":"AUDIO_CALL","opaque":"AA=="},"answerMessage":{"id":1,"opaque":"AA=="},"busyMessage":{"id":1},"hangupMessage":{"id":1,"type":"NORMAL","deviceId":1},"iceUpdateMessages":[{"id":1,"opaque":"AA=="}]},` +
	`"receiptMessage":{"when":1,"isDelivery":true,"isRead":false,"isViewed":false,"timestamps":[1,2]},` +
	`"typingMessage":{"action":"STARTED","timestamp":1,"groupId":"g"}},` +
	`"exception":{"message":"m","type":"T"}}`

// jsonPaths lists the path of every value inside v (objects and arrays
// included), each path being the keys and indexes leading to it.
func jsonPaths(v any, prefix []any, out *[][]any) {
	switch x := v.(type) {
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			p := append(append([]any(nil), prefix...), k)
			*out = append(*out, p)
			jsonPaths(x[k], p, out)
		}
	case []any:
		for i, e := range x {
			p := append(append([]any(nil), prefix...), i)
			*out = append(*out, p)
			jsonPaths(e, p, out)
		}
	}
}

// editAt returns a copy of doc with the value at path set to null, or its key
// deleted when del is true (array elements are always set to null).
func editAt(t *testing.T, doc []byte, path []any, del bool) []byte {
	t.Helper()
	var root any
	if err := json.Unmarshal(doc, &root); err != nil {
		t.Fatal(err)
	}
	cur := root
	for i, p := range path {
		last := i == len(path)-1
		switch k := p.(type) {
		case string:
			m := cur.(map[string]any)
			if last {
				if del {
					delete(m, k)
				} else {
					m[k] = nil
				}
			}
			cur = m[k]
		case int:
			a := cur.([]any)
			if last {
				a[k] = nil
			}
			cur = a[k]
		}
	}
	out, err := json.Marshal(root)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestNullOrMissingAnywhere nulls, then deletes, every value of a frame that
// sets every known field, one at a time: each variant must decode (§3:
// always-present fields may be null, optional ones are omitted; §9) and all
// derived values must be computable.
func TestNullOrMissingAnywhere(t *testing.T) {
	doc := []byte(fullFrame)
	var root any
	if err := json.Unmarshal(doc, &root); err != nil {
		t.Fatalf("fixture: %v", err)
	}
	var paths [][]any
	jsonPaths(root, nil, &paths)
	if len(paths) < 250 {
		t.Fatalf("fixture has only %d values; did it lose fields?", len(paths))
	}
	for _, p := range paths {
		for _, del := range []bool{false, true} {
			variant := editAt(t, doc, p, del)
			f, err := Decode(variant)
			if err != nil {
				t.Errorf("path %v (delete=%v): %v", p, del, err)
				continue
			}
			if !bytes.Equal(f.Raw, variant) || !f.Kind().Valid() {
				t.Errorf("path %v: Raw kept=%v kind=%q", p, bytes.Equal(f.Raw, variant), f.Kind())
			}
			f.Conversation()
			f.Identity()
			f.QuoteTarget()
			f.RemoteDeleteTarget()
		}
	}
}

// TestFullFrameDecodesEveryField proves the fixture above reaches the model:
// a few deep values that only decode if every json tag on the way is right.
func TestFullFrameDecodesEveryField(t *testing.T) {
	f := mustDecode(t, []byte(fullFrame))
	e := f.Envelope
	d := e.DataMessage
	checks := []struct {
		name string
		got  any
		want any
	}{
		{"quote thumbnail id", d.Quote.Attachments[0].Thumbnail.ID, "i"},
		{"quote mention uuid", d.Quote.Mentions[0].UUID, "u"},
		{"quote style", d.Quote.TextStyles[0].Style, "BOLD"},
		{"payment receipt", d.Payment.Receipt, "AAAA"},
		{"preview image id", d.Previews[0].Image.ID, "i"},
		{"sticker", *d.Sticker, Sticker{PackID: "ab", StickerID: 2}},
		{"contacts raw", string(d.Contacts), `[{"name":{"nickname":"x"}}]`},
		{"poll options", d.PollCreate.Options, []string{"a", "b"}},
		{"poll vote", d.PollVote.OptionIndexes, []Int64{0, 1}},
		{"poll terminate", int64(d.PollTerminate.TargetSentTimestamp), int64(1)},
		{"story context", d.StoryContext.AuthorUUID, "u"},
		{"pin duration", int64(d.PinMessage.PinDurationSeconds), int64(60)},
		{"unpin", d.UnpinMessage.TargetAuthorNumber, "+1"},
		{"admin delete", d.AdminDelete.TargetAuthorUUID, "u"},
		{"edit inner group", e.EditMessage.DataMessage.GroupInfo.GroupID, "g"},
		{"story gradient", e.StoryMessage.TextAttachment.BackgroundGradient.Positions, []float64{0, 1}},
		{"story preview", e.StoryMessage.TextAttachment.Preview.URL, "u"},
		{"sync sent edit", e.SyncMessage.SentMessage.EditMessage.DataMessage.Text(), "m2"},
		{"sync story", e.SyncMessage.SentStoryMessage.GroupID, "g"},
		{"sync read", e.SyncMessage.ReadMessages[0].SenderUUID, "u"},
		{"sync blocked groups", e.SyncMessage.BlockedGroupIDs, []string{"g"}},
		{"sync type", e.SyncMessage.Type, "CONTACTS_SYNC"},
		{"call offer id", e.CallMessage.OfferMessage.ID, json.Number("18446744073709551615")},
		{"call hangup device", int64(e.CallMessage.HangupMessage.DeviceID), int64(1)},
		{"call ice", e.CallMessage.IceUpdateMessages[0].Opaque, "AA=="},
		{"receipt", e.ReceiptMessage.Timestamps, []Int64{1, 2}},
		{"typing", e.TypingMessage.GroupID, "g"},
		{"exception", f.Exception.Type, "T"},
	}
	for _, c := range checks {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("%s = %#v, want %#v", c.name, c.got, c.want)
		}
	}
}

func TestNullsDecodeAsAbsent(t *testing.T) {
	raw := []byte(`{"account":null,"envelope":{"source":null,"sourceNumber":null,"sourceUuid":"` + aliceUUID + `","sourceName":null,"sourceDevice":null,"timestamp":1767225600123,"serverReceivedTimestamp":null,"serverDeliveredTimestamp":null,` +
		`"dataMessage":{"timestamp":null,"message":null,"expiresInSeconds":null,"isExpirationUpdate":null,"viewOnce":null,"reaction":null,"quote":null,"payment":null,"mentions":null,"previews":null,` +
		`"attachments":[{"contentType":"image/png","filename":null,"id":null,"size":null,"width":null,"height":null,"caption":null,"uploadTimestamp":null}],` +
		`"sticker":null,"remoteDelete":null,"contacts":null,"pollCreate":null,"pollVote":null,"pollTerminate":null,"textStyles":null,"groupInfo":null,"storyContext":null,"pinMessage":null,"unpinMessage":null,"adminDelete":null},` +
		`"editMessage":null,"storyMessage":null,"syncMessage":null,"callMessage":null,"receiptMessage":null,"typingMessage":null},"exception":null}`)
	f := mustDecode(t, raw)
	d := f.Envelope.DataMessage
	want := &DataMessage{Attachments: []Attachment{{ContentType: "image/png"}}}
	if !reflect.DeepEqual(d, want) {
		t.Errorf("dataMessage = %+v\nwant %+v", d, want)
	}
	if f.Exception != nil || f.Account != "" || f.Envelope.SourceDevice != 0 || f.Envelope.EditMessage != nil {
		t.Errorf("nulls were not absent: %+v", f)
	}
	if f.Kind() != KindMessage { // an attachment without body is a message
		t.Errorf("Kind = %q, want message", f.Kind())
	}
	if c := f.Conversation(); c.Key != "u:"+aliceUUID || c.Recipient != aliceUUID {
		t.Errorf("Conversation = %+v", c)
	}
	id, ok := f.Identity()
	if !ok || id.Key() != ":"+aliceUUID+":0:1767225600123:message" {
		t.Errorf("Identity = %q, %v", id.Key(), ok)
	}
}

// TestUnknownFieldsIgnored adds unknown keys at every level of example (c)
// and expects exactly the same model (§3.1: tolerate unknown keys).
func TestUnknownFieldsIgnored(t *testing.T) {
	plain := readTestdata(t, "c_group_mention.json")
	extra := []byte(strings.NewReplacer(
		`{"envelope":{`, `{"subscription":0,"future":{"x":[1,2,{"y":null}]},"envelope":{"relay":"r","decryptionErrorMessage":{},`,
		`"dataMessage":{`, `"dataMessage":{"newThing":true,"editMessage":{"bogus":1},`,
		`"mentions":[{`, `"mentions":[{"nick":"x",`,
		`"groupInfo":{`, `"groupInfo":{"color":"blue",`,
	).Replace(string(plain)))
	if bytes.Equal(extra, plain) {
		t.Fatal("replacer changed nothing")
	}
	a, b := mustDecode(t, plain), mustDecode(t, extra)
	if !reflect.DeepEqual(a.Envelope, b.Envelope) || a.Account != b.Account {
		t.Errorf("unknown keys changed the model:\n%+v\n%+v", a.Envelope, b.Envelope)
	}
	if a.Kind() != b.Kind() || a.Conversation() != b.Conversation() {
		t.Errorf("unknown keys changed kind or conversation")
	}
}

func TestNumbersAsStrings(t *testing.T) {
	plain := mustDecode(t, readTestdata(t, "c_group_mention.json"))
	quoted := []byte(strings.NewReplacer(
		`"sourceDevice":1`, `"sourceDevice":"1"`,
		`"timestamp":1767225602000,"serverReceivedTimestamp"`, `"timestamp":"1767225602000","serverReceivedTimestamp"`,
		`"expiresInSeconds":604800`, `"expiresInSeconds":"604800"`,
		`"start":4`, `"start":"4"`,
		`"revision":7`, `"revision":"7"`,
	).Replace(string(readTestdata(t, "c_group_mention.json"))))
	f := mustDecode(t, quoted)
	if !reflect.DeepEqual(f.Envelope, plain.Envelope) {
		t.Errorf("quoted numbers decode differently:\n%+v\n%+v", f.Envelope, plain.Envelope)
	}
	pk, _ := plain.Identity()
	fk, _ := f.Identity()
	if pk.Key() != fk.Key() {
		t.Errorf("identity differs: %q vs %q", fk.Key(), pk.Key())
	}
}

func TestInt64(t *testing.T) {
	tests := []struct {
		in      string
		want    Int64
		wantErr string
	}{
		{`0`, 0, ""},
		{`1767225600123`, 1767225600123, ""},
		{`-5`, -5, ""},
		{`"1767225600123"`, 1767225600123, ""},
		{`"-5"`, -5, ""},
		{`null`, 7, ""}, // null leaves the value as it was
		{`9223372036854775807`, 9223372036854775807, ""},
		{`9223372036854775808`, 0, "json: cannot unmarshal number that is not a 64-bit integer into Go value of type int64"},
		{`1.5`, 0, "json: cannot unmarshal number that is not a 64-bit integer into Go value of type int64"},
		{`1e3`, 0, "json: cannot unmarshal number that is not a 64-bit integer into Go value of type int64"},
		{`""`, 0, "json: cannot unmarshal string that is not an integer into Go value of type int64"},
		{`"+5"`, 0, "json: cannot unmarshal string that is not an integer into Go value of type int64"},
		{`" 5"`, 0, "json: cannot unmarshal string that is not an integer into Go value of type int64"},
		{`"1_000"`, 0, "json: cannot unmarshal string that is not an integer into Go value of type int64"},
		{`"-"`, 0, "json: cannot unmarshal string that is not an integer into Go value of type int64"},
		{`true`, 0, "json: cannot unmarshal bool into Go value of type int64"},
		{`{}`, 0, "json: cannot unmarshal object into Go value of type int64"},
		{`[]`, 0, "json: cannot unmarshal array into Go value of type int64"},
	}
	for _, tt := range tests {
		var n Int64
		if tt.in == "null" {
			n = 7
		}
		err := json.Unmarshal([]byte(tt.in), &n)
		if tt.wantErr != "" {
			if err == nil || err.Error() != tt.wantErr {
				t.Errorf("%s: err = %v, want %q", tt.in, err, tt.wantErr)
			}
			continue
		}
		if err != nil || n != tt.want {
			t.Errorf("%s: got %d, %v; want %d", tt.in, n, err, tt.want)
		}
	}
	out, err := json.Marshal(struct{ N Int64 }{42})
	if err != nil || string(out) != `{"N":42}` {
		t.Errorf("Marshal = %s, %v", out, err)
	}
}

func TestMissingIsExpirationUpdate(t *testing.T) {
	// signal-cli before v0.13.21 omits the flag (§3.3).
	raw := bytes.Replace(readTestdata(t, "a_direct_text.json"), []byte(`"isExpirationUpdate":false,`), nil, 1)
	if bytes.Contains(raw, []byte("isExpirationUpdate")) {
		t.Fatal("flag still present")
	}
	f := mustDecode(t, raw)
	if f.Kind() != KindMessage || f.Envelope.DataMessage.IsExpirationUpdate {
		t.Errorf("Kind = %q", f.Kind())
	}
}

func TestCallIDBeyondInt64(t *testing.T) {
	for _, id := range []string{`18446744073709551615`, `"18446744073709551615"`, `-1`} {
		raw := `{"account":"+15550000001","envelope":{"sourceUuid":"` + aliceUUID + `","sourceDevice":1,"timestamp":5,"callMessage":{"hangupMessage":{"id":` + id + `,"type":"NORMAL","deviceId":0}}}}`
		f := mustDecode(t, []byte(raw))
		want := json.Number(strings.Trim(id, `"`))
		if got := f.Envelope.CallMessage.HangupMessage.ID; got != want {
			t.Errorf("id %s: got %q", id, got)
		}
		if f.Kind() != KindCall || f.Conversation().Key != "u:"+aliceUUID {
			t.Errorf("id %s: kind %q conversation %q", id, f.Kind(), f.Conversation().Key)
		}
	}
	_, err := Decode([]byte(`{"envelope":{"callMessage":{"busyMessage":{"id":"abc"}}}}`))
	if !errors.Is(err, ErrBadField) || strings.Contains(err.Error(), "abc") {
		t.Errorf("bad call id: err = %v; want ErrBadField without the value", err)
	}
}

func TestSyncOther(t *testing.T) {
	base := `{"account":"+15550000001","envelope":{"source":"+15550000001","sourceNumber":"+15550000001","sourceUuid":"` + botUUID + `","sourceDevice":2,"timestamp":9,"syncMessage":%s}}`
	for _, sync := range []string{
		`{}`,
		`{"readMessages":[{"sender":"+15550000002","senderNumber":"+15550000002","senderUuid":"` + aliceUUID + `","timestamp":1}]}`,
		`{"blockedNumbers":["+15550000003"],"blockedGroupIds":["` + groupInt + `"]}`,
		`{"type":"CONTACTS_SYNC"}`,
		`{"sentStoryMessage":{"destinationNumber":null,"destinationUuid":null,"allowsReplies":true,"groupId":"` + groupInt + `"}}`,
	} {
		f := mustDecode(t, []byte(fmt.Sprintf(base, sync)))
		if f.Kind() != KindSyncOther {
			t.Errorf("%s: Kind = %q, want sync_other", sync, f.Kind())
		}
		if c := f.Conversation(); c.Key != "u:"+botUUID || c.Recipient != bot {
			t.Errorf("%s: Conversation = %+v, want the account's own chat", sync, c)
		}
		if _, ok := f.QuoteTarget(); ok {
			t.Errorf("%s: a sync event has no quotable message", sync)
		}
		if got := f.Envelope.SyncMessage.IsEmpty(); got != (sync == `{}`) {
			t.Errorf("%s: IsEmpty = %v", sync, got)
		}
	}
}

func TestSyncSentDirectAndEdit(t *testing.T) {
	direct := `{"account":"+15550000001","envelope":{"source":"+15550000001","sourceNumber":"+15550000001","sourceUuid":"` + botUUID + `","sourceDevice":2,"timestamp":7,` +
		`"syncMessage":{"sentMessage":{"destination":"` + bobUUID + `","destinationNumber":null,"destinationUuid":"` + bobUUID + `","timestamp":7,"message":"yo","expiresInSeconds":0,"isExpirationUpdate":false,"viewOnce":false}}}}`
	f := mustDecode(t, []byte(direct))
	want := Conversation{Key: "u:" + bobUUID, Recipient: bobUUID}
	if f.Kind() != KindSyncSent || f.Conversation() != want {
		t.Errorf("direct sync: kind %q conversation %+v", f.Kind(), f.Conversation())
	}

	numbered := strings.Replace(direct, `"destinationNumber":null`, `"destinationNumber":"+15550000009"`, 1)
	f = mustDecode(t, []byte(numbered))
	want = Conversation{Key: "u:" + bobUUID, Recipient: "+15550000009"}
	if f.Conversation() != want {
		t.Errorf("sync with number: conversation %+v, want key by uuid and reply by number", f.Conversation())
	}

	// An edit made on another device in a group: no flattened data fields,
	// the group sits in the edit's data message.
	edit := `{"account":"+15550000001","envelope":{"source":"+15550000001","sourceNumber":"+15550000001","sourceUuid":"` + botUUID + `","sourceDevice":2,"timestamp":8,` +
		`"syncMessage":{"sentMessage":{"destination":null,"destinationNumber":null,"destinationUuid":null,"editMessage":{"targetSentTimestamp":7,"dataMessage":{"timestamp":8,"message":"fixed","expiresInSeconds":0,"isExpirationUpdate":false,"viewOnce":false,"groupInfo":{"groupId":"` + groupInt + `","groupName":"Ops","revision":7,"type":"DELIVER"}}}}}}}`
	f = mustDecode(t, []byte(edit))
	if f.Kind() != KindSyncSent || f.Conversation() != groupChat || f.ReplyRecipient() != groupREST {
		t.Errorf("edit sync: kind %q conversation %+v", f.Kind(), f.Conversation())
	}
	if f.Text() != "fixed" {
		t.Errorf("edit sync: Text = %q", f.Text())
	}
	if got, ok := f.EditTarget(); !ok || got != *ref(bot, botUUID, bot, 7) {
		t.Errorf("edit sync: EditTarget = %+v, %v", got, ok)
	}
	if q, ok := f.QuoteTarget(); !ok || q.Timestamp != 7 || q.Text != "fixed" {
		t.Errorf("edit sync: QuoteTarget = %+v, %v", q, ok)
	}
}

func TestWrapperShapes(t *testing.T) {
	tests := []struct {
		name    string
		raw     string
		typ     FrameType
		kind    Kind
		errText string
		account string
	}{
		{"exception only", `{"account":"+15550000001","exception":{"message":"boom","type":"ProtocolInvalidMessageException"}}`, FrameWrapper, KindException, "", bot},
		{"error frame", `{"error":"Failed to connect"}`, FrameError, KindError, "Failed to connect", ""},
		{"error frame, object value", `{"error":{"code":-1,"message":"x"}}`, FrameError, KindError, `{"code":-1,"message":"x"}`, ""},
		{"error null", `{"error":null}`, FrameUnknown, KindUnknown, "", ""},
		{"empty object", `{}`, FrameUnknown, KindUnknown, "", ""},
		{"account only", `{"account":"+15550000001"}`, FrameUnknown, KindUnknown, "", bot},
		{"envelope null", `{"envelope":null,"account":"+15550000001"}`, FrameUnknown, KindUnknown, "", bot},
		{"unknown keys", `{"jsonrpc":"2.0","result":{}}`, FrameUnknown, KindUnknown, "", ""},
		{"empty envelope", `{"envelope":{},"account":"+15550000001"}`, FrameWrapper, KindIgnored, "", bot},
		{"metadata only", `{"envelope":{"sourceUuid":"` + aliceUUID + `","timestamp":3},"account":"+15550000001"}`, FrameWrapper, KindIgnored, "", bot},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := mustDecode(t, []byte(tt.raw))
			if f.Type != tt.typ || f.Kind() != tt.kind || f.ErrorMessage != tt.errText || f.Account != tt.account {
				t.Errorf("got type %q kind %q error %q account %q; want %q %q %q %q",
					f.Type, f.Kind(), f.ErrorMessage, f.Account, tt.typ, tt.kind, tt.errText, tt.account)
			}
			if tt.kind == KindIgnored && tt.name == "metadata only" {
				return // has a sender, so a conversation and an identity
			}
			if c := f.Conversation(); c != (Conversation{}) {
				t.Errorf("Conversation = %+v, want none", c)
			}
			if _, ok := f.Identity(); ok {
				t.Errorf("Identity ok for a frame without sender and timestamp")
			}
			if f.ReplyRecipient() != "" || f.ReceiptRecipient() != "" {
				t.Errorf("recipients = %q, %q; want none", f.ReplyRecipient(), f.ReceiptRecipient())
			}
		})
	}
}

func TestDecodeErrors(t *testing.T) {
	a := readTestdata(t, "a_direct_text.json")
	tests := []struct {
		name string
		raw  []byte
		is   error
		text string
	}{
		{"nil", nil, ErrEmpty, "signal: decode: frame is empty"},
		{"whitespace", []byte(" \n\t"), ErrEmpty, "signal: decode: frame is empty"},
		{"array", []byte(`[{"envelope":{}}]`), ErrNotObject, "signal: decode: frame is not a JSON object: got a JSON array"},
		{"string", []byte(`"hello"`), ErrNotObject, "signal: decode: frame is not a JSON object: got a JSON string"},
		{"number", []byte(` 42 `), ErrNotObject, "signal: decode: frame is not a JSON object: got a JSON number"},
		{"bool", []byte(`true`), ErrNotObject, "signal: decode: frame is not a JSON object: got a JSON boolean"},
		{"null", []byte(`null`), ErrNotObject, "signal: decode: frame is not a JSON object: got a JSON null"},
		{"truncated", a[:len(a)-3], ErrNotJSON, fmt.Sprintf("signal: decode: frame is not valid JSON: unexpected end of JSON input at byte %d of %d", len(a)-3, len(a)-3)},
		{"two values", []byte(`{} {}`), ErrNotJSON, "signal: decode: frame is not valid JSON: invalid character '{' after top-level value at byte 4 of 5"},
		{"log line", []byte(`WARN Config file is in use`), ErrNotJSON, "signal: decode: frame is not valid JSON: invalid character 'W' looking for beginning of value at byte 1 of 26"},
		{"invalid utf-8", []byte("{\"envelope\":{\"source\":\"\xff\xfe\"}}"), ErrInvalidUTF8, "signal: decode: frame is not valid UTF-8"},
		{"envelope is a string", []byte(`{"envelope":"x"}`), ErrBadField,
			"signal: decode: frame has a field of the wrong JSON type: field envelope holds a JSON string where signal.Envelope belongs; the sender is not signal-cli or its format changed, keep the raw frame and report its shape"},
		{"timestamp not digits", []byte(`{"envelope":{"timestamp":"soon"}}`), ErrBadField,
			"signal: decode: frame has a field of the wrong JSON type: field envelope.timestamp holds a JSON string that is not an integer where int64 belongs; the sender is not signal-cli or its format changed, keep the raw frame and report its shape"},
		{"mentions not a list", []byte(`{"envelope":{"dataMessage":{"mentions":{}}}}`), ErrBadField,
			"signal: decode: frame has a field of the wrong JSON type: field envelope.dataMessage.mentions holds a JSON object where []signal.Mention belongs; the sender is not signal-cli or its format changed, keep the raw frame and report its shape"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := Decode(tt.raw)
			if f != nil || !errors.Is(err, tt.is) {
				t.Fatalf("Decode = %v, %v; want nil, %v", f, err, tt.is)
			}
			if err.Error() != tt.text {
				t.Errorf("error text\n got %q\nwant %q", err.Error(), tt.text)
			}
		})
	}
}

func TestDecodeErrorsDoNotQuoteContent(t *testing.T) {
	secret := "+15559876543 secret text"
	for _, raw := range []string{
		`{"envelope":{"dataMessage":{"message":"` + secret + `","timestamp":"` + secret + `"}}}`,
		`{"envelope":{"sourceDevice":"` + secret + `"}}`,
		`{"envelope":{"sourceNumber":"` + secret + `","timestamp":{}}}`,
	} {
		_, err := Decode([]byte(raw))
		if err == nil || strings.Contains(err.Error(), "secret") || strings.Contains(err.Error(), "9876543") {
			t.Errorf("error quotes content or is nil: %v", err)
		}
	}
}

func TestMaxFrameBytes(t *testing.T) {
	a := readTestdata(t, "a_direct_text.json")
	if _, err := (Decoder{MaxFrameBytes: len(a)}).Decode(a); err != nil {
		t.Errorf("at the limit: %v", err)
	}
	_, err := (Decoder{MaxFrameBytes: len(a) - 1}).Decode(a)
	want := fmt.Sprintf("signal: decode: frame is larger than the configured limit: %d bytes, limit %d; raise the frame limit if signal-cli legitimately sends frames this large", len(a), len(a)-1)
	if !errors.Is(err, ErrTooLarge) || err.Error() != want {
		t.Errorf("over the limit: %v", err)
	}
	// The limit applies per batch element, not to the whole body.
	poll := readTestdata(t, "l_poll.json")
	limit := max(len(a), len(readTestdata(t, "e_read_receipt.json")))
	if len(poll) <= limit {
		t.Fatal("fixture: poll body is not over the per-frame limit")
	}
	frames, err := (Decoder{MaxFrameBytes: limit}).DecodeBatch(poll)
	if err != nil || len(frames) != 2 {
		t.Errorf("batch with elements under the limit: %d frames, %v", len(frames), err)
	}
}

func TestRawIsACopy(t *testing.T) {
	buf := readTestdata(t, "a_direct_text.json")
	f := mustDecode(t, buf)
	orig := bytes.Clone(buf)
	for i := range buf {
		buf[i] = 'x'
	}
	if !bytes.Equal(f.Raw, orig) {
		t.Error("Raw aliases the caller's buffer")
	}
}

func TestDecodeBatch(t *testing.T) {
	a := string(readTestdata(t, "a_direct_text.json"))
	e := string(readTestdata(t, "e_read_receipt.json"))

	frames, err := DecodeBatch([]byte(`[]`))
	if err != nil || len(frames) != 0 {
		t.Errorf("empty array: %d frames, %v", len(frames), err)
	}

	frames, err = DecodeBatch([]byte("[\n" + a + ", 5 ,\n" + e + ",[]]\n"))
	if len(frames) != 2 || frames[0].Kind() != KindMessage || frames[1].Kind() != KindReceipt {
		t.Fatalf("mixed array: %d frames", len(frames))
	}
	var be *BatchError
	if !errors.As(err, &be) || be.Total != 4 || len(be.Failures) != 2 {
		t.Fatalf("mixed array: err = %v", err)
	}
	if be.Failures[0].Index != 1 || string(be.Failures[0].Raw) != "5" || be.Failures[1].Index != 3 || string(be.Failures[1].Raw) != "[]" {
		t.Errorf("failures = %+v", be.Failures)
	}
	if !errors.Is(err, ErrNotObject) {
		t.Errorf("errors.Is(ErrNotObject) = false for %v", err)
	}
	wantText := "signal: decode batch: 2 of 4 elements failed; first at index 1: signal: decode batch element 1: frame is not a JSON object: got a JSON number"
	if err.Error() != wantText {
		t.Errorf("error text\n got %q\nwant %q", err.Error(), wantText)
	}

	bodyErrs := []struct {
		name string
		raw  string
		is   error
		text string
	}{
		{"empty", "", ErrEmpty, "signal: decode batch: frame is empty"},
		{"object", a, ErrNotArray, "signal: decode batch: poll body is not a JSON array: got a JSON object; decode a single frame with Decode"},
		{"null", "null", ErrNotArray, "signal: decode batch: poll body is not a JSON array: got a JSON null"},
		{"log text inside", "[" + a + ",\nERROR something broke]", ErrNotJSON, ""},
		{"bad utf-8", "[\"\xff\"]", ErrInvalidUTF8, "signal: decode batch: frame is not valid UTF-8"},
	}
	for _, tt := range bodyErrs {
		frames, err := DecodeBatch([]byte(tt.raw))
		if frames != nil || !errors.Is(err, tt.is) || (tt.text != "" && err.Error() != tt.text) {
			t.Errorf("%s: %d frames, err %v; want nil, %q", tt.name, len(frames), err, tt.text)
		}
	}
}

func TestDecodeWebhook(t *testing.T) {
	a := string(readTestdata(t, "a_direct_text.json"))
	tests := []struct {
		name string
		raw  string
		is   error
		text string
	}{
		{"other method", `{"jsonrpc":"2.0","method":"subscribe","params":` + a + `}`, ErrNotReceive,
			`signal: decode webhook: webhook body is not a receive notification: the body has method "subscribe"; point RECEIVE_WEBHOOK_URL only at this endpoint`},
		{"no method", `{"jsonrpc":"2.0","params":` + a + `}`, ErrNotReceive,
			`signal: decode webhook: webhook body is not a receive notification: the body has no method; point RECEIVE_WEBHOOK_URL only at this endpoint`},
		{"method not a string", `{"method":5}`, ErrNotReceive,
			`signal: decode webhook: webhook body is not a receive notification: its method is not a JSON string`},
		{"no params", `{"jsonrpc":"2.0","method":"receive"}`, ErrNoParams,
			`signal: decode webhook: webhook receive notification has no params`},
		{"null params", `{"jsonrpc":"2.0","method":"receive","params":null}`, ErrNoParams,
			`signal: decode webhook: webhook receive notification has no params`},
		{"array params", `{"jsonrpc":"2.0","method":"receive","params":[]}`, ErrNotObject,
			`signal: decode webhook params: frame is not a JSON object: got a JSON array`},
		{"not an object", `[]`, ErrNotObject, `signal: decode webhook: frame is not a JSON object: got a JSON array`},
		{"truncated", `{"jsonrpc":"2.0","method":"receive","params":{`, ErrNotJSON, ""},
		{"empty", "\n", ErrEmpty, `signal: decode webhook: frame is empty`},
	}
	for _, tt := range tests {
		f, err := DecodeWebhook([]byte(tt.raw))
		if f != nil || !errors.Is(err, tt.is) || (tt.text != "" && err.Error() != tt.text) {
			t.Errorf("%s: %v, %v; want %q", tt.name, f, err, tt.text)
		}
	}
	// A webhook whose params are an error frame or unknown object still decodes.
	f, err := DecodeWebhook([]byte(`{"jsonrpc":"2.0","method":"receive","params":{"error":"x"}}` + "\n"))
	if err != nil || f.Kind() != KindError || string(f.Raw) != `{"error":"x"}` {
		t.Errorf("error params: %+v, %v", f, err)
	}
}

func TestNilFrame(t *testing.T) {
	var f *Frame
	if f.Kind() != KindUnknown || f.Conversation() != (Conversation{}) || f.ReplyRecipient() != "" ||
		f.ReceiptRecipient() != "" || f.Data() != nil || f.Edit() != nil || f.Text() != "" || f.Sender() != (Sender{}) {
		t.Error("nil frame methods returned values")
	}
	if _, ok := f.Identity(); ok {
		t.Error("nil frame has an identity")
	}
	for name, get := range map[string]func() (MessageRef, bool){
		"reaction": f.ReactionTarget, "reactedTo": f.ReactedTo, "edit": f.EditTarget, "delete": f.RemoteDeleteTarget,
	} {
		if _, ok := get(); ok {
			t.Errorf("nil frame has a %s target", name)
		}
	}
	if _, ok := f.QuoteTarget(); ok {
		t.Error("nil frame has a quote target")
	}
}

func TestParseDecimalBytesMatchesParseDecimal(t *testing.T) {
	for _, s := range []string{"", "-", "0", "-0", "00012", "1767225600000", "9223372036854775807", "9223372036854775808",
		"-9223372036854775808", "-9223372036854775809", "18446744073709551615", "18446744073709551616", "99999999999999999999",
		"1e3", "1.5", "+1", " 1", "1 ", "--1", "-a", "12a"} {
		v1, ok1 := parseDecimal(s)
		v2, ok2 := parseDecimalBytes([]byte(s))
		if v1 != v2 || ok1 != ok2 {
			t.Errorf("%q: parseDecimal %d %v, parseDecimalBytes %d %v", s, v1, ok1, v2, ok2)
		}
	}
}
