package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/protobuf/types/known/structpb"

	pb "github.com/taskloom/taskloom/services/orchestrator-go/gen/taskloom/v1"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/scheduler"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/task"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/workers"
)

func TestSessionResponsesBatchRunsOfAssignmentsAndKeepOrder(t *testing.T) {
	assign := func(id string) workers.Message {
		return workers.Message{Assignment: &workers.Assignment{Task: &task.Task{ID: id}, LeaseID: "l-" + id, Deadline: time.Unix(1, 0)}}
	}
	cancel := workers.Message{Cancel: &workers.Cancel{TaskID: "x", LeaseID: "l-x"}}
	msgs := []workers.Message{assign("a"), assign("b"), assign("c"), cancel, assign("d"), cancel, assign("e"), assign("f")}
	describe := func(out []*pb.SessionResponse) string {
		s := ""
		for _, m := range out {
			switch {
			case m.GetAssignments() != nil:
				s += "["
				for _, a := range m.GetAssignments().GetAssignments() {
					s += a.GetTask().GetId()
				}
				s += "]"
			case m.GetAssignment() != nil:
				s += m.GetAssignment().GetTask().GetId()
			case m.GetCancel() != nil:
				s += "!"
			}
		}
		return s
	}
	if got := describe(sessionResponses(msgs, true, sentTo{})); got != "[abc]!d![ef]" {
		t.Fatalf("batched = %s, want [abc]!d![ef]", got)
	}
	if got := describe(sessionResponses(msgs, false, sentTo{})); got != "abc!d!ef" {
		t.Fatalf("unbatched = %s, want abc!d!ef (a worker that did not ask for batches)", got)
	}
}

// A worker that registered with batches gets every assignment in order, and one
// ResultBatch finishes its tasks with their chunks in order and grants its credits.
func TestBatchingWorkerRoundTrip(t *testing.T) {
	ts := startServer(t, scheduler.Config{})
	ctx := testCtx(t)
	w := connectBatchingWorker(ctx, t, ts, 5)
	specs := make([]*pb.TaskSpec, 5)
	for i := range specs {
		specs[i] = &pb.TaskSpec{Agent: "echo"}
	}
	sub, err := ts.client.SubmitTasks(ctx, &pb.SubmitTasksRequest{Tasks: specs})
	if err != nil {
		t.Fatal(err)
	}
	// The last task: its done event comes once every earlier result is durable.
	watch, err := ts.client.WatchTask(ctx, &pb.WatchTaskRequest{Id: sub.GetTasks()[len(specs)-1].GetId()})
	if err != nil {
		t.Fatal(err)
	}
	w.send(&pb.SessionRequest{Msg: &pb.SessionRequest_Credit{Credit: &pb.CreditGrant{Credits: 5}}})
	got := w.recvAssignments(len(specs))
	batch := &pb.ResultBatch{Credits: 5}
	for i, a := range got {
		if a.GetTask().GetId() != sub.GetTasks()[i].GetId() {
			t.Fatalf("assignment %d is task %s, want %s (submission order)", i, a.GetTask().GetId(), sub.GetTasks()[i].GetId())
		}
		for seq, text := range []string{"to", "ken"} {
			batch.Chunks = append(batch.Chunks, &pb.TaskChunk{TaskId: a.GetTask().GetId(), LeaseId: a.GetLeaseId(), Seq: int64(seq), Text: text})
		}
		batch.Results = append(batch.Results, &pb.TaskResult{TaskId: a.GetTask().GetId(), LeaseId: a.GetLeaseId(), Output: structpb.NewStringValue(fmt.Sprint(i))})
	}
	w.send(&pb.SessionRequest{Msg: &pb.SessionRequest_Results{Results: batch}})

	text, last := watchedText(t, watch)
	if text != "token" || last.GetType() != pb.TaskEventType_TASK_EVENT_TYPE_DONE {
		t.Fatalf("the watcher saw %q then %v; want the chunks in order, then done", text, last)
	}
	for i, s := range sub.GetTasks() {
		tk, err := ts.client.GetTask(ctx, &pb.GetTaskRequest{Id: s.GetId()})
		if err != nil {
			t.Fatal(err)
		}
		if tk.GetTask().GetStatus() != pb.TaskStatus_TASK_STATUS_SUCCEEDED || tk.GetTask().GetResult().GetStringValue() != fmt.Sprint(i) {
			t.Fatalf("task %d after the batch: %v", i, tk.GetTask())
		}
	}
	// Counted at the orchestrator: the register, the credit grant and one batch.
	if n := testutil.ToFloat64(ts.sched.Metrics().WorkerMessages.WithLabelValues("results")); n != 1 {
		t.Fatalf("worker_messages_total{kind=results} = %v, want 1", n)
	}
	if n := testutil.ToFloat64(ts.sched.Metrics().WorkerMessages.WithLabelValues("chunk")); n != 0 {
		t.Fatalf("worker_messages_total{kind=chunk} = %v, want 0 (the chunks came in the batch)", n)
	}
	// The batch's credits were granted: a new task is assigned to the worker.
	more, err := ts.client.SubmitTask(ctx, &pb.SubmitTaskRequest{Task: &pb.TaskSpec{Agent: "echo"}})
	if err != nil {
		t.Fatal(err)
	}
	if a := w.recv().GetAssignment(); a.GetTask().GetId() != more.GetTask().GetId() {
		t.Fatalf("after the batch's credits, got %v; want the new task", a)
	}
}

