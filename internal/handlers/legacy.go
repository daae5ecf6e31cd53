package handlers

import (
	"context"
	"errors"
	"net"
	"strings"
	"time"

	"github.com/signal-client/signal-client/internal/signal"
	"github.com/signal-client/signal-client/internal/signal/rest"
	"github.com/signal-client/signal-client/internal/worker"
)

// Sender is the part of the REST client the built-ins use.
type Sender interface {
	Send(ctx context.Context, req rest.SendRequest) (rest.SendResult, error)
}

// RateLimitPause is how long an account pauses after a 429 (ARCHITECTURE §7.3).
const RateLimitPause = 60 * time.Second

// Builtins answers !ping and !echo without the bot API.
//
// Deprecated: internal/app still builds it; it goes once app uses New
// (see the bot issue's report). Remove this file then.
type Builtins struct {
	Sender Sender
}

// Handle implements worker.Handler.
func (b Builtins) Handle(ctx context.Context, m *worker.Message) error {
	if m.Frame == nil || m.Frame.Kind() != signal.KindMessage {
		return nil
	}
	text := strings.TrimSpace(m.Frame.Text())
	var reply string
	switch {
	case text == "!ping" || strings.HasPrefix(text, "!ping "):
		reply = "pong"
	case strings.HasPrefix(text, "!echo ") || strings.HasPrefix(text, "!echo\n"):
		reply = strings.TrimSpace(text[len("!echo"):])
	default:
		return nil
	}
	if reply == "" {
		return nil
	}
	_, err := b.Sender.Send(ctx, rest.SendRequest{Recipients: []string{m.Frame.Conversation().Recipient}, Message: reply})
	return Classify(err)
}

// Classify turns REST failures that are not the message's fault into
// worker infrastructure errors (the attempt is refunded and the conversation
// pauses): rate limits, 5xx and transport failures. A send whose outcome is
// unknown is not repeated (it may have been delivered; ARCHITECTURE §8).
func Classify(err error) error {
	if err == nil {
		return nil
	}
	var rl *rest.RateLimitError
	var api *rest.APIError
	var nerr net.Error
	switch {
	case errors.Is(err, rest.ErrUnknownOutcome):
		return nil
	case errors.As(err, &rl):
		return worker.Infrastructure(err, RateLimitPause)
	case errors.As(err, &api):
		if api.Status >= 500 || api.NoRoute {
			return worker.Infrastructure(err, 0)
		}
		return err
	case errors.As(err, &nerr), errors.Is(err, context.DeadlineExceeded):
		return worker.Infrastructure(err, 0)
	}
	return worker.Infrastructure(err, 0)
}
