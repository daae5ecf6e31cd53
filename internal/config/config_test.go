package config

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// base is the smallest environment an ingester accepts.
func base(extra map[string]string) map[string]string {
	m := map[string]string{
		"SIGNAL_PHONE_NUMBER": "+15551234567",
		"SIGNAL_SERVICE_URL":  "http://signal-cli:8080",
	}
	for k, v := range extra {
		m[k] = v
	}
	return m
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func mustLoad(t *testing.T, role string, args []string, env map[string]string) *Config {
	t.Helper()
	c, err := Load(role, args, EnvMap(env))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return c
}

func TestDefaults(t *testing.T) {
	c := mustLoad(t, RoleIngester, nil, base(nil))
	got := map[string]string{}
	for _, e := range c.Masked() {
		got[e.Name] = e.Value
	}
	want := map[string]string{
		"SIGNAL_PHONE_NUMBER":                        "+*********67",
		"SIGNAL_SERVICE_URL":                         "http://signal-cli:8080",
		"SIGNAL_API_URL":                             "http://signal-cli:8080",
		"SIGNAL_API_TOKEN":                           "",
		"API_AUTH_SCHEME":                            "Bearer",
		"API_TIMEOUT":                                "30s",
		"API_MAX_CONCURRENCY":                        "4",
		"SIGNAL_WS_PATH":                             "/v1/receive/{phone_number}",
		"STORAGE_TYPE":                               "redis",
		"SQLITE_DATABASE":                            "",
		"REDIS_URL":                                  "",
		"REDIS_HOST":                                 "localhost",
		"REDIS_PORT":                                 "6379",
		"REDIS_DB":                                   "0",
		"REDIS_USERNAME":                             "",
		"REDIS_PASSWORD":                             "",
		"REDIS_TLS_ENABLED":                          "false",
		"REDIS_TLS_CA_FILE":                          "",
		"REDIS_TLS_CERT_FILE":                        "",
		"REDIS_TLS_KEY_FILE":                         "",
		"REDIS_TLS_INSECURE_SKIP_VERIFY":             "false",
		"REDIS_TLS_SERVER_NAME":                      "",
		"REDIS_KEY_PREFIX":                           "sc",
		"WORKER_SHARD_COUNT":                         "64",
		"SHARD_LEASE_TTL":                            "15s",
		"QUEUE_SIZE":                                 "1000",
		"WORKER_POOL_SIZE":                           "16",
		"HANDLER_TIMEOUT":                            "30s",
		"CLAIM_MIN_IDLE":                             "1m",
		"RETRY_BACKOFF_BASE":                         "1s",
		"RETRY_BACKOFF_MAX":                          "5m",
		"DLQ_MAX_RETRIES":                            "5",
		"DLQ_MAX_LEN":                                "10000",
		"STREAM_MAX_LEN":                             "100000",
		"STREAM_RETENTION":                           "1h",
		"DEDUP_WINDOW":                               "1h",
		"REPAIR_DELAY":                               "1s",
		"LOCK_TTL_SECONDS":                           "10s",
		"ACK_BATCH_MAX":                              "64",
		"ACK_BATCH_WINDOW":                           "2ms",
		"DLQ_RETENTION":                              "336h",
		"QUARANTINE_MAX_LEN":                         "10000",
		"QUARANTINE_RETENTION":                       "168h",
		"MAX_FRAME_BYTES":                            "8388608",
		"MEMORY_STORE_ADDR":                          "127.0.0.1:6390",
		"TRIM_INTERVAL":                              "30s",
		"HEARTBEAT_INTERVAL":                         "5s",
		"SENT_RECORD_TTL":                            "168h",
		"UNKNOWN_OUTCOME_POLICY":                     "skip",
		"SHUTDOWN_TIMEOUT":                           "25s",
		"DURABLE_QUEUE_ENABLED":                      "false",
		"SPOOL_DIR":                                  "./spool",
		"RATE_LIMIT":                                 "50",
		"RATE_LIMIT_PERIOD":                          "1m",
		"RATE_LIMIT_BURST":                           "50",
		"RATE_LIMIT_429_PAUSE":                       "1m",
		"CIRCUIT_BREAKER_FAILURE_THRESHOLD":          "5",
		"CIRCUIT_BREAKER_RESET_TIMEOUT":              "30s",
		"CIRCUIT_BREAKER_FAILURE_RATE_THRESHOLD":     "0.5",
		"CIRCUIT_BREAKER_MIN_REQUESTS_FOR_RATE_CALC": "10",
		"LOG_LEVEL":                                  "info",
		"LOG_FORMAT":                                 "json",
		"LOG_REDACTION_ENABLED":                      "true",
		"LOG_REDACTION_KEY":                          "(random per process)",
		"HEALTH_ADDR":                                "0.0.0.0",
		"HEALTH_PORT":                                "8082",
		"METRICS_ADDR":                               "0.0.0.0",
		"METRICS_PORT":                               "8000",
		"DEBUG_PPROF":                                "false",
		"INSTANCE_ID":                                defaultInstanceID(),
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("defaults (-want +got):\n%s", d)
	}
	if len(c.Warnings) != 0 {
		t.Errorf("warnings = %q, want none", c.Warnings)
	}
	h, _ := os.Hostname()
	if c.InstanceID != h+"-"+strconv.Itoa(os.Getpid()) {
		t.Errorf("InstanceID = %q, want hostname-pid", c.InstanceID)
	}
	if c.LockTTL != 10*time.Second || c.DLQMaxRetries != 5 || c.Signal.MaxConcurrency != 4 {
		t.Errorf("typed defaults wrong: LockTTL=%v DLQMaxRetries=%d MaxConcurrency=%d", c.LockTTL, c.DLQMaxRetries, c.Signal.MaxConcurrency)
	}
}

func TestPrecedence(t *testing.T) {
	type layerVals struct{ flag, env, file string }
	cases := []struct {
		name    string
		setting string
		vals    layerVals
		want    func(*Config) any
		expect  any
		origin  string
	}{
		{"string default", "REDIS_KEY_PREFIX", layerVals{}, func(c *Config) any { return c.Redis.KeyPrefix }, "sc", "default"},
		{"string file", "REDIS_KEY_PREFIX", layerVals{file: "f"}, func(c *Config) any { return c.Redis.KeyPrefix }, "f", "file"},
		{"string env over file", "REDIS_KEY_PREFIX", layerVals{env: "e", file: "f"}, func(c *Config) any { return c.Redis.KeyPrefix }, "e", "env REDIS_KEY_PREFIX"},
		{"string flag over env", "REDIS_KEY_PREFIX", layerVals{flag: "x", env: "e", file: "f"}, func(c *Config) any { return c.Redis.KeyPrefix }, "x", "flag --redis-key-prefix"},
		{"int file", "WORKER_POOL_SIZE", layerVals{file: "3"}, func(c *Config) any { return c.WorkerPoolSize }, 3, "file"},
		{"int env over file", "WORKER_POOL_SIZE", layerVals{env: "7", file: "3"}, func(c *Config) any { return c.WorkerPoolSize }, 7, "env WORKER_POOL_SIZE"},
		{"int flag over env", "WORKER_POOL_SIZE", layerVals{flag: "9", env: "7", file: "3"}, func(c *Config) any { return c.WorkerPoolSize }, 9, "flag --worker-pool-size"},
		{"duration file", "HANDLER_TIMEOUT", layerVals{file: "5s"}, func(c *Config) any { return c.HandlerTimeout }, 5 * time.Second, "file"},
		{"duration env over file", "HANDLER_TIMEOUT", layerVals{env: "500ms", file: "5s"}, func(c *Config) any { return c.HandlerTimeout }, 500 * time.Millisecond, "env HANDLER_TIMEOUT"},
		{"duration flag over env", "HANDLER_TIMEOUT", layerVals{flag: "3", env: "500ms", file: "5s"}, func(c *Config) any { return c.HandlerTimeout }, 3 * time.Second, "flag --handler-timeout"},
		{"bool file", "DURABLE_QUEUE_ENABLED", layerVals{file: "true"}, func(c *Config) any { return c.DurableQueueEnabled }, true, "file"},
		{"bool env over file", "DURABLE_QUEUE_ENABLED", layerVals{env: "false", file: "true"}, func(c *Config) any { return c.DurableQueueEnabled }, false, "env DURABLE_QUEUE_ENABLED"},
		{"bool flag over env", "DURABLE_QUEUE_ENABLED", layerVals{flag: "true", env: "false", file: "false"}, func(c *Config) any { return c.DurableQueueEnabled }, true, "flag --durable-queue-enabled"},
		{"pprof default off", "DEBUG_PPROF", layerVals{}, func(c *Config) any { return c.DebugPprof }, false, "default"},
		{"pprof env", "DEBUG_PPROF", layerVals{env: "true"}, func(c *Config) any { return c.DebugPprof }, true, "env DEBUG_PPROF"},
		{"float env over file", "CIRCUIT_BREAKER_FAILURE_RATE_THRESHOLD", layerVals{env: "0.25", file: "0.75"}, func(c *Config) any { return c.CircuitBreaker.FailureRateThreshold }, 0.25, "env CIRCUIT_BREAKER_FAILURE_RATE_THRESHOLD"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			env := base(nil)
			var args []string
			if tc.vals.file != "" {
				p := writeFile(t, "c.yaml", strings.ToLower(tc.setting)+": "+tc.vals.file+"\n")
				args = append(args, "--config", p)
				if tc.origin == "file" {
					tc.origin = "file " + p + " (" + strings.ToLower(tc.setting) + ")"
				}
			}
			if tc.vals.env != "" {
				env[tc.setting] = tc.vals.env
			}
			if tc.vals.flag != "" {
				args = append(args, "--"+kebab(tc.setting)+"="+tc.vals.flag)
			}
			c := mustLoad(t, RoleIngester, args, env)
			if got := tc.want(c); got != tc.expect {
				t.Errorf("value = %v, want %v", got, tc.expect)
			}
			if got := c.origins[tc.setting]; got != tc.origin {
				t.Errorf("origin = %q, want %q", got, tc.origin)
			}
		})
	}
}

