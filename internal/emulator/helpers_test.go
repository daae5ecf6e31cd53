package emulator

import (
	"context"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

const (
	bot       = DefaultAccount
	otherAcct = "+15550000077"
	// testGroupID is the reference's example group (§3.8) and restGroupID its REST id.
	testGroupID = "R6fG4/C/ETxPPxIu+ObgS+hSl6DmDkBP7llnAf8KplU="
	restGroupID = "group.UjZmRzQvQy9FVHhQUHhJdStPYmdTK2hTbDZEbURrQlA3bGxuQWY4S3BsVT0="
	waitLong    = 5 * time.Second
)

func start(t *testing.T, cfg Config) *Emulator {
	t.Helper()
	if cfg.PingInterval == 0 {
		cfg.PingInterval = time.Hour
	}
	e := New(cfg)
	if err := e.Start(); err != nil {
		t.Fatalf("start emulator: %v", err)
	}
	t.Cleanup(func() { _ = e.Close() })
	return e
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	t.Cleanup(cancel)
	return ctx
}

// wsClient is a test websocket client whose reader goroutine queues frames.
type wsClient struct {
	conn   *websocket.Conn
	frames chan []byte
	errc   chan error
	pings  atomic.Int64
	pongs  chan string
}

func dial(t *testing.T, e *Emulator, account string, hdr http.Header) *wsClient {
	t.Helper()
	return dialURL(t, e.WebsocketURL(account), hdr, true)
}

func dialURL(t *testing.T, url string, hdr http.Header, answerPings bool) *wsClient {
	t.Helper()
	conn, resp, err := websocket.DefaultDialer.Dial(url, hdr)
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	_ = resp.Body.Close()
	c := &wsClient{conn: conn, frames: make(chan []byte, 10000), errc: make(chan error, 1), pongs: make(chan string, 16)}
	conn.SetPingHandler(func(data string) error {
		c.pings.Add(1)
		if !answerPings {
			return nil
		}
		return conn.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(time.Second))
	})
	conn.SetPongHandler(func(data string) error {
		select {
		case c.pongs <- data:
		default:
		}
		return nil
	})
	go func() {
		for {
			_, b, err := conn.ReadMessage()
			if err != nil {
				c.errc <- err
				return
			}
			c.frames <- b
		}
	}()
	t.Cleanup(func() { _ = conn.Close() })
	return c
}

func (c *wsClient) next(t *testing.T) []byte {
	t.Helper()
	select {
	case f := <-c.frames:
		return f
	case err := <-c.errc:
		t.Fatalf("websocket failed while waiting for a frame: %v", err)
	case <-time.After(waitLong):
		t.Fatal("no frame within 5s")
	}
	return nil
}

// none asserts that no frame arrives within d.
func (c *wsClient) none(t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case f := <-c.frames:
		t.Fatalf("unexpected frame: %s", f)
	case <-time.After(d):
	}
}

func (c *wsClient) waitErr(t *testing.T) error {
	t.Helper()
	select {
	case err := <-c.errc:
		return err
	case <-time.After(waitLong):
		t.Fatal("websocket still open after 5s")
	}
	return nil
}

type response struct {
	status int
	header http.Header
	body   string
}

func do(t *testing.T, method, url, body string, hdr ...string) response {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, r)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	if body != "" && req.Header.Get("Content-Type") == "" {
		req.Header.Set("Content-Type", "application/json")
	}
	client := &http.Client{Timeout: waitLong, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: string(b)}
}

func (r response) expect(t *testing.T, status int, body string) {
	t.Helper()
	if r.status != status || r.body != body {
		t.Fatalf("got %d %q, want %d %q", r.status, r.body, status, body)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitLong)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// sock returns a socket's stats, waiting for it to be registered: a client's dial returns
// before the server has set the socket up.
func sock(t *testing.T, e *Emulator, index int64) SocketStats {
	t.Helper()
	deadline := time.Now().Add(waitLong)
	for {
		if s, ok := e.Socket(index); ok {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("no socket %d", index)
		}
		time.Sleep(time.Millisecond)
	}
}

func frameFor(account, text string) []byte {
	return []byte(`{"envelope":{"source":"+15550000002","sourceNumber":"+15550000002","sourceUuid":"3f1c7a52-8e0b-4d1e-9a52-5a0c2b7d9e11","sourceName":"Alice","sourceDevice":1,"timestamp":1,"serverReceivedTimestamp":2,"serverDeliveredTimestamp":3,"dataMessage":{"timestamp":1,"message":"` + text + `","expiresInSeconds":0,"isExpirationUpdate":false,"viewOnce":false}},"account":"` + account + `"}`)
}
