// Package crash is the orchestrator's crash test: it builds the real binary, runs
// fake workers over the real WorkerHubService protocol (batching as the Python worker
// does: AssignmentBatch in, ResultBatch out), submits 1,000 tasks and three workflows
// (sequential, DAG, map) over gRPC, kills the orchestrator with SIGKILL midway,
// restarts it on the same state and checks that every acknowledged task and workflow
// completes with exactly one recorded result. It runs against the bolt and the Redis
// store. catalog_test.go checks the agent catalog survives too.
//
//	go test -count=1 ./test/crash/
package crash

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/structpb"

	pb "github.com/taskloom/taskloom/services/orchestrator-go/gen/taskloom/v1"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/redistest"
)

const (
	totalTasks = 1000
	tenant     = "crash"
	agentName  = "noop"
	killAfter  = 400 // acknowledged tasks before the SIGKILL
)

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "taskloom-crash-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "taskloom-orchestrator")
	build := exec.Command("go", "build", "-o", binary, "./cmd/taskloom-orchestrator")
	build.Dir = filepath.Join("..", "..")
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build the orchestrator:", err)
		os.Exit(1)
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

func TestCrashBolt(t *testing.T) {
	runCrashScenario(t, []string{"--store", "bolt", "--data-dir", t.TempDir()}, workflowsExtra())
}

func TestCrashRedis(t *testing.T) {
	srv := redistest.Start(t)
	runCrashScenario(t, []string{"--store", "redis", "--redis-url", srv.URL}, workflowsExtra())
}

// Extra is more work that must survive the crash (the hook for workflows): Submit
// runs while the first orchestrator is up, before the kill, and returns Check, run
// after every task finished on the restarted orchestrator. Submit may retry calls
// that fail because of the kill.
type Extra struct {
	Name   string
	Submit func(ctx context.Context, t *testing.T, h *Harness) (check func(ctx context.Context, t *testing.T, h *Harness))
}

// Harness is the running scenario: the orchestrator's clients and what the fake
// workers ran.
type Harness struct {
	Client  pb.OrchestratorServiceClient
	Workers *Recorder
	addr    string
}

// runCrashScenario is the crash test on the store the flags name; extras add work.
func runCrashScenario(t *testing.T, storeArgs []string, extras ...Extra) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	grpcAddr, httpAddr := freeAddr(t), freeAddr(t)
	args := append([]string{"--grpc-addr", grpcAddr, "--http-addr", httpAddr, "--log-level", "warn"}, storeArgs...)
	logs := filepath.Join(t.TempDir(), "orchestrator.log")

	first := start(t, args, logs)
	conn, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close() }()
	h := &Harness{Client: pb.NewOrchestratorServiceClient(conn), Workers: newRecorder(), addr: grpcAddr}
	workersCtx, stopWorkers := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Add(1)
		go func() { defer wg.Done(); runWorker(workersCtx, conn, fmt.Sprintf("crash-worker-%d", i), h.Workers) }()
	}
	defer func() { stopWorkers(); wg.Wait() }()
	waitForAgent(ctx, t, h.Client)

	var checks []func(context.Context, *testing.T, *Harness)
	for _, x := range extras {
		checks = append(checks, x.Submit(ctx, t, h))
	}

	acked := newAckSet()
	submitted := make(chan error, 1)
	go func() { submitted <- submitAll(ctx, h.Client, acked) }()

	// Kill midway: some tasks acknowledged, some run, the rest not yet submitted.
	for acked.len() < killAfter || h.Workers.runs() < killAfter/4 {
		if ctx.Err() != nil {
			t.Fatal("timed out before the kill")
		}
		time.Sleep(2 * time.Millisecond)
	}
	first.kill(t)
	h.Workers.releaseHeld() // what the first orchestrator assigned died with it
	t.Logf("SIGKILL with %d tasks acknowledged and %d executions seen", acked.len(), h.Workers.runs())
	second := start(t, args, logs)
	defer second.stop(t)

	if err := <-submitted; err != nil {
		t.Fatal(err)
	}
	if acked.len() != totalTasks {
		t.Fatalf("%d tasks acknowledged, want %d", acked.len(), totalTasks)
	}
	waitAllSucceeded(ctx, t, h.Client)

	// Every acknowledged task succeeded once, with the result of one of its runs.
	multi := 0
	for key, id := range acked.all() {
		resp, err := h.Client.GetTask(ctx, &pb.GetTaskRequest{Id: id})
		if err != nil {
			t.Fatalf("GetTask %s (%s): %v", id, key, err)
		}
		tk := resp.GetTask()
		runs := h.Workers.leasesOf(id)
		if tk.GetStatus() != pb.TaskStatus_TASK_STATUS_SUCCEEDED || len(runs) == 0 || tk.GetAttempts() < 1 {
			t.Fatalf("task %s: status %v, attempts %d, runs %v", id, tk.GetStatus(), tk.GetAttempts(), runs)
		}
		if !runs[tk.GetResult().GetStringValue()] {
			t.Fatalf("task %s: recorded result %q is not the output of any of its runs %v", id, tk.GetResult().GetStringValue(), runs)
		}
		if len(runs) > 1 {
			multi++
		}
	}
	if stray := h.Workers.tasksNotIn(acked); len(stray) > 0 {
		t.Fatalf("workers ran %d tasks nobody had acknowledged: %v", len(stray), stray[:min(5, len(stray))])
	}
	t.Logf("all %d tasks succeeded; %d ran more than once (at-least-once execution)", totalTasks, multi)
	for _, check := range checks {
		check(ctx, t, h)
	}
}

