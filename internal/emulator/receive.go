package emulator

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"go.uber.org/zap"

	"github.com/signal-client/signal-client/internal/emulator/events"
)

// readLimit is the real server's websocket read limit; a larger client frame closes the
// socket (reference §2.2).
const readLimit = 512

// maxClosedSockets bounds how many closed sockets Stats still reports.
const maxClosedSockets = 1000

// A writer in reliable delivery coalesces the frames queued for its socket into one
// network write of at most maxBatchFrames frames or about maxBatchBytes bytes. The bytes
// on the wire are the same as one gorilla WriteMessage per frame (one unmasked final text
// frame each); only the number of write syscalls differs.
const (
	maxBatchFrames = 1024
	maxBatchBytes  = 256 << 10
)

// maxInjectRun bounds how many consecutive frames of one account an injection offers
// under one acquisition of the reader semaphore.
const maxInjectRun = 256

type hub struct {
	mu      sync.Mutex
	nextID  int64
	open    map[int64]*socket
	closed  []*socket
	changed chan struct{}
}

func newHub() *hub {
	return &hub{open: make(map[int64]*socket), changed: make(chan struct{})}
}

func (h *hub) nextIndex() int64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.nextID++
	return h.nextID
}

func (h *hub) notifyLocked() {
	close(h.changed)
	h.changed = make(chan struct{})
}

func (h *hub) add(k *socket) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.open[k.id] = k
	h.notifyLocked()
}

func (h *hub) remove(k *socket) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.open[k.id]; !ok {
		return
	}
	delete(h.open, k.id)
	h.closed = append(h.closed, k)
	if len(h.closed) > maxClosedSockets {
		h.closed = slices.Delete(h.closed, 0, len(h.closed)-maxClosedSockets)
	}
	h.notifyLocked()
}

// forAccount returns the open sockets whose path number equals account, in connection order.
func (h *hub) forAccount(account string) []*socket {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []*socket
	for _, k := range h.open {
		if k.account == account {
			out = append(out, k)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].id < out[j].id })
	return out
}

func (h *hub) openSockets() []*socket {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]*socket, 0, len(h.open))
	for _, k := range h.open {
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].id < out[j].id })
	return out
}

func (h *hub) closeAll() {
	for _, k := range h.openSockets() {
		k.close()
	}
}

// socket is one accepted websocket with the real server's three goroutines: a writer fed
// by injections, a pinger, and a reader that discards client frames.
type socket struct {
	e           *Emulator
	id          int64
	clientID    string
	account     string
	conn        *websocket.Conn
	connectedAt time.Time
	done        chan struct{}
	once        sync.Once

	mu       sync.Mutex
	queue    [][]byte
	closed   bool
	closedAt time.Time

	notify  chan struct{}
	handoff chan []byte
	// batch and wbuf are the writer's scratch space for coalesced writes.
	batch [][]byte
	wbuf  []byte
	// inflight counts frames the writer took from the queue and has not written yet.
	inflight atomic.Int64
	// busy is set while a busy-drop frame is being written; an offer that finds it set is
	// dropped, as the real server's non-blocking send on an unbuffered channel is.
	busy atomic.Bool
	wmu  sync.Mutex

	offered, accepted, delivered, dropped, unsent     atomic.Int64
	pingsSent, pongsReceived, clientPings, clientMsgs atomic.Int64
}

// offer hands frame to the socket according to the delivery mode; it reports whether the
// socket accepted it.
func (k *socket) offer(frame []byte) bool {
	e := k.e
	k.offered.Add(1)
	e.st.framesOffered.Add(1)
	select {
	case <-k.done:
		return false
	default:
	}
	if e.faults.shouldDrop(k) {
		k.dropped.Add(1)
		e.st.framesDropped.Add(1)
		return false
	}
	if e.faults.Delivery() == DeliveryReliable {
		k.mu.Lock()
		if k.closed || len(k.queue) >= e.cfg.MaxQueuedFrames {
			closed := k.closed
			k.mu.Unlock()
			if !closed {
				k.dropped.Add(1)
				e.st.framesDropped.Add(1)
			}
			return false
		}
		k.queue = append(k.queue, frame)
		k.mu.Unlock()
		select {
		case k.notify <- struct{}{}:
		default:
		}
	} else {
		if !k.busy.CompareAndSwap(false, true) {
			k.dropped.Add(1)
			e.st.framesDropped.Add(1)
			return false
		}
		k.handoff <- frame // buffered 1 and empty whenever busy was false
	}
	k.accepted.Add(1)
	e.st.framesAccepted.Add(1)
	return true
}

