package loadgen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"

	pb "github.com/taskloom/taskloom/services/orchestrator-go/gen/taskloom/v1"
)

// fleet is the set of fake workers of one run and the counters they share.
type fleet struct {
	workers   []*fakeWorker
	completed atomic.Int64 // results sent
	running   atomic.Int64 // assignments received and not yet completed
	peak      atomic.Int64 // most assignments held at once
	cancels   atomic.Int64 // CancelAssignment messages received
	done      chan struct{}
	target    int64 // close done once this many results are sent (0: never)
	doneOnce  sync.Once
}

// fakeWorker is one WorkerHub session that completes every assignment with an empty
// result, at once or after hold, and grants the credit back.
type fakeWorker struct {
	id     string
	fleet  *fleet
	stream pb.WorkerHubService_SessionClient
	hold   time.Duration

	finished chan finishedTask // assignments ready to report, for the sender

	mu        sync.Mutex
	leases    map[string]struct{} // held, for heartbeats
	lastTask  string              // task of the latest result sent
	schedLat  []time.Duration     // orchestrator: created_at -> started_at
	assignLat []time.Duration     // created_at -> assignment received here
	err       error
}

type finishedTask struct {
	taskID, leaseID string
}

type workerOptions struct {
	agent       string
	concurrency int
	hold        time.Duration
}

// startFleet opens n sessions, one client connection each (like n worker processes),
// registers the agent and grants each worker its whole concurrency as credit.
func startFleet(ctx context.Context, addr string, n int, opts workerOptions, target int64, dial func(string) (*grpc.ClientConn, error)) (*fleet, func(), error) {
	f := &fleet{done: make(chan struct{}), target: target}
	var conns []*grpc.ClientConn
	closeAll := func() {
		for _, w := range f.workers {
			w.close()
		}
		for _, c := range conns {
			_ = c.Close()
		}
	}
	for i := range n {
		conn, err := dial(addr)
		if err != nil {
			closeAll()
			return nil, nil, err
		}
		conns = append(conns, conn)
		w, err := startWorker(ctx, pb.NewWorkerHubServiceClient(conn), fmt.Sprintf("loadgen-%d-%d", time.Now().UnixNano(), i), opts, f)
		if err != nil {
			closeAll()
			return nil, nil, err
		}
		f.workers = append(f.workers, w)
	}
	return f, closeAll, nil
}

func startWorker(ctx context.Context, client pb.WorkerHubServiceClient, id string, opts workerOptions, f *fleet) (*fakeWorker, error) {
	stream, err := client.Session(ctx)
	if err != nil {
		return nil, fmt.Errorf("open worker session: %w", err)
	}
	err = stream.Send(&pb.SessionRequest{Msg: &pb.SessionRequest_Register{Register: &pb.Register{
		WorkerId: id, Concurrency: int32(opts.concurrency), Hostname: "loadgen", Version: "loadgen",
		Agents: []*pb.AgentInfo{{Name: opts.agent, Description: "no-op agent of the load generator", Provider: "none"}},
	}}})
	if err != nil {
		return nil, fmt.Errorf("send register: %w", err)
	}
	first, err := stream.Recv()
	if err != nil {
		return nil, fmt.Errorf("await registered: %w", err)
	}
	reg := first.GetRegistered()
	if reg == nil {
		return nil, errors.New("the hub's first message was not Registered")
	}
	w := &fakeWorker{
		id: id, fleet: f, stream: stream, hold: opts.hold,
		finished: make(chan finishedTask, opts.concurrency+1),
		leases:   map[string]struct{}{},
	}
	if err := stream.Send(credit(opts.concurrency)); err != nil {
		return nil, fmt.Errorf("grant credits: %w", err)
	}
	heartbeat := reg.GetHeartbeatInterval().AsDuration()
	go w.receive()
	go w.send(ctx, heartbeat)
	return w, nil
}

func credit(n int) *pb.SessionRequest {
	return &pb.SessionRequest{Msg: &pb.SessionRequest_Credit{Credit: &pb.CreditGrant{Credits: int32(n)}}}
}

