package config

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// spec describes one setting: its environment variable, default, check and
// the Config field it fills. The table below is the single source of the
// flags, the config file keys, --print-config and docs/configuration.md.
type spec struct {
	name     string // environment variable; flag and file key derive from it
	def      string // default as text; "" for derived defaults (see derived)
	derived  string // how an empty default is filled, for --help and the docs
	help     string
	expected string
	secret   bool // never shown; also read from NAME_FILE
	fileForm bool // NAME_FILE accepted (secrets and REDIS_URL, which may hold a password)
	isBool   bool
	typ      string   // flag type shown by --help: int, duration, bool, float; "" = string
	aliases  []string // Python names with the same meaning
	show     func(string) string
	set      func(c *Config, raw string) bool
	get      func(c *Config) string
}

const durExample = "such as 500ms, 30s or 5m (a bare number means seconds)"

func intSpec(name string, def, lo, hi int, field func(*Config) *int, help string) spec {
	exp := fmt.Sprintf("an integer from %d to %d", lo, hi)
	if hi == math.MaxInt {
		exp = fmt.Sprintf("an integer of %d or more", lo)
	}
	return spec{
		name: name, def: strconv.Itoa(def), help: help, expected: exp, typ: "int",
		set: func(c *Config, raw string) bool {
			n, ok := parseInt(raw)
			if !ok || n < lo || n > hi {
				return false
			}
			*field(c) = n
			return true
		},
		get: func(c *Config) string { return strconv.Itoa(*field(c)) },
	}
}

func durSpec(name, def string, allowZero bool, field func(*Config) *time.Duration, help string) spec {
	exp := "a positive duration " + durExample
	if allowZero {
		exp = "a duration of 0 or more " + durExample
	}
	return spec{
		name: name, def: def, help: help, expected: exp, typ: "duration",
		set: func(c *Config, raw string) bool {
			d, ok := parseDuration(raw)
			if !ok || d < 0 || (d == 0 && !allowZero) {
				return false
			}
			*field(c) = d
			return true
		},
		get: func(c *Config) string { return fmtDuration(*field(c)) },
	}
}

func boolSpec(name string, def bool, field func(*Config) *bool, help string) spec {
	return spec{
		name: name, def: strconv.FormatBool(def), help: help, expected: "true or false", isBool: true, typ: "bool",
		set: func(c *Config, raw string) bool {
			b, ok := parseBool(raw)
			if ok {
				*field(c) = b
			}
			return ok
		},
		get: func(c *Config) string { return strconv.FormatBool(*field(c)) },
	}
}

func strSpec(name, def string, field func(*Config) *string, valid func(string) bool, expected, help string) spec {
	return spec{
		name: name, def: def, help: help, expected: expected,
		set: func(c *Config, raw string) bool {
			raw = strings.TrimSpace(raw)
			if valid != nil && !valid(raw) {
				return false
			}
			*field(c) = raw
			return true
		},
		get: func(c *Config) string { return *field(c) },
	}
}

func enumSpec(name, def string, values []string, field func(*Config) *string, help string) spec {
	return strSpec(name, def, field, func(s string) bool {
		for _, v := range values {
			if s == v {
				return true
			}
		}
		return false
	}, "one of "+strings.Join(values, ", "), help)
}

func secretSpec(name string, field func(*Config) *string, valid func(string) bool, expected, help string) spec {
	return spec{
		name: name, help: help, expected: expected, secret: true, fileForm: true,
		// Secrets are taken verbatim: a leading or trailing space may be part
		// of a password.
		set: func(c *Config, raw string) bool {
			if raw != "" && valid != nil && !valid(raw) {
				return false
			}
			*field(c) = raw
			return true
		},
		get:  func(c *Config) string { return *field(c) },
		show: func(s string) string { return maskSecret(s) },
	}
}

// fmtDuration prints 1h and 5m rather than 1h0m0s and 5m0s.
func fmtDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

func maskSecret(s string) string {
	if s == "" {
		return ""
	}
	return "*****"
}

func nonEmpty(s string) bool { return s != "" }

