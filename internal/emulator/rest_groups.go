package emulator

import (
	"encoding/base64"
	"net/http"
	"slices"
	"strings"
)

type groupEntryJSON struct {
	Name            string           `json:"name"`
	Description     string           `json:"description"`
	ID              string           `json:"id"`
	InternalID      string           `json:"internal_id"`
	Members         any              `json:"members"`
	Blocked         bool             `json:"blocked"`
	PendingInvites  any              `json:"pending_invites"`
	PendingRequests any              `json:"pending_requests"`
	InviteLink      string           `json:"invite_link"`
	Admins          any              `json:"admins"`
	Permissions     GroupPermissions `json:"permissions"`
	Member          *bool            `json:"member,omitempty"`
}

// groupJSON renders a group entry (reference §4.6): members as numbers (UUID when hidden),
// or {"number","uuid"} objects with expand; edit_group carries the send-messages
// permission, a bug of the real server kept on purpose.
func (e *Emulator) groupJSON(account string, g *Group, expand bool) groupEntryJSON {
	list := func(ms []Member) any {
		if expand {
			out := make([]Member, 0, len(ms))
			out = append(out, ms...)
			return out
		}
		out := make([]string, 0, len(ms))
		for _, m := range ms {
			out = append(out, m.id())
		}
		return out
	}
	perms := g.Permissions
	perms.EditGroup = perms.SendMessages
	entry := groupEntryJSON{
		Name:            g.Name,
		Description:     g.Description,
		ID:              RESTGroupID(g.ID),
		InternalID:      g.ID,
		Members:         list(g.Members),
		Blocked:         g.Blocked,
		PendingInvites:  list(g.PendingInvites),
		PendingRequests: list(g.PendingRequests),
		InviteLink:      g.InviteLink,
		Admins:          list(g.Admins),
		Permissions:     perms,
	}
	if e.cfg.Profile == ProfileHead {
		member := slices.ContainsFunc(g.Members, func(m Member) bool { return m.Number == account })
		entry.Member = &member
	}
	return entry
}

// expandParam validates ?expand=; false means the 400 was written.
func (c *reqCtx) expandParam() (bool, bool) {
	v, ok := c.r.URL.Query()["expand"]
	if !ok || len(v) == 0 {
		return false, true
	}
	switch v[0] {
	case "true":
		return true, true
	case "false":
		return false, true
	}
	c.fail("Couldn't process request - expand parameter needs to be either 'true' or 'false'")
	return false, false
}

func (e *Emulator) handleListGroups(c *reqCtx) {
	number, ok := c.number()
	if !ok {
		return
	}
	expand, ok := c.expandParam()
	if !ok || !c.daemon(number) {
		return
	}
	e.state.mu.Lock()
	out := make([]groupEntryJSON, 0, len(e.state.groups[number]))
	for _, g := range e.state.groups[number] {
		out = append(out, e.groupJSON(number, g, expand))
	}
	e.state.mu.Unlock()
	if !c.answerFaults() {
		return
	}
	c.json(http.StatusOK, out)
}

// handleGetGroup compares the path id literally with each group's REST id.
func (e *Emulator) handleGetGroup(c *reqCtx) {
	number, ok := c.number()
	if !ok {
		return
	}
	expand, ok := c.expandParam()
	if !ok || !c.daemon(number) {
		return
	}
	id := c.params["groupid"]
	e.state.mu.Lock()
	var found *groupEntryJSON
	for _, g := range e.state.groups[number] {
		if RESTGroupID(g.ID) == id {
			entry := e.groupJSON(number, g, expand)
			found = &entry
			break
		}
	}
	e.state.mu.Unlock()
	if found == nil {
		c.json(http.StatusNotFound, apiError{Error: "No group with that id found"})
		return
	}
	if !c.answerFaults() {
		return
	}
	c.json(http.StatusOK, found)
}

type createGroupRequest struct {
	Name        string   `json:"name"`
	Members     []string `json:"members"`
	Description string   `json:"description"`
	Permissions struct {
		AddMembers   string `json:"add_members"`
		EditGroup    string `json:"edit_group"`
		SendMessages string `json:"send_messages"`
	} `json:"permissions"`
	GroupLink      string `json:"group_link"`
	ExpirationTime *int   `json:"expiration_time"`
}

func validPermission(p string) bool { return p == PermEveryMember || p == PermOnlyAdmins }

func (e *Emulator) handleCreateGroup(c *reqCtx) {
	number, ok := c.number()
	if !ok {
		return
	}
	var req createGroupRequest
	if err := c.bind(&req); err != nil {
		c.bindError()
		return
	}
	p := req.Permissions
	switch {
	case p.AddMembers != "" && !validPermission(p.AddMembers):
		c.fail("Invalid add members permission provided - only 'every-member' and 'only-admins' allowed!")
		return
	case p.EditGroup != "" && !validPermission(p.EditGroup):
		c.fail("Invalid edit group permissions provided - only 'every-member' and 'only-admins' allowed!")
		return
	case p.SendMessages != "" && !validPermission(p.SendMessages):
		c.fail("Invalid send messages permissions provided - only 'every-member' and 'only-admins' allowed!")
		return
	case req.GroupLink != "" && req.GroupLink != "enabled" && req.GroupLink != "enabled-with-approval" && req.GroupLink != "disabled":
		c.fail("Invalid group link provided - only 'enabled', 'enabled-with-approval' and 'disabled' allowed!")
		return
	}
	if !c.daemon(number) {
		return
	}
	self := Member{Number: number, UUID: AccountUUID(number)}
	g := Group{
		Name:        req.Name,
		Description: req.Description,
		Members:     []Member{self},
		Admins:      []Member{self},
		Permissions: GroupPermissions{AddMembers: p.AddMembers, EditGroup: p.EditGroup, SendMessages: p.SendMessages},
	}
	for _, m := range req.Members {
		g.Members = append(g.Members, memberFromID(m))
	}
	if req.GroupLink == "enabled" || req.GroupLink == "enabled-with-approval" {
		g.InviteLink = "https://signal.group/#" + base64.RawURLEncoding.EncodeToString(e.randBytes(24))
	}
	stored, err := e.AddGroup(number, g)
	if err != nil {
		c.fail(err.Error())
		return
	}
	if !c.answerFaults() {
		return
	}
	c.json(http.StatusCreated, struct {
		ID string `json:"id"`
	}{RESTGroupID(stored.ID)})
}

