// Package preflight runs the start-up checks every binary shares: that
// signal-cli-rest-api runs in json-rpc mode with a version that reports
// failures (≥ 0.99), and that Redis is ≥ 7.0 with a memory policy that cannot
// evict stream entries. Its Report feeds /ready and one log line.
//
// Why these rules: only json-rpc mode has the websocket receive (ref
// signal-cli-rest-api §1); before 0.99 several calls answered 204 when
// signal-cli failed (ref §0, §7.15); XAUTOCLAIM skips deleted entries only
// from Redis 7.0 and 7.0.5 fixes CVE-2022-35951 (ref redis-streams-peers §1);
// an allkeys-* policy may evict the streams themselves, a volatile-* policy
// the dedup keys (which have a TTL), letting duplicates through.
package preflight

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// Status of one check.
type Status string

const (
	StatusOK   Status = "ok"
	StatusWarn Status = "warn" // works, but an operator should act
	StatusFail Status = "fail" // the binary must not run like this
)

// Names of the checks, in the order Run reports them.
const (
	CheckSignalAPI        = "signal-api"        // GET /v1/about failed; mode and version not checked
	CheckSignalMode       = "signal-mode"       // MODE=json-rpc
	CheckSignalVersion    = "signal-version"    // ≥ 0.99
	CheckRedis            = "redis"             // INFO failed; nothing else checked
	CheckRedisVersion     = "redis-version"     // ≥ 7.0, ≥ 7.0.5 recommended
	CheckRedisEviction    = "redis-eviction"    // maxmemory-policy
	CheckRedisPersistence = "redis-persistence" // AOF or RDB save points
)

// Check is the outcome of one check. Messages hold versions and settings
// only, never ids or numbers.
type Check struct {
	Name    string `json:"name"`
	Status  Status `json:"status"`
	Message string `json:"message"`
}

// Report is the outcome of Run.
type Report struct {
	Checks []Check `json:"checks"`
}

// OK is true when no check failed (warnings allowed).
func (r Report) OK() bool { return len(r.Failed()) == 0 }

// Failed lists the failed checks.
func (r Report) Failed() []Check { return r.with(StatusFail) }

// Warnings lists the checks that passed with a warning.
func (r Report) Warnings() []Check { return r.with(StatusWarn) }

func (r Report) with(s Status) []Check {
	var out []Check
	for _, c := range r.Checks {
		if c.Status == s {
			out = append(out, c)
		}
	}
	return out
}

// Summary is one line: "preflight ok: 6 checks passed", or the failed and
// warned checks with their messages, failures first.
func (r Report) Summary() string {
	fails, warns := r.Failed(), r.Warnings()
	var parts []string
	for _, c := range fails {
		parts = append(parts, "[fail] "+c.Name+": "+c.Message)
	}
	for _, c := range warns {
		parts = append(parts, "[warn] "+c.Name+": "+c.Message)
	}
	switch {
	case len(fails) > 0:
		return "preflight failed: " + strings.Join(parts, "; ")
	case len(warns) > 0:
		return "preflight ok with warnings: " + strings.Join(parts, "; ")
	}
	return fmt.Sprintf("preflight ok: %d checks passed", len(r.Checks))
}

// Log writes the report as one line: error level when a check failed, warn
// when one warned, info otherwise. The checks are attached as a field for
// machines; the message alone tells an operator what to do.
func Log(logger *zap.Logger, r Report) {
	if logger == nil {
		return
	}
	fields := []zap.Field{zap.Bool("ok", r.OK()), zap.Array("checks", checkList(r.Checks))}
	switch {
	case !r.OK():
		logger.Error(r.Summary(), fields...)
	case len(r.Warnings()) > 0:
		logger.Warn(r.Summary(), fields...)
	default:
		logger.Info(r.Summary(), fields...)
	}
}

type checkList []Check

func (l checkList) MarshalLogArray(enc zapcore.ArrayEncoder) error {
	for _, c := range l {
		if err := enc.AppendObject(zapcore.ObjectMarshalerFunc(func(o zapcore.ObjectEncoder) error {
			o.AddString("check", c.Name)
			o.AddString("status", string(c.Status))
			o.AddString("detail", c.Message)
			return nil
		})); err != nil {
			return err
		}
	}
	return nil
}

