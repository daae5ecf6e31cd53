// Package events builds received-message frames exactly as signal-cli serializes them
// (reference signal-cli-rest-api.md §3): the wrapper object {"envelope":…,"account":…}
// that signal-cli-rest-api writes as one websocket text frame in json-rpc mode, returns as one
// element of the poll-mode array in normal mode, and wraps in a JSON-RPC notification for the
// webhook.
//
// The builders reproduce signal-cli's Jackson output byte for byte for the shapes they cover:
// record field order, fields that are always present (and null when unknown) versus fields
// omitted when absent, numbers for timestamps, and no HTML escaping. The emulator and its
// traffic generator use them, and tests of other packages can use them to build fixtures.
package events

import (
	"bytes"
	"encoding/json"
)

// Contact identifies a Signal user the way signal-cli reports one.
type Contact struct {
	// Number is the E.164 phone number. Empty when the user hides it: sourceNumber is then
	// null and the legacy "source" field falls back to the UUID (§3.2).
	Number string `json:"number,omitempty"`
	// UUID is the ACI, lower-case and hyphenated.
	UUID string `json:"uuid,omitempty"`
	// Name is the contact or profile name; empty gives null.
	Name string `json:"name,omitempty"`
	// Device is the sender device id; 0 means 1 (the primary phone).
	Device int `json:"device,omitempty"`
}

// ID returns the legacy identifier signal-cli puts in deprecated fields such as
// envelope.source and reaction.targetAuthor: the number when known, else the UUID.
func (c Contact) ID() string {
	if c.Number != "" {
		return c.Number
	}
	return c.UUID
}

// Group describes a GroupV2 as it appears in dataMessage.groupInfo.
type Group struct {
	// ID is the internal id: standard base64 of the 32-byte group identifier (§6).
	ID string `json:"id"`
	// Name is the group name; empty gives null.
	Name string `json:"name,omitempty"`
	// Revision is the group revision.
	Revision int `json:"revision,omitempty"`
	// Type is "DELIVER" (default) for chat messages or "UPDATE" for group changes.
	Type string `json:"type,omitempty"`
}

// Meta is the envelope metadata shared by every event.
type Meta struct {
	// Account is the receiving account (the bot's number); the websocket filter compares it
	// with the path number.
	Account string
	// From is the sender.
	From Contact
	// Timestamp is the sender's sent timestamp in ms, which is the message id.
	Timestamp int64
	// ServerReceived defaults to Timestamp+10 when zero.
	ServerReceived int64
	// ServerDelivered defaults to ServerReceived+10 when zero.
	ServerDelivered int64
}

// Mention is one mention range; offsets are UTF-16 code units and the body holds U+FFFC
// at the mention position.
type Mention struct {
	Who    Contact `json:"who"`
	Start  int     `json:"start"`
	Length int     `json:"length"`
}

// Quote references an earlier message the new one replies to.
type Quote struct {
	// ID is the quoted message's sent timestamp.
	ID     int64   `json:"id"`
	Author Contact `json:"author"`
	// Text is the quoted text; empty gives null.
	Text string `json:"text,omitempty"`
}

// Attachment is one attachment as reported in dataMessage.attachments. Zero values of the
// nullable fields are serialized as null.
type Attachment struct {
	ContentType     string `json:"content_type"`
	Filename        string `json:"filename,omitempty"`
	ID              string `json:"id,omitempty"`
	Size            int64  `json:"size,omitempty"`
	Width           int    `json:"width,omitempty"`
	Height          int    `json:"height,omitempty"`
	Caption         string `json:"caption,omitempty"`
	UploadTimestamp int64  `json:"upload_timestamp,omitempty"`
}

// Sticker is a sticker reference.
type Sticker struct {
	PackID    string `json:"pack_id"`
	StickerID int    `json:"sticker_id"`
}

// Message is the content of a data message (also used for edits and sync sent messages).
type Message struct {
	// Text is the body; empty gives "message":null, as for attachment-only messages.
	Text             string
	Group            *Group
	ExpiresInSeconds int
	ViewOnce         bool
	Mentions         []Mention
	Quote            *Quote
	Attachments      []Attachment
	Sticker          *Sticker
}

// Reaction is an emoji reaction to an earlier message.
type Reaction struct {
	Emoji           string
	TargetAuthor    Contact
	TargetTimestamp int64
	Remove          bool
}

// ReceiptKind is the kind of a receipt.
type ReceiptKind string

// Receipt kinds; exactly one of the three flags is true in the frame.
const (
	ReceiptDelivery ReceiptKind = "delivery"
	ReceiptRead     ReceiptKind = "read"
	ReceiptViewed   ReceiptKind = "viewed"
)