// settings is every setting in the order of docs/configuration.md and
// --print-config.
var settings = []spec{
	// signal-cli-rest-api
	withShow(strSpec("SIGNAL_PHONE_NUMBER", "", func(c *Config) *string { return &c.Signal.PhoneNumber },
		func(s string) bool { return s == "" || e164Re.MatchString(s) },
		"an E.164 phone number such as +15551234567",
		"the bot's account (E.164), registered in signal-cli-rest-api"), maskPhone),
	signalURLSpec("SIGNAL_SERVICE_URL", func(c *Config) *string { return &c.Signal.ServiceURL },
		"base URL of signal-cli-rest-api for the receive websocket (http, https, ws, wss or no scheme)"),
	signalURLSpec("SIGNAL_API_URL", func(c *Config) *string { return &c.Signal.APIURL },
		"base URL of signal-cli-rest-api for REST calls (defaults to SIGNAL_SERVICE_URL)"),
	secretSpec("SIGNAL_API_TOKEN", func(c *Config) *string { return &c.Signal.APIToken }, nil, "",
		"token sent as Authorization on REST calls and the websocket (for an authenticating proxy)"),
	strSpec("API_AUTH_SCHEME", "Bearer", func(c *Config) *string { return &c.Signal.AuthScheme },
		authTokenRe.MatchString, "an HTTP auth scheme such as Bearer or Basic, or empty for a bare token",
		"scheme written before SIGNAL_API_TOKEN; empty sends the bare token"),
	durSpec("API_TIMEOUT", "30s", false, func(c *Config) *time.Duration { return &c.Signal.Timeout },
		"timeout of one REST call"),
	intSpec("API_MAX_CONCURRENCY", 4, 1, 1024, func(c *Config) *int { return &c.Signal.MaxConcurrency },
		"REST calls in flight at once across the whole cluster"),
	strSpec("SIGNAL_WS_PATH", "/v1/receive/{phone_number}", func(c *Config) *string { return &c.Signal.WSPath },
		validWSPath, "a path starting with / such as /v1/receive/{phone_number}",
		"websocket path; {phone_number} is replaced by SIGNAL_PHONE_NUMBER"),

	// storage
	storageSpec(),
	strSpec("MEMORY_STORE_ADDR", "127.0.0.1:6390", func(c *Config) *string { return &c.MemoryStoreAddr }, validLoopbackAddr,
		"a loopback host:port such as 127.0.0.1:6390 (port 0 picks a free one)",
		"where the embedded store of STORAGE_TYPE=memory listens (password: REDIS_PASSWORD, random when unset), so dlqctl can reach it"),
	strSpec("SQLITE_DATABASE", "", func(c *Config) *string { return &c.SQLiteDatabase }, nil, "",
		"accepted for compatibility only: sqlite storage does not exist here"),

	// Redis
	redisURLSpec(),
	strSpec("REDIS_HOST", "localhost", func(c *Config) *string { return &c.Redis.Host }, validHost,
		"a host name or IP address such as redis or 10.0.0.5", "Redis host, used when REDIS_URL is not set"),
	intSpec("REDIS_PORT", 6379, 1, 65535, func(c *Config) *int { return &c.Redis.Port },
		"Redis port, used when REDIS_URL is not set"),
	intSpec("REDIS_DB", 0, 0, math.MaxInt, func(c *Config) *int { return &c.Redis.DB },
		"Redis database number; overrides the one in REDIS_URL when set"),
	strSpec("REDIS_USERNAME", "", func(c *Config) *string { return &c.Redis.Username }, nil, "",
		"Redis ACL user name; overrides the one in REDIS_URL when set"),
	secretSpec("REDIS_PASSWORD", func(c *Config) *string { return &c.Redis.Password }, nil, "",
		"Redis password; overrides the one in REDIS_URL when set"),
	boolSpec("REDIS_TLS_ENABLED", false, func(c *Config) *bool { return &c.Redis.TLSEnabled },
		"connect to REDIS_HOST with TLS (a rediss:// REDIS_URL turns TLS on by itself)"),
	strSpec("REDIS_TLS_CA_FILE", "", func(c *Config) *string { return &c.Redis.TLSCAFile }, nil, "",
		"PEM file of CA certificates that sign the Redis server certificate"),
	strSpec("REDIS_TLS_CERT_FILE", "", func(c *Config) *string { return &c.Redis.TLSCertFile }, nil, "",
		"PEM client certificate for mutual TLS (with REDIS_TLS_KEY_FILE)"),
	strSpec("REDIS_TLS_KEY_FILE", "", func(c *Config) *string { return &c.Redis.TLSKeyFile }, nil, "",
		"PEM private key of REDIS_TLS_CERT_FILE"),
	boolSpec("REDIS_TLS_INSECURE_SKIP_VERIFY", false, func(c *Config) *bool { return &c.Redis.TLSInsecureSkipVerify },
		"do not verify the Redis server certificate (tests only)"),
	strSpec("REDIS_TLS_SERVER_NAME", "", func(c *Config) *string { return &c.Redis.TLSServerName }, nil, "",
		"server name expected in the Redis certificate (default: the host)"),
	strSpec("REDIS_KEY_PREFIX", "sc", func(c *Config) *string { return &c.Redis.KeyPrefix }, keyPrefixRe.MatchString,
		"1 to 64 letters, digits, '_', '.' or '-' (no braces)",
		"prefix of every Redis key; separates deployments sharing one Redis"),

	// streams and workers
	intSpec("WORKER_SHARD_COUNT", 64, 1, 4096, func(c *Config) *int { return &c.WorkerShardCount },
		"shards (streams) of the cluster; fixed in Redis by the first process"),
	durSpec("SHARD_LEASE_TTL", "15s", false, func(c *Config) *time.Duration { return &c.ShardLeaseTTL },
		"how long a worker's shard lease lives without renewal"),
	intSpec("QUEUE_SIZE", 1000, 1, 1000000, func(c *Config) *int { return &c.QueueSize },
		"per-process bound of messages read ahead or handed off but not yet done"),
	intSpec("WORKER_POOL_SIZE", 16, 1, 4096, func(c *Config) *int { return &c.WorkerPoolSize },
		"handler goroutines per worker process"),
	durSpec("HANDLER_TIMEOUT", "30s", false, func(c *Config) *time.Duration { return &c.HandlerTimeout },
		"deadline of one handler run"),
	durSpec("CLAIM_MIN_IDLE", "60s", false, func(c *Config) *time.Duration { return &c.ClaimMinIdle },
		"idle time after which a worker adopts pending entries left under another consumer name"),
	durSpec("RETRY_BACKOFF_BASE", "1s", false, func(c *Config) *time.Duration { return &c.RetryBackoffBase },
		"delay before the first retry of a failed handler; doubles each attempt"),
	durSpec("RETRY_BACKOFF_MAX", "5m", false, func(c *Config) *time.Duration { return &c.RetryBackoffMax },
		"upper bound of the retry delay"),
	intSpec("DLQ_MAX_RETRIES", 5, 0, 1000, func(c *Config) *int { return &c.DLQMaxRetries },
		"retries before an entry is parked in the DLQ (1 + this many attempts)"),
	intSpec("DLQ_MAX_LEN", 10000, 1, 100000000, func(c *Config) *int { return &c.DLQMaxLen },
		"entries kept in the DLQ stream; the oldest are trimmed beyond"),
	intSpec("STREAM_MAX_LEN", 100000, 1, 1000000000, func(c *Config) *int { return &c.StreamMaxLen },
		"entries per shard stream at which the ingester applies backpressure"),
	durSpec("STREAM_RETENTION", "1h", false, func(c *Config) *time.Duration { return &c.StreamRetention },
		"how long handled entries stay in the streams"),
	durSpec("DEDUP_WINDOW", "1h", false, func(c *Config) *time.Duration { return &c.DedupWindow },
		"how long a received message is remembered to drop duplicates"),
	durSpec("REPAIR_DELAY", "1s", true, func(c *Config) *time.Duration { return &c.RepairDelay },
		"how long a standby ingester holds a frame before repairing it into the stream"),
	withAliases(durSpec("LOCK_TTL_SECONDS", "10", false, func(c *Config) *time.Duration { return &c.LockTTL },
		"TTL of the ingester leader lock and default TTL of ctx.Lock"), "DISTRIBUTED_LOCK_TIMEOUT"),
	intSpec("ACK_BATCH_MAX", 64, 1, 10000, func(c *Config) *int { return &c.AckBatchMax },
		"handled entries committed by one script call at most"),
	durSpec("ACK_BATCH_WINDOW", "2ms", false, func(c *Config) *time.Duration { return &c.AckBatchWindow },
		"longest wait before an incomplete commit batch is sent"),
	durSpec("DLQ_RETENTION", "336h", false, func(c *Config) *time.Duration { return &c.DLQRetention },
		"how long parked entries stay in the DLQ"),
	intSpec("QUARANTINE_MAX_LEN", 10000, 1, 100000000, func(c *Config) *int { return &c.QuarantineMaxLen },
		"entries kept in the quarantine stream of bad frames"),
	durSpec("QUARANTINE_RETENTION", "168h", false, func(c *Config) *time.Duration { return &c.QuarantineRetention },
		"how long bad frames stay in quarantine"),
	intSpec("MAX_FRAME_BYTES", 8<<20, 1024, 1<<30, func(c *Config) *int { return &c.MaxFrameBytes },
		"largest websocket frame the ingester reads; larger frames are lost and counted"),
	durSpec("TRIM_INTERVAL", "30s", false, func(c *Config) *time.Duration { return &c.TrimInterval },
		"how often the leader ingester trims handled entries"),
	durSpec("HEARTBEAT_INTERVAL", "5s", false, func(c *Config) *time.Duration { return &c.HeartbeatInterval },
		"how often the leader ingester appends a heartbeat entry to every shard"),
	durSpec("SENT_RECORD_TTL", "168h", false, func(c *Config) *time.Duration { return &c.SentRecordTTL },
		"how long the records of confirmed REST calls are kept to skip repeats"),
	enumSpec("UNKNOWN_OUTCOME_POLICY", "skip", []string{"skip", "resend"}, func(c *Config) *string { return &c.UnknownOutcomePolicy },
		"a retried handler skips (at most once) or resends (at least once) a call whose outcome is unknown"),
	durSpec("SHUTDOWN_TIMEOUT", "25s", false, func(c *Config) *time.Duration { return &c.ShutdownTimeout },
		"how long SIGTERM waits for in-flight work before exiting"),
	boolSpec("DURABLE_QUEUE_ENABLED", false, func(c *Config) *bool { return &c.DurableQueueEnabled },
		"ingester writes frames to a disk spool while Redis is unreachable"),
	strSpec("SPOOL_DIR", "./spool", func(c *Config) *string { return &c.SpoolDir }, nonEmpty,
		"a directory path", "directory of the ingester's outage spool"),

	// REST protection
	intSpec("RATE_LIMIT", 50, 0, 1000000, func(c *Config) *int { return &c.RateLimit },
		"REST calls per RATE_LIMIT_PERIOD across the cluster; 0 turns the limit off"),
	durSpec("RATE_LIMIT_PERIOD", "1m", false, func(c *Config) *time.Duration { return &c.RateLimitPeriod },
		"period RATE_LIMIT counts over"),
	burstSpec(),
	durSpec("RATE_LIMIT_429_PAUSE", "60s", false, func(c *Config) *time.Duration { return &c.RateLimit429Pause },
		"how long the account pauses after signal-cli-rest-api answers 429"),
	intSpec("CIRCUIT_BREAKER_FAILURE_THRESHOLD", 5, 1, 1000, func(c *Config) *int { return &c.CircuitBreaker.FailureThreshold },
		"consecutive failures of an endpoint that open its breaker"),
	durSpec("CIRCUIT_BREAKER_RESET_TIMEOUT", "30s", false, func(c *Config) *time.Duration { return &c.CircuitBreaker.ResetTimeout },
		"how long an open breaker waits before a trial call"),
	floatSpec("CIRCUIT_BREAKER_FAILURE_RATE_THRESHOLD", "0.5", func(c *Config) *float64 { return &c.CircuitBreaker.FailureRateThreshold },
		"failure ratio that opens the breaker"),
	intSpec("CIRCUIT_BREAKER_MIN_REQUESTS_FOR_RATE_CALC", 10, 1, 100000, func(c *Config) *int { return &c.CircuitBreaker.MinRequestsForRateCalc },
		"calls seen before the failure ratio applies"),

	// logging
	enumSpec("LOG_LEVEL", "info", []string{"debug", "info", "warn", "error"}, func(c *Config) *string { return &c.Log.Level },
		"lowest level logged"),
	enumSpec("LOG_FORMAT", "json", []string{"json", "console"}, func(c *Config) *string { return &c.Log.Format },
		"log encoding"),
	boolSpec("LOG_REDACTION_ENABLED", true, func(c *Config) *bool { return &c.Log.RedactionEnabled },
		"remove message content, phone numbers, uuids and group ids from logs"),
	secretSpec("LOG_REDACTION_KEY", func(c *Config) *string { return &c.Log.RedactionKey },
		func(s string) bool { return len(s) >= 16 }, "at least 16 bytes, e.g. the output of openssl rand -hex 32",
		"HMAC key of the id hashes in logs; random per process when unset"),

	// servers and identity
	strSpec("HEALTH_ADDR", "0.0.0.0", func(c *Config) *string { return &c.HealthAddr }, validHost,
		"a host name or IP address to listen on, such as 0.0.0.0 or 127.0.0.1", "listen address of /live, /ready and /dlq"),
	intSpec("HEALTH_PORT", 8082, 1, 65535, func(c *Config) *int { return &c.HealthPort }, "port of /live, /ready and /dlq"),
	strSpec("METRICS_ADDR", "0.0.0.0", func(c *Config) *string { return &c.MetricsAddr }, validHost,
		"a host name or IP address to listen on, such as 0.0.0.0 or 127.0.0.1", "listen address of /metrics"),
	intSpec("METRICS_PORT", 8000, 1, 65535, func(c *Config) *int { return &c.MetricsPort }, "port of /metrics"),
	boolSpec("DEBUG_PPROF", false, func(c *Config) *bool { return &c.DebugPprof },
		"also serve the Go profiler (net/http/pprof) under /debug/pprof/ on the metrics server"),
	withDerived(strSpec("INSTANCE_ID", "", func(c *Config) *string { return &c.InstanceID },
		func(s string) bool { return s == "" || instanceRe.MatchString(s) },
		"1 to 128 letters, digits, '_', '.', ':' or '-'",
		"name of this process in Redis (consumer name, lock owner)"), "hostname-pid"),
}

