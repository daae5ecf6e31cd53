package bot

import (
	"context"
	"errors"
	"sync"
	"time"

	"go.uber.org/zap"
)

// Lock obtains the cluster-wide lock key for ttl (0 = LOCK_TTL_SECONDS),
// waiting while the handler's deadline allows, and keeps it refreshed every
// ttl/3 until unlock is called or the handler returns. Use it for resources
// shared between conversations; a conversation's own messages never run at
// once, so its state needs no lock (and locking anything, the conversation's
// own key included, cannot deadlock with the runtime).
//
// Locks are re-entrant within one handling: locking a key already held
// returns at once. If a refresh finds the lock taken over, the handler's
// context is cancelled with cause ErrLockLost. A lock still held by another
// handler at the deadline gives ErrLockNotObtained, and the message is
// retried later without counting an attempt.
func (c *Context) Lock(key string, ttl time.Duration) (unlock func(), err error) {
	if ttl <= 0 {
		ttl = c.u.LockTTL
		if ttl <= 0 {
			ttl = 10 * time.Second
		}
	}
	c.mu.Lock()
	if e := c.locks[key]; e != nil {
		e.refs++
		c.mu.Unlock()
		return c.unlocker(key, e), nil
	}
	c.mu.Unlock()
	h, err := c.u.Backend.Lock(c, key, ttl)
	if err != nil {
		return func() {}, err
	}
	e := &lockEntry{held: h, refs: 1, stop: make(chan struct{}), done: make(chan struct{})}
	c.mu.Lock()
	if c.locks == nil {
		c.locks = map[string]*lockEntry{}
	}
	c.locks[key] = e
	c.mu.Unlock()
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		e.refresh(c, ttl)
	}()
	return c.unlocker(key, e), nil
}

func (c *Context) unlocker(key string, e *lockEntry) func() {
	var once sync.Once
	return func() {
		once.Do(func() {
			c.mu.Lock()
			e.refs--
			last := e.refs == 0 && c.locks[key] == e
			if last {
				delete(c.locks, key)
			}
			c.mu.Unlock()
			if last {
				e.release(c)
			}
		})
	}
}

type lockEntry struct {
	held       HeldLock
	refs       int
	stop, done chan struct{}
	once       sync.Once
}

// refresh extends the lock every ttl/3. A refresh that finds the lock gone,
// or no successful refresh for a whole ttl, cancels the handler.
func (e *lockEntry) refresh(c *Context, ttl time.Duration) {
	defer close(e.done)
	t := time.NewTicker(ttl / 3)
	defer t.Stop()
	last := time.Now()
	for {
		select {
		case <-e.stop:
			return
		case <-c.ctx.Done():
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(c.ctx, ttl/3)
		err := e.held.Refresh(ctx, ttl)
		cancel()
		switch {
		case err == nil:
			last = time.Now()
		case errors.Is(err, ErrLockLost) || time.Since(last) >= ttl:
			c.Log().Warn("lock lost while the handler ran; cancelling it", zap.Error(err))
			c.ctx.Cancel(ErrLockLost)
			return
		}
	}
}

func (e *lockEntry) release(c *Context) {
	e.once.Do(func() {
		close(e.stop)
		<-e.done
		ctx, cancel := context.WithTimeout(context.WithoutCancel(c.ctx), 2*time.Second)
		defer cancel()
		if err := e.held.Release(ctx); err != nil {
			c.Log().Debug("lock release failed; it expires by itself", zap.Error(err))
		}
	})
}
