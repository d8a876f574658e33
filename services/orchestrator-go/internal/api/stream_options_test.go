package api

// A task's stream options travel from the client to the worker's assignment and back
// in every read of the task; bad options are refused naming the field.

import (
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	pb "github.com/taskloom/taskloom/services/orchestrator-go/gen/taskloom/v1"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/scheduler"
)

func TestStreamOptionsAreKeptWithTheTaskAndBoundsRefused(t *testing.T) {
	ts := startServer(t, scheduler.Config{})
	ctx := testCtx(t)
	connectWorker(t, ts, "echo", 0)
	opts := &pb.StreamOptions{TextOnly: true, BufferSize: proto.Int32(0), FlushIntervalMs: proto.Int32(40)}
	resp, err := ts.client.SubmitTask(ctx, &pb.SubmitTaskRequest{Task: &pb.TaskSpec{Agent: "echo", Stream: opts}})
	if err != nil {
		t.Fatal(err)
	}
	got, err := ts.client.GetTask(ctx, &pb.GetTaskRequest{Id: resp.GetTask().GetId()})
	if err != nil || !proto.Equal(got.GetTask().GetStream(), opts) {
		t.Fatalf("stream = %v, %v; want %v (a 0 buffer size is kept, not dropped)", got.GetTask().GetStream(), err, opts)
	}
	for _, tc := range []struct {
		opts  *pb.StreamOptions
		field string
	}{
		{&pb.StreamOptions{BufferSize: proto.Int32(-1)}, "task.stream.buffer_size"},
		{&pb.StreamOptions{FlushIntervalMs: proto.Int32(10_001)}, "task.stream.flush_interval_ms"},
	} {
		_, err := ts.client.SubmitTask(ctx, &pb.SubmitTaskRequest{Task: &pb.TaskSpec{Agent: "echo", Stream: tc.opts}})
		code, _, bad := errorInfo(t, err)
		if code != codes.InvalidArgument || bad.GetFieldViolations()[0].GetField() != tc.field ||
			!strings.Contains(bad.GetFieldViolations()[0].GetDescription(), "between") {
			t.Fatalf("%v: %v %v", tc.opts, code, bad)
		}
	}
}
