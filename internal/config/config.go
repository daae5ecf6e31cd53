// Package config loads the settings every signal-client binary shares.
//
// Precedence, highest first: command-line flags, environment variables, the
// YAML config file (--config or SIGNAL_CLIENT_CONFIG, read through viper),
// defaults. The names are those of the Python original's operations page
// where a setting carries over (see docs/configuration.md for what changed);
// the environment is passed in as a lookup function so tests never touch the
// process environment.
//
// A wrong value is refused with one line naming the variable, the value and
// what is expected (*Error); a value this design cannot honour is refused, never
// replaced by a fallback; a Python-only variable is an alias, refused with a
// hint, or accepted with a warning in Config.Warnings.
package config

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"
)

// Roles: the binaries that call Load. The role decides which settings are
// required and whether STORAGE_TYPE=memory makes sense.
const (
	RoleIngester = "ingester"      // holds the websocket, appends to the streams
	RoleWorker   = "worker"        // consumes the streams, runs handlers
	RoleAll      = "signal-client" // all-in-one: ingester and worker in one process
	RoleDLQCtl   = "dlqctl"        // operator tool for the dead-letter queue
	RoleEmulator = "emulator"      // local signal-cli-rest-api stand-in; no Redis
)

// Roles lists every role Load accepts.
var Roles = []string{RoleIngester, RoleWorker, RoleAll, RoleDLQCtl, RoleEmulator}

// ConfigFileEnv names the config file when --config is not given.
const ConfigFileEnv = "SIGNAL_CLIENT_CONFIG"

// LookupFunc reads one environment variable; os.LookupEnv fits.
type LookupFunc func(name string) (string, bool)

// EnvMap is a LookupFunc over a map, for tests and embedding.
func EnvMap(m map[string]string) LookupFunc {
	return func(name string) (string, bool) {
		v, ok := m[name]
		return v, ok
	}
}

// Config is the effective configuration of one process. Durations and
// counts are already parsed and checked; the comment of each field names its
// environment variable.
type Config struct {
	Role        string   // the binary's role (RoleIngester, ...)
	ConfigFile  string   // --config / SIGNAL_CLIENT_CONFIG; "" when none
	PrintConfig bool     // --print-config was given: print Print() and exit 0
	Args        []string // positional arguments left after the flags

	Signal Signal

	StorageType    string // STORAGE_TYPE: "redis" or "memory"
	SQLiteDatabase string // SQLITE_DATABASE: accepted only to warn that it has no effect
	// MemoryStoreAddr is where the embedded store of STORAGE_TYPE=memory listens (MEMORY_STORE_ADDR).
	MemoryStoreAddr string

	Redis Redis

	WorkerShardCount     int           // WORKER_SHARD_COUNT
	ShardLeaseTTL        time.Duration // SHARD_LEASE_TTL
	QueueSize            int           // QUEUE_SIZE
	WorkerPoolSize       int           // WORKER_POOL_SIZE
	HandlerTimeout       time.Duration // HANDLER_TIMEOUT
	ClaimMinIdle         time.Duration // CLAIM_MIN_IDLE
	RetryBackoffBase     time.Duration // RETRY_BACKOFF_BASE
	RetryBackoffMax      time.Duration // RETRY_BACKOFF_MAX
	DLQMaxRetries        int           // DLQ_MAX_RETRIES: parked after 1 + DLQMaxRetries attempts
	DLQMaxLen            int           // DLQ_MAX_LEN
	StreamMaxLen         int           // STREAM_MAX_LEN
	StreamRetention      time.Duration // STREAM_RETENTION
	DedupWindow          time.Duration // DEDUP_WINDOW
	RepairDelay          time.Duration // REPAIR_DELAY
	LockTTL              time.Duration // LOCK_TTL_SECONDS (alias DISTRIBUTED_LOCK_TIMEOUT)
	AckBatchMax          int           // ACK_BATCH_MAX
	AckBatchWindow       time.Duration // ACK_BATCH_WINDOW
	DLQRetention         time.Duration // DLQ_RETENTION
	QuarantineMaxLen     int           // QUARANTINE_MAX_LEN
	QuarantineRetention  time.Duration // QUARANTINE_RETENTION
	MaxFrameBytes        int           // MAX_FRAME_BYTES
	TrimInterval         time.Duration // TRIM_INTERVAL
	HeartbeatInterval    time.Duration // HEARTBEAT_INTERVAL
	SentRecordTTL        time.Duration // SENT_RECORD_TTL
	UnknownOutcomePolicy string        // UNKNOWN_OUTCOME_POLICY: "skip" or "resend"
	ShutdownTimeout      time.Duration // SHUTDOWN_TIMEOUT
	DurableQueueEnabled  bool          // DURABLE_QUEUE_ENABLED: the ingester's outage spool
	SpoolDir             string        // SPOOL_DIR

	RateLimit         int           // RATE_LIMIT per RateLimitPeriod; 0 = off
	RateLimitPeriod   time.Duration // RATE_LIMIT_PERIOD
	RateLimitBurst    int           // RATE_LIMIT_BURST; RateLimit when not set
	RateLimit429Pause time.Duration // RATE_LIMIT_429_PAUSE

	CircuitBreaker CircuitBreaker
	Log            Log

	HealthAddr  string // HEALTH_ADDR
	HealthPort  int    // HEALTH_PORT
	MetricsAddr string // METRICS_ADDR
	MetricsPort int    // METRICS_PORT
	DebugPprof  bool   // DEBUG_PPROF: /debug/pprof/ on the metrics server
	InstanceID  string // INSTANCE_ID; hostname-pid when not set

	// Warnings are accepted settings that have no effect; log each at warn
	// level once the logger exists.
	Warnings []string

	origins map[string]string // setting name → where its value came from
}

