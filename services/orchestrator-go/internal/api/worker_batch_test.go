package api

import (
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
	if got := describe(sessionResponses(msgs, true)); got != "[abc]!d![ef]" {
		t.Fatalf("batched = %s, want [abc]!d![ef]", got)
	}
	if got := describe(sessionResponses(msgs, false)); got != "abc!d!ef" {
		t.Fatalf("unbatched = %s, want abc!d!ef (a worker that did not ask for batches)", got)
	}
}

// A worker that registered with batches gets every assignment in order, and one
// ResultBatch finishes its tasks with their chunks in order and grants its credits.
func TestBatchingWorkerRoundTrip(t *testing.T) {
	ts := startServer(t, scheduler.Config{})
	ctx := testCtx(t)
	stream, err := ts.hub.Session(ctx)
	if err != nil {
		t.Fatal(err)
	}
	w := &fakeWorker{t: t, stream: stream}
	w.send(&pb.SessionRequest{Msg: &pb.SessionRequest_Register{Register: &pb.Register{
		Agents: []*pb.AgentInfo{{Name: "echo"}}, Concurrency: 5, Batches: true,
	}}})
	if w.recv().GetRegistered() == nil {
		t.Fatal("not registered")
	}
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
	var got []*pb.Assignment
	for len(got) < len(specs) {
		m := w.recv()
		if b := m.GetAssignments(); b != nil {
			got = append(got, b.GetAssignments()...)
		} else if a := m.GetAssignment(); a != nil {
			got = append(got, a)
		} else {
			t.Fatalf("unexpected message %v", m)
		}
	}
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