// AboutFunc asks signal-cli-rest-api GET /v1/about for its mode and version;
// an adapter wraps the REST client's About.
type AboutFunc func(ctx context.Context) (mode, version string, err error)

// Inputs are what Run checks; a nil input skips its checks (dlqctl has no
// REST side, the emulator and memory storage no Redis).
type Inputs struct {
	About AboutFunc
	Redis redis.UniversalClient
}

// DefaultTimeout bounds Run when ctx has no deadline, so a start never hangs
// on an unreachable dependency.
const DefaultTimeout = 10 * time.Second

// Run performs the checks and never fails itself: every problem is a Check.
func Run(ctx context.Context, in Inputs) Report {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultTimeout)
		defer cancel()
	}
	var r Report
	if in.About != nil {
		r.Checks = append(r.Checks, checkSignal(ctx, in.About)...)
	}
	if in.Redis != nil {
		r.Checks = append(r.Checks, checkRedis(ctx, in.Redis)...)
	}
	return r
}

func checkSignal(ctx context.Context, about AboutFunc) []Check {
	mode, version, err := about(ctx)
	if err != nil {
		return []Check{{CheckSignalAPI, StatusFail, fmt.Sprintf(
			"cannot query signal-cli-rest-api (GET /v1/about): %v; check SIGNAL_API_URL and that signal-cli-rest-api is running", err)}}
	}
	return []Check{SignalMode(mode), SignalVersion(version)}
}

// SignalMode judges the mode /v1/about reports (json-rpc-native reports
// "json-rpc" too).
func SignalMode(mode string) Check {
	if mode == "json-rpc" {
		return Check{CheckSignalMode, StatusOK, "signal-cli-rest-api runs in json-rpc mode"}
	}
	return Check{CheckSignalMode, StatusFail, fmt.Sprintf(
		"signal-cli-rest-api runs in mode %q, which has no websocket receive: restart it with MODE=json-rpc", mode)}
}

// SignalVersion judges the version /v1/about reports.
func SignalVersion(v string) Check {
	if v == "unset" {
		return Check{CheckSignalVersion, StatusWarn,
			`signal-cli-rest-api reports version "unset" (a development build), so its version cannot be checked; 0.99 or later is required`}
	}
	n, ok := parseVersion(v)
	if !ok {
		return Check{CheckSignalVersion, StatusWarn, fmt.Sprintf(
			"cannot parse the signal-cli-rest-api version %q; 0.99 or later is required", v)}
	}
	if compare(n, []int{0, 99}) < 0 {
		return Check{CheckSignalVersion, StatusFail, fmt.Sprintf(
			"signal-cli-rest-api %s is too old: before 0.99 it reports some failed calls as success in json-rpc mode; upgrade to 0.100 or later", v)}
	}
	return Check{CheckSignalVersion, StatusOK, "signal-cli-rest-api " + v}
}

func checkRedis(ctx context.Context, c redis.UniversalClient) []Check {
	server, err := c.Info(ctx, "server").Result()
	if err != nil {
		return []Check{{CheckRedis, StatusFail, fmt.Sprintf(
			"cannot query Redis (INFO): %v; check REDIS_URL (or REDIS_HOST and REDIS_PORT), REDIS_PASSWORD and that Redis is running", err)}}
	}
	checks := []Check{RedisVersion(infoField(server, "redis_version"))}

	// INFO memory works where CONFIG is disabled (managed Redis); CONFIG GET
	// is the fallback for servers whose INFO lacks the field.
	policy, perr := "", error(nil)
	if mem, err := c.Info(ctx, "memory").Result(); err == nil {
		policy = infoField(mem, "maxmemory_policy")
	} else {
		perr = err
	}
	if policy == "" {
		policy, perr = configGet(ctx, c, "maxmemory-policy")
	}
	if perr != nil {
		checks = append(checks, Check{CheckRedisEviction, StatusWarn, fmt.Sprintf(
			"cannot read maxmemory-policy (%v); make sure it is noeviction", perr)})
	} else {
		checks = append(checks, Eviction(policy))
	}

	aof := false
	pers, err := c.Info(ctx, "persistence").Result()
	if err == nil {
		aof = infoField(pers, "aof_enabled") == "1"
	}
	save, serr := "", error(nil)
	if !aof {
		save, serr = configGet(ctx, c, "save")
	}
	checks = append(checks, Persistence(aof, save, serr))
	return checks
}

