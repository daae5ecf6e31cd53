package emulator

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

const (
	rateLimitText    = "Failed to send message due to rate limiting"
	rateLimitSuffix  = ". Use the attached challenge tokens to lift the rate limit restrictions via the '/v1/accounts/{number}/rate-limit-challenge' endpoint."
	defaultFaultBody = `{"error":"emulator: injected fault"}`
)

// Texts of signal-cli errors the emulator reproduces (reference §4.1 step 9, §4.13).
const (
	// ErrTextUnknownAccount is the json-rpc answer for a number the daemon does not know.
	ErrTextUnknownAccount = "Specified account does not exist"
	// ErrTextUntrustedRelease and ErrTextUntrustedHead are the untrusted-identity send
	// errors of release 0.100 and of master; use them with RESTFault.Error.
	ErrTextUntrustedRelease = "Failed to send message due to untrusted identities"
	ErrTextUntrustedHead    = "Unable to complete request due to untrusted recipient keys"
)

func (c *reqCtx) matchInput() matchInput {
	return matchInput{method: c.r.Method, route: c.route.pattern, account: c.call.Account, recipients: func() []string { return recipientsOf(c.bodyValue()) }}
}

func recipientsOf(body any) []string {
	m, ok := body.(map[string]any)
	if !ok {
		return nil
	}
	var out []string
	if rs, ok := m["recipients"].([]any); ok {
		for _, r := range rs {
			if s, ok := r.(string); ok {
				out = append(out, s)
			}
		}
	}
	if r, ok := m["recipient"].(string); ok && r != "" {
		out = append(out, r)
	}
	return out
}

// sleep waits d unless the client goes away or the emulator closes.
func (c *reqCtx) sleep(d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-c.r.Context().Done():
		return false
	case <-c.e.closing:
		return false
	}
}

// preFaults applies Status rules and plain latency before the handler runs.
func (c *reqCtx) preFaults() bool {
	f, _, ok := c.e.faults.fire(stagePre, c.matchInput())
	if !ok {
		return true
	}
	if !c.sleep(f.Latency) {
		return false
	}
	if f.Status == 0 {
		return true
	}
	body := f.Body
	if body == "" {
		body = defaultFaultBody
	}
	ct := f.ContentType
	if ct == "" {
		ct = "text/plain; charset=utf-8"
		if json.Valid([]byte(body)) {
			ct = "application/json; charset=utf-8"
		}
	}
	c.w.Header().Set("Content-Type", ct)
	c.w.WriteHeader(f.Status)
	_, _ = c.w.Write([]byte(body))
	return false
}

// daemon stands for the JSON-RPC call to signal-cli: it waits while a webhook call is
// pending (when configured), checks the account, and applies Error and RateLimit rules.
// False means an answer was written (or the client left).
func (c *reqCtx) daemon(account string) bool {
	e := c.e
	if e.cfg.WebhookBlocksREST && !e.waitReader(c.r.Context()) {
		return false
	}
	if !e.state.hasAccount(account) {
		c.fail(e.unknownAccountText(account))
		return false
	}
	f, _, ok := e.faults.fire(stageBackend, c.matchInput())
	if !ok {
		return true
	}
	if !c.sleep(f.Latency) {
		return false
	}
	if f.RateLimit {
		c.rateLimited(account, f.ChallengeTokens)
		return false
	}
	c.fail(f.Error)
	return false
}

func (e *Emulator) unknownAccountText(n string) string {
	if e.cfg.Mode == ModeJSONRPC {
		return ErrTextUnknownAccount
	}
	// signal-cli's own text when no local data exists for -a <number> (normal mode).
	return "User " + n + " is not registered."
}

type rateLimitBody struct {
	Error           string   `json:"error"`
	ChallengeTokens []string `json:"challenge_tokens,omitempty"`
	Account         string   `json:"account"`
}

