package rest

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Text modes for SendRequest.TextMode.
const (
	// TextModeNormal sends the text as is.
	TextModeNormal = "normal"
	// TextModeStyled interprets *italic*, **bold**, ~strike~, ||spoiler|| and `mono`.
	TextModeStyled = "styled"
)

// Receipt types for Receipt.ReceiptType.
const (
	// ReceiptRead marks a message as read.
	ReceiptRead = "read"
	// ReceiptViewed marks a message (typically view-once media) as viewed. Normal/native mode
	// sends a read receipt instead (reference §4.3).
	ReceiptViewed = "viewed"
)

// Values of About.Mode. json-rpc-native reports "json-rpc" too.
const (
	// ModeNormal runs one signal-cli process per call; receive by polling.
	ModeNormal = "normal"
	// ModeNative is normal mode with the native binary; receive by polling.
	ModeNative = "native"
	// ModeJSONRPC runs a signal-cli daemon; receive over the websocket.
	ModeJSONRPC = "json-rpc"
)

// Mention marks a range of the message as a mention. Offsets are in UTF-16 code units; the
// range usually covers a U+FFFC placeholder.
type Mention struct {
	// Start is the UTF-16 offset of the range.
	Start int64 `json:"start"`
	// Length is the UTF-16 length of the range.
	Length int64 `json:"length"`
	// Author is the mentioned user's number or ACI UUID.
	Author string `json:"author"`
}

// LinkPreview is a link preview for SendRequest. The server requires a non-empty https URL
// that also appears in the message, and a non-empty title.
type LinkPreview struct {
	// URL must start with https:// and be contained in the message.
	URL string `json:"url"`
	// Title must not be empty.
	Title string `json:"title"`
	// Description is optional.
	Description string `json:"description,omitempty"`
	// Base64Thumbnail is an optional image in the same forms as attachments.
	Base64Thumbnail string `json:"base64_thumbnail,omitempty"`
}

// SendRequest is the body of POST /v2/send, without the account number, which the client adds.
// Field names and meanings follow the reference (§4.1).
type SendRequest struct {
	// Recipients holds E.164 numbers, ACI UUIDs, usernames, or exactly one REST group id
	// ("group.<id>"); groups, numbers and usernames cannot be mixed.
	Recipients []string `json:"recipients"`
	// Message is the body; it may be empty for sticker- or attachment-only messages.
	Message string `json:"message"`
	// Base64Attachments holds attachments, best built with AttachmentData.
	Base64Attachments []string `json:"base64_attachments,omitempty"`
	// Sticker is "<packIdHex>:<stickerId>" of an installed pack.
	Sticker string `json:"sticker,omitempty"`
	// Mentions in Message.
	Mentions []Mention `json:"mentions,omitempty"`
	// QuoteTimestamp is the id (sent timestamp) of the quoted message; 0 means no quote.
	QuoteTimestamp int64 `json:"quote_timestamp,omitempty"`
	// QuoteAuthor is the quoted author's number or UUID.
	QuoteAuthor string `json:"quote_author,omitempty"`
	// QuoteMessage is the quoted text shown in the bubble.
	QuoteMessage string `json:"quote_message,omitempty"`
	// QuoteMentions are the mentions inside QuoteMessage.
	QuoteMentions []Mention `json:"quote_mentions,omitempty"`
	// TextMode is TextModeNormal or TextModeStyled; empty means the server default.
	TextMode string `json:"text_mode,omitempty"`
	// EditTimestamp, when set, edits the bot's earlier message with that timestamp.
	EditTimestamp int64 `json:"edit_timestamp,omitempty"`
	// NotifySelf controls --notify-self; nil means the server default, which is true.
	NotifySelf *bool `json:"notify_self,omitempty"`
	// LinkPreview is an optional link preview.
	LinkPreview *LinkPreview `json:"link_preview,omitempty"`
	// ViewOnce makes the attachments view-once; it needs at least one attachment.
	ViewOnce bool `json:"view_once,omitempty"`
}

// sendBody is the wire form: the account number first, then the request fields.
type sendBody struct {
	Number string `json:"number"`
	SendRequest
}

// RecipientError is one failed recipient of a partially failed send (HEAD only; 0.100 hides
// partial failures in json-rpc mode).
type RecipientError struct {
	// Number is the recipient's number, if known.
	Number string `json:"number"`
	// UUID is the recipient's ACI UUID, if known.
	UUID string `json:"uuid"`
	// Reason is one of NETWORK_FAILURE, UNREGISTERED_FAILURE, IDENTITY_FAILURE,
	// RATE_LIMIT_FAILURE, INVALID_PRE_KEY_FAILURE.
	Reason string `json:"reason"`
}

