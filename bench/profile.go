package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// profileResult is one CPU profile taken from a process's /debug/pprof/profile
// (DEBUG_PPROF=true).
type profileResult struct {
	Name string // process name (ingester, worker)
	Data []byte // pprof protobuf (gzipped), as served
	Err  error
}

// takeProfile fetches a CPU profile of length d from base (the metrics
// server, without a path); it returns when the profile is complete.
func takeProfile(ctx context.Context, name, base string, d time.Duration) profileResult {
	secs := max(int(d.Round(time.Second)/time.Second), 1)
	url := base + "/debug/pprof/profile?seconds=" + strconv.Itoa(secs)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return profileResult{Name: name, Err: err}
	}
	c := http.Client{Timeout: d + 30*time.Second}
	resp, err := c.Do(req)
	if err != nil {
		return profileResult{Name: name, Err: err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != 200 {
		err = fmt.Errorf("GET %s: status %d: %s", url, resp.StatusCode, strings.TrimSpace(string(b)))
	}
	return profileResult{Name: name, Data: b, Err: err}
}

// pprofTop returns the first lines of `go tool pprof -top` for a profile
// file, or "" when the go tool is not available.
func pprofTop(path string, lines int) string {
	out, err := exec.Command("go", "tool", "pprof", "-top", "-nodecount="+strconv.Itoa(lines), path).Output()
	if err != nil {
		return ""
	}
	return strings.TrimRight(string(out), "\n")
}