func TestBoolFlagWithoutValue(t *testing.T) {
	c := mustLoad(t, RoleIngester, []string{"--durable-queue-enabled", "--log-redaction-enabled=false"}, base(nil))
	if !c.DurableQueueEnabled || c.Log.RedactionEnabled {
		t.Errorf("DurableQueueEnabled=%v RedactionEnabled=%v, want true false", c.DurableQueueEnabled, c.Log.RedactionEnabled)
	}
}

func TestConfigFileFromEnv(t *testing.T) {
	p := writeFile(t, "c.yaml", "queue_size: 77\n")
	c := mustLoad(t, RoleIngester, nil, base(map[string]string{ConfigFileEnv: p}))
	if c.QueueSize != 77 || c.ConfigFile != p {
		t.Errorf("QueueSize=%d ConfigFile=%q, want 77 %q", c.QueueSize, c.ConfigFile, p)
	}
	// --config wins over the variable.
	p2 := writeFile(t, "d.yaml", "queue_size: 88\n")
	c = mustLoad(t, RoleIngester, []string{"--config=" + p2}, base(map[string]string{ConfigFileEnv: p}))
	if c.QueueSize != 88 {
		t.Errorf("QueueSize=%d, want 88 from --config", c.QueueSize)
	}
}

func TestDurations(t *testing.T) {
	cases := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"500ms", 500 * time.Millisecond, true},
		{"3", 3 * time.Second, true},
		{"0.5", 500 * time.Millisecond, true},
		{"1m30s", 90 * time.Second, true},
		{" 2s ", 2 * time.Second, true},
		{"1h", time.Hour, true},
		{"0", 0, false},
		{"-1s", 0, false},
		{"abc", 0, false},
		{"", 0, false},
		{"10 s", 0, false},
		{"1e300", 0, false},
	}
	for _, tc := range cases {
		c, err := Load(RoleIngester, nil, EnvMap(base(map[string]string{"HANDLER_TIMEOUT": tc.in})))
		if tc.ok {
			if err != nil || c.HandlerTimeout != tc.want {
				t.Errorf("HANDLER_TIMEOUT=%q: got %v, %v; want %v", tc.in, c, err, tc.want)
			}
			continue
		}
		want := `config: HANDLER_TIMEOUT=` + strconv.Quote(tc.in) + `: expected a positive duration such as 500ms, 30s or 5m (a bare number means seconds)`
		if err == nil || err.Error() != want {
			t.Errorf("HANDLER_TIMEOUT=%q: err = %v, want %s", tc.in, err, want)
		}
	}
	// REPAIR_DELAY accepts 0.
	c := mustLoad(t, RoleIngester, nil, base(map[string]string{"REPAIR_DELAY": "0"}))
	if c.RepairDelay != 0 {
		t.Errorf("REPAIR_DELAY=0 gave %v", c.RepairDelay)
	}
}

