package bottest

import (
	"crypto/sha256"
	"encoding/base64"
	"strings"

	"github.com/signal-client/signal-client/bot"
	"github.com/signal-client/signal-client/internal/emulator/events"
	"github.com/signal-client/signal-client/internal/signal"
)

// Person is someone who writes to the bot. A Person without Number hides
// their number (signal-cli then reports only the UUID).
type Person struct {
	Number string
	UUID   string
	Name   string
}

// People to write test messages with.
var (
	Alice = Person{Number: "+15550000002", UUID: "3f1c7a52-8e0b-4d1e-9a52-5a0c2b7d9e11", Name: "Alice"}
	Bob   = Person{Number: "+15550000003", UUID: "7d0e9c14-2b6a-4f3e-8c1d-0a9b8c7d6e5f", Name: "Bob"}
	// Hidden hides her number: replies go to her UUID.
	Hidden = Person{UUID: "c0ffee00-1234-4abc-9def-00000000beef", Name: "Hidden"}
)

func (p Person) contact() events.Contact {
	return events.Contact{Number: p.Number, UUID: p.UUID, Name: p.Name, Device: 1}
}

// ID is the person's UUID, else their number.
func (p Person) ID() string {
	if p.UUID != "" {
		return p.UUID
	}
	return p.Number
}

// Recipient is how the bot addresses them: number, else UUID.
func (p Person) Recipient() string {
	if p.Number != "" {
		return p.Number
	}
	return p.UUID
}

// Conversation is the key of the one-to-one chat with them.
func (p Person) Conversation() string {
	if p.UUID != "" {
		return "u:" + strings.ToLower(p.UUID)
	}
	return "n:" + p.Number
}

// Group is a group chat.
type Group struct {
	// ID is the internal id (as received JSON carries it).
	ID   string
	Name string
}

// NewGroup returns a group with a stable id derived from name.
func NewGroup(name string) Group {
	sum := sha256.Sum256([]byte(name))
	return Group{ID: base64.StdEncoding.EncodeToString(sum[:]), Name: name}
}

// RESTID is the id sends use ("group.…").
func (g Group) RESTID() string { return signal.GroupRESTID(g.ID) }

// Conversation is the group chat's key.
func (g Group) Conversation() string { return "g:" + g.ID }

// Msg is an inbound event under construction. Build one with Text,
// Reaction, Edit, Delete, Receipt, Typing, GroupUpdate or SyncSent and
// refine it with the methods below; Kit.Run delivers it.
type Msg struct {
	kind      string
	from      Person
	group     *Group
	text      string
	mentions  []events.Mention
	quote     *events.Quote
	atts      []events.Attachment
	attData   map[string][]byte
	target    int64
	targetBy  Person
	emoji     string
	remove    bool
	receipt   events.ReceiptKind
	stamps    []int64
	started   bool
	dest      *Person
	timestamp int64
	mentionMe bool
}

// Text is a chat message from p.
func Text(p Person, text string) *Msg { return &Msg{kind: "text", from: p, text: text} }

// Reaction is p reacting with emoji to the message author sent at ts.
func Reaction(p Person, emoji string, author Person, ts int64) *Msg {
	return &Msg{kind: "reaction", from: p, emoji: emoji, targetBy: author, target: ts}
}

// Unreaction is p removing a reaction.
func Unreaction(p Person, emoji string, author Person, ts int64) *Msg {
	m := Reaction(p, emoji, author, ts)
	m.remove = true
	return m
}

// Edit is p editing their message sent at ts to text.
func Edit(p Person, ts int64, text string) *Msg {
	return &Msg{kind: "edit", from: p, target: ts, text: text}
}

// Delete is p deleting their message sent at ts for everyone.
func Delete(p Person, ts int64) *Msg { return &Msg{kind: "delete", from: p, target: ts} }

// Receipt is p acknowledging the bot's messages sent at timestamps; kind is
// "delivery", "read" or "viewed".
func Receipt(p Person, kind string, timestamps ...int64) *Msg {
	return &Msg{kind: "receipt", from: p, receipt: events.ReceiptKind(kind), stamps: timestamps}
}

