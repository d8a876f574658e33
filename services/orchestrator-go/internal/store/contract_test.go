package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/taskloom/taskloom/services/orchestrator-go/internal/errs"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/redistest"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/task"
)

// backend opens a store; reopen closes it and opens the same data again (nil for
// the memory store, which keeps nothing).
type backend struct {
	name string
	open func(t *testing.T) (s Store, reopen func() Store)
}

func backends() []backend {
	return []backend{
		{"memory", func(*testing.T) (Store, func() Store) { return NewMemory(), nil }},
		{"bolt", func(t *testing.T) (Store, func() Store) {
			path := filepath.Join(t.TempDir(), BoltFileName)
			open := func() Store {
				b, err := OpenBolt(path)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { _ = b.Close() })
				return b
			}
			s := open()
			return s, func() Store { _ = s.Close(); s = open(); return s }
		}},
		{"redis", func(t *testing.T) (Store, func() Store) {
			srv := redistest.Start(t) // one throwaway server per test: ~50 ms
			open := func() Store {
				r, err := OpenRedis(context.Background(), srv.URL, "")
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { _ = r.Close() })
				return r
			}
			s := open()
			return s, func() Store { _ = s.Close(); s = open(); return s }
		}},
	}
}

func forEachStore(t *testing.T, f func(t *testing.T, s Store, reopen func() Store)) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			s, reopen := b.open(t)
			f(t, s, reopen)
		})
	}
}

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func fullTask(id string) *task.Task {
	return &task.Task{
		ID: id, Agent: "echo", Input: json.RawMessage(`{"q":"hi"}`), Status: task.StatusSucceeded,
		Result: json.RawMessage(`"ok"`), Failure: &task.Failure{Reason: errs.ReasonLeaseLost, Message: "m", Retryable: true},
		Tenant: "acme", Priority: 7, Labels: map[string]string{"traceparent": "x", "k": "v"}, IdempotencyKey: "key-" + id,
		Attempts: 2, MaxAttempts: 3, Timeout: time.Minute, InitialBackoff: time.Second, MaxBackoff: 9 * time.Second,
		CreatedAt: t0, StartedAt: t0.Add(time.Second), FinishedAt: t0.Add(2 * time.Second),
		WorkflowID: "wf", StepID: "s1", Usage: task.Usage{PromptTokens: 1, CompletionTokens: 2, CachedCompletions: 3}, WorkerID: "w1",
		NotBefore: t0.Add(3 * time.Second), Fingerprint: task.Fingerprint{1, 2, 3, 4},
	}
}

func TestStoreRoundTripsEveryField(t *testing.T) {
	forEachStore(t, func(t *testing.T, s Store, _ func() Store) {
		ctx := context.Background()
		want := fullTask("a")
		if err := s.Put(ctx, want); err != nil {
			t.Fatal(err)
		}
		got, err := s.Get(ctx, "a")
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Fatalf("Get = %+v, %v\nwant %+v", got, err, want)
		}
		bare := &task.Task{ID: "b", Agent: "echo", Status: task.StatusQueued}
		_ = s.Put(ctx, bare)
		if got, _ := s.Get(ctx, "b"); !reflect.DeepEqual(got, bare) {
			t.Fatalf("zero values changed: %+v", got)
		}
		if _, err := s.Get(ctx, "missing"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Get(missing) err = %v", err)
		}
		if got, err := s.FindByIdempotencyKey(ctx, "acme", "key-a"); err != nil || got.ID != "a" {
			t.Fatalf("FindByIdempotencyKey = %v, %v", got, err)
		}
		if _, err := s.FindByIdempotencyKey(ctx, "other-tenant", "key-a"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("idempotency key crossed tenants: %v", err)
		}
	})
}

func TestStoreLastWriteOfABatchWins(t *testing.T) {
	forEachStore(t, func(t *testing.T, s Store, _ func() Store) {
		ctx := context.Background()
		q := &task.Task{ID: "a", Agent: "echo", Status: task.StatusQueued, CreatedAt: t0}
		r := q.Clone()
		r.Status, r.Attempts = task.StatusRunning, 1
		if err := s.Put(ctx, q, r); err != nil {
			t.Fatal(err)
		}
		if got, _ := s.Get(ctx, "a"); got.Status != task.StatusRunning || got.Attempts != 1 {
			t.Fatalf("got %+v", got)
		}
	})
}