// Signal is how to reach signal-cli-rest-api.
type Signal struct {
	PhoneNumber    string        // SIGNAL_PHONE_NUMBER (E.164)
	ServiceURL     string        // SIGNAL_SERVICE_URL, normalized to an http(s) base URL
	APIURL         string        // SIGNAL_API_URL, normalized to an http(s) base URL
	APIToken       string        // SIGNAL_API_TOKEN (secret)
	AuthScheme     string        // API_AUTH_SCHEME
	Timeout        time.Duration // API_TIMEOUT
	MaxConcurrency int           // API_MAX_CONCURRENCY, cluster-wide
	WSPath         string        // SIGNAL_WS_PATH, with {phone_number}
}

// Redis is how to reach Redis; RedisOptions turns it into go-redis options.
type Redis struct {
	URL                   string // REDIS_URL; wins over Host and Port
	Host                  string // REDIS_HOST
	Port                  int    // REDIS_PORT
	DB                    int    // REDIS_DB
	Username              string // REDIS_USERNAME
	Password              string // REDIS_PASSWORD (secret)
	TLSEnabled            bool   // REDIS_TLS_ENABLED
	TLSCAFile             string // REDIS_TLS_CA_FILE
	TLSCertFile           string // REDIS_TLS_CERT_FILE
	TLSKeyFile            string // REDIS_TLS_KEY_FILE
	TLSInsecureSkipVerify bool   // REDIS_TLS_INSECURE_SKIP_VERIFY
	TLSServerName         string // REDIS_TLS_SERVER_NAME
	KeyPrefix             string // REDIS_KEY_PREFIX
}

// CircuitBreaker guards each REST endpoint.
type CircuitBreaker struct {
	FailureThreshold       int           // CIRCUIT_BREAKER_FAILURE_THRESHOLD
	ResetTimeout           time.Duration // CIRCUIT_BREAKER_RESET_TIMEOUT
	FailureRateThreshold   float64       // CIRCUIT_BREAKER_FAILURE_RATE_THRESHOLD
	MinRequestsForRateCalc int           // CIRCUIT_BREAKER_MIN_REQUESTS_FOR_RATE_CALC
}

// Log configures internal/logging.
type Log struct {
	Level            string // LOG_LEVEL
	Format           string // LOG_FORMAT: json or console
	RedactionEnabled bool   // LOG_REDACTION_ENABLED
	RedactionKey     string // LOG_REDACTION_KEY (secret); "" = random per process
}

