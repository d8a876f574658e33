// Package config is the orchestrator's one typed settings object. Each setting is
// read from four layers, each over the one before: its embedded default, an optional
// YAML file (--config / TASKLOOM_CONFIG), its TASKLOOM_* environment variable, then
// its command-line flag. One table (settings) names every setting once; its flag,
// YAML key and variable are spelt from that name.
//
// Why yaml.v3 and a merge of our own rather than a configuration library: the four
// layers are four loops over that table, each handing a string to the setting's
// flag.Value, so a library would add more than it takes away.
package config

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/taskloom/taskloom/services/orchestrator-go/internal/telemetry"
)

// Config holds every setting of the orchestrator. LogValue is how it is printed
// (the start-up log line and --check-config), secrets masked.
type Config struct {
	GRPCAddr          string
	HTTPAddr          string
	LogLevel          string
	DataDir           string
	MaxQueue          int
	DefaultTimeout    time.Duration
	LeaseTTL          time.Duration
	HeartbeatInterval time.Duration
	MaxAttempts       int
	ShutdownTimeout   time.Duration
	Store             string
	RedisURL          string
	Retention         time.Duration
	AgentLimits       map[string]int
	ProviderLimits    map[string]int
	// LeaderLeaseTTL and LeaderRenewInterval time the leader election of the
	// Redis store (internal/leader); AdvertiseAddr is the gRPC address standbys
	// name when they refuse a call (empty: derived from GRPCAddr).
	LeaderLeaseTTL      time.Duration
	LeaderRenewInterval time.Duration
	AdvertiseAddr       string
	// MemoryLimit is the Go runtime's soft memory limit in bytes (GOMEMLIMIT);
	// 0 leaves the runtime's own (GOMEMLIMIT from the environment, else none).
	MemoryLimit int64
	// Auth is "on", "off" or "auto" (on unless GRPCAddr is a loopback address); see
	// AuthEnabled. The tokens are secrets: read from the file or the environment,
	// never from flags, and never printed.
	Auth         string
	ServiceToken string
	WorkerToken  string
	AdminToken   string
	// Profiling serves /debug/pprof on the HTTP address; ProfilingAllowRemote lets it
	// answer peers and listen on addresses other than loopback (the Rust services' flags).
	Profiling            bool
	ProfilingAllowRemote bool
	// File is the YAML file read, if any; CheckOnly is --check-config.
	File      string
	CheckOnly bool
}

// setting is one row of the table: a name ("max-queue": flag --max-queue, YAML key
// max_queue, variable TASKLOOM_MAX_QUEUE) and the flag.Value bound to its field.
type setting struct {
	name  string
	usage string
	value flag.Value
	// secret: not a flag (command lines are visible to every user of the host).
	secret bool
}

func (s setting) env() string {
	return "TASKLOOM_" + strings.ToUpper(strings.ReplaceAll(s.name, "-", "_"))
}
func (s setting) key() string { return strings.ReplaceAll(s.name, "-", "_") }

// SecretFileSuffix names a secret's second variable: TASKLOOM_WORKER_TOKEN_FILE holds
// the path of a file whose content is the token (Compose and Kubernetes mount secrets
// as files). The Python services read the same (taskloom.sdk.config.SECRET_FILE_SUFFIX).
const SecretFileSuffix = "_FILE"

func (s setting) fileEnv() string { return s.env() + SecretFileSuffix }

