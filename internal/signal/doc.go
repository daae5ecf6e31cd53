// Package signal is the envelope model of the JSON that signal-cli-rest-api
// delivers to a bot: one websocket text frame, one element of a poll-mode
// array, or the params of a webhook notification. It decodes frames
// tolerantly, classifies them into a small set of stable kinds, derives the
// conversation a frame belongs to, tells a bot where replies, receipts,
// quotes, reactions, edits and deletes must go, gives every frame an identity
// for de-duplication, and converts between UTF-8 text and the UTF-16 offsets
// that mentions and text styles use.
//
// The package does no I/O and keeps no state; ingesters, workers and the REST
// client build on it.
//
// The rules rest on the reference notes in /work/shared/reference:
//
//   - signal-cli-rest-api.md §2.2: a websocket frame is the wrapper object
//     exactly as signal-cli wrote it; upstream JSON-RPC errors arrive as
//     {"error":"..."} frames on every socket. §2.1: poll mode returns an
//     array of wrappers. §2.4: the webhook posts the whole JSON-RPC
//     notification {"jsonrpc":"2.0","method":"receive","params":<wrapper>}\n.
//     §2.3: the same event reaches every subscriber, so frames need an
//     identity (see Identity, and §7 item 3 for the de-duplication key).
//   - §3 (all): the received shapes. Fields without @JsonInclude(NON_NULL) are
//     always present and may be null, others are omitted; key order is not
//     contractual and unknown keys must be tolerated (§3.1). callMessage ids
//     are unsigned 64-bit and may exceed int64 (§3.6, §9), so they are kept as
//     json.Number. Timestamps are int64 milliseconds (§3.2, §9). The
//     classification follows §3.7, refined in Kind.
//   - §6: group ids come in two forms, internal (in received JSON) and REST
//     ("group." + base64 of the internal id's ASCII), reply routing, quoting,
//     message identity, and UTF-16 offsets for mentions and styles.
//   - §9: decode into nullable fields, keep the raw bytes, accept error
//     frames, never DisallowUnknownFields.
//   - seed-signal-client-python.md §9 items 1-4 and §10: the Python original
//     replied to groups with the internal id, looked for editMessage inside
//     dataMessage instead of on the envelope, dropped whole messages when a
//     mention had a null number, kept mention offsets as code points and
//     keyed senders by the deprecated source field. Tests in this package
//     prove each of those is handled.
package signal
