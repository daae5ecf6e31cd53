package emulator

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/signal-client/signal-client/internal/emulator/events"
)

// EventKind names a generated event.
type EventKind string

// Generated event kinds.
const (
	KindText       EventKind = "text"
	KindCommand    EventKind = "command"
	KindReaction   EventKind = "reaction"
	KindReceipt    EventKind = "receipt"
	KindTyping     EventKind = "typing"
	KindEdit       EventKind = "edit"
	KindDelete     EventKind = "delete"
	KindAttachment EventKind = "attachment"
)

// AllKinds returns the generator's event kinds in their canonical order.
func AllKinds() []EventKind {
	return []EventKind{KindText, KindCommand, KindReaction, KindReceipt, KindTyping, KindEdit, KindDelete, KindAttachment}
}

// DefaultWeights returns the default event mix.
func DefaultWeights() map[EventKind]int {
	return map[EventKind]int{
		KindText: 40, KindCommand: 15, KindReaction: 10, KindReceipt: 10,
		KindTyping: 10, KindEdit: 5, KindDelete: 5, KindAttachment: 5,
	}
}

// ConversationType is the kind of a generated conversation.
type ConversationType string

// Conversation types.
const (
	// ConvDirect is a 1:1 chat with a sender whose number is visible.
	ConvDirect ConversationType = "direct"
	// ConvHidden is a 1:1 chat with a sender who hides their number (sourceNumber null).
	ConvHidden ConversationType = "hidden"
	// ConvGroup is a group chat with several members.
	ConvGroup ConversationType = "group"
)

// GeneratorConfig configures synthetic traffic. At least one of Count and Duration must
// be set so the generator stops by itself.
type GeneratorConfig struct {
	// Account receives the traffic (default: the first account).
	Account string
	// Direct, Hidden and Groups are the numbers of conversations of each type. When all
	// are zero, Conversations (default 6) are split round-robin direct, hidden, group.
	Direct, Hidden, Groups int
	Conversations          int
	// GroupMembers is the number of members per group besides the bot (default 3); about
	// a third of them hide their number.
	GroupMembers int
	// Rate is the pace in events per second, token-bucket paced with Burst (default 1);
	// Rate <= 0 emits as fast as possible.
	Rate  float64
	Burst int
	// Count stops after this many events; Duration stops after this long.
	Count    int
	Duration time.Duration
	// Seed makes the traffic reproducible: same seed and config give the same sequence.
	Seed uint64
	// Weights is the event mix (default DefaultWeights()); missing kinds get weight 0.
	Weights map[EventKind]int
	// BaseTime, when set, makes envelope timestamps a deterministic virtual clock starting
	// there (so payloads are byte-identical across runs); otherwise timestamps follow the
	// wall clock (still unique and increasing).
	BaseTime time.Time
	// KeepRaw keeps each emitted frame in Emitted.Raw.
	KeepRaw bool
}

// Emitted records one generated event. Text bodies start with "msg <Seq>" (commands:
// "!echo msg <Seq> …"; "!ping" and "!count" carry no number) so consumers can check order.
type Emitted struct {
	// Index is the 0-based emission order.
	Index   int    `json:"index"`
	Account string `json:"account"`
	// Conversation is the conversation key a consumer computes (reference §3.7): the
	// internal group id when the frame carries one, else the sender UUID. Receipts from
	// group members are 1:1 events, so their key is the sender.
	Conversation string `json:"conversation"`
	// ConversationIndex and ConversationType identify the generator's conversation.
	ConversationIndex int              `json:"conversation_index"`
	ConversationType  ConversationType `json:"conversation_type"`
	// Seq is the 1-based sequence number of the event within its generator conversation.
	Seq          int    `json:"seq"`
	Sender       string `json:"sender"`
	SenderNumber string `json:"sender_number,omitempty"`
	Device       int    `json:"device"`
	// Timestamp is the envelope timestamp (unique per sender and device, increasing).
	Timestamp int64     `json:"timestamp"`
	Kind      EventKind `json:"kind"`
	// Target is the referenced message timestamp for reactions, edits and deletes, or the
	// first acknowledged timestamp of a receipt.
	Target int64 `json:"target,omitempty"`
	// Text is the body (or new body of an edit), empty when none.
	Text string `json:"text,omitempty"`
	// Sockets is how many websockets accepted the frame (queued or handed to the writer).
	Sockets int `json:"sockets"`
	// Raw is the frame when GeneratorConfig.KeepRaw is set (inline JSON in the admin API).
	Raw json.RawMessage `json:"raw,omitempty"`
}