// offerAll offers frames in order, adding 1 to accepted[i] for each frame i the socket
// accepted. It is offer applied to each frame; in reliable delivery without socket faults
// it queues the frames under one lock and wakes the writer once.
func (k *socket) offerAll(frames [][]byte, accepted []int) {
	e := k.e
	if len(frames) == 1 || e.faults.Delivery() != DeliveryReliable || e.faults.hasSocketFaults() {
		for i, f := range frames {
			if k.offer(f) {
				accepted[i]++
			}
		}
		return
	}
	n := int64(len(frames))
	k.offered.Add(n)
	e.st.framesOffered.Add(n)
	select {
	case <-k.done:
		return
	default:
	}
	k.mu.Lock()
	if k.closed {
		k.mu.Unlock()
		return
	}
	take := min(len(frames), max(e.cfg.MaxQueuedFrames-len(k.queue), 0))
	k.queue = append(k.queue, frames[:take]...)
	k.mu.Unlock()
	if d := n - int64(take); d > 0 {
		k.dropped.Add(d)
		e.st.framesDropped.Add(d)
	}
	if take == 0 {
		return
	}
	for i := range take {
		accepted[i]++
	}
	k.accepted.Add(int64(take))
	e.st.framesAccepted.Add(int64(take))
	select {
	case k.notify <- struct{}{}:
	default:
	}
}