func TestStoreListsNewestFirstWithPagesAndFilters(t *testing.T) {
	forEachStore(t, func(t *testing.T, s Store, _ func() Store) {
		ctx := context.Background()
		for i := range 7 {
			tk := &task.Task{ID: fmt.Sprintf("t%d", i), Agent: "a", Tenant: "x", Status: task.StatusQueued, CreatedAt: t0.Add(time.Duration(i) * time.Second)}
			if i%2 == 1 {
				tk.Agent = "b"
			}
			if i == 6 {
				tk.Tenant = "y"
			}
			if err := s.Put(ctx, tk); err != nil {
				t.Fatal(err)
			}
		}
		page, next, err := s.List(ctx, Filter{}, "", 3)
		if err != nil || ids(page) != "t6,t5,t4," || next == "" {
			t.Fatalf("page 1 = %s next=%q err=%v", ids(page), next, err)
		}
		page, next, _ = s.List(ctx, Filter{}, next, 3)
		if ids(page) != "t3,t2,t1," || next == "" {
			t.Fatalf("page 2 = %s next=%q", ids(page), next)
		}
		page, next, _ = s.List(ctx, Filter{}, next, 3)
		if ids(page) != "t0," || next != "" {
			t.Fatalf("page 3 = %s next=%q", ids(page), next)
		}
		page, _, _ = s.List(ctx, Filter{Agent: "b", Tenant: "x"}, "", 10)
		if ids(page) != "t5,t3,t1," {
			t.Fatalf("filtered = %s", ids(page))
		}
		if _, _, err := s.List(ctx, Filter{}, "nope", 3); !errors.Is(err, ErrBadCursor) {
			t.Fatalf("bad cursor err = %v", err)
		}
	})
}

func TestStoreTracksUnfinishedAndSurvivesReopen(t *testing.T) {
	forEachStore(t, func(t *testing.T, s Store, reopen func() Store) {
		ctx := context.Background()
		queued := &task.Task{ID: "q", Agent: "echo", Status: task.StatusQueued, CreatedAt: t0}
		running := &task.Task{ID: "r", Agent: "echo", Status: task.StatusRunning, Attempts: 1, CreatedAt: t0}
		done := &task.Task{ID: "d", Agent: "echo", Status: task.StatusQueued, CreatedAt: t0}
		if err := s.Put(ctx, queued, running, done); err != nil {
			t.Fatal(err)
		}
		done = done.Clone()
		done.Status, done.Result, done.FinishedAt = task.StatusSucceeded, json.RawMessage(`1`), t0.Add(time.Second)
		if err := s.Put(ctx, done); err != nil {
			t.Fatal(err)
		}
		if reopen != nil {
			s = reopen()
		}
		un, err := s.Unfinished(ctx)
		if err != nil || len(un) != 2 {
			t.Fatalf("Unfinished = %v, %v", un, err)
		}
		for _, u := range un {
			if u.ID == "d" {
				t.Fatal("a finished task is listed as unfinished")
			}
		}
		if got, err := s.Get(ctx, "d"); err != nil || string(got.Result) != "1" || got.Status != task.StatusSucceeded {
			t.Fatalf("finished result after reopen = %+v, %v", got, err)
		}
	})
}