// settings binds every setting of c, with c's current values as the defaults.
func (c *Config) settings() []setting {
	return []setting{
		{"grpc-addr", "gRPC listen address (OrchestratorService, WorkerHubService, health, reflection)", (*stringValue)(&c.GRPCAddr), false},
		{"http-addr", "HTTP listen address (/healthz, /readyz, /metrics, and /debug/pprof with --profiling)", (*stringValue)(&c.HTTPAddr), false},
		{"log-level", "log level: debug, info, warn or error", (*stringValue)(&c.LogLevel), false},
		{"data-dir", "directory for durable state (created at start)", (*stringValue)(&c.DataDir), false},
		{"max-queue", "most tasks waiting for a worker; beyond it SubmitTask returns RESOURCE_EXHAUSTED", (*intValue)(&c.MaxQueue), false},
		{"default-timeout", "time allowed for one attempt when the task sets none", (*durationValue)(&c.DefaultTimeout), false},
		{"lease-ttl", "a lease not renewed by a heartbeat within this expires and its task is requeued", (*durationValue)(&c.LeaseTTL), false},
		{"heartbeat-interval", "how often workers are told to heartbeat", (*durationValue)(&c.HeartbeatInterval), false},
		{"max-attempts", "attempts per task, the first included, when the task sets none", (*intValue)(&c.MaxAttempts), false},
		{"shutdown-timeout", "bound on draining in-flight calls at SIGTERM/SIGINT", (*durationValue)(&c.ShutdownTimeout), false},
		{"store", "task store: bolt (embedded file <data-dir>/orchestrator.db), redis (shared; see --redis-url) or memory (tests; nothing survives a restart)", (*stringValue)(&c.Store), false},
		{"redis-url", "Redis URL for --store redis (run Redis with appendonly yes, appendfsync always for full durability); its password is a secret", (*stringValue)(&c.RedisURL), false},
		{"retention", "finished tasks older than this are pruned", (*durationValue)(&c.Retention), false},
		{"agent-limit", "most tasks of an agent running at once; NAME=N, repeatable or comma-separated", limitsValue(c.AgentLimits), false},
		{"provider-limit", "most tasks of an LLM provider's agents running at once; NAME=N, repeatable or comma-separated", limitsValue(c.ProviderLimits), false},
		{"memory-limit", "the Go runtime's soft memory limit (GOMEMLIMIT), e.g. 512MiB or 2GiB; 0: the runtime's own", (*bytesValue)(&c.MemoryLimit), false},
		{"auth", "authenticate gRPC callers: on, off, or auto (on unless --grpc-addr is a loopback address)", (*stringValue)(&c.Auth), false},
		{"service-token", "secret: the gateway's token; it may act for any tenant (file or environment only)", (*stringValue)(&c.ServiceToken), true},
		{"worker-token", "secret: the token workers present on WorkerHubService and for their child tasks (file or environment only)", (*stringValue)(&c.WorkerToken), true},
		{"admin-token", "secret: a token with the admin role, e.g. to create the first API keys (file or environment only)", (*stringValue)(&c.AdminToken), true},
		{"leader-lease-ttl", "--store redis: the leader lease lasts this long unrenewed; a standby takes over a dead leader's work within it plus --leader-renew-interval", (*durationValue)(&c.LeaderLeaseTTL), false},
		{"leader-renew-interval", "--store redis: how often the leader renews its lease and a standby tries to take it", (*durationValue)(&c.LeaderRenewInterval), false},
		{"advertise-addr", "--store redis: this orchestrator's gRPC address as clients and workers reach it, named by standbys that refuse a call; empty: --grpc-addr (its host name when it listens on every interface)", (*stringValue)(&c.AdvertiseAddr), false},
		{"profiling", "serve CPU, heap, goroutine and other profiles on /debug/pprof of the HTTP address (loopback peers only)", (*boolValue)(&c.Profiling), false},
		{"profiling-allow-remote", "let /debug/pprof answer non-loopback peers, and --profiling run on a non-loopback --http-addr", (*boolValue)(&c.ProfilingAllowRemote), false},
	}
}

// Defaults returns the embedded defaults.
func Defaults() Config {
	return Config{
		GRPCAddr: "127.0.0.1:50051", HTTPAddr: "127.0.0.1:9101", LogLevel: "info", DataDir: "./.run/orchestrator",
		MaxQueue: 100_000, DefaultTimeout: 300 * time.Second, LeaseTTL: 15 * time.Second,
		HeartbeatInterval: 2 * time.Second, MaxAttempts: 3, ShutdownTimeout: 5 * time.Second,
		Store: "bolt", RedisURL: "redis://127.0.0.1:6379/0", Retention: 168 * time.Hour,
		AgentLimits: map[string]int{}, ProviderLimits: map[string]int{}, Auth: "auto",
		LeaderLeaseTTL: 5 * time.Second, LeaderRenewInterval: time.Second,
	}
}

