package bot_test

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/signal-client/signal-client/bot"
	"github.com/signal-client/signal-client/bot/bottest"
)

func TestReplyRoutingAndQuotes(t *testing.T) {
	r := bot.New()
	r.Command("!hi", func(c *bot.Context) error { _, err := c.Reply("hello"); return err })
	k := bottest.New(r)
	for _, tc := range []struct {
		name string
		m    *bottest.Msg
		to   string
	}{
		{"number", bottest.Text(alice, "!hi"), alice.Number},
		{"hidden number", bottest.Text(hidden, "!hi"), hidden.UUID},
		{"group", bottest.Text(hidden, "!hi").In(ops), ops.RESTID()},
	} {
		res := k.Run(tc.m)
		if res.Err != nil {
			t.Fatal(res.Err)
		}
		s := res.Sent()
		if len(s) != 1 || s[0].To != tc.to || s[0].Text != "hello" {
			t.Fatalf("%s: sent %+v, want hello to %s", tc.name, s, tc.to)
		}
		q := s[0].Quote
		if q == nil || q.Timestamp != res.Timestamp || q.Text != "!hi" {
			t.Fatalf("%s: quote %+v", tc.name, q)
		}
		wantAuthor := alice.Number
		if tc.name != "number" {
			wantAuthor = hidden.UUID
		}
		if q.Author != wantAuthor {
			t.Fatalf("%s: quote author %q, want %q", tc.name, q.Author, wantAuthor)
		}
	}
}

func TestQuoteKeepsMentionsOfTheQuotedMessage(t *testing.T) {
	r := bot.New()
	r.Command("!q", func(c *bot.Context) error { _, err := c.Reply("ok"); return err })
	res := bottest.New(r).Run(bottest.Text(alice, "!q 🎉 ").Mentioning(bob).In(ops))
	q := res.Sent()[0].Quote
	// "!q 🎉 " is 6 UTF-16 units: the mention of Bob sits at 6.
	want := []bot.MentionAt{{Author: bob.Number, Start: 6, Length: 1}}
	if q == nil || !reflect.DeepEqual(q.Mentions, want) || q.Text != "!q 🎉 \uFFFC" {
		t.Fatalf("quote %+v, want mentions %v", q, want)
	}
}

func TestComposeMentionOffsetsAfterEmoji(t *testing.T) {
	r := bot.New()
	r.Command("!welcome", func(c *bot.Context) error {
		m := bot.Compose().Text("👋🏽 hi ").Mention(c.Sender().Recipient()).Text(" and ").Mention(bob.UUID)
		_, err := c.Send(m.String(), bot.WithMentions(m.Mentions()...))
		return err
	})
	res := bottest.New(r).Run(bottest.Text(alice, "!welcome"))
	s := res.Sent()[0]
	// 👋🏽 is 4 UTF-16 units (two astral code points), so "👋🏽 hi " is 8.
	want := []bot.MentionAt{{Author: alice.Number, Start: 8, Length: 1}, {Author: bob.UUID, Start: 14, Length: 1}}
	if !reflect.DeepEqual(s.Mentions, want) || s.Text != "👋🏽 hi \uFFFC and \uFFFC" {
		t.Fatalf("sent %q %+v, want mentions %+v", s.Text, s.Mentions, want)
	}
}

