// Command echobot is the complete example bot of docs/handlers.md: a few
// commands, an event handler, middleware, per-conversation state, a lock and
// a proactive announcement. Run it like bin/worker, beside an ingester:
//
//	SIGNAL_PHONE_NUMBER=+15550000001 SIGNAL_API_URL=http://localhost:8080 \
//	REDIS_URL=redis://localhost:6379/0 go run ./examples/echobot
package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/signal-client/signal-client/bot"
	"github.com/signal-client/signal-client/bot/run"
)

// Build returns the example's router (examples/echobot/main_test.go tests it
// with bot/bottest).
func Build(announceTo string) *bot.Router {
	r := bot.New()

	// Timing middleware around every handler: logs ids and duration, never content.
	r.Use(func(next bot.HandlerFunc) bot.HandlerFunc {
		return func(c *bot.Context) error {
			start := time.Now()
			err := next(c)
			c.Log().Debug("handled", zap.String("route", c.Route().Name()), zap.Duration("took", time.Since(start)), zap.Error(err))
			return err
		}
	})

	// In groups, answer only when mentioned ("@bot !ping") or quoted.
	chat := r.Group().In(bot.MentionedInGroups())

	chat.Command("!ping", func(c *bot.Context) error {
		_, err := c.Reply("pong")
		return err
	}).Describe("check the bot is alive")

	chat.Command("!echo", func(c *bot.Context) error {
		if c.ArgString() == "" {
			_, err := c.Reply("usage: !echo <text>")
			return err
		}
		_, err := c.Send(c.ArgString())
		return err
	}).Alias("!say").Usage("<text>").Describe("repeat the text")

	// Per-conversation state: a to-do list, committed with the message.
	chat.Command("!todo", func(c *bot.Context) error {
		var items []string
		if _, err := c.State().Get("todo", &items); err != nil {
			return err
		}
		switch sub := c.Arg(0); sub {
		case "add":
			item := strings.Join(c.Args()[1:], " ")
			if item == "" {
				_, err := c.Reply("usage: !todo add <item>")
				return err
			}
			items = append(items, item)
			if err := c.State().Set("todo", items); err != nil {
				return err
			}
			_, err := c.React("✅")
			return err
		case "done":
			if err := c.State().Delete("todo"); err != nil {
				return err
			}
			_, err := c.Reply("list cleared")
			return err
		default:
			if len(items) == 0 {
				_, err := c.Reply("nothing to do")
				return err
			}
			_, err := c.Reply("- " + strings.Join(items, "\n- "))
			return err
		}
	}).Usage("[add <item> | done]").Describe("a to-do list for this chat")

	// A lock serialises use of something every conversation shares (here a
	// pretend ticket system); the ticket number itself is per conversation.
	chat.Command("!ticket", func(c *bot.Context) error {
		unlock, err := c.Lock("ticket-system", 0)
		if err != nil {
			return err
		}
		defer unlock()
		stop := c.Typing()
		defer stop()
		n, err := c.State().Incr("tickets", 1) // per conversation
		if err != nil {
			return err
		}
		t := bot.Compose().Text("🎫 ticket ").Text(fmt.Sprint(n)).Text(" for ").Mention(c.Sender().Recipient())
		_, err = c.Send(t.String(), bot.WithMentions(t.Mentions()...))
		return err
	}).Describe("open a ticket")

	// Admin-only, by number or UUID.
	if admin := os.Getenv("ECHOBOT_ADMIN"); admin != "" {
		r.Command("!stats", func(c *bot.Context) error {
			_, err := c.Reply("alive")
			return err
		}).Allow(admin).Hidden()
	}

	// Events: thank people for reactions to the bot's messages.
	r.On(bot.EventReaction, func(c *bot.Context) error {
		re := c.Reaction()
		if re.Removed || re.Target.Author != c.Self().Number {
			return nil
		}
		_, err := c.React("🙏")
		return err
	})

	// Attachment-only messages: say what arrived (downloads delete the file upstream).
	r.On(bot.EventAttachment, func(c *bot.Context) error {
		a := c.Attachments()[0]
		d, err := c.Download(a, 5<<20)
		if err != nil {
			return err
		}
		_, err = c.Reply(fmt.Sprintf("got %s, %d bytes", a.ContentType, len(d.Data)))
		return err
	})

	chat.Help("!help")

	// Proactive: announce once per day, effectively once across restarts and workers.
	if announceTo != "" {
		r.OnStart(func(ctx context.Context, cl *bot.Client) error {
			key := "hello:" + time.Now().UTC().Format("2006-01-02")
			_, err := cl.SendOnce(ctx, key, announceTo, "echobot is up")
			return err
		})
	}
	return r
}

func main() {
	os.Exit(run.Main(Build(os.Getenv("ECHOBOT_ANNOUNCE_TO"))))
}