// GenConversation describes a generated conversation.
type GenConversation struct {
	Index int              `json:"index"`
	Type  ConversationType `json:"type"`
	// Key is the conversation key of its chat events.
	Key string `json:"key"`
	// Recipient is where a bot replies: the number, the UUID (hidden number) or the REST
	// group id.
	Recipient string           `json:"recipient"`
	Members   []events.Contact `json:"members"`
	Group     *events.Group    `json:"group,omitempty"`
}

// GeneratorStatus summarizes a generator.
type GeneratorStatus struct {
	Running  bool      `json:"running"`
	Emitted  int       `json:"emitted"`
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished,omitzero"`
	// Reason says why it stopped: "count", "duration", "stopped" or "closed".
	Reason string `json:"reason,omitempty"`
}

// Generator emits synthetic traffic into an emulator. Create it with
// Emulator.StartGenerator.
type Generator struct {
	e       *Emulator
	cfg     GeneratorConfig
	rng     *rand.Rand
	convs   []*genConv
	kinds   []EventKind
	weights []int
	total   int
	vclock  int64
	contact int
	files   int

	stop     chan struct{}
	stopOnce sync.Once
	done     chan struct{}

	mu       sync.Mutex
	emitted  []Emitted
	started  time.Time
	finished time.Time
	reason   string
}

type genMsg struct {
	author  int
	ts      int64
	text    bool
	deleted bool
}

type genConv struct {
	GenConversation
	seq    int
	msgs   []genMsg
	typing map[int]bool
}

const maxRememberedMsgs = 64

var genWords = []string{"hello", "deploy", "status", "coffee", "later", "ok", "ship", "build", "green", "lunch", "ping", "review", "merge", "alert", "cluster", "redis"}

var genEmojis = []string{"👍", "❤️", "😂", "😮", "😢", "🙏"}

// StartGenerator builds the conversations (registering groups with the emulator) and
// starts emitting in the background. Only one generator runs at a time.
func (e *Emulator) StartGenerator(cfg GeneratorConfig) (*Generator, error) {
	g, err := e.newGenerator(cfg)
	if err != nil {
		return nil, err
	}
	e.genMu.Lock()
	defer e.genMu.Unlock()
	if e.gen != nil {
		select {
		case <-e.gen.done:
		default:
			return nil, errors.New("emulator: generator already running: stop it first")
		}
	}
	select {
	case <-e.closing:
		return nil, errors.New("emulator: generator: emulator is closed")
	default:
	}
	if !e.track() {
		return nil, errors.New("emulator: generator: emulator is closed")
	}
	e.gen = g
	g.started = time.Now()
	go func() {
		defer e.wg.Done()
		g.run()
	}()
	e.log.Info("generator started", zap.Int("conversations", len(g.convs)), zap.Float64("rate", g.cfg.Rate), zap.Int("count", g.cfg.Count), zap.Duration("duration", g.cfg.Duration))
	return g, nil
}

// StopGenerator stops the running generator, if any, and waits for it.
func (e *Emulator) StopGenerator() {
	e.genMu.Lock()
	g := e.gen
	e.genMu.Unlock()
	if g != nil {
		g.Stop()
		<-g.done
	}
}

// Generator returns the running or last generator, nil if none was started.
func (e *Emulator) Generator() *Generator {
	e.genMu.Lock()
	defer e.genMu.Unlock()
	return e.gen
}