func TestReactReceiptDeleteEdit(t *testing.T) {
	r := bot.New()
	r.Command("!all", func(c *bot.Context) error {
		if _, err := c.React("👀"); err != nil {
			return err
		}
		if _, err := c.MarkRead(); err != nil {
			return err
		}
		s, err := c.Send("draft")
		if err != nil {
			return err
		}
		if _, err := c.Edit(s.Timestamp, "final"); err != nil {
			return err
		}
		_, err = c.Delete(s.Timestamp)
		return err
	})
	r.On(bot.EventReaction, func(c *bot.Context) error {
		if c.Reaction().Removed {
			_, err := c.Unreact(c.Reaction().Emoji)
			return err
		}
		_, err := c.React(c.Reaction().Emoji)
		return err
	})
	r.On(bot.EventReceipt, func(c *bot.Context) error {
		if _, err := c.MarkRead(); !errors.Is(err, bot.ErrNoTarget) {
			return errors.New("a receipt cannot be marked read")
		}
		return nil
	})
	k := bottest.New(r)
	res := k.Run(bottest.Text(hidden, "!all").In(ops))
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	var kinds []string
	for _, c := range res.Calls {
		kinds = append(kinds, c.Kind)
	}
	if strings.Join(kinds, " ") != "react receipt send send delete" {
		t.Fatalf("calls %v", kinds)
	}
	re := res.Calls[0].Reaction
	if re.To != ops.RESTID() || re.TargetAuthor != hidden.UUID || re.TargetTimestamp != res.Timestamp || re.Emoji != "👀" || re.Remove {
		t.Fatalf("reaction %+v", re)
	}
	rc := res.Calls[1].Receipt
	if rc.To != hidden.UUID || rc.Type != "read" || rc.Timestamp != res.Timestamp {
		t.Fatalf("receipt %+v: must go to the individual sender, even in a group", rc)
	}
	draft := res.Calls[2].Timestamp
	if e := res.Calls[3].Message; e.EditOf != draft || e.Text != "final" || e.To != ops.RESTID() {
		t.Fatalf("edit %+v of %d", e, draft)
	}
	if d := res.Calls[4]; d.To != ops.RESTID() || d.Target != draft || d.Timestamp <= draft {
		t.Fatalf("delete %+v", d)
	}
	// Keys number the calls in order.
	for i, c := range res.Calls {
		if c.Key.Seq != i+1 || c.Key.Original != res.ID {
			t.Fatalf("call %d key %+v", i, c.Key)
		}
	}
	// A reaction event: React and Unreact target the reacted-to message.
	res = k.Run(bottest.Unreaction(alice, "❤️", bob, 42).In(ops))
	u := res.Calls[0].Reaction
	if res.Calls[0].Kind != "unreact" || u.TargetAuthor != bob.Number || u.TargetTimestamp != 42 || u.Emoji != "❤️" || u.To != ops.RESTID() {
		t.Fatalf("unreact %+v", res.Calls[0])
	}
	if res := k.Run(bottest.Receipt(alice, "read", 1)); res.Err != nil {
		t.Fatal(res.Err)
	}
}

func TestTypingKeepAliveAndStop(t *testing.T) {
	r := bot.New()
	r.Command("!slow", func(c *bot.Context) error {
		c.Typing()
		time.Sleep(200 * time.Millisecond)
		_, err := c.Send("done")
		return err
	})
	r.Command("!stop", func(c *bot.Context) error {
		stop := c.Typing()
		if again := c.Typing(); again == nil {
			return errors.New("nil stop")
		}
		stop()
		stop()
		return nil
	})
	k := bottest.New(r)
	k.TypingInterval = 40 * time.Millisecond
	res := k.Run(bottest.Text(alice, "!slow"))
	starts, stops := len(res.Of("typing")), len(res.Of("typing_stop"))
	// 200ms at a 40ms interval: the first indicator and at least one repeat
	// (a loaded machine may delay ticks, never add them).
	if starts < 2 || starts > 6 || stops != 1 {
		t.Fatalf("typing starts %d (want 2..6 over 200ms at 40ms), stops %d (want 1)", starts, stops)
	}
	if last := res.Calls[len(res.Calls)-1]; last.Kind != "typing_stop" || last.To != alice.Number {
		t.Fatalf("last call %+v, want the typing stop at handler end", last)
	}
	res = k.Run(bottest.Text(alice, "!stop"))
	if len(res.Of("typing")) != 1 || len(res.Of("typing_stop")) != 1 {
		t.Fatalf("calls %+v", res.Calls)
	}
}

func TestDownloadDeletesUpstream(t *testing.T) {
	r := bot.New()
	r.On(bot.EventAttachment, func(c *bot.Context) error {
		a := c.Attachments()[0]
		if a.Filename != "note.txt" || a.Size != 5 {
			return errors.New("attachment metadata")
		}
		d, err := c.Download(a, 0)
		if err != nil {
			return err
		}
		_, err = c.Send(string(d.Data))
		if _, err2 := c.Download(a, 0); err2 == nil {
			return errors.New("attachment still there after download")
		}
		return err
	})
	res := bottest.New(r).Run(bottest.Text(alice, "").WithAttachment("att1", "text/plain", "note.txt", []byte("hello")))
	if res.Err != nil || res.Texts()[0] != "hello" {
		t.Fatalf("%v %v", res.Err, res.Texts())
	}
	if d := res.Of("delete_attachment"); len(d) != 1 || d[0].ID != "att1" {
		t.Fatalf("delete calls %+v", d)
	}
}

