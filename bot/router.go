package bot

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"unicode"

	"go.uber.org/zap"

	"github.com/signal-client/signal-client/internal/signal"
)

// HandlerFunc handles one message. Returning an error fails the attempt (the
// message is retried with backoff, then parked); returning ErrPass lets the
// next matching route try.
type HandlerFunc func(c *Context) error

// Middleware wraps a handler. It runs around every handler of the routes it
// applies to, in registration order (outermost first), and can stop the
// chain by not calling next.
type Middleware func(next HandlerFunc) HandlerFunc

// Scope decides whether a route applies to a message; see DirectOnly,
// GroupOnly, InGroup, From, Mentioned and the combinators.
type Scope func(c *Context) bool

type routeKind int

const (
	kindCommand routeKind = iota
	kindRegex
	kindEvent
	kindFallback
)

// Route is one registered handler; its methods configure it and return it,
// so they chain.
type Route struct {
	kind          routeKind
	triggers      []string // commands: name first, then aliases
	re            *regexp.Regexp
	event         Event
	caseSensitive bool
	description   string
	usage         string
	hidden        bool
	allow         []string
	scopes        []Scope
	mws           []Middleware
	h             HandlerFunc
	group         *Routes
	router        *Router
}

// Alias adds other triggers for a command.
func (rt *Route) Alias(triggers ...string) *Route {
	for _, t := range triggers {
		if err := rt.router.addTrigger(rt, t); err != nil {
			rt.router.errs = append(rt.router.errs, err)
			continue
		}
		rt.triggers = append(rt.triggers, t)
	}
	return rt
}

// Describe sets the one-line description shown by the generated help.
func (rt *Route) Describe(s string) *Route { rt.description = s; return rt }

// Usage sets the argument synopsis shown by the generated help, e.g. "<text>".
func (rt *Route) Usage(s string) *Route { rt.usage = s; return rt }

// CaseSensitive makes a command's triggers match only with the same case.
func (rt *Route) CaseSensitive() *Route { rt.caseSensitive = true; return rt }

// Hidden leaves a command out of the generated help.
func (rt *Route) Hidden() *Route { rt.hidden = true; return rt }

// Allow restricts the route to senders (number or UUID) and groups (REST or
// internal id) in ids: a message matches when its sender or its group is
// listed. Several Allow calls add to the list.
func (rt *Route) Allow(ids ...string) *Route { rt.allow = append(rt.allow, ids...); return rt }

// In adds scopes; all of them must accept the message.
func (rt *Route) In(scopes ...Scope) *Route { rt.scopes = append(rt.scopes, scopes...); return rt }

// Use adds middleware around this route's handler only.
func (rt *Route) Use(mws ...Middleware) *Route { rt.mws = append(rt.mws, mws...); return rt }

// Name returns a command's primary trigger, a regex's pattern or an event's name.
func (rt *Route) Name() string {
	switch rt.kind {
	case kindCommand:
		return rt.triggers[0]
	case kindRegex:
		return rt.re.String()
	case kindEvent:
		return string(rt.event)
	}
	return "fallback"
}

// Routes is a set of routes sharing middleware and scopes: the Router itself,
// or a group made with Group.
type Routes struct {
	router *Router
	parent *Routes
	mws    []Middleware
	scopes []Scope
	allow  []string
}

// Use adds middleware to every route of the group (also routes added before).
func (g *Routes) Use(mws ...Middleware) *Routes { g.mws = append(g.mws, mws...); return g }

// In adds scopes every route of the group must pass.
func (g *Routes) In(scopes ...Scope) *Routes { g.scopes = append(g.scopes, scopes...); return g }

// Allow restricts every route of the group as Route.Allow does.
func (g *Routes) Allow(ids ...string) *Routes { g.allow = append(g.allow, ids...); return g }

// Group returns a new group inside g: its routes get g's middleware and
// scopes, then the group's own.
func (g *Routes) Group() *Routes { return &Routes{router: g.router, parent: g} }

