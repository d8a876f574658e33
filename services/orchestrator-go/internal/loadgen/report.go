package loadgen

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"time"
)

// Report is the outcome of one run; it is printed as a table and written as JSON.
type Report struct {
	Mode      string         `json:"mode"`
	Available bool           `json:"available"` // false: the orchestrator lacks the RPCs the mode needs
	OK        bool           `json:"ok"`
	Errors    int64          `json:"errors"`
	Config    map[string]any `json:"config"`
	Metrics   metrics        `json:"metrics"`
	Notes     []string       `json:"notes,omitempty"`
	ErrorList []string       `json:"error_samples,omitempty"`
}

// metrics holds every figure a mode may report; those a mode does not measure stay zero.
type metrics struct {
	Tasks             int64   `json:"tasks"`
	Completed         int64   `json:"completed"`
	DurationSeconds   float64 `json:"duration_seconds,omitempty"`
	TasksPerSecond    float64 `json:"tasks_per_second,omitempty"`
	SubmitPerSecond   float64 `json:"submit_per_second,omitempty"`
	Backpressure      int64   `json:"backpressure_answers"`
	CPUPerTaskMicros  float64 `json:"orchestrator_cpu_per_task_us,omitempty"` // user + system
	CPUCores          float64 `json:"orchestrator_cpu_cores,omitempty"`       // CPU time / duration
	QueuedTasks       int64   `json:"queued_tasks,omitempty"`
	PeakRunning       int64   `json:"peak_running,omitempty"`
	Workflows         int64   `json:"workflows,omitempty"`
	RSSMB             float64 `json:"rss_mb,omitempty"`
	PeakRSSMB         float64 `json:"peak_rss_mb,omitempty"`
	SubmitLatency     Summary `json:"submit_latency"`     // per call
	SchedulingLatency Summary `json:"scheduling_latency"` // created_at -> started_at, orchestrator clock
	AssignLatency     Summary `json:"assign_latency"`     // created_at -> assignment received by the worker
	// Mode latency: the orchestrator's own histogram, queue entry (after the durable
	// write) -> assigned; bucket upper bounds.
	QueueLatency boundSummary `json:"queue_latency"`
	// Per step of a 3-step sequential workflow: orchestrator (created -> finished) / 3,
	// and client (submit -> final event) / 3.
	StepOverhead       Summary `json:"step_overhead"`
	StepOverheadClient Summary `json:"step_overhead_client"`
}

func (r *run) newReport() *Report {
	return &Report{Mode: r.cfg.mode, Available: true, OK: true, Config: r.cfg.describe(), Metrics: metrics{Tasks: int64(r.cfg.tasks)}}
}

func (rep *Report) fail(err error) {
	rep.OK = false
	rep.Errors++
	if len(rep.ErrorList) < maxErrorsKept {
		rep.ErrorList = append(rep.ErrorList, err.Error())
	}
}

func (rep *Report) addSubmit(s *submitStats) {
	rep.Metrics.SubmitLatency = summary(s.latencies)
	rep.Metrics.Backpressure = s.backpressure
	for _, err := range s.errs {
		rep.fail(fmt.Errorf("submit: %w", err))
	}
}

func (rep *Report) addFleet(f *fleet) {
	rep.Metrics.Completed = f.completed.Load()
	sched, assign := f.latencies()
	rep.Metrics.SchedulingLatency = summary(sched)
	rep.Metrics.AssignLatency = summary(assign)
	for _, err := range f.errors() {
		rep.fail(err)
	}
}

func summary(ds []time.Duration) Summary { return Summarize(ds) }

// PrintTable writes the report as an aligned table.
func (rep *Report) PrintTable(w io.Writer) {
	m := rep.Metrics
	row := func(name, value string) { _, _ = fmt.Fprintf(w, "  %-40s %s\n", name, value) }
	lat := func(name string, s Summary) {
		if s.Count > 0 {
			row(name, fmt.Sprintf("p50 %.3f ms  p99 %.3f ms  max %.3f ms  (n=%d)", s.P50, s.P99, s.Max, s.Count))
		}
	}
	num := func(name string, v float64, unit string) {
		if v != 0 {
			row(name, fmt.Sprintf("%.2f %s", v, unit))
		}
	}
	_, _ = fmt.Fprintf(w, "taskloom-loadgen mode=%s ok=%v errors=%d\n", rep.Mode, rep.OK, rep.Errors)
	if !rep.Available {
		row("status", "unavailable")
	}
	row("tasks (completed)", fmt.Sprintf("%d (%d)", m.Tasks, m.Completed))
	num("tasks/s (first submit -> last done)", m.TasksPerSecond, "tasks/s")
	num("submitted/s", m.SubmitPerSecond, "tasks/s")
	num("duration", m.DurationSeconds, "s")
	num("orchestrator CPU per task", m.CPUPerTaskMicros, "µs")
	num("orchestrator CPU busy", m.CPUCores, "cores")
	lat("submit latency (per call)", m.SubmitLatency)
	lat("scheduling latency (created->assigned)", m.SchedulingLatency)
	lat("assign latency (created->at worker)", m.AssignLatency)
	if q := m.QueueLatency; q.Count > 0 {
		row("queue latency (in queue->assigned)", fmt.Sprintf("p50 <= %g ms  p99 <= %g ms  (orchestrator histogram, n=%d)", q.P50, q.P99, q.Count))
	}
	lat("workflow step overhead", m.StepOverhead)
	lat("workflow step overhead (client)", m.StepOverheadClient)
	if m.QueuedTasks > 0 {
		row("queued tasks held", fmt.Sprint(m.QueuedTasks))
	}
	if m.PeakRunning > 0 {
		row("peak running at once", fmt.Sprint(m.PeakRunning))
	}
	if m.Backpressure > 0 {
		row("RESOURCE_EXHAUSTED answers", fmt.Sprint(m.Backpressure))
	}
	num("orchestrator RSS", m.RSSMB, "MB")
	num("orchestrator peak RSS (VmHWM)", m.PeakRSSMB, "MB")
	for _, n := range rep.Notes {
		row("note", n)
	}
	for _, e := range rep.ErrorList {
		row("error", e)
	}
}

func (rep *Report) WriteJSON(path string) error {
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}
