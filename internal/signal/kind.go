package signal

// Kind classifies a frame. The names are stable lowercase identifiers: they
// are written into Redis stream entries, de-duplication keys and metric
// labels, so never rename one.
type Kind string

// The kinds, in the order Kind() tests for them. The rules refine §3.7.
const (
	// KindError is an {"error":"..."} frame: the daemon reported a JSON-RPC
	// error (§2.2). It belongs to no conversation and no handler.
	KindError Kind = "error"
	// KindUnknown is a JSON object of no known shape (FrameUnknown).
	KindUnknown Kind = "unknown"
	// KindException is a wrapper with an exception: signal-cli could not
	// process the envelope, e.g. an untrusted identity (§3.1, §3.7 rule 1,
	// §7 item 9). It wins over any envelope content, which is unreliable.
	KindException Kind = "exception"

	// Data messages (envelope.dataMessage), first rule that matches:

	// KindReaction: reaction is set (adding or removing an emoji, also on
	// stories).
	KindReaction Kind = "reaction"
	// KindRemoteDelete: remoteDelete (the sender deletes their own message)
	// or adminDelete (a group admin deletes someone's message) is set.
	KindRemoteDelete Kind = "remote_delete"
	// KindPoll: pollCreate, pollVote or pollTerminate is set.
	KindPoll Kind = "poll"
	// KindPin: pinMessage or unpinMessage is set.
	KindPin Kind = "pin"
	// KindGroupUpdate: groupInfo.type is "UPDATE", a group change or metadata
	// update rather than chat content.
	KindGroupUpdate Kind = "group_update"
	// KindTimerUpdate: isExpirationUpdate is true, the message only changes
	// the disappearing-message timer. (signal-cli before v0.13.21 omits the
	// flag; such updates then fall through to KindIgnored.)
	KindTimerUpdate Kind = "timer_update"
	// KindMessage: chat content a person sent: a body (message not null,
	// even ""), attachments, a sticker, a quote, shared contacts or a payment
	// notification. Story replies are messages too.
	KindMessage Kind = "message"
	// KindIgnored: a data message with nothing chat-like (profile-key
	// updates, §7 item 14), and an envelope with no content at all (e.g.
	// a message type signal-cli does not render).
	KindIgnored Kind = "ignored"

	// Other envelope contents:

	// KindEdit: envelope.editMessage, an edit of the sender's earlier message
	// (§3.7 rule 3). It sits on the envelope, never inside dataMessage.
	KindEdit Kind = "edit"
	// KindSyncSent: syncMessage.sentMessage, a message the account sent from
	// another device (§3.5, §3.7 rule 4).
	KindSyncSent Kind = "sync_sent"
	// KindSyncOther: any other syncMessage: read syncs, blocked lists,
	// contacts/groups/request syncs, stories posted from another device, and
	// the empty {} form.
	KindSyncOther Kind = "sync_other"
	// KindStory: storyMessage, a story posted by the sender.
	KindStory Kind = "story"
	// KindCall: callMessage, call signalling.
	KindCall Kind = "call"
	// KindReceipt: receiptMessage, delivery/read/viewed receipts for our
	// messages.
	KindReceipt Kind = "receipt"
	// KindTyping: typingMessage.
	KindTyping Kind = "typing"
)

var allKinds = []Kind{
	KindMessage, KindReaction, KindRemoteDelete, KindGroupUpdate, KindTimerUpdate,
	KindEdit, KindSyncSent, KindSyncOther, KindReceipt, KindTyping, KindCall,
	KindStory, KindException, KindError, KindPoll, KindPin, KindIgnored, KindUnknown,
}

// Kinds returns every kind, for pre-declaring metric label values.
func Kinds() []Kind {
	return append([]Kind(nil), allKinds...)
}

// Valid reports whether k is one of the kinds above.
func (k Kind) Valid() bool {
	for _, v := range allKinds {
		if k == v {
			return true
		}
	}
	return false
}

// ParseKind returns the kind named s, as read back from a stream entry.
func ParseKind(s string) (Kind, bool) {
	k := Kind(s)
	return k, k.Valid()
}

