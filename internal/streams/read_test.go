package streams

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"testing"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
)

// normalize puts a read in a comparable form: streams and each entry's
// field/value pairs sorted (go-redis' map has no order).
func normalize(res []StreamMessages) string {
	sort.Slice(res, func(i, j int) bool { return res[i].Stream < res[j].Stream })
	var b strings.Builder
	for _, s := range res {
		fmt.Fprintf(&b, "%s:", s.Stream)
		for _, m := range s.Messages {
			var pairs []string
			for i := 0; i+1 < len(m.Values); i += 2 {
				pairs = append(pairs, m.Values[i]+"="+m.Values[i+1])
			}
			sort.Strings(pairs)
			fmt.Fprintf(&b, " %s{nil=%v %s}", m.ID, m.Values == nil, strings.Join(pairs, ","))
		}
		b.WriteString("\n")
	}
	return b.String()
}

func typedRead(t *testing.T, c *redis.Client, group string, keys, ids []string) []StreamMessages {
	t.Helper()
	res, err := c.XReadGroup(context.Background(), &redis.XReadGroupArgs{Group: group, Consumer: "c", Streams: append(append([]string{}, keys...), ids...), Count: 100}).Result()
	if err != nil {
		t.Fatalf("typed read: %v", err)
	}
	out := make([]StreamMessages, len(res))
	for i, s := range res {
		out[i] = StreamMessages{Stream: s.Stream, Messages: MessagesOf(s.Messages)}
	}
	return out
}

// ReadGroup must return what go-redis' own XReadGroup returns, on RESP2 and
// RESP3, on Redis and on the embedded store, for every shape an entry has.
func TestReadGroupMatchesTypedRead(t *testing.T) {
	mini := miniredis.RunT(t)
	for _, tc := range []struct {
		name  string
		addr  string
		proto int
	}{
		{"redis resp3", srv.Addr, 3},
		{"redis resp2", srv.Addr, 2},
		{"embedded resp2", mini.Addr(), 2},
		{"embedded resp3", mini.Addr(), 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			opts := &redis.Options{Addr: tc.addr, Protocol: tc.proto}
			if tc.addr == srv.Addr {
				opts.Password = srv.Client().Options().Password
			}
			c := redis.NewClient(opts)
			defer c.Close()
			p := strings.ReplaceAll(t.Name(), "/", "-")
			keys := []string{p + ":a", p + ":b", p + ":empty"}
			for _, k := range keys {
				if err := c.XGroupCreateMkStream(ctx, k, "g1", "0").Err(); err != nil {
					t.Fatal(err)
				}
				if err := c.XGroupCreate(ctx, k, "g2", "0").Err(); err != nil {
					t.Fatal(err)
				}
			}
			add := func(k string, vals ...any) string {
				id, err := c.XAdd(ctx, &redis.XAddArgs{Stream: k, Values: vals}).Result()
				if err != nil {
					t.Fatal(err)
				}
				return id
			}
			big := strings.Repeat("ü\r\n$*", 200) // RESP framing bytes inside a value
			add(keys[0], FieldMeta, "1|message|1|2|3|i|u:a", FieldPayload, big)
			add(keys[0], "only", "")
			add(keys[1], FieldMeta, "x", FieldPayload, "p", FieldOriginalID, "1-1", FieldReplayCount, "2")
			gone := add(keys[1], FieldMeta, "y", FieldPayload, "q")

			buf := new(ReadBuffer) // reused by every read below
			fresh := []string{">", ">", ">"}
			raw, err := ReadGroup(ctx, c, buf, "g1", "c", 100, keys, fresh)
			if err != nil {
				t.Fatal(err)
			}
			typed := typedRead(t, c, "g2", keys, fresh)
			if got, want := normalize(raw), normalize(typed); got != want {
				t.Fatalf("raw read\n%s\ntyped read\n%s", got, want)
			}
			if len(raw) != 2 || len(raw[0].Messages)+len(raw[1].Messages) != 4 {
				t.Fatalf("want 4 entries of 2 streams, got %s", normalize(raw))
			}

			// An entry deleted while pending comes back as its id alone.
			if err := c.XDel(ctx, keys[1], gone).Err(); err != nil {
				t.Fatal(err)
			}
			hist := []string{"0", "0", "0"}
			raw, err = ReadGroup(ctx, c, buf, "g1", "c", 100, keys, hist)
			if err != nil {
				t.Fatal(err)
			}
			typed = typedRead(t, c, "g2", keys, hist)
			if got, want := normalize(raw), normalize(typed); got != want {
				t.Fatalf("history: raw read\n%s\ntyped read\n%s", got, want)
			}
			// (The embedded store leaves such an entry out instead.)
			if tc.addr == srv.Addr && !strings.Contains(normalize(raw), gone+"{nil=true") {
				t.Fatalf("deleted entry %s not read as nil: %s", gone, normalize(raw))
			}

			// Nothing new: redis.Nil, as from go-redis.
			if _, err := ReadGroup(ctx, c, buf, "g1", "c", 100, keys, fresh); !errors.Is(err, redis.Nil) {
				t.Fatalf("empty read: %v, want redis.Nil", err)
			}
			// An error reply is an error naming it.
			_, err = ReadGroup(ctx, c, buf, "nogroup", "c", 100, keys, fresh)
			if err == nil || !strings.Contains(err.Error(), "NOGROUP") {
				t.Fatalf("missing group: %v, want a NOGROUP error", err)
			}
			// The parsed entry reads like one parsed from go-redis' form.
			raw, _ = ReadGroup(ctx, c, buf, "g1", "c", 1, keys[:1], []string{"0"})
			e, err := ParseMessage(raw[0].Messages[0])
			if err != nil || e.Conversation != "u:a" || string(e.Payload) != big || raw[0].Messages[0].Conversation() != "u:a" {
				t.Fatalf("parsed %+v, %v", e, err)
			}
		})
	}
}

