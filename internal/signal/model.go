package signal

import "encoding/json"

// Conventions for every struct in this file (reference §3, §9):
//   - JSON null, a missing key and the zero value decode alike for strings
//     (""), booleans (false) and Int64 (0), except where a pointer marks
//     that the difference matters (a null body, a null attachment size).
//   - Sub-objects are pointers: nil means absent or null.
//   - Lists are slices: nil means absent, null or (as signal-cli turns empty
//     lists into null) empty.
//   - Unknown keys are ignored, so newer signal-cli versions decode.
//   - Ids that can exceed int64 are json.Number.

// Exception is the wrapper's "exception" object: signal-cli failed to
// process the envelope (§3.1). Type is the Java simple class name, e.g.
// "UntrustedIdentityException"; Message is free text.
type Exception struct {
	Message string `json:"message"`
	Type    string `json:"type"`
}

// Envelope is signal-cli's JsonMessageEnvelope (§3.2). Normally exactly one
// of the sub-message pointers is set; with an exception it may carry only
// metadata.
type Envelope struct {
	// Source is the deprecated legacy id: the number if known, else the uuid.
	Source string `json:"source"`
	// SourceNumber is empty when the sender hides their number (§7 item 10).
	SourceNumber string `json:"sourceNumber"`
	// SourceUUID is the sender's ACI, lower-case and hyphenated.
	SourceUUID string `json:"sourceUuid"`
	// SourceName is a contact or profile name; display only.
	SourceName string `json:"sourceName"`
	// SourceDevice is the sender's device id; 0 when null (real ids start at 1).
	SourceDevice Int64 `json:"sourceDevice"`
	// Timestamp is the sender's sent time in ms, which is the message id used
	// by quotes, reactions, receipts, deletes and edits.
	Timestamp Int64 `json:"timestamp"`
	// ServerReceivedTimestamp and ServerDeliveredTimestamp are the Signal
	// server's times in ms (signal-cli 0.13.8 and later); they differ between
	// redeliveries, so they are not part of a frame's Identity.
	ServerReceivedTimestamp  Int64 `json:"serverReceivedTimestamp"`
	ServerDeliveredTimestamp Int64 `json:"serverDeliveredTimestamp"`

	DataMessage    *DataMessage    `json:"dataMessage"`
	EditMessage    *EditMessage    `json:"editMessage"`
	StoryMessage   *StoryMessage   `json:"storyMessage"`
	SyncMessage    *SyncMessage    `json:"syncMessage"`
	CallMessage    *CallMessage    `json:"callMessage"`
	ReceiptMessage *ReceiptMessage `json:"receiptMessage"`
	TypingMessage  *TypingMessage  `json:"typingMessage"`
}

// DataMessage is signal-cli's JsonDataMessage (§3.3).
type DataMessage struct {
	// Timestamp equals the envelope timestamp for ordinary messages.
	Timestamp Int64 `json:"timestamp"`
	// Message is the body; nil when JSON null (reactions, deletes, stickers
	// without text, profile-key and group updates). Mentions appear in it as
	// U+FFFC placeholders.
	Message *string `json:"message"`
	// ExpiresInSeconds is the disappearing-message timer; 0 is off.
	ExpiresInSeconds Int64 `json:"expiresInSeconds"`
	// IsExpirationUpdate is true when the message only changes the timer.
	// signal-cli before v0.13.21 omits it (decodes as false).
	IsExpirationUpdate bool `json:"isExpirationUpdate"`
	ViewOnce           bool `json:"viewOnce"`

	Reaction     *Reaction     `json:"reaction"`
	Quote        *Quote        `json:"quote"`
	Payment      *Payment      `json:"payment"`
	Mentions     []Mention     `json:"mentions"`
	Previews     []Preview     `json:"previews"`
	Attachments  []Attachment  `json:"attachments"`
	Sticker      *Sticker      `json:"sticker"`
	RemoteDelete *RemoteDelete `json:"remoteDelete"`
	// Contacts are shared contact cards, kept as raw JSON because a bot
	// rarely needs them and their shape is large; nil when absent or null.
	Contacts      json.RawMessage `json:"contacts"`
	PollCreate    *PollCreate     `json:"pollCreate"`
	PollVote      *PollVote       `json:"pollVote"`
	PollTerminate *PollTerminate  `json:"pollTerminate"`
	TextStyles    []TextStyle     `json:"textStyles"`
	GroupInfo     *GroupInfo      `json:"groupInfo"`
	StoryContext  *StoryContext   `json:"storyContext"`
	PinMessage    *TargetMessage  `json:"pinMessage"`
	UnpinMessage  *TargetMessage  `json:"unpinMessage"`
	AdminDelete   *TargetMessage  `json:"adminDelete"`
}

