// Package demo is `make demo`: it starts the signal-cli-rest-api emulator and
// the all-in-one signal-client on its embedded store, plays a scripted set of
// conversations (a direct chat, a sender with a hidden number, a group), and
// prints a live transcript — who said what, what the bot answered, how long it
// took — checked against the calls the emulator recorded. It exits non-zero
// when any step was not answered as expected.
package demo

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/signal-client/signal-client/internal/emulator"
	"github.com/signal-client/signal-client/internal/emulator/events"
	"github.com/signal-client/signal-client/internal/signal"
)

// Options configure a run.
type Options struct {
	Bin    string    // directory of the built binaries
	Out    io.Writer // the transcript
	Timing bool      // print timings (off in tests for stable output)
}

// Result summarises a run.
type Result struct {
	Steps, Passed int
	Failures      []string
}

// OK reports whether every step passed.
func (r Result) OK() bool { return r.Steps > 0 && r.Passed == r.Steps }

var (
	alice = events.Contact{Number: "+15550000002", UUID: "3f1c7a52-8e0b-4d1e-9a52-5a0c2b7d9e11", Name: "Alice"}
	bob   = events.Contact{UUID: "b7e2d0c4-1a2b-4c3d-8e9f-0a1b2c3d4e5f", Name: "Bob (hidden number)"}
	carol = events.Contact{Number: "+15550000003", UUID: "c0ffee00-1a2b-4c3d-8e9f-0a1b2c3d4e5f", Name: "Carol"}
)

type runner struct {
	o     Options
	emu   *emulator.Emulator
	res   Result
	since int64
	group emulator.Group
	proc  *exec.Cmd
	env   []string
	store string
}

// Run plays the demo.
func Run(ctx context.Context, o Options) (Result, error) {
	r := &runner{o: o}
	r.emu = emulator.New(emulator.Config{})
	if err := r.emu.Start(); err != nil {
		return r.res, fmt.Errorf("demo: emulator: %w", err)
	}
	defer r.emu.Close()
	g, err := r.emu.AddGroup(emulator.DefaultAccount, emulator.Group{Name: "Ops",
		Members: []emulator.Member{{Number: alice.Number, UUID: alice.UUID}, {UUID: bob.UUID}, {Number: carol.Number, UUID: carol.UUID}}})
	if err != nil {
		return r.res, fmt.Errorf("demo: group: %w", err)
	}
	r.group = g
	if err := r.startBot(ctx); err != nil {
		return r.res, err
	}
	defer r.stopBot()

	r.section("Direct chat with Alice")
	r.say(alice, "", "!ping", "pong")
	r.say(alice, "", "!echo hello from the demo", "hello from the demo")
	r.react(alice, "👍")
	r.sayPrefix(alice, "", "!help", "Commands:")
	r.edit(alice, "!echo helo", "!echo hello, fixed", "hello, fixed (edited)")
	r.section("Bob hides his number: the bot answers his uuid")
	r.say(bob, "", "!echo hi, I am hidden", "hi, I am hidden")
	r.section("The Ops group")
	r.say(carol, g.ID, "!ping", "pong")
	r.say(alice, g.ID, "!echo deploy done", "deploy done")
	r.say(alice, g.ID, "!count", "1")
	r.say(bob, g.ID, "!count", "2")
	r.say(carol, g.ID, "!count", "3")
	r.say(alice, "", "!count", "1")
	r.section("A reply that cannot be delivered: retried, parked in the DLQ, replayed with dlqctl")
	r.deadLetter(ctx)
	return r.res, nil
}

func freePort() int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func (r *runner) startBot(ctx context.Context) error {
	r.store = "127.0.0.1:" + strconv.Itoa(freePort())
	health := strconv.Itoa(freePort())
	r.env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"),
		"SIGNAL_PHONE_NUMBER=" + emulator.DefaultAccount, "SIGNAL_SERVICE_URL=" + r.emu.URL(),
		"STORAGE_TYPE=memory", "MEMORY_STORE_ADDR=" + r.store, "REDIS_PASSWORD=demo",
		"WORKER_SHARD_COUNT=8", "DLQ_MAX_RETRIES=1", "RETRY_BACKOFF_BASE=200ms", "RETRY_BACKOFF_MAX=400ms",
		"HEALTH_ADDR=127.0.0.1", "HEALTH_PORT=" + health, "METRICS_ADDR=127.0.0.1", "METRICS_PORT=" + strconv.Itoa(freePort()),
		"INSTANCE_ID=demo", "SHUTDOWN_TIMEOUT=5s"}
	logf, err := os.CreateTemp("", "signal-client-demo-*.log")
	if err != nil {
		return err
	}
	r.proc = exec.Command(filepath.Join(r.o.Bin, "signal-client"))
	r.proc.Env = r.env
	r.proc.Stdout, r.proc.Stderr = logf, logf
	r.proc.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := r.proc.Start(); err != nil {
		return fmt.Errorf("demo: start signal-client: %w (run `make build` first)", err)
	}
	fmt.Fprintf(r.o.Out, "signal-client (all-in-one, embedded store) started; log: %s\n", logf.Name())
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get("http://127.0.0.1:" + health + "/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("demo: signal-client not ready within 20s; see %s", logf.Name())
		}
		time.Sleep(50 * time.Millisecond)
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return r.emu.WaitSockets(wctx, emulator.DefaultAccount, 1)
}

