package bot

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"os"
	"path/filepath"
	"strconv"

	"github.com/signal-client/signal-client/internal/signal"
	"github.com/signal-client/signal-client/internal/streams"
)

// SendOption modifies an outgoing message.
type SendOption func(*Outgoing) error

// Styled turns on signal-cli's text markup (*italic*, **bold**, ~strike~,
// ||spoiler||, `mono`; escape with a backslash).
func Styled() SendOption { return func(m *Outgoing) error { m.Styled = true; return nil } }

// WithMentions adds mentions (see Compose for building the text).
func WithMentions(ms ...MentionAt) SendOption {
	return func(m *Outgoing) error { m.Mentions = append(m.Mentions, ms...); return nil }
}

// Attach adds a file from memory. An empty content type is guessed from the
// file name, then from the data.
func Attach(data []byte, contentType, filename string) SendOption {
	return func(m *Outgoing) error {
		if contentType == "" {
			contentType = mime.TypeByExtension(filepath.Ext(filename))
		}
		if contentType == "" {
			contentType = http.DetectContentType(data)
		}
		m.Attachments = append(m.Attachments, OutgoingAttachment{Data: data, ContentType: contentType, Filename: filename})
		return nil
	}
}

// AttachFile adds a file from disk.
func AttachFile(path string) SendOption {
	return func(m *Outgoing) error {
		b, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("bot: attach file: %w", err)
		}
		return Attach(b, "", filepath.Base(path))(m)
	}
}

// Quoting quotes a message (Reply does this for the message being handled).
func Quoting(q QuoteRef) SendOption { return func(m *Outgoing) error { m.Quote = &q; return nil } }

// ViewOnce makes the attachments viewable once.
func ViewOnce() SendOption { return func(m *Outgoing) error { m.ViewOnce = true; return nil } }

// WithSticker sends a sticker of an installed pack.
func WithSticker(packID string, stickerID int) SendOption {
	return func(m *Outgoing) error { m.Sticker = packID + ":" + strconv.Itoa(stickerID); return nil }
}

// WithPreview adds a link preview; the text must contain url (https only).
func WithPreview(url, title, description string) SendOption {
	return func(m *Outgoing) error {
		m.LinkPreview = &LinkPreview{URL: url, Title: title, Description: description}
		return nil
	}
}

// Composer builds a text with mentions, placing each mention's UTF-16 offset
// right whatever precedes it (emoji count two units):
//
//	t := bot.Compose().Text("welcome ").Mention(c.Sender().Recipient()).Text(" 🎉")
//	c.Send(t.String(), bot.WithMentions(t.Mentions()...))
type Composer struct{ b signal.MentionBuilder }

// Compose starts a text.
func Compose() *Composer { return &Composer{} }

// Text appends plain text.
func (t *Composer) Text(s string) *Composer { t.b.AddText(s); return t }

// Mention appends a mention of author (a number or UUID).
func (t *Composer) Mention(author string) *Composer { t.b.AddMention(author); return t }

// String is the composed text.
func (t *Composer) String() string { return t.b.Text() }

// Mentions are the composed mentions.
func (t *Composer) Mentions() []MentionAt {
	ms := t.b.Mentions()
	out := make([]MentionAt, len(ms))
	for i, m := range ms {
		out[i] = MentionAt{Author: m.Author, Start: int(m.Start), Length: int(m.Length)}
	}
	return out
}

// Client sends outside a handler (announcements, scheduled messages) through
// the same rate limit, circuit breaker and concurrency cap as handlers.
type Client struct {
	be     Backend
	shards int
}

// NewClient builds a client over a backend; shards is the deployment's shard
// count (where SendOnce records live). The runtime and bot/bottest build it.
func NewClient(be Backend, shards int) *Client {
	if shards < 1 {
		shards = 1
	}
	return &Client{be: be, shards: shards}
}

// Send sends text to a number, UUID or REST group id. It is not
// effectively once: a caller that retries may deliver twice (use SendOnce).
func (cl *Client) Send(ctx context.Context, to, text string, opts ...SendOption) (Sent, error) {
	return cl.send(ctx, CallKey{}, to, text, opts)
}

// SendOnce sends text at most once per key for SENT_RECORD_TTL, across
// retries, restarts and workers (a key such as "digest:2026-05-01"): a
// repeat returns the first send's result with Replayed set.
func (cl *Client) SendOnce(ctx context.Context, key, to, text string, opts ...SendOption) (Sent, error) {
	if key == "" {
		return Sent{}, errors.New("bot: send once: empty key")
	}
	sum := sha256.Sum256([]byte(key))
	orig := "p-" + hex.EncodeToString(sum[:8])
	return cl.send(ctx, CallKey{Shard: streams.ShardOf(orig, cl.shards), Original: orig, Seq: 1}, to, text, opts)
}

func (cl *Client) send(ctx context.Context, key CallKey, to, text string, opts []SendOption) (Sent, error) {
	m := Outgoing{To: to, Text: text}
	for _, o := range opts {
		if err := o(&m); err != nil {
			return Sent{}, err
		}
	}
	if to == "" {
		return Sent{}, errors.New("bot: send: no recipient")
	}
	return cl.be.Send(ctx, key, m)
}

// Delete deletes, for everyone in to, the bot's message sent at timestamp.
func (cl *Client) Delete(ctx context.Context, to string, timestamp int64) (Sent, error) {
	return cl.be.RemoteDelete(ctx, CallKey{}, to, timestamp)
}