// SendResult is the outcome of a successful send.
type SendResult struct {
	// Timestamp is the new message's id: keep it for edits, deletes and matching receipts.
	Timestamp int64
	// RecipientErrors lists recipients the message did not reach, when the server says so.
	RecipientErrors []RecipientError
}

// Reaction is the body of POST and DELETE /v1/reactions/{number}.
type Reaction struct {
	// Recipient is the conversation: the sender for 1:1, "group.<id>" for groups.
	Recipient string `json:"recipient"`
	// Reaction is the emoji. When removing, empty means the server's default "👍".
	Reaction string `json:"reaction"`
	// TargetAuthor is the number or UUID of the reacted-to message's author.
	TargetAuthor string `json:"target_author"`
	// Timestamp is the reacted-to message's id.
	Timestamp int64 `json:"timestamp"`
}

// Receipt is the body of POST /v1/receipts/{number}.
type Receipt struct {
	// Recipient is the individual sender (groups are not supported).
	Recipient string `json:"recipient"`
	// ReceiptType is ReceiptRead or ReceiptViewed.
	ReceiptType string `json:"receipt_type"`
	// Timestamp is the id of the message being acknowledged.
	Timestamp int64 `json:"timestamp"`
}

type typingBody struct {
	Recipient string `json:"recipient"`
}

type remoteDeleteBody struct {
	Recipient string `json:"recipient"`
	Timestamp int64  `json:"timestamp"`
}

type challengeBody struct {
	ChallengeToken string `json:"challenge_token"`
	Captcha        string `json:"captcha"`
}

// GroupMember is a member, admin, pending invite or pending request of a group. The server sends
// a bare string ("+1555…", or the UUID when the number is hidden) unless the list was expanded,
// in which case it sends {"number","uuid"}; both decode into this type.
type GroupMember struct {
	// Number is the E.164 number, empty when hidden or unknown.
	Number string `json:"number"`
	// UUID is the ACI UUID, when known.
	UUID string `json:"uuid"`
}

// UnmarshalJSON accepts both the bare string and the expanded object form.
func (m *GroupMember) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		if strings.HasPrefix(s, "+") {
			*m = GroupMember{Number: s}
		} else {
			*m = GroupMember{UUID: s}
		}
		return nil
	}
	type plain GroupMember
	var p plain
	if err := json.Unmarshal(b, &p); err != nil {
		return err
	}
	*m = GroupMember(p)
	return nil
}

// ID returns the number when known, else the UUID: the form to address the member with.
func (m GroupMember) ID() string {
	if m.Number != "" {
		return m.Number
	}
	return m.UUID
}

// GroupPermissions are a group's permission settings, each "only-admins" or "every-member".
// The server fills EditGroup from the send-messages setting (upstream bug, reference §4.6).
type GroupPermissions struct {
	// AddMembers says who may add members.
	AddMembers string `json:"add_members"`
	// EditGroup says who may edit the group details.
	EditGroup string `json:"edit_group"`
	// SendMessages says who may send messages.
	SendMessages string `json:"send_messages"`
}

// Group is one entry of GET /v1/groups/{number}.
type Group struct {
	// Name is the group title.
	Name string `json:"name"`
	// Description is the group description.
	Description string `json:"description"`
	// ID is the REST id ("group.<base64 of InternalID>") that every REST input expects.
	ID string `json:"id"`
	// InternalID is the id found in received messages (base64 of 32 bytes). Never put it into a
	// path or a recipient list.
	InternalID string `json:"internal_id"`
	// Members of the group.
	Members []GroupMember `json:"members"`
	// Blocked reports whether the bot blocked the group.
	Blocked bool `json:"blocked"`
	// PendingInvites are invited users who have not joined.
	PendingInvites []GroupMember `json:"pending_invites"`
	// PendingRequests are users asking to join.
	PendingRequests []GroupMember `json:"pending_requests"`
	// InviteLink is the group link, empty when disabled.
	InviteLink string `json:"invite_link"`
	// Admins of the group.
	Admins []GroupMember `json:"admins"`
	// Permissions of the group.
	Permissions GroupPermissions `json:"permissions"`
	// Member reports whether the bot is a member; only newer servers (HEAD) send it.
	Member *bool `json:"member,omitempty"`
}