// Load reads the layers: defaults, the YAML file named by --config (or
// TASKLOOM_CONFIG), the TASKLOOM_* environment (getenv), then args (without the
// program name). It returns flag.ErrHelp when -h/--help was given (usage already
// written to out). Every error names the setting and the layer it came from.
func Load(args []string, getenv func(string) string, out io.Writer) (Config, error) {
	c := Defaults()
	table := c.settings()
	fs := flag.NewFlagSet("taskloom-orchestrator", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.StringVar(&c.File, "config", getenv("TASKLOOM_CONFIG"), "YAML file of settings, keys as the flags' names in snake_case (env TASKLOOM_CONFIG)")
	fs.BoolVar(&c.CheckOnly, "check-config", false, "validate the configuration, print it (secrets masked) and exit: 0 when valid")
	var secrets []setting
	for _, s := range table {
		if s.secret {
			secrets = append(secrets, s)
			continue
		}
		fs.Var(s.value, s.name, s.usage+" (env "+s.env()+", YAML "+s.key()+")")
	}
	// Secrets are no flags, so --help names them after the flags: every variable the
	// service reads appears there (tests/deploy holds the deploy files to that list).
	fs.Usage = func() {
		var text strings.Builder
		text.WriteString("Usage of " + fs.Name() + ":\n")
		fs.SetOutput(&text)
		fs.PrintDefaults()
		fs.SetOutput(out)
		text.WriteString("Secrets (environment, a file the environment names, or YAML only):\n")
		for _, s := range secrets {
			text.WriteString("  " + s.env() + " or " + s.fileEnv() + " (a file holding it; YAML " + s.key() + ")\n    \t" + s.usage + "\n")
		}
		_, _ = io.WriteString(out, text.String())
	}
	// The file is named on the command line but read before the environment, so
	// the flags are parsed twice: once for --config, once (below) to apply them.
	if err := fs.Parse(args); err != nil {
		return Config{}, err
	}
	if fs.NArg() > 0 {
		return Config{}, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	file, checkOnly := c.File, c.CheckOnly
	c = Defaults()
	table = c.settings()
	c.File, c.CheckOnly = file, checkOnly
	if file != "" {
		if err := c.loadFile(file, table); err != nil {
			return Config{}, err
		}
	}
	var problems []error
	for _, s := range table {
		v := getenv(s.env())
		if s.secret {
			fromFile, err := secretFromFile(s, v, getenv(s.fileEnv()))
			if err != nil {
				problems = append(problems, err)
				continue
			}
			if fromFile != "" {
				v = fromFile
			}
		}
		if v != "" {
			if err := s.value.Set(v); err != nil {
				problems = append(problems, fmt.Errorf("%s=%q: %w", s.env(), v, err))
			}
		}
	}
	if err := errors.Join(problems...); err != nil {
		return Config{}, err
	}
	apply := flag.NewFlagSet("taskloom-orchestrator", flag.ContinueOnError)
	apply.SetOutput(io.Discard)
	apply.String("config", "", "")
	apply.Bool("check-config", false, "")
	for _, s := range table {
		if !s.secret {
			apply.Var(s.value, s.name, "")
		}
	}
	if err := apply.Parse(args); err != nil {
		return Config{}, err
	}
	return c, c.validate()
}

// Sections is the shape of the one configuration file every Taskloom service reads: a
// top-level mapping per service, each reading its own (the Python services check the same
// list in taskloom.sdk.config.SECTIONS; tests/tooling checks that they agree).
var Sections = []string{"gateway", "worker", "orchestrator", "cache", "metrics", "vector"}

// fileSection is the orchestrator's own section of the file.
const fileSection = "orchestrator"

// loadFile applies the `orchestrator:` section of the YAML file: a mapping of setting keys to
// values (a mapping of names to numbers for the limits). An unknown section or key is an
// error naming it.
func (c *Config) loadFile(path string, table []setting) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config file: %w", err)
	}
	var sections map[string]yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	if err := dec.Decode(&sections); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("config file %s: %w", path, err)
	}
	for name := range sections {
		if !slices.Contains(Sections, name) {
			return fmt.Errorf("config file %s: %q is not a section (have %s)", path, name, strings.Join(Sections, ", "))
		}
	}
	own, ok := sections[fileSection]
	if !ok {
		return nil
	}
	var doc map[string]yaml.Node
	if err := own.Decode(&doc); err != nil {
		return fmt.Errorf("config file %s: %s: %w", path, fileSection, err)
	}
	keys := make([]string, 0, len(doc))
	for k := range doc {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		i := slices.IndexFunc(table, func(s setting) bool { return s.key() == k })
		if i < 0 {
			return fmt.Errorf("config file %s: %s.%s is not a setting (see --help for the keys)", path, fileSection, k)
		}
		node := doc[k]
		if err := setFromYAML(table[i].value, &node); err != nil {
			return fmt.Errorf("config file %s: %s.%s: %w", path, fileSection, k, err)
		}
	}
	return nil
}