func withShow(s spec, show func(string) string) spec { s.show = show; return s }

func withAliases(s spec, aliases ...string) spec { s.aliases = aliases; return s }

func withDerived(s spec, how string) spec { s.derived = how; return s }

func signalURLSpec(name string, field func(*Config) *string, help string) spec {
	return spec{
		name: name, help: help, derived: "",
		expected: "an http, https, ws or wss URL such as http://signal-cli:8080",
		set: func(c *Config, raw string) bool {
			u, ok := normalizeSignalURL(raw)
			if ok {
				*field(c) = u
			}
			return ok
		},
		get:  func(c *Config) string { return *field(c) },
		show: maskURL,
	}
}

func storageSpec() spec {
	s := enumSpec("STORAGE_TYPE", "redis", []string{"redis", "memory"}, func(c *Config) *string { return &c.StorageType },
		"redis, or memory for the all-in-one signal-client binary")
	s.expected = "redis or memory (sqlite is not implemented: use redis, or memory with the all-in-one signal-client binary)"
	inner := s.set
	s.set = func(c *Config, raw string) bool { return inner(c, strings.ToLower(raw)) }
	return s
}

func redisURLSpec() spec {
	return spec{
		name: "REDIS_URL", fileForm: true,
		help:     "Redis URL (redis://, rediss:// for TLS, or unix://); wins over REDIS_HOST and REDIS_PORT",
		expected: "a redis://, rediss:// or unix:// URL such as redis://redis:6379/0",
		set: func(c *Config, raw string) bool {
			raw = strings.TrimSpace(raw)
			if raw != "" && !validRedisURL(raw) {
				return false
			}
			c.Redis.URL = raw
			return true
		},
		get:  func(c *Config) string { return c.Redis.URL },
		show: maskURL,
	}
}

