package signal

import (
	"encoding/binary"
	"math/bits"
	"sync"
	"unsafe"
)

// A fast path for the most common frame shape: a wrapper whose envelope
// carries only the sender fields, the timestamps and a plain dataMessage
// (text, timer, view-once, groupInfo), with strings that need no unescaping.
// Every ordinary chat message signal-cli delivers has this shape.
//
// decodeSubset either builds exactly the Frame the full decoder would build
// from the same bytes, or declines (ok=false) and the full decoder runs. It
// declines at the first thing outside the subset: any other key (also a
// known key in another letter case, since the full decoders match keys
// case-insensitively), a repeated key, a backslash or control character in
// a string, a number that is not a plain integer, a non-object envelope, an
// exception or error, trailing bytes. So it never accepts what the full
// decoder rejects, and it cannot disagree on what it accepts; FuzzSubset
// checks both against encoding/json.
//
// It costs about a third of the goccy/go-json decode of the same frame, with
// 2 allocations instead of 23 (BenchmarkDecodeSubset): one copy of the bytes
// for all strings (none when the caller shares them, Decoder.ShareRaw), one
// block for the frame and its parts, no reflection.

type subsetParser struct {
	s   string // the frame, copied once (or shared): every string field is a part of it
	pos int
	blk *subsetBlock
}

// subsetBlock holds every part of a decoded common frame, and its parser, in
// one allocation (the parts live exactly as long as the frame).
type subsetBlock struct {
	frame  Frame
	env    Envelope
	data   DataMessage
	group  GroupInfo
	text   string
	parser subsetParser
}

// blockPool recycles the blocks of frames decoded with Decoder.DecodeScoped,
// whose frames end when the callback returns. A block is ~550 bytes with
// pointers: allocating, zeroing, scanning and sweeping one per frame was
// the largest cost of the ingester's decode after the parse itself.
var blockPool = sync.Pool{New: func() any { return new(subsetBlock) }}

func (p *subsetParser) ws() {
	for p.pos < len(p.s) {
		switch p.s[p.pos] {
		case ' ', '\t', '\n', '\r':
			p.pos++
		default:
			return
		}
	}
}

// lit consumes c after whitespace.
func (p *subsetParser) lit(c byte) bool {
	p.ws()
	if p.pos < len(p.s) && p.s[p.pos] == c {
		p.pos++
		return true
	}
	return false
}

// word consumes a literal word (true, false, null) after whitespace.
func (p *subsetParser) word(w string) bool {
	p.ws()
	if len(p.s)-p.pos >= len(w) && p.s[p.pos:p.pos+len(w)] == w {
		p.pos += len(w)
		return true
	}
	return false
}

// str reads a string without escapes or control characters.
func (p *subsetParser) str() (string, bool) {
	if !p.lit('"') {
		return "", false
	}
	// One pass: the strings of a frame are short, so a byte loop beats
	// IndexByte followed by a second scan for escapes. It looks at eight
	// bytes at a time first and steps bytewise only through a word that
	// holds a quote, a backslash or a control character: most of a frame's
	// bytes are in strings, and this loop was most of its decode.
	s := p.s
	i := p.pos
	for i+8 <= len(s) {
		if m := specialMask(binary.LittleEndian.Uint64(unsafe.Slice(unsafe.StringData(s[i:]), 8))); m != 0 {
			i += bits.TrailingZeros64(m) >> 3 // the first special byte
			break
		}
		i += 8
	}
	for ; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"':
			v := s[p.pos:i]
			p.pos = i + 1
			return v, true
		case c == '\\' || c < 0x20:
			return "", false
		}
	}
	return "", false
}

// Bytes repeated in every lane of a word, for specialMask.
const (
	lanes01 = 0x0101010101010101
	lanes80 = 0x8080808080808080
)

// specialMask marks, in a little-endian word of eight string bytes, the
// bytes that may be '"', '\\' or below 0x20 (bit 7 of each such byte). The
// tests are the "has a zero byte" (of w^quote and w^backslash) and "has a
// byte below n" bit tricks: a special byte is never missed, and the lowest
// mark is exact (a borrow can only mark bytes above a real one), so it is
// the first special byte. Bytes of 0x80 and above (UTF-8) are not special.
func specialMask(w uint64) uint64 {
	q := w ^ (lanes01 * '"')
	b := w ^ (lanes01 * '\\')
	return ((q-lanes01)&^q | (b-lanes01)&^b | (w-lanes01*0x20)&^w) & lanes80
}

// nullableStr reads a string or null ("" then, as the full decoder leaves
// the fresh field unchanged).
func (p *subsetParser) nullableStr() (string, bool) {
	if p.word("null") {
		return "", true
	}
	return p.str()
}

// int64v reads a JSON integer -?(0|[1-9][0-9]*) in the int64 range, or null
// (0); anything else (fractions, exponents, strings) declines.
func (p *subsetParser) int64v() (Int64, bool) {
	if p.word("null") {
		return 0, true
	}
	start := p.pos
	if p.pos < len(p.s) && p.s[p.pos] == '-' {
		p.pos++
	}
	digits := p.pos
	for p.pos < len(p.s) && p.s[p.pos] >= '0' && p.s[p.pos] <= '9' {
		p.pos++
	}
	n := p.pos - digits
	if n == 0 || (n > 1 && p.s[digits] == '0') {
		return 0, false
	}
	if p.pos < len(p.s) {
		switch p.s[p.pos] {
		case '.', 'e', 'E':
			return 0, false
		}
	}
	v, ok := parseDecimalBytes(p.s[start:p.pos])
	return Int64(v), ok
}