// Receipt acknowledges messages the bot sent.
type Receipt struct {
	Kind ReceiptKind
	// When defaults to the envelope timestamp.
	When int64
	// Timestamps are the sent timestamps of the bot's messages being acknowledged.
	Timestamps []int64
}

// Typing actions.
const (
	TypingStarted = "STARTED"
	TypingStopped = "STOPPED"
)

// DataMessage builds a text, attachment, sticker or quote message (§3.8 a, b, c, g).
func DataMessage(m Meta, msg Message) []byte {
	env := newEnvelope(m)
	env.DataMessage = newDataMessage(m.Timestamp, msg)
	return encode(wrapper{Envelope: env, Account: m.Account})
}

// ReactionMessage builds a reaction (or a reaction removal) in a 1:1 chat or, when g is not
// nil, in a group (§3.8 d).
func ReactionMessage(m Meta, r Reaction, g *Group) []byte {
	env := newEnvelope(m)
	dm := newDataMessage(m.Timestamp, Message{Group: g})
	dm.Reaction = &reactionJSON{
		Emoji:               r.Emoji,
		TargetAuthor:        r.TargetAuthor.ID(),
		TargetAuthorNumber:  nullable(r.TargetAuthor.Number),
		TargetAuthorUUID:    nullable(r.TargetAuthor.UUID),
		TargetSentTimestamp: r.TargetTimestamp,
		IsRemove:            r.Remove,
	}
	env.DataMessage = dm
	return encode(wrapper{Envelope: env, Account: m.Account})
}

// ReceiptMessage builds a delivery, read or viewed receipt (§3.8 e).
func ReceiptMessage(m Meta, r Receipt) []byte {
	env := newEnvelope(m)
	when := r.When
	if when == 0 {
		when = m.Timestamp
	}
	ts := r.Timestamps
	if ts == nil {
		ts = []int64{}
	}
	env.ReceiptMessage = &receiptJSON{
		When:       when,
		IsDelivery: r.Kind == ReceiptDelivery,
		IsRead:     r.Kind == ReceiptRead,
		IsViewed:   r.Kind == ReceiptViewed,
		Timestamps: ts,
	}
	return encode(wrapper{Envelope: env, Account: m.Account})
}

// TypingMessage builds a typing indicator; groupID is the internal group id or empty for a
// 1:1 chat (§3.8 f).
func TypingMessage(m Meta, action, groupID string) []byte {
	env := newEnvelope(m)
	env.TypingMessage = &typingJSON{Action: action, Timestamp: m.Timestamp, GroupID: groupID}
	return encode(wrapper{Envelope: env, Account: m.Account})
}

// EditMessage builds an edit of the sender's earlier message sent at target (§3.8 i).
func EditMessage(m Meta, target int64, msg Message) []byte {
	env := newEnvelope(m)
	env.EditMessage = &editJSON{TargetSentTimestamp: target, DataMessage: newDataMessage(m.Timestamp, msg)}
	return encode(wrapper{Envelope: env, Account: m.Account})
}

// RemoteDeleteMessage builds a remote delete of the sender's earlier message sent at target
// (§3.8 j); g is the group for a delete inside a group.
func RemoteDeleteMessage(m Meta, target int64, g *Group) []byte {
	env := newEnvelope(m)
	dm := newDataMessage(m.Timestamp, Message{Group: g})
	dm.RemoteDelete = &remoteDeleteJSON{Timestamp: target}
	env.DataMessage = dm
	return encode(wrapper{Envelope: env, Account: m.Account})
}

// SyncSentMessage builds a syncMessage.sentMessage: a message the account owner sent from
// another device (§3.8 h). dest is the 1:1 destination, nil for a group send (msg.Group set).
func SyncSentMessage(m Meta, dest *Contact, msg Message) []byte {
	env := newEnvelope(m)
	sent := &sentJSON{dataMessageJSON: *newDataMessage(m.Timestamp, msg)}
	if dest != nil {
		id := dest.ID()
		sent.Destination = &id
		sent.DestinationNumber = nullable(dest.Number)
		sent.DestinationUUID = nullable(dest.UUID)
	}
	env.SyncMessage = &syncJSON{SentMessage: sent}
	return encode(wrapper{Envelope: env, Account: m.Account})
}

// ExceptionMessage builds a processing failure whose envelope carries only metadata
// (§3.8 k). typ is the Java simple class name, e.g. "UntrustedIdentityException".
func ExceptionMessage(m Meta, typ, message string) []byte {
	return encode(exceptionWrapper{
		Account:   m.Account,
		Exception: &exceptionJSON{Message: message, Type: typ},
		Envelope:  newEnvelope(m),
	})
}

