package bot_test

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/signal-client/signal-client/bot"
	"github.com/signal-client/signal-client/bot/bottest"
)

var (
	alice  = bottest.Alice
	bob    = bottest.Bob
	hidden = bottest.Hidden
	ops    = bottest.NewGroup("ops")
	other  = bottest.NewGroup("other")
)

// tag answers with the route's name and what it matched, so a table can see
// which route ran.
func tag(name string) bot.HandlerFunc {
	return func(c *bot.Context) error {
		parts := []string{name}
		if c.Command() != "" {
			parts = append(parts, "cmd="+c.Command())
		}
		if a := c.Args(); len(a) > 0 {
			parts = append(parts, "args="+strings.Join(a, "|"))
		}
		if m := c.Match(); m != nil {
			parts = append(parts, "match="+strings.Join(m, "|"))
		}
		_, err := c.Send(strings.Join(parts, " "))
		return err
	}
}

func routed(t *testing.T, k *bottest.Kit, m *bottest.Msg) string {
	t.Helper()
	res := k.Run(m)
	if res.Err != nil {
		t.Fatalf("handler error: %v", res.Err)
	}
	texts := res.Texts()
	if len(texts) == 0 {
		return ""
	}
	if len(texts) > 1 {
		t.Fatalf("several routes answered: %q", texts)
	}
	return texts[0]
}