func (r *runner) stopBot() {
	if r.proc == nil || r.proc.Process == nil {
		return
	}
	_ = r.proc.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = r.proc.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = r.proc.Process.Kill()
	}
}

func (r *runner) section(title string) { fmt.Fprintf(r.o.Out, "\n── %s\n", title) }

func who(c events.Contact) string { return c.Name }

func where(group string) string {
	if group == "" {
		return ""
	}
	return " [Ops]"
}

// sayPrefix is say for a reply that starts with want (e.g. !help's list).
func (r *runner) sayPrefix(from events.Contact, group, text, want string) {
	r.sayMatch(from, group, text, want+" …", func(msg string) bool { return strings.HasPrefix(msg, want) })
}

// react adds a reaction to the bot's last message and waits for its thanks.
func (r *runner) react(from events.Contact, emoji string) {
	r.res.Steps++
	last := r.emu.Calls(emulator.CallFilter{Route: "/v2/send", Status: 201})
	if len(last) == 0 {
		r.fail("no bot message to react to")
		return
	}
	target := last[len(last)-1]
	body, _ := target.Body.(map[string]any)
	fmt.Fprintf(r.o.Out, "%-22s → bot: reacts %s to %q\n", who(from), emoji, body["message"])
	start := time.Now()
	if _, _, err := r.emu.InjectEvent(emulator.EventSpec{Kind: "reaction", From: from, Emoji: emoji, Target: target.Timestamp}); err != nil {
		r.fail(err.Error())
		return
	}
	want := "thanks for the " + emoji
	if _, ok := r.waitSend(want, 10*time.Second); !ok {
		r.fail("no thanks for the reaction")
		return
	}
	r.pass(fmt.Sprintf("%-22s ← bot: %s", who(from), want), time.Since(start))
}

// edit sends a message, then edits it, and waits for the answer to the edit.
func (r *runner) edit(from events.Contact, first, edited, want string) {
	r.res.Steps++
	ts, _, err := r.emu.InjectEvent(emulator.EventSpec{From: from, Text: first})
	if err != nil {
		r.fail(err.Error())
		return
	}
	if _, ok := r.waitSend(strings.TrimPrefix(first, "!echo "), 10*time.Second); !ok {
		r.fail("no answer before the edit")
		return
	}
	fmt.Fprintf(r.o.Out, "%-22s → bot: %s\n%-22s   edits it to: %s\n", who(from), first, "", edited)
	start := time.Now()
	if _, _, err := r.emu.InjectEvent(emulator.EventSpec{Kind: "edit", From: from, Target: ts, Text: edited}); err != nil {
		r.fail(err.Error())
		return
	}
	if _, ok := r.waitSend(want, 10*time.Second); !ok {
		r.fail(fmt.Sprintf("no answer %q to the edit", want))
		return
	}
	r.pass(fmt.Sprintf("%-22s ← bot: %s", who(from), want), time.Since(start))
}

// say injects a message and waits for the bot's reply with want.
func (r *runner) say(from events.Contact, group, text, want string) {
	r.sayMatch(from, group, text, want, func(msg string) bool { return msg == want })
}

func (r *runner) sayMatch(from events.Contact, group, text, want string, match func(string) bool) {
	r.res.Steps++
	fmt.Fprintf(r.o.Out, "%-22s → bot%s: %s\n", who(from), where(group), text)
	start := time.Now()
	if _, _, err := r.emu.InjectEvent(emulator.EventSpec{From: from, Group: group, Text: text}); err != nil {
		r.fail(fmt.Sprintf("inject %q: %v", text, err))
		return
	}
	call, ok := r.waitSendMatch(match, 10*time.Second)
	if !ok {
		r.fail(fmt.Sprintf("no reply %q to %q", want, text))
		return
	}
	wantTo := from.Number
	if wantTo == "" {
		wantTo = from.UUID
	}
	if group != "" {
		wantTo = signal.GroupRESTID(group)
	}
	if to := recipients(call); to != wantTo {
		r.fail(fmt.Sprintf("reply %q went to %s, want %s", want, to, wantTo))
		return
	}
	r.pass(fmt.Sprintf("%-22s ← bot%s: %s", who(from), where(group), want), time.Since(start))
}