func TestStateCommitsOnlyOnSuccess(t *testing.T) {
	r := bot.New()
	r.Command("!inc", func(c *bot.Context) error {
		n, err := c.State().Incr("n", 1)
		if err != nil {
			return err
		}
		if c.Arg(0) == "fail" {
			return errors.New("fail after the write")
		}
		_, err = c.Send(strings.Repeat("+", int(n)))
		return err
	})
	k := bottest.New(r)
	conv := alice.Conversation()
	k.Run(bottest.Text(alice, "!inc"))
	k.Run(bottest.Text(alice, "!inc"))
	res := k.Run(bottest.Text(alice, "!inc fail"))
	if res.Err == nil || res.Committed {
		t.Fatal("the failing handler's writes were committed")
	}
	if got := k.State(conv)["n"]; got != "2" {
		t.Fatalf("n = %q after a failed increment, want 2", got)
	}
	res = k.Run(bottest.Text(alice, "!inc"))
	if res.Texts()[0] != "+++" {
		t.Fatalf("third good increment says %q", res.Texts()[0])
	}
	if got := k.State(bob.Conversation())["n"]; got != "" {
		t.Fatal("state leaked to another conversation")
	}
}

func TestStateOperations(t *testing.T) {
	type prefs struct {
		Lang string `json:"lang"`
		N    int    `json:"n"`
	}
	var got []string
	r := bot.New()
	r.Command("!s", func(c *bot.Context) error {
		st := c.State()
		var p prefs
		ok, err := st.Get("prefs", &p)
		if err != nil {
			return err
		}
		got = append(got, "get:"+map[bool]string{true: "found", false: "absent"}[ok]+":"+p.Lang)
		if err := st.Set("prefs", prefs{Lang: "de", N: 1}); err != nil {
			return err
		}
		if _, err := st.Get("prefs", &p); err != nil || p.Lang != "de" {
			return errors.New("no read-your-write")
		}
		swapped, err := st.CompareAndSet("prefs", prefs{Lang: "fr", N: 1}, prefs{Lang: "x"})
		if err != nil || swapped {
			return errors.New("CAS with a wrong old value swapped")
		}
		swapped, err = st.CompareAndSet("prefs", map[string]any{"n": 1, "lang": "de"}, prefs{Lang: "en", N: 2})
		if err != nil || !swapped {
			return errors.New("CAS with the right old value (as a map) did not swap")
		}
		swapped, err = st.CompareAndSet("lock", nil, true)
		if err != nil {
			return err
		}
		got = append(got, map[bool]string{true: "cas-absent:set", false: "cas-absent:kept"}[swapped])
		if err := st.Set("temp", "x", bot.TTL(50*time.Millisecond)); err != nil {
			return err
		}
		if err := st.Set("big", strings.Repeat("x", bot.MaxStateValue)); !errors.Is(err, bot.ErrStateTooLarge) {
			return errors.New("oversize value accepted")
		}
		return st.Delete("gone")
	})
	k := bottest.New(r)
	if res := k.Run(bottest.Text(alice, "!s")); res.Err != nil {
		t.Fatal(res.Err)
	}
	st := k.State(alice.Conversation())
	if st["prefs"] != `{"lang":"en","n":2}` || st["lock"] != "true" || st["temp"] != `"x"` {
		t.Fatalf("state %v", st)
	}
	time.Sleep(60 * time.Millisecond)
	if _, ok := k.State(alice.Conversation())["temp"]; ok {
		t.Fatal("value with TTL did not expire")
	}
	if res := k.Run(bottest.Text(alice, "!s")); res.Err != nil {
		t.Fatal(res.Err)
	}
	want := []string{"get:absent:", "cas-absent:set", "get:found:en", "cas-absent:kept"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("trace %v, want %v", got, want)
	}
}

func TestRetrySkipsCompletedCalls(t *testing.T) {
	var attempts atomic.Int32
	r := bot.New()
	r.Command("!two", func(c *bot.Context) error {
		attempts.Add(1)
		first, err := c.Send("one")
		if err != nil {
			return err
		}
		if _, err := c.State().Incr("runs", 1); err != nil {
			return err
		}
		if c.Attempt() == 1 {
			return errors.New("crash between the sends")
		}
		if c.Attempt() == 2 && (!first.Replayed || first.Timestamp == 0) {
			return errors.New("first send not replayed on the retry")
		}
		_, err = c.Send("two")
		return err
	})
	k := bottest.New(r)
	res := k.Run(bottest.Text(alice, "!two"))
	if res.Err == nil || len(res.Sent()) != 1 {
		t.Fatalf("first attempt: %v %v", res.Err, res.Texts())
	}
	res = k.Retry(res)
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	if got := res.Texts(); len(got) != 1 || got[0] != "two" {
		t.Fatalf("retry sent %q, want only the second message", got)
	}
	if len(res.Calls) != 2 || !res.Calls[0].Replayed {
		t.Fatalf("retry calls %+v", res.Calls)
	}
	if n := k.State(alice.Conversation())["runs"]; n != "1" {
		t.Fatalf("runs = %s: the failed attempt's write was applied", n)
	}
}

