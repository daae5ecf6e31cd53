package rest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// Endpoint templates, as reported in Call.Endpoint and in errors. They never contain numbers
// or ids, so they are safe as metric labels.
const (
	EndpointSend               = "/v2/send"
	EndpointReactions          = "/v1/reactions/{number}"
	EndpointReceipts           = "/v1/receipts/{number}"
	EndpointTyping             = "/v1/typing-indicator/{number}"
	EndpointRemoteDelete       = "/v1/remote-delete/{number}"
	EndpointGroups             = "/v1/groups/{number}"
	EndpointGroup              = "/v1/groups/{number}/{groupid}"
	EndpointAttachments        = "/v1/attachments"
	EndpointAttachment         = "/v1/attachments/{id}"
	EndpointAbout              = "/v1/about"
	EndpointHealth             = "/v1/health"
	EndpointAccounts           = "/v1/accounts"
	EndpointRateLimitChallenge = "/v1/accounts/{number}/rate-limit-challenge"
)

// IsIdempotent reports whether the calls this client makes to endpoint (a template such as
// EndpointSend) can be repeated without a visible effect: reads, typing indicators, health and
// attachment deletion (a repeat gets 404). Sends, remote deletes, reactions, receipts and
// rate-limit challenges deliver something to Signal each time, so they are not; neither is any
// endpoint this package does not know. A sender layer may retry an idempotent call after a
// timeout or transport error; a failed non-idempotent call that may have reached the server
// carries ErrUnknownOutcome instead.
func IsIdempotent(endpoint string) bool {
	switch endpoint {
	case EndpointTyping, EndpointGroups, EndpointGroup, EndpointAttachments, EndpointAttachment,
		EndpointAbout, EndpointHealth, EndpointAccounts:
		return true
	}
	return false
}

// Send posts a message through /v2/send. Sends with attachments use the attachment timeout.
//
// A 201 in either shape (object at ≤0.100, array at HEAD) gives the timestamp; recipients that
// failed while others succeeded are in SendResult.RecipientErrors. A timeout or dropped
// connection after the request went out returns ErrUnknownOutcome: do not resend blindly.
func (c *Client) Send(ctx context.Context, req SendRequest) (SendResult, error) {
	if len(req.Recipients) == 0 {
		return SendResult{}, errors.New("rest: send: no recipients; set SendRequest.Recipients to a number, UUID, username or one group id")
	}
	var tr timestampResponse
	err := c.do(ctx, request{
		method:   http.MethodPost,
		endpoint: EndpointSend,
		path:     "/v2/send",
		body:     sendBody{Number: c.rawNumber, SendRequest: req},
		long:     len(req.Base64Attachments) > 0 || (req.LinkPreview != nil && req.LinkPreview.Base64Thumbnail != ""),
		handle:   handleTimestamp(&tr),
	})
	if err != nil {
		return SendResult{}, err
	}
	res := SendResult{Timestamp: int64(tr.Timestamp)}
	if tr.Errors != nil {
		res.RecipientErrors = tr.Errors.Recipients
	}
	return res, nil
}

// React adds (or replaces) the bot's reaction to a message. Not idempotent: each call sends a
// reaction message.
func (c *Client) React(ctx context.Context, r Reaction) error {
	return c.do(ctx, request{
		method:   http.MethodPost,
		endpoint: EndpointReactions,
		path:     "/v1/reactions/" + c.number,
		body:     r,
	})
}

// RemoveReaction removes the bot's reaction from a message. An empty r.Reaction is replaced by
// the server with "👍".
func (c *Client) RemoveReaction(ctx context.Context, r Reaction) error {
	return c.do(ctx, request{
		method:   http.MethodDelete,
		endpoint: EndpointReactions,
		path:     "/v1/reactions/" + c.number,
		body:     r,
	})
}

// SendReceipt sends a read or viewed receipt to the individual sender of a message.
func (c *Client) SendReceipt(ctx context.Context, r Receipt) error {
	return c.do(ctx, request{
		method:   http.MethodPost,
		endpoint: EndpointReceipts,
		path:     "/v1/receipts/" + c.number,
		body:     r,
	})
}

