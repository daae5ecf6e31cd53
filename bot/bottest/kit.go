// Package bottest is the test kit for signal-client bots: it runs a
// bot.Router in-process, without Redis or network, against a recording
// backend, so a handler's unit test can say "Alice sends !ping in the group;
// the bot replies pong quoting her message" in a few lines:
//
//	kit := bottest.New(router)
//	res := kit.Run(bottest.Text(bottest.Alice, "!ping").In(bottest.NewGroup("ops")))
//	if res.Err != nil || res.Texts()[0] != "pong" { … }
//
// The kit keeps what the runtime guarantees: state writes are applied only
// when the handler succeeds, reads see earlier messages' writes, and calls
// made by an earlier attempt of the same message are skipped on a retry
// (Kit.Retry), returning the recorded result. Faults can be injected per call
// (Kit.Fail).
package bottest

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/signal-client/signal-client/bot"
	"github.com/signal-client/signal-client/internal/signal"
)

// DefaultSelf is the bot account the kit answers as.
var DefaultSelf = bot.Self{Number: "+15550000001", UUID: "0b07c0de-0000-4000-8000-00000000b075"}

// Call is one thing a handler did, in order.
type Call struct {
	// Kind is "send", "react", "unreact", "receipt", "delete", "typing",
	// "typing_stop", "download", "delete_attachment", "lock" or "unlock".
	Kind string
	Key  bot.CallKey
	// Message is the message of a send (edits are sends with EditOf).
	Message *bot.Outgoing
	// Reaction and Receipt are set for those calls.
	Reaction *bot.ReactionRequest
	Receipt  *bot.ReceiptRequest
	// To is the recipient or conversation; ID the attachment id or lock key;
	// Target the timestamp of the message a delete removes.
	To     string
	ID     string
	Target int64
	// Timestamp is the result's server timestamp (sends and deletes).
	Timestamp int64
	// Replayed is true for a call skipped because an earlier attempt made it.
	Replayed bool
}

// Result is what one delivery of a message did.
type Result struct {
	// Err is what the handler chain returned (nil also when nothing matched).
	Err error
	// Calls are the handler's calls, in order.
	Calls []Call
	// Timestamp is the inbound message's sent timestamp, Conversation its
	// conversation key, ID its entry id.
	Timestamp    int64
	Conversation string
	ID           string
	// Committed says whether the message's state writes were applied.
	Committed bool

	msg     *Msg
	attempt int
}

// Sent returns the messages actually sent (replayed calls excluded).
func (r *Result) Sent() []bot.Outgoing {
	var out []bot.Outgoing
	for _, c := range r.Calls {
		if c.Kind == "send" && !c.Replayed {
			out = append(out, *c.Message)
		}
	}
	return out
}

// Texts returns the texts of Sent.
func (r *Result) Texts() []string {
	var out []string
	for _, m := range r.Sent() {
		out = append(out, m.Text)
	}
	return out
}

// Of returns the calls of one kind (replayed ones included).
func (r *Result) Of(kind string) []Call {
	var out []Call
	for _, c := range r.Calls {
		if c.Kind == kind {
			out = append(out, c)
		}
	}
	return out
}

// Kit runs a router. It is safe for concurrent use, but each conversation's
// messages should be run one at a time, as the runtime does.
type Kit struct {
	router *bot.Router
	self   bot.Self
	client *bot.Client

	// Fail, when set, is asked before every call; a non-nil error fails the
	// call (use it to inject outages, 429s or unknown outcomes).
	Fail func(c Call) error
	// TypingInterval is passed to the Context (default 10s).
	TypingInterval time.Duration

	mu      sync.Mutex
	clock   int64
	entry   int64
	all     []Call
	state   map[string]map[string]string
	records map[string]bot.Sent
	locks   map[string]string
	files   map[string][]byte
	lockN   int
}

// Option configures a Kit.
type Option func(*Kit)

// WithSelf sets the bot account (default DefaultSelf).
func WithSelf(s bot.Self) Option { return func(k *Kit) { k.self = s } }

// New returns a kit running r.
func New(r *bot.Router, opts ...Option) *Kit {
	k := &Kit{router: r, self: DefaultSelf, clock: 1_700_000_000_000, state: map[string]map[string]string{},
		records: map[string]bot.Sent{}, locks: map[string]string{}, files: map[string][]byte{}}
	for _, o := range opts {
		o(k)
	}
	k.client = bot.NewClient(k, 1)
	return k
}

// Client is the proactive sender over the kit.
func (k *Kit) Client() *bot.Client { return k.client }

