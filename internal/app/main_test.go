package app

import (
	"runtime/debug"
	"testing"

	"github.com/signal-client/signal-client/internal/config"
)

func TestSetGCPercent(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	for _, tc := range []struct {
		role string
		gogc string // "" = unset
		want bool
	}{
		{config.RoleWorker, "", true},
		{config.RoleAll, "", true},
		{config.RoleWorker, "100", false},
		{config.RoleWorker, "off", false},
		{config.RoleIngester, "", false},
		{config.RoleDLQCtl, "", false},
	} {
		debug.SetGCPercent(100)
		lookup := func(k string) (string, bool) {
			if k == "GOGC" && tc.gogc != "" {
				return tc.gogc, true
			}
			return "", false
		}
		got := setGCPercent(tc.role, lookup)
		now := debug.SetGCPercent(100)
		if got != tc.want || (now == workerGCPercent) != tc.want {
			t.Errorf("role %s GOGC=%q: applied=%v, GC percent %d; want applied=%v", tc.role, tc.gogc, got, now, tc.want)
		}
	}
}