// rateLimited answers signal-cli's rate-limit failure the way the REST layer maps it: 429
// with challenge tokens only on /v2/send in json-rpc mode, a plain 400 elsewhere.
func (c *reqCtx) rateLimited(account string, tokens []string) {
	if c.e.cfg.Mode == ModeJSONRPC {
		if c.route.pattern == "/v2/send" {
			c.json(http.StatusTooManyRequests, rateLimitBody{Error: rateLimitText + rateLimitSuffix, ChallengeTokens: tokens, Account: account})
			return
		}
		c.fail(rateLimitText)
		return
	}
	var b strings.Builder
	rcpt := ""
	if rs := recipientsOf(c.bodyValue()); len(rs) > 0 {
		rcpt = rs[0]
	}
	for _, t := range tokens {
		if t != "" {
			fmt.Fprintf(&b, "CAPTCHA proof required for sending to %q, available options \"RECAPTCHA, PUSH_CHALLENGE\" with challenge token %q, or wait \"86400\" seconds.\n", rcpt, t)
		}
	}
	b.WriteString(rateLimitText)
	c.fail(b.String())
}

// answerFaults applies Hang rules right before a success answer. False means no answer
// must be written (the client gave up or the emulator closed while the call was held).
func (c *reqCtx) answerFaults() bool {
	f, rel, ok := c.e.faults.fire(stageAnswer, c.matchInput())
	if !ok {
		return true
	}
	if !c.sleep(f.Latency) {
		return false
	}
	if !f.Hang {
		return true
	}
	c.e.calls.update(c.call, func(cl *Call) { cl.Hung = true })
	select {
	case <-rel:
		return true
	case <-c.r.Context().Done():
		return false
	case <-c.e.closing:
		return false
	}
}

func (c *reqCtx) setTimestamp(ts int64) {
	c.e.calls.update(c.call, func(cl *Call) { cl.Timestamp = ts })
}

func (c *reqCtx) noContent() { c.w.WriteHeader(http.StatusNoContent) }

// checkConversation validates a reaction/typing/remote-delete recipient the way the REST
// layer and signal-cli would: REST group ids must decode and name a known group.
func (c *reqCtx) checkConversation(account, recipient string) bool {
	if recipient == "" {
		c.fail("No recipients given")
		return false
	}
	if !strings.HasPrefix(recipient, groupPrefix) {
		return true
	}
	internal, err := InternalGroupID(recipient)
	if err != nil {
		c.fail(err.Error())
		return false
	}
	return c.checkGroup(account, internal)
}

func (c *reqCtx) checkGroup(account, internal string) bool {
	c.e.state.mu.Lock()
	_, ok := c.e.state.group(account, internal)
	c.e.state.mu.Unlock()
	if !ok {
		// signal-cli's GroupNotFoundException names the internal id.
		c.fail("Group not found: " + internal)
		return false
	}
	return true
}

type aboutJSON struct {
	Versions     []string            `json:"versions"`
	Build        int                 `json:"build"`
	Mode         string              `json:"mode"`
	Version      string              `json:"version"`
	Capabilities map[string][]string `json:"capabilities"`
}

func (e *Emulator) handleAbout(c *reqCtx) {
	if !c.answerFaults() {
		return
	}
	c.json(http.StatusOK, aboutJSON{
		Versions:     []string{"v1", "v2"},
		Build:        2,
		Mode:         e.cfg.Mode,
		Version:      e.cfg.Version,
		Capabilities: map[string][]string{"v2/send": {"quotes", "mentions"}},
	})
}

func (e *Emulator) handleHealth(c *reqCtx) {
	if !c.answerFaults() {
		return
	}
	c.noContent()
}

func (e *Emulator) handleAccounts(c *reqCtx) {
	if !c.answerFaults() {
		return
	}
	c.json(http.StatusOK, e.Accounts())
}

type sendResponse struct {
	Timestamp string `json:"timestamp"`
}

type mentionRequest struct {
	Start  int64  `json:"start"`
	Length int64  `json:"length"`
	Author string `json:"author"`
}

type linkPreviewRequest struct {
	URL             string `json:"url"`
	Title           string `json:"title"`
	Description     string `json:"description"`
	Base64Thumbnail string `json:"base64_thumbnail"`
}