// WebsocketURL is the receive websocket: ServiceURL with a ws(s) scheme and
// SIGNAL_WS_PATH filled in with the phone number.
func (c *Config) WebsocketURL() string {
	base := c.Signal.ServiceURL
	switch {
	case strings.HasPrefix(base, "https://"):
		base = "wss://" + strings.TrimPrefix(base, "https://")
	case strings.HasPrefix(base, "http://"):
		base = "ws://" + strings.TrimPrefix(base, "http://")
	}
	return base + strings.ReplaceAll(c.Signal.WSPath, "{phone_number}", c.Signal.PhoneNumber)
}

// HealthListenAddr is host:port of the health server.
func (c *Config) HealthListenAddr() string {
	return net.JoinHostPort(c.HealthAddr, strconv.Itoa(c.HealthPort))
}

// MetricsListenAddr is host:port of the metrics server.
func (c *Config) MetricsListenAddr() string {
	return net.JoinHostPort(c.MetricsAddr, strconv.Itoa(c.MetricsPort))
}

// Defaults returns the configuration with every default applied and no
// role checks: a base for tests and embedding. Its InstanceID is
// hostname-pid.
func Defaults() *Config {
	c := &Config{origins: map[string]string{}}
	for i := range settings {
		s := &settings[i]
		if !s.set(c, s.def) {
			panic("config: default of " + s.name + " is invalid") // caught by TestDefaults
		}
		c.origins[s.name] = "default"
	}
	c.InstanceID = defaultInstanceID()
	c.RateLimitBurst = c.RateLimit
	return c
}

func defaultInstanceID() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		h = "unknown"
	}
	h = strings.Map(func(r rune) rune {
		if r < 128 && instanceRe.MatchString(string(r)) {
			return r
		}
		return '-'
	}, h)
	if len(h) > 100 {
		h = h[:100]
	}
	return h + "-" + strconv.Itoa(os.Getpid())
}

// FlagSet returns a fresh flag set with every setting as a kebab-case flag
// (REDIS_URL → --redis-url, secrets also --redis-password-file), plus
// --config and --print-config. A binary that needs flags of its own adds them
// before parsing and then calls LoadParsed.
func FlagSet(role string) *pflag.FlagSet {
	fs := pflag.NewFlagSet(role, pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	fs.SortFlags = false
	fs.String("config", "", "YAML config file (env "+ConfigFileEnv+")")
	fs.Bool("print-config", false, "print the effective configuration with secrets masked, then exit")
	for _, s := range settings {
		def := s.def
		if s.derived != "" {
			def = ""
		}
		help := s.help + " (env " + s.name + ")"
		if s.derived != "" {
			help += " (default: " + s.derived + ")"
		}
		typ := s.typ
		if typ == "" {
			typ = "string"
		}
		fs.Var(&flagValue{v: def, typ: typ}, kebab(s.name), help)
		if s.isBool {
			fs.Lookup(kebab(s.name)).NoOptDefVal = "true"
		}
		if s.fileForm {
			fs.String(kebab(s.name)+"-file", "", "file holding "+s.name+" (env "+s.name+"_FILE)")
		}
	}
	return fs
}

// flagValue keeps a flag's text as given: every value goes through the same
// parser as the environment, so a flag is refused with the same message. Its
// type name only decorates --help.
type flagValue struct{ v, typ string }

func (f *flagValue) String() string     { return f.v }
func (f *flagValue) Set(s string) error { f.v = s; return nil }
func (f *flagValue) Type() string       { return f.typ }

// Usage is the --help text of a role.
func Usage(role string) string {
	return usage(role, FlagSet(role))
}

func usage(role string, fs *pflag.FlagSet) string {
	return "Usage of " + role + " (flags > environment > config file > defaults; see docs/configuration.md):\n" + fs.FlagUsages()
}

// Load parses args with FlagSet(role) and builds the configuration from the
// flags, env, the config file and the defaults. --help returns a *HelpError
// (errors.Is(err, ErrHelp)); a refused value returns an *Error.
func Load(role string, args []string, env LookupFunc) (*Config, error) {
	fs := FlagSet(role)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return nil, &HelpError{Usage: usage(role, fs)}
		}
		return nil, flagError(err)
	}
	return LoadParsed(role, fs, env)
}

// source is where one raw value was found.
type source struct {
	raw    string
	name   string // the name actually used: NAME, NAME_FILE or an alias
	origin string // Error.Source form: "--flag", "env" or the file path
	layer  string // "flag", "env" or "file"
	// viaFile: name is the NAME_FILE form and raw is the path of the file
	// holding the value.
	viaFile bool
}

