// Command taskloom-orchestrator runs the Taskloom orchestrator: it schedules agent
// tasks onto workers over gRPC. This file only wires config, components, servers and
// shutdown; the logic lives in internal/.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"

	"github.com/taskloom/taskloom/services/orchestrator-go/internal/api"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/apikeys"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/config"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/events"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/gctune"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/httpserver"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/scheduler"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/store"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/telemetry"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/tracing"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/usage"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/workers"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/workflow"
)

func main() {
	cfg, err := config.Load(os.Args[1:], os.Getenv, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "taskloom-orchestrator:", err)
		os.Exit(2)
	}
	if cfg.CheckOnly { // --check-config: valid; say what it amounts to
		telemetry.NewLogger(os.Stdout, cfg.Level()).Info("configuration is valid", "config", cfg)
		return
	}
	log := telemetry.NewLogger(os.Stderr, cfg.Level())
	if err := run(cfg, log); err != nil {
		log.Error("orchestrator stopped", "err", err)
		os.Exit(1)
	}
}

// gcHeapFloor is the heap size below which the garbage collector need not run
// (internal/gctune); above it, GOGC is 100 as by default. Setting GOGC turns the
// tuning off.
const gcHeapFloor = 128 << 20

// traceFlushTimeout bounds exporting the spans still buffered at shutdown.
const traceFlushTimeout = 5 * time.Second

