package streams

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/redis/go-redis/v9"
)

// Message is one stream entry as read from Redis: its id and its field/value
// pairs. It is the worker's form of an entry: go-redis' XMessage costs a map
// and a boxed string per value, about ten allocations per entry, which was
// the largest share of the worker's read path (docs/performance.md).
type Message struct {
	ID string
	// Values holds field, value, field, value, …; nil for an entry deleted
	// while still pending (Redis returns its id alone).
	Values []string
}

// Value returns the value of field ("" when absent).
func (m Message) Value(field string) string {
	for i := 0; i+1 < len(m.Values); i += 2 {
		if m.Values[i] == field {
			return m.Values[i+1]
		}
	}
	return ""
}

// Conversation returns the entry's conversation key without parsing the rest
// ("" when the metadata is unreadable).
func (m Message) Conversation() string { return metaConversation(m.Value(FieldMeta)) }

// MessageOf converts go-redis' form of an entry (XCLAIM and the rarer paths
// read entries that way).
func MessageOf(x redis.XMessage) Message {
	m := Message{ID: x.ID}
	if x.Values != nil {
		m.Values = make([]string, 0, 2*len(x.Values))
		for k, v := range x.Values {
			s, _ := v.(string)
			m.Values = append(m.Values, k, s)
		}
	}
	return m
}

// MessagesOf converts a slice of go-redis entries.
func MessagesOf(xs []redis.XMessage) []Message {
	out := make([]Message, len(xs))
	for i, x := range xs {
		out[i] = MessageOf(x)
	}
	return out
}

// StreamMessages are the entries one read returned from one stream.
type StreamMessages struct {
	Stream   string
	Messages []Message
}

// processor is what ReadGroup needs of a client or a dedicated connection.
type processor interface {
	Process(ctx context.Context, cmd redis.Cmder) error
}

// ReadGroup runs XREADGROUP GROUP group consumer COUNT count STREAMS keys…
// ids… without BLOCK and parses the reply itself (parseReadReply). It returns
// redis.Nil when no stream had an entry. It does not block because go-redis
// extends the socket's read deadline by BLOCK only for its own typed
// command; a blocking read goes through XReadGroup. buf holds the raw reply
// and is reused by the next call (nil: a fresh one); callers that read in a
// loop keep one per goroutine.
func ReadGroup(ctx context.Context, c processor, buf *ReadBuffer, group, consumer string, count int64, keys, ids []string) ([]StreamMessages, error) {
	args := make([]any, 0, 7+len(keys)+len(ids))
	args = append(args, "XREADGROUP", "GROUP", group, consumer, "COUNT", count, "STREAMS")
	for _, k := range keys {
		args = append(args, k)
	}
	for _, id := range ids {
		args = append(args, id)
	}
	if buf == nil {
		buf = new(ReadBuffer)
	}
	buf.b = buf.b[:0]
	cmd := redis.NewRawWriteToCmd(ctx, buf, args...)
	defer buf.release()
	if err := c.Process(ctx, cmd); err != nil {
		return nil, err
	}
	return parseReadReply(buf.b)
}

// ReadBuffer receives a raw reply. go-redis' own raw read (ReadRawReply)
// grows a fresh slice per reply, which for a burst (a reply of a megabyte
// or more) cost twice what the typed read did; the entries are copied out
// of the reply anyway, so one buffer serves every read.
type ReadBuffer struct{ b []byte }

// maxKeptReadBuffer: a larger buffer (one unusually large reply) is let go
// rather than kept for the worker's lifetime.
const maxKeptReadBuffer = 4 << 20

func (w *ReadBuffer) release() {
	if cap(w.b) > maxKeptReadBuffer {
		w.b = nil
	}
}

// Write appends p (go-redis writes each line of the reply).
func (w *ReadBuffer) Write(p []byte) (int, error) {
	w.b = append(w.b, p...)
	return len(p), nil
}

