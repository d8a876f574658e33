package api

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"maps"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/taskloom/taskloom/services/orchestrator-go/gen/taskloom/v1"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/events"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/scheduler"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/task"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/tracing"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/workers"
)

// WorkerHub implements taskloom.v1.WorkerHubService: one Session per worker.
//
// Workers are trusted peers once authenticated: a session needs the worker token
// (auth.go) whenever authentication is on, and then may register agents, take
// assignments of every tenant and report results. The token travels in plain text
// unless the port is behind TLS, so keep the gRPC port on a private network. A
// guard on resources: the agent
// catalog is capped (workers.DefaultMaxAgents), so a registration with too many new
// agent names is refused with RESOURCE_EXHAUSTED and the agent metric label stays
// bounded.
type WorkerHub struct {
	pb.UnimplementedWorkerHubServiceServer
	sched   *scheduler.Scheduler
	log     *slog.Logger
	counted messageCounters
	// spans records the assignment spans; nil: tracing is off.
	spans *tracing.Assignments
}

// NewWorkerHub returns the WorkerHubService handler; spans may be nil (tracing off).
func NewWorkerHub(sched *scheduler.Scheduler, log *slog.Logger, spans *tracing.Assignments) *WorkerHub {
	return &WorkerHub{sched: sched, log: log, counted: newMessageCounters(sched.Metrics().WorkerMessages), spans: spans}
}

// registerTimeout bounds how long a new stream may wait before sending Register.
const registerTimeout = 30 * time.Second

// Session implements WorkerHubService. The handler's goroutine sends (assignments
// and cancels from the worker's outbox); a second goroutine receives. The session
// ends when the worker half-closes or breaks the stream, when a newer session takes
// its worker id, or at shutdown; its leases are then requeued.
func (h *WorkerHub) Session(stream pb.WorkerHubService_SessionServer) error {
	ctx := stream.Context()
	reg, batches, err := h.receiveRegister(ctx, stream)
	if err != nil {
		return toStatus(h.log, err)
	}
	w, err := h.sched.Connect(reg)
	if err != nil {
		return toStatus(h.log, err)
	}
	defer h.sched.Disconnect(w)
	cfg := h.sched.Config()
	if err := stream.Send(&pb.SessionResponse{Msg: &pb.SessionResponse_Registered{Registered: &pb.Registered{
		WorkerId: w.ID, HeartbeatInterval: durationpb.New(cfg.HeartbeatInterval), LeaseTtl: durationpb.New(cfg.LeaseTTL),
	}}}); err != nil {
		return err
	}

	recvErr := make(chan error, 1)
	go func() {
		err := h.receive(stream, w)
		recvErr <- err
		h.sched.Disconnect(w) // closes the outbox, which ends the send loop below
	}()

	for {
		msgs, closed, err := w.Outbox.Next(ctx)
		if closed {
			if err != nil { // replaced or shutting down
				return toStatus(h.log, err)
			}
			if err := <-recvErr; err != nil && !errors.Is(err, io.EOF) {
				return toStatus(h.log, err)
			}
			return nil
		}
		if err != nil {
			return toStatus(h.log, err)
		}
		for _, m := range sessionResponses(msgs, batches, sentTo{w.ID, h.spans}) {
			if err := stream.Send(m); err != nil {
				return err
			}
		}
	}
}

// receiveRegister reads the worker's first message, which must be a valid Register;
// batches: the worker reads AssignmentBatch.
func (h *WorkerHub) receiveRegister(ctx context.Context, stream pb.WorkerHubService_SessionServer) (reg scheduler.Registration, batches bool, err error) {
	type received struct {
		req *pb.SessionRequest
		err error
	}
	ch := make(chan received, 1)
	go func() {
		req, err := stream.Recv()
		ch <- received{req, err}
	}()
	var r received
	select {
	case r = <-ch:
	case <-time.After(registerTimeout):
		return reg, false, invalid("register", "no register message within %s", registerTimeout)
	case <-ctx.Done():
		return reg, false, ctx.Err()
	}
	if r.err != nil {
		return reg, false, r.err
	}
	m := r.req.GetRegister()
	if m == nil {
		return reg, false, invalid("register", "the first message of a session must be register")
	}
	reg = scheduler.Registration{
		WorkerID: m.GetWorkerId(), Concurrency: m.GetConcurrency(),
		Hostname: m.GetHostname(), Version: m.GetVersion(),
	}
	for _, a := range m.GetAgents() { // names checked by the guard
		reg.Agents = append(reg.Agents, agentFromProto(a))
	}
	return reg, m.GetBatches(), nil
}