func (s source) describe() string {
	switch s.layer {
	case "flag":
		return "flag " + s.origin
	case "env":
		return "env " + s.name
	}
	return "file " + s.origin + " (" + strings.ToLower(s.name) + ")"
}

// LoadParsed builds the configuration from a flag set made by FlagSet(role)
// that the caller has already parsed.
func LoadParsed(role string, fs *pflag.FlagSet, env LookupFunc) (*Config, error) {
	if !slices.Contains(Roles, role) {
		return nil, fmt.Errorf("config: unknown role %q: expected one of %s", role, strings.Join(Roles, ", "))
	}
	if env == nil {
		env = EnvMap(nil)
	}
	c := Defaults()
	c.Role = role
	c.Args = fs.Args()
	c.PrintConfig, _ = fs.GetBool("print-config")

	if err := checkLowerCaseEnv(env); err != nil {
		return nil, err
	}

	// The config file.
	file := map[string]string{}
	if f := fs.Lookup("config"); f != nil && f.Changed {
		c.ConfigFile = f.Value.String()
	} else if p, ok := env(ConfigFileEnv); ok && p != "" {
		c.ConfigFile = p
	}
	if c.ConfigFile != "" {
		var err error
		if file, err = readFile(c.ConfigFile); err != nil {
			return nil, err
		}
		if err := checkFileKeys(c.ConfigFile, file); err != nil {
			return nil, err
		}
	}

	layers := []layer{
		{"flag", func(name string) (string, string, bool) {
			f := fs.Lookup(kebab(name))
			if f == nil || !f.Changed {
				return "", "", false
			}
			return f.Value.String(), "--" + f.Name, true
		}},
		{"env", func(name string) (string, string, bool) {
			v, ok := env(name)
			return v, "env", ok
		}},
		{"file", func(name string) (string, string, bool) {
			v, ok := file[strings.ToLower(name)]
			return v, c.ConfigFile, ok
		}},
	}
	for i := range settings {
		if err := c.load(&settings[i], layers); err != nil {
			return nil, err
		}
	}

	if err := c.finish(); err != nil {
		return nil, err
	}
	if err := c.checkLegacy(env, file); err != nil {
		return nil, err
	}
	return c, nil
}

// layer is one source of raw values, highest precedence first.
type layer struct {
	name   string                                            // "flag", "env" or "file"
	lookup func(name string) (value, origin string, ok bool) // by environment variable name
}

// load sets one setting from the highest layer that has it. Within a layer,
// the name, its aliases and its NAME_FILE form are alternatives: two of them
// at once is refused, as nobody could tell which one was meant.
func (c *Config) load(s *spec, layers []layer) error {
	names := append([]string{s.name}, s.aliases...)
	if s.fileForm {
		names = append(names, s.name+"_FILE")
	}
	for _, l := range layers {
		var found []source
		for _, n := range names {
			if v, origin, ok := l.lookup(n); ok {
				found = append(found, source{raw: v, name: n, origin: origin, layer: l.name, viaFile: s.fileForm && n == s.name+"_FILE"})
			}
		}
		switch len(found) {
		case 0:
			continue
		case 1:
		default:
			return &Error{
				Variable: found[1].name, Value: shown(s, found[1]), Secret: s.secret && !found[1].viaFile,
				Source:   found[1].origin,
				Expected: found[0].name + " to be unset: set only one of " + strings.Join(names, " and "),
			}
		}
		src := found[0]
		raw := src.raw
		if src.viaFile {
			b, err := os.ReadFile(strings.TrimSpace(raw))
			if err != nil {
				return &Error{Variable: src.name, Value: raw, Source: src.origin, Expected: "a readable file holding " + s.name, Err: err}
			}
			raw = strings.TrimRight(string(b), "\r\n")
			if raw == "" {
				return &Error{Variable: src.name, Value: src.raw, Source: src.origin, Expected: "a file holding " + s.name + " (the file is empty)"}
			}
		}
		if !s.set(c, raw) {
			if src.viaFile {
				// The path is not secret; the content may be.
				return &Error{Variable: src.name, Value: src.raw, Source: src.origin, Expected: "a file holding " + s.expected}
			}
			e := &Error{Variable: src.name, Value: raw, Source: src.origin, Expected: s.expected, Secret: s.secret}
			if s.show != nil && !s.secret {
				e.Value = s.show(raw)
			}
			return e
		}
		c.origins[s.name] = src.describe()
		return nil
	}
	return nil
}