// Calls returns every call made through the kit so far (also by Client).
func (k *Kit) Calls() []Call {
	k.mu.Lock()
	defer k.mu.Unlock()
	return append([]Call(nil), k.all...)
}

func (k *Kit) tick() int64 {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.clock += 1000
	return k.clock
}

// Run delivers m as a new message and returns what the handler did.
func (k *Kit) Run(m *Msg) *Result {
	k.mu.Lock()
	k.entry++
	id := strconv.FormatInt(k.entry, 10) + "-0"
	k.mu.Unlock()
	ts := m.timestamp
	if ts == 0 {
		ts = k.tick()
	}
	return k.deliver(m, id, ts, 1, false)
}

// RunCrashing delivers m like Run and then "crashes" before the message is
// acknowledged (a kill -9 after the handler's calls went out): the calls
// happened, the state writes are lost. Retry the result to see what the
// next worker does.
func (k *Kit) RunCrashing(m *Msg) *Result {
	k.mu.Lock()
	k.entry++
	id := strconv.FormatInt(k.entry, 10) + "-0"
	k.mu.Unlock()
	ts := m.timestamp
	if ts == 0 {
		ts = k.tick()
	}
	return k.deliver(m, id, ts, 1, true)
}

// Retry delivers the message of res again as the runtime does after a failed
// or crashed attempt: same ids and timestamp, the next attempt number. Calls
// the earlier attempts completed are skipped (Call.Replayed). A committed
// message is never retried by the runtime; retrying one gives an error.
func (k *Kit) Retry(res *Result) *Result {
	if res.Committed {
		return &Result{Err: errors.New("bottest: this message was handled and acknowledged; the runtime never retries it (use RunCrashing to simulate a crash before the acknowledgement)"),
			ID: res.ID, Timestamp: res.Timestamp, Conversation: res.Conversation, msg: res.msg, attempt: res.attempt}
	}
	return k.deliver(res.msg, res.ID, res.Timestamp, res.attempt+1, false)
}

// RetryCrashing is Retry followed by a crash before the acknowledgement.
func (k *Kit) RetryCrashing(res *Result) *Result {
	if res.Committed {
		return k.Retry(res)
	}
	return k.deliver(res.msg, res.ID, res.Timestamp, res.attempt+1, true)
}

func (k *Kit) deliver(m *Msg, id string, ts int64, attempt int, crash bool) *Result {
	for aid, data := range m.attData {
		k.mu.Lock()
		k.files[aid] = data
		k.mu.Unlock()
	}
	raw := m.frame(k.self, k.self.Number, ts)
	res := &Result{Timestamp: ts, ID: id, msg: m, attempt: attempt}
	f, err := signal.Decode(raw)
	if err != nil {
		res.Err = fmt.Errorf("bottest: the built frame does not decode: %w", err)
		return res
	}
	res.Conversation = f.Conversation().Key
	st := &kitState{k: k, conv: res.Conversation}
	u := bot.Update{Raw: raw, Frame: f, ID: id, OriginalID: id, Attempt: attempt, Conversation: res.Conversation, Self: k.self,
		Backend: &kitBackend{k: k, res: res}, State: st, Client: k.client, TypingInterval: k.TypingInterval, LockTTL: 10 * time.Second}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res.Err = k.router.Dispatch(ctx, u)
	if res.Err == nil && !crash {
		st.commit()
		res.Committed = true
	}
	return res
}

// State returns the committed state of a conversation, decoded: name → JSON.
// Expired values are left out.
func (k *Kit) State(conversation string) map[string]string {
	k.mu.Lock()
	defer k.mu.Unlock()
	out := map[string]string{}
	now := time.Now().UnixMilli()
	for f, v := range k.state[conversation] {
		if f == "\x00exp" {
			continue
		}
		exp, js, ok := cutState(v)
		if ok && (exp == 0 || exp > now) {
			out[f] = js
		}
	}
	return out
}

func cutState(v string) (int64, string, bool) {
	for i := 0; i < len(v); i++ {
		if v[i] == '|' {
			n, err := strconv.ParseInt(v[:i], 10, 64)
			return n, v[i+1:], err == nil
		}
	}
	return 0, "", false
}

// kitState buffers one delivery's writes until it succeeds.
type kitState struct {
	k       *Kit
	conv    string
	mu      sync.Mutex
	pending []bot.StateOp
}

