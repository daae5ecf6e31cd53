package emulator

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/signal-client/signal-client/internal/emulator/events"
)

// Extra EventSpec kinds beyond the generator's.
const (
	// KindSync is a syncMessage.sentMessage from the account's own other device.
	KindSync EventKind = "sync"
	// KindException is a processing failure with metadata only.
	KindException EventKind = "exception"
)

// AttachmentSpec describes an attachment of an EventSpec; Data is stored in the emulator so
// GET /v1/attachments/{id} serves it.
type AttachmentSpec struct {
	ID          string `json:"id,omitempty"`
	ContentType string `json:"content_type,omitempty"`
	Filename    string `json:"filename,omitempty"`
	Caption     string `json:"caption,omitempty"`
	Width       int    `json:"width,omitempty"`
	Height      int    `json:"height,omitempty"`
	// Data is the content (base64 in JSON).
	Data []byte `json:"data,omitempty"`
}

// EventSpec describes one event for InjectEvent, built with the events package in the exact
// §3.8 shapes. Zero fields get sensible defaults.
type EventSpec struct {
	// Kind is text (default), command (same as text), reaction, receipt, typing, edit,
	// delete, attachment, sync or exception.
	Kind EventKind `json:"kind,omitempty"`
	// Account defaults to the first account.
	Account string `json:"account,omitempty"`
	// From is the sender; an empty UUID is derived from the number. Default: a contact
	// "Alice" +15550000002.
	From events.Contact `json:"from"`
	// Group is an internal or REST ("group.…") group id; empty for a 1:1 event. Name and
	// revision come from the emulator's group when it knows it.
	Group string `json:"group,omitempty"`
	Text  string `json:"text,omitempty"`
	// Timestamp defaults to a fresh emulator timestamp.
	Timestamp int64 `json:"timestamp,omitempty"`
	// Target is the referenced message (reaction, edit, delete).
	Target int64 `json:"target,omitempty"`
	// TargetAuthor is the reacted-to author (default the bot account).
	TargetAuthor *events.Contact `json:"target_author,omitempty"`
	Emoji        string          `json:"emoji,omitempty"`
	Remove       bool            `json:"remove,omitempty"`
	// Receipt is delivery (default), read or viewed; Timestamps are acknowledged ids.
	Receipt    events.ReceiptKind `json:"receipt,omitempty"`
	Timestamps []int64            `json:"timestamps,omitempty"`
	// Typing is STARTED (default) or STOPPED.
	Typing     string          `json:"typing,omitempty"`
	Attachment *AttachmentSpec `json:"attachment,omitempty"`
	// Destination is the 1:1 destination of a sync message.
	Destination      *events.Contact `json:"destination,omitempty"`
	ExceptionType    string          `json:"exception_type,omitempty"`
	ExceptionMessage string          `json:"exception_message,omitempty"`
}

// BuildEvent builds the frame for s without injecting it; it returns the frame and its
// envelope timestamp.
func (e *Emulator) BuildEvent(s EventSpec) ([]byte, int64, error) {
	if s.Account == "" {
		s.Account = e.cfg.Accounts[0]
	}
	if s.From.Number == "" && s.From.UUID == "" {
		s.From = events.Contact{Number: "+15550000002", UUID: "3f1c7a52-8e0b-4d1e-9a52-5a0c2b7d9e11", Name: "Alice", Device: 1}
	}
	if s.From.UUID == "" {
		s.From.UUID = AccountUUID(s.From.Number)
	}
	if s.Timestamp == 0 {
		s.Timestamp = e.clock.next()
	}
	var g *events.Group
	if s.Group != "" {
		id := s.Group
		if strings.HasPrefix(id, groupPrefix) {
			internal, err := InternalGroupID(id)
			if err != nil {
				return nil, 0, fmt.Errorf("emulator: build event: group %q is not a valid REST group id", s.Group)
			}
			id = internal
		}
		g = &events.Group{ID: id}
		e.state.mu.Lock()
		if sg, ok := e.state.group(s.Account, id); ok {
			g.Name, g.Revision = sg.Name, sg.Revision
		}
		e.state.mu.Unlock()
	}
	m := events.Meta{Account: s.Account, From: s.From, Timestamp: s.Timestamp}
	msg := events.Message{Text: s.Text, Group: g}
	switch s.Kind {
	case "", KindText, KindCommand:
		return events.DataMessage(m, msg), s.Timestamp, nil
	case KindAttachment:
		a := s.Attachment
		if a == nil {
			a = &AttachmentSpec{}
		}
		data := a.Data
		if len(data) == 0 {
			data = []byte("\x89PNG\r\n\x1a\n emulator attachment")
		}
		id, err := e.AddAttachment(a.ID, data)
		if err != nil {
			return nil, 0, err
		}
		ct := a.ContentType
		if ct == "" {
			ct, _, _ = strings.Cut(http.DetectContentType(data), ";")
		}
		msg.Attachments = []events.Attachment{{ContentType: ct, Filename: a.Filename, ID: id, Size: int64(len(data)),
			Width: a.Width, Height: a.Height, Caption: a.Caption, UploadTimestamp: s.Timestamp - 100}}
		return events.DataMessage(m, msg), s.Timestamp, nil
	case KindReaction:
		ta := events.Contact{Number: s.Account, UUID: AccountUUID(s.Account)}
		if s.TargetAuthor != nil {
			ta = *s.TargetAuthor
		}
		emoji := s.Emoji
		if emoji == "" {
			emoji = "👍"
		}
		return events.ReactionMessage(m, events.Reaction{Emoji: emoji, TargetAuthor: ta, TargetTimestamp: s.Target, Remove: s.Remove}, g), s.Timestamp, nil
	case KindReceipt:
		k := s.Receipt
		if k == "" {
			k = events.ReceiptDelivery
		}
		if k != events.ReceiptDelivery && k != events.ReceiptRead && k != events.ReceiptViewed {
			return nil, 0, fmt.Errorf("emulator: build event: unknown receipt kind %q: use delivery, read or viewed", k)
		}
		return events.ReceiptMessage(m, events.Receipt{Kind: k, Timestamps: s.Timestamps}), s.Timestamp, nil
	case KindTyping:
		action := s.Typing
		if action == "" {
			action = events.TypingStarted
		}
		gid := ""
		if g != nil {
			gid = g.ID
		}
		return events.TypingMessage(m, action, gid), s.Timestamp, nil
	case KindEdit:
		return events.EditMessage(m, s.Target, msg), s.Timestamp, nil
	case KindDelete:
		return events.RemoteDeleteMessage(m, s.Target, g), s.Timestamp, nil
	case KindSync:
		return events.SyncSentMessage(m, s.Destination, msg), s.Timestamp, nil
	case KindException:
		typ, text := s.ExceptionType, s.ExceptionMessage
		if typ == "" {
			typ = "UntrustedIdentityException"
		}
		if text == "" {
			text = "Untrusted identity key!"
		}
		return events.ExceptionMessage(m, typ, text), s.Timestamp, nil
	}
	return nil, 0, fmt.Errorf("emulator: build event: unknown kind %q", s.Kind)
}

// InjectEvent builds s and injects it; it returns the envelope timestamp and how many
// sockets accepted the frame.
func (e *Emulator) InjectEvent(s EventSpec) (int64, int, error) {
	frame, ts, err := e.BuildEvent(s)
	if err != nil {
		return 0, 0, err
	}
	account := s.Account
	if account == "" {
		account = e.cfg.Accounts[0]
	}
	return ts, e.Inject(account, frame), nil
}
