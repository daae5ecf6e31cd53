package preflight

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/signal-client/signal-client/internal/redistest"
)

func about(mode, version string, err error) AboutFunc {
	return func(context.Context) (string, string, error) { return mode, version, err }
}

func TestSignalChecks(t *testing.T) {
	cases := []struct {
		name string
		fn   AboutFunc
		want []Check
	}{
		{"current", about("json-rpc", "0.100", nil), []Check{
			{CheckSignalMode, StatusOK, "signal-cli-rest-api runs in json-rpc mode"},
			{CheckSignalVersion, StatusOK, "signal-cli-rest-api 0.100"},
		}},
		{"0.99 is the floor", about("json-rpc", "0.99", nil), []Check{
			{CheckSignalMode, StatusOK, "signal-cli-rest-api runs in json-rpc mode"},
			{CheckSignalVersion, StatusOK, "signal-cli-rest-api 0.99"},
		}},
		{"v prefix and patch", about("json-rpc", "v0.101.2", nil), []Check{
			{CheckSignalMode, StatusOK, "signal-cli-rest-api runs in json-rpc mode"},
			{CheckSignalVersion, StatusOK, "signal-cli-rest-api v0.101.2"},
		}},
		{"normal mode and old version", about("normal", "0.98", nil), []Check{
			{CheckSignalMode, StatusFail, `signal-cli-rest-api runs in mode "normal", which has no websocket receive: restart it with MODE=json-rpc`},
			{CheckSignalVersion, StatusFail, "signal-cli-rest-api 0.98 is too old: before 0.99 it reports some failed calls as success in json-rpc mode; upgrade to 0.100 or later"},
		}},
		{"native mode, dev build", about("native", "unset", nil), []Check{
			{CheckSignalMode, StatusFail, `signal-cli-rest-api runs in mode "native", which has no websocket receive: restart it with MODE=json-rpc`},
			{CheckSignalVersion, StatusWarn, `signal-cli-rest-api reports version "unset" (a development build), so its version cannot be checked; 0.99 or later is required`},
		}},
		{"unparsable version", about("json-rpc", "latest", nil), []Check{
			{CheckSignalMode, StatusOK, "signal-cli-rest-api runs in json-rpc mode"},
			{CheckSignalVersion, StatusWarn, `cannot parse the signal-cli-rest-api version "latest"; 0.99 or later is required`},
		}},
		{"unreachable", about("", "", errors.New("dial tcp 127.0.0.1:8080: connect: connection refused")), []Check{
			{CheckSignalAPI, StatusFail, "cannot query signal-cli-rest-api (GET /v1/about): dial tcp 127.0.0.1:8080: connect: connection refused; check SIGNAL_API_URL and that signal-cli-rest-api is running"},
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := Run(context.Background(), Inputs{About: tc.fn})
			if d := cmp.Diff(tc.want, r.Checks); d != "" {
				t.Errorf("checks (-want +got):\n%s", d)
			}
		})
	}
}

func TestRedisVersion(t *testing.T) {
	cases := []struct {
		v      string
		status Status
		msg    string
	}{
		{"6.2.14", StatusFail, "Redis 6.2.14 is too old: 7.0 or later is required (XAUTOCLAIM must skip deleted entries); upgrade Redis"},
		{"7.0.4", StatusWarn, "Redis 7.0.4 works, but 7.0.5 or later is recommended (it fixes CVE-2022-35951 in XAUTOCLAIM)"},
		{"7.0.5", StatusOK, "Redis 7.0.5"},
		{"7.2.4", StatusOK, "Redis 7.2.4"},
		{"8.2.0", StatusOK, "Redis 8.2.0"},
		{"", StatusWarn, `cannot parse the Redis version ""; 7.0 or later is required`},
		{"x.y", StatusWarn, `cannot parse the Redis version "x.y"; 7.0 or later is required`},
	}
	for _, tc := range cases {
		want := Check{CheckRedisVersion, tc.status, tc.msg}
		if got := RedisVersion(tc.v); got != want {
			t.Errorf("RedisVersion(%q) = %+v, want %+v", tc.v, got, want)
		}
	}
}