// shown is the value to print in an error about two forms of one setting:
// a file path as is, a secret not at all.
func shown(s *spec, src source) string {
	switch {
	case src.viaFile:
		return src.raw
	case s.secret:
		return ""
	case s.show != nil:
		return s.show(src.raw)
	}
	return src.raw
}

func (c *Config) explicit(name string) bool {
	o, ok := c.origins[name]
	return ok && o != "default"
}

// finish fills derived defaults and checks rules that span settings or
// depend on the role.
func (c *Config) finish() error {
	if c.Signal.APIURL == "" && c.Signal.ServiceURL != "" {
		c.Signal.APIURL = c.Signal.ServiceURL
		c.origins["SIGNAL_API_URL"] = "derived from SIGNAL_SERVICE_URL"
	}
	if c.Signal.ServiceURL == "" && c.Signal.APIURL != "" {
		c.Signal.ServiceURL = c.Signal.APIURL
		c.origins["SIGNAL_SERVICE_URL"] = "derived from SIGNAL_API_URL"
	}
	if !c.explicit("RATE_LIMIT_BURST") || c.RateLimitBurst == 0 {
		c.RateLimitBurst = max(c.RateLimit, 1)
		c.origins["RATE_LIMIT_BURST"] = "derived from RATE_LIMIT"
	}
	if c.InstanceID == "" {
		c.InstanceID = defaultInstanceID()
		c.origins["INSTANCE_ID"] = "default"
	}

	// The all-in-one runs on its embedded store unless Redis is configured.
	if c.Role == RoleAll && !c.explicit("STORAGE_TYPE") &&
		!c.explicit("REDIS_URL") && !c.explicit("REDIS_HOST") && !c.explicit("REDIS_PORT") {
		c.StorageType = "memory"
		c.origins["STORAGE_TYPE"] = "default for signal-client without REDIS_URL / REDIS_HOST"
	}

	needsSignal := c.Role == RoleIngester || c.Role == RoleWorker || c.Role == RoleAll
	if needsSignal && c.Signal.PhoneNumber == "" {
		return &Error{Variable: "SIGNAL_PHONE_NUMBER", Unset: true,
			Expected: "the bot's E.164 phone number such as +15551234567 (the " + c.Role + " needs it)"}
	}
	if needsSignal && c.Signal.ServiceURL == "" {
		v := "SIGNAL_SERVICE_URL"
		if c.Role == RoleWorker {
			v = "SIGNAL_API_URL"
		}
		return &Error{Variable: v, Unset: true,
			Expected: "the base URL of signal-cli-rest-api such as http://signal-cli:8080 (set SIGNAL_SERVICE_URL or SIGNAL_API_URL; one fills the other)"}
	}

	switch {
	case c.Role == RoleEmulator:
	case c.StorageType == "memory" && c.Role != RoleAll:
		return &Error{Variable: "STORAGE_TYPE", Value: "memory", Source: c.originSource("STORAGE_TYPE"),
			Expected: "redis for the " + c.Role + " (memory keeps everything inside one process: run the all-in-one signal-client binary for that)"}
	}

	if c.RetryBackoffMax < c.RetryBackoffBase {
		return &Error{Variable: "RETRY_BACKOFF_MAX", Value: fmtDuration(c.RetryBackoffMax), Source: c.originSource("RETRY_BACKOFF_MAX"),
			Expected: "a duration of at least RETRY_BACKOFF_BASE (" + fmtDuration(c.RetryBackoffBase) + ")"}
	}
	if c.MetricsPort == c.HealthPort && (c.MetricsAddr == c.HealthAddr || c.MetricsAddr == "0.0.0.0" || c.HealthAddr == "0.0.0.0") {
		return &Error{Variable: "METRICS_PORT", Value: strconv.Itoa(c.MetricsPort), Source: c.originSource("METRICS_PORT"),
			Expected: "a port other than HEALTH_PORT (" + strconv.Itoa(c.HealthPort) + ")"}
	}

	if c.explicit("SQLITE_DATABASE") {
		c.Warnings = append(c.Warnings, "SQLITE_DATABASE has no effect: sqlite storage is not implemented (STORAGE_TYPE is "+c.StorageType+")")
	}
	if c.Redis.URL != "" {
		for _, n := range []string{"REDIS_HOST", "REDIS_PORT", "REDIS_TLS_ENABLED"} {
			if c.explicit(n) {
				c.Warnings = append(c.Warnings, n+" has no effect: REDIS_URL is set and wins")
			}
		}
	}
	if c.usesRedis() {
		if _, err := c.RedisOptions(); err != nil {
			return err
		}
	}
	return nil
}