func (s *kitState) Read(_ context.Context, field string) (string, bool, error) {
	s.mu.Lock()
	for i := len(s.pending) - 1; i >= 0; i-- {
		op := s.pending[i]
		if op.Field == field {
			switch op.Op {
			case "set":
				s.mu.Unlock()
				return op.Value, true, nil
			case "del":
				s.mu.Unlock()
				return "", false, nil
			}
		}
	}
	s.mu.Unlock()
	s.k.mu.Lock()
	defer s.k.mu.Unlock()
	v, ok := s.k.state[s.conv][field]
	return v, ok, nil
}

func (s *kitState) Write(op bot.StateOp) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pending = append(s.pending, op)
}

func (s *kitState) commit() {
	s.mu.Lock()
	ops := s.pending
	s.pending = nil
	s.mu.Unlock()
	s.k.mu.Lock()
	defer s.k.mu.Unlock()
	h := s.k.state[s.conv]
	if h == nil {
		h = map[string]string{}
		s.k.state[s.conv] = h
	}
	for _, op := range ops {
		switch op.Op {
		case "set":
			h[op.Field] = op.Value
		case "del":
			delete(h, op.Field)
		}
	}
}

// kitBackend records one delivery's calls.
type kitBackend struct {
	k   *Kit
	res *Result
}

func (b *kitBackend) record(c Call) {
	b.k.mu.Lock()
	defer b.k.mu.Unlock()
	b.k.all = append(b.k.all, c)
	if b.res != nil {
		b.res.Calls = append(b.res.Calls, c)
	}
}

// Backend methods are on Kit too, for the proactive Client.
func (k *Kit) backend() *kitBackend { return &kitBackend{k: k} }

func recordKey(key bot.CallKey) string {
	return fmt.Sprintf("%d|%s|%d", key.Shard, key.Original, key.Seq)
}

// keyed runs a call with effectively-once records, as the runtime does.
func (b *kitBackend) keyed(ctx context.Context, c Call, do func() (bot.Sent, error)) (bot.Sent, error) {
	if err := ctx.Err(); err != nil {
		return bot.Sent{}, err
	}
	if !c.Key.IsZero() {
		b.k.mu.Lock()
		prev, ok := b.k.records[recordKey(c.Key)]
		b.k.mu.Unlock()
		if ok {
			c.Replayed = true
			c.Timestamp = prev.Timestamp
			b.record(c)
			prev.Replayed = true
			return prev, nil
		}
	}
	if b.k.Fail != nil {
		if err := b.k.Fail(c); err != nil {
			return bot.Sent{}, err
		}
	}
	s, err := do()
	if err != nil {
		return bot.Sent{}, err
	}
	c.Timestamp = s.Timestamp
	b.record(c)
	if !c.Key.IsZero() {
		b.k.mu.Lock()
		b.k.records[recordKey(c.Key)] = s
		b.k.mu.Unlock()
	}
	return s, nil
}

func (b *kitBackend) Send(ctx context.Context, key bot.CallKey, m bot.Outgoing) (bot.Sent, error) {
	return b.keyed(ctx, Call{Kind: "send", Key: key, Message: &m, To: m.To}, func() (bot.Sent, error) {
		return bot.Sent{Timestamp: b.k.tick()}, nil
	})
}

func (b *kitBackend) React(ctx context.Context, key bot.CallKey, r bot.ReactionRequest) (bot.Sent, error) {
	kind := "react"
	if r.Remove {
		kind = "unreact"
	}
	return b.keyed(ctx, Call{Kind: kind, Key: key, Reaction: &r, To: r.To}, func() (bot.Sent, error) { return bot.Sent{}, nil })
}

func (b *kitBackend) Receipt(ctx context.Context, key bot.CallKey, r bot.ReceiptRequest) (bot.Sent, error) {
	return b.keyed(ctx, Call{Kind: "receipt", Key: key, Receipt: &r, To: r.To}, func() (bot.Sent, error) { return bot.Sent{}, nil })
}

func (b *kitBackend) RemoteDelete(ctx context.Context, key bot.CallKey, to string, ts int64) (bot.Sent, error) {
	c := Call{Kind: "delete", Key: key, To: to, Target: ts}
	return b.keyed(ctx, c, func() (bot.Sent, error) { return bot.Sent{Timestamp: b.k.tick()}, nil })
}

func (b *kitBackend) unkeyed(ctx context.Context, c Call) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if b.k.Fail != nil {
		if err := b.k.Fail(c); err != nil {
			return err
		}
	}
	b.record(c)
	return nil
}

func (b *kitBackend) Typing(ctx context.Context, to string, start bool) error {
	kind := "typing"
	if !start {
		kind = "typing_stop"
	}
	return b.unkeyed(ctx, Call{Kind: kind, To: to})
}

