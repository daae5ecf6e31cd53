// Package emulator is a local stand-in for signal-cli-rest-api (json-rpc mode by default,
// poll mode on request) for tests, the demo and benchmarks. It reproduces the wire
// behaviour described in /work/shared/reference/signal-cli-rest-api.md and passes every
// item of its §8 conformance checklist.
//
// # Use in tests
//
//	e := emulator.New(emulator.Config{PingInterval: 50 * time.Millisecond})
//	if err := e.Start(); err != nil { … } // free loopback port; e.URL() is http://127.0.0.1:port
//	defer e.Close()
//	… connect a websocket to e.WebsocketURL(account) …
//	e.WaitSockets(ctx, account, 1)
//	e.Inject(account, frame)           // or e.InjectEvent(emulator.EventSpec{Text: "hi"})
//	calls := e.Calls(emulator.CallFilter{Route: "/v2/send"})
//
// Frames are built with the events subpackage, which reproduces signal-cli's JSON byte for
// byte (§3.8).
//
// # Receive semantics (json-rpc mode, §2.2–2.3)
//
//   - GET /v1/receive/{number} upgrades to a websocket for any Origin; query parameters are
//     ignored. Without upgrade headers it answers 400 with gorilla's "Bad Request\n" line
//     followed by the JSON error, exactly like the real server.
//   - Each injected frame is offered to every open socket whose path number (after
//     decoding %2B) equals the account: N sockets, N copies. Sockets of other numbers get
//     nothing. With no socket open the event is discarded and counted; nothing is replayed
//     on connect.
//   - The server pings every Config.PingInterval (54s by default), answers client pings,
//     closes a socket whose client frame exceeds 512 bytes, and never closes idle sockets.
//   - Delivery modes (Faults.SetDelivery): DeliveryReliable (default; each socket gets
//     every frame in order through its own queue), DeliveryBusyDrop (the real behaviour: a
//     frame offered while the socket's previous frame is still being written is dropped;
//     modelled with a busy flag, which is what the real non-blocking send on an
//     unbuffered channel amounts to, minus the scheduler race right after connecting)
//     and DeliveryGlobalStall (busy-drop plus one process-wide write mutex, so one stalled
//     socket makes the others drop).
//   - Sockets are identified by connection order (1, 2, …) and by the optional request
//     header X-Signal-Client-Id, which the real server ignores; socket faults (drop with a
//     probability, every k-th frame, the next N frames, stall, slow writes) target them.
//   - InjectError sends {"error":"…"} to every socket.
//   - Optional webhook (Config.WebhookURL): after the fan-out every event is POSTed
//     synchronously as {"jsonrpc":"2.0","method":"receive","params":<frame>}\n; non-2xx is
//     dropped; with Config.WebhookBlocksREST, daemon-backed REST calls wait meanwhile.
//
// In normal mode (Config.Mode "normal") events queue per registered account and GET
// /v1/receive/{number} returns them once as a JSON array with Content-Type
// "text/plain; charset=utf-8", after the §2.1 parameter checks. An empty poll waits up to
// "timeout" × Config.PollTimeoutUnit for the first event.
//
// # REST API (§4)
//
// /v2/send and /v1/send, reactions (POST, DELETE), receipts, typing (PUT, DELETE), remote
// delete, groups (list, get, create, update, delete, members, admins, block, join, quit),
// attachments (list, get, delete), /v1/health, /v1/about, /v1/accounts and the rate-limit
// challenge, with the real validation order and texts. Unknown routes and wrong methods
// answer gin's "404 page not found" (text/plain); a trailing slash redirects (301 GET,
// 307 otherwise); bind errors answer 400 {"error":"Couldn't process request - invalid
// request"} without a JSON Content-Type. Sends answer 201 with a unique, strictly
// increasing timestamp: {"timestamp":"…"} in profile "0.100", [{"timestamp":"…"}] in
// profile "head".
//
// Where signal-cli itself would fail, the emulator chooses these texts: an unknown number
// gives "Specified account does not exist" (json-rpc) or "User <number> is not
// registered." (normal mode); a group unknown to the account gives "Group not found:
// <internal id>" (the base64 id signal-cli knows, not the REST id); an empty typing or
// remote-delete recipient gives "No recipients given". Usernames are accepted.
// Every REST call except the admin API is recorded (Calls, WaitCalls; the most recent
// Config.MaxRecordedCalls are kept). A call the emulator does not answer (hang fault,
// client gone, Close) has its connection cut instead of getting an empty response.
//
// # Faults (Emulator.Faults)
//
// RESTFault rules (per method, route template, account, recipient; with a count or a
// probability): a status answered before handling (e.g. 500/502/503), a signal-cli error
// text, the rate-limit failure (429 with configurable challenge_tokens on /v2/send in
// json-rpc mode, 400 text in normal mode), latency, and Hang ("accept but never answer":
// the send takes effect and is recorded, the answer is held until the rule is removed).
// Socket faults and delivery modes as above. DropSockets cuts sockets without a close
// frame. Crash cuts every connection and closes the port (clients get "connection
// refused") for a while, then listens again on the same address. Everything can be
// switched on and off at runtime.
//
// # Admin API
//
// The emulator serves a JSON control API under /_emulator/ on the same listener (never
// recorded as a call). Durations are Go duration strings ("250ms") or numbers of ms.
//
//	GET    /_emulator/                       list of endpoints
//	POST   /_emulator/inject                 {"account"?, "frame"?, "frames"?, "raw_frames"?} → {"delivered":[n,…]}
//	                                         without "account", the account is read from each frame like the real server
//	POST   /_emulator/stage                  same body as inject → {"staged":n,"total":n}: frames are held, not injected
//	GET    /_emulator/stage                  {"total":n}
//	DELETE /_emulator/stage                  {"discarded":n}: empty the stage
//	POST   /_emulator/stage/release          {"wait"?:true} → {"released","accepted","unreached","written","took_ms"}
//	                                         injects every staged frame in staging order with inject's semantics; with
//	                                         "wait", answers once the sockets wrote them (503 if the client gave up first)
//	POST   /_emulator/events                 {"events":[EventSpec,…]} → {"results":[{"timestamp","sockets"}]}
//	POST   /_emulator/error                  {"message"} → {"delivered":n}
//	GET    /_emulator/calls                  ?since_id=&since=<RFC3339>&route=&path=<prefix>&method=&account=&status=
//	DELETE /_emulator/calls
//	GET    /_emulator/stats                  Stats
//	GET    /_emulator/sockets                open sockets
//	GET    /_emulator/faults                 {"delivery","rest":[…],"sockets":[…]}
//	DELETE /_emulator/faults                 clear all faults, reliable delivery
//	PUT    /_emulator/faults/delivery        {"mode":"reliable|busy-drop|global-stall"}
//	POST   /_emulator/faults/rest            {"method","route","account","recipient","count","probability",
//	                                          "latency","status","body","content_type","error","rate_limit",
//	                                          "challenge_tokens","hang"} → {"id"}
//	DELETE /_emulator/faults/rest[/{id}]
//	POST   /_emulator/faults/sockets         {"client_id","index","account","drop_probability","drop_every",
//	                                          "drop_next","stall","write_delay"} → {"id"}
//	DELETE /_emulator/faults/sockets[/{id}]
//	POST   /_emulator/faults/drop-sockets    {"client_id"?,"index"?,"account"?} → {"closed":n}
//	POST   /_emulator/faults/crash           {"down":"2s","hold_events"?,"replay_delay"?} → 202, then the crash
//	POST   /_emulator/generator/start        {"account","direct","hidden","groups","conversations","group_members",
//	                                          "rate","burst","count","duration","seed","weights","base_time_ms","keep_raw"}
//	POST   /_emulator/generator/stop
//	GET    /_emulator/generator              ?emitted=true&since=<index>
//	POST   /_emulator/groups                 {"account"?, "internal_id"?, "name", "members":[{"number","uuid"}], …}
//	GET    /_emulator/groups                 ?account=
//	POST   /_emulator/attachments            {"id"?, "data":"<base64>"} → {"id"}
//	POST   /_emulator/accounts               {"number"}
//
// # Staged bursts (benchmarks)
//
// An injector posting frames over HTTP cannot emit a burst faster than it builds and posts
// them. For a burst, upload the frames first with Stage (POST /_emulator/stage, in as many
// calls as needed), then inject them all with one ReleaseStaged (POST
// /_emulator/stage/release): each frame still goes through Inject's path (account filter,
// every open socket, delivery mode, socket faults, discarding while no socket is open,
// crash holding, webhook), consecutive frames of an account in runs under one
// acquisition of the reader. In reliable delivery without socket faults each writer
// sends its queued frames in coalesced writes of up to 1024 frames (same bytes on the
// wire as one text frame per WriteMessage), so a burst reaches a socket as fast as the
// peer reads it. The frames are sent verbatim: timestamps inside them are whatever the
// uploader wrote, so stamp them for the planned release, not the upload.
//
// # Traffic generator
//
// StartGenerator emits synthetic traffic over direct chats with a visible number, direct
// chats with a hidden number (sourceNumber null) and groups, at a token-bucket-paced rate,
// bounded by a count and/or a duration, reproducible from a seed. It mixes texts, commands
// (!ping, !echo, !count), reactions, receipts, typing, edits, remote deletes and
// attachments (stored in the emulator). Text bodies start with "msg <seq>", where seq is
// the event's 1-based sequence number in its conversation, so consumers can check order;
// every emitted event is recorded (Generator.Emitted) with its account, conversation key,
// sender, device, timestamp, kind and how many sockets accepted it. Envelope timestamps are
// unique and increasing; receipts and reactions reference the bot's recorded sends when
// there are any.
package emulator