// Command registers a command. The trigger is matched as a whole word at
// the start of the message ("!ping" never matches "!pingpong").
func (g *Routes) Command(trigger string, h HandlerFunc) *Route {
	rt := &Route{kind: kindCommand, h: h, group: g, router: g.router}
	if err := g.router.addTrigger(rt, trigger); err != nil {
		g.router.errs = append(g.router.errs, err)
		rt.triggers = []string{trigger}
		rt.hidden = true
		rt.h = nil // never matches
	} else {
		rt.triggers = []string{trigger}
	}
	g.router.routes = append(g.router.routes, rt)
	return rt
}

// Regex registers a regular expression searched in the message text (with
// the bot's own mentions removed); Context.Match returns its captures. An
// invalid expression is reported by Router.Err and the route never matches.
func (g *Routes) Regex(expr string, h HandlerFunc) *Route {
	re, err := regexp.Compile(expr)
	if err != nil {
		g.router.errs = append(g.router.errs, fmt.Errorf("bot: regex %q: %w", expr, err))
		rt := &Route{kind: kindRegex, re: regexp.MustCompile(`$.^`), group: g, router: g.router}
		g.router.routes = append(g.router.routes, rt)
		return rt
	}
	return g.Match(re, h)
}

// Match is Regex with a compiled expression.
func (g *Routes) Match(re *regexp.Regexp, h HandlerFunc) *Route {
	rt := &Route{kind: kindRegex, re: re, h: h, group: g, router: g.router}
	g.router.routes = append(g.router.routes, rt)
	return rt
}

// On registers a handler for an event.
func (g *Routes) On(e Event, h HandlerFunc) *Route {
	rt := &Route{kind: kindEvent, event: e, h: h, group: g, router: g.router}
	g.router.routes = append(g.router.routes, rt)
	return rt
}

// Fallback registers a handler for chat messages no command, regex or
// event route took.
func (g *Routes) Fallback(h HandlerFunc) *Route {
	rt := &Route{kind: kindFallback, h: h, group: g, router: g.router}
	g.router.routes = append(g.router.routes, rt)
	return rt
}

// Router routes messages to handlers. Build it before starting the bot; it
// is not safe to register routes while messages are dispatched.
type Router struct {
	*Routes
	routes   []*Route
	triggers map[string]*Route // folded trigger → route
	errs     []error
	onError  func(c *Context, err error) error
	onStart  []func(ctx context.Context, cl *Client) error
	self     Self
}

// Option configures a Router.
type Option func(*Router)

// WithSelf sets the bot account's number and UUID for mention gating. The
// worker runtime fills in the number from SIGNAL_PHONE_NUMBER; give the UUID
// so that mentions by UUID alone are recognised too.
func WithSelf(number, uuid string) Option {
	return func(r *Router) { r.self = Self{Number: number, UUID: uuid} }
}

// New returns an empty router.
func New(opts ...Option) *Router {
	r := &Router{triggers: map[string]*Route{}}
	r.Routes = &Routes{router: r}
	for _, o := range opts {
		o(r)
	}
	return r
}

// OnError sets a hook for handler errors (not ErrPass). It returns the error
// to report (nil to treat the message as handled).
func (r *Router) OnError(f func(c *Context, err error) error) { r.onError = f }

// OnStart registers a function the runtime starts in its own goroutine when
// the worker starts (for announcements and other proactive sends); ctx ends
// at shutdown. An error is logged.
func (r *Router) OnStart(f func(ctx context.Context, cl *Client) error) {
	r.onStart = append(r.onStart, f)
}

// StartHooks returns the functions registered with OnStart.
func (r *Router) StartHooks() []func(ctx context.Context, cl *Client) error { return r.onStart }

// Err reports registration mistakes: invalid regular expressions and
// triggers registered twice. The runtime refuses a router with errors.
func (r *Router) Err() error { return errors.Join(r.errs...) }

func (r *Router) addTrigger(rt *Route, t string) error {
	if t == "" || strings.IndexFunc(t, unicode.IsSpace) >= 0 {
		return fmt.Errorf("bot: command trigger %q: it must be one word without spaces", t)
	}
	k := strings.ToLower(t)
	if prev, ok := r.triggers[k]; ok {
		return fmt.Errorf("bot: command trigger %q is already registered (by %q)", t, prev.Name())
	}
	r.triggers[k] = rt
	return nil
}