// ErrorFrame is the frame signal-cli-rest-api writes to every socket when the daemon sends a
// notification with a JSON-RPC error (§2.2). Like gin it escapes HTML characters.
func ErrorFrame(message string) []byte {
	b, _ := json.Marshal(struct {
		Error string `json:"error"`
	}{message})
	return b
}

// Notification wraps a frame in the JSON-RPC notification line that the webhook receives:
// {"jsonrpc":"2.0","method":"receive","params":<frame>} followed by a newline (§2.4).
func Notification(frame []byte) []byte {
	var b bytes.Buffer
	b.Grow(len(frame) + 48)
	b.WriteString(`{"jsonrpc":"2.0","method":"receive","params":`)
	b.Write(frame)
	b.WriteString("}\n")
	return b.Bytes()
}

func newEnvelope(m Meta) *envelopeJSON {
	recv := m.ServerReceived
	if recv == 0 {
		recv = m.Timestamp + 10
	}
	deliv := m.ServerDelivered
	if deliv == 0 {
		deliv = recv + 10
	}
	dev := m.From.Device
	if dev == 0 {
		dev = 1
	}
	return &envelopeJSON{
		Source:                   m.From.ID(),
		SourceNumber:             nullable(m.From.Number),
		SourceUUID:               nullable(m.From.UUID),
		SourceName:               nullable(m.From.Name),
		SourceDevice:             &dev,
		Timestamp:                m.Timestamp,
		ServerReceivedTimestamp:  recv,
		ServerDeliveredTimestamp: deliv,
	}
}

func newDataMessage(ts int64, msg Message) *dataMessageJSON {
	dm := &dataMessageJSON{
		Timestamp:        ts,
		Message:          nullable(msg.Text),
		ExpiresInSeconds: msg.ExpiresInSeconds,
		ViewOnce:         msg.ViewOnce,
	}
	if msg.Quote != nil {
		dm.Quote = &quoteJSON{
			ID:           msg.Quote.ID,
			Author:       msg.Quote.Author.ID(),
			AuthorNumber: nullable(msg.Quote.Author.Number),
			AuthorUUID:   nullable(msg.Quote.Author.UUID),
			Text:         nullable(msg.Quote.Text),
			Attachments:  []quoteAttachmentJSON{},
		}
	}
	for _, mn := range msg.Mentions {
		dm.Mentions = append(dm.Mentions, mentionJSON{
			Name:   mn.Who.ID(),
			Number: nullable(mn.Who.Number),
			UUID:   nullable(mn.Who.UUID),
			Start:  mn.Start,
			Length: mn.Length,
		})
	}
	for _, a := range msg.Attachments {
		aj := attachmentJSON{
			ContentType:     a.ContentType,
			Filename:        nullable(a.Filename),
			ID:              nullable(a.ID),
			Caption:         nullable(a.Caption),
			Size:            nullableInt64(a.Size),
			Width:           nullableInt(a.Width),
			Height:          nullableInt(a.Height),
			UploadTimestamp: nullableInt64(a.UploadTimestamp),
		}
		dm.Attachments = append(dm.Attachments, aj)
	}
	if msg.Sticker != nil {
		dm.Sticker = &stickerJSON{PackID: msg.Sticker.PackID, StickerID: msg.Sticker.StickerID}
	}
	if msg.Group != nil {
		typ := msg.Group.Type
		if typ == "" {
			typ = "DELIVER"
		}
		dm.GroupInfo = &groupInfoJSON{
			GroupID:   msg.Group.ID,
			GroupName: nullable(msg.Group.Name),
			Revision:  msg.Group.Revision,
			Type:      typ,
		}
	}
	return dm
}

func nullable(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func nullableInt(v int) *int {
	if v == 0 {
		return nil
	}
	return &v
}

func nullableInt64(v int64) *int64 {
	if v == 0 {
		return nil
	}
	return &v
}

// encode serializes like Jackson: compact, no HTML escaping, no trailing newline.
func encode(v any) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		// Only plain structs of strings and numbers are encoded here, so this cannot fail.
		return nil
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
}

// The types below mirror signal-cli's Json* records; field order is record order, "A"
// fields have no omitempty (null when unknown), "O" fields have omitempty (§3).

type wrapper struct {
	Envelope *envelopeJSON `json:"envelope,omitempty"`
	Account  string        `json:"account"`
}

type exceptionWrapper struct {
	Account   string         `json:"account"`
	Exception *exceptionJSON `json:"exception"`
	Envelope  *envelopeJSON  `json:"envelope,omitempty"`
}

type exceptionJSON struct {
	Message string `json:"message"`
	Type    string `json:"type"`
}