func setFromYAML(v flag.Value, node *yaml.Node) error {
	switch node.Kind {
	case yaml.ScalarNode:
		return v.Set(node.Value)
	case yaml.MappingNode:
		if _, ok := v.(limitsValue); !ok {
			return errors.New("expected a single value, got a mapping")
		}
		var m map[string]int
		if err := node.Decode(&m); err != nil {
			return err
		}
		var pairs []string
		for name, n := range m {
			pairs = append(pairs, name+"="+strconv.Itoa(n))
		}
		return v.Set(strings.Join(pairs, ","))
	}
	return errors.New("expected a value or a mapping")
}

func (c Config) validate() error {
	var problems []string
	if _, ok := telemetry.ParseLevel(c.LogLevel); !ok {
		problems = append(problems, fmt.Sprintf("--log-level %q is not debug, info, warn or error", c.LogLevel))
	}
	if c.GRPCAddr == "" || c.HTTPAddr == "" || c.DataDir == "" {
		problems = append(problems, "--grpc-addr, --http-addr and --data-dir must not be empty")
	}
	if c.MaxQueue < 1 {
		problems = append(problems, "--max-queue must be at least 1")
	}
	if c.MaxAttempts < 1 || c.MaxAttempts > 100 {
		problems = append(problems, "--max-attempts must be between 1 and 100")
	}
	for name, d := range map[string]time.Duration{
		"--default-timeout": c.DefaultTimeout, "--lease-ttl": c.LeaseTTL,
		"--heartbeat-interval": c.HeartbeatInterval, "--shutdown-timeout": c.ShutdownTimeout,
		"--leader-lease-ttl": c.LeaderLeaseTTL, "--leader-renew-interval": c.LeaderRenewInterval,
	} {
		if d <= 0 {
			problems = append(problems, name+" must be positive")
		}
	}
	switch c.Store {
	case "bolt", "memory":
	case "redis":
		if !strings.HasPrefix(c.RedisURL, "redis://") && !strings.HasPrefix(c.RedisURL, "rediss://") {
			problems = append(problems, "--redis-url must start with redis:// or rediss://")
		}
	default:
		problems = append(problems, fmt.Sprintf("--store %q is not bolt, redis or memory", c.Store))
	}
	if c.Retention <= 0 {
		problems = append(problems, "--retention must be positive")
	}
	if c.HeartbeatInterval >= c.LeaseTTL {
		problems = append(problems, "--heartbeat-interval must be shorter than --lease-ttl")
	}
	if 2*c.LeaderRenewInterval > c.LeaderLeaseTTL {
		problems = append(problems, "--leader-renew-interval must be at most half of --leader-lease-ttl")
	}
	if c.MemoryLimit < 0 {
		problems = append(problems, "--memory-limit must not be negative")
	}
	problems = append(problems, c.authProblems()...)
	if c.Profiling && !c.ProfilingAllowRemote && !loopbackAddr(c.HTTPAddr) {
		problems = append(problems, fmt.Sprintf("--profiling on --http-addr %s, which is not loopback, would open profiles to the network (set --profiling-allow-remote to allow it)", c.HTTPAddr))
	}
	if len(problems) > 0 {
		slices.Sort(problems)
		return errors.New("invalid configuration: " + strings.Join(problems, "; "))
	}
	return nil
}

// Advertised is the gRPC address other processes reach this orchestrator at, given
// the address its listener got: --advertise-addr when set, else that address, with
// the host name in place of a wildcard host (0.0.0.0, ::).
func (c Config) Advertised(listening string) string {
	if c.AdvertiseAddr != "" {
		return c.AdvertiseAddr
	}
	host, port, err := net.SplitHostPort(listening)
	if err != nil {
		return listening
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		if name, err := os.Hostname(); err == nil {
			return net.JoinHostPort(name, port)
		}
	}
	return listening
}

// Level is the parsed log level.
func (c Config) Level() slog.Level {
	l, _ := telemetry.ParseLevel(c.LogLevel)
	return l
}

