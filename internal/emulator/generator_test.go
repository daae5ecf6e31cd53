package emulator

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"
)

var baseTime = time.UnixMilli(1767225600000)

// frameView decodes the parts of a frame the generator tests check.
type frameView struct {
	Account  string `json:"account"`
	Envelope struct {
		Source       string  `json:"source"`
		SourceNumber *string `json:"sourceNumber"`
		SourceUUID   string  `json:"sourceUuid"`
		SourceDevice int     `json:"sourceDevice"`
		Timestamp    int64   `json:"timestamp"`
		DataMessage  *struct {
			Timestamp int64   `json:"timestamp"`
			Message   *string `json:"message"`
			Reaction  *struct {
				TargetSentTimestamp int64 `json:"targetSentTimestamp"`
			} `json:"reaction"`
			RemoteDelete *struct {
				Timestamp int64 `json:"timestamp"`
			} `json:"remoteDelete"`
			Attachments []struct {
				ID          string `json:"id"`
				ContentType string `json:"contentType"`
				Size        int    `json:"size"`
			} `json:"attachments"`
			GroupInfo *struct {
				GroupID string `json:"groupId"`
			} `json:"groupInfo"`
		} `json:"dataMessage"`
		EditMessage *struct {
			TargetSentTimestamp int64 `json:"targetSentTimestamp"`
			DataMessage         struct {
				Message   *string `json:"message"`
				GroupInfo *struct {
					GroupID string `json:"groupId"`
				} `json:"groupInfo"`
			} `json:"dataMessage"`
		} `json:"editMessage"`
		ReceiptMessage *struct {
			Timestamps []int64 `json:"timestamps"`
		} `json:"receiptMessage"`
		TypingMessage *struct {
			Action  string `json:"action"`
			GroupID string `json:"groupId"`
		} `json:"typingMessage"`
	} `json:"envelope"`
}

// key computes the conversation key the way a consumer does (reference §3.7).
func (f frameView) key() string {
	env := f.Envelope
	switch {
	case env.DataMessage != nil && env.DataMessage.GroupInfo != nil:
		return env.DataMessage.GroupInfo.GroupID
	case env.EditMessage != nil && env.EditMessage.DataMessage.GroupInfo != nil:
		return env.EditMessage.DataMessage.GroupInfo.GroupID
	case env.TypingMessage != nil && env.TypingMessage.GroupID != "":
		return env.TypingMessage.GroupID
	}
	return env.SourceUUID
}