type sendV2Request struct {
	Number            string              `json:"number"`
	Recipients        []string            `json:"recipients"`
	Recipient         string              `json:"recipient"`
	Message           string              `json:"message"`
	Base64Attachments []string            `json:"base64_attachments"`
	Sticker           string              `json:"sticker"`
	Mentions          []mentionRequest    `json:"mentions"`
	QuoteTimestamp    *int64              `json:"quote_timestamp"`
	QuoteAuthor       *string             `json:"quote_author"`
	QuoteMessage      *string             `json:"quote_message"`
	QuoteMentions     []mentionRequest    `json:"quote_mentions"`
	TextMode          *string             `json:"text_mode"`
	EditTimestamp     *int64              `json:"edit_timestamp"`
	NotifySelf        *bool               `json:"notify_self"`
	LinkPreview       *linkPreviewRequest `json:"link_preview"`
	ViewOnce          *bool               `json:"view_once"`
}

// handleSendV2 follows the validation order of reference §4.1.
func (e *Emulator) handleSendV2(c *reqCtx) {
	var req sendV2Request
	if err := c.bind(&req); err != nil {
		c.bindError()
		return
	}
	if req.Recipient != "" {
		req.Recipients = append(req.Recipients, req.Recipient)
	}
	if len(req.Recipients) == 0 {
		c.fail("Couldn't process request - please provide at least one recipient")
		return
	}
	if req.Number == "" {
		c.fail("Couldn't process request - please provide a valid number")
		return
	}
	if req.Sticker != "" && !strings.Contains(req.Sticker, ":") {
		c.fail("Couldn't process request - please provide valid sticker delimiter")
		return
	}
	if req.ViewOnce != nil && *req.ViewOnce && len(req.Base64Attachments) == 0 {
		c.fail("'view_once' can only be set for image attachments!")
		return
	}
	var groups, numbers, usernames []string
	for _, r := range req.Recipients {
		kind, err := classifyRecipient(r)
		if err != nil {
			c.fail(err.Error())
			return
		}
		switch kind {
		case recipientGroup:
			groups = append(groups, strings.TrimPrefix(r, groupPrefix))
		case recipientNumber:
			numbers = append(numbers, r)
		default:
			usernames = append(usernames, r)
		}
	}
	switch {
	case len(numbers) > 0 && len(groups) > 0:
		c.fail("Signal Messenger Groups and phone numbers cannot be specified together in one request! Please split them up into multiple REST API calls.")
		return
	case len(usernames) > 0 && len(groups) > 0:
		c.fail("Signal Messenger Groups and usernames cannot be specified together in one request! Please split them up into multiple REST API calls.")
		return
	case len(numbers) > 0 && len(usernames) > 0:
		c.fail("Signal Messenger phone numbers and usernames cannot be specified together in one request! Please split them up into multiple REST API calls.")
		return
	case len(groups) > 1:
		c.fail("A signal message cannot be sent to more than one group at once! Please use multiple REST API calls for that.")
		return
	}
	if err := validateLinkPreview(req.Message, req.LinkPreview); err != nil {
		c.fail(err.Error())
		return
	}
	for _, a := range req.Base64Attachments {
		if err := decodeAttachment(a); err != nil {
			c.fail(err.Error())
			return
		}
	}
	if req.LinkPreview != nil && req.LinkPreview.Base64Thumbnail != "" {
		if err := decodeAttachment(req.LinkPreview.Base64Thumbnail); err != nil {
			c.fail(err.Error())
			return
		}
	}
	if !c.daemon(req.Number) {
		return
	}
	if len(groups) == 1 {
		internal, _ := base64.StdEncoding.DecodeString(groups[0])
		if !c.checkGroup(req.Number, string(internal)) {
			return
		}
	}
	ts := e.clock.next()
	c.setTimestamp(ts)
	if !c.answerFaults() {
		return
	}
	c.rawJSON(http.StatusCreated, sendResponseJSON(ts, e.cfg.Profile == ProfileHead))
}

// sendResponseJSON is json.Marshal of sendResponse{ts} (in an array for
// the head profile), built without reflection: every send answers it.
func sendResponseJSON(ts int64, array bool) []byte {
	b := make([]byte, 0, 48)
	if array {
		b = append(b, '[')
	}
	b = append(b, `{"timestamp":"`...)
	b = strconv.AppendInt(b, ts, 10)
	b = append(b, `"}`...)
	if array {
		b = append(b, ']')
	}
	return b
}

