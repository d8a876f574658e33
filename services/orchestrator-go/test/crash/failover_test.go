package crash

// Two orchestrators on one Redis: a leader and a standby (internal/leader). The
// leader is killed under load, or paused past its lease; the standby takes over,
// nothing accepted is lost, no result is recorded twice, and the deposed leader's
// writes are fenced.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"

	pb "github.com/taskloom/taskloom/services/orchestrator-go/gen/taskloom/v1"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/failover"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/leader"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/loadgen"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/redistest"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/store"
)

// node is one orchestrator of a pair.
type node struct {
	proc               *proc
	grpcAddr, httpAddr string
	log                string
}

func startNode(t *testing.T, redisURL string, extra ...string) *node {
	t.Helper()
	n := &node{grpcAddr: freeAddr(t), httpAddr: freeAddr(t), log: filepath.Join(t.TempDir(), "orchestrator.log")}
	args := append([]string{"--grpc-addr", n.grpcAddr, "--http-addr", n.httpAddr, "--log-level", "info",
		"--store", "redis", "--redis-url", redisURL, "--data-dir", t.TempDir()}, extra...)
	n.proc = start(t, args, n.log)
	return n
}

// readyz is the node's /readyz: its status code and the checks not ready.
func (n *node) readyz() (int, []string) { return readyz("http://" + n.httpAddr + "/readyz") }

func readyz(url string) (int, []string) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, nil
	}
	defer func() { _ = resp.Body.Close() }()
	var body struct {
		NotReady []string `json:"not_ready"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&body)
	return resp.StatusCode, body.NotReady
}

// waitLeading waits until the node is ready: it leads and serves.
func (n *node) waitLeading(ctx context.Context, t *testing.T) {
	t.Helper()
	if !waitReady(ctx, t, n.httpAddr) {
		dumpLog(t, n.log)
		t.Fatalf("%s never became the leader", n.grpcAddr)
	}
}

// waitAlive waits until the node's HTTP server answers /healthz with 200 (a standby
// does too) and fails the test if it does not before ctx ends.
func (n *node) waitAlive(ctx context.Context, t *testing.T) {
	t.Helper()
	for {
		if resp, err := http.Get("http://" + n.httpAddr + "/healthz"); err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if ctx.Err() != nil {
			dumpLog(t, n.log)
			t.Fatalf("%s never answered /healthz", n.httpAddr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitReady waits until the orchestrator's /readyz answers 200 (with the Redis
// store: once it leads) and reports whether it did before ctx ended.
func waitReady(ctx context.Context, t *testing.T, httpAddr string) bool {
	t.Helper()
	for {
		if code, _ := readyz("http://" + httpAddr + "/readyz"); code == http.StatusOK {
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// logged returns the node's JSON log lines whose msg starts with prefix.
func (n *node) logged(t *testing.T, prefix string) []map[string]any {
	t.Helper()
	f, err := os.Open(n.log)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	var out []map[string]any
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var line map[string]any
		if json.Unmarshal(sc.Bytes(), &line) == nil && strings.HasPrefix(line["msg"].(string), prefix) {
			out = append(out, line)
		}
	}
	return out
}

// resultWrites counts, per task id, the terminal writes Redis applied: every write
// of a finished task adds it to the finished index (store/redis.go), and MONITOR
// shows each command Redis executes, those inside transactions included.
type resultWrites struct {
	mu     sync.Mutex
	counts map[string]int
	stop   func()
}

func monitorResults(t *testing.T, srv *redistest.Server) *resultWrites {
	t.Helper()
	conn, err := net.Dial("tcp", srv.Addr)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Write([]byte("MONITOR\r\n")); err != nil {
		t.Fatal(err)
	}
	w := &resultWrites{counts: map[string]int{}}
	zadd := `"zadd" "` + store.DefaultRedisPrefix + `finished" `
	rd := bufio.NewReader(conn)
	if line, err := rd.ReadString('\n'); err != nil || line != "+OK\r\n" {
		t.Fatalf("MONITOR: %q, %v", line, err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			line, err := rd.ReadString('\n') // +<time> [<db> <client>] "cmd" "arg"...
			if err != nil {
				return
			}
			i := strings.Index(strings.ToLower(line), zadd)
			if i < 0 {
				continue
			}
			// "zadd" "<prefix>finished" "<score>" "<id>"
			if args := strings.Fields(line[i+len(zadd):]); len(args) == 2 {
				w.mu.Lock()
				w.counts[strings.Trim(args[1], `"`)]++
				w.mu.Unlock()
			}
		}
	}()
	w.stop = func() { _ = conn.Close(); <-done }
	t.Cleanup(w.stop)
	return w
}