func recipients(c emulator.Call) string {
	body, _ := c.Body.(map[string]any)
	list, _ := body["recipients"].([]any)
	var out []string
	for _, x := range list {
		s, _ := x.(string)
		out = append(out, s)
	}
	return strings.Join(out, ",")
}

// waitSend waits for a successful /v2/send carrying message want.
func (r *runner) waitSend(want string, d time.Duration) (emulator.Call, bool) {
	return r.waitSendMatch(func(msg string) bool { return msg == want }, d)
}

func (r *runner) waitSendMatch(match func(string) bool, d time.Duration) (emulator.Call, bool) {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		for _, c := range r.emu.Calls(emulator.CallFilter{Route: "/v2/send", SinceID: r.since}) {
			body, _ := c.Body.(map[string]any)
			if msg, _ := body["message"].(string); match(msg) && c.Status == 201 {
				r.since = c.ID
				return c, true
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	return emulator.Call{}, false
}

func (r *runner) pass(line string, took time.Duration) {
	r.res.Passed++
	if r.o.Timing {
		fmt.Fprintf(r.o.Out, "%s   (%d ms)\n", line, took.Milliseconds())
	} else {
		fmt.Fprintln(r.o.Out, line)
	}
}

func (r *runner) fail(msg string) {
	r.res.Failures = append(r.res.Failures, msg)
	fmt.Fprintf(r.o.Out, "   ✗ %s\n", msg)
}

// deadLetter makes Carol's replies fail upstream until the entry is parked,
// then repairs upstream and replays the DLQ with dlqctl.
func (r *runner) deadLetter(ctx context.Context) {
	r.res.Steps++
	fault := r.emu.Faults().AddREST(emulator.RESTFault{Route: "/v2/send", Recipient: carol.Number, Error: "Failed to send message"})
	fmt.Fprintf(r.o.Out, "(emulator: every send to Carol now fails with 400 \"Failed to send message\")\n")
	fmt.Fprintf(r.o.Out, "%-22s → bot: %s\n", who(carol), "!echo are you there?")
	start := time.Now()
	if _, _, err := r.emu.InjectEvent(emulator.EventSpec{From: carol, Text: "!echo are you there?"}); err != nil {
		r.fail(err.Error())
		return
	}
	deadline := time.Now().Add(15 * time.Second)
	var stats map[string]any
	for {
		out, err := r.dlqctl(ctx, "stats", "--json")
		if err == nil && json.Unmarshal(out, &stats) == nil {
			if d, _ := stats["depth"].(float64); d >= 1 {
				break
			}
		}
		if time.Now().After(deadline) {
			r.fail(fmt.Sprintf("the failing reply was not parked: dlqctl stats: %s %v", out, err))
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	fmt.Fprintf(r.o.Out, "(after %d ms: parked in the dead-letter queue after 1 + DLQ_MAX_RETRIES = 2 attempts; dlqctl stats: depth %v)\n",
		time.Since(start).Milliseconds(), stats["depth"])
	r.emu.Faults().RemoveREST(fault)
	fmt.Fprintf(r.o.Out, "(emulator: sends to Carol work again)\n$ dlqctl replay --all\n")
	if out, err := r.dlqctl(ctx, "replay", "--all"); err != nil {
		r.fail(fmt.Sprintf("dlqctl replay: %v: %s", err, out))
		return
	} else {
		fmt.Fprintf(r.o.Out, "%s", indent(out))
	}
	if _, ok := r.waitSend("are you there?", 10*time.Second); !ok {
		r.fail("the replayed message was not answered")
		return
	}
	r.pass(fmt.Sprintf("%-22s ← bot: %s", who(carol), "are you there?  (delivered after the replay)"), time.Since(start))
}

func indent(b []byte) string {
	var sb strings.Builder
	for _, l := range strings.Split(strings.TrimRight(string(b), "\n"), "\n") {
		if l != "" {
			sb.WriteString("  " + l + "\n")
		}
	}
	return sb.String()
}

func (r *runner) dlqctl(ctx context.Context, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(r.o.Bin, "dlqctl"), args...)
	for _, kv := range r.env {
		if !strings.HasPrefix(kv, "STORAGE_TYPE=") && !strings.HasPrefix(kv, "MEMORY_STORE_ADDR=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, "REDIS_URL=redis://:demo@"+r.store+"/0")
	var stderr strings.Builder
	cmd.Stderr = &stderr // the audit log lines
	out, err := cmd.Output()
	if err != nil {
		return append(out, stderr.String()...), err
	}
	return out, nil
}

// Summary prints the closing lines.
func Summary(w io.Writer, res Result, took time.Duration) {
	fmt.Fprintf(w, "\n%d of %d steps answered as expected, checked against the emulator's recorded calls (%.1fs)\n",
		res.Passed, res.Steps, took.Seconds())
	for _, f := range res.Failures {
		fmt.Fprintf(w, "FAILED: %s\n", f)
	}
}
