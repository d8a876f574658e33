package store

import (
	"context"
	"errors"
	"reflect"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/taskloom/taskloom/services/orchestrator-go/internal/redistest"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/task"
)

const (
	testFenceKey = DefaultRedisPrefix + "leader:fence"
	currentToken = 7 // what the fence key holds in these tests
)

// openFenced opens a Redis store fenced with token; the fence key holds
// currentToken unless the test moves it.
func openFenced(t *testing.T, url string, token int64) *Redis {
	t.Helper()
	ctx := context.Background()
	r, err := OpenRedis(ctx, url, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	if err := r.c.SetNX(ctx, testFenceKey, currentToken, 0).Err(); err != nil {
		t.Fatal(err)
	}
	if err := r.Fence(ctx, testFenceKey, token, nil); err != nil {
		t.Fatal(err)
	}
	return r
}

// snapshot is every key of the Redis with its serialized value (DUMP): two equal
// snapshots mean nothing was written in between.
func snapshot(t *testing.T, c *redis.Client) map[string]string {
	t.Helper()
	ctx := context.Background()
	out := map[string]string{}
	iter := c.Scan(ctx, 0, "*", 100).Iterator()
	for iter.Next(ctx) {
		v, err := c.Dump(ctx, iter.Val()).Result()
		if err != nil {
			t.Fatal(err)
		}
		out[iter.Val()] = v
	}
	if err := iter.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// Each write of the Store interface made with a superseded fencing token fails
// with ErrFenced and changes nothing, reads still work, and the store's owner
// hears of it; the current term's writes land.
func TestAWriteWithASupersededFencingTokenIsRefusedAndChangesNothing(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	current := openFenced(t, srv.URL, currentToken)
	old := openFenced(t, srv.URL, currentToken-1)
	var heard atomic.Int32
	if err := old.Fence(ctx, testFenceKey, currentToken-1, func(err error) {
		if errors.Is(err, ErrFenced) {
			heard.Add(1)
		}
	}); err != nil {
		t.Fatal(err)
	}

	done := fullTask("done")
	done.FinishedAt = time.Now().Add(-time.Hour)
	if err := current.Put(ctx, done, &task.Task{ID: "live", Agent: "echo", Status: task.StatusQueued}); err != nil {
		t.Fatal(err)
	}
	if err := current.PutWorkflow(ctx, &Workflow{ID: "wf-done", Done: true, FinishedAt: time.Now().Add(-time.Hour)}); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, current.c)

	late := fullTask("live") // the deposed leader's result for a task the new one runs
	writes := map[string]func() error{
		"Put":         func() error { return old.Put(ctx, late) },
		"PutWorkflow": func() error { return old.PutWorkflow(ctx, &Workflow{ID: "wf-late"}) },
		"PutAgents":   func() error { return old.PutAgents(ctx, task.AgentInfo{Name: "late"}) },
		"PruneFinished": func() error {
			_, err := old.PruneFinished(ctx, time.Now(), 10)
			return err
		},
		"PruneFinishedWorkflows": func() error {
			_, err := old.PruneFinishedWorkflows(ctx, time.Now(), 10)
			return err
		},
	}
	for name, write := range writes {
		if err := write(); !errors.Is(err, ErrFenced) {
			t.Errorf("%s with a superseded token: err = %v, want ErrFenced", name, err)
		}
	}
	if after := snapshot(t, current.c); !reflect.DeepEqual(after, before) {
		t.Fatalf("a fenced write changed the store:\nbefore %v\nafter  %v", keysOf(before), keysOf(after))
	}
	if int(heard.Load()) != len(writes) {
		t.Fatalf("the owner heard of %d refusals, want %d", heard.Load(), len(writes))
	}
	if got, err := old.Get(ctx, "live"); err != nil || got.Status != task.StatusQueued {
		t.Fatalf("a read through the old store = %+v, %v", got, err)
	}
	if n, err := current.PruneFinished(ctx, time.Now(), 10); err != nil || n != 1 {
		t.Fatalf("the current term's prune = %d, %v", n, err)
	}
}

// A store fenced with no token (a standby's) writes nothing.
func TestAStandbysStoreWritesNothing(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	standby := openFenced(t, srv.URL, 0)
	before := snapshot(t, standby.c)
	if err := standby.Put(ctx, fullTask("a")); !errors.Is(err, ErrFenced) {
		t.Fatalf("Put on a standby: %v", err)
	}
	if after := snapshot(t, standby.c); !reflect.DeepEqual(after, before) {
		t.Fatal("a standby's write landed")
	}
}

// The fence is a hook on the connection, not a check in each method: a write
// added later that calls Redis directly, single or pipelined, is fenced as well.
func TestTheFenceCoversWritesMadeOutsideTheStoreMethods(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	old := openFenced(t, srv.URL, currentToken-1)
	before := snapshot(t, old.c)
	if err := old.c.HSet(ctx, "k", "f", "v").Err(); !errors.Is(err, ErrFenced) {
		t.Errorf("a single write: %v", err)
	}
	if _, err := old.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.Get(ctx, "x")
		p.Incr(ctx, "n")
		return nil
	}); !errors.Is(err, ErrFenced) {
		t.Errorf("a pipeline with a write: %v", err)
	}
	if err := old.c.Eval(ctx, "return redis.call('SET', KEYS[1], 'v')", []string{"s"}).Err(); !errors.Is(err, ErrFenced) {
		t.Errorf("a script: %v", err)
	}
	if after := snapshot(t, old.c); !reflect.DeepEqual(after, before) {
		t.Fatal("a fenced write landed")
	}

	current := openFenced(t, srv.URL, currentToken)
	cmds, err := current.c.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Incr(ctx, "n")
		p.Incr(ctx, "n")
		return nil
	})
	if err != nil || cmds[1].(*redis.IntCmd).Val() != 2 {
		t.Fatalf("the current term's transaction: %v, %v", cmds, err)
	}
}

func keysOf(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}
