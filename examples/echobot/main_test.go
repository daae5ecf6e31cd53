package main

import (
	"context"
	"reflect"
	"strings"
	"testing"

	"github.com/signal-client/signal-client/bot"
	"github.com/signal-client/signal-client/bot/bottest"
)

func TestEchobot(t *testing.T) {
	team := bottest.NewGroup("team")
	k := bottest.New(Build(team.RESTID()))
	alice := bottest.Alice

	if res := k.Run(bottest.Text(alice, "!ping").In(team)); len(res.Calls) != 0 {
		t.Fatalf("answered an unmentioned group message: %+v", res.Calls)
	}
	if got := k.Run(bottest.Text(alice, "!ping").In(team).MentioningBot()).Texts(); !reflect.DeepEqual(got, []string{"pong"}) {
		t.Fatalf("mentioned ping: %q", got)
	}
	if got := k.Run(bottest.Text(alice, "!say hi there")).Texts(); !reflect.DeepEqual(got, []string{"hi there"}) {
		t.Fatalf("echo alias: %q", got)
	}

	res := k.Run(bottest.Text(alice, `!todo add "buy milk"`))
	if r := res.Of("react"); len(r) != 1 || r[0].Reaction.Emoji != "✅" {
		t.Fatalf("todo add: %+v", res.Calls)
	}
	k.Run(bottest.Text(alice, "!todo add call Bob"))
	if got := k.Run(bottest.Text(alice, "!todo")).Texts()[0]; got != "- buy milk\n- call Bob" {
		t.Fatalf("todo list %q", got)
	}

	res = k.Run(bottest.Text(alice, "!ticket"))
	s := res.Sent()[0]
	if s.Text != "🎫 ticket 1 for \uFFFC" || !reflect.DeepEqual(s.Mentions, []bot.MentionAt{{Author: alice.Number, Start: 16, Length: 1}}) { // 🎫 is 2 UTF-16 units
		t.Fatalf("ticket %q %+v", s.Text, s.Mentions)
	}
	if len(res.Of("typing")) != 1 || len(res.Of("lock")) != 1 {
		t.Fatalf("ticket calls %+v", res.Calls)
	}

	res = k.Run(bottest.Reaction(alice, "❤️", bottest.Person{Number: bottest.DefaultSelf.Number}, 5))
	if r := res.Of("react"); len(r) != 1 || r[0].Reaction.Emoji != "🙏" || r[0].Reaction.TargetTimestamp != 5 {
		t.Fatalf("reaction thanks: %+v", res.Calls)
	}

	res = k.Run(bottest.Text(alice, "").WithAttachment("a1", "image/png", "x.png", []byte("12345")))
	if got := res.Texts(); len(got) != 1 || got[0] != "got image/png, 5 bytes" {
		t.Fatalf("attachment: %q", got)
	}

	help := k.Run(bottest.Text(alice, "!help")).Texts()[0]
	if !strings.Contains(help, "!todo [add <item> | done] — a to-do list for this chat") {
		t.Fatalf("help %q", help)
	}

	for i := 0; i < 2; i++ {
		if err := k.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	n := 0
	for _, c := range k.Calls() {
		if c.Kind == "send" && !c.Replayed && c.To == team.RESTID() && c.Message.Text == "echobot is up" {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("announcement sent %d times, want once", n)
	}
}