// Text returns the body, or "" when it is null.
func (d *DataMessage) Text() string {
	if d == nil || d.Message == nil {
		return ""
	}
	return *d.Message
}

// Reaction is an emoji reaction to the message (TargetAuthor*,
// TargetSentTimestamp). IsRemove marks the removal of an earlier reaction.
type Reaction struct {
	Emoji string `json:"emoji"`
	// TargetAuthor is the deprecated legacy id (number, else uuid).
	TargetAuthor        string `json:"targetAuthor"`
	TargetAuthorNumber  string `json:"targetAuthorNumber"`
	TargetAuthorUUID    string `json:"targetAuthorUuid"`
	TargetSentTimestamp Int64  `json:"targetSentTimestamp"`
	IsRemove            bool   `json:"isRemove"`
}

// Quote is the message being replied to. ID is its sent timestamp.
type Quote struct {
	ID Int64 `json:"id"`
	// Author is the deprecated legacy id (number, else uuid).
	Author       string `json:"author"`
	AuthorNumber string `json:"authorNumber"`
	AuthorUUID   string `json:"authorUuid"`
	// Text is nil when JSON null.
	Text        *string            `json:"text"`
	Attachments []QuotedAttachment `json:"attachments"`
	Mentions    []Mention          `json:"mentions"`
	TextStyles  []TextStyle        `json:"textStyles"`
}

// QuotedAttachment describes an attachment of a quoted message. It carries
// no id (the Python original required one and dropped such messages, seed
// §10).
type QuotedAttachment struct {
	ContentType string      `json:"contentType"`
	Filename    string      `json:"filename"`
	Thumbnail   *Attachment `json:"thumbnail"`
}

// Payment is a payment notification. Receipt is base64 (Java byte[]).
type Payment struct {
	Note    string `json:"note"`
	Receipt string `json:"receipt"`
}

// Mention marks a user at [Start, Start+Length) of the body, in UTF-16 code
// units; the body holds U+FFFC there. Number is empty for users who hide it,
// which must not drop the message (seed §9 item 3).
type Mention struct {
	// Name is the deprecated legacy id (number, else uuid), not a display name.
	Name   string `json:"name"`
	Number string `json:"number"`
	UUID   string `json:"uuid"`
	Start  Int64  `json:"start"`
	Length Int64  `json:"length"`
}

// Preview is a link preview.
type Preview struct {
	URL         string      `json:"url"`
	Title       string      `json:"title"`
	Description string      `json:"description"`
	Image       *Attachment `json:"image"`
}

// Attachment is a received attachment. ID is the file name to fetch with
// GET /v1/attachments/{id} (§3.3); it is reported even when the file was not
// downloaded. Nullable numbers are pointers because 0 is a plausible value.
type Attachment struct {
	ContentType     string `json:"contentType"`
	Filename        string `json:"filename"`
	ID              string `json:"id"`
	Size            *Int64 `json:"size"`
	Width           *Int64 `json:"width"`
	Height          *Int64 `json:"height"`
	Caption         string `json:"caption"`
	UploadTimestamp *Int64 `json:"uploadTimestamp"`
}

// Sticker identifies a sticker; PackID is hex.
type Sticker struct {
	PackID    string `json:"packId"`
	StickerID Int64  `json:"stickerId"`
}

// RemoteDelete deletes the sender's own earlier message sent at Timestamp.
type RemoteDelete struct {
	Timestamp Int64 `json:"timestamp"`
}

// PollCreate starts a poll.
type PollCreate struct {
	Question      string   `json:"question"`
	AllowMultiple bool     `json:"allowMultiple"`
	Options       []string `json:"options"`
}

