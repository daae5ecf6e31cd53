package signal

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
)

// GroupRESTPrefix starts every REST group id (§6).
const GroupRESTPrefix = "group."

// groupIDBytes is the length of a GroupV2 identifier.
const groupIDBytes = 32

// Group id errors; GroupInternalID wraps one of them.
var (
	// ErrGroupPrefix: the id does not start with "group.".
	ErrGroupPrefix = errors.New("REST group id does not start with \"group.\"")
	// ErrGroupEncoding: a base64 layer of the id is not canonical standard
	// base64 with padding.
	ErrGroupEncoding = errors.New("group id is not standard base64")
	// ErrGroupSize: the inner layer does not decode to exactly 32 bytes.
	ErrGroupSize = errors.New("group id does not decode to 32 bytes")
)

// GroupRESTID converts an internal group id, as found in received JSON
// (groupInfo.groupId, typingMessage.groupId, storyMessage.groupId), to the
// REST id that every REST input expects: "group." + standard base64 of the
// internal id's ASCII bytes (§6). It does not validate; an empty id gives "".
// Sending to the internal id instead was the Python original's group-reply
// bug (seed §9 item 1).
func GroupRESTID(internal string) string {
	if internal == "" {
		return ""
	}
	return GroupRESTPrefix + base64.StdEncoding.EncodeToString([]byte(internal))
}

// GroupInternalID converts a REST group id back to the internal id and
// validates it the way the REST API does (§4.1): the "group." prefix, two
// layers of standard padded base64, and exactly 32 bytes after the second
// decode. Both layers must be canonical (re-encoding gives the input back),
// which also rejects the line breaks Go's decoder would skip. Error texts
// name the problem but not the id.
func GroupInternalID(rest string) (string, error) {
	outer, ok := strings.CutPrefix(rest, GroupRESTPrefix)
	if !ok {
		return "", fmt.Errorf("signal: group id: %w; pass the REST id (group.<base64>), not the internal id from received JSON", ErrGroupPrefix)
	}
	if outer == "" {
		return "", fmt.Errorf("signal: group id: %w: nothing follows the prefix", ErrGroupEncoding)
	}
	internal, err := strictBase64(outer)
	if err != nil {
		return "", fmt.Errorf("signal: group id: %w: outer layer (the REST encoding): %v", ErrGroupEncoding, err)
	}
	raw, err := strictBase64(string(internal))
	if err != nil {
		return "", fmt.Errorf("signal: group id: %w: inner layer (the internal id): %v", ErrGroupEncoding, err)
	}
	if len(raw) != groupIDBytes {
		return "", fmt.Errorf("signal: group id: %w: got %d bytes", ErrGroupSize, len(raw))
	}
	return string(internal), nil
}

// ValidateGroupInternalID checks that internal is canonical standard base64
// of exactly 32 bytes, the form signal-cli writes.
func ValidateGroupInternalID(internal string) error {
	raw, err := strictBase64(internal)
	if err != nil {
		return fmt.Errorf("signal: group id: %w: %v", ErrGroupEncoding, err)
	}
	if len(raw) != groupIDBytes {
		return fmt.Errorf("signal: group id: %w: got %d bytes", ErrGroupSize, len(raw))
	}
	return nil
}

func strictBase64(s string) ([]byte, error) {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, err // "illegal base64 data at input byte N": no content
	}
	if base64.StdEncoding.EncodeToString(b) != s {
		return nil, errors.New("not canonical (line breaks, or non-zero padding bits)")
	}
	return b, nil
}

// Sender identifies who sent a frame. Fields are empty when unknown.
type Sender struct {
	// UUID is the sender's ACI, the stable key for a person (§7 item 10).
	UUID string
	// Number is the E.164 number; empty when the sender hides it.
	Number string
	// Legacy is the deprecated envelope.source (number, else uuid).
	Legacy string
	// Name is the contact or profile name; display only.
	Name string
	// Device is the sending device id; 0 when unknown.
	Device int64
}

// ID returns the most stable identifier: UUID, else Number, else Legacy.
// Compare users by it, never by a display name.
func (s Sender) ID() string {
	return firstNonEmpty(s.UUID, s.Number, s.Legacy)
}

// Recipient returns how the REST API addresses the sender: Number, else
// UUID, else Legacy (§6: numbers can be hidden, UUIDs work everywhere).
func (s Sender) Recipient() string {
	return firstNonEmpty(s.Number, s.UUID, s.Legacy)
}

// key returns the conversation key of a person.
func (s Sender) key() string {
	return personKey(s.UUID, s.Number, s.Legacy)
}

// Sender returns the frame's sender from the envelope. It is the zero value
// for frames without an envelope. For sync frames the sender is the account
// itself.
func (f *Frame) Sender() Sender {
	e := f.envelope()
	if e == nil {
		return Sender{}
	}
	return Sender{
		UUID:   e.SourceUUID,
		Number: e.SourceNumber,
		Legacy: e.Source,
		Name:   e.SourceName,
		Device: int64(e.SourceDevice),
	}
}

