package rest_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/signal-client/signal-client/internal/emulator"
	"github.com/signal-client/signal-client/internal/signal"
	"github.com/signal-client/signal-client/internal/signal/rest"
)

// The client against the emulator in both 201 profiles: what it sends is
// what the emulator records, what it decodes is what the emulator answered,
// and the emulator's errors map to the typed errors.
func TestClientAgainstEmulator(t *testing.T) {
	for _, profile := range []string{emulator.ProfileRelease, emulator.ProfileHead} {
		t.Run(profile, func(t *testing.T) {
			emu := emulator.New(emulator.Config{Profile: profile})
			if err := emu.Start(); err != nil {
				t.Fatal(err)
			}
			defer emu.Close()
			c, err := rest.New(rest.Options{BaseURL: emu.URL(), Number: emulator.DefaultAccount, Timeout: 2 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()

			about, err := c.About(ctx)
			if err != nil || about.Mode != "json-rpc" || about.Version != "0.100" {
				t.Fatalf("about %+v %v", about, err)
			}
			res, err := c.Send(ctx, rest.SendRequest{Recipients: []string{"+15550000002"}, Message: "hello 👋"})
			if err != nil {
				t.Fatal(err)
			}
			calls := emu.Calls(emulator.CallFilter{Route: "/v2/send"})
			if len(calls) != 1 || calls[0].Timestamp != res.Timestamp || res.Timestamp == 0 {
				t.Fatalf("send result %d, emulator recorded %+v", res.Timestamp, calls)
			}
			body := calls[0].Body.(map[string]any)
			if body["message"] != "hello 👋" || body["number"] != emulator.DefaultAccount {
				t.Fatalf("recorded body %v", body)
			}

			// A group reply uses the REST id of the internal id in received JSON.
			g, err := emu.AddGroup(emulator.DefaultAccount, emulator.Group{Name: "Ops"})
			if err != nil {
				t.Fatal(err)
			}
			if signal.GroupRESTID(g.ID) != g.RESTID() {
				t.Fatalf("our REST id %s, emulator's %s", signal.GroupRESTID(g.ID), g.RESTID())
			}
			if _, err := c.Send(ctx, rest.SendRequest{Recipients: []string{signal.GroupRESTID(g.ID)}, Message: "to the group"}); err != nil {
				t.Fatalf("group send: %v", err)
			}

			// Validation errors keep the upstream text.
			_, err = c.Send(ctx, rest.SendRequest{Recipients: []string{"group.x", "+15550000002"}, Message: "x"})
			var api *rest.APIError
			if !errors.As(err, &api) || api.Status != 400 {
				t.Fatalf("mixed recipients: %v", err)
			}

			// 429 with challenge tokens.
			emu.Faults().RateLimitSend([]string{"tok-1"}, 1)
			_, err = c.Send(ctx, rest.SendRequest{Recipients: []string{"+15550000002"}, Message: "x"})
			var rl *rest.RateLimitError
			if !errors.As(err, &rl) || rl.Status != 429 || len(rl.ChallengeTokens) != 1 || rl.ChallengeTokens[0] != "tok-1" {
				t.Fatalf("rate limit: %v", err)
			}

			// A send whose answer never comes is an unknown outcome, not a plain timeout.
			emu.Faults().HangSends(1)
			hctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
			_, err = c.Send(hctx, rest.SendRequest{Recipients: []string{"+15550000002"}, Message: "maybe"})
			cancel()
			if !errors.Is(err, rest.ErrUnknownOutcome) {
				t.Fatalf("hung send: %v", err)
			}
			emu.Faults().ClearREST()

			// Not found vs no route.
			if _, err := c.GetGroup(ctx, signal.GroupRESTID("R6fG4/C/ETxPPxIu+ObgS+hSl6DmDkBP7llnAf8KplU=")); !rest.IsNotFound(err) {
				t.Fatalf("unknown group: %v", err)
			}
			if err := c.Health(ctx); err != nil {
				t.Fatalf("health: %v", err)
			}
		})
	}
}