// ReadFrom appends what r has: go-redis copies each bulk string with
// io.CopyN, which without ReadFrom would allocate a buffer per string.
func (w *ReadBuffer) ReadFrom(r io.Reader) (int64, error) {
	var n int64
	for {
		if len(w.b) == cap(w.b) {
			w.b = slices.Grow(w.b, 4096)
		}
		m, err := r.Read(w.b[len(w.b):cap(w.b)])
		w.b = w.b[:len(w.b)+m]
		n += int64(m)
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}

// replyError is an error reply found in a raw reply.
type replyError string

func (e replyError) Error() string { return string(e) }

// errShortReply: the raw reply ended inside an element.
var errShortReply = errors.New("streams: truncated XREADGROUP reply")

// parseReadReply parses the RESP2 or RESP3 reply of XREADGROUP / XREAD: an
// array (RESP2) or map (RESP3) of stream name → array of [id, [field, value,
// …]]. Every entry's id and values are copied into one string of their own,
// so that an entry kept by a handler keeps only its own bytes alive, not the
// whole reply; the Values slices of one stream's entries share one array.
func parseReadReply(b []byte) ([]StreamMessages, error) {
	p := respParser{b: b}
	kind, n, err := p.header()
	if err != nil {
		return nil, err
	}
	switch kind {
	case '_':
		return nil, redis.Nil
	case '*', '%':
	default:
		return nil, fmt.Errorf("streams: XREADGROUP reply of type %q", kind)
	}
	if n < 0 {
		return nil, redis.Nil
	}
	var vals []string
	out := make([]StreamMessages, 0, n)
	for range n {
		if kind == '*' {
			if _, m, err := p.header(); err != nil {
				return nil, err
			} else if m != 2 {
				return nil, fmt.Errorf("streams: XREADGROUP stream element of %d parts", m)
			}
		}
		name, err := p.str()
		if err != nil {
			return nil, err
		}
		_, ne, err := p.header()
		if err != nil {
			return nil, err
		}
		s := StreamMessages{Stream: string(p.b[name.lo:name.hi])}
		if ne > 0 {
			s.Messages = make([]Message, 0, ne)
			// Room for two fields per entry (the format's m and p); more
			// grows the slice, and earlier entries keep the older array.
			if cap(vals)-len(vals) < 4*ne {
				vals = make([]string, 0, 4*ne)
			}
		}
		for range ne {
			var m Message
			if m, vals, err = p.entry(vals); err != nil {
				return nil, err
			}
			s.Messages = append(s.Messages, m)
		}
		out = append(out, s)
	}
	return out, nil
}

// respParser walks a raw RESP reply.
type respParser struct {
	b []byte
	i int
}

// header reads an element's type byte and its count or length (-1 for a
// RESP2 null). An error reply comes back as the error.
func (p *respParser) header() (byte, int, error) {
	if p.i >= len(p.b) {
		return 0, 0, errShortReply
	}
	kind := p.b[p.i]
	end := p.i + 1
	for end < len(p.b) && p.b[end] != '\r' {
		end++
	}
	if end+1 >= len(p.b) {
		return 0, 0, errShortReply
	}
	line := p.b[p.i+1 : end]
	p.i = end + 2
	switch kind {
	case '-':
		return 0, 0, replyError(line)
	case '!':
		n, ok := parseLen(line)
		if !ok || n < 0 || p.i+n+2 > len(p.b) {
			return 0, 0, errShortReply
		}
		msg := string(p.b[p.i : p.i+n])
		p.i += n + 2
		return 0, 0, replyError(msg)
	case '+':
		return kind, len(line), nil
	case '$', '*', '%', '~', '>', '|', '=':
		n, ok := parseLen(line)
		if !ok {
			return 0, 0, fmt.Errorf("streams: XREADGROUP reply: bad length %q", line)
		}
		return kind, n, nil
	case '_':
		return kind, -1, nil
	}
	return kind, 0, nil // a number, boolean, …: one line
}

// parseLen parses a RESP length: digits, or -1.
func parseLen(b []byte) (int, bool) {
	if len(b) == 2 && b[0] == '-' && b[1] == '1' {
		return -1, true
	}
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = 10*n + int(c-'0')
	}
	return n, true
}

// span is where a string's bytes lie in the reply.
type span struct{ lo, hi int }

// str reads a bulk or simple string and says where its bytes are.
func (p *respParser) str() (span, error) {
	start := p.i
	kind, n, err := p.header()
	if err != nil {
		return span{}, err
	}
	switch kind {
	case '+':
		return span{start + 1, start + 1 + n}, nil
	case '$':
		if n < 0 {
			return span{p.i, p.i}, nil
		}
		if p.i+n+2 > len(p.b) {
			return span{}, errShortReply
		}
		sp := span{p.i, p.i + n}
		p.i += n + 2
		return sp, nil
	}
	return span{}, fmt.Errorf("streams: XREADGROUP reply: expected a string, got type %q", kind)
}

// entry reads [id, [field, value, …]] into a Message whose strings are views
// of one copy of the entry's bytes; the values are appended to vals.
func (p *respParser) entry(vals []string) (Message, []string, error) {
	kind, n, err := p.header()
	if err != nil {
		return Message{}, vals, err
	}
	if kind != '*' || n < 2 {
		return Message{}, vals, fmt.Errorf("streams: XREADGROUP entry of type %q and %d parts", kind, n)
	}
	id, err := p.str()
	if err != nil {
		return Message{}, vals, err
	}
	fk, nf, err := p.header()
	if err != nil {
		return Message{}, vals, err
	}
	if fk == '%' {
		nf *= 2
	}
	var spans [8]span
	sp := spans[:0]
	for range max(nf, 0) {
		v, err := p.str()
		if err != nil {
			return Message{}, vals, err
		}
		sp = append(sp, v)
	}
	// Entries of a newer Redis carry more parts (e.g. delivery metadata).
	for range n - 2 {
		if err := p.skip(); err != nil {
			return Message{}, vals, err
		}
	}
	lo, hi := id.lo, id.hi
	if len(sp) > 0 {
		hi = sp[len(sp)-1].hi
	}
	one := string(p.b[lo:hi])
	m := Message{ID: one[:id.hi-lo]}
	if nf >= 0 && (fk == '*' || fk == '%') {
		first := len(vals)
		for _, s := range sp {
			vals = append(vals, one[s.lo-lo:s.hi-lo])
		}
		m.Values = vals[first:len(vals):len(vals)]
	}
	return m, vals, nil
}

// skip passes over one element of any type.
func (p *respParser) skip() error {
	kind, n, err := p.header()
	if err != nil {
		return err
	}
	switch kind {
	case '$', '=':
		if n > 0 {
			p.i += n + 2
		}
	case '*', '~', '>':
		for range max(n, 0) {
			if err := p.skip(); err != nil {
				return err
			}
		}
	case '%', '|':
		for range max(2*n, 0) {
			if err := p.skip(); err != nil {
				return err
			}
		}
	}
	if p.i > len(p.b) {
		return errShortReply
	}
	return nil
}