// RedisVersion judges the redis_version of INFO server.
func RedisVersion(v string) Check {
	n, ok := parseVersion(v)
	switch {
	case !ok:
		return Check{CheckRedisVersion, StatusWarn, fmt.Sprintf("cannot parse the Redis version %q; 7.0 or later is required", v)}
	case compare(n, []int{7, 0}) < 0:
		return Check{CheckRedisVersion, StatusFail, fmt.Sprintf(
			"Redis %s is too old: 7.0 or later is required (XAUTOCLAIM must skip deleted entries); upgrade Redis", v)}
	case compare(n, []int{7, 0, 5}) < 0:
		return Check{CheckRedisVersion, StatusWarn, fmt.Sprintf(
			"Redis %s works, but 7.0.5 or later is recommended (it fixes CVE-2022-35951 in XAUTOCLAIM)", v)}
	}
	return Check{CheckRedisVersion, StatusOK, "Redis " + v}
}

// Eviction judges maxmemory-policy.
func Eviction(policy string) Check {
	switch {
	case policy == "noeviction":
		return Check{CheckRedisEviction, StatusOK, "maxmemory-policy is noeviction"}
	case strings.HasPrefix(policy, "allkeys-"):
		return Check{CheckRedisEviction, StatusFail, fmt.Sprintf(
			"maxmemory-policy is %s: Redis may evict stream entries and lose messages; set maxmemory-policy noeviction", policy)}
	case strings.HasPrefix(policy, "volatile-"):
		return Check{CheckRedisEviction, StatusWarn, fmt.Sprintf(
			"maxmemory-policy is %s: Redis may evict deduplication keys (they have a TTL) and let duplicates through; noeviction is recommended", policy)}
	}
	return Check{CheckRedisEviction, StatusWarn, fmt.Sprintf(
		"maxmemory-policy is %q, which this check does not know; noeviction is recommended", policy)}
}

// Persistence judges AOF and the RDB save points (readErr: CONFIG GET save
// failed, e.g. disabled on managed Redis).
func Persistence(aof bool, save string, readErr error) Check {
	switch {
	case aof:
		return Check{CheckRedisPersistence, StatusOK, "AOF is on (appendonly yes)"}
	case readErr != nil:
		return Check{CheckRedisPersistence, StatusWarn, fmt.Sprintf(
			"AOF is off and the RDB save points cannot be read (%v); make sure persistence is on, or a Redis restart loses every queued message", readErr)}
	case strings.TrimSpace(save) != "":
		return Check{CheckRedisPersistence, StatusOK, fmt.Sprintf(
			"RDB snapshots only (save %q); appendonly yes loses fewer writes on a crash", save)}
	}
	return Check{CheckRedisPersistence, StatusWarn,
		"persistence is off (appendonly no and no RDB save points): a Redis restart loses every queued message; set appendonly yes"}
}

func configGet(ctx context.Context, c redis.UniversalClient, name string) (string, error) {
	m, err := c.ConfigGet(ctx, name).Result()
	if err != nil {
		return "", fmt.Errorf("CONFIG GET %s: %w", name, err)
	}
	v, ok := m[name]
	if !ok {
		return "", fmt.Errorf("CONFIG GET %s: no such setting", name)
	}
	return v, nil
}

// infoField reads "name:value" from an INFO section.
func infoField(info, name string) string {
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimRight(line, "\r"), name+":"); ok {
			return v
		}
	}
	return ""
}

// parseVersion reads "0.100", "v0.100", "7.0.15" or "7.2.4-rc1" as numbers
// per part (so 0.100 > 0.99).
func parseVersion(s string) ([]int, bool) {
	s = strings.TrimPrefix(strings.TrimSpace(s), "v")
	if s == "" {
		return nil, false
	}
	if i := strings.IndexAny(s, "-+ "); i >= 0 {
		s = s[:i]
	}
	var out []int
	for _, p := range strings.Split(s, ".") {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 {
			return nil, false
		}
		out = append(out, n)
	}
	return out, true
}

func compare(a, b []int) int {
	for i := 0; i < max(len(a), len(b)); i++ {
		var x, y int
		if i < len(a) {
			x = a[i]
		}
		if i < len(b) {
			y = b[i]
		}
		if x != y {
			if x < y {
				return -1
			}
			return 1
		}
	}
	return 0
}