// popBatch takes the next frames of the queue (at least one if any are queued) into the
// writer's scratch slice; one frame only while socket faults are installed, since their
// stalls and delays apply per write.
func (k *socket) popBatch() [][]byte {
	limit := maxBatchFrames
	if k.e.faults.hasSocketFaults() {
		limit = 1
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	n, size := 0, 0
	for n < len(k.queue) && n < limit && (n == 0 || size+len(k.queue[n]) <= maxBatchBytes) {
		size += len(k.queue[n])
		n++
	}
	k.inflight.Store(int64(n))
	k.batch = append(k.batch[:0], k.queue[:n]...)
	clear(k.queue[:n])
	k.queue = k.queue[n:]
	if len(k.queue) == 0 {
		k.queue = nil
	}
	return k.batch
}

func (k *socket) writer() {
	defer k.e.wg.Done()
	for {
		select {
		case <-k.done:
			return
		case f := <-k.handoff:
			ok := k.write(f)
			k.busy.Store(false)
			if !ok {
				return
			}
		case <-k.notify:
			for {
				b := k.popBatch()
				if len(b) == 0 {
					break
				}
				ok := k.writeBatch(b)
				k.inflight.Store(0)
				clear(b)
				if !ok {
					return
				}
			}
		}
	}
}

// writeBatch writes frames popped from the queue. Without socket faults (whose stall and
// delay apply per write) they go out in one network write.
func (k *socket) writeBatch(frames [][]byte) bool {
	e := k.e
	if len(frames) == 1 || e.faults.hasSocketFaults() {
		for i, f := range frames {
			if !k.write(f) {
				k.lost(int64(len(frames) - i - 1))
				return false
			}
			k.inflight.Add(-1)
		}
		return true
	}
	if e.faults.Delivery() == DeliveryGlobalStall {
		e.gmu.Lock()
		defer e.gmu.Unlock()
	}
	buf := k.wbuf[:0]
	for _, f := range frames {
		buf = appendTextFrame(buf, f)
	}
	k.wbuf = buf
	k.wmu.Lock()
	n, err := writeNoDeadline(k.conn.NetConn(), buf)
	k.wmu.Unlock()
	if len(k.wbuf) > 4*maxBatchBytes {
		k.wbuf = nil // do not keep the buffer of an unusually large frame
	}
	if err != nil {
		// Frames written in full count as delivered, those not started as unsent; the
		// one cut in the middle is lost, like a frame whose WriteMessage failed.
		done, pos := 0, 0
		for _, f := range frames {
			pos += textFrameLen(len(f))
			if pos > n {
				break
			}
			done++
		}
		k.delivered.Add(int64(done))
		e.st.framesDelivered.Add(int64(done))
		k.close()
		k.lost(int64(max(len(frames)-done-1, 0)))
		return false
	}
	k.delivered.Add(int64(len(frames)))
	e.st.framesDelivered.Add(int64(len(frames)))
	return true
}

// lost counts n frames taken from the queue but never written as unsent.
func (k *socket) lost(n int64) {
	if n > 0 {
		k.unsent.Add(n)
		k.e.st.framesUnsent.Add(n)
	}
}

// appendTextFrame appends payload as one final, unmasked websocket text frame, the bytes
// gorilla's WriteMessage(TextMessage, payload) writes on a server connection.
func appendTextFrame(b, payload []byte) []byte {
	const finText = 0x81
	switch n := len(payload); {
	case n >= 65536:
		b = append(b, finText, 127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	case n > 125:
		b = append(b, finText, 126)
		b = binary.BigEndian.AppendUint16(b, uint16(n))
	default:
		b = append(b, finText, byte(n))
	}
	return append(b, payload...)
}

func textFrameLen(n int) int {
	switch {
	case n >= 65536:
		return 10 + n
	case n > 125:
		return 4 + n
	default:
		return 2 + n
	}
}

// writeNoDeadline writes b in full without a write deadline, like the real server. gorilla
// sets a deadline on the connection for control frames (the reader's pong answers) and
// clears it before its own data writes; a raw write clears it too and, should a pong's
// deadline slip in between, carries on after it.
func writeNoDeadline(c net.Conn, b []byte) (int, error) {
	total := 0
	for {
		_ = c.SetWriteDeadline(time.Time{})
		n, err := c.Write(b)
		total += n
		if err == nil || !errors.Is(err, os.ErrDeadlineExceeded) {
			return total, err
		}
		b = b[n:]
	}
}

// write writes one text frame, honouring stall and delay faults and, in global-stall
// mode, the process-wide write mutex. No write deadline is set, like the real server.
func (k *socket) write(f []byte) bool {
	e := k.e
	if e.faults.Delivery() == DeliveryGlobalStall {
		e.gmu.Lock()
		defer e.gmu.Unlock()
	}
	for {
		rel := e.faults.stall(k)
		if rel == nil {
			break
		}
		select {
		case <-rel:
		case <-k.done:
			return false
		}
	}
	if d := e.faults.writeDelay(k); d > 0 {
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-k.done:
			t.Stop()
			return false
		}
	}
	k.wmu.Lock()
	err := k.conn.WriteMessage(websocket.TextMessage, f)
	k.wmu.Unlock()
	if err != nil {
		k.close()
		return false
	}
	k.delivered.Add(1)
	e.st.framesDelivered.Add(1)
	return true
}

func (k *socket) pinger() {
	defer k.e.wg.Done()
	t := time.NewTicker(k.e.cfg.PingInterval)
	defer t.Stop()
	for {
		select {
		case <-k.done:
			return
		case <-t.C:
			if !k.ping() {
				return
			}
		}
	}
}

func (k *socket) ping() bool {
	if k.e.faults.Delivery() == DeliveryGlobalStall {
		k.e.gmu.Lock()
		defer k.e.gmu.Unlock()
	}
	k.wmu.Lock()
	err := k.conn.WriteMessage(websocket.PingMessage, nil)
	k.wmu.Unlock()
	if err != nil {
		k.close()
		return false
	}
	k.pingsSent.Add(1)
	return true
}

// read discards client frames until the connection fails. There is no read deadline: the
// server never drops a silent client by itself.
func (k *socket) read() {
	c := k.conn
	c.SetReadLimit(readLimit)
	c.SetPongHandler(func(string) error {
		k.pongsReceived.Add(1)
		return nil
	})
	c.SetPingHandler(func(data string) error {
		k.clientPings.Add(1)
		err := c.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(5*time.Second))
		var ne net.Error
		if err == nil || errors.Is(err, websocket.ErrCloseSent) || (errors.As(err, &ne) && ne.Timeout()) {
			return nil
		}
		return err
	})
	for {
		if _, _, err := c.ReadMessage(); err != nil {
			return
		}
		k.clientMsgs.Add(1)
	}
}