func (w *resultWrites) of(id string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.counts[id]
}

// Two orchestrators on one Redis under load: the standby refuses calls (NOT_LEADER,
// naming the leader) and is not ready; the leader is killed with SIGKILL midway;
// the standby takes over, the workers (the load generator's, given both addresses)
// and the submitter follow it, every acknowledged task succeeds, and Redis applied
// exactly one terminal write (one result) per task.
func TestStandbyTakesOverAKilledLeaderUnderLoad(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	srv := redistest.Start(t)
	results := monitorResults(t, srv)
	a := startNode(t, srv.URL, "--log-level", "warn")
	a.waitLeading(ctx, t)
	b := startNode(t, srv.URL, "--log-level", "warn")
	b.waitAlive(ctx, t)
	if code, notReady := b.readyz(); code != http.StatusServiceUnavailable || len(notReady) != 1 || notReady[0] != "leader" {
		t.Fatalf("the standby's /readyz = %d %v", code, notReady)
	}
	direct, err := grpc.NewClient(b.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = direct.Close() }()
	_, err = pb.NewOrchestratorServiceClient(direct).ListAgents(ctx, &pb.ListAgentsRequest{})
	if code, info := statusInfo(err); code != codes.Unavailable || info.GetReason() != "NOT_LEADER" || info.GetMetadata()["leader"] != a.grpcAddr {
		t.Fatalf("a call to the standby: %v", err)
	}

	both := a.grpcAddr + "," + b.grpcAddr
	workers, err := loadgen.StartWorkers(ctx, both, 4, 32, agentName)
	if err != nil {
		t.Fatal(err)
	}
	defer workers.Close()
	conn, err := failover.Dial(both, failover.OrchestratorService)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close() }()
	client := pb.NewOrchestratorServiceClient(conn)
	waitForAgent(ctx, t, client)

	acked := newAckSet()
	submitted := make(chan error, 1)
	go func() { submitted <- submitAll(ctx, client, acked) }()
	for acked.len() < killAfter || workers.Results() < killAfter/4 {
		if ctx.Err() != nil {
			t.Fatal("timed out before the kill")
		}
		time.Sleep(2 * time.Millisecond)
	}
	a.proc.kill(t)
	killed := time.Now()
	t.Logf("SIGKILL of the leader with %d tasks acknowledged and %d results sent", acked.len(), workers.Results())
	b.waitLeading(ctx, t)
	// A figure for the report, not a check: a loaded machine stretches it (make bench
	// measures failover); the configuration bounds it by --leader-lease-ttl (5s) plus
	// --leader-renew-interval (1s) plus the time to load the state.
	t.Logf("the standby took over %.1fs after the kill", time.Since(killed).Seconds())

	if err := <-submitted; err != nil {
		t.Fatal(err)
	}
	waitAllSucceeded(ctx, t, client)
	for key, id := range acked.all() {
		resp, err := client.GetTask(ctx, &pb.GetTaskRequest{Id: id})
		if err != nil || resp.GetTask().GetStatus() != pb.TaskStatus_TASK_STATUS_SUCCEEDED {
			t.Fatalf("task %s (%s): %v, %v", id, key, resp.GetTask(), err)
		}
		if n := results.of(id); n != 1 {
			t.Fatalf("task %s: %d results recorded, want exactly 1", id, n)
		}
	}
	if workers.Reconnects() == 0 {
		t.Fatal("no worker session moved to the new leader")
	}
	t.Logf("all %d tasks succeeded with one recorded result each; %d worker sessions followed the leader", totalTasks, workers.Reconnects())
}