func TestLockIsReentrantAndReleased(t *testing.T) {
	r := bot.New()
	r.Command("!lock", func(c *bot.Context) error {
		un1, err := c.Lock("res", time.Second)
		if err != nil {
			return err
		}
		un2, err := c.Lock("res", time.Second) // re-entrant: no deadlock
		if err != nil {
			return err
		}
		un2()
		un1()
		un1() // idempotent
		if _, err := c.Lock("conv:"+c.Conversation().Key, 0); err != nil {
			return err
		}
		return nil // released at return
	})
	k := bottest.New(r)
	res := k.Run(bottest.Text(alice, "!lock"))
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	var kinds []string
	for _, c := range res.Calls {
		kinds = append(kinds, c.Kind+":"+strings.SplitN(c.ID, ":", 2)[0])
	}
	if strings.Join(kinds, " ") != "lock:res unlock:res lock:conv unlock:conv" {
		t.Fatalf("calls %v", kinds)
	}
	// Held elsewhere until the deadline: ErrLockNotObtained.
	held, err := k.Lock(context.Background(), "busy", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Release(context.Background())
	r2 := bot.New()
	r2.Command("!busy", func(c *bot.Context) error {
		ctx, cancel := context.WithTimeout(c, 30*time.Millisecond)
		defer cancel()
		_, err := k.Lock(ctx, "busy", time.Second)
		return err
	})
	if res := bottest.New(r2).Run(bottest.Text(alice, "!busy")); !errors.Is(res.Err, bot.ErrLockNotObtained) {
		t.Fatalf("%v", res.Err)
	}
}

func TestProactiveClientSendOnce(t *testing.T) {
	k := bottest.New(bot.New())
	cl := k.Client()
	ctx := context.Background()
	a, err := cl.SendOnce(ctx, "digest:2026-05-01", ops.RESTID(), "daily digest")
	if err != nil || a.Replayed {
		t.Fatal(a, err)
	}
	b, err := cl.SendOnce(ctx, "digest:2026-05-01", ops.RESTID(), "daily digest")
	if err != nil || !b.Replayed || b.Timestamp != a.Timestamp {
		t.Fatalf("repeat %+v %v", b, err)
	}
	if _, err := cl.Send(ctx, alice.Number, "hi"); err != nil {
		t.Fatal(err)
	}
	sends := 0
	for _, c := range k.Calls() {
		if c.Kind == "send" && !c.Replayed {
			sends++
		}
	}
	if sends != 2 {
		t.Fatalf("%d sends, want 2", sends)
	}
}

func TestAccessors(t *testing.T) {
	var c0 struct {
		sender bot.Sender
		conv   bot.Conversation
		quote  *bot.Quote
		ments  []bot.Mention
		cmd    string
		event  bot.Event
	}
	r := bot.New()
	r.Command("!x", func(c *bot.Context) error {
		c0.sender, c0.conv, c0.quote, c0.ments, c0.cmd, c0.event = c.Sender(), c.Conversation(), c.Quote(), c.Mentions(), c.CommandText(), c.Event()
		if c.Attempt() != 1 || c.MessageID() == "" || c.OriginalID() != c.MessageID() || c.Timestamp() == 0 || !c.IsGroup() {
			return errors.New("ids")
		}
		if _, ok := c.Deadline(); !ok {
			return errors.New("no deadline")
		}
		c.Set("k", 1)
		if c.Get("k") != 1 {
			return errors.New("values")
		}
		return nil
	})
	res := bottest.New(r).Run(bottest.Text(alice, "!x").In(ops).MentioningBot().Quoting(bob, 99, "earlier"))
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	if c0.sender.Number != alice.Number || c0.sender.UUID != alice.UUID || c0.sender.ID() != alice.UUID {
		t.Fatalf("sender %+v", c0.sender)
	}
	if !c0.conv.IsGroup || c0.conv.Group != ops.RESTID() || c0.conv.GroupInternalID != ops.ID || c0.conv.Recipient != ops.RESTID() {
		t.Fatalf("conversation %+v", c0.conv)
	}
	if c0.quote == nil || c0.quote.Timestamp != 99 || c0.quote.Author != bob.Number || c0.quote.Text != "earlier" {
		t.Fatalf("quote %+v", c0.quote)
	}
	if len(c0.ments) != 1 || c0.ments[0].Start != 0 || c0.ments[0].Number != bottest.DefaultSelf.Number || c0.cmd != "!x" || c0.event != bot.EventMessage {
		t.Fatalf("mentions %+v cmd %q event %s", c0.ments, c0.cmd, c0.event)
	}
}