func TestRefusals(t *testing.T) {
	cases := []struct {
		name string
		role string
		env  map[string]string
		args []string
		want string
	}{
		{"shard count text", "", map[string]string{"WORKER_SHARD_COUNT": "abc"}, nil,
			`config: WORKER_SHARD_COUNT="abc": expected an integer from 1 to 4096`},
		{"shard count zero (python default)", "", map[string]string{"WORKER_SHARD_COUNT": "0"}, nil,
			`config: WORKER_SHARD_COUNT="0": expected an integer from 1 to 4096`},
		{"shard count via flag", "", nil, []string{"--worker-shard-count=5000"},
			`config: WORKER_SHARD_COUNT="5000" (from --worker-shard-count): expected an integer from 1 to 4096`},
		{"queue size", "", map[string]string{"QUEUE_SIZE": "-1"}, nil,
			`config: QUEUE_SIZE="-1": expected an integer from 1 to 1000000`},
		{"pool size", "", map[string]string{"WORKER_POOL_SIZE": "1.5"}, nil,
			`config: WORKER_POOL_SIZE="1.5": expected an integer from 1 to 4096`},
		{"dlq retries", "", map[string]string{"DLQ_MAX_RETRIES": "-1"}, nil,
			`config: DLQ_MAX_RETRIES="-1": expected an integer from 0 to 1000`},
		{"redis port", "", map[string]string{"REDIS_PORT": "70000"}, nil,
			`config: REDIS_PORT="70000": expected an integer from 1 to 65535`},
		{"redis db", "", map[string]string{"REDIS_DB": "-2"}, nil,
			`config: REDIS_DB="-2": expected an integer of 0 or more`},
		{"empty int", "", map[string]string{"REDIS_PORT": ""}, nil,
			`config: REDIS_PORT="": expected an integer from 1 to 65535`},
		{"bool", "", map[string]string{"DURABLE_QUEUE_ENABLED": "maybe"}, nil,
			`config: DURABLE_QUEUE_ENABLED="maybe": expected true or false`},
		{"float", "", map[string]string{"CIRCUIT_BREAKER_FAILURE_RATE_THRESHOLD": "1.5"}, nil,
			`config: CIRCUIT_BREAKER_FAILURE_RATE_THRESHOLD="1.5": expected a number greater than 0 and at most 1`},
		{"rate limit", "", map[string]string{"RATE_LIMIT": "-5"}, nil,
			`config: RATE_LIMIT="-5": expected an integer from 0 to 1000000`},
		{"rate burst", "", map[string]string{"RATE_LIMIT_BURST": "0"}, nil,
			`config: RATE_LIMIT_BURST="0": expected an integer from 1 to 1000000`},
		{"log level", "", map[string]string{"LOG_LEVEL": "verbose"}, nil,
			`config: LOG_LEVEL="verbose": expected one of debug, info, warn, error`},
		{"log format", "", map[string]string{"LOG_FORMAT": "text"}, nil,
			`config: LOG_FORMAT="text": expected one of json, console`},
		{"storage sqlite", "", map[string]string{"STORAGE_TYPE": "sqlite", "SQLITE_DATABASE": "x.db"}, nil,
			`config: STORAGE_TYPE="sqlite": expected redis or memory (sqlite is not implemented: use redis, or memory with the all-in-one signal-client binary)`},
		{"storage memory for ingester", RoleIngester, map[string]string{"STORAGE_TYPE": "memory"}, nil,
			`config: STORAGE_TYPE="memory": expected redis for the ingester (memory keeps everything inside one process: run the all-in-one signal-client binary for that)`},
		{"storage memory for worker", RoleWorker, map[string]string{"STORAGE_TYPE": "memory"}, nil,
			`config: STORAGE_TYPE="memory": expected redis for the worker (memory keeps everything inside one process: run the all-in-one signal-client binary for that)`},
		{"storage memory for dlqctl", RoleDLQCtl, map[string]string{"STORAGE_TYPE": "memory"}, nil,
			`config: STORAGE_TYPE="memory": expected redis for the dlqctl (memory keeps everything inside one process: run the all-in-one signal-client binary for that)`},
		{"phone without plus", "", map[string]string{"SIGNAL_PHONE_NUMBER": "15551234567"}, nil,
			`config: SIGNAL_PHONE_NUMBER="*********67": expected an E.164 phone number such as +15551234567`},
		{"service url scheme", "", map[string]string{"SIGNAL_SERVICE_URL": "ftp://signal:8080"}, nil,
			`config: SIGNAL_SERVICE_URL="ftp://signal:8080": expected an http, https, ws or wss URL such as http://signal-cli:8080`},
		{"api url query", "", map[string]string{"SIGNAL_API_URL": "http://signal:8080/?x=1"}, nil,
			`config: SIGNAL_API_URL="http://signal:8080/?x=1": expected an http, https, ws or wss URL such as http://signal-cli:8080`},
		{"api url bad port", "", map[string]string{"SIGNAL_API_URL": "signal:99999"}, nil,
			`config: SIGNAL_API_URL="signal:99999": expected an http, https, ws or wss URL such as http://signal-cli:8080`},
		{"ws path", "", map[string]string{"SIGNAL_WS_PATH": "/v1/receive/{number}"}, nil,
			`config: SIGNAL_WS_PATH="/v1/receive/{number}": expected a path starting with / such as /v1/receive/{phone_number}`},
		{"auth scheme", "", map[string]string{"API_AUTH_SCHEME": "Bear er"}, nil,
			`config: API_AUTH_SCHEME="Bear er": expected an HTTP auth scheme such as Bearer or Basic, or empty for a bare token`},
		{"key prefix braces", "", map[string]string{"REDIS_KEY_PREFIX": "{sc}"}, nil,
			`config: REDIS_KEY_PREFIX="{sc}": expected 1 to 64 letters, digits, '_', '.' or '-' (no braces)`},
		{"key prefix empty", "", map[string]string{"REDIS_KEY_PREFIX": ""}, nil,
			`config: REDIS_KEY_PREFIX="": expected 1 to 64 letters, digits, '_', '.' or '-' (no braces)`},
		{"redis url scheme", "", map[string]string{"REDIS_URL": "http://redis:6379"}, nil,
			`config: REDIS_URL="http://redis:6379": expected a redis://, rediss:// or unix:// URL such as redis://redis:6379/0`},
		{"redis url password masked", "", map[string]string{"REDIS_URL": "http://user:hunter2@redis:6379"}, nil,
			`config: REDIS_URL="http://user:xxxxx@redis:6379": expected a redis://, rediss:// or unix:// URL such as redis://redis:6379/0`},
		{"redis url bad db", "", map[string]string{"REDIS_URL": "redis://:hunter2@redis:6379/abc"}, nil,
			`config: REDIS_URL="redis://:xxxxx@redis:6379/abc": expected a redis://, rediss:// or unix:// URL such as redis://redis:6379/0: redis: invalid database number: "abc"`},
		{"redis host", "", map[string]string{"REDIS_HOST": "redis host"}, nil,
			`config: REDIS_HOST="redis host": expected a host name or IP address such as redis or 10.0.0.5`},
		{"redaction key short", "", map[string]string{"LOG_REDACTION_KEY": "hunter2"}, nil,
			`config: LOG_REDACTION_KEY=<secret>: expected at least 16 bytes, e.g. the output of openssl rand -hex 32`},
		{"instance id", "", map[string]string{"INSTANCE_ID": "a b"}, nil,
			`config: INSTANCE_ID="a b": expected 1 to 128 letters, digits, '_', '.', ':' or '-'`},
		{"spool dir", "", map[string]string{"SPOOL_DIR": ""}, nil,
			`config: SPOOL_DIR="": expected a directory path`},
		{"backoff max below base", "", map[string]string{"RETRY_BACKOFF_BASE": "10s", "RETRY_BACKOFF_MAX": "5s"}, nil,
			`config: RETRY_BACKOFF_MAX="5s": expected a duration of at least RETRY_BACKOFF_BASE (10s)`},
		{"backoff max from flag", "", nil, []string{"--retry-backoff-max=500ms"},
			`config: RETRY_BACKOFF_MAX="500ms" (from --retry-backoff-max): expected a duration of at least RETRY_BACKOFF_BASE (1s)`},
		{"policy", "", map[string]string{"UNKNOWN_OUTCOME_POLICY": "retry"}, nil,
			`config: UNKNOWN_OUTCOME_POLICY="retry": expected one of skip, resend`},
		{"frame bytes", "", map[string]string{"MAX_FRAME_BYTES": "10"}, nil,
			`config: MAX_FRAME_BYTES="10": expected an integer from 1024 to 1073741824`},
		{"same ports", "", map[string]string{"METRICS_PORT": "8082"}, nil,
			`config: METRICS_PORT="8082": expected a port other than HEALTH_PORT (8082)`},
		{"phone missing", RoleIngester, map[string]string{"SIGNAL_PHONE_NUMBER": ""}, nil,
			`config: SIGNAL_PHONE_NUMBER is not set: expected the bot's E.164 phone number such as +15551234567 (the ingester needs it)`},
		{"phone missing worker", RoleWorker, map[string]string{"SIGNAL_PHONE_NUMBER": ""}, nil,
			`config: SIGNAL_PHONE_NUMBER is not set: expected the bot's E.164 phone number such as +15551234567 (the worker needs it)`},
		{"urls missing ingester", RoleIngester, map[string]string{"SIGNAL_SERVICE_URL": ""}, nil,
			`config: SIGNAL_SERVICE_URL is not set: expected the base URL of signal-cli-rest-api such as http://signal-cli:8080 (set SIGNAL_SERVICE_URL or SIGNAL_API_URL; one fills the other)`},
		{"urls missing worker", RoleWorker, map[string]string{"SIGNAL_SERVICE_URL": ""}, nil,
			`config: SIGNAL_API_URL is not set: expected the base URL of signal-cli-rest-api such as http://signal-cli:8080 (set SIGNAL_SERVICE_URL or SIGNAL_API_URL; one fills the other)`},
		{"lower-case name", "", map[string]string{"redis_host": "redis"}, nil,
			`config: redis_host="redis": expected the upper-case name REDIS_HOST (names are case-sensitive here)`},
		{"lower-case secret name", "", map[string]string{"redis_password": "hunter2"}, nil,
			`config: redis_password=<secret>: expected the upper-case name REDIS_PASSWORD (names are case-sensitive here)`},
		{"alias and name both set", "", map[string]string{"LOCK_TTL_SECONDS": "10", "DISTRIBUTED_LOCK_TIMEOUT": "30"}, nil,
			`config: DISTRIBUTED_LOCK_TIMEOUT="30": expected LOCK_TTL_SECONDS to be unset: set only one of LOCK_TTL_SECONDS and DISTRIBUTED_LOCK_TIMEOUT`},
		{"alias bad value", "", map[string]string{"DISTRIBUTED_LOCK_TIMEOUT": "soon"}, nil,
			`config: DISTRIBUTED_LOCK_TIMEOUT="soon": expected a positive duration such as 500ms, 30s or 5m (a bare number means seconds)`},
		{"tls option without tls", "", map[string]string{"REDIS_TLS_SERVER_NAME": "redis.internal"}, nil,
			`config: REDIS_TLS_SERVER_NAME="redis.internal": expected unset unless TLS is on (use a rediss:// REDIS_URL or REDIS_TLS_ENABLED=true)`},
		{"tls enabled with redis url", "", map[string]string{"REDIS_URL": "redis://redis:6379", "REDIS_TLS_ENABLED": "true"}, nil,
			`config: REDIS_TLS_ENABLED="true": expected false with a redis:// REDIS_URL (use rediss:// for TLS)`},
		{"tls cert without key", "", map[string]string{"REDIS_URL": "rediss://redis:6379", "REDIS_TLS_CERT_FILE": "/nonexistent/c.pem"}, nil,
			`config: REDIS_TLS_KEY_FILE is not set: expected the key of REDIS_TLS_CERT_FILE (set both or neither)`},
		{"tls ca missing", "", map[string]string{"REDIS_URL": "rediss://redis:6379", "REDIS_TLS_CA_FILE": "/nonexistent/ca.pem"}, nil,
			`config: REDIS_TLS_CA_FILE="/nonexistent/ca.pem": expected a readable PEM file of CA certificates: open /nonexistent/ca.pem: no such file or directory`},
		{"secret file missing", "", map[string]string{"REDIS_PASSWORD_FILE": "/nonexistent/pw"}, nil,
			`config: REDIS_PASSWORD_FILE="/nonexistent/pw": expected a readable file holding REDIS_PASSWORD: open /nonexistent/pw: no such file or directory`},
		{"unknown flag", "", nil, []string{"--redis-hots=x"},
			`config: unknown flag: --redis-hots (run with --help to list the flags)`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			role := tc.role
			if role == "" {
				role = RoleIngester
			}
			_, err := Load(role, tc.args, EnvMap(base(tc.env)))
			if err == nil {
				t.Fatalf("Load accepted it; want %s", tc.want)
			}
			if err.Error() != tc.want {
				t.Errorf("error:\n got %s\nwant %s", err, tc.want)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error shows a secret: %s", err)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error is not one line: %q", err)
			}
		})
	}
}