// Dispatch routes one update to the first matching route and runs it with
// its middleware. It returns the handler's error (after OnError); nil when
// no route matched.
func (r *Router) Dispatch(ctx context.Context, u Update) error {
	c, err := r.newContext(ctx, u)
	if err != nil {
		return err
	}
	defer c.finish()
	for _, cand := range r.candidates(c) {
		c.route = cand.route
		c.setMatch(cand)
		if !cand.route.accepts(c) {
			continue
		}
		h := cand.route.chain()
		err := h(c)
		if errors.Is(err, ErrPass) {
			continue
		}
		if err != nil && r.onError != nil {
			err = r.onError(c, err)
		}
		return err
	}
	c.route = nil
	return nil
}

// candidate is a route whose trigger matched, with what it matched.
type candidate struct {
	route   *Route
	trigger string   // command: the trigger as registered
	rest    string   // command: the text after the trigger
	match   []string // regex captures
}

func (r *Router) candidates(c *Context) []candidate {
	out := c.cands[:0] // most messages match one or two routes

	ev := c.event
	text := c.cmdText
	if ev == EventMessage && text != "" {
		word, rest := firstWord(text)
		for _, rt := range r.routes {
			if rt.kind != kindCommand || rt.h == nil {
				continue
			}
			for _, t := range rt.triggers {
				if word == t || (!rt.caseSensitive && strings.EqualFold(word, t)) {
					out = append(out, candidate{route: rt, trigger: t, rest: rest})
					break
				}
			}
		}
		for _, rt := range r.routes {
			if rt.kind != kindRegex || rt.h == nil {
				continue
			}
			if m := rt.re.FindStringSubmatch(text); m != nil {
				out = append(out, candidate{route: rt, match: m})
			}
		}
	}
	for _, rt := range r.routes {
		if rt.kind == kindEvent && (rt.event == ev || (rt.event == EventMessage && ev == EventAttachment)) {
			out = append(out, candidate{route: rt})
		}
	}
	if ev == EventMessage || ev == EventAttachment {
		for _, rt := range r.routes {
			if rt.kind == kindFallback {
				out = append(out, candidate{route: rt})
			}
		}
	}
	return out
}

// firstWord splits text into its first word and the rest (trimmed).
func firstWord(text string) (string, string) {
	i := strings.IndexFunc(text, unicode.IsSpace)
	if i < 0 {
		return text, ""
	}
	return text[:i], strings.TrimSpace(text[i:])
}

// accepts checks the allow-lists and scopes of the route and its groups.
func (rt *Route) accepts(c *Context) bool {
	if len(rt.allow) > 0 && !c.allowed(rt.allow) {
		return false
	}
	for _, s := range rt.scopes {
		if !s(c) {
			return false
		}
	}
	for g := rt.group; g != nil; g = g.parent {
		if len(g.allow) > 0 && !c.allowed(g.allow) {
			return false
		}
		for _, s := range g.scopes {
			if !s(c) {
				return false
			}
		}
	}
	return true
}

// chain wraps the handler: the router's middleware outermost, then each
// group's from the outside in, then the route's own.
func (rt *Route) chain() HandlerFunc {
	var groups []*Routes
	for g := rt.group; g != nil; g = g.parent {
		groups = append(groups, g)
	}
	var mws []Middleware
	for i := len(groups) - 1; i >= 0; i-- {
		mws = append(mws, groups[i].mws...)
	}
	mws = append(mws, rt.mws...)
	h := rt.h
	for i := len(mws) - 1; i >= 0; i-- {
		h = mws[i](h)
	}
	return h
}

// eventOf maps a frame to the event routes see.
func eventOf(f *signal.Frame) Event {
	k := f.Kind()
	if k == signal.KindMessage {
		d := f.Data()
		if d != nil && len(d.Attachments) > 0 && strings.TrimSpace(d.Text()) == "" {
			return EventAttachment
		}
	}
	return Event(k)
}

// logger returns the update's logger with the message's ids (no content).
func (u *Update) logger() *zap.Logger {
	l := u.Log
	if l == nil {
		l = zap.NewNop()
	}
	fields := []zap.Field{zap.Int("shard", u.Shard), zap.Int("attempt", u.Attempt)}
	if u.ID != "" {
		fields = append(fields, zap.String("entry", u.ID))
	}
	if u.OriginalID != "" && u.OriginalID != u.ID {
		fields = append(fields, zap.String("original", u.OriginalID))
	}
	return l.With(fields...)
}