func (e *Emulator) newGenerator(cfg GeneratorConfig) (*Generator, error) {
	if cfg.Count <= 0 && cfg.Duration <= 0 {
		return nil, errors.New("emulator: generator needs a count or a duration so it stops by itself")
	}
	if cfg.Account == "" {
		cfg.Account = e.cfg.Accounts[0]
	}
	if cfg.Direct < 0 || cfg.Hidden < 0 || cfg.Groups < 0 {
		return nil, errors.New("emulator: generator: conversation counts must not be negative")
	}
	if cfg.Direct == 0 && cfg.Hidden == 0 && cfg.Groups == 0 {
		n := cfg.Conversations
		if n <= 0 {
			n = 6
		}
		cfg.Direct, cfg.Hidden, cfg.Groups = (n+2)/3, (n+1)/3, n/3
	}
	if cfg.GroupMembers <= 0 {
		cfg.GroupMembers = 3
	}
	if cfg.Burst <= 0 {
		cfg.Burst = 1
	}
	if cfg.Weights == nil {
		cfg.Weights = DefaultWeights()
	}
	g := &Generator{
		e:    e,
		cfg:  cfg,
		rng:  rand.New(rand.NewPCG(cfg.Seed, 0x5eed5eed5eed5eed)),
		stop: make(chan struct{}),
		done: make(chan struct{}),
	}
	for _, k := range AllKinds() {
		if w := cfg.Weights[k]; w > 0 {
			g.kinds = append(g.kinds, k)
			g.weights = append(g.weights, w)
			g.total += w
		}
	}
	for k := range cfg.Weights {
		if !slices.Contains(AllKinds(), k) {
			return nil, fmt.Errorf("emulator: generator: unknown event kind %q", k)
		}
	}
	if g.total == 0 {
		return nil, errors.New("emulator: generator: all event weights are zero")
	}
	if !cfg.BaseTime.IsZero() {
		g.vclock = cfg.BaseTime.UnixMilli()
	}
	types := make([]ConversationType, 0, cfg.Direct+cfg.Hidden+cfg.Groups)
	for len(types) < cfg.Direct+cfg.Hidden+cfg.Groups {
		// Interleave types so every prefix of conversations mixes them.
		if c := countType(types, ConvDirect); c < cfg.Direct {
			types = append(types, ConvDirect)
		}
		if c := countType(types, ConvHidden); c < cfg.Hidden {
			types = append(types, ConvHidden)
		}
		if c := countType(types, ConvGroup); c < cfg.Groups {
			types = append(types, ConvGroup)
		}
	}
	bot := events.Contact{Number: cfg.Account, UUID: AccountUUID(cfg.Account)}
	for i, t := range types {
		c := &genConv{GenConversation: GenConversation{Index: i, Type: t}, typing: map[int]bool{}}
		switch t {
		case ConvDirect, ConvHidden:
			m := g.newContact(t == ConvHidden)
			c.Members = []events.Contact{m}
			c.Key = m.UUID
			c.Recipient = m.ID()
		case ConvGroup:
			for j := 0; j < cfg.GroupMembers; j++ {
				c.Members = append(c.Members, g.newContact(j%3 == 2))
			}
			id := base64.StdEncoding.EncodeToString(g.bytes(32))
			c.Group = &events.Group{ID: id, Name: fmt.Sprintf("Group %d", i), Revision: 1 + g.rng.IntN(9)}
			c.Key = id
			c.Recipient = RESTGroupID(id)
			members := []Member{{Number: bot.Number, UUID: bot.UUID}}
			for _, m := range c.Members {
				members = append(members, Member{Number: m.Number, UUID: m.UUID})
			}
			if _, err := e.AddGroup(cfg.Account, Group{ID: id, Name: c.Group.Name, Members: members, Admins: members[:1], Revision: c.Group.Revision}); err != nil {
				return nil, fmt.Errorf("emulator: generator: %w", err)
			}
		}
		g.convs = append(g.convs, c)
	}
	return g, nil
}

func countType(ts []ConversationType, t ConversationType) int {
	n := 0
	for _, x := range ts {
		if x == t {
			n++
		}
	}
	return n
}

func (g *Generator) bytes(n int) []byte {
	b := make([]byte, n)
	for i := 0; i < n; i += 8 {
		var w [8]byte
		binary.LittleEndian.PutUint64(w[:], g.rng.Uint64())
		copy(b[i:], w[:])
	}
	return b
}

