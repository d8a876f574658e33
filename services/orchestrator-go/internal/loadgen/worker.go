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
	workers    []*fakeWorker
	completed  atomic.Int64 // results sent
	running    atomic.Int64 // assignments received and not yet completed
	peak       atomic.Int64 // most assignments held at once
	cancels    atomic.Int64 // CancelAssignment messages received
	reconnects atomic.Int64 // sessions replaced after a break (workerOptions.reconnect)
	done       chan struct{}
	target     int64 // close done once this many results are sent (0: never)
	doneOnce   sync.Once
}

// fakeWorker is one WorkerHub session that completes every assignment with an empty
// result, at once or after hold, and grants the credit back. With reconnect it opens
// a new session when the orchestrator goes away (to the leader, see StartWorkers).
type fakeWorker struct {
	id    string
	fleet *fleet
	hub   pb.WorkerHubServiceClient
	opts  workerOptions

	finished chan finishedTask // assignments ready to report, for the sender

	mu        sync.Mutex
	stream    pb.WorkerHubService_SessionClient
	session   int                 // number of the current session (from 1)
	leases    map[string]struct{} // held, for heartbeats
	lastTask  string              // task of the latest result sent
	schedLat  []time.Duration     // orchestrator: created_at -> started_at
	assignLat []time.Duration     // created_at -> assignment received here
	err       error
}

type finishedTask struct {
	taskID, leaseID string
	session         int // the session that received the assignment
}

type workerOptions struct {
	agent       string
	concurrency int
	hold        time.Duration
	// reconnect: a broken session is replaced by a new one (waiting for an
	// orchestrator that serves) rather than reported as an error.
	reconnect bool
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
	w := &fakeWorker{
		id: id, fleet: f, hub: client, opts: opts,
		finished: make(chan finishedTask, opts.concurrency+1),
		leases:   map[string]struct{}{},
	}
	heartbeat, err := w.open(ctx)
	if err != nil {
		return nil, err
	}
	go w.receive(ctx)
	go w.send(ctx, heartbeat)
	return w, nil
}

// open starts a session: Register, await Registered, grant every credit. It
// returns the heartbeat interval the orchestrator asks for.
func (w *fakeWorker) open(ctx context.Context) (time.Duration, error) {
	var callOpts []grpc.CallOption
	if w.opts.reconnect {
		callOpts = append(callOpts, grpc.WaitForReady(true)) // until a leader serves
	}
	stream, err := w.hub.Session(ctx, callOpts...)
	if err != nil {
		return 0, fmt.Errorf("open worker session: %w", err)
	}
	err = stream.Send(&pb.SessionRequest{Msg: &pb.SessionRequest_Register{Register: &pb.Register{
		WorkerId: w.id, Concurrency: int32(w.opts.concurrency), Hostname: "loadgen", Version: "loadgen", Batches: true,
		Agents: []*pb.AgentInfo{{Name: w.opts.agent, Description: "no-op agent of the load generator", Provider: "none"}},
	}}})
	if err != nil {
		return 0, fmt.Errorf("send register: %w", err)
	}
	first, err := stream.Recv()
	if err != nil {
		return 0, fmt.Errorf("await registered: %w", err)
	}
	reg := first.GetRegistered()
	if reg == nil {
		return 0, errors.New("the hub's first message was not Registered")
	}
	if err := stream.Send(credit(w.opts.concurrency)); err != nil {
		return 0, fmt.Errorf("grant credits: %w", err)
	}
	w.mu.Lock()
	w.stream, w.leases = stream, map[string]struct{}{}
	w.session++
	w.mu.Unlock()
	return reg.GetHeartbeatInterval().AsDuration(), nil
}

func (w *fakeWorker) current() (pb.WorkerHubService_SessionClient, int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.stream, w.session
}

func credit(n int) *pb.SessionRequest {
	return &pb.SessionRequest{Msg: &pb.SessionRequest_Credit{Credit: &pb.CreditGrant{Credits: int32(n)}}}
}

// receive takes assignments: it records their latency and completes them (now, or
// after hold). A broken session ends it, or with reconnect is replaced.
func (w *fakeWorker) receive(ctx context.Context) {
	for {
		stream, session := w.current()
		msg, err := stream.Recv()
		if err != nil {
			if w.opts.reconnect && w.reopen(ctx) {
				continue
			}
			if !errors.Is(err, io.EOF) {
				w.fail(err)
			}
			return
		}
		if msg.GetCancel() != nil {
			w.fleet.cancels.Add(1)
			continue
		}
		if a := msg.GetAssignment(); a != nil {
			w.take(a, session)
		}
		for _, a := range msg.GetAssignments().GetAssignments() {
			w.take(a, session)
		}
	}
}

// take records an assignment's latency and completes it (now, or after hold).
func (w *fakeWorker) take(a *pb.Assignment, session int) {
	now := time.Now()
	t := a.GetTask()
	created := t.GetCreatedAt().AsTime()
	w.mu.Lock()
	if t.GetStartedAt() != nil {
		w.schedLat = append(w.schedLat, t.GetStartedAt().AsTime().Sub(created))
	}
	w.assignLat = append(w.assignLat, now.Sub(created))
	if w.opts.hold > 0 {
		w.leases[a.GetLeaseId()] = struct{}{}
	}
	w.mu.Unlock()
	w.fleet.notePeak(w.fleet.running.Add(1))
	ft := finishedTask{taskID: t.GetId(), leaseID: a.GetLeaseId(), session: session}
	if w.opts.hold == 0 {
		w.finished <- ft
		return
	}
	time.AfterFunc(w.opts.hold, func() { w.finished <- ft })
}

// reopen replaces a broken session, retrying until one opens or ctx ends; what
// the old session was running is abandoned (the orchestrator requeues it).
func (w *fakeWorker) reopen(ctx context.Context) bool {
	for ctx.Err() == nil {
		if _, err := w.open(ctx); err == nil {
			w.fleet.reconnects.Add(1)
			return true
		}
		select {
		case <-ctx.Done():
		case <-time.After(50 * time.Millisecond):
		}
	}
	return false
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
		var err error
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			stream, _ := w.current()
			err = stream.Send(w.heartbeat())
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
			err = w.report(batch)
		}
		if err != nil && !w.opts.reconnect { // with reconnect, receive replaces the session
			w.fail(err)
			return
		}
	}
}

// report sends the results of the current session's tasks and their credits in
// one ResultBatch; those of an earlier session are dropped (their leases died with it).
func (w *fakeWorker) report(batch []finishedTask) error {
	stream, session := w.current()
	results, last := make([]*pb.TaskResult, 0, len(batch)), ""
	for _, ft := range batch {
		if ft.session != session {
			continue
		}
		results = append(results, &pb.TaskResult{TaskId: ft.taskID, LeaseId: ft.leaseID})
		last = ft.taskID
	}
	sent := len(results)
	w.fleet.running.Add(-int64(len(batch)))
	if sent == 0 {
		return nil
	}
	msg := &pb.ResultBatch{Results: results, Credits: int32(sent)}
	if err := stream.Send(&pb.SessionRequest{Msg: &pb.SessionRequest_Results{Results: msg}}); err != nil {
		return err
	}
	w.mu.Lock()
	w.lastTask = last
	if w.opts.hold > 0 {
		for _, ft := range batch {
			delete(w.leases, ft.leaseID)
		}
	}
	w.mu.Unlock()
	if n := w.fleet.completed.Add(int64(sent)); w.fleet.target > 0 && n >= w.fleet.target {
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

func (w *fakeWorker) close() {
	stream, _ := w.current()
	_ = stream.CloseSend()
}

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
