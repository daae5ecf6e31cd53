// Package lazyctx is a cancelable context (with an optional deadline) that
// costs one small allocation until something waits on it.
//
// Every message a worker handles gets a context with HANDLER_TIMEOUT, and the
// bot runtime cancels its handler's context when the handler ends or loses a
// lock. Built with context.WithTimeout and WithCancelCause that is two
// contexts, a timer and two registrations with the parents for every message,
// about 15% of a worker's CPU with a handler that never looks at its context
// (issue 7's profile). A lazy Context builds those only when Done or Value is
// first called (an HTTP request, a select on Done, a derived context); until
// then Err and Deadline are answered from its own fields, and Cancel only
// records that it ended.
package lazyctx

import (
	"context"
	"sync"
	"time"
)

// Context is a lazily built child of a parent context. The zero value is not
// usable; build one with New.
type Context struct {
	parent   context.Context
	deadline time.Time // zero: none of its own

	mu     sync.Mutex
	inner  context.Context // built on first Done or Value
	cancel context.CancelCauseFunc
	stop   context.CancelFunc // the deadline's, when inner has one
	ended  error              // the cause Cancel was given before inner existed
}

var _ context.Context = (*Context)(nil)

// New returns a child of parent that ends when parent does, when Cancel is
// called, or at deadline (the zero time: no deadline of its own).
func New(parent context.Context, deadline time.Time) *Context {
	return &Context{parent: parent, deadline: deadline}
}

// Init makes a zero Context what New(parent, deadline) returns, for a
// Context embedded in a larger per-message value (one allocation, not two).
// It must be called before any other method, and only once.
func (c *Context) Init(parent context.Context, deadline time.Time) {
	c.parent, c.deadline = parent, deadline
}

// built returns the real context, building it on first use.
func (c *Context) built() context.Context {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.inner == nil {
		inner, cancel := context.WithCancelCause(c.parent)
		c.cancel = cancel
		if !c.deadline.IsZero() {
			inner, c.stop = context.WithDeadline(inner, c.deadline)
		}
		c.inner = inner
		if c.ended != nil {
			c.cancelLocked(c.ended)
		}
	}
	return c.inner
}

func (c *Context) cancelLocked(cause error) {
	c.cancel(cause)
	if c.stop != nil {
		c.stop()
	}
}

// Cancel ends the context with cause (context.Canceled when nil); later
// calls do nothing. It must be called once the context is no longer needed,
// like the CancelFunc of context.WithCancel.
func (c *Context) Cancel(cause error) {
	if cause == nil {
		cause = context.Canceled
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.inner != nil {
		c.cancelLocked(cause)
		return
	}
	if c.ended == nil {
		c.ended = cause
	}
}

// Deadline is the earlier of its own deadline and its parent's.
func (c *Context) Deadline() (time.Time, bool) {
	pd, ok := c.parent.Deadline()
	if c.deadline.IsZero() || (ok && pd.Before(c.deadline)) {
		return pd, ok
	}
	return c.deadline, true
}

// Done builds the context and returns its channel.
func (c *Context) Done() <-chan struct{} { return c.built().Done() }

// Err is what context.Context's Err would be, without building the context.
// (Unbuilt, it cannot tell which ended first, a Cancel or the parent; it
// reports the Cancel.)
func (c *Context) Err() error {
	c.mu.Lock()
	inner, ended := c.inner, c.ended
	c.mu.Unlock()
	if inner != nil {
		return inner.Err()
	}
	if ended != nil {
		return context.Canceled
	}
	if err := c.parent.Err(); err != nil {
		return err
	}
	if !c.deadline.IsZero() && !time.Now().Before(c.deadline) {
		return context.DeadlineExceeded
	}
	return nil
}

// Value builds the context (so that context.Cause and derived contexts find
// its cancellation) and looks key up in it.
func (c *Context) Value(key any) any { return c.built().Value(key) }