func (p *subsetParser) boolv() (bool, bool) {
	switch {
	case p.word("true"):
		return true, true
	case p.word("false"), p.word("null"):
		return false, true
	}
	return false, false
}

// object reads the members of an object whose '{' is next: index maps each
// key to its member number (0..63) or -1, and member reads that member's
// value. Keys must be known and distinct; anything else declines.
func (p *subsetParser) object(index func(string) int, member func(i int) bool) bool {
	if !p.lit('{') {
		return false
	}
	if p.lit('}') {
		return true
	}
	var seen uint64
	for {
		k, ok := p.str()
		if !ok || !p.lit(':') {
			return false
		}
		i := index(k)
		if i < 0 || seen&(1<<i) != 0 {
			return false
		}
		seen |= 1 << i
		p.ws()
		if !member(i) {
			return false
		}
		if p.lit(',') {
			continue
		}
		return p.lit('}')
	}
}

func topKey(k string) int {
	switch k {
	case "envelope":
		return 0
	case "account":
		return 1
	}
	return -1
}

func envelopeKey(k string) int {
	switch k {
	case "source":
		return 0
	case "sourceNumber":
		return 1
	case "sourceUuid":
		return 2
	case "sourceName":
		return 3
	case "sourceDevice":
		return 4
	case "timestamp":
		return 5
	case "serverReceivedTimestamp":
		return 6
	case "serverDeliveredTimestamp":
		return 7
	case "dataMessage":
		return 8
	}
	return -1
}

func dataKey(k string) int {
	switch k {
	case "timestamp":
		return 0
	case "message":
		return 1
	case "expiresInSeconds":
		return 2
	case "isExpirationUpdate":
		return 3
	case "viewOnce":
		return 4
	case "groupInfo":
		return 5
	}
	return -1
}

func groupKey(k string) int {
	switch k {
	case "groupId":
		return 0
	case "groupName":
		return 1
	case "revision":
		return 2
	case "type":
		return 3
	}
	return -1
}

// decodeSubset decodes raw, which is valid UTF-8 and not empty, when it has
// the common shape; see the top of this file. With share, the strings of the
// frame are parts of raw itself, which the caller then never changes.
func decodeSubset(raw []byte, share bool) (*Frame, bool) {
	return decodeSubsetInto(new(subsetBlock), raw, share)
}

// decodeSubsetInto is decodeSubset into a zeroed block.
func decodeSubsetInto(blk *subsetBlock, raw []byte, share bool) (*Frame, bool) {
	p := &blk.parser
	p.blk = blk
	if share {
		p.s = unsafe.String(unsafe.SliceData(raw), len(raw))
	} else {
		p.s = string(raw)
	}
	f := &p.blk.frame
	f.Type = FrameWrapper
	ok := p.object(topKey, func(i int) bool {
		if i == 1 {
			var ok bool
			f.Account, ok = p.nullableStr()
			return ok
		}
		f.Envelope = &p.blk.env
		return p.envelope(f.Envelope)
	})
	p.ws()
	if !ok || p.pos != len(p.s) || f.Envelope == nil {
		return nil, false
	}
	return f, true
}

func (p *subsetParser) envelope(e *Envelope) bool {
	return p.object(envelopeKey, func(i int) bool {
		var ok bool
		switch i {
		case 0:
			e.Source, ok = p.nullableStr()
		case 1:
			e.SourceNumber, ok = p.nullableStr()
		case 2:
			e.SourceUUID, ok = p.nullableStr()
		case 3:
			e.SourceName, ok = p.nullableStr()
		case 4:
			e.SourceDevice, ok = p.int64v()
		case 5:
			e.Timestamp, ok = p.int64v()
		case 6:
			e.ServerReceivedTimestamp, ok = p.int64v()
		case 7:
			e.ServerDeliveredTimestamp, ok = p.int64v()
		case 8:
			if p.word("null") {
				return true
			}
			e.DataMessage = &p.blk.data
			ok = p.data(e.DataMessage)
		}
		return ok
	})
}

func (p *subsetParser) data(d *DataMessage) bool {
	return p.object(dataKey, func(i int) bool {
		var ok bool
		switch i {
		case 0:
			d.Timestamp, ok = p.int64v()
		case 1:
			if p.word("null") {
				return true
			}
			t := &p.blk.text
			if *t, ok = p.str(); ok {
				d.Message = t
			}
		case 2:
			d.ExpiresInSeconds, ok = p.int64v()
		case 3:
			d.IsExpirationUpdate, ok = p.boolv()
		case 4:
			d.ViewOnce, ok = p.boolv()
		case 5:
			if p.word("null") {
				return true
			}
			g := &p.blk.group
			d.GroupInfo = g
			ok = p.object(groupKey, func(i int) bool {
				var ok bool
				switch i {
				case 0:
					g.GroupID, ok = p.nullableStr()
				case 1:
					g.GroupName, ok = p.nullableStr()
				case 2:
					g.Revision, ok = p.int64v()
				case 3:
					g.Type, ok = p.nullableStr()
				}
				return ok
			})
		}
		return ok
	})
}