// About is the answer of GET /v1/about.
type About struct {
	// Versions are the API versions, e.g. ["v1","v2"].
	Versions []string `json:"versions"`
	// Build is the build number.
	Build int `json:"build"`
	// Mode is ModeNormal, ModeNative or ModeJSONRPC.
	Mode string `json:"mode"`
	// Version is the release, e.g. "0.100" ("unset" in dev builds).
	Version string `json:"version"`
	// Capabilities maps an endpoint to its features, e.g. "v2/send": ["quotes","mentions"].
	Capabilities map[string][]string `json:"capabilities"`
}

// ReceivesOverWebsocket reports whether the server pushes messages over the websocket (json-rpc
// mode) rather than answering polls.
func (a About) ReceivesOverWebsocket() bool { return a.Mode == ModeJSONRPC }

// Attachment is a downloaded attachment.
type Attachment struct {
	// Data is the file content.
	Data []byte
	// ContentType is the server's sniffed MIME type.
	ContentType string
}

// AttachmentData encodes data as an entry for SendRequest.Base64Attachments:
// "data:<mime>;filename=<name>;base64,<standard base64>". An empty mime becomes
// application/octet-stream; an empty filename is left out. The server parses the string by its
// separators and uses the name as a file name, so the characters ';', ',', '/', '\' and control
// characters in filename are replaced by '_'.
func AttachmentData(mime, filename string, data []byte) string {
	if mime = strings.TrimSpace(mime); mime == "" || strings.ContainsAny(mime, ";,") {
		mime = "application/octet-stream"
	}
	var sb strings.Builder
	sb.Grow(len(mime) + len(filename) + base64.StdEncoding.EncodedLen(len(data)) + 32)
	sb.WriteString("data:")
	sb.WriteString(mime)
	if filename != "" {
		sb.WriteString(";filename=")
		sb.WriteString(strings.Map(func(r rune) rune {
			if r < 0x20 || r == 0x7f || strings.ContainsRune(`;,/\`, r) {
				return '_'
			}
			return r
		}, filename))
	}
	sb.WriteString(";base64,")
	sb.WriteString(base64.StdEncoding.EncodeToString(data))
	return sb.String()
}

// flexInt64 decodes a timestamp sent as a JSON string ("1767225611000", as /v2/send does) or a
// number.
type flexInt64 int64

func (f *flexInt64) UnmarshalJSON(b []byte) error {
	s := string(bytes.TrimSpace(b))
	if s == "null" {
		return nil
	}
	if uq, err := strconv.Unquote(s); err == nil {
		s = uq
	}
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil {
		return fmt.Errorf("timestamp %.40q is not an integer", s)
	}
	*f = flexInt64(n)
	return nil
}

// timestampResponse is the 201 body of /v2/send and /v1/remote-delete.
type timestampResponse struct {
	Timestamp flexInt64 `json:"timestamp"`
	Errors    *struct {
		Recipients []RecipientError `json:"recipients"`
	} `json:"errors"`
}

// plainTimestamp parses exactly {"timestamp":"<digits>"} or
// [{"timestamp":"<digits>"}], the usual success bodies; ok is false for
// anything else (which then goes through encoding/json).
func plainTimestamp(b []byte) (int64, bool) {
	const pre, suf = `{"timestamp":"`, `"}`
	if len(b) > 2 && b[0] == '[' && b[len(b)-1] == ']' {
		b = b[1 : len(b)-1]
	}
	if len(b) < len(pre)+len(suf)+1 || string(b[:len(pre)]) != pre || string(b[len(b)-len(suf):]) != suf {
		return 0, false
	}
	d := b[len(pre) : len(b)-len(suf)]
	if len(d) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range d {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// parseTimestampBody accepts both success shapes: {"timestamp":"…"} (release ≤0.100) and
// [{"timestamp":"…","errors":{…}}] (HEAD), per reference §4.1 and §7 item 16.
func parseTimestampBody(b []byte) (timestampResponse, error) {
	b = bytes.TrimSpace(b)
	var tr timestampResponse
	ts, plain := plainTimestamp(b)
	switch {
	case plain:
		// What every successful send answers; decoded without reflection.
		tr.Timestamp = flexInt64(ts)
	case len(b) == 0:
		return tr, errors.New("empty body, expected a timestamp")
	case b[0] == '[':
		var arr []timestampResponse
		if err := json.Unmarshal(b, &arr); err != nil {
			return tr, fmt.Errorf("decode response array: %w", err)
		}
		if len(arr) == 0 {
			return tr, errors.New("empty response array, expected one element with a timestamp")
		}
		tr = arr[0]
	default:
		if err := json.Unmarshal(b, &tr); err != nil {
			return tr, fmt.Errorf("decode response object: %w", err)
		}
	}
	if tr.Timestamp <= 0 {
		return tr, errors.New("response has no timestamp")
	}
	return tr, nil
}
