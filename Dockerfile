# syntax=docker/dockerfile:1.7
# signal-client image: static binaries (ingester, worker, dlqctl, and the compose
# healthcheck probe) on distroless/static, running as the nonroot user 65532.
#   make image                      # tags $(IMAGE):$(VERSION)
#   docker run --rm IMAGE dlqctl stats
# No ENTRYPOINT: the command names the binary (ingester, worker, dlqctl), found on PATH.

ARG GO_VERSION=1.26.8

FROM --platform=$BUILDPLATFORM golang:${GO_VERSION}-bookworm AS build
ARG TARGETOS
ARG TARGETARCH
ARG VERSION=dev
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=${TARGETOS} GOARCH=${TARGETARCH} \
    go build -trimpath \
      -ldflags "-s -w -X github.com/signal-client/signal-client/internal/version.Version=${VERSION}" \
      -o /out/ ./cmd/ingester ./cmd/worker ./cmd/dlqctl ./deploy/healthcheck

# distroless/static: CA certificates, tzdata and /etc/passwd with nonroot, nothing else.
FROM gcr.io/distroless/static-debian12:nonroot
ARG VERSION=dev
ARG REVISION=unknown
ARG CREATED=unknown
LABEL org.opencontainers.image.title="signal-client" \
      org.opencontainers.image.description="Signal bot runtime on Redis Streams: ingester, worker and dlqctl" \
      org.opencontainers.image.source="https://github.com/signal-client/signal-client" \
      org.opencontainers.image.url="https://github.com/signal-client/signal-client" \
      org.opencontainers.image.documentation="https://github.com/signal-client/signal-client/blob/main/docs/deploy.md" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}"
COPY --from=build /out/ /usr/local/bin/
USER 65532:65532
# METRICS_PORT and HEALTH_PORT defaults.
EXPOSE 8000 8082
CMD ["worker"]