// Kind classifies the frame. Envelope contents are tested in the order
// dataMessage, editMessage, syncMessage, storyMessage, callMessage,
// receiptMessage, typingMessage; signal-cli sets only one of them.
func (f *Frame) Kind() Kind {
	if f == nil {
		return KindUnknown
	}
	switch f.Type {
	case FrameError:
		return KindError
	case FrameWrapper:
	default:
		return KindUnknown
	}
	if f.Exception != nil {
		return KindException
	}
	e := f.Envelope
	if e == nil {
		return KindUnknown // a wrapper has an envelope or an exception
	}
	switch {
	case e.DataMessage != nil:
		return dataKind(e.DataMessage)
	case e.EditMessage != nil:
		return KindEdit
	case e.SyncMessage != nil:
		if e.SyncMessage.SentMessage != nil {
			return KindSyncSent
		}
		return KindSyncOther
	case e.StoryMessage != nil:
		return KindStory
	case e.CallMessage != nil:
		return KindCall
	case e.ReceiptMessage != nil:
		return KindReceipt
	case e.TypingMessage != nil:
		return KindTyping
	}
	return KindIgnored
}

func dataKind(d *DataMessage) Kind {
	switch {
	case d.Reaction != nil:
		return KindReaction
	case d.RemoteDelete != nil || d.AdminDelete != nil:
		return KindRemoteDelete
	case d.PollCreate != nil || d.PollVote != nil || d.PollTerminate != nil:
		return KindPoll
	case d.PinMessage != nil || d.UnpinMessage != nil:
		return KindPin
	case d.GroupInfo != nil && d.GroupInfo.Type == GroupUpdate:
		return KindGroupUpdate
	case d.IsExpirationUpdate:
		return KindTimerUpdate
	case hasChatContent(d):
		return KindMessage
	}
	return KindIgnored
}

func hasChatContent(d *DataMessage) bool {
	return d.Message != nil || len(d.Attachments) > 0 || d.Sticker != nil || d.Quote != nil ||
		len(d.Contacts) > 0 || d.Payment != nil
}

// Data returns the data message a frame carries: envelope.dataMessage, the
// new content of an edit (envelope.editMessage.dataMessage), or the
// flattened data of a sync sent message. It returns nil when there is none,
// including for an edit sync, whose content is in Edit().
func (f *Frame) Data() *DataMessage {
	e := f.envelope()
	if e == nil {
		return nil
	}
	switch {
	case e.DataMessage != nil:
		return e.DataMessage
	case e.EditMessage != nil:
		return e.EditMessage.DataMessage
	case e.SyncMessage != nil && e.SyncMessage.SentMessage != nil:
		s := e.SyncMessage.SentMessage
		if s.EditMessage != nil && isZeroData(&s.DataMessage) {
			return s.EditMessage.DataMessage
		}
		return &s.DataMessage
	}
	return nil
}

// Edit returns the edit a frame carries: envelope.editMessage, or the
// editMessage of a sync sent message (an edit the account made on another
// device). It returns nil otherwise.
func (f *Frame) Edit() *EditMessage {
	e := f.envelope()
	if e == nil {
		return nil
	}
	if e.EditMessage != nil {
		return e.EditMessage
	}
	if e.SyncMessage != nil && e.SyncMessage.SentMessage != nil {
		return e.SyncMessage.SentMessage.EditMessage
	}
	return nil
}

// isZeroData reports whether no data-message field was set, which is how an
// edit sync looks (signal-cli unwraps a null dataMessage into nothing).
func isZeroData(d *DataMessage) bool {
	return d.Timestamp == 0 && d.Message == nil && d.Reaction == nil && d.Quote == nil &&
		d.Payment == nil && d.Mentions == nil && d.Previews == nil && d.Attachments == nil &&
		d.Sticker == nil && d.RemoteDelete == nil && d.Contacts == nil && d.PollCreate == nil &&
		d.PollVote == nil && d.PollTerminate == nil && d.TextStyles == nil && d.GroupInfo == nil &&
		d.StoryContext == nil && d.PinMessage == nil && d.UnpinMessage == nil && d.AdminDelete == nil &&
		d.ExpiresInSeconds == 0 && !d.IsExpirationUpdate && !d.ViewOnce
}

// Text returns the body of the frame's data message (see Data), or "".
func (f *Frame) Text() string {
	return f.Data().Text()
}

// envelope returns the envelope of a wrapper frame, or nil.
func (f *Frame) envelope() *Envelope {
	if f == nil || f.Type != FrameWrapper {
		return nil
	}
	return f.Envelope
}