func burstSpec() spec {
	return spec{
		name: "RATE_LIMIT_BURST", derived: "RATE_LIMIT", typ: "int",
		help:     "calls allowed at once before the rate applies",
		expected: "an integer from 1 to 1000000",
		set: func(c *Config, raw string) bool {
			if strings.TrimSpace(raw) == "" {
				c.RateLimitBurst = 0
				return true
			}
			n, ok := parseInt(raw)
			if !ok || n < 1 || n > 1000000 {
				return false
			}
			c.RateLimitBurst = n
			return true
		},
		get: func(c *Config) string { return strconv.Itoa(c.RateLimitBurst) },
	}
}

func floatSpec(name, def string, field func(*Config) *float64, help string) spec {
	return spec{
		name: name, def: def, help: help, expected: "a number greater than 0 and at most 1", typ: "float",
		set: func(c *Config, raw string) bool {
			f, ok := parseFloat(raw)
			if !ok || f <= 0 || f > 1 {
				return false
			}
			*field(c) = f
			return true
		},
		get: func(c *Config) string { return strconv.FormatFloat(*field(c), 'g', -1, 64) },
	}
}

func specByName(name string) *spec {
	for i := range settings {
		if settings[i].name == name {
			return &settings[i]
		}
	}
	return nil
}