// A leader paused (SIGSTOP) past its lease is replaced; a result its worker sent it
// meanwhile is not recorded once it resumes (SIGCONT): it stops at once, the task
// keeps the new leader's result, recorded once, and a write carrying its fencing
// token is refused.
func TestADeposedLeadersLateWritesAreFenced(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	srv := redistest.Start(t)
	results := monitorResults(t, srv)
	timing := []string{"--leader-lease-ttl", "2s", "--leader-renew-interval", "200ms"}
	a := startNode(t, srv.URL, timing...)
	a.waitLeading(ctx, t)
	b := startNode(t, srv.URL, timing...)

	// A worker on the leader takes the task and holds it.
	onA := dialDirect(t, a.grpcAddr)
	sessionA := openSession(ctx, t, onA, "worker-a")
	waitForAgent(ctx, t, pb.NewOrchestratorServiceClient(onA))
	sub, err := pb.NewOrchestratorServiceClient(onA).SubmitTask(ctx, &pb.SubmitTaskRequest{Task: &pb.TaskSpec{Agent: agentName, Tenant: tenant}})
	if err != nil {
		t.Fatal(err)
	}
	leaseA := awaitAssignment(t, sessionA, sub.GetTask().GetId())

	if err := a.proc.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	stopped := true
	defer func() {
		if stopped {
			_ = a.proc.cmd.Process.Signal(syscall.SIGCONT)
		}
	}()
	b.waitLeading(ctx, t)

	// The new leader requeued the task; a worker on it runs it again.
	onB := dialDirect(t, b.grpcAddr)
	clientB := pb.NewOrchestratorServiceClient(onB)
	sessionB := openSession(ctx, t, onB, "worker-b")
	leaseB := awaitAssignment(t, sessionB, sub.GetTask().GetId())
	sendResult(t, sessionB, sub.GetTask().GetId(), leaseB, "from the new leader")
	for {
		got, err := clientB.GetTask(ctx, &pb.GetTaskRequest{Id: sub.GetTask().GetId()})
		if err == nil && got.GetTask().GetStatus() == pb.TaskStatus_TASK_STATUS_SUCCEEDED {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("the new leader did not record the result: %v, %v", got.GetTask(), err)
		}
		time.Sleep(10 * time.Millisecond)
	}

	// The paused leader's worker finishes too: its result waits in the socket.
	sendResult(t, sessionA, sub.GetTask().GetId(), leaseA, "late, from the deposed leader")
	if err := a.proc.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	stopped = false
	select {
	case <-a.proc.done:
	case <-ctx.Done():
		t.Fatal("the deposed leader did not stop")
	}
	if code := a.proc.cmd.ProcessState.ExitCode(); code == 0 || len(a.logged(t, "orchestrator stopped")) != 1 ||
		!strings.Contains(a.logged(t, "orchestrator stopped")[0]["err"].(string), "lost the leader lease") {
		dumpLog(t, a.log)
		t.Fatalf("the deposed leader exited %d without saying it lost the lease", code)
	}
	for _, line := range a.logged(t, "store commit failed") {
		t.Logf("the deposed leader tried to write: %v", line["err"]) // refused, if it got that far
	}

	got, err := clientB.GetTask(ctx, &pb.GetTaskRequest{Id: sub.GetTask().GetId()})
	if err != nil || got.GetTask().GetResult().GetStringValue() != "from the new leader" {
		t.Fatalf("the task after the deposed leader resumed: %v, %v", got.GetTask(), err)
	}
	if n := results.of(sub.GetTask().GetId()); n != 1 {
		t.Fatalf("%d results recorded for the task, want exactly 1", n)
	}

	// The store refuses a write made with the deposed leader's token, and it changes nothing.
	won := a.logged(t, "leader: won the lease")
	if len(won) != 1 {
		t.Fatalf("the first leader won the lease %d times", len(won))
	}
	oldToken := int64(won[0]["fencing_token"].(float64))
	deposed, err := store.OpenRedis(ctx, srv.URL, "")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = deposed.Close() }()
	if err := deposed.Fence(ctx, leader.FenceKey(store.DefaultRedisPrefix), oldToken, nil); err != nil {
		t.Fatal(err)
	}
	late, err := deposed.Get(ctx, sub.GetTask().GetId())
	if err != nil {
		t.Fatal(err)
	}
	late.Result = []byte(`"late, from the deposed leader"`)
	if err := deposed.Put(ctx, late); !errors.Is(err, store.ErrFenced) {
		t.Fatalf("a write with fencing token %d: %v, want ErrFenced", oldToken, err)
	}
	got, err = clientB.GetTask(ctx, &pb.GetTaskRequest{Id: sub.GetTask().GetId()})
	if err != nil || got.GetTask().GetResult().GetStringValue() != "from the new leader" || results.of(sub.GetTask().GetId()) != 1 {
		t.Fatalf("after the fenced write: %v, %v, %d results", got.GetTask(), err, results.of(sub.GetTask().GetId()))
	}
}