func validateLinkPreview(message string, lp *linkPreviewRequest) error {
	if lp == nil {
		return nil
	}
	switch {
	case lp.URL == "":
		return errors.New("Please provide a valid Link Preview URL")
	case !strings.HasPrefix(lp.URL, "https"):
		return errors.New("Link Preview URL must start with https://..")
	case lp.Title == "":
		return errors.New("Please provide a valid Link Preview Title")
	case !strings.Contains(message, lp.URL):
		return errors.New("Link Preview URL is missing in the message!")
	}
	return nil
}

// decodeAttachment accepts "<b64>", "data:<mime>;base64,<b64>" and
// "data:<mime>;filename=<name>;base64,<b64>" with standard padded base64, failing with the
// real server's texts.
func decodeAttachment(s string) error {
	b64 := s
	if i := strings.LastIndex(s, "base64,"); strings.Contains(s, "data:") && i != -1 {
		b64 = s[i+len("base64,"):]
	}
	if b64 == "" {
		return errors.New("The base64 data does not exist.")
	}
	_, err := base64.StdEncoding.DecodeString(b64)
	return err
}

type sendV1Request struct {
	Number           string   `json:"number"`
	Recipients       []string `json:"recipients"`
	Message          string   `json:"message"`
	Base64Attachment string   `json:"base64_attachment"`
	IsGroup          bool     `json:"is_group"`
}

// handleSendV1 is the deprecated send. With is_group the single recipient is the base64
// part of the REST group id (without "group.").
func (e *Emulator) handleSendV1(c *reqCtx) {
	var req sendV1Request
	if err := c.bind(&req); err != nil {
		c.bindError()
		return
	}
	if len(req.Recipients) == 0 {
		c.fail("Please specify at least one recipient")
		return
	}
	internal := ""
	if req.IsGroup {
		if len(req.Recipients) > 1 {
			c.fail("More than one recipient is currently not allowed")
			return
		}
		b, err := base64.StdEncoding.DecodeString(req.Recipients[0])
		if err != nil {
			c.fail("Invalid group id")
			return
		}
		internal = string(b)
	}
	if req.Base64Attachment != "" {
		if err := decodeAttachment(req.Base64Attachment); err != nil {
			c.fail(err.Error())
			return
		}
	}
	if !c.daemon(req.Number) {
		return
	}
	if req.IsGroup && !c.checkGroup(req.Number, internal) {
		return
	}
	ts := e.clock.next()
	c.setTimestamp(ts)
	if !c.answerFaults() {
		return
	}
	c.json(http.StatusCreated, sendResponse{Timestamp: strconv.FormatInt(ts, 10)})
}

type reactionRequest struct {
	Recipient    string `json:"recipient"`
	Reaction     string `json:"reaction"`
	TargetAuthor string `json:"target_author"`
	Timestamp    int64  `json:"timestamp"`
}

func (e *Emulator) handleReaction(remove bool) handlerFunc {
	return func(c *reqCtx) {
		var req reactionRequest
		if err := c.bind(&req); err != nil {
			c.bindError()
			return
		}
		number, ok := c.number()
		if !ok {
			return
		}
		if req.Recipient == "" {
			c.fail("Couldn't process request - recipient missing")
			return
		}
		if req.Reaction == "" {
			if !remove {
				c.fail("Couldn't process request - reaction missing")
				return
			}
			req.Reaction = "👍"
		}
		if req.TargetAuthor == "" {
			c.fail("Couldn't process request - target_author missing")
			return
		}
		if req.Timestamp == 0 {
			c.fail("Couldn't process request - timestamp missing")
			return
		}
		if !c.daemon(number) || !c.checkConversation(number, req.Recipient) || !c.answerFaults() {
			return
		}
		c.noContent()
	}
}

type receiptRequest struct {
	Recipient   string `json:"recipient"`
	ReceiptType string `json:"receipt_type"`
	Timestamp   int64  `json:"timestamp"`
}

func (e *Emulator) handleReceipt(c *reqCtx) {
	var req receiptRequest
	if err := c.bind(&req); err != nil {
		c.bindError()
		return
	}
	number, ok := c.number()
	if !ok {
		return
	}
	switch {
	case number == "":
		c.fail("Couldn't process request - number missing")
	case req.Recipient == "":
		c.fail("Couldn't process request - recipient missing")
	case req.ReceiptType != "read" && req.ReceiptType != "viewed":
		c.fail("Couldn't process request - receipt type must be read or viewed")
	case req.Timestamp == 0:
		c.fail("Couldn't process request - timestamp missing")
	default:
		if !c.daemon(number) || !c.answerFaults() {
			return
		}
		c.noContent()
	}
}