func TestCommandMatching(t *testing.T) {
	r := bot.New()
	r.Command("!ping", tag("ping"))
	r.Command("!echo", tag("echo")).Alias("!say", "/echo")
	r.Command("!Exact", tag("exact")).CaseSensitive()
	r.Regex(`^roll (\d+)d(\d+)$`, tag("roll"))
	r.Regex(`(?i)\bhello\b`, tag("hello"))
	r.On(bot.EventMessage, tag("any-message"))
	r.Fallback(tag("fallback"))
	k := bottest.New(r)
	for _, tc := range []struct{ in, want string }{
		{"!ping", "ping cmd=!ping"},
		{"!ping now", "ping cmd=!ping args=now"},
		{"!PING", "ping cmd=!ping"},
		{"  !ping\tlater  ", "ping cmd=!ping args=later"},
		{"!pingpong", "any-message"},
		{"say !ping", "any-message"},
		{"ping", "any-message"},
		{"!say hi", "echo cmd=!say args=hi"},
		{"/ECHO hi", "echo cmd=/echo args=hi"},
		{`!echo "hello world" 'a b' “c d” e`, "echo cmd=!echo args=hello world|a b|c d|e"},
		{`!echo a"b c"d "unterminated x`, "echo cmd=!echo args=ab cd|unterminated x"},
		{"!Exact", "exact cmd=!Exact"},
		{"!exact", "any-message"},
		{"roll 2d6", "roll match=roll 2d6|2|6"},
		{"roll 2d6 now", "any-message"},
		{"well HELLO there", "hello match=HELLO"},
		{"!ping hello", "ping cmd=!ping args=hello"}, // commands before regex
	} {
		if got := routed(t, k, bottest.Text(alice, tc.in)); got != tc.want {
			t.Errorf("%q → %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestPrecedenceAndPass(t *testing.T) {
	r := bot.New()
	r.Command("!a", func(c *bot.Context) error { return bot.ErrPass })
	r.Regex(`^!a`, func(c *bot.Context) error {
		if c.Arg(0) == "" && strings.Contains(c.Text(), "pass") {
			return bot.ErrPass
		}
		_, err := c.Send("regex")
		return err
	})
	r.On(bot.EventMessage, func(c *bot.Context) error { _, err := c.Send("event"); return err })
	r.Fallback(tag("fallback"))
	k := bottest.New(r)
	if got := routed(t, k, bottest.Text(alice, "!a")); got != "regex" {
		t.Fatalf("command passed: got %q, want the regex", got)
	}
	if got := routed(t, k, bottest.Text(alice, "!a pass")); got != "event" {
		t.Fatalf("regex passed: got %q, want the event route", got)
	}
	// Reactions are not messages: no command, regex or fallback sees them.
	if got := routed(t, k, bottest.Reaction(alice, "👍", bob, 5)); got != "" {
		t.Fatalf("reaction answered %q", got)
	}
}

func TestScopesAndAllowLists(t *testing.T) {
	r := bot.New()
	r.Command("!dm", tag("dm")).In(bot.DirectOnly())
	r.Command("!grp", tag("grp")).In(bot.GroupOnly())
	r.Command("!ops", tag("ops")).In(bot.InGroup(ops.RESTID()))
	r.Command("!opsi", tag("opsi")).In(bot.InGroup(ops.ID))
	r.Command("!alice", tag("alice")).In(bot.From(strings.ToUpper(alice.UUID)))
	r.Command("!bobnum", tag("bobnum")).In(bot.From(bob.Number))
	r.Command("!at", tag("at")).In(bot.Mentioned())
	r.Command("!quiet", tag("quiet")).In(bot.MentionedInGroups())
	r.Command("!admin", tag("admin")).Allow(alice.Number, ops.RESTID())
	r.Command("!both", tag("both")).In(bot.AllOf(bot.GroupOnly(), bot.Not(bot.From(bob.Number))))
	r.Command("!either", tag("either")).In(bot.AnyOf(bot.DirectOnly(), bot.InGroup(other.ID)))
	g := r.Group().In(bot.GroupOnly())
	g.Command("!g1", tag("g1"))
	inner := g.Group().Allow(hidden.UUID)
	inner.Command("!g2", tag("g2"))
	r.Fallback(func(c *bot.Context) error { _, err := c.Send("no"); return err })
	k := bottest.New(r)
	for _, tc := range []struct {
		name string
		m    *bottest.Msg
		want string
	}{
		{"dm in dm", bottest.Text(alice, "!dm"), "dm cmd=!dm"},
		{"dm in group", bottest.Text(alice, "!dm").In(ops), "no"},
		{"grp in group", bottest.Text(alice, "!grp").In(ops), "grp cmd=!grp"},
		{"grp in dm", bottest.Text(alice, "!grp"), "no"},
		{"ops by REST id", bottest.Text(bob, "!ops").In(ops), "ops cmd=!ops"},
		{"ops elsewhere", bottest.Text(bob, "!ops").In(other), "no"},
		{"ops by internal id", bottest.Text(bob, "!opsi").In(ops), "opsi cmd=!opsi"},
		{"from uuid, any case", bottest.Text(alice, "!alice"), "alice cmd=!alice"},
		{"from uuid, other sender", bottest.Text(bob, "!alice"), "no"},
		{"from number", bottest.Text(bob, "!bobnum").In(other), "bobnum cmd=!bobnum"},
		{"mentioned", bottest.Text(alice, "!at").In(ops).MentioningBot(), "at cmd=!at"},
		{"not mentioned", bottest.Text(alice, "!at").In(ops), "no"},
		{"quote of the bot is a mention", bottest.Text(alice, "!at").In(ops).Quoting(bottest.Person{Number: bottest.DefaultSelf.Number}, 7, "hi"), "at cmd=!at"},
		{"mention of someone else", bottest.Text(alice, "!at ").Mentioning(bob).In(ops), "no"},
		{"quiet in dm", bottest.Text(alice, "!quiet"), "quiet cmd=!quiet"},
		{"quiet in group unmentioned", bottest.Text(alice, "!quiet").In(ops), "no"},
		{"quiet in group mentioned", bottest.Text(alice, "!quiet now").In(ops).MentioningBot(), "quiet cmd=!quiet args=now"},
		{"allow by number", bottest.Text(alice, "!admin"), "admin cmd=!admin"},
		{"allow refuses", bottest.Text(bob, "!admin"), "no"},
		{"allow by group", bottest.Text(bob, "!admin").In(ops), "admin cmd=!admin"},
		{"allow by group elsewhere", bottest.Text(bob, "!admin").In(other), "no"},
		{"all of", bottest.Text(alice, "!both").In(ops), "both cmd=!both"},
		{"all of refuses", bottest.Text(bob, "!both").In(ops), "no"},
		{"any of dm", bottest.Text(bob, "!either"), "either cmd=!either"},
		{"any of group", bottest.Text(bob, "!either").In(other), "either cmd=!either"},
		{"any of refuses", bottest.Text(bob, "!either").In(ops), "no"},
		{"group scope", bottest.Text(bob, "!g1").In(ops), "g1 cmd=!g1"},
		{"group scope refuses", bottest.Text(bob, "!g1"), "no"},
		{"nested allow", bottest.Text(hidden, "!g2").In(ops), "g2 cmd=!g2"},
		{"nested allow refuses", bottest.Text(bob, "!g2").In(ops), "no"},
		{"nested keeps the outer scope", bottest.Text(hidden, "!g2"), "no"},
	} {
		if got := routed(t, k, tc.m); got != tc.want {
			t.Errorf("%s: got %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestMiddlewareOrderAndStop(t *testing.T) {
	var trace []string
	mw := func(name string) bot.Middleware {
		return func(next bot.HandlerFunc) bot.HandlerFunc {
			return func(c *bot.Context) error {
				trace = append(trace, name+">")
				err := next(c)
				trace = append(trace, "<"+name)
				return err
			}
		}
	}
	stop := func(next bot.HandlerFunc) bot.HandlerFunc {
		return func(c *bot.Context) error {
			if c.Arg(0) == "stop" {
				trace = append(trace, "stopped")
				return nil
			}
			return next(c)
		}
	}
	r := bot.New()
	r.Use(mw("global"))
	g := r.Group().Use(mw("group"))
	g.Command("!x", func(c *bot.Context) error { trace = append(trace, "handler"); return nil }).Use(mw("route"), stop)
	r.Use(mw("late")) // applies to every route, also those added before
	k := bottest.New(r)
	k.Run(bottest.Text(alice, "!x"))
	want := []string{"global>", "late>", "group>", "route>", "handler", "<route", "<group", "<late", "<global"}
	if !reflect.DeepEqual(trace, want) {
		t.Fatalf("trace %v, want %v", trace, want)
	}
	trace = nil
	k.Run(bottest.Text(alice, "!x stop"))
	want = []string{"global>", "late>", "group>", "route>", "stopped", "<route", "<group", "<late", "<global"}
	if !reflect.DeepEqual(trace, want) {
		t.Fatalf("trace %v, want %v", trace, want)
	}
}

func TestEvents(t *testing.T) {
	r := bot.New()
	r.Command("!cmd", tag("cmd"))
	for _, e := range []bot.Event{bot.EventReaction, bot.EventEdit, bot.EventDelete, bot.EventReceipt, bot.EventTyping,
		bot.EventGroupUpdate, bot.EventSyncSent, bot.EventAttachment} {
		r.On(e, tag(string(e)))
	}
	r.Fallback(tag("fallback"))
	k := bottest.New(r)
	for _, tc := range []struct {
		m    *bottest.Msg
		want string
	}{
		{bottest.Reaction(alice, "👍", bob, 5), "reaction"},
		{bottest.Unreaction(alice, "👍", bob, 5), "reaction"},
		{bottest.Edit(alice, 5, "!cmd fixed"), "edit"},
		{bottest.Delete(alice, 5), "remote_delete"},
		{bottest.Receipt(alice, "read", 5, 6), "receipt"},
		{bottest.Typing(alice, true).In(ops), "typing"},
		{bottest.GroupUpdate(alice, ops), "group_update"},
		{bottest.SyncSent(alice, "!cmd from my phone"), "sync_sent"},
		{bottest.Text(alice, "").WithAttachment("a1", "image/png", "p.png", []byte("x")), "attachment"},
		{bottest.Text(alice, "look").WithAttachment("a2", "image/png", "p.png", []byte("x")), "fallback"},
		{bottest.Text(alice, "!cmd"), "cmd cmd=!cmd"},
	} {
		if got := routed(t, k, tc.m); got != tc.want {
			t.Errorf("got %q, want %q", got, tc.want)
		}
	}
}

func TestRegistrationErrors(t *testing.T) {
	r := bot.New()
	r.Command("!a", tag("a"))
	r.Command("!A", tag("dup"))
	r.Command("two words", tag("space"))
	r.Command("!b", tag("b")).Alias("!a")
	r.Regex(`(`, tag("bad"))
	err := r.Err()
	if err == nil {
		t.Fatal("no registration error")
	}
	for _, want := range []string{`"!A" is already registered (by "!a")`, `"two words": it must be one word`, `"!a" is already registered (by "!a")`, "regex \"(\""} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("errors %q lack %q", err, want)
		}
	}
	// The valid routes still work, the duplicate never runs.
	if got := routed(t, bottest.New(r), bottest.Text(alice, "!A")); got != "a cmd=!a" {
		t.Fatalf("got %q", got)
	}
}

func TestGeneratedHelp(t *testing.T) {
	r := bot.New()
	r.Command("!ping", tag("ping")).Describe("answer pong")
	r.Command("!echo", tag("echo")).Alias("!say").Usage("<text>").Describe("repeat the text")
	r.Command("!secret", tag("s")).Hidden()
	r.Command("!admin", tag("a")).Allow(bob.Number).Describe("admin only")
	r.Command("!grp", tag("g")).In(bot.GroupOnly())
	r.Help("!help")
	k := bottest.New(r)
	res := k.Run(bottest.Text(alice, "!help"))
	want := "Commands:\n!ping — answer pong\n!echo <text> — repeat the text\n!help [command] — list the commands, or show one"
	if got := res.Texts(); len(got) != 1 || got[0] != want {
		t.Fatalf("help for alice in a DM:\n%q\nwant\n%q", got, want)
	}
	if q := res.Sent()[0].Quote; q == nil || q.Timestamp != res.Timestamp {
		t.Fatalf("help does not quote the question: %+v", q)
	}
	res = k.Run(bottest.Text(bob, "!help").In(ops))
	if got := res.Texts()[0]; !strings.Contains(got, "!admin — admin only") || !strings.Contains(got, "!grp") {
		t.Fatalf("help for bob in a group: %q", got)
	}
	res = k.Run(bottest.Text(alice, "!help say"))
	if got := res.Texts()[0]; got != "!echo <text> — repeat the text\nAlso: !say" {
		t.Fatalf("help on one command: %q", got)
	}
	res = k.Run(bottest.Text(alice, "!help secret"))
	if got := res.Texts()[0]; !strings.HasPrefix(got, "No command secret.") {
		t.Fatalf("help on a hidden command: %q", got)
	}
}

func TestOnError(t *testing.T) {
	boom := errors.New("boom")
	r := bot.New()
	r.Command("!fail", func(c *bot.Context) error { return boom })
	var seen error
	r.OnError(func(c *bot.Context, err error) error { seen = err; return nil })
	res := bottest.New(r).Run(bottest.Text(alice, "!fail"))
	if res.Err != nil || !errors.Is(seen, boom) {
		t.Fatalf("OnError: res %v seen %v", res.Err, seen)
	}
}

func TestSplitArgs(t *testing.T) {
	for in, want := range map[string][]string{
		"":                  nil,
		"  a  b ":           {"a", "b"},
		`"a b" c`:           {"a b", "c"},
		`'it"s' x`:          {`it"s`, "x"},
		`“curly” ‘single’`:  {"curly", "single"},
		`"" x`:              {"", "x"},
		"emoji 🎉 \"two 🎉\"": {"emoji", "🎉", "two 🎉"},
	} {
		if got := bot.SplitArgs(in); !reflect.DeepEqual(got, want) {
			t.Errorf("SplitArgs(%q) = %q, want %q", in, got, want)
		}
	}
}
