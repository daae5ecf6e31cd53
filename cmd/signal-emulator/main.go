// Command signal-emulator runs a local stand-in for signal-cli-rest-api (json-rpc mode by
// default) with fault injection, an admin API under /_emulator/ and an optional traffic
// generator. See package internal/emulator for the behaviour and the admin API.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/pflag"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/signal-client/signal-client/internal/emulator"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stderr)
	stop()
	os.Exit(code)
}

// run parses flags, starts the emulator and serves until ctx ends. It returns the exit code.
func run(ctx context.Context, args []string, stderr io.Writer) int {
	fs := pflag.NewFlagSet("signal-emulator", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:8080", "listen address (host:port)")
	accounts := fs.StringSlice("accounts", []string{emulator.DefaultAccount}, "registered account numbers (comma separated)")
	profile := fs.String("profile", emulator.ProfileRelease, "wire profile: 0.100 (send answers an object) or head (an array)")
	mode := fs.String("mode", emulator.ModeJSONRPC, "receive mode: json-rpc (websocket), normal or native (HTTP polling)")
	version := fs.String("version", "0.100", "version reported by /v1/about")
	ping := fs.Duration("ping-interval", 54*time.Second, "websocket ping interval")
	delivery := fs.String("delivery", string(emulator.DeliveryReliable), "websocket delivery: reliable, busy-drop (real server) or global-stall")
	webhook := fs.String("webhook-url", "", "RECEIVE_WEBHOOK_URL: POST every event there (json-rpc mode only)")
	webhookBlocks := fs.Bool("webhook-blocks-rest", false, "REST calls wait while a webhook call is pending, like the real server")
	seed := fs.Uint64("seed", 0, "seed for probabilistic faults and generated ids")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn or error")
	gen := fs.Bool("gen", false, "start the traffic generator")
	genRate := fs.Float64("gen-rate", 10, "generator events per second (0 = unpaced)")
	genBurst := fs.Int("gen-burst", 1, "generator token-bucket burst")
	genCount := fs.Int("gen-count", 0, "generator stops after this many events (0 = no limit)")
	genDuration := fs.Duration("gen-duration", 0, "generator stops after this long (0 = no limit)")
	genConvs := fs.Int("gen-conversations", 6, "generated conversations, split direct / hidden number / group")
	genMembers := fs.Int("gen-group-members", 3, "members per generated group besides the bot")
	genSeed := fs.Uint64("gen-seed", 1, "generator seed (same seed, same traffic)")
	cpuProfile := fs.String("cpu-profile", "", "write a CPU profile of the whole run to this file (for benchmarks)")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: signal-emulator [flags]\n\nA local signal-cli-rest-api stand-in with fault injection; admin API under /_emulator/.\n\nFlags:\n%s", fs.FlagUsages())
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return 0
		}
		return 2
	}

	var lvl zapcore.Level
	if err := lvl.Set(*logLevel); err != nil {
		fmt.Fprintf(stderr, "signal-emulator: invalid --log-level %q: use debug, info, warn or error\n", *logLevel)
		return 2
	}
	log := zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.Lock(zapcore.AddSync(stderr)), lvl))
	defer func() { _ = log.Sync() }()

	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			fmt.Fprintf(stderr, "signal-emulator: --cpu-profile: %v\n", err)
			return 2
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			_ = f.Close()
			fmt.Fprintf(stderr, "signal-emulator: --cpu-profile: %v\n", err)
			return 2
		}
		defer func() { pprof.StopCPUProfile(); _ = f.Close() }()
	}

	e := emulator.New(emulator.Config{
		Accounts:          *accounts,
		Profile:           *profile,
		Mode:              *mode,
		Version:           *version,
		PingInterval:      *ping,
		Logger:            log,
		WebhookURL:        *webhook,
		WebhookBlocksREST: *webhookBlocks,
		Seed:              *seed,
	})
	if err := e.Faults().SetDelivery(emulator.DeliveryMode(*delivery)); err != nil {
		fmt.Fprintf(stderr, "signal-emulator: %v\n", err)
		return 2
	}
	if err := e.Listen(*listen); err != nil {
		log.Error("cannot start: check --listen and the other flags", zap.Error(err))
		return 1
	}
	defer func() { _ = e.Close() }()
	log.Info("signal-emulator ready", zap.String("url", e.URL()), zap.String("admin", e.URL()+"/_emulator/"),
		zap.Int("accounts", len(*accounts)), zap.String("delivery", strings.ToLower(*delivery)))

	if *gen {
		if *genCount == 0 && *genDuration == 0 {
			log.Error("the generator needs --gen-count or --gen-duration so it stops by itself")
			return 2
		}
		if _, err := e.StartGenerator(emulator.GeneratorConfig{
			Conversations: *genConvs,
			GroupMembers:  *genMembers,
			Rate:          *genRate,
			Burst:         *genBurst,
			Count:         *genCount,
			Duration:      *genDuration,
			Seed:          *genSeed,
		}); err != nil {
			log.Error("cannot start the generator", zap.Error(err))
			return 2
		}
	}

	<-ctx.Done()
	log.Info("signal-emulator shutting down")
	return 0
}