type typingRequest struct {
	Recipient string `json:"recipient"`
}

// handleTyping serves PUT (started) and DELETE (stopped). The REST layer does not check
// the recipient; signal-cli rejects an empty one.
func (e *Emulator) handleTyping(c *reqCtx) {
	var req typingRequest
	if err := c.bind(&req); err != nil {
		c.bindError()
		return
	}
	number, ok := c.number()
	if !ok {
		return
	}
	if number == "" {
		c.fail("Couldn't process request - number missing")
		return
	}
	if !c.daemon(number) || !c.checkConversation(number, req.Recipient) || !c.answerFaults() {
		return
	}
	c.noContent()
}

type remoteDeleteRequest struct {
	Recipient string `json:"recipient"`
	Timestamp int64  `json:"timestamp"`
}

// handleRemoteDelete answers 201 {"timestamp":"…"} with the delete message's own timestamp.
func (e *Emulator) handleRemoteDelete(c *reqCtx) {
	var req remoteDeleteRequest
	if err := c.bind(&req); err != nil {
		c.bindError()
		return
	}
	number, ok := c.number()
	if !ok {
		return
	}
	if number == "" {
		c.fail("Couldn't process request - number missing")
		return
	}
	if !c.daemon(number) || !c.checkConversation(number, req.Recipient) {
		return
	}
	ts := e.clock.next()
	c.setTimestamp(ts)
	if !c.answerFaults() {
		return
	}
	c.json(http.StatusCreated, sendResponse{Timestamp: strconv.FormatInt(ts, 10)})
}

type challengeRequest struct {
	ChallengeToken string `json:"challenge_token"`
	Captcha        string `json:"captcha"`
}

// handleRateLimitChallenge answers 204 and lifts rate-limit rules carrying the token.
func (e *Emulator) handleRateLimitChallenge(c *reqCtx) {
	number, ok := c.number()
	if !ok {
		return
	}
	if number == "" {
		c.fail("Couldn't process request - number missing")
		return
	}
	var req challengeRequest
	if err := c.bind(&req); err != nil {
		c.bindError()
		return
	}
	if !c.daemon(number) || !c.answerFaults() {
		return
	}
	e.faults.liftRateLimit(number, req.ChallengeToken)
	c.noContent()
}

func (f *Faults) liftRateLimit(account, token string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	kept := f.rest[:0]
	for _, r := range f.rest {
		if r.RateLimit && (r.Account == "" || r.Account == account) && slices.Contains(r.ChallengeTokens, token) {
			close(r.release)
			continue
		}
		kept = append(kept, r)
	}
	f.rest = kept
}

func (e *Emulator) handleListAttachments(c *reqCtx) {
	if !c.answerFaults() {
		return
	}
	c.json(http.StatusOK, e.AttachmentIDs())
}

func (e *Emulator) handleGetAttachment(c *reqCtx) {
	id := c.params["attachment"]
	if !validAttachmentName(id) {
		c.fail("Please provide a valid attachment name")
		return
	}
	data, ok := e.Attachment(id)
	if !ok {
		c.json(http.StatusNotFound, apiError{Error: "No attachment with that name found"})
		return
	}
	if !c.answerFaults() {
		return
	}
	c.w.Header().Set("Content-Type", http.DetectContentType(data))
	c.w.Header().Set("Content-Length", strconv.Itoa(len(data)))
	c.w.WriteHeader(http.StatusOK)
	_, _ = c.w.Write(data)
}

func (e *Emulator) handleDeleteAttachment(c *reqCtx) {
	id := c.params["attachment"]
	if !validAttachmentName(id) {
		c.fail("Please provide a valid attachment name")
		return
	}
	e.state.mu.Lock()
	_, ok := e.state.attachments[id]
	delete(e.state.attachments, id)
	e.state.mu.Unlock()
	if !ok {
		c.json(http.StatusNotFound, apiError{Error: "No attachment with that name found"})
		return
	}
	if !c.answerFaults() {
		return
	}
	c.noContent()
}
