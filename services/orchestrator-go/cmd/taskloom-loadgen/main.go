// Command taskloom-loadgen drives a running (or spawned) orchestrator over gRPC
// with no-op tasks and in-process fake workers, and reports throughput, scheduling
// latency and the orchestrator's memory as a table and JSON. bench/scenarios/
// orchestrator.py runs it; see `taskloom-loadgen -h` for the modes. The logic lives
// in internal/loadgen.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/taskloom/taskloom/services/orchestrator-go/internal/loadgen"
)

func main() {
	cfg, err := loadgen.ParseConfig(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "taskloom-loadgen:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	rep, err := loadgen.Execute(ctx, cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "taskloom-loadgen:", err)
		os.Exit(1)
	}
	rep.PrintTable(os.Stdout)
	if path := cfg.JSONPath(); path != "" {
		if err := rep.WriteJSON(path); err != nil {
			fmt.Fprintln(os.Stderr, "taskloom-loadgen: write JSON:", err)
			os.Exit(1)
		}
	}
	if !rep.OK {
		os.Exit(1)
	}
}