func TestErrorType(t *testing.T) {
	_, err := Load(RoleIngester, nil, EnvMap(base(map[string]string{"WORKER_SHARD_COUNT": "abc"})))
	var ce *Error
	if !errors.As(err, &ce) {
		t.Fatalf("err %T is not *config.Error", err)
	}
	want := Error{Variable: "WORKER_SHARD_COUNT", Value: "abc", Expected: "an integer from 1 to 4096", Source: "env"}
	if *ce != want {
		t.Errorf("got %+v, want %+v", *ce, want)
	}
}

func TestRoles(t *testing.T) {
	// dlqctl and the emulator need no phone number or URLs.
	for _, role := range []string{RoleDLQCtl, RoleEmulator} {
		if _, err := Load(role, nil, EnvMap(nil)); err != nil {
			t.Errorf("%s with empty env: %v", role, err)
		}
	}
	// The emulator does not use storage; memory is fine there.
	if _, err := Load(RoleEmulator, nil, EnvMap(map[string]string{"STORAGE_TYPE": "memory"})); err != nil {
		t.Errorf("emulator with memory: %v", err)
	}
	c := mustLoad(t, RoleAll, nil, base(map[string]string{"STORAGE_TYPE": "memory"}))
	if c.StorageType != "memory" || c.Role != RoleAll {
		t.Errorf("signal-client memory: StorageType=%q Role=%q", c.StorageType, c.Role)
	}
	_, err := Load("bot", nil, EnvMap(nil))
	want := `config: unknown role "bot": expected one of ingester, worker, signal-client, dlqctl, emulator`
	if err == nil || err.Error() != want {
		t.Errorf("unknown role: %v, want %s", err, want)
	}
}