// connectBatchingWorker registers a worker of the echo agent with batches set; it
// grants no credits.
func connectBatchingWorker(parent context.Context, t *testing.T, ts *testServer, concurrency int32) *fakeWorker {
	t.Helper()
	w, reg := openWorker(parent, t, ts, &pb.Register{
		Agents: []*pb.AgentInfo{{Name: "echo"}}, Concurrency: concurrency, Batches: true,
	})
	if reg == nil {
		t.Fatal("not registered")
	}
	return w
}

// recvAssignments reads n assignments, batched or single, in the order sent.
func (w *fakeWorker) recvAssignments(n int) []*pb.Assignment {
	w.t.Helper()
	var got []*pb.Assignment
	for len(got) < n {
		m := w.recv()
		if b := m.GetAssignments(); b != nil {
			got = append(got, b.GetAssignments()...)
		} else if a := m.GetAssignment(); a != nil {
			got = append(got, a)
		} else {
			w.t.Fatalf("unexpected message %v", m)
		}
	}
	return got
}

// A batching worker that dies after reporting part of an AssignmentBatch loses
// nothing: the tasks it reported stay done once, the others run again on the next
// worker with new leases, and a late report of the dead worker's leases is ignored.
func TestBatchingWorkerKilledMidBatchLosesNothing(t *testing.T) {
	ts := startServer(t, scheduler.Config{})
	ctx := testCtx(t)
	const n = 6
	w1 := connectBatchingWorker(ctx, t, ts, n)
	specs := make([]*pb.TaskSpec, n)
	for i := range specs {
		specs[i] = &pb.TaskSpec{Agent: "echo"}
	}
	if _, err := ts.client.SubmitTasks(ctx, &pb.SubmitTasksRequest{Tasks: specs}); err != nil {
		t.Fatal(err)
	}
	w1.send(&pb.SessionRequest{Msg: &pb.SessionRequest_Credit{Credit: &pb.CreditGrant{Credits: n}}})
	first := w1.recvAssignments(n)
	// Half the batch reported (a chunk and a result each), then the worker dies.
	reported := &pb.ResultBatch{Credits: n / 2}
	for _, a := range first[:n/2] {
		id, lease := a.GetTask().GetId(), a.GetLeaseId()
		reported.Chunks = append(reported.Chunks, &pb.TaskChunk{TaskId: id, LeaseId: lease, Text: "first"})
		reported.Results = append(reported.Results, &pb.TaskResult{TaskId: id, LeaseId: lease, Output: structpb.NewStringValue("first")})
	}
	w1.send(&pb.SessionRequest{Msg: &pb.SessionRequest_Results{Results: reported}})
	// The last task's done event comes once every earlier result is durable.
	watch, err := ts.client.WatchTask(ctx, &pb.WatchTaskRequest{Id: first[n/2-1].GetTask().GetId()})
	if err != nil {
		t.Fatal(err)
	}
	if _, last := watchedText(t, watch); last.GetType() != pb.TaskEventType_TASK_EVENT_TYPE_DONE {
		t.Fatalf("the reported half did not finish: %v", last)
	}
	w1.cancel()

	w2 := connectBatchingWorker(ctx, t, ts, n)
	w2.send(&pb.SessionRequest{Msg: &pb.SessionRequest_Credit{Credit: &pb.CreditGrant{Credits: n}}})
	again := w2.recvAssignments(n - n/2)
	unreported := map[string]string{} // task -> its lease on the dead worker
	for _, a := range first[n/2:] {
		unreported[a.GetTask().GetId()] = a.GetLeaseId()
	}
	rerun := &pb.ResultBatch{Credits: int32(len(again))}
	for _, a := range again {
		oldLease, ok := unreported[a.GetTask().GetId()]
		if !ok || a.GetAttempt() != 2 || a.GetLeaseId() == oldLease {
			t.Fatalf("re-run %v; want an unreported task, attempt 2, a new lease", a)
		}
		delete(unreported, a.GetTask().GetId()) // each once
		rerun.Results = append(rerun.Results, &pb.TaskResult{TaskId: a.GetTask().GetId(), LeaseId: a.GetLeaseId(), Output: structpb.NewStringValue("again")})
	}
	// The dead worker's leases are void: a straggling report of them changes nothing.
	late := &pb.ResultBatch{}
	for _, a := range first[n/2:] {
		late.Results = append(late.Results, &pb.TaskResult{TaskId: a.GetTask().GetId(), LeaseId: a.GetLeaseId(), Output: structpb.NewStringValue("late")})
	}
	w2.send(&pb.SessionRequest{Msg: &pb.SessionRequest_Results{Results: late}})
	w2.send(&pb.SessionRequest{Msg: &pb.SessionRequest_Results{Results: rerun}})
	for _, a := range again {
		watch, err := ts.client.WatchTask(ctx, &pb.WatchTaskRequest{Id: a.GetTask().GetId()})
		if err != nil {
			t.Fatal(err)
		}
		watchedText(t, watch)
	}
	for i, a := range first {
		tk, err := ts.client.GetTask(ctx, &pb.GetTaskRequest{Id: a.GetTask().GetId()})
		if err != nil {
			t.Fatal(err)
		}
		want, attempts := "first", int32(1)
		if i >= n/2 {
			want, attempts = "again", 2
		}
		got := tk.GetTask()
		if got.GetStatus() != pb.TaskStatus_TASK_STATUS_SUCCEEDED || got.GetResult().GetStringValue() != want || got.GetAttempts() != attempts {
			t.Fatalf("task %d = %v; want succeeded with %q after %d attempts", i, got, want, attempts)
		}
	}
}

// watchedText reads a task's watch to its end: the chunks' text joined, and the last
// event (which must be the only DONE).
func watchedText(t *testing.T, watch pb.OrchestratorService_WatchTaskClient) (string, *pb.TaskEvent) {
	t.Helper()
	var text string
	var last *pb.TaskEvent
	for {
		resp, err := watch.Recv()
		if errors.Is(err, io.EOF) {
			return text, last
		}
		if err != nil {
			t.Fatalf("watch: %v", err)
		}
		if last.GetType() == pb.TaskEventType_TASK_EVENT_TYPE_DONE {
			t.Fatalf("event after DONE: %v", resp)
		}
		last = resp.GetEvent()
		if last.GetType() == pb.TaskEventType_TASK_EVENT_TYPE_CHUNK {
			text += last.GetChunk()
		}
	}
}
