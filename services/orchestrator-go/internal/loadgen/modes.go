package loadgen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/structpb"

	pb "github.com/taskloom/taskloom/services/orchestrator-go/gen/taskloom/v1"
)

// run is one load-generation run against one orchestrator.
type run struct {
	cfg     Config
	target  *target
	dial    func(string) (*grpc.ClientConn, error)
	clients []pb.OrchestratorServiceClient
}

// throughput pushes cfg.tasks no-op tasks through W immediate workers with K
// submitters: tasks/s from the first submit to the last recorded result.
func (r *run) throughput(ctx context.Context) (*Report, error) {
	rep := r.newReport()
	fl, closeFleet, err := startFleet(ctx, r.target.grpcAddr, r.cfg.workers, r.workerOptions(0), int64(r.cfg.tasks), r.dial)
	if err != nil {
		return nil, err
	}
	defer closeFleet()
	profileDone := r.startProfile(ctx)
	cpu0 := r.cpuTime()
	sub := submitAll(ctx, r.clients, r.submitOptions(r.cfg.tasks, 0))
	end, err := r.awaitCompletion(ctx, fl)
	cpu := r.cpuTime() - cpu0
	if perr := <-profileDone; perr != nil {
		rep.Notes = append(rep.Notes, "profile: "+perr.Error())
	}
	rep.addSubmit(sub)
	rep.addFleet(fl)
	if err != nil {
		rep.fail(err)
	}
	elapsed := end.Sub(sub.start)
	rep.Metrics.DurationSeconds = elapsed.Seconds()
	rep.Metrics.TasksPerSecond = float64(fl.completed.Load()) / elapsed.Seconds()
	rep.Metrics.SubmitPerSecond = float64(sub.accepted) / sub.end.Sub(sub.start).Seconds()
	if cpu > 0 && fl.completed.Load() > 0 {
		// CPU per task depends far less than tasks/s on what else loads the machine.
		rep.Metrics.CPUPerTaskMicros = float64(cpu.Microseconds()) / float64(fl.completed.Load())
		rep.Metrics.CPUCores = cpu.Seconds() / elapsed.Seconds()
	}
	rep.Notes = append(rep.Notes, "scheduling latency here includes the wait in a deep queue; see mode latency for idle workers")
	r.addMemory(rep)
	return rep, nil
}

// latency submits single tasks at a modest paced rate to idle workers: the
// scheduling latency (queued -> assigned) the scheduler itself adds.
func (r *run) latency(ctx context.Context) (*Report, error) {
	rep := r.newReport()
	fl, closeFleet, err := startFleet(ctx, r.target.grpcAddr, r.cfg.workers, r.workerOptions(0), int64(r.cfg.tasks+r.cfg.warmup), r.dial)
	if err != nil {
		return nil, err
	}
	defer closeFleet()
	if r.cfg.warmup > 0 {
		warm := submitAll(ctx, r.clients, submitOptions{agent: r.cfg.agent, total: r.cfg.warmup, submitters: r.cfg.submitters, batch: 1, rate: r.cfg.rate})
		if len(warm.errs) > 0 {
			return nil, fmt.Errorf("warm-up: %w", warm.errs[0])
		}
		for fl.completed.Load() < int64(r.cfg.warmup) && ctx.Err() == nil {
			time.Sleep(time.Millisecond)
		}
		fl.resetLatencies()
	}
	before, scrapeErr := r.scrapeScheduling(ctx)
	sub := submitAll(ctx, r.clients, submitOptions{agent: r.cfg.agent, total: r.cfg.tasks, submitters: r.cfg.submitters, batch: 1, rate: r.cfg.rate})
	_, err = r.awaitCompletion(ctx, fl)
	rep.addSubmit(sub)
	rep.addFleet(fl)
	rep.Metrics.Completed -= int64(r.cfg.warmup)
	if after, err := r.scrapeScheduling(ctx); err == nil && scrapeErr == nil {
		rep.Metrics.QueueLatency = after.since(before).summary()
	} else {
		rep.Notes = append(rep.Notes, fmt.Sprintf("no orchestrator scheduling histogram: %v", errors.Join(scrapeErr, err)))
	}
	if err != nil {
		rep.fail(err)
	}
	r.addMemory(rep)
	return rep, nil
}