func TestSignalURLs(t *testing.T) {
	cases := []struct {
		env             map[string]string
		service, api, w string
	}{
		{map[string]string{"SIGNAL_SERVICE_URL": "ws://signal:8080/"}, "http://signal:8080", "http://signal:8080", "ws://signal:8080/v1/receive/+15551234567"},
		{map[string]string{"SIGNAL_SERVICE_URL": "wss://proxy.example/signal/"}, "https://proxy.example/signal", "https://proxy.example/signal", "wss://proxy.example/signal/v1/receive/+15551234567"},
		{map[string]string{"SIGNAL_SERVICE_URL": "", "SIGNAL_API_URL": "signal-cli:8080"}, "http://signal-cli:8080", "http://signal-cli:8080", "ws://signal-cli:8080/v1/receive/+15551234567"},
		{map[string]string{"SIGNAL_SERVICE_URL": "http://a:1", "SIGNAL_API_URL": "https://b"}, "http://a:1", "https://b", "ws://a:1/v1/receive/+15551234567"},
		{map[string]string{"SIGNAL_WS_PATH": "/receive/{phone_number}/ws"}, "http://signal-cli:8080", "http://signal-cli:8080", "ws://signal-cli:8080/receive/+15551234567/ws"},
	}
	for _, tc := range cases {
		c := mustLoad(t, RoleAll, nil, base(tc.env))
		if c.Signal.ServiceURL != tc.service || c.Signal.APIURL != tc.api || c.WebsocketURL() != tc.w {
			t.Errorf("%v: service=%q api=%q ws=%q; want %q %q %q", tc.env, c.Signal.ServiceURL, c.Signal.APIURL, c.WebsocketURL(), tc.service, tc.api, tc.w)
		}
	}
}

func TestSecretFiles(t *testing.T) {
	pw := writeFile(t, "pw", "s3cret-pass\n")
	tok := writeFile(t, "tok", "tok-123\r\n")
	key := writeFile(t, "key", "0123456789abcdef0123")
	c := mustLoad(t, RoleIngester, []string{"--signal-api-token-file", tok}, base(map[string]string{
		"REDIS_PASSWORD_FILE":    pw,
		"LOG_REDACTION_KEY_FILE": key,
	}))
	if c.Redis.Password != "s3cret-pass" || c.Signal.APIToken != "tok-123" || c.Log.RedactionKey != "0123456789abcdef0123" {
		t.Errorf("password=%q token=%q key=%q", c.Redis.Password, c.Signal.APIToken, c.Log.RedactionKey)
	}
	if got := c.origins["REDIS_PASSWORD"]; got != "env REDIS_PASSWORD_FILE" {
		t.Errorf("origin = %q", got)
	}
	o, err := c.RedisOptions()
	if err != nil || o.Password != "s3cret-pass" {
		t.Errorf("RedisOptions password = %q, %v", o.Password, err)
	}

	// A flag (higher layer) beats a _FILE in the environment.
	c = mustLoad(t, RoleIngester, []string{"--redis-password=from-flag"}, base(map[string]string{"REDIS_PASSWORD_FILE": pw}))
	if c.Redis.Password != "from-flag" {
		t.Errorf("flag did not win: %q", c.Redis.Password)
	}

	refusals := []struct {
		name string
		env  map[string]string
		args []string
		want string
	}{
		{"both in env", map[string]string{"REDIS_PASSWORD": "hunter2", "REDIS_PASSWORD_FILE": pw}, nil,
			`config: REDIS_PASSWORD_FILE="` + pw + `": expected REDIS_PASSWORD to be unset: set only one of REDIS_PASSWORD and REDIS_PASSWORD_FILE`},
		{"both as flags", nil, []string{"--signal-api-token=hunter2", "--signal-api-token-file=" + tok},
			`config: SIGNAL_API_TOKEN_FILE="` + tok + `" (from --signal-api-token-file): expected SIGNAL_API_TOKEN to be unset: set only one of SIGNAL_API_TOKEN and SIGNAL_API_TOKEN_FILE`},
		{"empty file", map[string]string{"REDIS_PASSWORD_FILE": writeFile(t, "empty", "\n")}, nil,
			`config: REDIS_PASSWORD_FILE="` + filepath.Join(filepath.Dir(pw), "..") + `": expected a file holding REDIS_PASSWORD (the file is empty)`},
		{"short key in file", map[string]string{"LOG_REDACTION_KEY_FILE": pw}, nil,
			`config: LOG_REDACTION_KEY_FILE="` + pw + `": expected a file holding at least 16 bytes, e.g. the output of openssl rand -hex 32`},
	}
	for _, tc := range refusals {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load(RoleIngester, tc.args, EnvMap(base(tc.env)))
			if err == nil {
				t.Fatal("accepted")
			}
			want := tc.want
			if tc.name == "empty file" {
				want = `config: REDIS_PASSWORD_FILE="` + tc.env["REDIS_PASSWORD_FILE"] + `": expected a file holding REDIS_PASSWORD (the file is empty)`
			}
			if err.Error() != want {
				t.Errorf("error:\n got %s\nwant %s", err, want)
			}
			for _, secret := range []string{"hunter2", "s3cret-pass"} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error shows secret %q", secret)
				}
			}
		})
	}
}

func TestRedisOptions(t *testing.T) {
	cases := []struct {
		name                 string
		env                  map[string]string
		addr, user, pass     string
		db                   int
		tls                  bool
		warnings             []string
		serverName, hostNote string
	}{
		{name: "host and port", env: map[string]string{"REDIS_HOST": "redis", "REDIS_PORT": "6380", "REDIS_DB": "2"},
			addr: "redis:6380", db: 2},
		{name: "url wins over host and port", env: map[string]string{"REDIS_URL": "redis://u:p@r1:7000/3", "REDIS_HOST": "other", "REDIS_PORT": "1"},
			addr: "r1:7000", user: "u", pass: "p", db: 3,
			warnings: []string{"REDIS_HOST has no effect: REDIS_URL is set and wins", "REDIS_PORT has no effect: REDIS_URL is set and wins"}},
		{name: "explicit credentials override the url", env: map[string]string{"REDIS_URL": "redis://u:p@r1:7000/3", "REDIS_USERNAME": "acl", "REDIS_PASSWORD": "pw2", "REDIS_DB": "0"},
			addr: "r1:7000", user: "acl", pass: "pw2", db: 0},
		{name: "rediss", env: map[string]string{"REDIS_URL": "rediss://redis.example:6380"},
			addr: "redis.example:6380", tls: true, serverName: "redis.example"},
		{name: "tls with host", env: map[string]string{"REDIS_HOST": "r.internal", "REDIS_TLS_ENABLED": "true", "REDIS_TLS_SERVER_NAME": "r.example"},
			addr: "r.internal:6379", tls: true, serverName: "r.example"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := mustLoad(t, RoleWorker, nil, base(tc.env))
			o, err := c.RedisOptions()
			if err != nil {
				t.Fatal(err)
			}
			if o.Addr != tc.addr || o.Username != tc.user || o.Password != tc.pass || o.DB != tc.db || (o.TLSConfig != nil) != tc.tls {
				t.Errorf("got addr=%q user=%q pass=%q db=%d tls=%v", o.Addr, o.Username, o.Password, o.DB, o.TLSConfig != nil)
			}
			if tc.tls && o.TLSConfig.ServerName != tc.serverName {
				t.Errorf("ServerName = %q, want %q", o.TLSConfig.ServerName, tc.serverName)
			}
			if d := cmp.Diff(tc.warnings, c.Warnings); d != "" {
				t.Errorf("warnings (-want +got):\n%s", d)
			}
		})
	}
}

