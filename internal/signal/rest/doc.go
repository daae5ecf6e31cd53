// Package rest is the HTTP client for the signal-cli-rest-api endpoints a bot uses: sending,
// reactions, receipts, typing, remote delete, groups, attachments and the general endpoints
// (about, health, accounts, rate-limit challenge).
//
// The client makes exactly one attempt per call. Retries, rate limiting and circuit breaking
// belong to a sender layer above it; this package gives that layer what it needs to decide:
//
//   - typed errors: *APIError for any non-2xx answer, *RateLimitError for rate limits,
//     ErrNotFound for unknown groups and attachments;
//   - ErrUnknownOutcome when a non-idempotent call (send, remote delete, reactions, receipts,
//     rate-limit challenge) failed after the request may have reached the server. Such a call
//     may have taken effect (signal-cli-rest-api issue #453: the send succeeded although the POST
//     timed out), so it must never be retried blindly;
//   - IsIdempotent, which says which endpoints are safe to repeat.
//
// Two protections live here because every caller needs them: a per-call deadline (the server
// has no timeout of its own on JSON-RPC calls and can hang forever) and a cap on the calls in
// flight (json-rpc mode crashes under concurrent requests, issues #555/#885).
//
// Nothing in this package logs. Errors name endpoint templates such as
// "/v1/reactions/{number}", never the phone number or ids; the message an upstream error carries
// (APIError.Message) is passed through verbatim and can contain numbers or group ids, so redact
// it before logging. Metrics come from Options.Observer and Client.Stats.
package rest