type envelopeJSON struct {
	Source                   string           `json:"source"`
	SourceNumber             *string          `json:"sourceNumber"`
	SourceUUID               *string          `json:"sourceUuid"`
	SourceName               *string          `json:"sourceName"`
	SourceDevice             *int             `json:"sourceDevice"`
	Timestamp                int64            `json:"timestamp"`
	ServerReceivedTimestamp  int64            `json:"serverReceivedTimestamp"`
	ServerDeliveredTimestamp int64            `json:"serverDeliveredTimestamp"`
	DataMessage              *dataMessageJSON `json:"dataMessage,omitempty"`
	EditMessage              *editJSON        `json:"editMessage,omitempty"`
	SyncMessage              *syncJSON        `json:"syncMessage,omitempty"`
	ReceiptMessage           *receiptJSON     `json:"receiptMessage,omitempty"`
	TypingMessage            *typingJSON      `json:"typingMessage,omitempty"`
}

type dataMessageJSON struct {
	Timestamp          int64             `json:"timestamp"`
	Message            *string           `json:"message"`
	ExpiresInSeconds   int               `json:"expiresInSeconds"`
	IsExpirationUpdate bool              `json:"isExpirationUpdate"`
	ViewOnce           bool              `json:"viewOnce"`
	Reaction           *reactionJSON     `json:"reaction,omitempty"`
	Quote              *quoteJSON        `json:"quote,omitempty"`
	Mentions           []mentionJSON     `json:"mentions,omitempty"`
	Attachments        []attachmentJSON  `json:"attachments,omitempty"`
	Sticker            *stickerJSON      `json:"sticker,omitempty"`
	RemoteDelete       *remoteDeleteJSON `json:"remoteDelete,omitempty"`
	GroupInfo          *groupInfoJSON    `json:"groupInfo,omitempty"`
}

type reactionJSON struct {
	Emoji               string  `json:"emoji"`
	TargetAuthor        string  `json:"targetAuthor"`
	TargetAuthorNumber  *string `json:"targetAuthorNumber"`
	TargetAuthorUUID    *string `json:"targetAuthorUuid"`
	TargetSentTimestamp int64   `json:"targetSentTimestamp"`
	IsRemove            bool    `json:"isRemove"`
}

type quoteJSON struct {
	ID           int64                 `json:"id"`
	Author       string                `json:"author"`
	AuthorNumber *string               `json:"authorNumber"`
	AuthorUUID   *string               `json:"authorUuid"`
	Text         *string               `json:"text"`
	Attachments  []quoteAttachmentJSON `json:"attachments"`
}

type quoteAttachmentJSON struct {
	ContentType string  `json:"contentType"`
	Filename    *string `json:"filename"`
}

type mentionJSON struct {
	Name   string  `json:"name"`
	Number *string `json:"number"`
	UUID   *string `json:"uuid"`
	Start  int     `json:"start"`
	Length int     `json:"length"`
}

type attachmentJSON struct {
	ContentType     string  `json:"contentType"`
	Filename        *string `json:"filename"`
	ID              *string `json:"id"`
	Size            *int64  `json:"size"`
	Width           *int    `json:"width"`
	Height          *int    `json:"height"`
	Caption         *string `json:"caption"`
	UploadTimestamp *int64  `json:"uploadTimestamp"`
}

type stickerJSON struct {
	PackID    string `json:"packId"`
	StickerID int    `json:"stickerId"`
}

type remoteDeleteJSON struct {
	Timestamp int64 `json:"timestamp"`
}

type groupInfoJSON struct {
	GroupID   string  `json:"groupId"`
	GroupName *string `json:"groupName"`
	Revision  int     `json:"revision"`
	Type      string  `json:"type"`
}

type editJSON struct {
	TargetSentTimestamp int64            `json:"targetSentTimestamp"`
	DataMessage         *dataMessageJSON `json:"dataMessage"`
}

type syncJSON struct {
	SentMessage *sentJSON `json:"sentMessage,omitempty"`
}

// sentJSON flattens the data message fields after the destination fields, like Jackson's
// @JsonUnwrapped.
type sentJSON struct {
	Destination       *string `json:"destination"`
	DestinationNumber *string `json:"destinationNumber"`
	DestinationUUID   *string `json:"destinationUuid"`
	dataMessageJSON
}

type receiptJSON struct {
	When       int64   `json:"when"`
	IsDelivery bool    `json:"isDelivery"`
	IsRead     bool    `json:"isRead"`
	IsViewed   bool    `json:"isViewed"`
	Timestamps []int64 `json:"timestamps"`
}

type typingJSON struct {
	Action    string `json:"action"`
	Timestamp int64  `json:"timestamp"`
	GroupID   string `json:"groupId,omitempty"`
}