// close tears the socket down without a close frame; frames still queued are counted as
// unsent.
func (k *socket) close() {
	k.once.Do(func() {
		close(k.done)
		_ = k.conn.Close()
		k.mu.Lock()
		k.closed = true
		k.closedAt = time.Now()
		n := int64(len(k.queue) + len(k.handoff))
		k.queue = nil
		k.mu.Unlock()
		k.unsent.Add(n)
		k.e.st.framesUnsent.Add(n)
		k.e.hub.remove(k)
	})
}

func (e *Emulator) serveWebsocket(c *reqCtx, number string) {
	// Number the connection before the handshake answer: a client whose dial returned
	// first always gets the lower index. A failed upgrade leaves a gap.
	index := e.hub.nextIndex()
	// Any Origin is accepted; no subprotocol, no auth (reference §2.2).
	up := websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}
	conn, err := up.Upgrade(c.w, c.r, nil)
	if err != nil {
		// gorilla already answered 400 "Bad Request\n"; the real handler then appends its
		// JSON error to the same body (#184, #665).
		_, _ = c.w.Write(mustJSON(apiError{Error: err.Error()}))
		return
	}
	e.calls.update(c.call, func(cl *Call) { cl.Status = http.StatusSwitchingProtocols })
	k := &socket{
		e:           e,
		id:          index,
		clientID:    c.r.Header.Get(ClientIDHeader),
		account:     number,
		conn:        conn,
		connectedAt: time.Now(),
		done:        make(chan struct{}),
		notify:      make(chan struct{}, 1),
		handoff:     make(chan []byte, 1),
	}
	e.st.connections.Add(1)
	if !e.track() {
		_ = conn.Close()
		return
	}
	go k.writer()
	if !e.track() {
		k.close()
		return
	}
	go k.pinger()
	e.hub.add(k)
	e.log.Debug("websocket connected", zap.Int64("socket", k.id), zap.String("client_id", k.clientID))
	k.read()
	k.close()
	e.log.Debug("websocket closed", zap.Int64("socket", k.id))
}

// WaitSockets blocks until at least n websockets are open for account ("" counts all).
func (e *Emulator) WaitSockets(ctx context.Context, account string, n int) error {
	for {
		e.hub.mu.Lock()
		cnt := 0
		for _, k := range e.hub.open {
			if account == "" || k.account == account {
				cnt++
			}
		}
		ch := e.hub.changed
		e.hub.mu.Unlock()
		if cnt >= n {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("emulator: wait for %d sockets, have %d: %w", n, cnt, ctx.Err())
		}
	}
}

// OpenSockets returns how many websockets are open for account ("" counts all).
func (e *Emulator) OpenSockets(account string) int {
	if account == "" {
		return len(e.hub.openSockets())
	}
	return len(e.hub.forAccount(account))
}

// Inject delivers one wrapper frame (sent verbatim) for account, like a receive
// notification from the daemon, and returns how many sockets accepted it.
//
// In json-rpc mode it is offered to every open websocket whose path number equals account
// (exact string match); with none open the event is discarded and counted, and nothing is
// replayed later. In normal mode it is queued for GET /v1/receive (if account is
// registered) and 0 is returned. While a simulated crash is in progress it is held or
// discarded (CrashOptions.HoldEvents). Injections are serialized, so every socket sees
// them in injection order (minus drops).
func (e *Emulator) Inject(account string, frame []byte) int {
	var n [1]int
	e.injectAll([]injection{{account: account, frame: slices.Clone(frame)}}, n[:], nil)
	return n[0]
}

// InjectAll is Inject for each frame in order (frames are copied). It returns how many
// sockets accepted each. Consecutive frames are offered in runs, which is much cheaper
// than one Inject per frame.
func (e *Emulator) InjectAll(account string, frames [][]byte) []int {
	owned := make([][]byte, len(frames))
	for i, f := range frames {
		owned[i] = slices.Clone(f)
	}
	return e.injectOwned(account, owned)
}

// injectOwned is InjectAll for frames nobody else modifies.
func (e *Emulator) injectOwned(account string, frames [][]byte) []int {
	evs := make([]injection, len(frames))
	for i, f := range frames {
		evs[i] = injection{account: account, frame: f}
	}
	out := make([]int, len(frames))
	e.injectAll(evs, out, nil)
	return out
}

