package run

import (
	"strings"
	"testing"

	"github.com/signal-client/signal-client/bot"
	"github.com/signal-client/signal-client/internal/app"
)

func TestFactoryRefusesMissingParts(t *testing.T) {
	_, err := Factory(bot.New())(&app.Base{})
	if err == nil || !strings.Contains(err.Error(), "SIGNAL_API_URL, SIGNAL_PHONE_NUMBER and Redis") {
		t.Fatalf("factory without REST and Redis: %v", err)
	}
}
