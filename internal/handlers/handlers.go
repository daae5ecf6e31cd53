// Package handlers holds signal-client's built-in handlers, written with the
// public bot API (package bot): what bin/worker runs when no bot of the
// user's own is compiled in.
//
//	!ping          → pong (quoting the question)
//	!echo <text>   → <text>
//	!count         → how many times !count was asked in this conversation
//	                 (per-conversation state, under a lock)
//	!help          → the generated command list
//	a reaction to one of the bot's messages → "thanks for the <emoji>"
//	an edit that turns a message into !echo <text> → <text> (answered again)
//
// Their tests use bot/bottest, the kit bot authors use.
package handlers

import (
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/signal-client/signal-client/bot"
)

// TestCommandsEnv, set to "1", adds the hidden !sendsleep command that the
// end-to-end tests use to crash a worker after a confirmed send and before
// the acknowledgement. Never set it in production.
const TestCommandsEnv = "SIGNAL_CLIENT_TEST_COMMANDS"

// Options select optional commands.
type Options struct {
	// TestCommands adds !sendsleep <ms> <text>: it sends <text>, counts
	// "sendsleep" in the conversation's state, then sleeps <ms>.
	TestCommands bool
}

// Router returns the built-in commands.
func Router(o Options) *bot.Router {
	r := bot.New()
	r.Command("!ping", Ping).Describe("answer pong")
	r.Command("!echo", Echo).Usage("<text>").Describe("repeat the text")
	r.Command("!count", Count).Describe("count how often this was asked here")
	if o.TestCommands {
		r.Command("!sendsleep", SendSleep).Hidden()
	}
	r.Help("!help")
	r.On(bot.EventReaction, Thanks)
	r.On(bot.EventEdit, EditedEcho)
	return r
}

// Thanks answers a reaction added to one of the bot's own messages.
func Thanks(c *bot.Context) error {
	re := c.Reaction()
	self := c.Self()
	if re == nil || re.Removed || !((self.Number != "" && re.Target.AuthorNumber == self.Number) ||
		(self.UUID != "" && re.Target.AuthorUUID == self.UUID) || re.Target.Author == self.Number) {
		return nil
	}
	_, err := c.Send("thanks for the " + re.Emoji)
	return err
}

// EditedEcho answers an edited "!echo <text>" with its new text: commands
// match new messages only, so an edit is handled here explicitly.
func EditedEcho(c *bot.Context) error {
	text := strings.TrimSpace(c.Text())
	if !strings.HasPrefix(text, "!echo ") {
		return nil
	}
	_, err := c.Send(strings.TrimSpace(strings.TrimPrefix(text, "!echo ")) + " (edited)")
	return err
}

// New builds the worker runtime of the built-in commands.
func New(d bot.Deps) (*bot.Runtime, error) {
	return bot.NewRuntime(Router(Options{TestCommands: os.Getenv(TestCommandsEnv) == "1"}), d)
}

// Ping answers pong, quoting the question.
func Ping(c *bot.Context) error {
	_, err := c.Reply("pong")
	return err
}

// Echo sends the text after the command back into the conversation.
func Echo(c *bot.Context) error {
	text := c.ArgString()
	if text == "" {
		_, err := c.Reply("usage: !echo <text>")
		return err
	}
	_, err := c.Send(text)
	return err
}

// Count increments the conversation's counter and answers its new value.
// The lock is not needed for correctness (a conversation's messages never
// run at once); it shows that locking the conversation's own key is safe.
func Count(c *bot.Context) error {
	unlock, err := c.Lock("count:"+c.Conversation().Key, 0)
	if err != nil {
		return err
	}
	defer unlock()
	n, err := c.State().Incr("count", 1)
	if err != nil {
		return err
	}
	_, err = c.Reply(strconv.FormatInt(n, 10))
	return err
}

// SendSleep sends its text, counts, then sleeps (tests only).
func SendSleep(c *bot.Context) error {
	ms, _ := strconv.Atoi(c.Arg(0))
	text := c.Arg(1)
	if _, err := c.Send(text); err != nil {
		return err
	}
	if _, err := c.State().Incr("sendsleep", 1); err != nil {
		return err
	}
	select {
	case <-time.After(time.Duration(ms) * time.Millisecond):
	case <-c.Done():
		return c.Err()
	}
	return nil
}
