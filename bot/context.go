package bot

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/signal-client/signal-client/internal/lazyctx"
	"github.com/signal-client/signal-client/internal/signal"
)

// Context is one message being handled. It is also a context.Context: its
// deadline is the handler's deadline (HANDLER_TIMEOUT), and it is cancelled
// when the worker loses the message's shard or a lock the handler holds is
// lost. Pass it to anything that takes a context.
//
// Outgoing calls (Send, Reply, Edit, React, Unreact, MarkRead, MarkViewed,
// Delete) are numbered in the order the handler makes them; a retry of the
// message skips those an earlier attempt completed and returns their
// recorded result (see the package documentation). A Context may be used
// from goroutines the handler starts, but only until the handler returns.
type Context struct {
	ctx    *lazyctx.Context
	u      *Update
	router *Router
	route  *Route
	frame  *signal.Frame
	event  Event
	self   Self
	sender Sender
	conv   Conversation
	text   string
	// cmdText is the text with the bot's own mentions removed: what
	// commands and regular expressions see.
	cmdText string

	trigger   string
	argString string
	args      []string
	argsDone  bool
	match     []string

	log   *zap.Logger // built on first use: With on the redacting core costs more than most handlers
	logMu sync.Once
	state *State

	// What a Context refers to lives in it: one allocation per message
	// for the Context, its update, its context and its state.
	lz    lazyctx.Context
	uv    Update
	st    State
	cands [2]candidate

	mu     sync.Mutex
	seq    int
	locks  map[string]*lockEntry
	typing *typist
	values map[any]any
	wg     sync.WaitGroup
}

var _ context.Context = (*Context)(nil)

func (r *Router) newContext(ctx context.Context, u Update) (*Context, error) {
	f := u.Frame
	if f == nil {
		var err error
		if f, err = signal.Decode(u.Raw); err != nil {
			return nil, fmt.Errorf("bot: decode message: %w", err)
		}
		u.Frame = f
	}
	self := u.Self
	if r.self.Number != "" {
		self.Number = r.self.Number
	}
	if r.self.UUID != "" {
		self.UUID = r.self.UUID
	}
	s := f.Sender()
	cv := f.Conversation()
	c := &Context{
		router: r, frame: f, event: eventOf(f), self: self,
		sender: Sender{UUID: s.UUID, Number: s.Number, Name: s.Name, Device: s.Device},
		conv:   Conversation{Key: cv.Key, IsGroup: cv.IsGroup, GroupInternalID: cv.GroupID, Recipient: cv.Recipient},
		text:   f.Text(),
		uv:     u,
	}
	c.u = &c.uv
	// Lazy: a handler that never waits on its context costs no cancel
	// context of its own (lazyctx).
	c.lz.Init(ctx, time.Time{})
	c.ctx = &c.lz
	if cv.IsGroup {
		c.conv.Group = cv.Recipient
	}
	if u.Conversation != "" && c.conv.Key == "" {
		c.conv.Key = u.Conversation
	}
	if d := f.Data(); d != nil {
		c.cmdText = strings.TrimSpace(d.TextWithoutMentionsOf(self.ids()...))
	}
	c.st.c = c
	c.state = &c.st
	return c, nil
}

func (c *Context) setMatch(cand candidate) {
	c.trigger, c.argString, c.match = cand.trigger, cand.rest, cand.match
	c.args, c.argsDone = nil, false
}

// finish ends the handling: stops typing, releases locks, waits for the
// Context's goroutines and cancels its context.
func (c *Context) finish() {
	c.mu.Lock()
	t := c.typing
	c.typing = nil
	var held []*lockEntry
	for k, e := range c.locks {
		held = append(held, e)
		delete(c.locks, k)
	}
	c.mu.Unlock()
	if t != nil {
		t.halt()
	}
	for _, e := range held {
		e.release(c)
	}
	c.wg.Wait()
	c.ctx.Cancel(context.Canceled)
}

// context.Context

// Deadline is the handler's deadline.
func (c *Context) Deadline() (time.Time, bool) { return c.ctx.Deadline() }

// Done is closed when the handler must stop.
func (c *Context) Done() <-chan struct{} { return c.ctx.Done() }

// Err says why Done closed.
func (c *Context) Err() error { return c.ctx.Err() }

// Value returns the value for key from the handler's context.
func (c *Context) Value(key any) any { return c.ctx.Value(key) }

// Context returns the handler's context.Context (the Context itself is one too).
func (c *Context) Context() context.Context { return c.ctx }

// What the message is.

// Event is the kind of the message.
func (c *Context) Event() Event { return c.event }

