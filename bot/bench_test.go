package bot

import (
	"context"
	"testing"

	"github.com/signal-client/signal-client/internal/signal"
)

// BenchmarkDispatch is the bot API's own cost per message, before any
// handler work: a decoded 1:1 text through a router shaped like the built-in
// one (commands that do not match it, two event routes), as in the
// end-to-end no-op run. Compare ns/op and allocs/op:
//
//	go test -run '^$' -bench Dispatch -count 6 ./bot/
func BenchmarkDispatch(b *testing.B) {
	r := New()
	noop := func(*Context) error { return nil }
	r.Command("!ping", noop)
	r.Command("!echo", noop)
	r.Command("!count", noop)
	r.On(EventReaction, noop)
	r.On(EventEdit, noop)
	r.Command("!help", noop)
	raw := []byte(`{"envelope":{"source":"+15550000042","sourceNumber":"+15550000042","sourceUuid":"3f1c7a52-8e0b-4d1e-9a52-000000000042","sourceName":"U","sourceDevice":1,"timestamp":1767225600000,"dataMessage":{"timestamp":1767225600000,"message":"hello there","expiresInSeconds":0,"viewOnce":false}},"account":"+15550000001"}`)
	f, err := signal.Decode(raw)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.ReportAllocs()
	for range b.N {
		if err := r.Dispatch(ctx, Update{Raw: raw, Frame: f, ID: "1-1", Conversation: "u:x", Self: Self{Number: "+15550000001"}}); err != nil {
			b.Fatal(err)
		}
	}
}