// injection is one event to inject: a frame for account, or, with skip, a frame that had
// no readable account (InjectParams) and is only counted.
type injection struct {
	account string
	frame   []byte
	skip    bool
}

// injectAll injects evs in order with Inject's semantics and adds to accepted[i] the
// sockets that accepted evs[i]; touched, if not nil, collects the sockets offered a frame.
// Consecutive frames of one account are offered as a run (at most maxInjectRun, one when
// a webhook is configured, so REST calls waiting for the reader interleave with webhook
// calls as before) under one acquisition of the reader semaphore, and the crash state is
// checked once per run while the run is offered, so a crash holds or discards a run
// before any of it or cuts it after all of it was accepted.
func (e *Emulator) injectAll(evs []injection, accepted []int, touched map[*socket]struct{}) {
	runMax := maxInjectRun
	if e.cfg.WebhookURL != "" {
		runMax = 1
	}
	frames := make([][]byte, 0, min(len(evs), runMax))
	for i := 0; i < len(evs); {
		if evs[i].skip {
			e.st.unparseable.Add(1)
			i++
			continue
		}
		j := i + 1
		for j < len(evs) && j-i < runMax && !evs[j].skip && evs[j].account == evs[i].account {
			j++
		}
		run, acc := evs[i:j], accepted[i:j]
		i = j
		account := run[0].account
		e.st.eventsInjected.Add(int64(len(run)))
		select {
		case e.reader <- struct{}{}:
		case <-e.closing:
			e.st.eventsDiscarded.Add(int64(len(run)))
			continue
		}
		e.lnMu.Lock()
		if e.down {
			for _, ev := range run {
				if e.holdEvents {
					e.held = append(e.held, [2][]byte{[]byte(account), ev.frame})
					e.st.eventsHeld.Add(1)
				} else {
					e.st.eventsDiscarded.Add(1)
				}
			}
			e.lnMu.Unlock()
			<-e.reader
			continue
		}
		if e.cfg.Mode != ModeJSONRPC {
			e.lnMu.Unlock()
			for _, ev := range run {
				e.enqueuePoll(account, ev.frame)
			}
			<-e.reader
			continue
		}
		frames = frames[:0]
		for _, ev := range run {
			frames = append(frames, ev.frame)
		}
		socks := e.hub.forAccount(account)
		if len(socks) == 0 {
			e.st.eventsDiscarded.Add(int64(len(run)))
		}
		for _, k := range socks {
			k.offerAll(frames, acc)
			if touched != nil {
				touched[k] = struct{}{}
			}
		}
		e.lnMu.Unlock()
		for _, f := range frames {
			e.postWebhook(f)
		}
		clear(frames)
		<-e.reader
	}
}

// InjectParams is Inject with the account taken from the frame's "account" field, exactly
// as the real server filters. A frame that is not a JSON object with a string account is
// skipped (counted as unparseable) and 0 is returned.
func (e *Emulator) InjectParams(frame []byte) int {
	var w struct {
		Account string `json:"account"`
	}
	if err := json.Unmarshal(frame, &w); err != nil {
		e.st.unparseable.Add(1)
		return 0
	}
	return e.Inject(w.Account, frame)
}

// InjectError sends {"error":msg} to every open websocket regardless of account, like a
// JSON-RPC error notification, and returns how many accepted it.
func (e *Emulator) InjectError(msg string) int {
	e.st.errorsInjected.Add(1)
	if !e.Up() {
		return 0
	}
	select {
	case e.reader <- struct{}{}:
	case <-e.closing:
		return 0
	}
	defer func() { <-e.reader }()
	frame := events.ErrorFrame(msg)
	n := 0
	for _, k := range e.hub.openSockets() {
		if k.offer(frame) {
			n++
		}
	}
	return n
}

