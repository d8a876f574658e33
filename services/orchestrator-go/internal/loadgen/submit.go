package loadgen

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/taskloom/taskloom/services/orchestrator-go/gen/taskloom/v1"
)

// submitOptions says how tasks are submitted: by `submitters` goroutines, each
// sending batches of `batch` specs (SubmitTasks; SubmitTask when batch is 1), at
// most `rate` tasks/s in all when rate > 0.
type submitOptions struct {
	agent      string
	total      int
	submitters int
	batch      int
	rate       float64
}

// submitStats is what the submitters saw.
type submitStats struct {
	start        time.Time // just before the first call
	end          time.Time // when the last call returned
	accepted     int64
	latencies    []time.Duration // one per call
	backpressure int64           // RESOURCE_EXHAUSTED answers (retried after the hint)
	errs         []error
}

const maxErrorsKept = 10

// submitAll submits opts.total no-op tasks through clients (spread over the submitters).
func submitAll(ctx context.Context, clients []pb.OrchestratorServiceClient, opts submitOptions) *submitStats {
	var (
		next     atomic.Int64 // tasks claimed by submitters
		accepted atomic.Int64
		pressure atomic.Int64
		mu       sync.Mutex
		stats    = &submitStats{}
		wg       sync.WaitGroup
	)
	var pace <-chan time.Time
	if opts.rate > 0 {
		ticker := time.NewTicker(time.Duration(float64(time.Second) * float64(opts.batch) / opts.rate))
		defer ticker.Stop()
		pace = ticker.C
	}
	stats.start = time.Now()
	for i := range opts.submitters {
		client := clients[i%len(clients)]
		wg.Add(1)
		go func() {
			defer wg.Done()
			var lat []time.Duration
			var errs []error
			defer func() {
				mu.Lock()
				stats.latencies = append(stats.latencies, lat...)
				stats.errs = append(stats.errs, errs...)
				mu.Unlock()
			}()
			for {
				n := int(next.Add(int64(opts.batch)))
				size := min(opts.batch, opts.total-(n-opts.batch))
				if size <= 0 {
					return
				}
				if pace != nil {
					select {
					case <-pace:
					case <-ctx.Done():
						return
					}
				}
				took, err := submitBatch(ctx, client, opts.agent, size, &pressure)
				if err != nil {
					if ctx.Err() != nil {
						return
					}
					if len(errs) < maxErrorsKept {
						errs = append(errs, err)
					}
					continue
				}
				lat = append(lat, took)
				accepted.Add(int64(size))
			}
		}()
	}
	wg.Wait()
	stats.end = time.Now()
	stats.accepted = accepted.Load()
	stats.backpressure = pressure.Load()
	return stats
}

// submitBatch submits size tasks in one call, retrying after the server's hint
// while the queue is full. It returns the latency of the successful call.
func submitBatch(ctx context.Context, client pb.OrchestratorServiceClient, agent string, size int, pressure *atomic.Int64) (time.Duration, error) {
	for {
		t0 := time.Now()
		var err error
		if size == 1 {
			_, err = client.SubmitTask(ctx, &pb.SubmitTaskRequest{Task: &pb.TaskSpec{Agent: agent}})
		} else {
			specs := make([]*pb.TaskSpec, size)
			for i := range specs {
				specs[i] = &pb.TaskSpec{Agent: agent}
			}
			_, err = client.SubmitTasks(ctx, &pb.SubmitTasksRequest{Tasks: specs})
		}
		took := time.Since(t0)
		if err == nil {
			return took, nil
		}
		wait, full := retryAfter(err)
		if !full {
			return 0, err
		}
		pressure.Add(1)
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
}

// retryAfter reports whether err is RESOURCE_EXHAUSTED and the wait it suggests.
func retryAfter(err error) (time.Duration, bool) {
	st, ok := status.FromError(err)
	if !ok || st.Code() != codes.ResourceExhausted {
		return 0, false
	}
	wait := 50 * time.Millisecond
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok {
			if v, err := strconv.Atoi(info.GetMetadata()["retry_after_ms"]); err == nil && v > 0 {
				wait = time.Duration(v) * time.Millisecond
			}
		}
	}
	return wait, true
}

// isUnimplemented reports whether the server does not offer the called RPC.
func isUnimplemented(err error) bool {
	return status.Code(err) == codes.Unimplemented
}

var errIncomplete = errors.New("not every task completed before the timeout")