func run(cfg config.Config, log *slog.Logger) error {
	log.Info("starting", "config", cfg)
	if cfg.MemoryLimit > 0 {
		debug.SetMemoryLimit(cfg.MemoryLimit)
	}
	if os.Getenv("GOGC") == "" {
		defer gctune.Start(gcHeapFloor, 100, 500).Stop()
	}
	if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
		return fmt.Errorf("create data dir: %w", err)
	}

	traceSettings, err := tracing.SettingsFromEnv(os.Getenv)
	if err != nil {
		return err
	}
	traces, err := tracing.Start(context.Background(), traceSettings)
	if err != nil {
		return err
	}
	defer func() { // after the servers stopped: their last spans are exported too
		ctx, cancel := context.WithTimeout(context.Background(), traceFlushTimeout)
		defer cancel()
		if err := traces.Shutdown(ctx); err != nil {
			log.Warn("exporting the last spans failed", "err", err)
		}
	}()
	if traces != nil {
		log.Info("tracing on", "endpoint", traceSettings.Endpoint, "sampler_ratio", traceSettings.Ratio, "service_name", traceSettings.ServiceName)
	}

	reg := prometheus.NewRegistry()
	metrics := telemetry.NewMetrics(reg)
	st, err := store.Open(context.Background(), store.Options{Kind: cfg.Store, DataDir: cfg.DataDir, RedisURL: cfg.RedisURL})
	if err != nil {
		return err
	}
	defer func() { _ = st.Close() }()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)

	serverOpts := append(api.ServerOptions(),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 30 * time.Second, Timeout: 10 * time.Second}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 5 * time.Second, PermitWithoutStream: true}),
	)
	if traces != nil { // off: no handler, so no work per call
		serverOpts = append(serverOpts, grpc.StatsHandler(tracing.NewServerHandler(traces.Provider())))
	}
	lis, err := net.Listen("tcp", cfg.GRPCAddr)
	if err != nil {
		return fmt.Errorf("listen gRPC on %s: %w", cfg.GRPCAddr, err)
	}
	var ready httpserver.Readiness
	checks := []httpserver.Check{{Name: "store", Probe: st.Ping}}
	var lead *leadership // --store redis: one leader among the orchestrators on the Redis
	if cfg.Store == store.KindRedis {
		if lead, err = newLeadership(context.Background(), cfg, st, cfg.Advertised(lis.Addr().String()), log); err != nil {
			return err
		}
		defer lead.close()
		checks = append(checks, httpserver.Check{Name: "leader", Probe: lead.check})
	}
	handler := httpserver.Handler(&ready, reg, checks...)
	if cfg.Profiling {
		handler = httpserver.WithProfiling(handler)
		log.Warn("profiling endpoints on /debug/pprof", "allow_remote", cfg.ProfilingAllowRemote)
	}
	httpSrv := httpserver.New(cfg.HTTPAddr, handler)
	httpLis, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("listen HTTP on %s: %w", cfg.HTTPAddr, err)
	}
	errc := make(chan error, 2)
	go func() {
		if err := httpSrv.Serve(httpLis); !errors.Is(err, http.ErrServerClosed) {
			errc <- err
		}
	}()
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = httpSrv.Shutdown(ctx)
	}()
	if lead != nil {
		if lis, err = lead.standby(serverOpts, lis, sig, &ready); lis == nil || err != nil {
			return err // a signal ended the standby (nil), or taking over failed
		}
	}
	metrics.Leader.Set(1)

	// Usage rollups are written once a second, off the scheduler's path.
	recorder := usage.NewRecorder(st, time.Second, log)
	usageCtx, stopUsage := context.WithCancel(context.Background())
	usageDone := make(chan struct{})
	go func() { recorder.Run(usageCtx); close(usageDone) }()
	// On every path, the last results' usage is written before the store closes.
	defer func() { stopUsage(); <-usageDone }()
	catalog, err := workers.LoadCatalog(context.Background(), st, log) // agents known before the restart
	if err != nil {
		return fmt.Errorf("load agent catalog: %w", err)
	}
	sched := scheduler.New(scheduler.Config{
		MaxQueue: cfg.MaxQueue, DefaultTimeout: cfg.DefaultTimeout, LeaseTTL: cfg.LeaseTTL,
		HeartbeatInterval: cfg.HeartbeatInterval, MaxAttempts: int32(cfg.MaxAttempts),
		AgentLimits: cfg.AgentLimits, ProviderLimits: cfg.ProviderLimits,
	}, scheduler.Deps{
		Store: st, Catalog: catalog, Hub: events.NewHub(events.DefaultOptions(), metrics),
		Metrics: metrics, Log: log, Usage: recorder,
	})
	if err := sched.Recover(context.Background()); err != nil {
		return err
	}
	sched.Start()
	engine := workflow.New(workflow.Deps{Scheduler: sched, Store: st, Catalog: catalog, Metrics: telemetry.NewWorkflowMetrics(reg), Log: log})
	if err := engine.Start(context.Background()); err != nil { // resumes unfinished workflows
		return err
	}
	pruneCtx, stopPruning := context.WithCancel(context.Background())
	defer stopPruning()
	go (&store.Pruner{
		Store: st, Retention: cfg.Retention, Log: log,
		OnPruned: func(n int) { metrics.TasksPruned.Add(float64(n)) },
	}).Run(pruneCtx)

	grpcServer := grpc.NewServer(serverOpts...)
	keys := apikeys.New(st)
	auth := api.NewAuth(api.AuthConfig{
		Enabled: cfg.AuthEnabled(), ServiceToken: cfg.ServiceToken, WorkerToken: cfg.WorkerToken, AdminToken: cfg.AdminToken, Keys: keys,
	})
	health := api.Register(grpcServer, sched, engine, catalog, log, api.WithAuth(auth), api.WithKeys(keys), api.WithTracing(traces.Provider()))
	go func() { errc <- grpcServer.Serve(lis) }()
	ready.Set(true)
	log.Info("serving", "grpc_addr", lis.Addr().String(), "http_addr", httpLis.Addr().String())

	var lost <-chan struct{}
	if lead != nil {
		lost = lead.lost()
	}
	var serveErr error
	select {
	case s := <-sig:
		log.Info("shutting down", "signal", s.String())
	case serveErr = <-errc:
		log.Error("server failed", "err", serveErr)
	case <-lost:
		// Another orchestrator may be the leader now: stop at once, without draining
		// (the store's fence refuses this term's writes anyway). Closing every
		// connection sends the workers and clients on; a restart comes back as a
		// standby.
		grpcServer.Stop()
		return fmt.Errorf("lost the leader lease, stopping at once: %w", lead.term.Load().Err())
	}

	// One bound, --shutdown-timeout, covers draining the workers and the calls.
	drainCtx, cancelDrain := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancelDrain()
	ready.Set(false)
	health.Shutdown() // NOT_SERVING for every service
	// Refuses new work and stops assigning; running attempts finish and their results
	// are stored (until the timeout), then worker sessions and watches end so that
	// GracefulStop can finish. The workflow engine still records the steps that finish
	// meanwhile; steps it cannot submit any more stay pending until the next start.
	sched.GracefulShutdown(drainCtx)
	engine.Stop() // ends workflow watches; workflows resume from the store on the next start
	stopped := make(chan struct{})
	go func() { grpcServer.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
	case <-drainCtx.Done():
		// At least a moment for calls to end once the workers are gone.
		select {
		case <-stopped:
		case <-time.After(time.Second):
			log.Warn("graceful stop timed out; closing remaining calls", "timeout", cfg.ShutdownTimeout.String())
			grpcServer.Stop()
		}
	}
	if lead != nil { // every write is done: hand the lease on at once
		stopPruning()
		lead.resign()
	}
	log.Info("stopped")
	return serveErr
}
