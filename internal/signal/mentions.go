package signal

import (
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MentionPlaceholder is the character a mention occupies in a body (U+FFFC,
// OBJECT REPLACEMENT CHARACTER; one UTF-16 unit).
const MentionPlaceholder = "\uFFFC"

// OutgoingMention is a mention in the form /v2/send takes for mentions and
// quote_mentions (§4.1): offsets in UTF-16 units, Author a number or uuid.
type OutgoingMention struct {
	Author string `json:"author"`
	Start  int64  `json:"start"`
	Length int64  `json:"length"`
}

// Is reports whether the mention names one of ids (uuids compared without
// regard to case, numbers exactly). It matches on uuid as well as number,
// so it works for users who hide their number (seed §9 item 3).
func (m Mention) Is(ids ...string) bool {
	for _, id := range ids {
		if id == "" {
			continue
		}
		switch {
		case m.UUID != "" && strings.EqualFold(m.UUID, id),
			m.Number == id,
			m.Name == id,
			looksLikeUUID(id) && strings.EqualFold(m.Name, id):
			return true
		}
	}
	return false
}

// Author returns the mention's REST form: number, else uuid, else the
// legacy name.
func (m Mention) Author() string {
	return firstNonEmpty(m.Number, m.UUID, m.Name)
}

// OutgoingMentions converts received mentions to /v2/send form, for example
// to pass a quoted message's mentions as quote_mentions. Mentions with no
// identifier are left out. It returns nil for none.
func OutgoingMentions(ms []Mention) []OutgoingMention {
	var out []OutgoingMention
	for _, m := range ms {
		if a := m.Author(); a != "" {
			out = append(out, OutgoingMention{Author: a, Start: int64(m.Start), Length: int64(m.Length)})
		}
	}
	return out
}

// MentionBuilder composes an outgoing text with mentions: AddMention writes
// a placeholder and records its UTF-16 position, so the offsets stay right
// whatever precedes it (emoji and other characters outside the BMP count two
// units). The zero value is ready to use.
type MentionBuilder struct {
	sb       strings.Builder
	units    int
	mentions []OutgoingMention
}

// AddText appends plain text.
func (b *MentionBuilder) AddText(s string) *MentionBuilder {
	b.sb.WriteString(s)
	b.units += UTF16Len(s)
	return b
}

// AddMention appends a mention of author (a number or uuid, as /v2/send
// expects).
func (b *MentionBuilder) AddMention(author string) *MentionBuilder {
	b.mentions = append(b.mentions, OutgoingMention{Author: author, Start: int64(b.units), Length: 1})
	b.sb.WriteString(MentionPlaceholder)
	b.units++
	return b
}

// Text returns the composed text.
func (b *MentionBuilder) Text() string { return b.sb.String() }

// Mentions returns a copy of the recorded mentions, in text order.
func (b *MentionBuilder) Mentions() []OutgoingMention { return slices.Clone(b.mentions) }

// span is a mention's byte range in a text.
type span struct {
	lo, hi int
	m      Mention
}

// mentionSpans returns the byte ranges of the mentions that keep(m) accepts,
// sorted and without overlaps. Mentions whose range is invalid for text
// (out of range, splitting a character, empty, overlapping an earlier one)
// are skipped rather than failing: the text is still usable.
func mentionSpans(text string, mentions []Mention, keep func(Mention) bool) []span {
	var spans []span
	for _, m := range mentions {
		if !keep(m) || m.Length <= 0 || m.Start < 0 || int64(m.Start) > int64(maxInt) || int64(m.Length) > int64(maxInt) {
			continue
		}
		lo, hi, err := utf16Span(text, int(m.Start), int(m.Length))
		if err != nil {
			continue
		}
		spans = append(spans, span{lo, hi, m})
	}
	slices.SortStableFunc(spans, func(a, b span) int { return a.lo - b.lo })
	out := spans[:0]
	end := 0
	for _, s := range spans {
		if s.lo < end {
			continue
		}
		out = append(out, s)
		end = s.hi
	}
	return out
}

// StripMentions returns text with the mentions of any of ids removed, and
// the whitespace around each removal collapsed, so that "@bot !ping" (body
// "\uFFFC !ping" with the bot mentioned) reads "!ping" for command
// matching. Mentions of others stay as placeholders. ids are the bot's
// uuid and/or number; matching uses Mention.Is.
func StripMentions(text string, mentions []Mention, ids ...string) string {
	spans := mentionSpans(text, mentions, func(m Mention) bool { return m.Is(ids...) })
	if len(spans) == 0 {
		return text
	}
	var b strings.Builder
	b.Grow(len(text))
	prev := 0
	for _, s := range spans {
		writeJoined(&b, text[prev:s.lo], prev > 0)
		prev = s.hi
	}
	tail := text[prev:]
	if strings.TrimSpace(tail) == "" {
		// The last removal ends the text: drop the space that led up to it.
		return strings.TrimRightFunc(b.String(), unicode.IsSpace)
	}
	writeJoined(&b, tail, true)
	return b.String()
}

// writeJoined appends seg after a removed mention (when afterRemoval): its
// leading whitespace is dropped if the output is empty or already ends in
// whitespace, so removals leave neither leading nor doubled spaces.
func writeJoined(b *strings.Builder, seg string, afterRemoval bool) {
	if afterRemoval {
		out := b.String()
		r, _ := utf8.DecodeLastRuneInString(out)
		if out == "" || unicode.IsSpace(r) {
			seg = strings.TrimLeftFunc(seg, unicode.IsSpace)
		}
	}
	b.WriteString(seg)
}

// TextWithoutMentionsOf returns the body with the mentions of ids removed;
// see StripMentions.
func (d *DataMessage) TextWithoutMentionsOf(ids ...string) string {
	if d == nil {
		return ""
	}
	return StripMentions(d.Text(), d.Mentions, ids...)
}

// RenderMentions returns text with every mention replaced by "@" and the
// name that name returns for it, for display. A nil name, or an empty
// result, falls back to the mention's number, else uuid. Invalid mention
// ranges are left as they are.
func RenderMentions(text string, mentions []Mention, name func(Mention) string) string {
	spans := mentionSpans(text, mentions, func(Mention) bool { return true })
	if len(spans) == 0 {
		return text
	}
	var b strings.Builder
	prev := 0
	for _, s := range spans {
		b.WriteString(text[prev:s.lo])
		n := ""
		if name != nil {
			n = name(s.m)
		}
		if n == "" {
			n = s.m.Author()
		}
		b.WriteString("@")
		b.WriteString(n)
		prev = s.hi
	}
	b.WriteString(text[prev:])
	return b.String()
}

// RenderMentions renders the body's mentions as "@name"; see the function
// RenderMentions.
func (d *DataMessage) RenderMentions(name func(Mention) string) string {
	if d == nil {
		return ""
	}
	return RenderMentions(d.Text(), d.Mentions, name)
}