func TestStorePrunesOnlyOldFinishedTasksInBatches(t *testing.T) {
	forEachStore(t, func(t *testing.T, s Store, _ func() Store) {
		ctx := context.Background()
		var all []*task.Task
		for i := range 5 {
			all = append(all, &task.Task{
				ID: fmt.Sprintf("old%d", i), Agent: "echo", Tenant: "acme", IdempotencyKey: fmt.Sprintf("k%d", i),
				Status: task.StatusSucceeded, CreatedAt: t0, FinishedAt: t0.Add(time.Duration(i) * time.Minute),
			})
		}
		all = append(all,
			&task.Task{ID: "new", Agent: "echo", Status: task.StatusFailed, CreatedAt: t0, FinishedAt: t0.Add(time.Hour)},
			&task.Task{ID: "live", Agent: "echo", Status: task.StatusQueued, CreatedAt: t0.Add(-time.Hour)},
		)
		if err := s.Put(ctx, all...); err != nil {
			t.Fatal(err)
		}
		cutoff := t0.Add(30 * time.Minute)
		n, err := s.PruneFinished(ctx, cutoff, 3)
		if err != nil || n != 3 {
			t.Fatalf("first batch pruned %d, %v", n, err)
		}
		p := &Pruner{Store: s, BatchSize: 3, Retention: time.Hour, Now: func() time.Time { return cutoff.Add(time.Hour) }}
		if n, err := p.PruneOnce(ctx); err != nil || n != 2 {
			t.Fatalf("PruneOnce pruned %d, %v", n, err)
		}
		for i := range 5 {
			if _, err := s.Get(ctx, fmt.Sprintf("old%d", i)); !errors.Is(err, ErrNotFound) {
				t.Fatalf("old%d survived: %v", i, err)
			}
			if _, err := s.FindByIdempotencyKey(ctx, "acme", fmt.Sprintf("k%d", i)); !errors.Is(err, ErrNotFound) {
				t.Fatalf("idempotency key of old%d survived: %v", i, err)
			}
		}
		for _, id := range []string{"new", "live"} {
			if _, err := s.Get(ctx, id); err != nil {
				t.Fatalf("%s was pruned: %v", id, err)
			}
		}
		if page, _, _ := s.List(ctx, Filter{}, "", 10); len(page) != 2 {
			t.Fatalf("List after pruning = %s", ids(page))
		}
	})
}

func TestStoreWorkflows(t *testing.T) {
	forEachStore(t, func(t *testing.T, s Store, reopen func() Store) {
		ctx := context.Background()
		w := &Workflow{ID: "w1", Tenant: "acme", IdempotencyKey: "k", State: []byte("state-1")}
		if err := s.PutWorkflow(ctx, w); err != nil {
			t.Fatal(err)
		}
		_ = s.PutWorkflow(ctx, &Workflow{ID: "w2", Tenant: "acme", Done: true, State: []byte("x")})
		if reopen != nil {
			s = reopen()
		}
		if got, err := s.GetWorkflow(ctx, "w1"); err != nil || !reflect.DeepEqual(got, w) {
			t.Fatalf("GetWorkflow = %+v, %v", got, err)
		}
		if got, err := s.FindWorkflowByIdempotencyKey(ctx, "acme", "k"); err != nil || got.ID != "w1" {
			t.Fatalf("FindWorkflowByIdempotencyKey = %+v, %v", got, err)
		}
		if _, err := s.GetWorkflow(ctx, "nope"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("GetWorkflow(missing) = %v", err)
		}
		open, err := s.UnfinishedWorkflows(ctx)
		if err != nil || len(open) != 1 || open[0].ID != "w1" {
			t.Fatalf("UnfinishedWorkflows = %v, %v", open, err)
		}
		w.Done = true
		_ = s.PutWorkflow(ctx, w)
		if open, _ := s.UnfinishedWorkflows(ctx); len(open) != 0 {
			t.Fatalf("a done workflow is still open: %v", open)
		}
	})
}

func TestCodecRejectsGarbage(t *testing.T) {
	if _, err := decodeTask(nil); err == nil {
		t.Fatal("empty record decoded")
	}
	rec := encodeTask(nil, fullTask("a"))
	if _, err := decodeTask(rec[:len(rec)/2]); err == nil {
		t.Fatal("truncated record decoded")
	}
}

func TestStorePersistsAgentCatalog(t *testing.T) {
	forEachStore(t, func(t *testing.T, s Store, reopen func() Store) {
		ctx := context.Background()
		if got, err := s.Agents(ctx); err != nil || len(got) != 0 {
			t.Fatalf("Agents of an empty store = %v, %v", got, err)
		}
		writer := task.AgentInfo{Name: "writer", Description: "writes", Provider: "simulated", Model: "sim-1", Tools: []string{"search", "calc"}}
		if err := s.PutAgents(ctx, task.AgentInfo{Name: "zeta"}, writer); err != nil {
			t.Fatal(err)
		}
		changed := writer
		changed.Model, changed.Tools = "sim-2", []string{"search"}
		if err := s.PutAgents(ctx, changed); err != nil {
			t.Fatal(err)
		}
		if reopen != nil {
			s = reopen()
		}
		got, err := s.Agents(ctx)
		want := []task.AgentInfo{changed, {Name: "zeta"}}
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Fatalf("Agents = %+v, %v\nwant %+v", got, err, want)
		}
	})
}

