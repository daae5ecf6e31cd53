package emulator

import (
	"sort"
	"time"
)

// SocketStats describes one websocket (open or recently closed).
type SocketStats struct {
	// Index is the connection order (1 = first upgrade request; a failed upgrade leaves a
	// gap).
	Index       int64     `json:"index"`
	ClientID    string    `json:"client_id,omitempty"`
	Account     string    `json:"account"`
	Open        bool      `json:"open"`
	ConnectedAt time.Time `json:"connected_at"`
	ClosedAt    time.Time `json:"closed_at,omitzero"`
	// Offered frames were fanned out to this socket; Accepted were taken by its writer
	// (queued or handed over); Delivered were written; Dropped were lost to busy writers,
	// a full queue or drop faults; Unsent were accepted but still pending when it closed.
	Offered   int64 `json:"offered"`
	Accepted  int64 `json:"accepted"`
	Delivered int64 `json:"delivered"`
	Dropped   int64 `json:"dropped"`
	Unsent    int64 `json:"unsent"`
	// Pending frames are queued (or taken by the writer) and not yet written.
	Pending       int   `json:"pending"`
	PingsSent     int64 `json:"pings_sent"`
	PongsReceived int64 `json:"pongs_received"`
	ClientPings   int64 `json:"client_pings"`
	// ClientFrames are data frames the client sent (the server discards them).
	ClientFrames int64 `json:"client_frames"`
}

// Stats is a snapshot of the emulator's counters.
type Stats struct {
	Up       bool         `json:"up"`
	Mode     string       `json:"mode"`
	Delivery DeliveryMode `json:"delivery"`
	// SocketsOpen counts open websockets, SocketsByAccount per path number.
	SocketsOpen      int            `json:"sockets_open"`
	SocketsByAccount map[string]int `json:"sockets_by_account"`
	// Sockets lists open sockets and up to 1000 recently closed ones, by Index.
	Sockets []SocketStats `json:"sockets"`
	// Connections counts websocket upgrades accepted.
	Connections int64 `json:"connections"`
	Crashes     int64 `json:"crashes"`

	// EventsInjected counts Inject calls; EventsDiscarded those that reached nobody (no
	// socket open, unknown account in poll mode, or down without holding); EventsHeld
	// those kept during a crash; EventsQueued/EventsPolled the poll-mode queue traffic.
	EventsInjected  int64 `json:"events_injected"`
	EventsDiscarded int64 `json:"events_discarded"`
	EventsHeld      int64 `json:"events_held"`
	EventsQueued    int64 `json:"events_queued"`
	EventsPolled    int64 `json:"events_polled"`
	ErrorsInjected  int64 `json:"errors_injected"`
	Unparseable     int64 `json:"unparseable"`

	// Frame totals over all sockets (see SocketStats).
	FramesOffered   int64 `json:"frames_offered"`
	FramesAccepted  int64 `json:"frames_accepted"`
	FramesDelivered int64 `json:"frames_delivered"`
	FramesDropped   int64 `json:"frames_dropped"`
	FramesUnsent    int64 `json:"frames_unsent"`

	WebhookDelivered int64 `json:"webhook_delivered"`
	WebhookFailed    int64 `json:"webhook_failed"`

	// CallsByRoute counts recorded REST calls by "METHOD /route/template" (unknown routes
	// are counted under "METHOD unknown").
	CallsByRoute map[string]int64 `json:"calls_by_route"`
}

func (k *socket) stats() SocketStats {
	k.mu.Lock()
	s := SocketStats{
		Index:       k.id,
		ClientID:    k.clientID,
		Account:     k.account,
		Open:        !k.closed,
		ConnectedAt: k.connectedAt,
		ClosedAt:    k.closedAt,
		Pending:     len(k.queue) + int(k.inflight.Load()),
	}
	k.mu.Unlock()
	s.Offered = k.offered.Load()
	s.Accepted = k.accepted.Load()
	s.Delivered = k.delivered.Load()
	s.Dropped = k.dropped.Load()
	s.Unsent = k.unsent.Load()
	s.PingsSent = k.pingsSent.Load()
	s.PongsReceived = k.pongsReceived.Load()
	s.ClientPings = k.clientPings.Load()
	s.ClientFrames = k.clientMsgs.Load()
	return s
}

// Stats returns a snapshot of the counters.
func (e *Emulator) Stats() Stats {
	s := Stats{
		Up:               e.Up(),
		Mode:             e.cfg.Mode,
		Delivery:         e.faults.Delivery(),
		SocketsByAccount: map[string]int{},
		Sockets:          []SocketStats{},
		CallsByRoute:     map[string]int64{},
		Connections:      e.st.connections.Load(),
		Crashes:          e.st.crashes.Load(),
		EventsInjected:   e.st.eventsInjected.Load(),
		EventsDiscarded:  e.st.eventsDiscarded.Load(),
		EventsHeld:       e.st.eventsHeld.Load(),
		EventsQueued:     e.st.eventsQueued.Load(),
		EventsPolled:     e.st.eventsPolled.Load(),
		ErrorsInjected:   e.st.errorsInjected.Load(),
		Unparseable:      e.st.unparseable.Load(),
		FramesOffered:    e.st.framesOffered.Load(),
		FramesAccepted:   e.st.framesAccepted.Load(),
		FramesDelivered:  e.st.framesDelivered.Load(),
		FramesDropped:    e.st.framesDropped.Load(),
		FramesUnsent:     e.st.framesUnsent.Load(),
		WebhookDelivered: e.st.webhookOK.Load(),
		WebhookFailed:    e.st.webhookFailed.Load(),
	}
	e.hub.mu.Lock()
	all := make([]*socket, 0, len(e.hub.open)+len(e.hub.closed))
	for _, k := range e.hub.open {
		all = append(all, k)
		s.SocketsByAccount[k.account]++
	}
	s.SocketsOpen = len(e.hub.open)
	all = append(all, e.hub.closed...)
	e.hub.mu.Unlock()
	for _, k := range all {
		s.Sockets = append(s.Sockets, k.stats())
	}
	sort.Slice(s.Sockets, func(i, j int) bool { return s.Sockets[i].Index < s.Sockets[j].Index })

	e.calls.mu.Lock()
	for k, n := range e.calls.byRoute {
		s.CallsByRoute[k] = n
	}
	e.calls.mu.Unlock()
	return s
}

// Socket returns the stats of the socket with the given connection index.
func (e *Emulator) Socket(index int64) (SocketStats, bool) {
	for _, s := range e.Stats().Sockets {
		if s.Index == index {
			return s, true
		}
	}
	return SocketStats{}, false
}