func TestEvictionAndPersistenceRules(t *testing.T) {
	ev := []struct {
		policy string
		want   Check
	}{
		{"noeviction", Check{CheckRedisEviction, StatusOK, "maxmemory-policy is noeviction"}},
		{"allkeys-lru", Check{CheckRedisEviction, StatusFail, "maxmemory-policy is allkeys-lru: Redis may evict stream entries and lose messages; set maxmemory-policy noeviction"}},
		{"allkeys-random", Check{CheckRedisEviction, StatusFail, "maxmemory-policy is allkeys-random: Redis may evict stream entries and lose messages; set maxmemory-policy noeviction"}},
		{"volatile-ttl", Check{CheckRedisEviction, StatusWarn, "maxmemory-policy is volatile-ttl: Redis may evict deduplication keys (they have a TTL) and let duplicates through; noeviction is recommended"}},
		{"weird", Check{CheckRedisEviction, StatusWarn, `maxmemory-policy is "weird", which this check does not know; noeviction is recommended`}},
	}
	for _, tc := range ev {
		if got := Eviction(tc.policy); got != tc.want {
			t.Errorf("Eviction(%q) = %+v", tc.policy, got)
		}
	}
	ps := []struct {
		aof  bool
		save string
		err  error
		want Check
	}{
		{true, "", nil, Check{CheckRedisPersistence, StatusOK, "AOF is on (appendonly yes)"}},
		{false, "3600 1", nil, Check{CheckRedisPersistence, StatusOK, `RDB snapshots only (save "3600 1"); appendonly yes loses fewer writes on a crash`}},
		{false, "", nil, Check{CheckRedisPersistence, StatusWarn, "persistence is off (appendonly no and no RDB save points): a Redis restart loses every queued message; set appendonly yes"}},
		{false, "", errors.New("CONFIG GET save: ERR unknown command"), Check{CheckRedisPersistence, StatusWarn, "AOF is off and the RDB save points cannot be read (CONFIG GET save: ERR unknown command); make sure persistence is on, or a Redis restart loses every queued message"}},
	}
	for _, tc := range ps {
		if got := Persistence(tc.aof, tc.save, tc.err); got != tc.want {
			t.Errorf("Persistence(%v, %q, %v) = %+v", tc.aof, tc.save, tc.err, got)
		}
	}
}

// serverVersion reads the private server's version, so the expected message
// does not depend on the redis-server package installed.
func serverVersion(t *testing.T, c *redis.Client) string {
	t.Helper()
	info, err := c.Info(context.Background(), "server").Result()
	if err != nil {
		t.Fatal(err)
	}
	return infoField(info, "redis_version")
}