func (b *kitBackend) Download(ctx context.Context, id string, maxBytes int64) (bot.Download, error) {
	if err := b.unkeyed(ctx, Call{Kind: "download", ID: id}); err != nil {
		return bot.Download{}, err
	}
	b.k.mu.Lock()
	data, ok := b.k.files[id]
	b.k.mu.Unlock()
	if !ok {
		return bot.Download{}, fmt.Errorf("bottest: no attachment %q (add it with Msg.WithAttachment)", id)
	}
	if int64(len(data)) > maxBytes {
		return bot.Download{}, fmt.Errorf("bottest: attachment of %d bytes exceeds the limit of %d", len(data), maxBytes)
	}
	return bot.Download{Data: data, ContentType: "application/octet-stream"}, nil
}

func (b *kitBackend) DeleteAttachment(ctx context.Context, id string) error {
	if err := b.unkeyed(ctx, Call{Kind: "delete_attachment", ID: id}); err != nil {
		return err
	}
	b.k.mu.Lock()
	delete(b.k.files, id)
	b.k.mu.Unlock()
	return nil
}

// Lock waits for an in-memory lock.
func (b *kitBackend) Lock(ctx context.Context, key string, ttl time.Duration) (bot.HeldLock, error) {
	if err := b.unkeyed(ctx, Call{Kind: "lock", ID: key}); err != nil {
		return nil, err
	}
	for {
		b.k.mu.Lock()
		if _, held := b.k.locks[key]; !held {
			b.k.lockN++
			tok := strconv.Itoa(b.k.lockN)
			b.k.locks[key] = tok
			b.k.mu.Unlock()
			return &kitLock{b: b, key: key, tok: tok}, nil
		}
		b.k.mu.Unlock()
		select {
		case <-ctx.Done():
			return nil, bot.ErrLockNotObtained
		case <-time.After(5 * time.Millisecond):
		}
	}
}

type kitLock struct {
	b        *kitBackend
	key, tok string
}

func (l *kitLock) Refresh(context.Context, time.Duration) error {
	l.b.k.mu.Lock()
	defer l.b.k.mu.Unlock()
	if l.b.k.locks[l.key] != l.tok {
		return bot.ErrLockLost
	}
	return nil
}

func (l *kitLock) Release(context.Context) error {
	l.b.k.mu.Lock()
	if l.b.k.locks[l.key] == l.tok {
		delete(l.b.k.locks, l.key)
	}
	l.b.k.mu.Unlock()
	l.b.record(Call{Kind: "unlock", ID: l.key})
	return nil
}

// Kit implements bot.Backend for its Client (calls outside a delivery).
func (k *Kit) Send(ctx context.Context, key bot.CallKey, m bot.Outgoing) (bot.Sent, error) {
	return k.backend().Send(ctx, key, m)
}

// React implements bot.Backend.
func (k *Kit) React(ctx context.Context, key bot.CallKey, r bot.ReactionRequest) (bot.Sent, error) {
	return k.backend().React(ctx, key, r)
}

// Receipt implements bot.Backend.
func (k *Kit) Receipt(ctx context.Context, key bot.CallKey, r bot.ReceiptRequest) (bot.Sent, error) {
	return k.backend().Receipt(ctx, key, r)
}

// RemoteDelete implements bot.Backend.
func (k *Kit) RemoteDelete(ctx context.Context, key bot.CallKey, to string, ts int64) (bot.Sent, error) {
	return k.backend().RemoteDelete(ctx, key, to, ts)
}

// Typing implements bot.Backend.
func (k *Kit) Typing(ctx context.Context, to string, start bool) error {
	return k.backend().Typing(ctx, to, start)
}

// Download implements bot.Backend.
func (k *Kit) Download(ctx context.Context, id string, maxBytes int64) (bot.Download, error) {
	return k.backend().Download(ctx, id, maxBytes)
}

// DeleteAttachment implements bot.Backend.
func (k *Kit) DeleteAttachment(ctx context.Context, id string) error {
	return k.backend().DeleteAttachment(ctx, id)
}

// Lock implements bot.Backend.
func (k *Kit) Lock(ctx context.Context, key string, ttl time.Duration) (bot.HeldLock, error) {
	return k.backend().Lock(ctx, key, ttl)
}

// Start runs the router's OnStart hooks with the kit's Client, one after the
// other, and returns the first error.
func (k *Kit) Start(ctx context.Context) error {
	for _, f := range k.router.StartHooks() {
		if err := f(ctx, k.client); err != nil {
			return err
		}
	}
	return nil
}