func runGenerator(t *testing.T, e *Emulator, cfg GeneratorConfig) *Generator {
	t.Helper()
	g, err := e.StartGenerator(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Wait(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	return g
}

var msgRe = regexp.MustCompile(`^msg (\d+) `)

func TestGeneratorPayloadShapesAndRecords(t *testing.T) {
	e := start(t, Config{})
	g := runGenerator(t, e, GeneratorConfig{Direct: 2, Hidden: 2, Groups: 2, GroupMembers: 4, Count: 400, Seed: 11, BaseTime: baseTime, KeepRaw: true})
	if st := g.Status(); st.Running || st.Reason != "count" || st.Emitted != 400 {
		t.Fatalf("status %+v", st)
	}
	convs := g.Conversations()
	types := map[ConversationType]int{}
	for _, c := range convs {
		types[c.Type]++
		if c.Type == ConvGroup {
			if len(c.Members) != 4 || c.Recipient != RESTGroupID(c.Key) {
				t.Fatalf("group conversation %+v", c)
			}
			if r := do(t, http.MethodGet, e.URL()+"/v1/groups/"+bot+"/"+c.Recipient, ""); r.status != 200 {
				t.Fatalf("generated group not served: %d", r.status)
			}
		}
	}
	if types[ConvDirect] != 2 || types[ConvHidden] != 2 || types[ConvGroup] != 2 {
		t.Fatalf("conversation types %v", types)
	}
	kinds := map[EventKind]int{}
	lastSeq := map[int]int{}
	lastTS := map[string]int64{}
	senderTS := map[string]bool{}
	hiddenSeen, visibleSeen := false, false
	for i, rec := range g.Emitted() {
		kinds[rec.Kind]++
		if rec.Index != i || rec.Account != bot || rec.Sockets != 0 {
			t.Fatalf("record %d: %+v", i, rec)
		}
		var f frameView
		dec := json.NewDecoder(bytes.NewReader(rec.Raw))
		if err := dec.Decode(&f); err != nil {
			t.Fatalf("record %d raw is not JSON: %v", i, err)
		}
		env := f.Envelope
		if f.Account != bot || env.Timestamp != rec.Timestamp || env.SourceUUID != rec.Sender || env.SourceDevice != rec.Device {
			t.Fatalf("record %d does not match its frame: %+v\n%s", i, rec, rec.Raw)
		}
		if f.key() != rec.Conversation {
			t.Fatalf("record %d conversation %q, frame key %q", i, rec.Conversation, f.key())
		}
		if env.SourceNumber == nil {
			hiddenSeen = true
			if env.Source != env.SourceUUID || rec.SenderNumber != "" {
				t.Fatalf("hidden sender must fall back to the UUID: %s", rec.Raw)
			}
		} else {
			visibleSeen = true
			if env.Source != *env.SourceNumber || rec.SenderNumber != *env.SourceNumber {
				t.Fatalf("visible sender: %s", rec.Raw)
			}
		}
		if c := convs[rec.ConversationIndex]; c.Type == ConvHidden && env.SourceNumber != nil {
			t.Fatalf("hidden conversation with a number: %s", rec.Raw)
		}
		if rec.Seq != lastSeq[rec.ConversationIndex]+1 {
			t.Fatalf("conversation %d seq %d after %d", rec.ConversationIndex, rec.Seq, lastSeq[rec.ConversationIndex])
		}
		lastSeq[rec.ConversationIndex] = rec.Seq
		if rec.Timestamp <= lastTS[rec.Conversation] {
			t.Fatalf("timestamps not increasing in conversation %s", rec.Conversation)
		}
		lastTS[rec.Conversation] = rec.Timestamp
		st := fmt.Sprintf("%s/%d/%d", rec.Sender, rec.Device, rec.Timestamp)
		if senderTS[st] {
			t.Fatalf("duplicate sender+device+timestamp %s", st)
		}
		senderTS[st] = true
		dm := env.DataMessage
		switch rec.Kind {
		case KindText:
			if dm == nil || dm.Message == nil || *dm.Message != rec.Text || msgRe.FindStringSubmatch(rec.Text)[1] != fmt.Sprint(rec.Seq) {
				t.Fatalf("text: %+v %s", rec, rec.Raw)
			}
		case KindCommand:
			if dm == nil || dm.Message == nil || !strings.HasPrefix(*dm.Message, "!") ||
				(strings.HasPrefix(rec.Text, "!echo") && !strings.HasPrefix(rec.Text, fmt.Sprintf("!echo msg %d ", rec.Seq))) {
				t.Fatalf("command: %s", rec.Raw)
			}
		case KindReaction:
			if dm == nil || dm.Message != nil || dm.Reaction == nil || dm.Reaction.TargetSentTimestamp != rec.Target || rec.Target >= rec.Timestamp {
				t.Fatalf("reaction: %s", rec.Raw)
			}
		case KindReceipt:
			if env.ReceiptMessage == nil || env.ReceiptMessage.Timestamps[0] != rec.Target || rec.Conversation != rec.Sender {
				t.Fatalf("receipt: %s", rec.Raw)
			}
		case KindTyping:
			if env.TypingMessage == nil || (env.TypingMessage.Action != "STARTED" && env.TypingMessage.Action != "STOPPED") {
				t.Fatalf("typing: %s", rec.Raw)
			}
		case KindEdit:
			em := env.EditMessage
			if em == nil || em.TargetSentTimestamp != rec.Target || *em.DataMessage.Message != rec.Text || !strings.HasPrefix(rec.Text, fmt.Sprintf("msg %d ", rec.Seq)) {
				t.Fatalf("edit: %s", rec.Raw)
			}
		case KindDelete:
			if dm == nil || dm.RemoteDelete == nil || dm.RemoteDelete.Timestamp != rec.Target {
				t.Fatalf("delete: %s", rec.Raw)
			}
		case KindAttachment:
			if dm == nil || len(dm.Attachments) != 1 || dm.Attachments[0].ContentType != "image/png" {
				t.Fatalf("attachment: %s", rec.Raw)
			}
			r := do(t, http.MethodGet, e.URL()+"/v1/attachments/"+dm.Attachments[0].ID, "")
			if r.status != 200 || r.header.Get("Content-Type") != "image/png" || len(r.body) != dm.Attachments[0].Size {
				t.Fatalf("attachment %s not served: %d %s", dm.Attachments[0].ID, r.status, r.header.Get("Content-Type"))
			}
		}
	}
	for _, k := range AllKinds() {
		if kinds[k] == 0 {
			t.Fatalf("no %s events in %v", k, kinds)
		}
	}
	if !hiddenSeen || !visibleSeen {
		t.Fatal("expected both hidden and visible senders")
	}
}

func TestGeneratorDeterministicWithSeed(t *testing.T) {
	cfg := GeneratorConfig{Conversations: 5, Count: 150, Seed: 42, BaseTime: baseTime, KeepRaw: true}
	run := func(seed uint64) []Emitted {
		e := start(t, Config{})
		c := cfg
		c.Seed = seed
		return runGenerator(t, e, c).Emitted()
	}
	a, b, other := run(42), run(42), run(43)
	if len(a) != 150 || len(b) != 150 {
		t.Fatalf("counts %d %d", len(a), len(b))
	}
	for i := range a {
		if !bytes.Equal(a[i].Raw, b[i].Raw) || a[i].Kind != b[i].Kind || a[i].Conversation != b[i].Conversation {
			t.Fatalf("event %d differs between runs with the same seed:\n%s\n%s", i, a[i].Raw, b[i].Raw)
		}
	}
	same := 0
	for i := range a {
		if bytes.Equal(a[i].Raw, other[i].Raw) {
			same++
		}
	}
	if same == len(a) {
		t.Fatal("different seeds produced identical traffic")
	}
}

func TestGeneratorRateBoundAndStops(t *testing.T) {
	e := start(t, Config{})
	const rate, burst = 100.0, 3
	begin := time.Now()
	g := runGenerator(t, e, GeneratorConfig{Rate: rate, Burst: burst, Duration: 300 * time.Millisecond, Seed: 1})
	elapsed := time.Since(begin)
	n := len(g.Emitted())
	if bound := burst + int(rate*elapsed.Seconds()) + 1; n > bound {
		t.Fatalf("%d events in %v exceed the token bucket bound %d", n, elapsed, bound)
	}
	if n == 0 || g.Status().Reason != "duration" {
		t.Fatalf("emitted %d, status %+v", n, g.Status())
	}
	// Count bound: exactly Count events, then it stops by itself.
	g = runGenerator(t, e, GeneratorConfig{Rate: 2000, Burst: 10, Count: 25, Seed: 1})
	if len(g.Emitted()) != 25 || g.Status().Reason != "count" {
		t.Fatalf("count run: %d %+v", len(g.Emitted()), g.Status())
	}
	// Stop interrupts a slow run.
	g, err := e.StartGenerator(GeneratorConfig{Rate: 1, Duration: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.StartGenerator(GeneratorConfig{Count: 1}); err == nil {
		t.Fatal("second generator started while one runs")
	}
	e.StopGenerator()
	if st := g.Status(); st.Running || st.Reason != "stopped" || st.Emitted > 1 {
		t.Fatalf("stopped status %+v", st)
	}
}

func TestGeneratorConfigValidation(t *testing.T) {
	e := start(t, Config{})
	bad := []GeneratorConfig{
		{},
		{Count: 1, Weights: map[EventKind]int{"sticker": 1}},
		{Count: 1, Weights: map[EventKind]int{KindText: 0}},
		{Count: 1, Direct: -1},
	}
	for i, c := range bad {
		if _, err := e.StartGenerator(c); err == nil {
			t.Fatalf("config %d accepted", i)
		}
	}
}

func TestGeneratorDeliversToSocketsAndUsesBotSends(t *testing.T) {
	e := start(t, Config{})
	c1 := dial(t, e, bot, nil)
	c2 := dial(t, e, bot, nil)
	if err := e.WaitSockets(ctxT(t), bot, 2); err != nil {
		t.Fatal(err)
	}
	g := runGenerator(t, e, GeneratorConfig{Direct: 1, Count: 40, Seed: 5, KeepRaw: true,
		Weights: map[EventKind]int{KindText: 3, KindTyping: 1}})
	for _, rec := range g.Emitted() {
		if rec.Sockets != 2 {
			t.Fatalf("record %d reached %d sockets", rec.Index, rec.Sockets)
		}
		for _, c := range []*wsClient{c1, c2} {
			if got := c.next(t); !bytes.Equal(got, rec.Raw) {
				t.Fatalf("socket frame %d differs:\n got %s\nwant %s", rec.Index, got, rec.Raw)
			}
		}
	}
	// Receipts and reactions reference the bot's recorded sends to the conversation.
	conv := g.Conversations()[0]
	r := do(t, http.MethodPost, e.URL()+"/v2/send", `{"number":"`+bot+`","recipients":["`+conv.Recipient+`"],"message":"pong"}`)
	var sent struct{ Timestamp string }
	if err := json.Unmarshal([]byte(r.body), &sent); err != nil {
		t.Fatal(err)
	}
	g = runGenerator(t, e, GeneratorConfig{Direct: 1, Count: 10, Seed: 5, Weights: map[EventKind]int{KindReceipt: 1}})
	// A new generator makes new contacts with the same seed: same recipient.
	if g.Conversations()[0].Recipient != conv.Recipient {
		t.Fatalf("recipient changed: %s vs %s", g.Conversations()[0].Recipient, conv.Recipient)
	}
	for _, rec := range g.Emitted() {
		if fmt.Sprint(rec.Target) != sent.Timestamp {
			t.Fatalf("receipt target %d, want the bot's send %s", rec.Target, sent.Timestamp)
		}
	}
}
