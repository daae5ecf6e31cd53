package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"
)

func TestHelpExitsZeroAndListsFlags(t *testing.T) {
	var out bytes.Buffer
	if code := run(context.Background(), []string{"--help"}, &out); code != 0 {
		t.Fatalf("--help exit code %d", code)
	}
	for _, f := range []string{"--listen", "--accounts", "--profile", "--mode", "--version", "--ping-interval", "--gen-rate", "--gen-count"} {
		if !strings.Contains(out.String(), f) {
			t.Fatalf("usage lacks %s:\n%s", f, out.String())
		}
	}
}

func TestBadFlagsExitTwo(t *testing.T) {
	for _, args := range [][]string{
		{"--no-such-flag"},
		{"--listen", "127.0.0.1:0", "--delivery", "sometimes"},
		{"--listen", "127.0.0.1:0", "--log-level", "chatty"},
		{"--listen", "127.0.0.1:0", "--gen"},
	} {
		var out bytes.Buffer
		if code := run(context.Background(), args, &out); code != 2 {
			t.Fatalf("%v: exit code %d, want 2", args, code)
		}
	}
	var out bytes.Buffer
	if code := run(context.Background(), []string{"--listen", "127.0.0.1:0", "--profile", "1.0", "--log-level", "error"}, &out); code != 1 {
		t.Fatalf("bad profile: exit code %d, want 1", code)
	}
}

func TestRunsUntilCanceled(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	var out bytes.Buffer
	code := run(ctx, []string{"--listen", "127.0.0.1:0", "--log-level", "error", "--gen", "--gen-count", "5", "--gen-rate", "0"}, &out)
	if code != 0 {
		t.Fatalf("exit code %d: %s", code, out.String())
	}
}