// TypingStart shows the bot as typing in the conversation recipient (number, UUID or group id).
func (c *Client) TypingStart(ctx context.Context, recipient string) error {
	return c.do(ctx, request{
		method:   http.MethodPut,
		endpoint: EndpointTyping,
		path:     "/v1/typing-indicator/" + c.number,
		body:     typingBody{Recipient: recipient},
	})
}

// TypingStop clears the typing indicator in the conversation recipient.
func (c *Client) TypingStop(ctx context.Context, recipient string) error {
	return c.do(ctx, request{
		method:   http.MethodDelete,
		endpoint: EndpointTyping,
		path:     "/v1/typing-indicator/" + c.number,
		body:     typingBody{Recipient: recipient},
	})
}

// RemoteDelete deletes the bot's message with the given timestamp for everyone in the
// conversation recipient, and returns the timestamp of the delete message.
func (c *Client) RemoteDelete(ctx context.Context, recipient string, timestamp int64) (int64, error) {
	var tr timestampResponse
	err := c.do(ctx, request{
		method:   http.MethodDelete,
		endpoint: EndpointRemoteDelete,
		path:     "/v1/remote-delete/" + c.number,
		body:     remoteDeleteBody{Recipient: recipient, Timestamp: timestamp},
		handle:   handleTimestamp(&tr),
	})
	if err != nil {
		return 0, err
	}
	return int64(tr.Timestamp), nil
}

// ListGroups returns the bot's groups. With expand, member lists carry both number and UUID
// (servers ≥0.99); without, each member is a number or, when hidden, a UUID.
func (c *Client) ListGroups(ctx context.Context, expand bool) ([]Group, error) {
	var q url.Values
	if expand {
		q = url.Values{"expand": {"true"}}
	}
	var groups []Group
	err := c.do(ctx, request{
		method:   http.MethodGet,
		endpoint: EndpointGroups,
		path:     "/v1/groups/" + c.number,
		query:    q,
		handle:   decodeJSON(&groups),
	})
	if err != nil {
		return nil, err
	}
	return groups, nil
}

// GetGroup returns one group by its REST id ("group.<base64>"). An unknown group gives an
// *APIError with Status 404 that matches ErrNotFound.
func (c *Client) GetGroup(ctx context.Context, restID string) (Group, error) {
	if !strings.HasPrefix(restID, "group.") || len(restID) == len("group.") || strings.ContainsAny(restID, "/?#%") {
		return Group{}, errors.New(`rest: get group: the id must be a REST group id ("group." + base64 of the internal id), not the internal id from received messages`)
	}
	var g Group
	err := c.do(ctx, request{
		method:   http.MethodGet,
		endpoint: EndpointGroup,
		path:     "/v1/groups/" + c.number + "/" + url.PathEscape(restID),
		handle:   decodeJSON(&g),
	})
	if err != nil {
		return Group{}, err
	}
	return g, nil
}

// GetAttachment downloads an attachment, refusing one larger than maxBytes (<= 0 means
// DefaultMaxAttachmentBytes) with ErrAttachmentTooLarge; at most maxBytes+1 bytes are read. An
// unknown id gives an *APIError with Status 404 that matches ErrNotFound. Downloads use the
// attachment timeout. The server never deletes attachments; call DeleteAttachment afterwards.
func (c *Client) GetAttachment(ctx context.Context, id string, maxBytes int64) (Attachment, error) {
	if err := checkAttachmentID(id); err != nil {
		return Attachment{}, fmt.Errorf("rest: get attachment: %w", err)
	}
	if maxBytes <= 0 {
		maxBytes = DefaultMaxAttachmentBytes
	}
	var att Attachment
	err := c.do(ctx, request{
		method:   http.MethodGet,
		endpoint: EndpointAttachment,
		path:     "/v1/attachments/" + url.PathEscape(id),
		long:     true,
		raw:      true,
		handle: func(resp *http.Response) error {
			tooLarge := fmt.Errorf("%w of %d bytes; raise the limit or skip this attachment", ErrAttachmentTooLarge, maxBytes)
			if resp.ContentLength > maxBytes {
				return tooLarge
			}
			data, err := io.ReadAll(io.LimitReader(resp.Body, maxBytes+1))
			if err != nil {
				return fmt.Errorf("read attachment: %w", err)
			}
			if int64(len(data)) > maxBytes {
				return tooLarge
			}
			att = Attachment{Data: data, ContentType: resp.Header.Get("Content-Type")}
			return nil
		},
	})
	if err != nil {
		return Attachment{}, err
	}
	return att, nil
}