func memberFromID(id string) Member {
	if isUUID(id) {
		return Member{UUID: strings.ToLower(id)}
	}
	return Member{Number: id, UUID: AccountUUID(id)}
}

type updateGroupRequest struct {
	Base64Avatar   *string `json:"base64_avatar"`
	Description    *string `json:"description"`
	Name           *string `json:"name"`
	ExpirationTime *int    `json:"expiration_time"`
}

// groupFromPath resolves {groupid} like the real handlers: decode once; failures and
// unknown groups are signal-cli errors (400).
func (c *reqCtx) groupFromPath() (string, bool) {
	internal, err := InternalGroupID(c.params["groupid"])
	if err != nil {
		c.fail(err.Error())
		return "", false
	}
	return internal, true
}

func (e *Emulator) handleUpdateGroup(c *reqCtx) {
	number, ok := c.number()
	if !ok {
		return
	}
	if number == "" {
		c.fail("Couldn't process request - number missing")
		return
	}
	internal, ok := c.groupFromPath()
	if !ok {
		return
	}
	var req updateGroupRequest
	if err := c.bind(&req); err != nil {
		c.bindError()
		return
	}
	if !c.daemon(number) || !c.checkGroup(number, internal) {
		return
	}
	e.state.mu.Lock()
	if g, ok := e.state.group(number, internal); ok {
		if req.Name != nil {
			g.Name = *req.Name
		}
		if req.Description != nil {
			g.Description = *req.Description
		}
		g.Revision++
	}
	e.state.mu.Unlock()
	if !c.answerFaults() {
		return
	}
	c.noContent()
}

// handleGroupMembers adds or removes members or admins; unknown groups are a 404 here.
func (e *Emulator) handleGroupMembers(add, admins bool) handlerFunc {
	return func(c *reqCtx) {
		number, ok := c.number()
		if !ok {
			return
		}
		if number == "" {
			c.fail("Couldn't process request - number missing")
			return
		}
		var req struct {
			Members []string `json:"members"`
			Admins  []string `json:"admins"`
		}
		if err := c.bind(&req); err != nil {
			c.bindError()
			return
		}
		ids := req.Members
		if admins {
			ids = req.Admins
		}
		if !c.daemon(number) {
			return
		}
		restID := c.params["groupid"]
		if len(ids) > 0 {
			e.state.mu.Lock()
			var g *Group
			for _, cand := range e.state.groups[number] {
				if RESTGroupID(cand.ID) == restID {
					g = cand
				}
			}
			if g == nil {
				e.state.mu.Unlock()
				c.json(http.StatusNotFound, apiError{Error: "No group with that group id (" + restID + ") found"})
				return
			}
			target := &g.Members
			if admins {
				target = &g.Admins
			}
			for _, id := range ids {
				m := memberFromID(id)
				idx := slices.IndexFunc(*target, func(x Member) bool { return x.id() == m.id() || x.UUID == m.UUID })
				switch {
				case add && idx < 0:
					*target = append(*target, m)
				case !add && idx >= 0:
					*target = slices.Delete(*target, idx, idx+1)
				}
			}
			g.Revision++
			e.state.mu.Unlock()
		}
		if !c.answerFaults() {
			return
		}
		c.noContent()
	}
}

func (e *Emulator) handleGroupAction(action string) handlerFunc {
	return func(c *reqCtx) {
		number, ok := c.number()
		if !ok {
			return
		}
		if number == "" {
			c.fail("Couldn't process request - number missing")
			return
		}
		internal, ok := c.groupFromPath()
		if !ok || !c.daemon(number) || !c.checkGroup(number, internal) {
			return
		}
		e.state.mu.Lock()
		if g, ok := e.state.group(number, internal); ok {
			self := Member{Number: number, UUID: AccountUUID(number)}
			idx := slices.IndexFunc(g.Members, func(m Member) bool { return m.Number == number })
			switch action {
			case "block":
				g.Blocked = true
			case "join":
				if idx < 0 {
					g.Members = append(g.Members, self)
				}
			case "quit":
				if idx >= 0 {
					g.Members = slices.Delete(g.Members, idx, idx+1)
				}
			}
		}
		e.state.mu.Unlock()
		if !c.answerFaults() {
			return
		}
		c.noContent()
	}
}

// handleDeleteGroup answers 200 with an empty body, like the real handler.
func (e *Emulator) handleDeleteGroup(c *reqCtx) {
	number, ok := c.number()
	if !ok {
		return
	}
	internal, ok := c.groupFromPath()
	if !ok || !c.daemon(number) || !c.checkGroup(number, internal) {
		return
	}
	e.RemoveGroup(number, internal)
	if !c.answerFaults() {
		return
	}
	c.w.WriteHeader(http.StatusOK)
}