func TestStorePruningKeepsStepTasksOfRunningWorkflows(t *testing.T) {
	forEachStore(t, func(t *testing.T, s Store, _ func() Store) {
		ctx := context.Background()
		if err := s.PutWorkflow(ctx, &Workflow{ID: "running", Tenant: "acme", State: []byte("{}")}); err != nil {
			t.Fatal(err)
		}
		if err := s.PutWorkflow(ctx, &Workflow{ID: "ended", Tenant: "acme", Done: true, FinishedAt: t0, State: []byte("{}")}); err != nil {
			t.Fatal(err)
		}
		finished := func(id, wf string, minute int) *task.Task {
			return &task.Task{ID: id, Agent: "echo", Tenant: "acme", IdempotencyKey: "k-" + id, WorkflowID: wf, StepID: "s",
				Status: task.StatusSucceeded, Result: json.RawMessage(`1`), CreatedAt: t0, FinishedAt: t0.Add(time.Duration(minute) * time.Minute)}
		}
		// The running workflow's step tasks are the oldest: a pass must get past them.
		held := []*task.Task{finished("held0", "running", 0), finished("held1", "running", 1), finished("held2", "running", 2)}
		prunable := []*task.Task{finished("ended0", "ended", 3), finished("plain0", "", 4), finished("ended1", "ended", 5), finished("orphan", "gone", 6)}
		if err := s.Put(ctx, append(append([]*task.Task{}, held...), prunable...)...); err != nil {
			t.Fatal(err)
		}
		p := &Pruner{Store: s, BatchSize: 2, Retention: time.Hour, Now: func() time.Time { return t0.Add(2 * time.Hour) }}
		if n, err := p.PruneOnce(ctx); err != nil || n != len(prunable) {
			t.Fatalf("PruneOnce pruned %d, %v; want %d", n, err, len(prunable))
		}
		for _, tk := range held {
			if got, err := s.Get(ctx, tk.ID); err != nil || string(got.Result) != "1" {
				t.Fatalf("step task %s of a running workflow was pruned: %v", tk.ID, err)
			}
			if _, err := s.FindByIdempotencyKey(ctx, "acme", tk.IdempotencyKey); err != nil {
				t.Fatalf("idempotency key of %s was pruned: %v", tk.ID, err)
			}
		}
		for _, tk := range prunable {
			if _, err := s.Get(ctx, tk.ID); !errors.Is(err, ErrNotFound) {
				t.Fatalf("%s survived pruning: %v", tk.ID, err)
			}
		}
		// Once the workflow is done, its step tasks age out like any other.
		if err := s.PutWorkflow(ctx, &Workflow{ID: "running", Tenant: "acme", Done: true, FinishedAt: t0.Add(time.Minute), State: []byte("{}")}); err != nil {
			t.Fatal(err)
		}
		if n, err := p.PruneOnce(ctx); err != nil || n != len(held) {
			t.Fatalf("PruneOnce after the workflow ended pruned %d, %v; want %d", n, err, len(held))
		}
		if page, _, _ := s.List(ctx, Filter{}, "", 10); len(page) != 0 {
			t.Fatalf("left after pruning: %s", ids(page))
		}
	})
}

