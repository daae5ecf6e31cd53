package e2e

import (
	"testing"
	"time"

	"github.com/signal-client/signal-client/internal/redistest"
)

// The all-in-one process on the embedded store: the same pipeline as the
// cluster, messages in, ordered replies out, without any Redis.
func TestAllInOneOnEmbeddedStore(t *testing.T) {
	e := newEnv(t, redistest.Options{})
	env := e.env(map[string]string{"STORAGE_TYPE": "memory"})
	delete(env, "REDIS_URL")
	p := StartProc(t, e.Dir, "signal-client", "all", env)
	p.WaitReady(t, 20*time.Second)
	e.waitSockets(1)
	tr := e.sendEchoes(10, 20, 400)
	tr.wait()
	Eventually(t, 30*time.Second, func() bool { return countReplies(e.replies()) >= 200 }, "200 replies")
	if dups := checkReplies(t, e.replies(), 10, 20); dups != 0 {
		t.Fatalf("%d duplicates", dups)
	}
	if err := p.Term(10 * time.Second); err != nil {
		t.Fatalf("graceful stop: %v", err)
	}
}