func TestRedisTLSFiles(t *testing.T) {
	caPEM, certPEM, keyPEM := testCerts(t)
	ca := writeFile(t, "ca.pem", caPEM)
	cert := writeFile(t, "cert.pem", certPEM)
	key := writeFile(t, "key.pem", keyPEM)
	c := mustLoad(t, RoleWorker, nil, base(map[string]string{
		"REDIS_URL":                      "rediss://redis:6380/1",
		"REDIS_TLS_CA_FILE":              ca,
		"REDIS_TLS_CERT_FILE":            cert,
		"REDIS_TLS_KEY_FILE":             key,
		"REDIS_TLS_INSECURE_SKIP_VERIFY": "true",
	}))
	o, err := c.RedisOptions()
	if err != nil {
		t.Fatal(err)
	}
	tc := o.TLSConfig
	if tc == nil || tc.RootCAs == nil || len(tc.Certificates) != 1 || !tc.InsecureSkipVerify || tc.ServerName != "redis" {
		t.Fatalf("TLS config incomplete: %+v", tc)
	}
	// A CA file that holds no certificate is refused.
	_, err = Load(RoleWorker, nil, EnvMap(base(map[string]string{"REDIS_URL": "rediss://redis:6380", "REDIS_TLS_CA_FILE": key})))
	want := `config: REDIS_TLS_CA_FILE="` + key + `": expected a PEM file of CA certificates (none found in it)`
	if err == nil || err.Error() != want {
		t.Errorf("got %v, want %s", err, want)
	}
}

func TestAliasesAndPythonVariables(t *testing.T) {
	c := mustLoad(t, RoleIngester, nil, base(map[string]string{"DISTRIBUTED_LOCK_TIMEOUT": "30"}))
	if c.LockTTL != 30*time.Second || c.origins["LOCK_TTL_SECONDS"] != "env DISTRIBUTED_LOCK_TIMEOUT" {
		t.Errorf("alias: LockTTL=%v origin=%q", c.LockTTL, c.origins["LOCK_TTL_SECONDS"])
	}
	// The alias works in the file too, with the lower-case key.
	p := writeFile(t, "c.yaml", "distributed_lock_timeout: 12\n")
	c = mustLoad(t, RoleIngester, []string{"--config", p}, base(nil))
	if c.LockTTL != 12*time.Second {
		t.Errorf("file alias: LockTTL=%v", c.LockTTL)
	}

	refused := []struct{ name, value, want string }{
		{"API_RETRIES", "3", `config: API_RETRIES="3": expected unset (REST calls are not retried by a counter here; a failed handler is retried from its stream: use DLQ_MAX_RETRIES, RETRY_BACKOFF_BASE and RETRY_BACKOFF_MAX)`},
		{"API_BACKOFF_FACTOR", "0.5", `config: API_BACKOFF_FACTOR="0.5": expected unset (retry delays are set by RETRY_BACKOFF_BASE and RETRY_BACKOFF_MAX)`},
		{"API_DEFAULT_HEADERS", "{}", `config: API_DEFAULT_HEADERS="{}": expected unset (only Authorization is sent: use SIGNAL_API_TOKEN and API_AUTH_SCHEME; add other headers in a reverse proxy)`},
		{"API_ENDPOINT_TIMEOUTS", "{}", `config: API_ENDPOINT_TIMEOUTS="{}": expected unset (one timeout applies to every REST call: use API_TIMEOUT)`},
		{"QUEUE_PUT_TIMEOUT", "1.0", `config: QUEUE_PUT_TIMEOUT="1.0": expected unset (the ingester never blocks its websocket reader; frames wait in QUEUE_SIZE and, with DURABLE_QUEUE_ENABLED, in the spool)`},
		{"QUEUE_DROP_OLDEST_ON_TIMEOUT", "true", `config: QUEUE_DROP_OLDEST_ON_TIMEOUT="true": expected false or unset (there is no drop-oldest policy here; set DURABLE_QUEUE_ENABLED=true so that nothing is dropped while Redis is down)`},
		{"QUEUE_DROP_OLDEST_ON_TIMEOUT", "sometimes", `config: QUEUE_DROP_OLDEST_ON_TIMEOUT="sometimes": expected true or false`},
		{"DURABLE_QUEUE_MAX_LENGTH", "10000", `config: DURABLE_QUEUE_MAX_LENGTH="10000": expected unset (streams are bounded by STREAM_MAX_LEN and STREAM_RETENTION; the outage spool under SPOOL_DIR is not a ring)`},
		{"INGEST_CHECKPOINT_WINDOW", "5000", `config: INGEST_CHECKPOINT_WINDOW="5000": expected unset (duplicates are remembered for a time, not a count: use DEDUP_WINDOW)`},
		{"INGEST_QUEUE_NAME", "q", `config: INGEST_QUEUE_NAME="q": expected unset (Redis keys are named under REDIS_KEY_PREFIX; set REDIS_KEY_PREFIX to separate deployments)`},
		{"INGEST_CHECKPOINT_KEY", "k", `config: INGEST_CHECKPOINT_KEY="k": expected unset (Redis keys are named under REDIS_KEY_PREFIX; set REDIS_KEY_PREFIX to separate deployments)`},
		{"DLQ_NAME", "dlq", `config: DLQ_NAME="dlq": expected unset (Redis keys are named under REDIS_KEY_PREFIX; set REDIS_KEY_PREFIX to separate deployments)`},
		{"INGEST_PAUSE_SECONDS", "1", `config: INGEST_PAUSE_SECONDS="1": expected unset (the ingester never pauses reading the websocket, since a paused reader loses messages; REST calls are paced by RATE_LIMIT and CIRCUIT_BREAKER_*)`},
		{"DISTRIBUTED_LOCKS_ENABLED", "yes please", `config: DISTRIBUTED_LOCKS_ENABLED="yes please": expected true or false`},
	}
	for _, tc := range refused {
		_, err := Load(RoleIngester, nil, EnvMap(base(map[string]string{tc.name: tc.value})))
		if err == nil || err.Error() != tc.want {
			t.Errorf("%s=%s:\n got %v\nwant %s", tc.name, tc.value, err, tc.want)
		}
	}
	// In the config file, the refusal names the file.
	p = writeFile(t, "c.yaml", "api_retries: 3\n")
	_, err := Load(RoleIngester, []string{"--config", p}, EnvMap(base(nil)))
	want := `config: API_RETRIES="3" (from ` + p + `): expected unset (REST calls are not retried by a counter here; a failed handler is retried from its stream: use DLQ_MAX_RETRIES, RETRY_BACKOFF_BASE and RETRY_BACKOFF_MAX)`
	if err == nil || err.Error() != want {
		t.Errorf("file legacy:\n got %v\nwant %s", err, want)
	}

	// DISTRIBUTED_LOCKS_ENABLED=true with memory is refused; otherwise a warning.
	_, err = Load(RoleAll, nil, EnvMap(base(map[string]string{"STORAGE_TYPE": "memory", "DISTRIBUTED_LOCKS_ENABLED": "true"})))
	want = `config: DISTRIBUTED_LOCKS_ENABLED="true": expected false or unset with STORAGE_TYPE=memory (distributed locks need STORAGE_TYPE=redis)`
	if err == nil || err.Error() != want {
		t.Errorf("locks+memory:\n got %v\nwant %s", err, want)
	}

	warned := []struct{ name, value, want string }{
		{"DISTRIBUTED_LOCKS_ENABLED", "true", "DISTRIBUTED_LOCKS_ENABLED has no effect: ctx.Lock uses Redis whenever STORAGE_TYPE=redis and a process-local lock with memory"},
		{"API_IDEMPOTENCY_HEADER", "Idempotency-Key", "API_IDEMPOTENCY_HEADER has no effect: signal-cli-rest-api ignores idempotency headers, so none is sent; duplicates are dropped by DEDUP_WINDOW instead"},
		{"QUEUE_DROP_OLDEST_ON_TIMEOUT", "false", "QUEUE_DROP_OLDEST_ON_TIMEOUT=false has no effect: there is no drop-oldest policy here"},
		{"SQLITE_DATABASE", "signal_client.db", "SQLITE_DATABASE has no effect: sqlite storage is not implemented (STORAGE_TYPE is redis)"},
	}
	for _, tc := range warned {
		c, err := Load(RoleIngester, nil, EnvMap(base(map[string]string{tc.name: tc.value})))
		if err != nil {
			t.Errorf("%s=%s refused: %v", tc.name, tc.value, err)
			continue
		}
		if d := cmp.Diff([]string{tc.want}, c.Warnings); d != "" {
			t.Errorf("%s=%s warnings (-want +got):\n%s", tc.name, tc.value, d)
		}
	}
}

