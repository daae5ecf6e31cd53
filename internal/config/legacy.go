package config

// Settings of the Python original that have no setting of their own here
// (seed §6). Each one is used (as an alias, see spec.aliases), refused with a
// hint, or accepted with a warning that says why it has no effect: a migrated
// environment file never loses a setting silently.

// legacy decides about one Python-only variable once the rest of the
// configuration is known. It returns a warning to log, or the "expected" text
// of a refusal.
type legacy struct {
	name   string
	decide func(value string, c *Config) (warning, refusal string)
}

func refuse(hint string) func(string, *Config) (string, string) {
	return func(string, *Config) (string, string) { return "", hint }
}

func warn(msg string) func(string, *Config) (string, string) {
	return func(string, *Config) (string, string) { return msg, "" }
}

const keysHint = "unset (Redis keys are named under REDIS_KEY_PREFIX; set REDIS_KEY_PREFIX to separate deployments)"

var legacies = []legacy{
	{"API_RETRIES", refuse("unset (REST calls are not retried by a counter here; a failed handler is retried from its stream: use DLQ_MAX_RETRIES, RETRY_BACKOFF_BASE and RETRY_BACKOFF_MAX)")},
	{"API_BACKOFF_FACTOR", refuse("unset (retry delays are set by RETRY_BACKOFF_BASE and RETRY_BACKOFF_MAX)")},
	{"API_DEFAULT_HEADERS", refuse("unset (only Authorization is sent: use SIGNAL_API_TOKEN and API_AUTH_SCHEME; add other headers in a reverse proxy)")},
	{"API_ENDPOINT_TIMEOUTS", refuse("unset (one timeout applies to every REST call: use API_TIMEOUT)")},
	{"API_IDEMPOTENCY_HEADER", warn("API_IDEMPOTENCY_HEADER has no effect: signal-cli-rest-api ignores idempotency headers, so none is sent; duplicates are dropped by DEDUP_WINDOW instead")},
	{"QUEUE_PUT_TIMEOUT", refuse("unset (the ingester never blocks its websocket reader; frames wait in QUEUE_SIZE and, with DURABLE_QUEUE_ENABLED, in the spool)")},
	{"QUEUE_DROP_OLDEST_ON_TIMEOUT", func(v string, _ *Config) (string, string) {
		b, ok := parseBool(v)
		switch {
		case !ok:
			return "", "true or false"
		case b:
			return "", "false or unset (there is no drop-oldest policy here; set DURABLE_QUEUE_ENABLED=true so that nothing is dropped while Redis is down)"
		}
		return "QUEUE_DROP_OLDEST_ON_TIMEOUT=false has no effect: there is no drop-oldest policy here", ""
	}},
	{"DURABLE_QUEUE_MAX_LENGTH", refuse("unset (streams are bounded by STREAM_MAX_LEN and STREAM_RETENTION; the outage spool under SPOOL_DIR is not a ring)")},
	{"INGEST_CHECKPOINT_WINDOW", refuse("unset (duplicates are remembered for a time, not a count: use DEDUP_WINDOW)")},
	{"INGEST_QUEUE_NAME", refuse(keysHint)},
	{"INGEST_CHECKPOINT_KEY", refuse(keysHint)},
	{"DLQ_NAME", refuse(keysHint)},
	{"INGEST_PAUSE_SECONDS", refuse("unset (the ingester never pauses reading the websocket, since a paused reader loses messages; REST calls are paced by RATE_LIMIT and CIRCUIT_BREAKER_*)")},
	{"DISTRIBUTED_LOCKS_ENABLED", func(v string, c *Config) (string, string) {
		b, ok := parseBool(v)
		switch {
		case !ok:
			return "", "true or false"
		case b && c.StorageType == "memory":
			return "", "false or unset with STORAGE_TYPE=memory (distributed locks need STORAGE_TYPE=redis)"
		}
		return "DISTRIBUTED_LOCKS_ENABLED has no effect: ctx.Lock uses Redis whenever STORAGE_TYPE=redis and a process-local lock with memory", ""
	}},
}