// Text is the message body (for an edit, the new body). Mentions appear as
// U+FFFC placeholders.
func (c *Context) Text() string { return c.text }

// CommandText is the body with the bot's own mentions removed and trimmed:
// what commands and regular expressions match.
func (c *Context) CommandText() string { return c.cmdText }

// Sender is who sent the message.
func (c *Context) Sender() Sender { return c.sender }

// Conversation is the chat the message belongs to.
func (c *Context) Conversation() Conversation { return c.conv }

// IsGroup reports a group chat.
func (c *Context) IsGroup() bool { return c.conv.IsGroup }

// Self is the bot account.
func (c *Context) Self() Self { return c.self }

// Timestamp is the message's sent timestamp (its id, ms).
func (c *Context) Timestamp() int64 {
	if e := c.frame.Envelope; e != nil {
		return int64(e.Timestamp)
	}
	return 0
}

// ServerTimestamp is when the Signal server received the message (ms).
func (c *Context) ServerTimestamp() int64 {
	if e := c.frame.Envelope; e != nil {
		return int64(e.ServerReceivedTimestamp)
	}
	return 0
}

// Mentions are the message's mentions.
func (c *Context) Mentions() []Mention {
	if d := c.frame.Data(); d != nil {
		return fromSignalMentions(d.Mentions)
	}
	return nil
}

// Quote is the message this one quotes, or nil.
func (c *Context) Quote() *Quote {
	d := c.frame.Data()
	if d == nil || d.Quote == nil {
		return nil
	}
	q := d.Quote
	author := q.AuthorNumber
	if author == "" {
		author = q.AuthorUUID
	}
	if author == "" {
		author = q.Author
	}
	text := ""
	if q.Text != nil {
		text = *q.Text
	}
	return &Quote{MessageRef: MessageRef{Author: author, AuthorUUID: q.AuthorUUID, AuthorNumber: q.AuthorNumber, Timestamp: int64(q.ID)}, Text: text}
}

// Attachments are the message's attachments.
func (c *Context) Attachments() []Attachment {
	d := c.frame.Data()
	if d == nil || len(d.Attachments) == 0 {
		return nil
	}
	out := make([]Attachment, len(d.Attachments))
	for i, a := range d.Attachments {
		out[i] = Attachment{ID: a.ID, ContentType: a.ContentType, Filename: a.Filename, Caption: a.Caption}
		if a.Size != nil {
			out[i].Size = int64(*a.Size)
		}
		if a.Width != nil {
			out[i].Width = int(*a.Width)
		}
		if a.Height != nil {
			out[i].Height = int(*a.Height)
		}
	}
	return out
}

// Reaction is the reaction of a reaction event, or nil.
func (c *Context) Reaction() *Reaction {
	d := c.frame.Data()
	if d == nil || d.Reaction == nil {
		return nil
	}
	ref, _ := c.frame.ReactedTo()
	return &Reaction{Emoji: d.Reaction.Emoji, Removed: d.Reaction.IsRemove, Target: fromRef(ref)}
}

// Receipt is the receipt of a receipt event, or nil.
func (c *Context) Receipt() *Receipt {
	e := c.frame.Envelope
	if e == nil || e.ReceiptMessage == nil {
		return nil
	}
	rm := e.ReceiptMessage
	r := &Receipt{Type: "delivery", When: int64(rm.When)}
	switch {
	case rm.IsRead:
		r.Type = "read"
	case rm.IsViewed:
		r.Type = "viewed"
	}
	for _, t := range rm.Timestamps {
		r.Timestamps = append(r.Timestamps, int64(t))
	}
	return r
}

// TypingStarted reports, for a typing event, whether typing started (ok is
// false for other events).
func (c *Context) TypingStarted() (started, ok bool) {
	e := c.frame.Envelope
	if e == nil || e.TypingMessage == nil {
		return false, false
	}
	return e.TypingMessage.Action == "STARTED", true
}

// EditTarget is, for an edit, the message being edited.
func (c *Context) EditTarget() (MessageRef, bool) {
	r, ok := c.frame.EditTarget()
	return fromRef(r), ok
}

// DeleteTarget is, for a remote delete, the message being deleted.
func (c *Context) DeleteTarget() (MessageRef, bool) {
	r, ok := c.frame.RemoteDeleteTarget()
	return fromRef(r), ok
}

// Raw is the frame exactly as signal-cli-rest-api sent it. It is read-only (it
// shares memory with the stream entry): copy it before changing it.
func (c *Context) Raw() []byte { return c.frame.Raw }

// Frame is the decoded frame, for what the accessors above do not cover.
func (c *Context) Frame() *signal.Frame { return c.frame }