// A reply cut anywhere is an error, never a panic or a short read.
func TestParseReadReplyTruncated(t *testing.T) {
	full := "*1\r\n*2\r\n$3\r\nkey\r\n*1\r\n*2\r\n$3\r\n1-1\r\n*4\r\n$1\r\nm\r\n$2\r\nab\r\n$1\r\np\r\n+ok\r\n"
	res, err := parseReadReply([]byte(full))
	if err != nil || len(res) != 1 || len(res[0].Messages) != 1 || res[0].Messages[0].Value("p") != "ok" || res[0].Messages[0].ID != "1-1" {
		t.Fatalf("full reply: %+v, %v", res, err)
	}
	for i := 1; i < len(full); i++ {
		if _, err := parseReadReply([]byte(full[:i])); err == nil {
			t.Fatalf("reply cut at %d of %d parsed without error", i, len(full))
		}
	}
}

func TestParseReadReplyShapes(t *testing.T) {
	for _, tc := range []struct {
		name, reply, want string
	}{
		{"resp2 null", "*-1\r\n", "nil"},
		{"resp3 null", "_\r\n", "nil"},
		{"error", "-NOGROUP No such key\r\n", "NOGROUP No such key"},
		{"blob error", "!5\r\nBUSY!\r\n", "BUSY!"},
		{"not an array", ":1\r\n", `reply of type ':'`},
		{"bad length", "*x\r\n", "bad length"},
		{"stream of 3 parts", "*1\r\n*3\r\n", "3 parts"},
		{"entry not an array", "*1\r\n*2\r\n$1\r\nk\r\n*1\r\n$1\r\nx\r\n", "entry of type '$'"},
		{"resp3 field map", "%1\r\n$1\r\nk\r\n*1\r\n*2\r\n$3\r\n1-1\r\n%1\r\n$1\r\nf\r\n$1\r\nv\r\n", "ok k 1-1 f=v"},
		{"extra entry parts", "*1\r\n*2\r\n$1\r\nk\r\n*1\r\n*4\r\n$3\r\n1-1\r\n*2\r\n$1\r\nf\r\n$1\r\nv\r\n:10\r\n:2\r\n", "ok k 1-1 f=v"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := parseReadReply([]byte(tc.reply))
			var got string
			switch {
			case errors.Is(err, redis.Nil):
				got = "nil"
			case err != nil:
				got = err.Error()
			default:
				got = "ok"
				for _, s := range res {
					got += " " + s.Stream
					for _, m := range s.Messages {
						got += " " + m.ID
						for i := 0; i+1 < len(m.Values); i += 2 {
							got += " " + m.Values[i] + "=" + m.Values[i+1]
						}
					}
				}
			}
			if !strings.Contains(got, tc.want) {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
}

// A kept entry must not keep the whole reply alive: its strings are views of
// its own copy.
func TestReadGroupEntryOwnsItsBytes(t *testing.T) {
	reply := []byte("*1\r\n*2\r\n$1\r\nk\r\n*2\r\n*2\r\n$3\r\n1-1\r\n*2\r\n$1\r\nf\r\n$1\r\nv\r\n*2\r\n$3\r\n1-2\r\n*2\r\n$1\r\nf\r\n$1\r\nw\r\n")
	res, err := parseReadReply(reply)
	if err != nil {
		t.Fatal(err)
	}
	for i := range reply {
		reply[i] = 'X'
	}
	m := res[0].Messages
	if m[0].ID != "1-1" || m[0].Value("f") != "v" || m[1].ID != "1-2" || m[1].Value("f") != "w" || res[0].Stream != "k" {
		t.Fatalf("entries changed with the reply buffer: %+v", res)
	}
}
