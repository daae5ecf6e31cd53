package handlers

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/signal-client/signal-client/bot"
	"github.com/signal-client/signal-client/bot/bottest"
)

func TestPingRepliesPongQuoting(t *testing.T) {
	k := bottest.New(Router(Options{}))
	for _, tc := range []struct {
		m  *bottest.Msg
		to string
	}{
		{bottest.Text(bottest.Alice, "!ping"), bottest.Alice.Number},
		{bottest.Text(bottest.Hidden, "!PING please"), bottest.Hidden.UUID},
		{bottest.Text(bottest.Bob, "!ping").In(bottest.NewGroup("g")), bottest.NewGroup("g").RESTID()},
		{bottest.Text(bottest.Bob, "!ping").In(bottest.NewGroup("g")).MentioningBot(), bottest.NewGroup("g").RESTID()},
	} {
		res := k.Run(tc.m)
		s := res.Sent()
		if res.Err != nil || len(s) != 1 || s[0].Text != "pong" || s[0].To != tc.to {
			t.Fatalf("sent %+v err %v, want pong to %s", s, res.Err, tc.to)
		}
		if s[0].Quote == nil || s[0].Quote.Timestamp != res.Timestamp {
			t.Fatalf("pong does not quote the question: %+v", s[0].Quote)
		}
	}
	if res := k.Run(bottest.Text(bottest.Alice, "!pingpong")); len(res.Calls) != 0 {
		t.Fatalf("!pingpong answered: %+v", res.Calls)
	}
}

func TestEcho(t *testing.T) {
	k := bottest.New(Router(Options{}))
	for in, want := range map[string]string{
		"!echo hello":               "hello",
		"!echo   two  spaces kept ": "two  spaces kept",
		"!echo 🎉 ünïcode":           "🎉 ünïcode",
		"!echo":                     "usage: !echo <text>",
	} {
		res := k.Run(bottest.Text(bottest.Alice, in))
		if got := res.Texts(); len(got) != 1 || got[0] != want {
			t.Errorf("%q → %q, want %q", in, got, want)
		}
	}
	if res := k.Run(bottest.Text(bottest.Alice, "!echoes x")); len(res.Calls) != 0 {
		t.Fatal("!echoes answered")
	}
}

func TestCountPerConversation(t *testing.T) {
	k := bottest.New(Router(Options{}))
	g := bottest.NewGroup("team")
	var got []string
	for _, m := range []*bottest.Msg{
		bottest.Text(bottest.Alice, "!count"),
		bottest.Text(bottest.Alice, "!count"),
		bottest.Text(bottest.Bob, "!count").In(g),
		bottest.Text(bottest.Alice, "!count").In(g),
		bottest.Text(bottest.Alice, "!count"),
	} {
		res := k.Run(m)
		if res.Err != nil {
			t.Fatal(res.Err)
		}
		got = append(got, res.Texts()...)
		if len(res.Of("lock")) != 1 || len(res.Of("unlock")) != 1 {
			t.Fatalf("count without its lock: %+v", res.Calls)
		}
	}
	if want := []string{"1", "2", "1", "2", "3"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("counts %v, want %v", got, want)
	}
	if k.State(bottest.Alice.Conversation())["count"] != "3" || k.State(g.Conversation())["count"] != "2" {
		t.Fatal("stored counts wrong")
	}
}

func TestCountIsExactAcrossFailuresAndRetries(t *testing.T) {
	k := bottest.New(Router(Options{}))
	fail := true
	k.Fail = func(c bottest.Call) error {
		if c.Kind == "send" && fail {
			return errors.New("REST down")
		}
		return nil
	}
	res := k.Run(bottest.Text(bottest.Alice, "!count"))
	if res.Err == nil || res.Committed {
		t.Fatal("a failed reply must fail the message and drop its increment")
	}
	fail = false
	// The retry replies, then the worker is killed before the acknowledgement.
	res = k.RetryCrashing(res)
	if res.Err != nil || res.Texts()[0] != "1" || res.Committed {
		t.Fatalf("retry: %v %q", res.Err, res.Texts())
	}
	if n := k.State(bottest.Alice.Conversation())["count"]; n != "" {
		t.Fatalf("count %q before any acknowledgement", n)
	}
	// The next worker handles it again: no second reply, the increment applied once.
	again := k.Retry(res)
	if again.Err != nil || len(again.Sent()) != 0 || len(again.Of("send")) != 1 || !again.Of("send")[0].Replayed {
		t.Fatalf("the repeated handling sent again: %+v", again.Calls)
	}
	if n := k.State(bottest.Alice.Conversation())["count"]; n != "1" {
		t.Fatalf("count %s", n)
	}
	if r := k.Retry(again); r.Err == nil {
		t.Fatal("retrying an acknowledged message must be refused")
	}
}

func TestHelpAndHiddenTestCommand(t *testing.T) {
	k := bottest.New(Router(Options{TestCommands: true}))
	res := k.Run(bottest.Text(bottest.Alice, "!help"))
	want := "Commands:\n!ping — answer pong\n!echo <text> — repeat the text\n!count — count how often this was asked here\n!help [command] — list the commands, or show one"
	if got := res.Texts(); len(got) != 1 || got[0] != want {
		t.Fatalf("help %q", got)
	}
	res = k.Run(bottest.Text(bottest.Alice, "!sendsleep 1 hi"))
	if res.Err != nil || res.Texts()[0] != "hi" || k.State(bottest.Alice.Conversation())["sendsleep"] != "1" {
		t.Fatalf("sendsleep %v %v", res.Err, res.Texts())
	}
	if strings.Contains(want, "sendsleep") {
		t.Fatal("test command listed")
	}
	if _, err := bot.NewRuntime(Router(Options{}), bot.Deps{}); err == nil {
		t.Fatal("runtime without dependencies accepted")
	}
}

func TestThanksForReactionsToTheBotOnly(t *testing.T) {
	k := bottest.New(Router(Options{}))
	bot := bottest.Person{Number: bottest.DefaultSelf.Number, UUID: bottest.DefaultSelf.UUID, Name: "bot"}
	res := k.Run(bottest.Reaction(bottest.Alice, "👍", bot, 1767225599000))
	if got := res.Texts(); len(got) != 1 || got[0] != "thanks for the 👍" || res.Sent()[0].To != bottest.Alice.Number {
		t.Fatalf("reaction to the bot: %v", res.Calls)
	}
	if res := k.Run(bottest.Reaction(bottest.Alice, "👍", bottest.Bob, 1767225599000)); len(res.Calls) != 0 {
		t.Fatalf("reaction to someone else answered: %v", res.Calls)
	}
	if res := k.Run(bottest.Unreaction(bottest.Alice, "👍", bot, 1767225599000)); len(res.Calls) != 0 {
		t.Fatalf("removed reaction answered: %v", res.Calls)
	}
}

func TestEditedEchoAnsweredAgain(t *testing.T) {
	k := bottest.New(Router(Options{}))
	res := k.Run(bottest.Edit(bottest.Alice, 1767225600123, "!echo hello again"))
	if got := res.Texts(); len(got) != 1 || got[0] != "hello again (edited)" {
		t.Fatalf("edited echo: %v", got)
	}
	if res := k.Run(bottest.Edit(bottest.Alice, 1767225600123, "just a typo fix")); len(res.Calls) != 0 {
		t.Fatalf("plain edit answered: %v", res.Calls)
	}
}
