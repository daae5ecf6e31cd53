package signal

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"strings"
)

// Identity names one event for de-duplication. Every subscriber of an
// account receives every event (§2.3), and Signal redelivers what was not
// acknowledged, so ingesters must recognise copies. It follows §7 item 3:
// account, sender, sender device, envelope timestamp and kind. The device is
// part of it because the Python original keyed on (source, timestamp) only
// and could merge two devices' messages (seed §9 item 9).
type Identity struct {
	// Account is the receiving account.
	Account string
	// Sender is the sender's uuid, else number, else legacy source.
	Sender string
	// Device is the sender's device id; 0 when null.
	Device int64
	// Kind is the frame's kind.
	Kind Kind
	// Timestamp is the envelope timestamp in ms.
	Timestamp int64
}

// Identity returns the frame's identity. ok is false when the frame has none
// worth trusting: error and unknown frames, an exception without envelope,
// and envelopes without a sender or timestamp. Such frames are de-duplicated
// by RawDigest of their bytes instead.
func (f *Frame) Identity() (id Identity, ok bool) {
	e := f.envelope()
	if e == nil || e.Timestamp == 0 {
		return Identity{}, false
	}
	s := f.Sender()
	sender := s.ID()
	if looksLikeUUID(sender) {
		sender = strings.ToLower(sender)
	}
	if sender == "" {
		return Identity{}, false
	}
	return Identity{
		Account:   f.Account,
		Sender:    sender,
		Device:    s.Device,
		Kind:      f.Kind(),
		Timestamp: int64(e.Timestamp),
	}, true
}

// keyEscaper keeps ':' unambiguous as the separator; signal-cli's values
// never contain it, but a hostile or broken relay could.
var keyEscaper = strings.NewReplacer("%", "%25", ":", "%3A")

// Key returns a compact string that is equal for two identities exactly when
// they are equal: "<account>:<sender>:<device>:<timestamp>:<kind>". It
// contains a phone number or uuid, so it may be used as a Redis key but
// must not be logged.
func (id Identity) Key() string {
	var b strings.Builder
	b.Grow(len(id.Account) + len(id.Sender) + len(id.Kind) + 40)
	b.WriteString(keyEscaper.Replace(id.Account))
	b.WriteByte(':')
	b.WriteString(keyEscaper.Replace(id.Sender))
	b.WriteByte(':')
	var num [20]byte // the numbers are formatted without an allocation each
	b.Write(strconv.AppendInt(num[:0], id.Device, 10))
	b.WriteByte(':')
	b.Write(strconv.AppendInt(num[:0], id.Timestamp, 10))
	b.WriteByte(':')
	b.WriteString(keyEscaper.Replace(string(id.Kind)))
	return b.String()
}

// RawDigest returns the lower-case hex SHA-256 of raw, the identity of a
// frame that has no Identity (or that failed to decode). Pass Frame.Raw so
// the websocket and webhook copies of an event agree.
func RawDigest(raw []byte) string {
	sum := sha256.Sum256(raw)
	return hex.EncodeToString(sum[:])
}
