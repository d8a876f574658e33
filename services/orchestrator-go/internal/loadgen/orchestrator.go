package loadgen

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// target is the orchestrator under load: where it listens and, when known, its pid
// (for RSS) and HTTP address (for pprof).
type target struct {
	grpcAddr string
	httpAddr string
	pid      int
	stop     func() error // nil unless the load generator spawned it
}

// spawnOrchestrator starts the binary on free loopback ports with a fresh data
// directory and waits until its health service says SERVING.
func spawnOrchestrator(ctx context.Context, binary string, extraArgs []string) (*target, error) {
	dataDir, err := os.MkdirTemp("", "taskloom-loadgen-")
	if err != nil {
		return nil, err
	}
	grpcAddr, err := freeLoopbackAddr()
	if err != nil {
		return nil, err
	}
	httpAddr, err := freeLoopbackAddr()
	if err != nil {
		return nil, err
	}
	logPath := filepath.Join(dataDir, "orchestrator.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	args := append([]string{
		"--grpc-addr", grpcAddr, "--http-addr", httpAddr,
		"--data-dir", filepath.Join(dataDir, "data"), "--log-level", "warn",
		"--profiling", // loopback only: for --profile
	}, extraArgs...)
	cmd := exec.Command(binary, args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		_ = logFile.Close()
		return nil, fmt.Errorf("start %s: %w", binary, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait(); _ = logFile.Close() }()

	stop := func() error {
		defer func() { _ = os.RemoveAll(dataDir) }()
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-exited:
			return err
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
			return errors.New("orchestrator did not stop within 10s of SIGTERM; killed")
		}
	}
	if err := waitServing(ctx, grpcAddr, exited); err != nil {
		_ = stop()
		return nil, fmt.Errorf("%w; orchestrator log:\n%s", err, tail(logPath, 20))
	}
	return &target{grpcAddr: grpcAddr, httpAddr: httpAddr, pid: cmd.Process.Pid, stop: stop}, nil
}

// freeLoopbackAddr asks the kernel for a free port. Another process could take it
// before the orchestrator binds it; on a benchmark machine that race is remote.
func freeLoopbackAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer func() { _ = l.Close() }()
	return l.Addr().String(), nil
}

func waitServing(ctx context.Context, addr string, exited <-chan error) error {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer func() { _ = conn.Close() }()
	health := healthpb.NewHealthClient(conn)
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			return fmt.Errorf("orchestrator exited before serving: %v", err)
		case <-ctx.Done():
			return ctx.Err()
		default:
		}
		callCtx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		resp, err := health.Check(callCtx, &healthpb.HealthCheckRequest{})
		cancel()
		if err == nil && resp.GetStatus() == healthpb.HealthCheckResponse_SERVING {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("orchestrator at %s not SERVING within 15s", addr)
}

func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// memory is a process's resident set size now and at its peak, in bytes.
type memory struct {
	RSS  int64 // VmRSS
	Peak int64 // VmHWM
}

// userHZ is the unit of the CPU times in /proc/<pid>/stat (USER_HZ, 100 on Linux).
const userHZ = 100

// readCPU returns the CPU time (user + system) pid has used so far, from /proc.
func readCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may hold spaces; the fields after it do not.
	i := strings.LastIndexByte(string(b), ')')
	fields := strings.Fields(string(b[i+1:]))
	if i < 0 || len(fields) < 13 {
		return 0, fmt.Errorf("parse /proc/%d/stat", pid)
	}
	var ticks int64
	for _, f := range fields[11:13] { // utime, stime: fields 14 and 15 of the line
		n, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("parse /proc/%d/stat: %w", pid, err)
		}
		ticks += n
	}
	return time.Duration(ticks) * time.Second / userHZ, nil
}

// readMemory reads VmRSS and VmHWM of pid from /proc.
func readMemory(pid int) (memory, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return memory{}, err
	}
	defer func() { _ = f.Close() }()
	var m memory
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		key, value, ok := strings.Cut(sc.Text(), ":")
		if !ok || (key != "VmRSS" && key != "VmHWM") {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(value), " kB"), 10, 64)
		if err != nil {
			return memory{}, fmt.Errorf("parse %s of pid %d: %w", key, pid, err)
		}
		if key == "VmRSS" {
			m.RSS = kb * 1024
		} else {
			m.Peak = kb * 1024
		}
	}
	return m, sc.Err()
}