func (g *Generator) newContact(hidden bool) events.Contact {
	g.contact++
	c := events.Contact{UUID: formatUUID(g.bytes(16)), Name: fmt.Sprintf("Contact %d", g.contact), Device: 1}
	if g.rng.IntN(4) == 0 {
		c.Device = 2
	}
	if !hidden {
		c.Number = fmt.Sprintf("+1555%07d", 1000000+g.rng.IntN(9000000))
	}
	return c
}

// Conversations describes the generated conversations.
func (g *Generator) Conversations() []GenConversation {
	out := make([]GenConversation, 0, len(g.convs))
	for _, c := range g.convs {
		gc := c.GenConversation
		gc.Members = slices.Clone(gc.Members)
		out = append(out, gc)
	}
	return out
}

// Stop asks the generator to stop; it returns at once.
func (g *Generator) Stop() { g.stopOnce.Do(func() { close(g.stop) }) }

// Done is closed when the generator has stopped.
func (g *Generator) Done() <-chan struct{} { return g.done }

// Wait blocks until the generator stops or ctx ends.
func (g *Generator) Wait(ctx context.Context) error {
	select {
	case <-g.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("emulator: wait for generator: %w", ctx.Err())
	}
}

// Emitted returns the records of all events emitted so far, in order.
func (g *Generator) Emitted() []Emitted {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := slices.Clone(g.emitted)
	return out
}

// Status summarizes the generator.
func (g *Generator) Status() GeneratorStatus {
	g.mu.Lock()
	defer g.mu.Unlock()
	running := true
	select {
	case <-g.done:
		running = false
	default:
	}
	return GeneratorStatus{Running: running, Emitted: len(g.emitted), Started: g.started, Finished: g.finished, Reason: g.reason}
}

func (g *Generator) finish(reason string) {
	g.mu.Lock()
	g.finished = time.Now()
	g.reason = reason
	n := len(g.emitted)
	g.mu.Unlock()
	g.e.log.Info("generator stopped", zap.String("reason", reason), zap.Int("emitted", n))
}

// run paces emission with a token bucket: at most Burst + Rate*elapsed events by any time.
func (g *Generator) run() {
	defer close(g.done)
	var deadline <-chan time.Time
	if g.cfg.Duration > 0 {
		t := time.NewTimer(g.cfg.Duration)
		defer t.Stop()
		deadline = t.C
	}
	burst := float64(g.cfg.Burst)
	tokens := burst
	last := time.Now()
	for i := 0; g.cfg.Count <= 0 || i < g.cfg.Count; i++ {
		if g.cfg.Rate > 0 {
			for {
				now := time.Now()
				tokens = min(burst, tokens+now.Sub(last).Seconds()*g.cfg.Rate)
				last = now
				if tokens >= 1 {
					tokens--
					break
				}
				wait := time.Duration((1 - tokens) / g.cfg.Rate * float64(time.Second))
				t := time.NewTimer(wait)
				select {
				case <-t.C:
				case <-g.stop:
					t.Stop()
					g.finish("stopped")
					return
				case <-deadline:
					t.Stop()
					g.finish("duration")
					return
				case <-g.e.closing:
					t.Stop()
					g.finish("closed")
					return
				}
			}
		}
		select {
		case <-g.stop:
			g.finish("stopped")
			return
		case <-deadline:
			g.finish("duration")
			return
		case <-g.e.closing:
			g.finish("closed")
			return
		default:
		}
		g.emitOne(i)
	}
	g.finish("count")
}

func (g *Generator) pickKind() EventKind {
	r := g.rng.IntN(g.total)
	for i, w := range g.weights {
		if r < w {
			return g.kinds[i]
		}
		r -= w
	}
	return g.kinds[len(g.kinds)-1]
}

func (g *Generator) nextTS() int64 {
	if !g.cfg.BaseTime.IsZero() {
		g.vclock += 1 + int64(g.rng.IntN(3))
		return g.vclock
	}
	now := time.Now().UnixMilli()
	if now <= g.vclock {
		now = g.vclock + 1
	}
	g.vclock = now
	return now
}

func (g *Generator) words(n int) string {
	w := make([]string, n)
	for i := range w {
		w[i] = genWords[g.rng.IntN(len(genWords))]
	}
	return strings.Join(w, " ")
}

