// Package memstore runs the embedded, Redis-compatible store behind
// STORAGE_TYPE=memory (github.com/alicebob/miniredis/v2): the one-process
// signal-client uses it so a newcomer needs no Redis. It listens on a
// loopback port with a password, so dlqctl can reach it, and it drives the
// store's clock, because miniredis does not expire keys by itself: leases,
// locks and dedup windows must expire as on a real Redis. Nothing is kept on
// disk; a restart loses everything.
package memstore

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/alicebob/miniredis/v2"
)

// Store is a running embedded store.
type Store struct {
	m        *miniredis.Miniredis
	Password string
	stop     chan struct{}
	wg       sync.WaitGroup
}

// Options configure Start.
type Options struct {
	// Addr is the loopback address to listen on; "127.0.0.1:0" picks a free port.
	Addr string
	// Password protects the store; a random one when empty.
	Password string
	// Tick is how often the clock is advanced (default 50ms): TTLs expire
	// within one tick of when a real Redis would expire them.
	Tick time.Duration
}

// Start runs the store until Close.
func Start(o Options) (*Store, error) {
	if o.Addr == "" {
		o.Addr = "127.0.0.1:0"
	}
	host, _, err := net.SplitHostPort(o.Addr)
	if err != nil {
		return nil, fmt.Errorf("memstore: address %q: %w", o.Addr, err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return nil, fmt.Errorf("memstore: address %q is not a loopback address: the embedded store is for one host only", o.Addr)
	}
	if o.Password == "" {
		b := make([]byte, 16)
		if _, err := rand.Read(b); err != nil {
			return nil, fmt.Errorf("memstore: password: %w", err)
		}
		o.Password = hex.EncodeToString(b)
	}
	if o.Tick <= 0 {
		o.Tick = 50 * time.Millisecond
	}
	m := miniredis.NewMiniRedis()
	m.RequireAuth(o.Password)
	if err := m.StartAddr(o.Addr); err != nil {
		return nil, fmt.Errorf("memstore: listen on %s: %w", o.Addr, err)
	}
	s := &Store{m: m, Password: o.Password, stop: make(chan struct{})}
	s.wg.Add(1)
	go s.clock(o.Tick)
	return s, nil
}

// clock advances miniredis' TTL clock with real time.
func (s *Store) clock(tick time.Duration) {
	defer s.wg.Done()
	t := time.NewTicker(tick)
	defer t.Stop()
	last := time.Now()
	for {
		select {
		case <-s.stop:
			return
		case now := <-t.C:
			s.m.FastForward(now.Sub(last))
			last = now
		}
	}
}

// Addr is host:port of the store.
func (s *Store) Addr() string { return s.m.Addr() }

// URL is a redis:// URL with the password, for REDIS_URL.
func (s *Store) URL() string {
	return "redis://:" + s.Password + "@" + s.m.Addr() + "/0"
}

// Port is the listening port.
func (s *Store) Port() int {
	_, p, _ := net.SplitHostPort(s.m.Addr())
	n, _ := strconv.Atoi(p)
	return n
}

// Close stops the clock and the store.
func (s *Store) Close() {
	close(s.stop)
	s.wg.Wait()
	s.m.Close()
}
