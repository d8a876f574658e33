package loadgen

import (
	"context"

	"google.golang.org/grpc"

	"github.com/taskloom/taskloom/services/orchestrator-go/internal/failover"
)

// Workers are load-generator workers that follow the leader among several
// orchestrators (the failover tests): each keeps a session with whichever one
// leads, and opens a new one when it goes away.
type Workers struct {
	fleet *fleet
	stop  func()
}

// StartWorkers connects n workers of agent, concurrency tasks each, to the leader
// among addrs (comma-separated host:port), through failover.Dial.
func StartWorkers(ctx context.Context, addrs string, n, concurrency int, agent string) (*Workers, error) {
	ctx, cancel := context.WithCancel(ctx)
	dial := func(a string) (*grpc.ClientConn, error) { return failover.Dial(a, failover.WorkerHubService) }
	f, closeAll, err := startFleet(ctx, addrs, n, workerOptions{agent: agent, concurrency: concurrency, reconnect: true}, 0, dial)
	if err != nil {
		cancel()
		return nil, err
	}
	return &Workers{fleet: f, stop: func() { cancel(); closeAll() }}, nil
}

// Results is how many results the workers have sent.
func (w *Workers) Results() int64 { return w.fleet.completed.Load() }

// Reconnects is how many sessions were replaced after the orchestrator went away.
func (w *Workers) Reconnects() int64 { return w.fleet.reconnects.Load() }

// Close ends the sessions.
func (w *Workers) Close() { w.stop() }