// The bolt store is single-node: a second orchestrator on the same data directory
// fails at start, saying why, and the first one goes on serving.
func TestASecondOrchestratorOnTheSameBoltFileFailsClearly(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dir := t.TempDir()
	args := func() []string {
		return []string{"--grpc-addr", freeAddr(t), "--http-addr", freeAddr(t), "--log-level", "warn", "--store", "bolt", "--data-dir", dir}
	}
	first := args()
	start(t, first, filepath.Join(t.TempDir(), "first.log"))
	out, err := exec.CommandContext(ctx, binary, args()...).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "another process holds its lock") || !strings.Contains(string(out), "single-node") {
		t.Fatalf("a second orchestrator on the same bolt file: %v\n%s", err, out)
	}
	resp, err := http.Get("http://" + first[3] + "/readyz")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("the first orchestrator after the second failed: %v %v", resp, err)
	}
	_ = resp.Body.Close()
}

func dialDirect(t *testing.T, addr string) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

func openSession(ctx context.Context, t *testing.T, conn *grpc.ClientConn, id string) pb.WorkerHubService_SessionClient {
	t.Helper()
	stream, err := pb.NewWorkerHubServiceClient(conn).Session(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []*pb.SessionRequest{
		{Msg: &pb.SessionRequest_Register{Register: &pb.Register{WorkerId: id, Concurrency: 1, Agents: []*pb.AgentInfo{{Name: agentName}}}}},
		{Msg: &pb.SessionRequest_Credit{Credit: &pb.CreditGrant{Credits: 1}}},
	} {
		if err := stream.Send(m); err != nil {
			t.Fatalf("%s: send %T: %v", id, m.GetMsg(), err)
		}
	}
	return stream
}

func awaitAssignment(t *testing.T, stream pb.WorkerHubService_SessionClient, taskID string) string {
	t.Helper()
	for {
		resp, err := stream.Recv()
		if err != nil {
			t.Fatalf("waiting for task %s: %v", taskID, err)
		}
		if a := resp.GetAssignment(); a != nil && a.GetTask().GetId() == taskID {
			return a.GetLeaseId()
		}
	}
}

func sendResult(t *testing.T, stream pb.WorkerHubService_SessionClient, taskID, leaseID, output string) {
	t.Helper()
	if err := stream.Send(&pb.SessionRequest{Msg: &pb.SessionRequest_Result{Result: &pb.TaskResult{
		TaskId: taskID, LeaseId: leaseID, Output: structpb.NewStringValue(output),
	}}}); err != nil {
		t.Fatalf("send the result of %s: %v", taskID, err)
	}
}

// statusInfo is the code of a gRPC error and its Taskloom ErrorInfo (nil if none).
func statusInfo(err error) (codes.Code, *errdetails.ErrorInfo) {
	st := status.Convert(err)
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok {
			return st.Code(), info
		}
	}
	return st.Code(), nil
}