func TestConfigFile(t *testing.T) {
	// Values keep their text: an unquoted +number stays a phone number, a
	// bare number of seconds stays a duration, and null means empty.
	p := writeFile(t, "c.yaml", `
# comment
signal_phone_number: +15557654321
SIGNAL_SERVICE_URL: signal-cli:8080
lock_ttl_seconds: 7
retry_backoff_base: 500ms
api_auth_scheme:
rate_limit_period: 1s
`)
	c := mustLoad(t, RoleIngester, []string{"--config", p}, nil)
	if c.Signal.PhoneNumber != "+15557654321" || c.Signal.ServiceURL != "http://signal-cli:8080" || c.LockTTL != 7*time.Second ||
		c.RetryBackoffBase != 500*time.Millisecond || c.Signal.AuthScheme != "" || c.RateLimitPeriod != time.Second {
		t.Errorf("file values: %+v", c)
	}

	cases := []struct{ name, content, want string }{
		{"unknown key", "redis_hots: redis\n", `config: redis_hots="redis" (from %s): expected a known setting name; did you mean redis_host?`},
		{"unknown secret-like key", "redis_pasword: hunter2\n", `config: redis_pasword=<secret> (from %s): expected a known setting name; did you mean redis_password?`},
		{"far unknown key", "colour: blue\n", `config: colour="blue" (from %s): expected a known setting name in lower case, such as redis_url (see docs/configuration.md)`},
		{"nested", "redis:\n  url: redis://x\n", `config: config file %s: key "redis": expected a single value, not a list or a mapping (keys are flat, such as redis_url)`},
		{"duplicate", "queue_size: 1\nQUEUE_SIZE: 2\n", `config: config file %s: key "QUEUE_SIZE" appears twice`},
		{"not a mapping", "- a\n- b\n", `config: config file %s: expected a mapping of setting names to values, such as redis_url: redis://redis:6379/0`},
		{"bad value", "queue_size: many\n", `config: QUEUE_SIZE="many" (from %s): expected an integer from 1 to 1000000`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := writeFile(t, "c.yaml", tc.content)
			_, err := Load(RoleIngester, []string{"--config", p}, EnvMap(base(nil)))
			want := strings.ReplaceAll(tc.want, "%s", p)
			if err == nil || err.Error() != want {
				t.Errorf("\n got %v\nwant %s", err, want)
			}
		})
	}
	_, err := Load(RoleIngester, []string{"--config", "/nonexistent/c.yaml"}, EnvMap(base(nil)))
	want := `config: config file: open /nonexistent/c.yaml: no such file or directory; check --config / SIGNAL_CLIENT_CONFIG`
	if err == nil || err.Error() != want {
		t.Errorf("missing file: %v", err)
	}
}

func TestExampleFileLoads(t *testing.T) {
	// The commented example in config/ must hold every setting and load as is.
	path := filepath.Join("..", "..", "config", "signal-client.example.yaml")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("example file: %v", err)
	}
	for _, s := range settings {
		if !strings.Contains(string(data), strings.ToLower(s.name)+":") {
			t.Errorf("example file lacks %s", strings.ToLower(s.name))
		}
	}
	c := mustLoad(t, RoleIngester, []string{"--config", path}, nil)
	if len(c.Warnings) != 0 {
		t.Errorf("example file gives warnings: %q", c.Warnings)
	}
	// Its values are the defaults (apart from the two required settings).
	d := Defaults()
	for _, e := range c.Masked() {
		if e.Name == "SIGNAL_PHONE_NUMBER" || e.Name == "SIGNAL_SERVICE_URL" || e.Name == "SIGNAL_API_URL" || e.Name == "INSTANCE_ID" {
			continue
		}
		if want := d.get(e.Name); e.Value != want && e.Value != maskSecret(want) && e.Value != "(random per process)" {
			t.Errorf("example sets %s=%s, default is %s", e.Name, e.Value, want)
		}
	}

	c = mustLoad(t, RoleWorker, []string{"--config", filepath.Join("..", "..", "config", "minimal.example.yaml")}, nil)
	if c.Redis.URL != "redis://redis:6379/0" || c.Signal.PhoneNumber != "+15551234567" || len(c.Warnings) != 0 {
		t.Errorf("minimal example: url=%q phone=%q warnings=%q", c.Redis.URL, c.Signal.PhoneNumber, c.Warnings)
	}
}