// Conversation is the chat a frame belongs to: the unit of ordering and
// sharding.
type Conversation struct {
	// Key is stable for the life of the chat: "g:<internal group id>",
	// "u:<lower-case uuid>" or "n:<number>"; "" when the frame has no
	// conversation (error and unknown frames, or no identifiable party).
	// A person with a uuid is always "u:", so the key does not change when
	// their number becomes visible or hidden.
	Key string
	// IsGroup is true for group chats.
	IsGroup bool
	// GroupID is the internal group id; "" for one-to-one chats.
	GroupID string
	// Recipient is the REST recipient for sending into the chat: the REST
	// group id, else the person's number, else their uuid (§6).
	Recipient string
}

// Conversation derives the frame's chat:
//   - data message, edit (by its new content), story: the group when one is
//     named (groupInfo.groupId, storyMessage.groupId), else the sender;
//   - typing: typingMessage.groupId, else the sender;
//   - sync sent message: its group (groupInfo, or the edit's groupInfo),
//     else the destination (uuid, else number, else the legacy field),
//     else the account's own chat;
//   - receipts, calls, other syncs, exceptions with an envelope: the sender;
//   - error and unknown frames, and exceptions without envelope: none.
//
// The sender is keyed by uuid, then number, then the legacy source.
func (f *Frame) Conversation() Conversation {
	e := f.envelope()
	if e == nil {
		return Conversation{}
	}
	sender := f.Sender()
	if f.Exception != nil {
		return personConversation(sender.UUID, sender.Number, sender.Legacy)
	}
	switch {
	case e.DataMessage != nil:
		if g := groupOf(e.DataMessage); g != "" {
			return groupConversation(g)
		}
	case e.EditMessage != nil:
		if g := groupOf(e.EditMessage.DataMessage); g != "" {
			return groupConversation(g)
		}
	case e.SyncMessage != nil && e.SyncMessage.SentMessage != nil:
		s := e.SyncMessage.SentMessage
		if g := groupOf(&s.DataMessage); g != "" {
			return groupConversation(g)
		}
		if s.EditMessage != nil {
			if g := groupOf(s.EditMessage.DataMessage); g != "" {
				return groupConversation(g)
			}
		}
		if c := personConversation(s.DestinationUUID, s.DestinationNumber, s.Destination); c.Key != "" {
			return c
		}
	case e.StoryMessage != nil:
		if g := e.StoryMessage.GroupID; g != "" {
			return groupConversation(g)
		}
	case e.TypingMessage != nil:
		if g := e.TypingMessage.GroupID; g != "" {
			return groupConversation(g)
		}
	}
	return personConversation(sender.UUID, sender.Number, sender.Legacy)
}

func groupOf(d *DataMessage) string {
	if d == nil || d.GroupInfo == nil {
		return ""
	}
	return d.GroupInfo.GroupID
}

func groupConversation(internal string) Conversation {
	return Conversation{
		Key:       "g:" + internal,
		IsGroup:   true,
		GroupID:   internal,
		Recipient: GroupRESTID(internal),
	}
}

func personConversation(uuid, number, legacy string) Conversation {
	key := personKey(uuid, number, legacy)
	if key == "" {
		return Conversation{}
	}
	return Conversation{Key: key, Recipient: firstNonEmpty(number, uuid, legacy)}
}

// personKey keys a person by uuid, else number, else the legacy id, which is
// a number or a uuid and is classified by its form.
func personKey(uuid, number, legacy string) string {
	switch {
	case uuid != "":
		return "u:" + strings.ToLower(uuid)
	case number != "":
		return "n:" + number
	case legacy == "":
		return ""
	case looksLikeUUID(legacy):
		return "u:" + strings.ToLower(legacy)
	default:
		return "n:" + legacy
	}
}

// looksLikeUUID matches the 8-4-4-4-12 hex form.
func looksLikeUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
				return false
			}
		}
	}
	return true
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

// ReplyRecipient returns the /v2/send recipient that answers into the
// frame's chat (§6): "group."+base64(internal id) for groups, the sender's
// number else uuid for one-to-one chats, and for a sync sent message its
// destination number else uuid, or its group. Typing and reactions use the
// same recipient. It is "" for frames without a conversation.
func (f *Frame) ReplyRecipient() string {
	return f.Conversation().Recipient
}

// ReceiptRecipient returns the recipient of a read or viewed receipt for the
// frame: always the individual sender (number, else uuid), even in a group
// (§6, §4.3). It is "" for frames without a sender.
func (f *Frame) ReceiptRecipient() string {
	return f.Sender().Recipient()
}