// submitAll submits every task once, retrying a call that fails (the orchestrator
// is down) with the same idempotency keys, the way a careful client does. It mixes
// batches (SubmitTasks) and single submits.
func submitAll(ctx context.Context, c pb.OrchestratorServiceClient, acked *ackSet) error {
	spec := func(i int) *pb.TaskSpec {
		return &pb.TaskSpec{Agent: agentName, Tenant: tenant, IdempotencyKey: "task-" + strconv.Itoa(i), Input: structpb.NewNumberValue(float64(i))}
	}
	for i := 0; i < totalTasks; {
		// Alternate: a batch of 50, then 50 single submits (in runs of 5).
		n, single := 50, (i/50)%2 == 1
		if single {
			n = 5
		}
		n = min(n, totalTasks-i)
		for {
			if ctx.Err() != nil {
				return fmt.Errorf("submitting task %d: %w", i, ctx.Err())
			}
			callCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
			err := submitRange(callCtx, c, acked, spec, i, n, single)
			cancel()
			if err == nil {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		i += n
	}
	return nil
}

func submitRange(ctx context.Context, c pb.OrchestratorServiceClient, acked *ackSet, spec func(int) *pb.TaskSpec, from, n int, single bool) error {
	if single {
		for i := from; i < from+n; i++ {
			if _, ok := acked.get("task-" + strconv.Itoa(i)); ok {
				continue
			}
			resp, err := c.SubmitTask(ctx, &pb.SubmitTaskRequest{Task: spec(i)})
			if err != nil {
				return err
			}
			acked.add(resp.GetTask().GetIdempotencyKey(), resp.GetTask().GetId())
		}
		return nil
	}
	req := &pb.SubmitTasksRequest{}
	for i := from; i < from+n; i++ {
		req.Tasks = append(req.Tasks, spec(i))
	}
	resp, err := c.SubmitTasks(ctx, req)
	if err != nil {
		return err
	}
	for _, tk := range resp.GetTasks() {
		acked.add(tk.GetIdempotencyKey(), tk.GetId())
	}
	return nil
}

func waitAllSucceeded(ctx context.Context, t *testing.T, c pb.OrchestratorServiceClient) {
	t.Helper()
	for {
		resp, err := c.ListTasks(ctx, &pb.ListTasksRequest{Tenant: tenant, Status: pb.TaskStatus_TASK_STATUS_SUCCEEDED, PageSize: 1000})
		if err == nil && len(resp.GetTasks()) == totalTasks {
			if resp.GetNextPageToken() != "" {
				t.Fatal("more succeeded tasks than submitted: a task was duplicated")
			}
			return
		}
		if ctx.Err() != nil {
			n := -1
			if resp != nil {
				n = len(resp.GetTasks())
			}
			t.Fatalf("only %d of %d tasks succeeded before the deadline (last error %v)", n, totalTasks, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func waitForAgent(ctx context.Context, t *testing.T, c pb.OrchestratorServiceClient) {
	t.Helper()
	for {
		resp, err := c.ListAgents(ctx, &pb.ListAgentsRequest{})
		if err == nil && len(resp.GetAgents()) > 0 {
			return
		}
		if ctx.Err() != nil {
			t.Fatalf("no worker registered: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// ackSet maps idempotency keys to the acknowledged task ids.
type ackSet struct {
	mu  sync.Mutex
	ids map[string]string
}

func newAckSet() *ackSet { return &ackSet{ids: map[string]string{}} }

func (a *ackSet) add(key, id string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if prev, ok := a.ids[key]; ok && prev != id {
		panic(fmt.Sprintf("idempotency key %s acknowledged as two tasks: %s and %s", key, prev, id))
	}
	a.ids[key] = id
}

func (a *ackSet) get(key string) (string, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	id, ok := a.ids[key]
	return id, ok
}

func (a *ackSet) len() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.ids)
}

func (a *ackSet) all() map[string]string {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make(map[string]string, len(a.ids))
	for k, v := range a.ids {
		out[k] = v
	}
	return out
}

// Recorder counts what the fake workers ran: the lease ids of every execution of
// every task, the tasks of the workflow agent apart. Until releaseHeld (the kill),
// workflow tasks whose input says "hold": true are held: never answered.
type Recorder struct {
	mu       sync.Mutex
	leases   map[string]map[string]bool
	wfLeases map[string]map[string]bool
	total    atomic.Int64
	held     atomic.Int64
	release  chan struct{}
	released sync.Once
}

func newRecorder() *Recorder {
	return &Recorder{leases: map[string]map[string]bool{}, wfLeases: map[string]map[string]bool{}, release: make(chan struct{})}
}

func (r *Recorder) ranWorkflowTask(taskID, leaseID string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.wfLeases[taskID] == nil {
		r.wfLeases[taskID] = map[string]bool{}
	}
	r.wfLeases[taskID][leaseID] = true
}

// WorkflowTaskLeases returns the lease ids of every execution of a workflow-agent task.
func (r *Recorder) WorkflowTaskLeases(taskID string) map[string]bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string]bool{}
	for l := range r.wfLeases[taskID] {
		out[l] = true
	}
	return out
}

// Held is how many workflow tasks the workers are holding (or held) unanswered.
func (r *Recorder) Held() int { return int(r.held.Load()) }

func (r *Recorder) releaseHeld() { r.released.Do(func() { close(r.release) }) }

func (r *Recorder) holding() bool {
	select {
	case <-r.release:
		return false
	default:
		return true
	}
}

func (r *Recorder) ran(taskID, leaseID string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.leases[taskID] == nil {
		r.leases[taskID] = map[string]bool{}
	}
	r.leases[taskID][leaseID] = true
	r.total.Add(1)
}

func (r *Recorder) runs() int { return int(r.total.Load()) }

func (r *Recorder) leasesOf(taskID string) map[string]bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string]bool{}
	for l := range r.leases[taskID] {
		out[l] = true
	}
	return out
}

func (r *Recorder) tasksNotIn(acked *ackSet) []string {
	known := map[string]bool{}
	for _, id := range acked.all() {
		known[id] = true
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for id := range r.leases {
		if !known[id] {
			out = append(out, id)
		}
	}
	return out
}

// runWorker is a fake worker: it opens sessions (again after each break) and
// completes every assignment at once with its lease id as output.
func runWorker(ctx context.Context, conn *grpc.ClientConn, id string, rec *Recorder) {
	hub := pb.NewWorkerHubServiceClient(conn)
	const concurrency = 32
	for ctx.Err() == nil {
		err := session(ctx, hub, id, concurrency, rec)
		if ctx.Err() != nil {
			return
		}
		_ = err // the orchestrator went away: reconnect
		time.Sleep(50 * time.Millisecond)
	}
}

func session(ctx context.Context, hub pb.WorkerHubServiceClient, id string, concurrency int32, rec *Recorder) error {
	stream, err := hub.Session(ctx)
	if err != nil {
		return err
	}
	var sendMu sync.Mutex // held workflow tasks answer from their own goroutines
	send := func(m *pb.SessionRequest) error {
		sendMu.Lock()
		defer sendMu.Unlock()
		return stream.Send(m)
	}
	err = send(&pb.SessionRequest{Msg: &pb.SessionRequest_Register{Register: &pb.Register{
		WorkerId: id, Concurrency: concurrency, Hostname: "crash-test", Batches: true, // as the Python worker
		Agents: []*pb.AgentInfo{{Name: agentName, Provider: "simulated"}, {Name: workflowAgent, Provider: "simulated"}},
	}}})
	if err == nil {
		err = send(&pb.SessionRequest{Msg: &pb.SessionRequest_Credit{Credit: &pb.CreditGrant{Credits: concurrency}}})
	}
	if err != nil {
		return err
	}
	for {
		resp, err := stream.Recv()
		if err != nil {
			return err
		}
		batch := answer(assignmentsOf(resp), rec)
		if len(batch.GetResults()) == 0 {
			continue
		}
		// The results and their credits in one ResultBatch, as a batching worker sends them.
		if err := send(&pb.SessionRequest{Msg: &pb.SessionRequest_Results{Results: batch}}); err != nil {
			return err
		}
	}
}

// assignmentsOf is the assignments of a hub message: one, a batch, or none.
func assignmentsOf(resp *pb.SessionResponse) []*pb.Assignment {
	if a := resp.GetAssignment(); a != nil {
		return []*pb.Assignment{a}
	}
	return resp.GetAssignments().GetAssignments()
}

// answer runs the assignments: a result and a credit for each, but none for a held
// workflow task.
func answer(assignments []*pb.Assignment, rec *Recorder) *pb.ResultBatch {
	batch := &pb.ResultBatch{}
	for _, a := range assignments {
		taskID, leaseID := a.GetTask().GetId(), a.GetLeaseId()
		output := structpb.NewStringValue(leaseID)
		if a.GetTask().GetAgent() == workflowAgent {
			rec.ranWorkflowTask(taskID, leaseID)
			output = echoWithLease(a.GetTask().GetInput(), leaseID)
			if output.GetStructValue().GetFields()["hold"].GetBoolValue() && rec.holding() {
				rec.held.Add(1) // never answered: the orchestrator is killed first
				continue
			}
		} else {
			rec.ran(taskID, leaseID)
		}
		batch.Results = append(batch.Results, &pb.TaskResult{TaskId: taskID, LeaseId: leaseID, Output: output})
		batch.Credits++
	}
	return batch
}

// echoWithLease is the workflow agent's output: its input object with the lease id
// of the run added, so every recorded result names the run that produced it.
func echoWithLease(input *structpb.Value, leaseID string) *structpb.Value {
	fields := map[string]*structpb.Value{}
	for k, v := range input.GetStructValue().GetFields() {
		fields[k] = v
	}
	fields["lease"] = structpb.NewStringValue(leaseID)
	return structpb.NewStructValue(&structpb.Struct{Fields: fields})
}

// proc is a running orchestrator.
type proc struct {
	cmd  *exec.Cmd
	done chan struct{}
}

func start(t *testing.T, args []string, logPath string) *proc {
	t.Helper()
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(binary, args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatalf("start orchestrator: %v", err)
	}
	p := &proc{cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); _ = logFile.Close(); close(p.done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			dumpLog(t, logPath)
		}
	})
	addr := args[1]
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond)
		if err == nil {
			_ = c.Close()
			return p
		}
		select {
		case <-p.done:
			dumpLog(t, logPath)
			t.Fatalf("the orchestrator exited at start: %v", cmd.ProcessState)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("the orchestrator did not listen on %s", addr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// kill is kill -9: no shutdown code runs.
func (p *proc) kill(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-p.done
}

// stop is a graceful stop (SIGTERM), which must exit 0.
func (p *proc) stop(t *testing.T) {
	t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		if code := p.cmd.ProcessState.ExitCode(); code != 0 {
			t.Errorf("orchestrator exited %d after SIGTERM", code)
		}
	case <-time.After(10 * time.Second):
		t.Error("orchestrator did not stop within 10s of SIGTERM")
	}
}

func dumpLog(t *testing.T, path string) {
	f, err := os.Open(path)
	if err != nil {
		return
	}
	defer func() { _ = f.Close() }()
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	for _, l := range lines[max(0, len(lines)-40):] {
		t.Log(l)
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = l.Close() }()
	return l.Addr().String()
}