func TestStorePrunesOldFinishedWorkflows(t *testing.T) {
	forEachStore(t, func(t *testing.T, s Store, reopen func() Store) {
		ctx := context.Background()
		wfs := []*Workflow{
			{ID: "old0", Tenant: "acme", IdempotencyKey: "k0", Done: true, FinishedAt: t0, State: []byte("a")},
			{ID: "old1", Tenant: "acme", IdempotencyKey: "k1", Done: true, FinishedAt: t0.Add(time.Minute), State: []byte("b")},
			{ID: "old2", Tenant: "acme", Done: true, FinishedAt: t0.Add(2 * time.Minute), State: []byte("c")},
			{ID: "recent", Tenant: "acme", IdempotencyKey: "k3", Done: true, FinishedAt: t0.Add(3 * time.Hour), State: []byte("d")},
			{ID: "open", Tenant: "acme", IdempotencyKey: "k4", State: []byte("e")},
		}
		for _, w := range wfs {
			if err := s.PutWorkflow(ctx, w); err != nil {
				t.Fatal(err)
			}
		}
		if reopen != nil {
			s = reopen()
		}
		if got, err := s.GetWorkflow(ctx, "old1"); err != nil || !got.FinishedAt.Equal(t0.Add(time.Minute)) {
			t.Fatalf("FinishedAt did not round-trip: %+v, %v", got, err)
		}
		p := &Pruner{Store: s, BatchSize: 2, Retention: time.Hour, Now: func() time.Time { return t0.Add(2 * time.Hour) }}
		if n, err := p.PruneWorkflowsOnce(ctx); err != nil || n != 3 {
			t.Fatalf("PruneWorkflowsOnce pruned %d, %v; want 3", n, err)
		}
		for _, id := range []string{"old0", "old1", "old2"} {
			if _, err := s.GetWorkflow(ctx, id); !errors.Is(err, ErrNotFound) {
				t.Fatalf("workflow %s survived: %v", id, err)
			}
		}
		if _, err := s.FindWorkflowByIdempotencyKey(ctx, "acme", "k0"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("idempotency key of a pruned workflow survived: %v", err)
		}
		for _, id := range []string{"recent", "open"} {
			if _, err := s.GetWorkflow(ctx, id); err != nil {
				t.Fatalf("workflow %s was pruned: %v", id, err)
			}
		}
		if got, err := s.FindWorkflowByIdempotencyKey(ctx, "acme", "k4"); err != nil || got.ID != "open" {
			t.Fatalf("FindWorkflowByIdempotencyKey(open) = %+v, %v", got, err)
		}
		if open, _ := s.UnfinishedWorkflows(ctx); len(open) != 1 || open[0].ID != "open" {
			t.Fatalf("UnfinishedWorkflows = %v", open)
		}
	})
}

func TestStorePingFailsOnceClosed(t *testing.T) {
	forEachStore(t, func(t *testing.T, s Store, _ func() Store) {
		ctx := context.Background()
		if err := s.Ping(ctx); err != nil {
			t.Fatalf("Ping of an open store = %v", err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if err := s.Ping(ctx); err == nil {
			t.Fatal("Ping of a closed store succeeded")
		}
	})
}

func TestCodecReadsVersion1Workflows(t *testing.T) {
	w := &Workflow{ID: "w", Tenant: "acme", IdempotencyKey: "k", Done: true, State: []byte(`{"x":1}`)}
	v1 := []byte{1}
	v1 = appendString(v1, w.ID)
	v1 = appendString(v1, w.Tenant)
	v1 = appendString(v1, w.IdempotencyKey)
	v1 = appendBool(v1, w.Done)
	v1 = appendBytes(v1, w.State)
	got, err := decodeWorkflow(v1)
	if err != nil || !reflect.DeepEqual(got, w) {
		t.Fatalf("decode v1 = %+v, %v", got, err)
	}
	w.FinishedAt = t0
	if got, err := decodeWorkflow(encodeWorkflow(w)); err != nil || !reflect.DeepEqual(got, w) {
		t.Fatalf("round trip = %+v, %v", got, err)
	}
	if _, err := decodeWorkflow([]byte{9}); err == nil {
		t.Fatal("unknown version decoded")
	}
}

func TestNotFoundNamesTheKind(t *testing.T) {
	forEachStore(t, func(t *testing.T, s Store, _ func() Store) {
		ctx := context.Background()
		_, terr := s.Get(ctx, "missing")
		_, werr := s.GetWorkflow(ctx, "missing")
		_, kerr := s.FindWorkflowByIdempotencyKey(ctx, "t", "k")
		if !errors.Is(terr, ErrTaskNotFound) || !errors.Is(terr, ErrNotFound) || !strings.Contains(terr.Error(), "task") {
			t.Fatalf("Get = %v", terr)
		}
		for _, err := range []error{werr, kerr} {
			if !errors.Is(err, ErrWorkflowNotFound) || !errors.Is(err, ErrNotFound) || strings.Contains(err.Error(), "task") {
				t.Fatalf("workflow lookup = %v", err)
			}
		}
	})
}

// fullTask must set every field, so that TestStoreRoundTripsEveryField covers a new
// field (and fails until the codec writes it).
func TestFullTaskSetsEveryField(t *testing.T) {
	v := reflect.ValueOf(*fullTask("a"))
	for i := range v.NumField() {
		if v.Field(i).IsZero() {
			t.Errorf("fullTask leaves task.Task.%s zero: set it", v.Type().Field(i).Name)
		}
	}
}