// queued submits cfg.tasks tasks with no worker connected and reports the
// orchestrator's memory while it holds them.
func (r *run) queued(ctx context.Context) (*Report, error) {
	rep := r.newReport()
	// The agent must be known: a worker registers it, then leaves (the catalog keeps it).
	fl, closeFleet, err := startFleet(ctx, r.target.grpcAddr, 1, workerOptions{agent: r.cfg.agent, concurrency: 1}, 0, r.dial)
	if err != nil {
		return nil, err
	}
	for _, w := range fl.workers {
		w.close()
	}
	closeFleet()
	time.Sleep(200 * time.Millisecond) // let the hub end the session before tasks arrive
	sub := submitAll(ctx, r.clients, r.submitOptions(r.cfg.tasks, 0))
	rep.addSubmit(sub)
	if sub.accepted != int64(r.cfg.tasks) {
		rep.fail(fmt.Errorf("%d of %d tasks accepted", sub.accepted, r.cfg.tasks))
	}
	rep.Metrics.SubmitPerSecond = float64(sub.accepted) / sub.end.Sub(sub.start).Seconds()
	time.Sleep(time.Second) // the held state, not the submit burst in flight
	rep.Metrics.QueuedTasks = sub.accepted
	r.addMemory(rep)
	return rep, nil
}

// running holds cfg.tasks tasks at once on workers that take cfg.hold per task.
func (r *run) running(ctx context.Context) (*Report, error) {
	rep := r.newReport()
	if capacity := r.cfg.workers * r.cfg.concurrency; capacity < r.cfg.tasks {
		rep.Notes = append(rep.Notes, fmt.Sprintf("worker capacity %d is below %d tasks: not all run at once", capacity, r.cfg.tasks))
	}
	fl, closeFleet, err := startFleet(ctx, r.target.grpcAddr, r.cfg.workers, r.workerOptions(r.cfg.hold), int64(r.cfg.tasks), r.dial)
	if err != nil {
		return nil, err
	}
	defer closeFleet()
	sub := submitAll(ctx, r.clients, r.submitOptions(r.cfg.tasks, 0))
	end, err := r.awaitCompletion(ctx, fl)
	rep.addSubmit(sub)
	rep.addFleet(fl)
	if err != nil {
		rep.fail(err)
	}
	rep.Metrics.DurationSeconds = end.Sub(sub.start).Seconds()
	rep.Metrics.PeakRunning = fl.peak.Load()
	if fl.cancels.Load() > 0 {
		rep.fail(fmt.Errorf("%d assignments were cancelled", fl.cancels.Load()))
	}
	r.addMemory(rep)
	return rep, nil
}