func TestPrintMasksSecrets(t *testing.T) {
	keyFile := writeFile(t, "key", "my-redaction-key-0123456789")
	c := mustLoad(t, RoleIngester, []string{"--print-config", "--signal-api-token=tok-SECRET-1"}, base(map[string]string{
		"REDIS_URL":              "redis://user:url-SECRET-2@redis:6379/0",
		"REDIS_PASSWORD":         "pw-SECRET-3",
		"LOG_REDACTION_KEY_FILE": keyFile,
		"SIGNAL_API_URL":         "https://bot:proxy-SECRET-4@proxy.example",
		"SQLITE_DATABASE":        "x.db",
	}))
	if !c.PrintConfig {
		t.Error("PrintConfig not set by --print-config")
	}
	var b bytes.Buffer
	if err := c.Print(&b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, secret := range []string{"SECRET", "my-redaction-key", "15551234567"} {
		if strings.Contains(out, secret) {
			t.Errorf("--print-config shows %q:\n%s", secret, out)
		}
	}
	for _, line := range []string{
		"SIGNAL_PHONE_NUMBER=+*********67",
		"SIGNAL_API_TOKEN=*****",
		"REDIS_PASSWORD=*****",
		"LOG_REDACTION_KEY=*****",
		"REDIS_URL=redis://user:xxxxx@redis:6379/0",
		"SIGNAL_API_URL=https://bot:xxxxx@proxy.example",
		"# warning: SQLITE_DATABASE has no effect: sqlite storage is not implemented (STORAGE_TYPE is redis)",
		"# env REDIS_PASSWORD\n",
		"# flag --signal-api-token\n",
		"# env LOG_REDACTION_KEY_FILE\n",
		"# default\n",
	} {
		if !strings.Contains(out, line) {
			t.Errorf("--print-config lacks %q:\n%s", line, out)
		}
	}
	if n := strings.Count(out, "\n"); n != len(settings)+2 {
		t.Errorf("--print-config has %d lines, want %d", n, len(settings)+2)
	}
}

func TestHelpAndArgs(t *testing.T) {
	_, err := Load(RoleWorker, []string{"--help"}, nil)
	var he *HelpError
	if !errors.Is(err, ErrHelp) || !errors.As(err, &he) {
		t.Fatalf("--help: %v", err)
	}
	for _, want := range []string{"--redis-url string", "(env REDIS_URL)", "--worker-shard-count int", "(default 64)", "--redis-password-file string", "--print-config", "--config string"} {
		if !strings.Contains(he.Usage, want) {
			t.Errorf("usage lacks %q", want)
		}
	}
	if _, err := Load(RoleWorker, []string{"-h"}, nil); !errors.Is(err, ErrHelp) {
		t.Errorf("-h: %v", err)
	}
	c := mustLoad(t, RoleDLQCtl, []string{"list", "--redis-key-prefix=x", "shard-3"}, nil)
	if d := cmp.Diff([]string{"list", "shard-3"}, c.Args); d != "" || c.Redis.KeyPrefix != "x" {
		t.Errorf("args (-want +got): %s prefix=%q", d, c.Redis.KeyPrefix)
	}
}

func TestLoadParsedWithExtraFlags(t *testing.T) {
	fs := FlagSet(RoleEmulator)
	listen := fs.String("listen", ":8080", "emulator listen address")
	if err := fs.Parse([]string{"--listen=:9999", "--log-level=debug"}); err != nil {
		t.Fatal(err)
	}
	c, err := LoadParsed(RoleEmulator, fs, nil)
	if err != nil || *listen != ":9999" || c.Log.Level != "debug" {
		t.Errorf("listen=%q level=%q err=%v", *listen, c.Log.Level, err)
	}
}

func TestRateLimitBurst(t *testing.T) {
	c := mustLoad(t, RoleIngester, nil, base(map[string]string{"RATE_LIMIT": "120"}))
	if c.RateLimitBurst != 120 {
		t.Errorf("burst = %d, want RATE_LIMIT 120", c.RateLimitBurst)
	}
	c = mustLoad(t, RoleIngester, nil, base(map[string]string{"RATE_LIMIT": "120", "RATE_LIMIT_BURST": "10"}))
	if c.RateLimitBurst != 10 {
		t.Errorf("burst = %d, want 10", c.RateLimitBurst)
	}
}

func TestDocsListEveryVariable(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "..", "docs", "configuration.md"))
	if err != nil {
		t.Fatal(err)
	}
	doc := string(data)
	for _, s := range settings {
		if !strings.Contains(doc, "| `"+s.name+"` `--"+kebab(s.name)+"`") {
			t.Errorf("docs/configuration.md has no table row for %s with flag --%s", s.name, kebab(s.name))
		}
	}
	for _, l := range legacies {
		if !strings.Contains(doc, "`"+l.name+"`") {
			t.Errorf("docs/configuration.md does not mention %s", l.name)
		}
	}
	for _, a := range []string{"DISTRIBUTED_LOCK_TIMEOUT", ConfigFileEnv} {
		if !strings.Contains(doc, "`"+a+"`") {
			t.Errorf("docs/configuration.md does not mention %s", a)
		}
	}
}

func TestAllInOneDefaultsToMemoryWithoutRedis(t *testing.T) {
	base := map[string]string{"SIGNAL_PHONE_NUMBER": "+15551234567", "SIGNAL_SERVICE_URL": "http://localhost:8080"}
	cases := []struct {
		role  string
		extra map[string]string
		want  string
	}{
		{RoleAll, nil, "memory"},
		{RoleAll, map[string]string{"REDIS_URL": "redis://r:6379/0"}, "redis"},
		{RoleAll, map[string]string{"REDIS_HOST": "r"}, "redis"},
		{RoleAll, map[string]string{"STORAGE_TYPE": "redis"}, "redis"},
		{RoleIngester, nil, "redis"},
		{RoleWorker, nil, "redis"},
	}
	for _, c := range cases {
		env := map[string]string{}
		for k, v := range base {
			env[k] = v
		}
		for k, v := range c.extra {
			env[k] = v
		}
		cfg, err := Load(c.role, nil, EnvMap(env))
		if err != nil {
			t.Fatalf("%s %v: %v", c.role, c.extra, err)
		}
		if cfg.StorageType != c.want {
			t.Errorf("%s with %v: STORAGE_TYPE %s, want %s", c.role, c.extra, cfg.StorageType, c.want)
		}
	}
}