// PollVote is a vote on the poll created by Author* at TargetSentTimestamp.
type PollVote struct {
	// Author is the deprecated legacy id of the poll's author.
	Author              string  `json:"author"`
	AuthorNumber        string  `json:"authorNumber"`
	AuthorUUID          string  `json:"authorUuid"`
	TargetSentTimestamp Int64   `json:"targetSentTimestamp"`
	OptionIndexes       []Int64 `json:"optionIndexes"`
	VoteCount           Int64   `json:"voteCount"`
}

// PollTerminate closes the sender's poll created at TargetSentTimestamp.
type PollTerminate struct {
	TargetSentTimestamp Int64 `json:"targetSentTimestamp"`
}

// TextStyle styles [Start, Start+Length) of the body, in UTF-16 code units.
// Style is BOLD, ITALIC, SPOILER, STRIKETHROUGH or MONOSPACE.
type TextStyle struct {
	Style  string `json:"style"`
	Start  Int64  `json:"start"`
	Length Int64  `json:"length"`
}

// GroupInfo names the group a data message belongs to. GroupID is the
// internal id (standard base64 of 32 bytes); convert it with GroupRESTID
// before using it in any REST call (§6). Type is "DELIVER" for chat content
// and "UPDATE" for group changes.
type GroupInfo struct {
	GroupID   string `json:"groupId"`
	GroupName string `json:"groupName"`
	Revision  Int64  `json:"revision"`
	Type      string `json:"type"`
}

// Group info types (GroupInfo.Type).
const (
	GroupDeliver = "DELIVER"
	GroupUpdate  = "UPDATE"
)

// StoryContext marks a data message as a reply to the story sent at
// SentTimestamp by Author*.
type StoryContext struct {
	AuthorNumber  string `json:"authorNumber"`
	AuthorUUID    string `json:"authorUuid"`
	SentTimestamp Int64  `json:"sentTimestamp"`
}

// TargetMessage is the shared shape of pinMessage, unpinMessage and
// adminDelete (signal-cli 0.14): they act on the message sent at
// TargetSentTimestamp by TargetAuthor*. PinDurationSeconds is only set for
// pins.
type TargetMessage struct {
	// TargetAuthor is the deprecated legacy id (number, else uuid).
	TargetAuthor        string `json:"targetAuthor"`
	TargetAuthorNumber  string `json:"targetAuthorNumber"`
	TargetAuthorUUID    string `json:"targetAuthorUuid"`
	TargetSentTimestamp Int64  `json:"targetSentTimestamp"`
	PinDurationSeconds  Int64  `json:"pinDurationSeconds"`
}

// EditMessage replaces the text of the sender's earlier message sent at
// TargetSentTimestamp with DataMessage. It sits on the envelope, not inside
// dataMessage (seed §9 item 2).
type EditMessage struct {
	TargetSentTimestamp Int64        `json:"targetSentTimestamp"`
	DataMessage         *DataMessage `json:"dataMessage"`
}

// SyncMessage is an event from the account's own other devices (§3.5). All
// fields nil is the "syncMessage":{} form that other sync kinds produce.
type SyncMessage struct {
	SentMessage      *SentMessage      `json:"sentMessage"`
	SentStoryMessage *SentStoryMessage `json:"sentStoryMessage"`
	BlockedNumbers   []string          `json:"blockedNumbers"`
	// BlockedGroupIDs are internal group ids.
	BlockedGroupIDs []string      `json:"blockedGroupIds"`
	ReadMessages    []ReadMessage `json:"readMessages"`
	// Type is CONTACTS_SYNC, GROUPS_SYNC or REQUEST_SYNC.
	Type string `json:"type"`
}

// IsEmpty reports whether the sync message carries nothing this model knows
// (true for nil).
func (s *SyncMessage) IsEmpty() bool {
	return s == nil || s.SentMessage == nil && s.SentStoryMessage == nil && s.BlockedNumbers == nil &&
		s.BlockedGroupIDs == nil && s.ReadMessages == nil && s.Type == ""
}