// emitOne builds and injects one event. Kinds that need an earlier message fall back to a
// text when the conversation has none.
func (g *Generator) emitOne(index int) {
	c := g.convs[g.rng.IntN(len(g.convs))]
	kind := g.pickKind()
	c.seq++
	rec := Emitted{
		Index:             index,
		Account:           g.cfg.Account,
		ConversationIndex: c.Index,
		ConversationType:  c.Type,
		Seq:               c.seq,
		Conversation:      c.Key,
	}
	author := g.rng.IntN(len(c.Members))
	var frame []byte
	ts := g.nextTS()
	meta := func(a int) events.Meta {
		recv := ts + 5 + int64(g.rng.IntN(50))
		m := c.Members[a]
		rec.Sender, rec.SenderNumber, rec.Device = m.UUID, m.Number, max(m.Device, 1)
		return events.Meta{Account: g.cfg.Account, From: m, Timestamp: ts, ServerReceived: recv, ServerDelivered: recv + 1 + int64(g.rng.IntN(20))}
	}
	bot := events.Contact{Number: g.cfg.Account, UUID: AccountUUID(g.cfg.Account)}

	switch kind {
	case KindReaction:
		target, targetAuthor, ok := g.reactionTarget(c)
		if !ok {
			kind = KindText
			break
		}
		rec.Target = target
		frame = events.ReactionMessage(meta(author), events.Reaction{
			Emoji:           genEmojis[g.rng.IntN(len(genEmojis))],
			TargetAuthor:    targetAuthor,
			TargetTimestamp: target,
			Remove:          g.rng.IntN(7) == 0,
		}, c.Group)
	case KindReceipt:
		var tss []int64
		if sent := g.e.sendTimestamps(g.cfg.Account, c.Recipient); len(sent) > 0 {
			n := 1 + g.rng.IntN(min(3, len(sent)))
			tss = slices.Clone(sent[len(sent)-n:])
		} else {
			tss = []int64{ts - 1000 - int64(g.rng.IntN(5000))}
		}
		rk := events.ReceiptDelivery
		switch r := g.rng.IntN(10); {
		case r >= 9:
			rk = events.ReceiptViewed
		case r >= 5:
			rk = events.ReceiptRead
		}
		rec.Target = tss[0]
		frame = events.ReceiptMessage(meta(author), events.Receipt{Kind: rk, Timestamps: tss})
		rec.Conversation = c.Members[author].UUID
	case KindTyping:
		action := events.TypingStarted
		if c.typing[author] {
			action = events.TypingStopped
		}
		c.typing[author] = !c.typing[author]
		gid := ""
		if c.Group != nil {
			gid = c.Group.ID
		}
		frame = events.TypingMessage(meta(author), action, gid)
	case KindEdit:
		idx, ok := g.pickOwn(c, true)
		if !ok {
			kind = KindText
			break
		}
		m := c.msgs[idx]
		rec.Target = m.ts
		rec.Text = fmt.Sprintf("msg %d %s (edited)", c.seq, g.words(2))
		frame = events.EditMessage(meta(m.author), m.ts, events.Message{Text: rec.Text, Group: c.Group})
	case KindDelete:
		idx, ok := g.pickOwn(c, false)
		if !ok {
			kind = KindText
			break
		}
		c.msgs[idx].deleted = true
		m := c.msgs[idx]
		rec.Target = m.ts
		frame = events.RemoteDeleteMessage(meta(m.author), m.ts, c.Group)
	case KindAttachment:
		att := g.attachment(ts)
		if g.rng.IntN(2) == 0 {
			rec.Text = fmt.Sprintf("msg %d photo", c.seq)
		}
		frame = events.DataMessage(meta(author), events.Message{Text: rec.Text, Group: c.Group, Attachments: []events.Attachment{att}})
		g.remember(c, author, ts, false)
	case KindCommand:
		switch g.rng.IntN(3) {
		case 0:
			rec.Text = "!ping"
		case 1:
			rec.Text = fmt.Sprintf("!echo msg %d %s", c.seq, g.words(2))
		default:
			rec.Text = "!count"
		}
		frame = events.DataMessage(meta(author), events.Message{Text: rec.Text, Group: c.Group})
		g.remember(c, author, ts, true)
	}
	if kind == KindText {
		rec.Target = 0
		rec.Text = fmt.Sprintf("msg %d %s", c.seq, g.words(1+g.rng.IntN(4)))
		msg := events.Message{Text: rec.Text, Group: c.Group}
		if c.Group != nil && g.rng.IntN(8) == 0 {
			// Mention the bot now and then, with the U+FFFC placeholder.
			msg.Text = rec.Text + " \uFFFC"
			rec.Text = msg.Text
			msg.Mentions = []events.Mention{{Who: bot, Start: utf16Len(rec.Text) - 1, Length: 1}}
		}
		frame = events.DataMessage(meta(author), msg)
		g.remember(c, author, ts, true)
	}
	rec.Kind = kind
	rec.Timestamp = ts
	if g.cfg.KeepRaw {
		rec.Raw = frame
	}
	rec.Sockets = g.e.Inject(g.cfg.Account, frame)
	g.mu.Lock()
	g.emitted = append(g.emitted, rec)
	g.mu.Unlock()
}