// receive applies the worker's messages until the stream ends.
func (h *WorkerHub) receive(stream pb.WorkerHubService_SessionServer, w *workers.Worker) error {
	for {
		req, err := stream.Recv()
		if err != nil {
			return err
		}
		h.counted.count(req)
		switch m := req.GetMsg().(type) {
		case *pb.SessionRequest_Credit:
			h.sched.Credit(w, m.Credit.GetCredits())
		case *pb.SessionRequest_Heartbeat:
			h.sched.Heartbeat(w, m.Heartbeat.GetLeaseIds())
		case *pb.SessionRequest_Chunk:
			h.chunk(w, m.Chunk)
		case *pb.SessionRequest_Result:
			h.sched.Complete(w, resultFromProto(m.Result))
		case *pb.SessionRequest_Results:
			h.applyResults(w, m.Results)
		case *pb.SessionRequest_Drain:
			h.sched.Drain(w)
		case *pb.SessionRequest_Agents:
			h.updateAgents(w, m.Agents)
		case *pb.SessionRequest_Journal:
			h.sched.Journal(w, m.Journal.GetLeaseId(), journalFromProto(m.Journal))
		case *pb.SessionRequest_Register:
			return invalid("register", "register may only be sent once per session")
		default:
			h.log.Warn("ignored unknown session message", "worker_id", w.ID)
		}
	}
}

func (h *WorkerHub) chunk(w *workers.Worker, c *pb.TaskChunk) {
	ch := chunkFromProto(c)
	h.sched.ChunkPiece(w, ch.TaskID, ch.LeaseID, ch.Seq, ch.Piece)
}

func chunkFromProto(c *pb.TaskChunk) scheduler.Chunk {
	return scheduler.Chunk{
		TaskID: c.GetTaskId(), LeaseID: c.GetLeaseId(), Seq: c.GetSeq(),
		Piece: events.Piece{Kind: int32(c.GetKind()), Text: c.GetText(), Data: c.GetData()},
	}
}

func resultFromProto(r *pb.TaskResult) scheduler.Result {
	out := scheduler.Result{TaskID: r.GetTaskId(), LeaseID: r.GetLeaseId(), Usage: usageFromProto(r.GetUsage())}
	if r.GetError() != nil {
		out.Failure = failureFromProto(r.GetError())
		return out
	}
	out.Output, _ = valueToJSON(r.GetOutput())
	return out
}

// sentTo is the worker a session's messages go to, and the recorder of their
// assignment spans (nil: tracing off).
type sentTo struct {
	workerID string
	spans    *tracing.Assignments
}

func messageToProto(m workers.Message, to sentTo) *pb.SessionResponse {
	if a := m.Assignment; a != nil {
		return &pb.SessionResponse{Msg: &pb.SessionResponse_Assignment{Assignment: assignmentToProto(a, to)}}
	}
	c := m.Cancel
	return &pb.SessionResponse{Msg: &pb.SessionResponse_Cancel{Cancel: &pb.CancelAssignment{
		TaskId: c.TaskID, LeaseId: c.LeaseID, Reason: c.Reason,
	}}}
}

// assignmentToProto is the assignment the worker receives. With its spans recorded,
// the task's traceparent label is the task.assign span's, so the worker's run
// hangs under it; the stored label is unchanged.
func assignmentToProto(a *workers.Assignment, to sentTo) *pb.Assignment {
	out := &pb.Assignment{
		Task: taskToProto(a.Task), LeaseId: a.LeaseID, Attempt: a.Attempt, Deadline: timestamppb.New(a.Deadline),
		Journal: journalToProto(a.Journal, a.LeaseID),
	}
	if to.spans == nil {
		return out
	}
	tp := to.spans.Record(tracing.Assignment{
		Traceparent: a.Task.Labels[task.LabelTraceparent], TaskID: a.Task.ID, WorkerID: to.workerID,
		Attempt: a.Attempt, EnqueuedAt: a.EnqueuedAt, AssignedAt: a.AssignedAt,
	})
	if tp != "" { // the labels are the task's own map: replaced, never written
		labels := maps.Clone(out.Task.Labels)
		labels[task.LabelTraceparent] = tp
		out.Task.Labels = labels
	}
	return out
}
