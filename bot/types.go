package bot

import (
	"github.com/signal-client/signal-client/internal/signal"
)

// Event names a kind of inbound frame that event routes (Router.On) can
// handle. The values are stable.
type Event string

// Events. EventAttachment is a message with attachments and no text; every
// other event is one of the frame kinds of the receive model.
const (
	EventMessage      Event = Event(signal.KindMessage)      // chat content (what commands match)
	EventAttachment   Event = "attachment"                   // a message with attachments and no text
	EventReaction     Event = Event(signal.KindReaction)     // an emoji reaction added or removed
	EventEdit         Event = Event(signal.KindEdit)         // an edit of an earlier message
	EventDelete       Event = Event(signal.KindRemoteDelete) // a remote delete (or a group admin's delete)
	EventReceipt      Event = Event(signal.KindReceipt)      // delivery, read or viewed receipts of the bot's messages
	EventTyping       Event = Event(signal.KindTyping)       // someone started or stopped typing
	EventGroupUpdate  Event = Event(signal.KindGroupUpdate)  // a group's members, name or settings changed
	EventSyncSent     Event = Event(signal.KindSyncSent)     // a message the bot account sent from another device
	EventPoll         Event = Event(signal.KindPoll)         // a poll was created, voted on or closed
	EventPin          Event = Event(signal.KindPin)          // a message was pinned or unpinned
	EventTimerUpdate  Event = Event(signal.KindTimerUpdate)  // the disappearing-message timer changed
	EventStory        Event = Event(signal.KindStory)        // a story was posted
	EventCall         Event = Event(signal.KindCall)         // call signalling
	EventSyncOther    Event = Event(signal.KindSyncOther)    // other syncs from the account's devices
	EventException    Event = Event(signal.KindException)    // signal-cli could not process an envelope
	EventUnknownFrame Event = Event(signal.KindUnknown)      // a frame of no known shape
)

// Sender is who sent a message. Number is empty when the sender hides it;
// compare people by ID().
type Sender struct {
	UUID   string
	Number string
	Name   string // display only
	Device int64
}

// ID is the most stable identifier: the UUID, else the number.
func (s Sender) ID() string {
	if s.UUID != "" {
		return s.UUID
	}
	return s.Number
}

// Recipient is how to address the sender directly: the number, else the UUID.
func (s Sender) Recipient() string {
	if s.Number != "" {
		return s.Number
	}
	return s.UUID
}

// Conversation is the chat a message belongs to: the unit of ordering and of
// state.
type Conversation struct {
	// Key is stable for the life of the chat ("g:<internal group id>",
	// "u:<uuid>" or "n:<number>"). It contains personal data: do not log it.
	Key     string
	IsGroup bool
	// Group is the group's REST id ("group.…", what sends take); empty for
	// one-to-one chats.
	Group string
	// GroupInternalID is the id as received JSON carries it.
	GroupInternalID string
	// Recipient is where replies go: the REST group id, else the sender's
	// number, else their UUID.
	Recipient string
}

// Mention is a mention in a received message. Start and Length count UTF-16
// code units; the text holds U+FFFC in that range.
type Mention struct {
	UUID   string
	Number string
	Name   string
	Start  int
	Length int
}

// Author is how sends address the mentioned person: number, else UUID.
func (m Mention) Author() string {
	if m.Number != "" {
		return m.Number
	}
	if m.UUID != "" {
		return m.UUID
	}
	return m.Name
}

// MentionAt is a mention in an outgoing text: Author is a number or UUID,
// Start and Length count UTF-16 code units. Build texts with mentions with
// Compose, which gets the offsets right after emoji.
type MentionAt struct {
	Author string
	Start  int
	Length int
}

// Attachment is a received attachment; download it with Context.Download.
type Attachment struct {
	ID          string
	ContentType string
	Filename    string
	Size        int64
	Width       int
	Height      int
	Caption     string
}

// MessageRef points at one message: its author (number, else UUID) and its
// sent timestamp, which is the message's id.
type MessageRef struct {
	Author       string
	AuthorUUID   string
	AuthorNumber string
	Timestamp    int64
}

// Quote is the message a received message quotes.
type Quote struct {
	MessageRef
	Text string
}

// Reaction is a received reaction: Emoji added to (or, with Removed, taken
// from) the message Target.
type Reaction struct {
	Emoji   string
	Removed bool
	Target  MessageRef
}

// Receipt acknowledges messages the bot sent (by their timestamps).
type Receipt struct {
	// Type is "delivery", "read" or "viewed".
	Type       string
	Timestamps []int64
	When       int64
}

// Sent is the result of an outgoing call.
type Sent struct {
	// Timestamp is the server timestamp of a send, edit or delete: the new
	// message's id, for later edits, deletes and matching receipts. It is 0
	// for reactions and receipts.
	Timestamp int64
	// Replayed is true when an earlier attempt at this message made the call
	// already, so it was not repeated; Timestamp is the recorded one.
	Replayed bool
	// Unknown is true when an earlier attempt's call timed out (it may or may
	// not have been delivered) and UNKNOWN_OUTCOME_POLICY=skip kept it from
	// being repeated.
	Unknown bool
}

func fromSignalMentions(ms []signal.Mention) []Mention {
	if len(ms) == 0 {
		return nil
	}
	out := make([]Mention, len(ms))
	for i, m := range ms {
		out[i] = Mention{UUID: m.UUID, Number: m.Number, Name: m.Name, Start: int(m.Start), Length: int(m.Length)}
	}
	return out
}

func fromRef(r signal.MessageRef) MessageRef {
	return MessageRef{Author: r.Author, AuthorUUID: r.AuthorUUID, AuthorNumber: r.AuthorNumber, Timestamp: r.Timestamp}
}
