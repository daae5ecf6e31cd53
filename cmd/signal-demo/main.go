// Command signal-demo is `make demo`; the logic lives in internal/demo.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/signal-client/signal-client/internal/demo"
)

func main() {
	exe, _ := os.Executable()
	bin := flag.String("bin", filepath.Dir(exe), "directory holding the built signal-client and dlqctl binaries")
	flag.Parse()
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := demo.Run(ctx, demo.Options{Bin: *bin, Out: os.Stdout, Timing: true})
	if err != nil {
		fmt.Fprintln(os.Stderr, "signal-demo:", err)
		os.Exit(1)
	}
	demo.Summary(os.Stdout, res, time.Since(start))
	if !res.OK() {
		os.Exit(1)
	}
}
