package scheduler

import (
	"context"
	"encoding/json"
	"path/filepath"
	"sync"
	"testing"

	"github.com/taskloom/taskloom/services/orchestrator-go/internal/events"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/store"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/task"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/telemetry"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/workers"
)

// BenchmarkSubmitRunCompleteBolt measures the scheduler with the durable bolt store
// and group commit: 64 clients submit single tasks; one in-process worker completes
// each at once. One op is one task submitted, assigned and recorded.
//
//	go test -run '^$' -bench SubmitRunComplete ./internal/scheduler/
func BenchmarkSubmitRunCompleteBolt(b *testing.B) {
	st, err := store.OpenBolt(filepath.Join(b.TempDir(), store.BoltFileName))
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = st.Close() }()
	catalog := workers.NewCatalog()
	catalog.Add(task.AgentInfo{Name: "noop"})
	m := telemetry.NewTestMetrics()
	s := New(Config{MaxCredits: 1 << 20}, Deps{Store: st, Catalog: catalog, Hub: events.NewHub(events.DefaultOptions(), m), Metrics: m})
	defer s.Shutdown()
	w, _ := s.Connect(Registration{Agents: []task.AgentInfo{{Name: "noop"}}, Concurrency: 1 << 20})
	s.Credit(w, 1<<20)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		for {
			msgs, closed, _ := w.Outbox.Next(ctx)
			if closed || ctx.Err() != nil {
				return
			}
			for _, msg := range msgs {
				if a := msg.Assignment; a != nil {
					s.Complete(w, Result{TaskID: a.Task.ID, LeaseID: a.LeaseID, Output: json.RawMessage(`1`)})
				}
			}
			s.Credit(w, int32(len(msgs)))
		}
	}()
	b.ResetTimer()
	var wg sync.WaitGroup
	per := b.N/64 + 1
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range per {
				if _, err := s.Submit(ctx, []task.Spec{{Agent: "noop"}}); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err := s.waitDurable(); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	b.ReportMetric(float64(s.commit.Commits())/float64(64*per), "commits/task")
}