// workflow runs cfg.tasks 3-step sequential no-op workflows one after another
// (cfg.submitters at a time): per-step overhead = workflow duration / 3.
func (r *run) workflow(ctx context.Context) (*Report, error) {
	rep := r.newReport()
	fl, closeFleet, err := startFleet(ctx, r.target.grpcAddr, r.cfg.workers, r.workerOptions(0), 0, r.dial)
	if err != nil {
		return nil, err
	}
	defer closeFleet()
	client := r.clients[0]
	if _, err := r.runWorkflow(ctx, client); err != nil {
		if isUnimplemented(err) {
			rep.Available = false
			rep.Notes = append(rep.Notes, "unavailable: the orchestrator does not implement SubmitWorkflow yet")
			return rep, nil
		}
		rep.fail(fmt.Errorf("first workflow: %w", err))
		return rep, nil
	}
	type outcome struct {
		d   workflowTiming
		err error
	}
	results := make(chan outcome)
	jobs := make(chan struct{})
	for range r.cfg.submitters {
		go func() {
			for range jobs {
				d, err := r.runWorkflow(ctx, r.clients[0])
				results <- outcome{d, err}
			}
		}()
	}
	go func() {
		defer close(jobs)
		for range r.cfg.tasks {
			select {
			case jobs <- struct{}{}:
			case <-ctx.Done():
				return
			}
		}
	}()
	var server, client2 []time.Duration
	for range r.cfg.tasks {
		select {
		case o := <-results:
			if o.err != nil {
				rep.fail(o.err)
				continue
			}
			server = append(server, o.d.server/workflowSteps)
			client2 = append(client2, o.d.client/workflowSteps)
		case <-ctx.Done():
			rep.fail(ctx.Err())
			return rep, nil
		}
	}
	rep.Metrics.Workflows = int64(len(server))
	rep.Metrics.StepOverhead = summary(server)
	rep.Metrics.StepOverheadClient = summary(client2)
	rep.addFleet(fl)
	r.addMemory(rep)
	return rep, nil
}

const workflowSteps = 3

type workflowTiming struct {
	server time.Duration // created_at -> finished_at (orchestrator clock)
	client time.Duration // SubmitWorkflow sent -> final event received
}

// runWorkflow submits one 3-step sequential workflow and waits until it finishes.
func (r *run) runWorkflow(ctx context.Context, client pb.OrchestratorServiceClient) (workflowTiming, error) {
	steps := make([]*pb.Step, workflowSteps)
	for i := range steps {
		steps[i] = &pb.Step{Id: fmt.Sprintf("step%d", i+1), Agent: r.cfg.agent, Input: structpb.NewStructValue(&structpb.Struct{})}
	}
	t0 := time.Now()
	resp, err := client.SubmitWorkflow(ctx, &pb.SubmitWorkflowRequest{Workflow: &pb.WorkflowSpec{
		Name: "loadgen", Mode: pb.WorkflowMode_WORKFLOW_MODE_SEQUENTIAL, Steps: steps,
	}})
	if err != nil {
		return workflowTiming{}, err
	}
	wf, err := awaitWorkflow(ctx, client, resp.GetWorkflow().GetId())
	if err != nil {
		return workflowTiming{}, err
	}
	timing := workflowTiming{client: time.Since(t0)}
	if wf.GetStatus() != pb.WorkflowStatus_WORKFLOW_STATUS_SUCCEEDED {
		return timing, fmt.Errorf("workflow %s ended %s", wf.GetId(), wf.GetStatus())
	}
	timing.server = timing.client
	if wf.GetCreatedAt() != nil && wf.GetFinishedAt() != nil {
		timing.server = wf.GetFinishedAt().AsTime().Sub(wf.GetCreatedAt().AsTime())
	}
	return timing, nil
}

// awaitWorkflow follows WatchWorkflow to its final event, or polls GetWorkflow if
// watching is not implemented.
func awaitWorkflow(ctx context.Context, client pb.OrchestratorServiceClient, id string) (*pb.Workflow, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	stream, err := client.WatchWorkflow(ctx, &pb.WatchWorkflowRequest{Id: id})
	if err == nil {
		for {
			resp, err := stream.Recv()
			if err != nil {
				if isUnimplemented(err) {
					break
				}
				return nil, fmt.Errorf("watch workflow %s: %w", id, err)
			}
			if ev := resp.GetEvent(); ev.GetDone() {
				if ev.GetWorkflow() != nil {
					return ev.GetWorkflow(), nil
				}
				break
			}
		}
	}
	for {
		resp, err := client.GetWorkflow(ctx, &pb.GetWorkflowRequest{Id: id})
		if err != nil {
			return nil, fmt.Errorf("get workflow %s: %w", id, err)
		}
		if s := resp.GetWorkflow().GetStatus(); s != pb.WorkflowStatus_WORKFLOW_STATUS_RUNNING && s != pb.WorkflowStatus_WORKFLOW_STATUS_UNSPECIFIED {
			return resp.GetWorkflow(), nil
		}
		time.Sleep(200 * time.Microsecond)
	}
}

