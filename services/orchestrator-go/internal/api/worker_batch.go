package api

// Batching on the WorkerHub stream: assignments made together go to a worker in
// one AssignmentBatch, and a worker's ResultBatch is applied in its stated order.

import (
	"github.com/prometheus/client_golang/prometheus"

	pb "github.com/taskloom/taskloom/services/orchestrator-go/gen/taskloom/v1"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/telemetry"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/workers"
)

// sessionResponses turns the outbox's messages into stream messages, in order.
// With batches, each run of consecutive assignments becomes one AssignmentBatch
// (a single assignment stays an Assignment); a cancel stays where it was posted.
func sessionResponses(msgs []workers.Message, batches bool) []*pb.SessionResponse {
	out := make([]*pb.SessionResponse, 0, len(msgs))
	var run *pb.AssignmentBatch
	for _, m := range msgs {
		if m.Assignment == nil || !batches {
			run = nil
			out = append(out, messageToProto(m))
			continue
		}
		a := assignmentToProto(m.Assignment)
		if run != nil {
			run.Assignments = append(run.Assignments, a)
			continue
		}
		if last := len(out) - 1; last >= 0 {
			if single := out[last].GetAssignment(); single != nil { // the run's second: batch them
				run = &pb.AssignmentBatch{Assignments: []*pb.Assignment{single, a}}
				out[last] = &pb.SessionResponse{Msg: &pb.SessionResponse_Assignments{Assignments: run}}
				continue
			}
		}
		out = append(out, &pb.SessionResponse{Msg: &pb.SessionResponse_Assignment{Assignment: a}})
	}
	return out
}

// applyResults applies a worker's ResultBatch: its chunks, then its results, then
// its credits, each in order (see the proto).
func (h *WorkerHub) applyResults(w *workers.Worker, b *pb.ResultBatch) {
	for _, c := range b.GetChunks() {
		h.chunk(w, c)
	}
	for _, r := range b.GetResults() {
		h.sched.Complete(w, resultFromProto(r))
	}
	if n := b.GetCredits(); n > 0 {
		h.sched.Credit(w, n)
	}
}

// messageCounter counts a session's received messages by kind
// (worker_messages_total), resolving each kind's counter once per session.
type messageCounter struct {
	vec  *prometheus.CounterVec
	byID map[string]prometheus.Counter
}

func newMessageCounter(m *telemetry.Metrics) *messageCounter {
	return &messageCounter{vec: m.WorkerMessages, byID: map[string]prometheus.Counter{}}
}

func (c *messageCounter) count(req *pb.SessionRequest) {
	kind := messageKind(req)
	counter, ok := c.byID[kind]
	if !ok {
		counter = c.vec.WithLabelValues(kind)
		c.byID[kind] = counter
	}
	counter.Inc()
}

// messageKind names the message's oneof field (a bounded label value).
func messageKind(req *pb.SessionRequest) string {
	switch req.GetMsg().(type) {
	case *pb.SessionRequest_Register:
		return "register"
	case *pb.SessionRequest_Credit:
		return "credit"
	case *pb.SessionRequest_Heartbeat:
		return "heartbeat"
	case *pb.SessionRequest_Chunk:
		return "chunk"
	case *pb.SessionRequest_Result:
		return "result"
	case *pb.SessionRequest_Drain:
		return "drain"
	case *pb.SessionRequest_Results:
		return "results"
	default:
		return "unknown"
	}
}
