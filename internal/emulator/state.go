package emulator

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
)

// Member is a group member, admin or pending member. Number is empty when the member hides
// their number; the group list then shows the UUID (reference §4.6).
type Member struct {
	Number string `json:"number"`
	UUID   string `json:"uuid"`
}

func (m Member) id() string {
	if m.Number != "" {
		return m.Number
	}
	return m.UUID
}

// Permission values of group permissions.
const (
	PermEveryMember = "every-member"
	PermOnlyAdmins  = "only-admins"
)

// GroupPermissions are a group's permissions as the REST API names them.
type GroupPermissions struct {
	AddMembers   string `json:"add_members"`
	EditGroup    string `json:"edit_group"`
	SendMessages string `json:"send_messages"`
}

// Group is a GroupV2 known to one account.
type Group struct {
	// ID is the internal id (standard base64 of 32 bytes); generated when empty.
	ID              string           `json:"internal_id"`
	Name            string           `json:"name"`
	Description     string           `json:"description"`
	Members         []Member         `json:"members"`
	Admins          []Member         `json:"admins"`
	PendingInvites  []Member         `json:"pending_invites"`
	PendingRequests []Member         `json:"pending_requests"`
	Blocked         bool             `json:"blocked"`
	InviteLink      string           `json:"invite_link"`
	Permissions     GroupPermissions `json:"permissions"`
	Revision        int              `json:"revision"`
}

// RESTID returns the id REST calls use: "group." + base64(internal id) (reference §6).
func (g Group) RESTID() string { return RESTGroupID(g.ID) }

func (g Group) clone() Group {
	g.Members = slices.Clone(g.Members)
	g.Admins = slices.Clone(g.Admins)
	g.PendingInvites = slices.Clone(g.PendingInvites)
	g.PendingRequests = slices.Clone(g.PendingRequests)
	return g
}

type state struct {
	mu          sync.Mutex
	mode        string
	accounts    []string
	groups      map[string][]*Group
	attachments map[string][]byte
	poll        map[string][][]byte
	pollChanged chan struct{}
}

func newState(accounts []string, mode string) *state {
	return &state{
		mode:        mode,
		accounts:    slices.Clone(accounts),
		groups:      make(map[string][]*Group),
		attachments: make(map[string][]byte),
		poll:        make(map[string][][]byte),
		pollChanged: make(chan struct{}),
	}
}

func (s *state) hasAccount(n string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Contains(s.accounts, n)
}

// Accounts returns the registered accounts.
func (e *Emulator) Accounts() []string {
	e.state.mu.Lock()
	defer e.state.mu.Unlock()
	return slices.Clone(e.state.accounts)
}

// AddAccount registers another account (no-op when already registered).
func (e *Emulator) AddAccount(number string) {
	e.state.mu.Lock()
	defer e.state.mu.Unlock()
	if !slices.Contains(e.state.accounts, number) {
		e.state.accounts = append(e.state.accounts, number)
	}
}

// AddGroup stores a group for account (default: the first account) so the group endpoints
// list it and sends to it succeed. An empty ID gets a random 32-byte id, empty permissions
// get "every-member". It returns the stored group.
func (e *Emulator) AddGroup(account string, g Group) (Group, error) {
	if account == "" {
		account = e.cfg.Accounts[0]
	}
	if g.ID == "" {
		g.ID = base64.StdEncoding.EncodeToString(e.randBytes(32))
	}
	raw, err := base64.StdEncoding.DecodeString(g.ID)
	if err != nil || len(raw) != 32 {
		return Group{}, fmt.Errorf("emulator: add group: internal id must be standard base64 of 32 bytes, got %d bytes", len(raw))
	}
	if g.Permissions.AddMembers == "" {
		g.Permissions.AddMembers = PermEveryMember
	}
	if g.Permissions.EditGroup == "" {
		g.Permissions.EditGroup = PermEveryMember
	}
	if g.Permissions.SendMessages == "" {
		g.Permissions.SendMessages = PermEveryMember
	}
	g = g.clone()
	e.state.mu.Lock()
	defer e.state.mu.Unlock()
	list := e.state.groups[account]
	for i, old := range list {
		if old.ID == g.ID {
			list[i] = &g
			return g.clone(), nil
		}
	}
	e.state.groups[account] = append(list, &g)
	return g.clone(), nil
}

// Groups returns account's groups in insertion order.
func (e *Emulator) Groups(account string) []Group {
	e.state.mu.Lock()
	defer e.state.mu.Unlock()
	out := make([]Group, 0, len(e.state.groups[account]))
	for _, g := range e.state.groups[account] {
		out = append(out, g.clone())
	}
	return out
}

// RemoveGroup forgets a group by internal id; it reports whether it existed.
func (e *Emulator) RemoveGroup(account, internalID string) bool {
	e.state.mu.Lock()
	defer e.state.mu.Unlock()
	list := e.state.groups[account]
	for i, g := range list {
		if g.ID == internalID {
			e.state.groups[account] = slices.Delete(list, i, i+1)
			return true
		}
	}
	return false
}

func (s *state) group(account, internalID string) (*Group, bool) {
	for _, g := range s.groups[account] {
		if g.ID == internalID {
			return g, true
		}
	}
	return nil, false
}

// AddAttachment stores bytes under id in the global attachment namespace, as if signal-cli
// had downloaded them. An empty id gets a random one with an extension sniffed from data.
// It returns the id.
func (e *Emulator) AddAttachment(id string, data []byte) (string, error) {
	if id == "" {
		id = randomAttachmentID(e.randBytes(15)) + extensionFor(http.DetectContentType(data))
	}
	if !validAttachmentName(id) {
		return "", fmt.Errorf("emulator: add attachment: invalid id %q: use a plain file name", id)
	}
	e.state.mu.Lock()
	defer e.state.mu.Unlock()
	e.state.attachments[id] = slices.Clone(data)
	return id, nil
}

// Attachment returns a stored attachment.
func (e *Emulator) Attachment(id string) ([]byte, bool) {
	e.state.mu.Lock()
	defer e.state.mu.Unlock()
	b, ok := e.state.attachments[id]
	return slices.Clone(b), ok
}

// AttachmentIDs returns the stored attachment ids, sorted.
func (e *Emulator) AttachmentIDs() []string {
	e.state.mu.Lock()
	defer e.state.mu.Unlock()
	ids := make([]string, 0, len(e.state.attachments))
	for id := range e.state.attachments {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

func validAttachmentName(id string) bool {
	return id != "" && id != "." && id != ".." && !strings.ContainsAny(id, "/\\\x00")
}

func randomAttachmentID(b []byte) string {
	// signal-cli names files after the sanitized remote id; URL-safe base64 without
	// padding looks alike.
	return base64.RawURLEncoding.EncodeToString(b)
}

func extensionFor(contentType string) string {
	ct, _, _ := strings.Cut(contentType, ";")
	switch ct {
	case "image/png":
		return ".png"
	case "image/jpeg":
		return ".jpg"
	case "image/gif":
		return ".gif"
	case "image/webp":
		return ".webp"
	case "application/pdf":
		return ".pdf"
	case "text/plain":
		return ".txt"
	default:
		return ".bin"
	}
}