// receive takes assignments: it records their latency and completes them (now, or
// after hold).
func (w *fakeWorker) receive() {
	for {
		msg, err := w.stream.Recv()
		if err != nil {
			if !errors.Is(err, io.EOF) {
				w.fail(err)
			}
			return
		}
		if msg.GetCancel() != nil {
			w.fleet.cancels.Add(1)
			continue
		}
		a := msg.GetAssignment()
		if a == nil {
			continue
		}
		now := time.Now()
		t := a.GetTask()
		created := t.GetCreatedAt().AsTime()
		w.mu.Lock()
		if t.GetStartedAt() != nil {
			w.schedLat = append(w.schedLat, t.GetStartedAt().AsTime().Sub(created))
		}
		w.assignLat = append(w.assignLat, now.Sub(created))
		if w.hold > 0 {
			w.leases[a.GetLeaseId()] = struct{}{}
		}
		w.mu.Unlock()
		w.fleet.notePeak(w.fleet.running.Add(1))
		ft := finishedTask{taskID: t.GetId(), leaseID: a.GetLeaseId()}
		if w.hold == 0 {
			w.finished <- ft
			continue
		}
		time.AfterFunc(w.hold, func() { w.finished <- ft })
	}
}

// send is the stream's only sender: it reports finished tasks and grants their
// credits back in one grant per batch, and heartbeats held leases.
func (w *fakeWorker) send(ctx context.Context, heartbeat time.Duration) {
	if heartbeat <= 0 {
		heartbeat = 2 * time.Second
	}
	tick := time.NewTicker(heartbeat)
	defer tick.Stop()
	batch := make([]finishedTask, 0, 256)
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			if err := w.stream.Send(w.heartbeat()); err != nil {
				w.fail(err)
				return
			}
		case ft := <-w.finished:
			batch = append(batch[:0], ft)
		drain:
			for len(batch) < cap(batch) {
				select {
				case ft := <-w.finished:
					batch = append(batch, ft)
				default:
					break drain
				}
			}
			if err := w.report(batch); err != nil {
				w.fail(err)
				return
			}
		}
	}
}

func (w *fakeWorker) report(batch []finishedTask) error {
	for _, ft := range batch {
		err := w.stream.Send(&pb.SessionRequest{Msg: &pb.SessionRequest_Result{Result: &pb.TaskResult{
			TaskId: ft.taskID, LeaseId: ft.leaseID,
		}}})
		if err != nil {
			return err
		}
	}
	if err := w.stream.Send(credit(len(batch))); err != nil {
		return err
	}
	w.mu.Lock()
	w.lastTask = batch[len(batch)-1].taskID
	if w.hold > 0 {
		for _, ft := range batch {
			delete(w.leases, ft.leaseID)
		}
	}
	w.mu.Unlock()
	w.fleet.running.Add(-int64(len(batch)))
	if n := w.fleet.completed.Add(int64(len(batch))); w.fleet.target > 0 && n >= w.fleet.target {
		w.fleet.doneOnce.Do(func() { close(w.fleet.done) })
	}
	return nil
}

func (w *fakeWorker) heartbeat() *pb.SessionRequest {
	w.mu.Lock()
	defer w.mu.Unlock()
	ids := make([]string, 0, len(w.leases))
	for id := range w.leases {
		ids = append(ids, id)
	}
	return &pb.SessionRequest{Msg: &pb.SessionRequest_Heartbeat{Heartbeat: &pb.Heartbeat{LeaseIds: ids}}}
}

func (w *fakeWorker) fail(err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err == nil {
		w.err = err
	}
}

func (w *fakeWorker) close() { _ = w.stream.CloseSend() }

func (f *fleet) notePeak(running int64) {
	for {
		p := f.peak.Load()
		if running <= p || f.peak.CompareAndSwap(p, running) {
			return
		}
	}
}

// errors returns the stream errors of the workers.
func (f *fleet) errors() []error {
	var out []error
	for _, w := range f.workers {
		w.mu.Lock()
		if w.err != nil {
			out = append(out, fmt.Errorf("worker %s: %w", w.id, w.err))
		}
		w.mu.Unlock()
	}
	return out
}

// latencies returns the merged scheduling (orchestrator clock) and assignment
// (created -> received by the worker) latencies.
func (f *fleet) latencies() (sched, assign []time.Duration) {
	for _, w := range f.workers {
		w.mu.Lock()
		sched = append(sched, w.schedLat...)
		assign = append(assign, w.assignLat...)
		w.mu.Unlock()
	}
	return sched, assign
}

// resetLatencies drops the samples taken so far (after a warm-up).
func (f *fleet) resetLatencies() {
	for _, w := range f.workers {
		w.mu.Lock()
		w.schedLat, w.assignLat = w.schedLat[:0], w.assignLat[:0]
		w.mu.Unlock()
	}
}

// lastTasks returns, per worker, the task of its latest result. The hub applies a
// session's messages in order, so once these have succeeded every earlier result
// of the session has been recorded too.
func (f *fleet) lastTasks() []string {
	var ids []string
	for _, w := range f.workers {
		w.mu.Lock()
		if w.lastTask != "" {
			ids = append(ids, w.lastTask)
		}
		w.mu.Unlock()
	}
	return ids
}