// SentMessage is a message the account sent from another device. signal-cli
// flattens the data message's fields into it (@JsonUnwrapped), so they are
// promoted from the embedded DataMessage. The destination fields are empty
// for group sends, where GroupInfo (or EditMessage's GroupInfo) names the
// group. An edit sync carries EditMessage and no data fields.
type SentMessage struct {
	// Destination is the deprecated legacy id (number, else uuid).
	Destination       string       `json:"destination"`
	DestinationNumber string       `json:"destinationNumber"`
	DestinationUUID   string       `json:"destinationUuid"`
	EditMessage       *EditMessage `json:"editMessage"`
	DataMessage
}

// SentStoryMessage is a story the account posted from another device, with
// the story fields flattened in.
type SentStoryMessage struct {
	DestinationNumber string `json:"destinationNumber"`
	DestinationUUID   string `json:"destinationUuid"`
	StoryMessage
}

// ReadMessage says the account read, on another device, the message sent at
// Timestamp by Sender*.
type ReadMessage struct {
	// Sender is the deprecated legacy id (number, else uuid).
	Sender       string `json:"sender"`
	SenderNumber string `json:"senderNumber"`
	SenderUUID   string `json:"senderUuid"`
	Timestamp    Int64  `json:"timestamp"`
}

// ReceiptMessage acknowledges our messages whose sent timestamps are listed
// in Timestamps (§3.4). Exactly one flag is normally true.
type ReceiptMessage struct {
	When       Int64   `json:"when"`
	IsDelivery bool    `json:"isDelivery"`
	IsRead     bool    `json:"isRead"`
	IsViewed   bool    `json:"isViewed"`
	Timestamps []Int64 `json:"timestamps"`
}

// TypingMessage is a typing indicator. GroupID (internal) is set only inside
// a group. Action is STARTED or STOPPED.
type TypingMessage struct {
	Action    string `json:"action"`
	Timestamp Int64  `json:"timestamp"`
	GroupID   string `json:"groupId"`
}

// CallMessage is call signalling (§3.6). Call ids are unsigned 64-bit and
// may exceed int64, hence json.Number; opaque payloads are base64.
type CallMessage struct {
	OfferMessage      *CallOffer      `json:"offerMessage"`
	AnswerMessage     *CallAnswer     `json:"answerMessage"`
	BusyMessage       *CallBusy       `json:"busyMessage"`
	HangupMessage     *CallHangup     `json:"hangupMessage"`
	IceUpdateMessages []CallIceUpdate `json:"iceUpdateMessages"`
}

// CallOffer offers a call.
type CallOffer struct {
	ID     json.Number `json:"id"`
	Type   string      `json:"type"`
	Opaque string      `json:"opaque"`
}

// CallAnswer answers a call.
type CallAnswer struct {
	ID     json.Number `json:"id"`
	Opaque string      `json:"opaque"`
}

// CallBusy declines a call as busy.
type CallBusy struct {
	ID json.Number `json:"id"`
}

// CallHangup ends a call.
type CallHangup struct {
	ID       json.Number `json:"id"`
	Type     string      `json:"type"`
	DeviceID Int64       `json:"deviceId"`
}

// CallIceUpdate carries ICE candidates.
type CallIceUpdate struct {
	ID     json.Number `json:"id"`
	Opaque string      `json:"opaque"`
}

// StoryMessage is a story posted by the sender (§3.6). GroupID (internal) is
// set for group stories.
type StoryMessage struct {
	AllowsReplies  bool            `json:"allowsReplies"`
	GroupID        string          `json:"groupId"`
	FileAttachment *Attachment     `json:"fileAttachment"`
	TextAttachment *TextAttachment `json:"textAttachment"`
}

// TextAttachment is the content of a text story. Colors are hex strings.
type TextAttachment struct {
	Text                string    `json:"text"`
	Style               string    `json:"style"`
	TextForegroundColor string    `json:"textForegroundColor"`
	TextBackgroundColor string    `json:"textBackgroundColor"`
	Preview             *Preview  `json:"preview"`
	BackgroundGradient  *Gradient `json:"backgroundGradient"`
	BackgroundColor     string    `json:"backgroundColor"`
}

// Gradient is a text story background.
type Gradient struct {
	StartColor string    `json:"startColor"`
	EndColor   string    `json:"endColor"`
	Colors     []string  `json:"colors"`
	Positions  []float64 `json:"positions"`
	Angle      Int64     `json:"angle"`
}