func utf16Len(s string) int {
	n := 0
	for _, r := range s {
		if r >= 0x10000 {
			n += 2
		} else {
			n++
		}
	}
	return n
}

func (g *Generator) remember(c *genConv, author int, ts int64, text bool) {
	c.msgs = append(c.msgs, genMsg{author: author, ts: ts, text: text})
	if len(c.msgs) > maxRememberedMsgs {
		c.msgs = slices.Delete(c.msgs, 0, len(c.msgs)-maxRememberedMsgs)
	}
}

// pickOwn picks a live earlier message (a text one when textOnly) for its author to edit
// or delete.
func (g *Generator) pickOwn(c *genConv, textOnly bool) (int, bool) {
	var cand []int
	for i, m := range c.msgs {
		if !m.deleted && (!textOnly || m.text) {
			cand = append(cand, i)
		}
	}
	if len(cand) == 0 {
		return 0, false
	}
	return cand[g.rng.IntN(len(cand))], true
}

// reactionTarget picks a bot message sent to this conversation (from the recorded sends)
// or an earlier member message.
func (g *Generator) reactionTarget(c *genConv) (int64, events.Contact, bool) {
	sent := g.e.sendTimestamps(g.cfg.Account, c.Recipient)
	live := make([]genMsg, 0, len(c.msgs))
	for _, m := range c.msgs {
		if !m.deleted {
			live = append(live, m)
		}
	}
	if len(sent) > 0 && (len(live) == 0 || g.rng.IntN(2) == 0) {
		return sent[g.rng.IntN(len(sent))], events.Contact{Number: g.cfg.Account, UUID: AccountUUID(g.cfg.Account)}, true
	}
	if len(live) == 0 {
		return 0, events.Contact{}, false
	}
	m := live[g.rng.IntN(len(live))]
	return m.ts, c.Members[m.author], true
}

// attachment stores a small PNG in the emulator and describes it.
func (g *Generator) attachment(ts int64) events.Attachment {
	w, h := 64+g.rng.IntN(1000), 64+g.rng.IntN(1000)
	data := make([]byte, 0, 600)
	data = append(data, 0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n', 0, 0, 0, 13, 'I', 'H', 'D', 'R')
	data = binary.BigEndian.AppendUint32(data, uint32(w))
	data = binary.BigEndian.AppendUint32(data, uint32(h))
	data = append(data, 8, 6, 0, 0, 0)
	data = append(data, g.bytes(64+g.rng.IntN(400))...)
	id := randomAttachmentID(g.bytes(15)) + ".png"
	_, _ = g.e.AddAttachment(id, data)
	g.files++
	return events.Attachment{
		ContentType:     "image/png",
		Filename:        fmt.Sprintf("IMG_%04d.png", g.files),
		ID:              id,
		Size:            int64(len(data)),
		Width:           w,
		Height:          h,
		UploadTimestamp: ts - 100 - int64(g.rng.IntN(900)),
	}
}