// MessageRef points at one message: its author and sent timestamp, the
// message identity of §6.
type MessageRef struct {
	// Author is the REST form of the author: number, else uuid (what
	// target_author and quote_author expect).
	Author       string
	AuthorUUID   string
	AuthorNumber string
	// Timestamp is the message's sent timestamp (its id).
	Timestamp int64
}

func newRef(uuid, number, legacy string, ts int64) (MessageRef, bool) {
	author := firstNonEmpty(number, uuid, legacy)
	if author == "" || ts == 0 {
		return MessageRef{}, false
	}
	return MessageRef{Author: author, AuthorUUID: uuid, AuthorNumber: number, Timestamp: ts}, true
}

// QuoteRef is what /v2/send needs to quote the frame's message in a reply:
// quote_timestamp, quote_author, quote_message and quote_mentions.
type QuoteRef struct {
	MessageRef
	// Text is the quoted message's body, U+FFFC placeholders included.
	Text string
	// Mentions are the quoted message's mentions in /v2/send form.
	Mentions []OutgoingMention
}

// repliable reports whether the frame carries a message a person can quote
// or react to.
func (f *Frame) repliable() bool {
	switch f.Kind() {
	case KindMessage, KindEdit, KindSyncSent:
		return true
	case KindPoll:
		d := f.Data()
		return d != nil && d.PollCreate != nil
	}
	return false
}

// target is the frame's own message as others refer to it: the sender and
// the envelope timestamp, except that an edit keeps the identity of the
// message it edits (targetSentTimestamp), because Signal clients key quotes
// and reactions on the original sent timestamp.
func (f *Frame) target() (MessageRef, bool) {
	e := f.envelope()
	if e == nil {
		return MessageRef{}, false
	}
	ts := int64(e.Timestamp)
	if ed := f.Edit(); ed != nil && ed.TargetSentTimestamp != 0 {
		ts = int64(ed.TargetSentTimestamp)
	}
	return newRef(e.SourceUUID, e.SourceNumber, e.Source, ts)
}

// QuoteTarget returns how to quote the frame's message in a reply (§6):
// quote_timestamp = envelope.timestamp (for an edit, the edited message's
// timestamp), quote_author = sourceNumber ?? sourceUuid, quote_message = the
// body. ok is false for frames without a quotable message (anything but
// messages, edits, sync sent messages and new polls).
func (f *Frame) QuoteTarget() (QuoteRef, bool) {
	if !f.repliable() {
		return QuoteRef{}, false
	}
	ref, ok := f.target()
	if !ok {
		return QuoteRef{}, false
	}
	d := f.Data()
	q := QuoteRef{MessageRef: ref, Text: d.Text()}
	if d != nil {
		q.Mentions = OutgoingMentions(d.Mentions)
	}
	return q, true
}

// ReactionTarget returns the message to name when reacting to this frame's
// message (POST /v1/reactions: target_author and timestamp); send it to
// ReplyRecipient. ok is false when QuoteTarget's would be.
func (f *Frame) ReactionTarget() (MessageRef, bool) {
	if !f.repliable() {
		return MessageRef{}, false
	}
	return f.target()
}

// ReactedTo returns, for a reaction frame, the message that was reacted to.
func (f *Frame) ReactedTo() (MessageRef, bool) {
	d := f.Data()
	if d == nil || d.Reaction == nil {
		return MessageRef{}, false
	}
	r := d.Reaction
	return newRef(r.TargetAuthorUUID, r.TargetAuthorNumber, r.TargetAuthor, int64(r.TargetSentTimestamp))
}

// EditTarget returns, for an edit (or an edit synced from the account's
// other device), the message being edited: the sender's message sent at
// targetSentTimestamp.
func (f *Frame) EditTarget() (MessageRef, bool) {
	e := f.envelope()
	ed := f.Edit()
	if e == nil || ed == nil {
		return MessageRef{}, false
	}
	return newRef(e.SourceUUID, e.SourceNumber, e.Source, int64(ed.TargetSentTimestamp))
}

// RemoteDeleteTarget returns, for a delete, the message being deleted: for
// remoteDelete the sender's own message at remoteDelete.timestamp; for a
// group admin's adminDelete the target author's message.
func (f *Frame) RemoteDeleteTarget() (MessageRef, bool) {
	e := f.envelope()
	d := f.Data()
	if e == nil || d == nil {
		return MessageRef{}, false
	}
	if rd := d.RemoteDelete; rd != nil {
		return newRef(e.SourceUUID, e.SourceNumber, e.Source, int64(rd.Timestamp))
	}
	if ad := d.AdminDelete; ad != nil {
		return newRef(ad.TargetAuthorUUID, ad.TargetAuthorNumber, ad.TargetAuthor, int64(ad.TargetSentTimestamp))
	}
	return MessageRef{}, false
}
