package bot

import (
	"strings"

	"github.com/signal-client/signal-client/internal/signal"
)

// DirectOnly accepts one-to-one chats.
func DirectOnly() Scope { return func(c *Context) bool { return !c.conv.IsGroup } }

// GroupOnly accepts group chats.
func GroupOnly() Scope { return func(c *Context) bool { return c.conv.IsGroup } }

// InGroup accepts the groups listed, by REST id ("group.…") or internal id.
func InGroup(ids ...string) Scope {
	return func(c *Context) bool {
		for _, id := range ids {
			if c.inGroup(id) {
				return true
			}
		}
		return false
	}
}

// From accepts messages from the senders listed, by number or UUID.
func From(ids ...string) Scope {
	return func(c *Context) bool {
		for _, id := range ids {
			if c.sentBy(id) {
				return true
			}
		}
		return false
	}
}

// Mentioned accepts messages that mention the bot (by number or UUID) or
// quote one of the bot's messages.
func Mentioned() Scope { return func(c *Context) bool { return c.Mentioned() } }

// MentionedInGroups accepts every one-to-one message and, in groups, only
// messages that mention the bot or quote it: the usual way to keep a bot
// quiet in busy groups.
func MentionedInGroups() Scope {
	return func(c *Context) bool { return !c.conv.IsGroup || c.Mentioned() }
}

// AllOf accepts when every scope does.
func AllOf(scopes ...Scope) Scope {
	return func(c *Context) bool {
		for _, s := range scopes {
			if !s(c) {
				return false
			}
		}
		return true
	}
}

// AnyOf accepts when at least one scope does.
func AnyOf(scopes ...Scope) Scope {
	return func(c *Context) bool {
		for _, s := range scopes {
			if s(c) {
				return true
			}
		}
		return false
	}
}

// Not inverts a scope.
func Not(s Scope) Scope { return func(c *Context) bool { return !s(c) } }

// allowed reports whether the sender or the group is in ids.
func (c *Context) allowed(ids []string) bool {
	for _, id := range ids {
		if c.sentBy(id) || c.inGroup(id) {
			return true
		}
	}
	return false
}

func (c *Context) sentBy(id string) bool {
	if id == "" {
		return false
	}
	s := c.sender
	return (s.UUID != "" && strings.EqualFold(s.UUID, id)) || (s.Number != "" && s.Number == id)
}

func (c *Context) inGroup(id string) bool {
	if id == "" || !c.conv.IsGroup {
		return false
	}
	if id == c.conv.Group || id == c.conv.GroupInternalID {
		return true
	}
	if internal, err := signal.GroupInternalID(id); err == nil && internal == c.conv.GroupInternalID {
		return true
	}
	return false
}

// Mentioned reports whether the message mentions the bot or quotes one of
// the bot's messages.
func (c *Context) Mentioned() bool {
	ids := c.self.ids()
	if len(ids) == 0 || c.frame == nil {
		return false
	}
	d := c.frame.Data()
	if d == nil {
		return false
	}
	for _, m := range d.Mentions {
		if m.Is(ids...) {
			return true
		}
	}
	if q := d.Quote; q != nil {
		for _, id := range ids {
			if (q.AuthorNumber != "" && q.AuthorNumber == id) || (q.AuthorUUID != "" && strings.EqualFold(q.AuthorUUID, id)) || (q.Author != "" && strings.EqualFold(q.Author, id)) {
				return true
			}
		}
	}
	return false
}
