// Command healthcheck probes a signal-client process from inside its container
// for docker-compose's healthcheck: the image is distroless (no shell, curl or
// wget), so the probe is a static binary of its own. It fetches
// http://127.0.0.1:$HEALTH_PORT/ready (or the URL given as the argument) and
// exits 0 on 200, 1 otherwise, printing the reason. Kubernetes does not need it:
// its probes are httpGet on the same endpoints.
package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"time"
)

func main() {
	os.Exit(run(os.Args[1:], os.Getenv, os.Stdout))
}

// run returns the exit code: 0 healthy, 1 not, 2 misuse.
func run(args []string, getenv func(string) string, out io.Writer) int {
	url, err := target(args, getenv)
	if err != nil {
		fmt.Fprintln(out, err)
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		fmt.Fprintf(out, "healthcheck: %v\n", err)
		return 2
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		fmt.Fprintf(out, "healthcheck: %s unreachable: %v\n", url, err)
		return 1
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintf(out, "healthcheck: %s answered %d: %s\n", url, resp.StatusCode, body)
		return 1
	}
	return 0
}

// target is the URL to probe: the argument, or /ready on HEALTH_PORT (the
// process's own setting, so the probe follows it).
func target(args []string, getenv func(string) string) (string, error) {
	switch len(args) {
	case 0:
	case 1:
		return args[0], nil
	default:
		return "", fmt.Errorf("usage: healthcheck [URL] (default http://127.0.0.1:$HEALTH_PORT/ready)")
	}
	port := getenv("HEALTH_PORT")
	if port == "" {
		port = "8082"
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return "", fmt.Errorf("healthcheck: HEALTH_PORT=%q: expected a port number from 1 to 65535", port)
	}
	return "http://127.0.0.1:" + port + "/ready", nil
}
