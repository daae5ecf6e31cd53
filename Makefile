# signal-client — see README.md. Every target works on a fresh clone with Go installed;
# `make test` additionally needs redis-server on PATH (.ci/run installs it).

GO        ?= go
BIN       := $(CURDIR)/bin
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -s -w -X github.com/signal-client/signal-client/internal/version.Version=$(VERSION)
BINARIES  := ingester worker dlqctl signal-client signal-emulator signal-demo
FUZZTIME  ?= 10s
# Extra Go modules (benchmarks, deploy tests) with their own go.mod; tested by `make test`.
SUBMODULES := $(shell find . -mindepth 2 -name go.mod -not -path './bin/*' -exec dirname {} \; | sort)

.PHONY: all build test test-short lint fmt fuzz clean demo run image bench bench-full $(BINARIES)
IMAGE     ?= ghcr.io/signal-client/signal-client

all: build

build: $(BINARIES)

$(BINARIES):
	@mkdir -p $(BIN)
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/$@ ./cmd/$@

# Every test, unit and integration, race detector on; then a short fuzz run of the decoder.
test: build
	SIGNAL_CLIENT_BIN=$(BIN) $(GO) test -race -count=1 -timeout 9m ./...
	@for m in $(SUBMODULES); do echo "== module $$m"; (cd $$m && SIGNAL_CLIENT_BIN=$(BIN) $(GO) test -count=1 -timeout 9m ./...) || exit 1; done
	$(GO) test -run='^$$' -fuzz='^FuzzDecode$$' -fuzztime=$(FUZZTIME) ./internal/signal/
	$(GO) test -run='^$$' -fuzz='^FuzzDecodeMatchesStd$$' -fuzztime=$(FUZZTIME) ./internal/signal/

test-short:
	$(GO) test -short -count=1 ./...

# Longer fuzzing of the frame decoder: make fuzz FUZZTIME=5m
fuzz:
	$(GO) test -run='^$$' -fuzz='^FuzzDecode$$' -fuzztime=$(FUZZTIME) ./internal/signal/
	$(GO) test -run='^$$' -fuzz='^FuzzDecodeMatchesStd$$' -fuzztime=$(FUZZTIME) ./internal/signal/

# The whole system on its embedded store against the emulator, with a live transcript.
demo: build
	$(BIN)/signal-demo

# The real thing against your own signal-cli-rest-api: settings from the environment, a .env
# file, or config/signal-client.yaml (see docs/configuration.md).
run: build
	@set -a; if [ -f .env ]; then . ./.env; fi; set +a; \
	exec $(BIN)/signal-client $(if $(wildcard config/signal-client.yaml),--config config/signal-client.yaml)

# End-to-end throughput and latency beside raw Redis Streams and asynq (docs/performance.md);
# needs redis-server on PATH. Writes bench/results/<timestamp>.md.
bench: build
	cd bench && $(GO) run . -bin $(BIN)

# make bench plus the growth matrix of issue 7 (16/64/256 shards, 10/1 000/100 000 conversations,
# 1 vs 2 workers, latency at 1 000 msgs/s; one run per cell) and a PNG of throughput and latency
# over time; about 3 minutes on 2 cores. Writes bench/results/<timestamp>.md and
# <timestamp>-timeline.png. More flags: make bench-full BENCH_FLAGS='-pprof -runs 3'
bench-full: build
	cd bench && $(GO) run . -full -bin $(BIN) $(BENCH_FLAGS)

# Container image; needs a Docker engine with BuildKit: make image [IMAGE=...] [VERSION=...]
image:
	docker build --build-arg VERSION=$(VERSION) \
	  --build-arg REVISION=$$(git rev-parse HEAD 2>/dev/null || echo unknown) \
	  --build-arg CREATED=$$(date -u +%Y-%m-%dT%H:%M:%SZ) \
	  -t $(IMAGE):$(VERSION) .

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	@if command -v golangci-lint >/dev/null 2>&1; then golangci-lint run ./...; else echo "golangci-lint not installed: skipped"; fi

fmt:
	gofmt -w $$(git ls-files '*.go')

clean:
	rm -rf $(BIN)