// LogValue prints the settings as one group, the Redis password masked.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("config_file", c.File),
		slog.String("grpc_addr", c.GRPCAddr), slog.String("http_addr", c.HTTPAddr),
		slog.String("log_level", c.LogLevel), slog.String("data_dir", c.DataDir),
		slog.Int("max_queue", c.MaxQueue), slog.String("default_timeout", c.DefaultTimeout.String()),
		slog.String("lease_ttl", c.LeaseTTL.String()), slog.String("heartbeat_interval", c.HeartbeatInterval.String()),
		slog.Int("max_attempts", c.MaxAttempts), slog.String("shutdown_timeout", c.ShutdownTimeout.String()),
		slog.String("store", c.Store), slog.String("redis_url", maskURL(c.RedisURL)),
		slog.String("retention", c.Retention.String()),
		slog.Any("agent_limits", c.AgentLimits), slog.Any("provider_limits", c.ProviderLimits),
		slog.Int64("memory_limit", c.MemoryLimit),
		slog.String("auth", c.Auth), slog.Bool("auth_enabled", c.AuthEnabled()),
		slog.String("service_token", maskSecret(c.ServiceToken)), slog.String("worker_token", maskSecret(c.WorkerToken)),
		slog.String("admin_token", maskSecret(c.AdminToken)),
		slog.String("leader_lease_ttl", c.LeaderLeaseTTL.String()), slog.String("leader_renew_interval", c.LeaderRenewInterval.String()),
		slog.String("advertise_addr", c.AdvertiseAddr),
		slog.Bool("profiling", c.Profiling), slog.Bool("profiling_allow_remote", c.ProfilingAllowRemote),
	)
}

// maskURL hides the password of a URL for logging.
func maskURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable)"
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	return u.String()
}

// The flag.Values of the settings.

type stringValue string

func (v *stringValue) String() string     { return string(*v) }
func (v *stringValue) Set(s string) error { *v = stringValue(s); return nil }

type boolValue bool

func (v *boolValue) String() string   { return strconv.FormatBool(bool(*v)) }
func (v *boolValue) IsBoolFlag() bool { return true }
func (v *boolValue) Set(s string) error {
	b, err := strconv.ParseBool(strings.TrimSpace(s))
	if err != nil {
		return errors.New("not true or false")
	}
	*v = boolValue(b)
	return nil
}

type intValue int

func (v *intValue) String() string { return strconv.Itoa(int(*v)) }
func (v *intValue) Set(s string) error {
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil {
		return errors.New("not an integer")
	}
	*v = intValue(n)
	return nil
}

type durationValue time.Duration

func (v *durationValue) String() string { return time.Duration(*v).String() }
func (v *durationValue) Set(s string) error {
	d, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil {
		return errors.New("not a duration such as 30s or 5m")
	}
	*v = durationValue(d)
	return nil
}

// limitsValue adds "name=n[,name=n...]" to its map; a later layer's name wins.
type limitsValue map[string]int

func (v limitsValue) String() string {
	var parts []string
	for name, n := range v {
		parts = append(parts, name+"="+strconv.Itoa(n))
	}
	slices.Sort(parts)
	return strings.Join(parts, ",")
}

func (v limitsValue) Set(s string) error {
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		name, val, ok := strings.Cut(part, "=")
		n, err := strconv.Atoi(strings.TrimSpace(val))
		if !ok || strings.TrimSpace(name) == "" || err != nil || n < 1 {
			return fmt.Errorf("%q is not NAME=N with N at least 1", part)
		}
		v[strings.TrimSpace(name)] = n
	}
	return nil
}

// bytesValue is a size: a number of bytes, or one with a unit (KiB, MiB, GiB, KB,
// MB, GB).
type bytesValue int64

func (v *bytesValue) String() string { return strconv.FormatInt(int64(*v), 10) }
func (v *bytesValue) Set(s string) error {
	s = strings.TrimSpace(s)
	units := []struct {
		suffix string
		n      int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"B", 1}}
	mult := int64(1)
	for _, u := range units {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSpace(strings.TrimSuffix(s, u.suffix)), u.n
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 || n > (1<<62)/mult {
		return errors.New("not a size such as 512MiB, 2GiB or a number of bytes")
	}
	*v = bytesValue(n * mult)
	return nil
}
