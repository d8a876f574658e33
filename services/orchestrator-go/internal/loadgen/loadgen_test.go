package loadgen

import (
	"context"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/taskloom/taskloom/services/orchestrator-go/internal/api"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/events"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/scheduler"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/store"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/telemetry"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/workers"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/workflow"
)

func TestParseConfigTakesTheModesDefaultsAndRefusesBadFlags(t *testing.T) {
	c, err := ParseConfig([]string{"--mode=latency", "--json=out.json"})
	if err != nil {
		t.Fatal(err)
	}
	if c.tasks != 2_000 || c.workers != 2 || c.concurrency != 64 || c.batch != 1 || c.JSONPath() != "out.json" {
		t.Fatalf("latency defaults = %+v", c)
	}
	c, err = ParseConfig([]string{"--mode=throughput", "--tasks=7", "--batch=3"})
	if err != nil || c.tasks != 7 || c.batch != 3 || c.workers != 4 {
		t.Fatalf("explicit flags = %+v, %v", c, err)
	}
	for _, args := range [][]string{
		{"--mode=nope"}, {"--batch=1001"}, {"--rate=0"}, {"--tasks=-1"}, {"stray"},
	} {
		if _, err := ParseConfig(args); err == nil {
			t.Errorf("ParseConfig(%v) accepted", args)
		}
	}
}

// startOrchestrator serves a real orchestrator (scheduler, workflow engine and
// gRPC API over a memory store) on a loopback port chosen by the system.
func startOrchestrator(t *testing.T) string {
	t.Helper()
	m := telemetry.NewTestMetrics()
	catalog := workers.NewCatalog()
	st := store.NewMemory()
	sched := scheduler.New(scheduler.Config{}, scheduler.Deps{
		Store: st, Catalog: catalog, Hub: events.NewHub(events.DefaultOptions(), m), Metrics: m,
	})
	sched.Start()
	eng := workflow.New(workflow.Deps{Scheduler: sched, Store: st, Catalog: catalog})
	if err := eng.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(api.ServerOptions()...)
	api.Register(srv, sched, eng, catalog, telemetry.NewLogger(io.Discard, 0))
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(func() {
		srv.Stop()
		eng.Stop()
		sched.Shutdown()
	})
	return lis.Addr().String()
}

func TestThroughputAndWorkflowModesRunEveryTaskOnARealOrchestrator(t *testing.T) {
	addr := startOrchestrator(t)
	for _, tc := range []struct {
		args []string
		// tasks run per unit: a workflow of this mode runs three sequential steps.
		tasksPerUnit int64
	}{
		{[]string{"--mode=throughput", "--tasks=300", "--workers=2", "--concurrency=16", "--submitters=2", "--batch=25"}, 1},
		{[]string{"--mode=workflow", "--tasks=4"}, 3},
	} {
		args := tc.args
		t.Run(args[0], func(t *testing.T) {
			cfg, err := ParseConfig(append(args, "--addr="+addr, "--timeout=60s"))
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
			defer cancel()
			rep, err := Execute(ctx, cfg)
			if err != nil {
				t.Fatal(err)
			}
			var table strings.Builder
			rep.PrintTable(&table)
			if !rep.OK || rep.Errors != 0 || rep.Metrics.Completed < tc.tasksPerUnit*int64(cfg.tasks) {
				t.Fatalf("report: ok=%v errors=%d completed=%d of %d\n%s", rep.OK, rep.Errors, rep.Metrics.Completed, cfg.tasks, table.String())
			}
			if !strings.Contains(table.String(), "mode="+cfg.mode) {
				t.Fatalf("table:\n%s", table.String())
			}
		})
	}
}