func TestRedisAgainstRealServer(t *testing.T) {
	cases := []struct {
		name string
		opts redistest.Options
		want func(version, configErr string) []Check
	}{
		{"defaults: no persistence", redistest.Options{}, func(v, configErr string) []Check {
			return []Check{
				{CheckRedisVersion, StatusOK, "Redis " + v},
				{CheckRedisEviction, StatusOK, "maxmemory-policy is noeviction"},
				{CheckRedisPersistence, StatusWarn, "persistence is off (appendonly no and no RDB save points): a Redis restart loses every queued message; set appendonly yes"},
			}
		}},
		{"aof on", redistest.Options{AOF: true}, func(v, configErr string) []Check {
			return []Check{
				{CheckRedisVersion, StatusOK, "Redis " + v},
				{CheckRedisEviction, StatusOK, "maxmemory-policy is noeviction"},
				{CheckRedisPersistence, StatusOK, "AOF is on (appendonly yes)"},
			}
		}},
		{"rdb only", redistest.Options{Args: []string{"--save", "3600 1"}}, func(v, configErr string) []Check {
			return []Check{
				{CheckRedisVersion, StatusOK, "Redis " + v},
				{CheckRedisEviction, StatusOK, "maxmemory-policy is noeviction"},
				{CheckRedisPersistence, StatusOK, `RDB snapshots only (save "3600 1"); appendonly yes loses fewer writes on a crash`},
			}
		}},
		{"allkeys-lru", redistest.Options{AOF: true, MaxMemoryPolicy: "allkeys-lru"}, func(v, configErr string) []Check {
			return []Check{
				{CheckRedisVersion, StatusOK, "Redis " + v},
				{CheckRedisEviction, StatusFail, "maxmemory-policy is allkeys-lru: Redis may evict stream entries and lose messages; set maxmemory-policy noeviction"},
				{CheckRedisPersistence, StatusOK, "AOF is on (appendonly yes)"},
			}
		}},
		{"volatile-lru", redistest.Options{AOF: true, MaxMemoryPolicy: "volatile-lru"}, func(v, configErr string) []Check {
			return []Check{
				{CheckRedisVersion, StatusOK, "Redis " + v},
				{CheckRedisEviction, StatusWarn, "maxmemory-policy is volatile-lru: Redis may evict deduplication keys (they have a TTL) and let duplicates through; noeviction is recommended"},
				{CheckRedisPersistence, StatusOK, "AOF is on (appendonly yes)"},
			}
		}},
		// Managed Redis often disables CONFIG: the policy still comes from
		// INFO, the save points cannot be read, which warns and does not fail.
		{"config disabled", redistest.Options{Args: []string{"--rename-command", "CONFIG", ""}}, func(v, configErr string) []Check {
			return []Check{
				{CheckRedisVersion, StatusOK, "Redis " + v},
				{CheckRedisEviction, StatusOK, "maxmemory-policy is noeviction"},
				{CheckRedisPersistence, StatusWarn, "AOF is off and the RDB save points cannot be read (CONFIG GET save: " + configErr + "); make sure persistence is on, or a Redis restart loses every queued message"},
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := redistest.MustStart(t, tc.opts)
			c := srv.Client()
			defer c.Close()
			r := Run(context.Background(), Inputs{Redis: c})
			// The server's own refusal text varies between Redis versions.
			configErr := ""
			if err := c.ConfigGet(context.Background(), "save").Err(); err != nil {
				configErr = err.Error()
			}
			if (configErr != "") != (tc.name == "config disabled") {
				t.Fatalf("CONFIG GET save error %q in case %q", configErr, tc.name)
			}
			if d := cmp.Diff(tc.want(serverVersion(t, c), configErr), r.Checks); d != "" {
				t.Errorf("checks (-want +got):\n%s", d)
			}
		})
	}
}

func TestRedisUnreachable(t *testing.T) {
	srv := redistest.MustStart(t, redistest.Options{})
	addr := srv.Addr
	srv.Kill()
	c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
	defer c.Close()
	r := Run(context.Background(), Inputs{Redis: c})
	want := []Check{{CheckRedis, StatusFail, fmt.Sprintf(
		"cannot query Redis (INFO): dial tcp %s: connect: connection refused; check REDIS_URL (or REDIS_HOST and REDIS_PORT), REDIS_PASSWORD and that Redis is running", addr)}}
	if d := cmp.Diff(want, r.Checks); d != "" {
		t.Errorf("checks (-want +got):\n%s", d)
	}
	if r.OK() {
		t.Error("OK() with a failed check")
	}
}

func TestReportSummaryAndLog(t *testing.T) {
	ok := Report{Checks: []Check{{CheckSignalMode, StatusOK, "m"}, {CheckRedisVersion, StatusOK, "v"}}}
	warned := Report{Checks: []Check{{CheckSignalMode, StatusOK, "m"}, {CheckRedisPersistence, StatusWarn, "persistence is off"}}}
	failed := Report{Checks: []Check{
		{CheckSignalMode, StatusFail, "use MODE=json-rpc"},
		{CheckRedisPersistence, StatusWarn, "persistence is off"},
		{CheckRedisEviction, StatusFail, "allkeys-lru"},
	}}
	cases := []struct {
		r       Report
		ok      bool
		summary string
		level   zapcore.Level
	}{
		{ok, true, "preflight ok: 2 checks passed", zapcore.InfoLevel},
		{warned, true, "preflight ok with warnings: [warn] redis-persistence: persistence is off", zapcore.WarnLevel},
		{failed, false, "preflight failed: [fail] signal-mode: use MODE=json-rpc; [fail] redis-eviction: allkeys-lru; [warn] redis-persistence: persistence is off", zapcore.ErrorLevel},
	}
	for _, tc := range cases {
		if tc.r.OK() != tc.ok || tc.r.Summary() != tc.summary {
			t.Errorf("OK()=%v Summary()=%q; want %v %q", tc.r.OK(), tc.r.Summary(), tc.ok, tc.summary)
		}
		var buf bytes.Buffer
		core := zapcore.NewCore(zapcore.NewJSONEncoder(zapcore.EncoderConfig{MessageKey: "msg", LevelKey: "level", EncodeLevel: zapcore.LowercaseLevelEncoder}),
			zapcore.AddSync(&buf), zapcore.DebugLevel)
		Log(zap.New(core), tc.r)
		lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
		if len(lines) != 1 {
			t.Fatalf("Log wrote %d lines, want 1: %s", len(lines), buf.String())
		}
		var line struct {
			Level  string
			Msg    string
			OK     bool
			Checks []map[string]string
		}
		if err := json.Unmarshal([]byte(lines[0]), &line); err != nil {
			t.Fatal(err)
		}
		if line.Level != tc.level.String() || line.Msg != tc.summary || line.OK != tc.ok || len(line.Checks) != len(tc.r.Checks) {
			t.Errorf("log line %s", lines[0])
		}
		if line.Checks[0]["check"] != tc.r.Checks[0].Name || line.Checks[0]["status"] != string(tc.r.Checks[0].Status) {
			t.Errorf("checks field %v", line.Checks)
		}
	}
	// The report serialises for /ready.
	b, err := json.Marshal(warned)
	if err != nil || string(b) != `{"checks":[{"name":"signal-mode","status":"ok","message":"m"},{"name":"redis-persistence","status":"warn","message":"persistence is off"}]}` {
		t.Errorf("json %s %v", b, err)
	}
	Log(nil, failed) // a nil logger is allowed
}

func TestRunBoth(t *testing.T) {
	srv := redistest.MustStart(t, redistest.Options{AOF: true})
	c := srv.Client()
	defer c.Close()
	r := Run(context.Background(), Inputs{About: about("json-rpc", "0.100", nil), Redis: c})
	var names []string
	for _, ch := range r.Checks {
		names = append(names, ch.Name)
	}
	want := []string{CheckSignalMode, CheckSignalVersion, CheckRedisVersion, CheckRedisEviction, CheckRedisPersistence}
	if d := cmp.Diff(want, names); d != "" || !r.OK() || len(r.Warnings()) != 0 {
		t.Errorf("names (-want +got): %s; summary %s", d, r.Summary())
	}
	if got := r.Summary(); got != "preflight ok: 5 checks passed" {
		t.Errorf("summary %q", got)
	}
	// No inputs, no checks.
	if r := Run(context.Background(), Inputs{}); len(r.Checks) != 0 || !r.OK() {
		t.Errorf("empty inputs: %+v", r)
	}
}
