// Package bot is the API for writing Signal bots on signal-client: a router of
// commands, regular expressions and events, middleware, and a Context that
// answers, reacts, types, locks and keeps per-conversation state.
//
// A bot is a Router:
//
//	r := bot.New()
//	r.Command("!ping", func(c *bot.Context) error {
//		_, err := c.Reply("pong")
//		return err
//	}).Describe("answer pong")
//	r.Help("!help")
//
// and runs as a worker of a signal-client cluster (package bot/run), or
// in unit tests without Redis or network (package bot/bottest).
//
// # Ordering and concurrency
//
// Messages of one conversation (a group, or a one-to-one chat) reach their
// handler one at a time, in the order Signal delivered them; different
// conversations run in parallel, across as many worker processes as you
// start. A handler never races with itself on the same conversation, which is
// why per-conversation state needs no locking.
//
// # Routing
//
// Every message is offered to the routes in this order: commands (in
// registration order), regular expressions, event routes, then the fallback.
// The first route that matches runs; a handler may return ErrPass to let the
// next candidate try. A route matches when its trigger matches and every
// scope and allow-list of the route and its groups accepts the message; a
// route that does not match is skipped silently.
//
// Commands match a whole word at the start of the text ("!ping" matches
// "!ping" and "!ping now", never "!pingpong"), case-insensitively unless
// CaseSensitive is set. In groups, a mention of the bot in front of the
// command is ignored for matching, so "@bot !ping" works. Arguments are split
// on white space with "double", 'single' and “curly” quotes keeping words
// together.
//
// # Effects and retries
//
// A message whose handler fails is retried with backoff and finally parked in
// the dead-letter queue. State writes (Context.State) are committed together
// with the message's acknowledgement, so a retried message never applies them
// twice. Outgoing calls (Send, Reply, React, MarkRead, Delete, Edit) are
// effectively once: each carries the message's id and its position among the
// handler's calls, and a retry skips the calls an earlier attempt completed,
// returning their recorded result. Make calls in a deterministic order to
// benefit. The one remaining window is a crash between Signal accepting a
// call and its record being written (one Redis round trip).
package bot
