package bot

import (
	"context"
	"errors"
	"time"

	"go.uber.org/zap"

	"github.com/signal-client/signal-client/internal/signal"
)

// Backend carries out what a Context asks of the outside world. The worker
// runtime (NewRuntime) implements it over the rate-limited, circuit-broken,
// effectively-once sender and Redis; bot/bottest implements it in memory.
// Implementations must be safe for concurrent use.
type Backend interface {
	// Send delivers one message. key makes the call effectively once; the
	// zero CallKey means no record.
	Send(ctx context.Context, key CallKey, m Outgoing) (Sent, error)
	// React adds (or, with r.Remove, removes) a reaction.
	React(ctx context.Context, key CallKey, r ReactionRequest) (Sent, error)
	// Receipt sends a read or viewed receipt.
	Receipt(ctx context.Context, key CallKey, r ReceiptRequest) (Sent, error)
	// RemoteDelete deletes the bot's message sent at timestamp in to.
	RemoteDelete(ctx context.Context, key CallKey, to string, timestamp int64) (Sent, error)
	// Typing starts or stops the typing indicator in to.
	Typing(ctx context.Context, to string, start bool) error
	// Download fetches an attachment, refusing more than maxBytes.
	Download(ctx context.Context, id string, maxBytes int64) (Download, error)
	// DeleteAttachment removes a downloaded attachment from the server.
	DeleteAttachment(ctx context.Context, id string) error
	// Lock obtains a lock named key for ttl, waiting while ctx allows.
	Lock(ctx context.Context, key string, ttl time.Duration) (HeldLock, error)
}

// HeldLock is an obtained lock.
type HeldLock interface {
	// Refresh extends the lock; an error wrapping ErrLockLost means another
	// holder has it now.
	Refresh(ctx context.Context, ttl time.Duration) error
	Release(ctx context.Context) error
}

// CallKey identifies one outgoing call for effectively-once records:
// Original is the message's original id (kept through dead-letter replays),
// Seq the call's 1-based position among the handling's keyed calls, Shard the
// message's shard.
type CallKey struct {
	Shard    int
	Original string
	Seq      int
}

// IsZero reports a key that records nothing.
func (k CallKey) IsZero() bool { return k.Original == "" || k.Seq == 0 }

// Outgoing is one message to send.
type Outgoing struct {
	// To is a number, a UUID, a username or one REST group id ("group.…").
	To   string
	Text string
	// Styled turns on signal-cli's markup: *italic*, **bold**, ~strike~,
	// ||spoiler||, `mono`.
	Styled      bool
	Mentions    []MentionAt
	Attachments []OutgoingAttachment
	Quote       *QuoteRef
	// EditOf is the timestamp of the bot's earlier message this one replaces.
	EditOf      int64
	ViewOnce    bool
	Sticker     string // "<pack id hex>:<sticker id>"
	LinkPreview *LinkPreview
}

// OutgoingAttachment is a file to send.
type OutgoingAttachment struct {
	Data        []byte
	ContentType string
	Filename    string
}

// QuoteRef is the message an outgoing one quotes.
type QuoteRef struct {
	Timestamp int64
	Author    string
	Text      string
	Mentions  []MentionAt
}

// LinkPreview describes a link preview; the text must contain URL, which
// must start with https://.
type LinkPreview struct {
	URL, Title, Description string
}

// ReactionRequest is a reaction to send (or remove): Emoji on the message
// TargetAuthor sent at TargetTimestamp, in the conversation To.
type ReactionRequest struct {
	To              string
	Emoji           string
	TargetAuthor    string
	TargetTimestamp int64
	Remove          bool
}

// ReceiptRequest is a receipt to send: To is always the individual sender.
type ReceiptRequest struct {
	To        string
	Type      string // "read" or "viewed"
	Timestamp int64
}

// Download is a fetched attachment.
type Download struct {
	Data        []byte
	ContentType string
}

// StateStore is one message's view of its conversation's state hash. Reads
// see the message's own writes and those of earlier messages of the
// conversation, committed or not; writes are applied only when the message
// is acknowledged.
type StateStore interface {
	Read(ctx context.Context, field string) (value string, ok bool, err error)
	Write(op StateOp)
}

// StateOp is one write to the conversation's state hash.
type StateOp struct {
	// Op is "set" or "del" on Field, or "expire" (TTL) or "persist" on the
	// whole hash.
	Op    string
	Field string
	Value string
	TTL   time.Duration
}

// Self is the bot account, for mention gating and for telling the bot's own
// messages apart.
type Self struct {
	Number string
	UUID   string
}

func (s Self) ids() []string {
	var out []string
	if s.Number != "" {
		out = append(out, s.Number)
	}
	if s.UUID != "" {
		out = append(out, s.UUID)
	}
	return out
}

// Update is one inbound message handed to Router.Dispatch, with the means to
// act on it. The worker runtime and bot/bottest build it.
type Update struct {
	// Raw is the frame exactly as received; Frame is it decoded (decoded
	// from Raw when nil).
	Raw   []byte
	Frame *signal.Frame
	// ID is the stream entry id, OriginalID the id kept through replays.
	ID, OriginalID string
	Shard          int
	Attempt        int
	// Conversation is the conversation key the message was routed by.
	Conversation string
	Self         Self
	Backend      Backend
	State        StateStore
	// Client is what Context.Client returns (proactive sends).
	Client *Client
	Log    *zap.Logger
	// TypingInterval is how often Context.Typing repeats the indicator
	// (default 10s: clients hide it after about 15s).
	TypingInterval time.Duration
	// LockTTL is the default TTL of Context.Lock (default 10s).
	LockTTL time.Duration
	// MaxDownload caps Context.Download when it is given no cap (default 25 MiB).
	MaxDownload int64
}

// Errors of the bot package.
var (
	// ErrPass, returned by a handler, lets the next matching route try.
	ErrPass = errors.New("bot: pass to the next route")
	// ErrLockLost: a lock held by the handler was taken over (its refresh
	// failed); the handler's context is cancelled with this cause.
	ErrLockLost = errors.New("bot: lock lost: another holder obtained it after a refresh failed")
	// ErrLockNotObtained: the lock stayed held by someone else until the
	// deadline. The message is retried later without counting an attempt.
	ErrLockNotObtained = errors.New("bot: lock not obtained before the handler's deadline")
	// ErrNoTarget: the call needs a message to act on (quote, react, mark
	// read) and this event has none.
	ErrNoTarget = errors.New("bot: this event carries no message to quote, react to or mark read")
)