func (e *Emulator) postWebhook(frame []byte) {
	if e.cfg.WebhookURL == "" {
		return
	}
	req, err := http.NewRequestWithContext(e.ctx, http.MethodPost, e.cfg.WebhookURL, bytes.NewReader(events.Notification(frame)))
	if err != nil {
		e.st.webhookFailed.Add(1)
		e.log.Warn("webhook request invalid: check the webhook URL", zap.Error(err))
		return
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := e.webhook.Do(req)
	if err != nil {
		e.st.webhookFailed.Add(1)
		e.log.Warn("webhook call failed, event dropped", zap.Error(err))
		return
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusCreated {
		e.st.webhookOK.Add(1)
		return
	}
	e.st.webhookFailed.Add(1)
	e.log.Warn("webhook answered non-2xx, event dropped", zap.Int("status", resp.StatusCode))
}

// waitReader blocks while an injection (and its webhook call) is in progress, the way the
// real server cannot read JSON-RPC responses while its reader goroutine is busy (#758).
func (e *Emulator) waitReader(ctx context.Context) bool {
	select {
	case e.reader <- struct{}{}:
		<-e.reader
		return true
	case <-ctx.Done():
		return false
	case <-e.closing:
		return false
	}
}

func (e *Emulator) enqueuePoll(account string, frame []byte) {
	s := e.state
	s.mu.Lock()
	defer s.mu.Unlock()
	if !slices.Contains(s.accounts, account) {
		e.st.eventsDiscarded.Add(1)
		return
	}
	s.poll[account] = append(s.poll[account], frame)
	e.st.eventsQueued.Add(1)
	close(s.pollChanged)
	s.pollChanged = make(chan struct{})
}

// QueuedEvents returns how many events wait for polling (normal mode) for account.
func (e *Emulator) QueuedEvents(account string) int {
	e.state.mu.Lock()
	defer e.state.mu.Unlock()
	return len(e.state.poll[account])
}

func (e *Emulator) handleReceive(c *reqCtx) {
	number, ok := c.number()
	if !ok {
		return
	}
	if e.cfg.Mode == ModeJSONRPC {
		// Query parameters are ignored, not even validated, in json-rpc mode.
		e.serveWebsocket(c, number)
		return
	}
	q := c.r.URL.Query()
	param := func(k, def string) string {
		if v, ok := q[k]; ok && len(v) > 0 {
			return v[0]
		}
		return def
	}
	timeout, err := strconv.ParseInt(param("timeout", "1"), 10, 32)
	if err != nil {
		c.fail("Couldn't process request - timeout needs to be numeric!")
		return
	}
	maxMessages, err := strconv.ParseInt(param("max_messages", "0"), 10, 32)
	if err != nil {
		c.fail("Couldn't process request - max_messages needs to be numeric!")
		return
	}
	for _, name := range []string{"ignore_attachments", "ignore_stories", "ignore_avatars", "ignore_stickers", "send_read_receipts"} {
		if v := param(name, "false"); v != "true" && v != "false" {
			c.fail("Couldn't process request - " + name + " parameter needs to be either 'true' or 'false'")
			return
		}
	}
	if !c.daemon(number) {
		return
	}
	frames := e.pollEvents(c.r.Context(), number, timeout, maxMessages)
	var b strings.Builder
	b.WriteByte('[')
	for i, f := range frames {
		if i > 0 {
			b.WriteByte(',')
		}
		b.Write(f)
	}
	b.WriteByte(']')
	if !c.answerFaults() {
		return
	}
	c.w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	c.w.WriteHeader(http.StatusOK)
	_, _ = io.WriteString(c.w, b.String())
}

// pollEvents takes queued events once (at-most-once). With an empty queue it waits up to
// timeout units (forever for a negative timeout) for the first one.
func (e *Emulator) pollEvents(ctx context.Context, account string, timeout, maxMessages int64) [][]byte {
	var deadline <-chan time.Time
	if timeout > 0 {
		t := time.NewTimer(time.Duration(timeout) * e.cfg.PollTimeoutUnit)
		defer t.Stop()
		deadline = t.C
	}
	s := e.state
	for {
		s.mu.Lock()
		q := s.poll[account]
		if len(q) > 0 || timeout == 0 {
			n := len(q)
			if maxMessages > 0 && int64(n) > maxMessages {
				n = int(maxMessages)
			}
			out := q[:n:n]
			rest := slices.Clone(q[n:])
			if len(rest) == 0 {
				rest = nil
			}
			s.poll[account] = rest
			s.mu.Unlock()
			e.st.eventsPolled.Add(int64(len(out)))
			return out
		}
		ch := s.pollChanged
		s.mu.Unlock()
		select {
		case <-ch:
		case <-deadline:
			timeout = 0
		case <-ctx.Done():
			return nil
		case <-e.closing:
			return nil
		}
	}
}