// usesRedis reports whether this process talks to Redis, so that its Redis
// settings must be valid at start.
func (c *Config) usesRedis() bool {
	return c.Role != RoleEmulator && c.StorageType == "redis"
}

// originSource turns a recorded origin back into Error.Source form.
func (c *Config) originSource(name string) string {
	o := c.origins[name]
	switch {
	case strings.HasPrefix(o, "flag "):
		return strings.TrimPrefix(o, "flag ")
	case strings.HasPrefix(o, "file "):
		p := strings.TrimPrefix(o, "file ")
		if i := strings.LastIndex(p, " ("); i >= 0 {
			p = p[:i]
		}
		return p
	}
	return ""
}

// checkLowerCaseEnv refuses lower-case spellings of known names: the Python
// original read names case-insensitively, so an old environment file may use
// them, and ignoring them would silently drop a setting.
func checkLowerCaseEnv(env LookupFunc) error {
	var names []string
	for _, s := range settings {
		names = append(names, s.name)
		names = append(names, s.aliases...)
		if s.fileForm {
			names = append(names, s.name+"_FILE")
		}
	}
	for _, l := range legacies {
		names = append(names, l.name)
	}
	names = append(names, ConfigFileEnv)
	for _, n := range names {
		lower := strings.ToLower(n)
		if v, ok := env(lower); ok {
			s := specByName(n)
			secret := s != nil && s.secret
			if secret {
				v = ""
			}
			return &Error{Variable: lower, Value: v, Secret: secret,
				Expected: "the upper-case name " + n + " (names are case-sensitive here)"}
		}
	}
	return nil
}

// checkFileKeys refuses keys that name no setting, with a suggestion.
func checkFileKeys(path string, file map[string]string) error {
	known := map[string]bool{}
	for _, s := range settings {
		known[strings.ToLower(s.name)] = true
		for _, a := range s.aliases {
			known[strings.ToLower(a)] = true
		}
		if s.fileForm {
			known[strings.ToLower(s.name)+"_file"] = true
		}
	}
	for _, l := range legacies {
		known[strings.ToLower(l.name)] = true
	}
	keys := make([]string, 0, len(file))
	for k := range file {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if known[k] {
			continue
		}
		best, bestD := "", 4
		for n := range known {
			if d := levenshtein(k, n); d < bestD || (d == bestD && n < best) {
				best, bestD = n, d
			}
		}
		exp := "a known setting name in lower case, such as redis_url (see docs/configuration.md)"
		if best != "" {
			exp = "a known setting name; did you mean " + best + "?"
		}
		v := file[k]
		secret := strings.Contains(k, "password") || strings.Contains(k, "token")
		if s := specByName(strings.ToUpper(best)); s != nil && s.secret {
			secret = true
		}
		return &Error{Variable: k, Value: v, Secret: secret, Source: path, Expected: exp}
	}
	return nil
}

// checkLegacy applies the decisions of legacies to Python-only variables
// found in the environment or the config file (env wins, as everywhere).
func (c *Config) checkLegacy(env LookupFunc, file map[string]string) error {
	for _, l := range legacies {
		v, ok := env(l.name)
		origin := "env"
		if !ok {
			v, ok = file[strings.ToLower(l.name)]
			origin = c.ConfigFile
		}
		if !ok {
			continue
		}
		w, refusal := l.decide(v, c)
		if refusal != "" {
			return &Error{Variable: l.name, Value: v, Source: origin, Expected: refusal}
		}
		if w != "" {
			c.Warnings = append(c.Warnings, w)
		}
	}
	return nil
}
