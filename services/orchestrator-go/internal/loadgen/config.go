// Package loadgen is the orchestrator's load generator (cmd/taskloom-loadgen): it
// submits no-op tasks or workflows over gRPC, runs them on in-process fake workers,
// and reports throughput, latency and the orchestrator's memory.
package loadgen

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strings"
	"time"

	pb "github.com/taskloom/taskloom/services/orchestrator-go/gen/taskloom/v1"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// The command line of the load generator and the choice of mode.

// Execute connects to (or spawns) the orchestrator and runs the chosen mode.
func Execute(ctx context.Context, cfg Config) (*Report, error) {
	tgt := &target{grpcAddr: cfg.addr, httpAddr: cfg.httpAddr, pid: cfg.pid}
	if cfg.spawn != "" {
		var err error
		if tgt, err = spawnOrchestrator(ctx, cfg.spawn, cfg.spawnArgs); err != nil {
			return nil, err
		}
		defer func() { _ = tgt.stop() }()
	}
	dial := func(addr string) (*grpc.ClientConn, error) {
		return grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	}
	r := &run{cfg: cfg, target: tgt, dial: dial}
	for range cfg.conns {
		conn, err := dial(tgt.grpcAddr)
		if err != nil {
			return nil, err
		}
		defer func() { _ = conn.Close() }()
		r.clients = append(r.clients, pb.NewOrchestratorServiceClient(conn))
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.timeout+30*time.Second)
	defer cancel()
	switch cfg.mode {
	case "throughput":
		return r.throughput(ctx)
	case "latency":
		return r.latency(ctx)
	case "queued":
		return r.queued(ctx)
	case "running":
		return r.running(ctx)
	case "workflow":
		return r.workflow(ctx)
	}
	return nil, fmt.Errorf("unknown mode %q", cfg.mode)
}

// Config holds the flags; zero counts take the chosen mode's defaults.
type Config struct {
	mode           string
	addr           string
	httpAddr       string
	pid            int
	spawn          string
	spawnArgs      []string
	tasks          int
	warmup         int
	workers        int
	concurrency    int
	hold           time.Duration
	submitters     int
	batch          int
	conns          int
	rate           float64
	agent          string
	timeout        time.Duration
	jsonPath       string
	profile        string
	profileSeconds time.Duration
}

// modeDefaults: tasks, workers, concurrency per worker, submitters, batch.
var modeDefaults = map[string][5]int{
	"throughput": {100_000, 4, 1024, 4, 100},
	"latency":    {2_000, 2, 64, 2, 1},
	"queued":     {100_000, 0, 0, 4, 500},
	"running":    {10_000, 10, 1024, 4, 500},
	"workflow":   {200, 2, 64, 1, 1},
}

type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, " ") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

func ParseConfig(args []string) (Config, error) {
	var c Config
	var spawnArgs stringList
	fs := flag.NewFlagSet("taskloom-loadgen", flag.ContinueOnError)
	fs.StringVar(&c.mode, "mode", "throughput", "throughput | latency (paced single submits to idle workers) | queued (hold N tasks, no worker) | running (N tasks held --hold each) | workflow (N 3-step sequential workflows)")
	fs.StringVar(&c.addr, "addr", "127.0.0.1:50051", "gRPC address of a running orchestrator (ignored with --spawn)")
	fs.StringVar(&c.httpAddr, "http-addr", "", "HTTP address of that orchestrator, for --profile")
	fs.IntVar(&c.pid, "pid", 0, "pid of that orchestrator, for its RSS (/proc/<pid>/status)")
	fs.StringVar(&c.spawn, "spawn", "", "path of a taskloom-orchestrator binary to start on free loopback ports with a temp data dir")
	fs.Var(&spawnArgs, "spawn-arg", "extra argument for the spawned orchestrator (repeatable), e.g. --spawn-arg=--max-queue=1000000")
	fs.IntVar(&c.tasks, "tasks", 0, "tasks to submit (workflows in mode workflow); 0 = the mode's default")
	fs.IntVar(&c.warmup, "warmup", 200, "mode latency: tasks run before measuring")
	fs.IntVar(&c.workers, "workers", 0, "fake worker sessions; 0 = the mode's default")
	fs.IntVar(&c.concurrency, "concurrency", 0, "tasks each fake worker runs at once (its credits); 0 = the mode's default")
	fs.DurationVar(&c.hold, "hold", time.Second, "mode running: how long a fake worker holds each task")
	fs.IntVar(&c.submitters, "submitters", 0, "concurrent submitters; 0 = the mode's default")
	fs.IntVar(&c.batch, "batch", 0, "tasks per SubmitTasks call (1 = SubmitTask); 0 = the mode's default")
	fs.IntVar(&c.conns, "conns", 2, "client connections the submitters share")
	fs.Float64Var(&c.rate, "rate", 1000, "mode latency: tasks/s submitted in all")
	fs.StringVar(&c.agent, "agent", "loadgen-noop", "agent name the fake workers register")
	fs.DurationVar(&c.timeout, "timeout", 120*time.Second, "give up waiting for completion after this")
	fs.StringVar(&c.jsonPath, "json", "", "write the report as JSON to this file")
	fs.StringVar(&c.profile, "profile", "", "mode throughput: save a CPU profile of the orchestrator (from its /debug/pprof) to this file")
	fs.DurationVar(&c.profileSeconds, "profile-seconds", 5*time.Second, "length of that profile")
	if err := fs.Parse(args); err != nil {
		return Config{}, err
	}
	if fs.NArg() > 0 {
		return Config{}, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	c.spawnArgs = spawnArgs
	d, ok := modeDefaults[c.mode]
	if !ok {
		return Config{}, fmt.Errorf("--mode %q is not throughput, latency, queued, running or workflow", c.mode)
	}
	for i, p := range []*int{&c.tasks, &c.workers, &c.concurrency, &c.submitters, &c.batch} {
		if *p == 0 {
			*p = d[i]
		}
	}
	switch {
	case c.tasks < 1 || c.submitters < 1 || c.batch < 1 || c.conns < 1:
		return Config{}, errors.New("--tasks, --submitters, --batch and --conns must be at least 1")
	case c.batch > 1000:
		return Config{}, errors.New("--batch must be at most 1000 (the orchestrator's SubmitTasks limit)")
	case c.mode != "queued" && (c.workers < 1 || c.concurrency < 1):
		return Config{}, errors.New("--workers and --concurrency must be at least 1")
	case c.rate <= 0:
		return Config{}, errors.New("--rate must be positive")
	}
	return c, nil
}

// JSONPath is where the report's JSON goes ("" for nowhere).
func (c Config) JSONPath() string { return c.jsonPath }

// describe lists the settings that shape the figures, for the JSON report.
func (c Config) describe() map[string]any {
	out := map[string]any{
		"tasks": c.tasks, "workers": c.workers, "concurrency": c.concurrency,
		"submitters": c.submitters, "batch": c.batch, "conns": c.conns, "agent": c.agent,
		"spawned": c.spawn != "",
	}
	switch c.mode {
	case "running":
		out["hold"] = c.hold.String()
	case "latency":
		out["rate"] = c.rate
		out["warmup"] = c.warmup
	}
	return out
}