// DeleteAttachment deletes a downloaded attachment from the server's disk. An unknown id gives
// an error matching ErrNotFound, which a caller repeating the delete can treat as done.
func (c *Client) DeleteAttachment(ctx context.Context, id string) error {
	if err := checkAttachmentID(id); err != nil {
		return fmt.Errorf("rest: delete attachment: %w", err)
	}
	return c.do(ctx, request{
		method:   http.MethodDelete,
		endpoint: EndpointAttachment,
		path:     "/v1/attachments/" + url.PathEscape(id),
	})
}

// ListAttachments returns the ids of all attachments stored on the server (a namespace shared
// by every account).
func (c *Client) ListAttachments(ctx context.Context) ([]string, error) {
	var ids []string
	err := c.do(ctx, request{
		method:   http.MethodGet,
		endpoint: EndpointAttachments,
		path:     "/v1/attachments",
		handle:   decodeJSON(&ids),
	})
	if err != nil {
		return nil, err
	}
	return ids, nil
}

// About returns the server's versions, build, mode and capabilities.
func (c *Client) About(ctx context.Context) (About, error) {
	var a About
	err := c.do(ctx, request{
		method:   http.MethodGet,
		endpoint: EndpointAbout,
		path:     "/v1/about",
		handle:   decodeJSON(&a),
	})
	if err != nil {
		return About{}, err
	}
	return a, nil
}

// Health checks that the REST process answers (204). It does not check signal-cli itself.
func (c *Client) Health(ctx context.Context) error {
	return c.do(ctx, request{
		method:   http.MethodGet,
		endpoint: EndpointHealth,
		path:     "/v1/health",
	})
}

// Accounts returns the numbers registered on the server.
func (c *Client) Accounts(ctx context.Context) ([]string, error) {
	var accounts []string
	err := c.do(ctx, request{
		method:   http.MethodGet,
		endpoint: EndpointAccounts,
		path:     "/v1/accounts",
		handle:   decodeJSON(&accounts),
	})
	if err != nil {
		return nil, err
	}
	return accounts, nil
}

// RateLimitChallenge lifts a rate limit with a challenge token from a *RateLimitError and a
// captcha ("signalcaptcha://…") solved by a human.
func (c *Client) RateLimitChallenge(ctx context.Context, token, captcha string) error {
	if token == "" || captcha == "" {
		return errors.New("rest: rate limit challenge: both the challenge token and the captcha are required; get the token from the rate-limit error and solve the captcha at signalcaptchas.org")
	}
	return c.do(ctx, request{
		method:   http.MethodPost,
		endpoint: EndpointRateLimitChallenge,
		path:     "/v1/accounts/" + c.number + "/rate-limit-challenge",
		body:     challengeBody{ChallengeToken: token, Captcha: captcha},
	})
}

// checkAttachmentID refuses ids that would address another route: the server routes on the
// decoded path, so an escaped "/" would still split the path, and an empty id hits the list.
func checkAttachmentID(id string) error {
	if id == "" || id == "." || id == ".." || strings.ContainsAny(id, "/\\?#") {
		return errors.New(`attachment id must be a file name as found in a received message's attachments[].id (not empty, no "/")`)
	}
	return nil
}

func handleTimestamp(tr *timestampResponse) func(*http.Response) error {
	return func(resp *http.Response) error {
		b, err := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
		if err != nil {
			return fmt.Errorf("read response body: %w", err)
		}
		*tr, err = parseTimestampBody(b)
		return err
	}
}