// What matched.

// Command is the trigger that matched (as registered), "" for other routes.
func (c *Context) Command() string { return c.trigger }

// ArgString is the text after a command's trigger, trimmed.
func (c *Context) ArgString() string { return c.argString }

// Args are a command's arguments (see SplitArgs).
func (c *Context) Args() []string {
	if !c.argsDone {
		c.args, c.argsDone = SplitArgs(c.argString), true
	}
	return c.args
}

// Arg returns argument i, or "".
func (c *Context) Arg(i int) string {
	a := c.Args()
	if i < 0 || i >= len(a) {
		return ""
	}
	return a[i]
}

// Match is a regex route's match and captures (Match()[0] is the whole match).
func (c *Context) Match() []string { return c.match }

// Named returns a regex route's named capture, or "".
func (c *Context) Named(name string) string {
	if c.route == nil || c.route.re == nil || c.match == nil {
		return ""
	}
	i := c.route.re.SubexpIndex(name)
	if i < 0 || i >= len(c.match) {
		return ""
	}
	return c.match[i]
}

// Route is the route being run.
func (c *Context) Route() *Route { return c.route }

// The handling.

// Attempt is 1 for the first attempt at the message.
func (c *Context) Attempt() int { return c.u.Attempt }

// MessageID is the stream entry id of the message; OriginalID stays the same
// across dead-letter replays.
func (c *Context) MessageID() string { return c.u.ID }

// OriginalID is the id that identifies the message across replays.
func (c *Context) OriginalID() string {
	if c.u.OriginalID != "" {
		return c.u.OriginalID
	}
	return c.u.ID
}

// Log is a logger carrying the message's ids (never its content). The
// runtime's logger redacts numbers, UUIDs and group ids; still, do not log
// message text.
func (c *Context) Log() *zap.Logger {
	c.logMu.Do(func() { c.log = c.u.logger() })
	return c.log
}

// Set stores a value for later middleware and the handler of this message.
func (c *Context) Set(key, value any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.values == nil {
		c.values = map[any]any{}
	}
	c.values[key] = value
}

// Get returns a value stored with Set.
func (c *Context) Get(key any) any {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.values[key]
}

// State is the conversation's persistent state.
func (c *Context) State() *State { return c.state }

// Client is the proactive sender (for messages to other conversations that
// need no effectively-once record, or use SendOnce).
func (c *Context) Client() *Client { return c.u.Client }

// Outgoing calls.

func (c *Context) nextKey() CallKey {
	c.mu.Lock()
	c.seq++
	n := c.seq
	c.mu.Unlock()
	orig := c.OriginalID()
	if orig == "" {
		return CallKey{}
	}
	return CallKey{Shard: c.u.Shard, Original: orig, Seq: n}
}

// Send sends text into the conversation.
func (c *Context) Send(text string, opts ...SendOption) (Sent, error) {
	return c.SendTo(c.conv.Recipient, text, opts...)
}

// SendTo sends text to another recipient: a number, a UUID or a REST group id.
func (c *Context) SendTo(to, text string, opts ...SendOption) (Sent, error) {
	m := Outgoing{To: to, Text: text}
	for _, o := range opts {
		if err := o(&m); err != nil {
			return Sent{}, err
		}
	}
	if m.To == "" {
		return Sent{}, errors.New("bot: send: no recipient (this event has no conversation; use SendTo)")
	}
	return c.u.Backend.Send(c, c.nextKey(), m)
}

// Reply sends text into the conversation quoting the message (when the
// event has a quotable message; otherwise it is a plain Send).
func (c *Context) Reply(text string, opts ...SendOption) (Sent, error) {
	if q, ok := c.frame.QuoteTarget(); ok {
		ref := QuoteRef{Timestamp: q.Timestamp, Author: q.Author, Text: q.Text}
		for _, m := range q.Mentions {
			ref.Mentions = append(ref.Mentions, MentionAt{Author: m.Author, Start: int(m.Start), Length: int(m.Length)})
		}
		opts = append([]SendOption{Quoting(ref)}, opts...)
	}
	return c.Send(text, opts...)
}

// Edit replaces the text of a message the bot sent into this conversation
// (timestamp is what its Send returned).
func (c *Context) Edit(timestamp int64, text string, opts ...SendOption) (Sent, error) {
	if timestamp <= 0 {
		return Sent{}, errors.New("bot: edit: give the timestamp a Send returned")
	}
	return c.Send(text, append(opts, func(m *Outgoing) error { m.EditOf = timestamp; return nil })...)
}

