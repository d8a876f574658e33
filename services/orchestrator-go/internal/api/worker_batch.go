package api

// Batching on the WorkerHub stream: assignments made together go to a worker in
// one AssignmentBatch, and a worker's ResultBatch is applied in its stated order.

import (
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/reflect/protoreflect"

	pb "github.com/taskloom/taskloom/services/orchestrator-go/gen/taskloom/v1"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/scheduler"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/workers"
)

// sessionResponses turns the outbox's messages into stream messages, in order.
// With batches, each run of consecutive assignments becomes one AssignmentBatch
// (a single assignment stays an Assignment); a cancel stays where it was posted.
func sessionResponses(msgs []workers.Message, batches bool, to sentTo) []*pb.SessionResponse {
	out := make([]*pb.SessionResponse, 0, len(msgs))
	var run *pb.AssignmentBatch
	for _, m := range msgs {
		if m.Assignment == nil || !batches {
			run = nil
			out = append(out, messageToProto(m, to))
			continue
		}
		a := assignmentToProto(m.Assignment, to)
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

// applyResults applies a worker's ResultBatch in one scheduler call: its chunks,
// then its results, then its credits, each in order (see the proto).
func (h *WorkerHub) applyResults(w *workers.Worker, b *pb.ResultBatch) {
	chunks := make([]scheduler.Chunk, len(b.GetChunks()))
	for i, c := range b.GetChunks() {
		chunks[i] = chunkFromProto(c)
	}
	results := make([]scheduler.Result, len(b.GetResults()))
	for i, r := range b.GetResults() {
		results[i] = resultFromProto(r)
	}
	h.sched.Report(w, chunks, results, b.GetCredits())
}

// messageCounters counts received messages by the name of their oneof field
// (worker_messages_total{kind}): one counter per kind the proto declares, resolved
// once, so a kind added to the proto is counted under its own name.
type messageCounters map[protoreflect.FieldNumber]prometheus.Counter

var sessionRequestMsg = (&pb.SessionRequest{}).ProtoReflect().Descriptor().Oneofs().ByName("msg")

func newMessageCounters(vec *prometheus.CounterVec) messageCounters {
	fields := sessionRequestMsg.Fields()
	out := make(messageCounters, fields.Len())
	for i := range fields.Len() {
		f := fields.Get(i)
		out[f.Number()] = vec.WithLabelValues(string(f.Name()))
	}
	return out
}

func (c messageCounters) count(req *pb.SessionRequest) {
	if f := req.ProtoReflect().WhichOneof(sessionRequestMsg); f != nil {
		c[f.Number()].Inc()
	}
}