// Typing is p starting (or stopping) to type.
func Typing(p Person, started bool) *Msg { return &Msg{kind: "typing", from: p, started: started} }

// GroupUpdate is p changing group g.
func GroupUpdate(p Person, g Group) *Msg { return &Msg{kind: "group_update", from: p, group: &g} }

// SyncSent is a message the bot account sent to p from another of its devices.
func SyncSent(to Person, text string) *Msg { return &Msg{kind: "sync", dest: &to, text: text} }

// In puts the message in group g.
func (m *Msg) In(g Group) *Msg { m.group = &g; return m }

// MentioningBot puts a mention of the bot in front of the text ("@bot !ping").
func (m *Msg) MentioningBot() *Msg { m.mentionMe = true; return m }

// Mentioning appends a mention of p to the text.
func (m *Msg) Mentioning(p Person) *Msg {
	m.mentions = append(m.mentions, events.Mention{Who: p.contact(), Start: signal.UTF16Len(m.text), Length: 1})
	m.text += signal.MentionPlaceholder
	return m
}

// Quoting makes the message quote author's message sent at ts.
func (m *Msg) Quoting(author Person, ts int64, text string) *Msg {
	m.quote = &events.Quote{ID: ts, Author: author.contact(), Text: text}
	return m
}

// WithAttachment adds an attachment whose content Context.Download serves.
func (m *Msg) WithAttachment(id, contentType, filename string, data []byte) *Msg {
	m.atts = append(m.atts, events.Attachment{ID: id, ContentType: contentType, Filename: filename, Size: int64(len(data))})
	if m.attData == nil {
		m.attData = map[string][]byte{}
	}
	m.attData[id] = data
	return m
}

// At sets the message's sent timestamp (default: the kit's clock).
func (m *Msg) At(ts int64) *Msg { m.timestamp = ts; return m }

// frame builds the JSON signal-cli would send.
func (m *Msg) frame(self bot.Self, account string, ts int64) []byte {
	meta := events.Meta{Account: account, From: m.from.contact(), Timestamp: ts}
	var g *events.Group
	if m.group != nil {
		g = &events.Group{ID: m.group.ID, Name: m.group.Name}
	}
	text := m.text
	mentions := m.mentions
	if m.mentionMe {
		me := events.Contact{Number: self.Number, UUID: self.UUID}
		shifted := []events.Mention{{Who: me, Start: 0, Length: 1}}
		for _, x := range mentions {
			x.Start += 2
			shifted = append(shifted, x)
		}
		mentions = shifted
		text = signal.MentionPlaceholder + " " + text
	}
	msg := events.Message{Text: text, Group: g, Mentions: mentions, Quote: m.quote, Attachments: m.atts}
	switch m.kind {
	case "reaction":
		return events.ReactionMessage(meta, events.Reaction{Emoji: m.emoji, TargetAuthor: m.targetBy.contact(), TargetTimestamp: m.target, Remove: m.remove}, g)
	case "edit":
		return events.EditMessage(meta, m.target, msg)
	case "delete":
		return events.RemoteDeleteMessage(meta, m.target, g)
	case "receipt":
		return events.ReceiptMessage(meta, events.Receipt{Kind: m.receipt, Timestamps: m.stamps})
	case "typing":
		action := events.TypingStopped
		if m.started {
			action = events.TypingStarted
		}
		gid := ""
		if g != nil {
			gid = g.ID
		}
		return events.TypingMessage(meta, action, gid)
	case "group_update":
		g.Type = "UPDATE"
		return events.DataMessage(meta, events.Message{Group: g})
	case "sync":
		meta.From = events.Contact{Number: self.Number, UUID: self.UUID, Device: 2}
		var dest *events.Contact
		if m.dest != nil && m.group == nil {
			c := m.dest.contact()
			dest = &c
		}
		return events.SyncSentMessage(meta, dest, msg)
	}
	return events.DataMessage(meta, msg)
}