// reactTarget is the message React and Unreact act on: the message itself,
// or for a reaction event the message that was reacted to.
func (c *Context) reactTarget() (signal.MessageRef, bool) {
	if r, ok := c.frame.ReactionTarget(); ok {
		return r, true
	}
	return c.frame.ReactedTo()
}

// React reacts to the message with emoji (for a reaction event: to the
// message that was reacted to).
func (c *Context) React(emoji string) (Sent, error) { return c.react(emoji, false) }

// Unreact removes the bot's reaction emoji from the message React targets.
func (c *Context) Unreact(emoji string) (Sent, error) { return c.react(emoji, true) }

func (c *Context) react(emoji string, remove bool) (Sent, error) {
	t, ok := c.reactTarget()
	if !ok {
		return Sent{}, ErrNoTarget
	}
	return c.u.Backend.React(c, c.nextKey(), ReactionRequest{To: c.conv.Recipient, Emoji: emoji, TargetAuthor: t.Author, TargetTimestamp: t.Timestamp, Remove: remove})
}

// MarkRead sends a read receipt for the message to its sender.
func (c *Context) MarkRead() (Sent, error) { return c.receipt("read") }

// MarkViewed sends a viewed receipt (for media) to the message's sender.
func (c *Context) MarkViewed() (Sent, error) { return c.receipt("viewed") }

func (c *Context) receipt(typ string) (Sent, error) {
	to := c.frame.ReceiptRecipient()
	if _, ok := c.frame.ReactionTarget(); !ok || to == "" {
		return Sent{}, ErrNoTarget
	}
	return c.u.Backend.Receipt(c, c.nextKey(), ReceiptRequest{To: to, Type: typ, Timestamp: c.Timestamp()})
}

// Delete deletes, for everyone in the conversation, the bot's message sent
// at timestamp (what its Send returned).
func (c *Context) Delete(timestamp int64) (Sent, error) {
	if timestamp <= 0 {
		return Sent{}, errors.New("bot: delete: give the timestamp a Send returned")
	}
	return c.u.Backend.RemoteDelete(c, c.nextKey(), c.conv.Recipient, timestamp)
}

// Download fetches an attachment of the message (at most maxBytes; 0 means
// the runtime's cap) and then deletes it from the server, which never
// deletes attachments by itself.
func (c *Context) Download(a Attachment, maxBytes int64) (Download, error) {
	if maxBytes <= 0 {
		maxBytes = c.u.MaxDownload
		if maxBytes <= 0 {
			maxBytes = 25 << 20
		}
	}
	d, err := c.u.Backend.Download(c, a.ID, maxBytes)
	if err != nil {
		return Download{}, err
	}
	if err := c.u.Backend.DeleteAttachment(c, a.ID); err != nil {
		c.Log().Warn("downloaded attachment not deleted from the server", zap.Error(err))
	}
	return d, nil
}

// Typing shows the bot as typing in the conversation, repeating the
// indicator (clients hide it after about 15 s) until stop is called or the
// handler returns. Calling it again while typing returns the same stop.
// Failures only log: a missing indicator never fails a message.
func (c *Context) Typing() (stop func()) {
	c.mu.Lock()
	if c.typing != nil {
		t := c.typing
		c.mu.Unlock()
		return t.stopFunc(c)
	}
	t := &typist{stop: make(chan struct{}), done: make(chan struct{})}
	c.typing = t
	c.mu.Unlock()
	every := c.u.TypingInterval
	if every <= 0 {
		every = 10 * time.Second
	}
	to := c.conv.Recipient
	be := c.u.Backend
	log := c.Log()
	if err := be.Typing(c, to, true); err != nil {
		log.Debug("typing indicator failed", zap.Error(err))
	}
	t.halt = func() {
		t.once.Do(func() {
			close(t.stop)
			<-t.done
			ctx, cancel := context.WithTimeout(context.WithoutCancel(c.ctx), 2*time.Second)
			defer cancel()
			if err := be.Typing(ctx, to, false); err != nil {
				log.Debug("typing stop failed", zap.Error(err))
			}
		})
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		defer close(t.done)
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			select {
			case <-t.stop:
				return
			case <-c.ctx.Done():
				return
			case <-tick.C:
				if err := be.Typing(c, to, true); err != nil {
					log.Debug("typing indicator failed", zap.Error(err))
				}
			}
		}
	}()
	return t.stopFunc(c)
}

type typist struct {
	stop, done chan struct{}
	once       sync.Once
	halt       func()
}

func (t *typist) stopFunc(c *Context) func() {
	return func() {
		c.mu.Lock()
		if c.typing == t {
			c.typing = nil
		}
		c.mu.Unlock()
		t.halt()
	}
}
