// Package config is the orchestrator's one typed settings object, read from flags
// with TASKLOOM_* environment variables as defaults (a flag given on the command
// line wins over the environment).
package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/taskloom/taskloom/services/orchestrator-go/internal/telemetry"
)

// Config holds every setting of the orchestrator. LogValue is how it is printed
// (the start-up log line), secrets masked; it has no other serialized form.
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
}

// Load parses args (without the program name). getenv supplies TASKLOOM_* values.
// It returns flag.ErrHelp when -h/--help was given (usage already written to out).
func Load(args []string, getenv func(string) string, out io.Writer) (Config, error) {
	var c Config
	fs := flag.NewFlagSet("taskloom-orchestrator", flag.ContinueOnError)
	fs.SetOutput(out)
	var envErrs []error
	str := func(p *string, name, def, usage string) {
		fs.StringVar(p, name, envOr(getenv, name, def), usage+" (env "+envName(name)+")")
	}
	dur := func(p *time.Duration, name string, def time.Duration, usage string) {
		v := def
		if s := getenv(envName(name)); s != "" {
			d, err := time.ParseDuration(s)
			if err != nil {
				envErrs = append(envErrs, fmt.Errorf("%s=%q: %w", envName(name), s, err))
			}
			v = d
		}
		fs.DurationVar(p, name, v, usage+" (env "+envName(name)+")")
	}
	num := func(p *int, name string, def int, usage string) {
		v := def
		if s := getenv(envName(name)); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil {
				envErrs = append(envErrs, fmt.Errorf("%s=%q: not an integer", envName(name), s))
			}
			v = n
		}
		fs.IntVar(p, name, v, usage+" (env "+envName(name)+")")
	}
	str(&c.GRPCAddr, "grpc-addr", "127.0.0.1:50051", "gRPC listen address (OrchestratorService, WorkerHubService, health, reflection)")
	str(&c.HTTPAddr, "http-addr", "127.0.0.1:9101", "HTTP listen address (/healthz, /readyz, /metrics, /debug/pprof)")
	str(&c.LogLevel, "log-level", "info", "log level: debug, info, warn or error")
	str(&c.DataDir, "data-dir", "./.run/orchestrator", "directory for durable state (created at start)")
	num(&c.MaxQueue, "max-queue", 100_000, "most tasks waiting for a worker; beyond it SubmitTask returns RESOURCE_EXHAUSTED")
	dur(&c.DefaultTimeout, "default-timeout", 300*time.Second, "time allowed for one attempt when the task sets none")
	dur(&c.LeaseTTL, "lease-ttl", 15*time.Second, "a lease not renewed by a heartbeat within this expires and its task is requeued")
	dur(&c.HeartbeatInterval, "heartbeat-interval", 2*time.Second, "how often workers are told to heartbeat")
	num(&c.MaxAttempts, "max-attempts", 3, "attempts per task, the first included, when the task sets none")
	dur(&c.ShutdownTimeout, "shutdown-timeout", 5*time.Second, "bound on draining in-flight calls at SIGTERM/SIGINT")
	str(&c.Store, "store", "bolt", "task store: bolt (embedded file <data-dir>/orchestrator.db), redis (shared; see --redis-url) or memory (tests; nothing survives a restart)")
	str(&c.RedisURL, "redis-url", "redis://127.0.0.1:6379/0", "Redis URL for --store redis (run Redis with appendonly yes, appendfsync always for full durability)")
	dur(&c.Retention, "retention", 168*time.Hour, "finished tasks older than this are pruned")
	c.AgentLimits, c.ProviderLimits = map[string]int{}, map[string]int{}
	limits := func(m map[string]int, name, usage string) {
		if s := getenv(envName(name)); s != "" {
			if err := parseLimits(m, s); err != nil {
				envErrs = append(envErrs, fmt.Errorf("%s: %w", envName(name), err))
			}
		}
		fs.Func(name, usage+"; NAME=N, repeatable or comma-separated (env "+envName(name)+")", func(s string) error {
			return parseLimits(m, s)
		})
	}
	limits(c.AgentLimits, "agent-limit", "most tasks of an agent running at once")
	limits(c.ProviderLimits, "provider-limit", "most tasks of an LLM provider's agents running at once")
	if err := fs.Parse(args); err != nil {
		return Config{}, err
	}
	if fs.NArg() > 0 {
		return Config{}, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	if err := errors.Join(envErrs...); err != nil {
		return Config{}, err
	}
	return c, c.validate()
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
	if len(problems) > 0 {
		return errors.New("invalid configuration: " + strings.Join(problems, "; "))
	}
	return nil
}

// Level is the parsed log level.
func (c Config) Level() slog.Level {
	l, _ := telemetry.ParseLevel(c.LogLevel)
	return l
}

// LogValue prints the settings as one group (no secrets today; mask them here when added).
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("grpc_addr", c.GRPCAddr), slog.String("http_addr", c.HTTPAddr),
		slog.String("log_level", c.LogLevel), slog.String("data_dir", c.DataDir),
		slog.Int("max_queue", c.MaxQueue), slog.String("default_timeout", c.DefaultTimeout.String()),
		slog.String("lease_ttl", c.LeaseTTL.String()), slog.String("heartbeat_interval", c.HeartbeatInterval.String()),
		slog.Int("max_attempts", c.MaxAttempts), slog.String("shutdown_timeout", c.ShutdownTimeout.String()),
		slog.String("store", c.Store), slog.String("redis_url", maskURL(c.RedisURL)),
		slog.String("retention", c.Retention.String()),
		slog.Any("agent_limits", c.AgentLimits), slog.Any("provider_limits", c.ProviderLimits),
	)
}

// parseLimits adds "name=n[,name=n...]" to m.
func parseLimits(m map[string]int, s string) error {
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
		m[strings.TrimSpace(name)] = n
	}
	return nil
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

func envName(flagName string) string {
	return "TASKLOOM_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

func envOr(getenv func(string) string, flagName, def string) string {
	if v := getenv(envName(flagName)); v != "" {
		return v
	}
	return def
}