// awaitCompletion waits until the workers have sent every result and the
// orchestrator has recorded them (each worker's last task has succeeded); it
// returns when that was observed.
func (r *run) awaitCompletion(ctx context.Context, fl *fleet) (time.Time, error) {
	timer := time.NewTimer(r.cfg.timeout)
	defer timer.Stop()
	select {
	case <-fl.done:
	case <-timer.C:
		return time.Now(), fmt.Errorf("%w: %d of %d results sent", errIncomplete, fl.completed.Load(), fl.target)
	case <-ctx.Done():
		return time.Now(), ctx.Err()
	}
	for _, id := range fl.lastTasks() {
		for {
			resp, err := r.clients[0].GetTask(ctx, &pb.GetTaskRequest{Id: id})
			if err != nil {
				return time.Now(), fmt.Errorf("confirm task %s: %w", id, err)
			}
			// Until the result is durable a task may still read QUEUED or RUNNING.
			s := resp.GetTask().GetStatus()
			if s == pb.TaskStatus_TASK_STATUS_SUCCEEDED {
				break
			}
			if s != pb.TaskStatus_TASK_STATUS_QUEUED && s != pb.TaskStatus_TASK_STATUS_RUNNING {
				return time.Now(), fmt.Errorf("task %s ended %s, not SUCCEEDED", id, s)
			}
			time.Sleep(100 * time.Microsecond)
		}
	}
	return time.Now(), nil
}

// scrapeScheduling reads the orchestrator's scheduling histogram (needs its HTTP address).
func (r *run) scrapeScheduling(ctx context.Context) (histogram, error) {
	if r.target.httpAddr == "" {
		return histogram{}, errors.New("its HTTP address is unknown (give --http-addr or --spawn)")
	}
	return scrapeHistogram(ctx, r.target.httpAddr, schedulingHistogram)
}

func (r *run) workerOptions(hold time.Duration) workerOptions {
	return workerOptions{agent: r.cfg.agent, concurrency: r.cfg.concurrency, hold: hold}
}

func (r *run) submitOptions(total int, rate float64) submitOptions {
	return submitOptions{agent: r.cfg.agent, total: total, submitters: r.cfg.submitters, batch: r.cfg.batch, rate: rate}
}

// cpuTime is the orchestrator's CPU time so far (0 when its pid is unknown).
func (r *run) cpuTime() time.Duration {
	if r.target.pid <= 0 {
		return 0
	}
	d, err := readCPU(r.target.pid)
	if err != nil {
		return 0
	}
	return d
}

func (r *run) addMemory(rep *Report) {
	if r.target.pid <= 0 {
		return
	}
	m, err := readMemory(r.target.pid)
	if err != nil {
		rep.Notes = append(rep.Notes, "memory: "+err.Error())
		return
	}
	rep.Metrics.RSSMB = mb(m.RSS)
	rep.Metrics.PeakRSSMB = mb(m.Peak)
}

// startProfile fetches a CPU profile of the orchestrator while the load runs, if asked.
func (r *run) startProfile(ctx context.Context) <-chan error {
	done := make(chan error, 1)
	if r.cfg.profile == "" {
		done <- nil
		return done
	}
	if r.target.httpAddr == "" {
		done <- errors.New("--profile needs --http-addr (or --spawn)")
		return done
	}
	go func() {
		done <- fetchProfile(ctx, "http://"+r.target.httpAddr+"/debug/pprof/profile?seconds="+fmt.Sprint(int(r.cfg.profileSeconds.Seconds())), r.cfg.profile)
	}()
	return done
}

func fetchProfile(ctx context.Context, url, path string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("GET %s: %s: %s", url, resp.Status, strings.TrimSpace(string(b)))
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}

func mb(bytes int64) float64 { return float64(bytes*100/(1<<20)) / 100 }
