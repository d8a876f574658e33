// Package telemetry defines every Prometheus metric of the orchestrator (this file,
// so names and labels are reviewable at a glance) and its slog JSON logger.
package telemetry

import (
	"slices"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/taskloom/taskloom/services/orchestrator-go/internal/task"
)

const namespace = "taskloom_orchestrator"

// Metrics holds the orchestrator's metrics. Label values are bounded: agents come
// from the catalog, statuses and priorities are enums.
type Metrics struct {
	TasksSubmitted      *prometheus.CounterVec   // {agent}
	TasksFinished       *prometheus.CounterVec   // {agent,status}
	TaskRetries         *prometheus.CounterVec   // {agent}
	QueueDepth          *prometheus.GaugeVec     // {priority,tenant}: tenant capped (top N + "other")
	TasksRunning        prometheus.Gauge         //
	SchedulingLatency   prometheus.Histogram     // queued -> assigned
	TaskDuration        *prometheus.HistogramVec // {agent,status}: started -> finished
	WorkersConnected    prometheus.Gauge         //
	WorkerCreditsFree   prometheus.Gauge         //
	LeasesExpired       prometheus.Counter       //
	StaleMessages       *prometheus.CounterVec   // {kind}: chunk|result with an unknown lease
	WorkerMessages      *prometheus.CounterVec   // {kind}: stream messages received from workers
	WatchersActive      prometheus.Gauge         //
	WatchersLagged      prometheus.Counter       //
	SubmitRejected      *prometheus.CounterVec   // {reason}
	AssignmentsSent     prometheus.Counter       //
	CancellationsSent   prometheus.Counter       //
	WorkerSessionsOpen  prometheus.Counter       // sessions ever registered
	StoreCommits        prometheus.Counter       // group-commit transactions
	StoreCommitFailures prometheus.Counter       // failed commit attempts (each is retried)
	StoreCommitTasks    prometheus.Histogram     // task writes per commit
	StoreCommitDuration prometheus.Histogram     // one commit, fsync included
	TasksRecovered      prometheus.Counter       // unfinished tasks loaded at start
	TasksPruned         prometheus.Counter       // finished tasks deleted by retention
	JournalRecords      prometheus.Counter       // journal records kept (written through the committer)
	JournalFull         prometheus.Counter       // task journals that reached their limit
	Leader              prometheus.Gauge         // 1 while this orchestrator is the leader

	queueDepthSeries map[[2]string]bool // label pairs set last time
}

// NewMetrics creates the metrics and registers them (and the Go/process collectors)
// on reg. Tests pass a fresh prometheus.NewRegistry().
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		TasksSubmitted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "tasks_submitted_total",
			Help: "Tasks accepted by SubmitTask/SubmitTasks (idempotent repeats excluded).",
		}, []string{"agent"}),
		TasksFinished: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "tasks_finished_total",
			Help: "Tasks that reached a terminal status.",
		}, []string{"agent", "status"}),
		TaskRetries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "task_retries_total",
			Help: "Attempts requeued after a retryable error, an expired lease or a lost worker.",
		}, []string{"agent"}),
		QueueDepth: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: namespace, Name: "queue_depth",
			Help: "Tasks waiting for a worker, by priority and tenant (the tenants with most queued tasks; the rest as \"other\").",
		}, []string{"priority", "tenant"}),
		TasksRunning: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace, Name: "tasks_running",
			Help: "Tasks assigned to a worker and not yet finished.",
		}),
		SchedulingLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: namespace, Name: "scheduling_latency_seconds",
			Help: "Time from a task entering the queue to its assignment to a worker.",
			// 62.5 µs to 65 s; 0.5, 1 and 2 ms are bounds (the goal is p99 <= 2 ms).
			Buckets: prometheus.ExponentialBuckets(0.0000625, 2, 21),
		}),
		TaskDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Name: "task_duration_seconds",
			Help:    "Time from the start of a task's last attempt to its end.",
			Buckets: prometheus.ExponentialBuckets(0.01, 2, 16),
		}, []string{"agent", "status"}),
		WorkersConnected: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace, Name: "workers_connected",
			Help: "Workers with an open session.",
		}),
		WorkerCreditsFree: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace, Name: "worker_credits_free",
			Help: "Credits granted by non-draining workers and not yet used.",
		}),
		LeasesExpired: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Name: "leases_expired_total",
			Help: "Leases not renewed within the lease TTL.",
		}),
		StaleMessages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "stale_messages_total",
			Help: "Worker chunks and results ignored because their lease is no longer current.",
		}, []string{"kind"}),
		WorkerMessages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "worker_messages_total",
			Help: "WorkerHub stream messages received from workers, by kind (a batch counts once).",
		}, []string{"kind"}),
		WatchersActive: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace, Name: "watchers_active",
			Help: "Open WatchTask subscriptions.",
		}),
		WatchersLagged: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Name: "watchers_lagged_total",
			Help: "Subscriptions whose buffer overflowed (they resubscribe from their last event).",
		}),
		SubmitRejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "submit_rejected_total",
			Help: "Submissions refused, by error reason.",
		}, []string{"reason"}),
		AssignmentsSent: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Name: "assignments_sent_total",
			Help: "Assignments sent to workers.",
		}),
		CancellationsSent: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Name: "cancellations_sent_total",
			Help: "CancelAssignment messages sent to workers.",
		}),
		WorkerSessionsOpen: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Name: "worker_sessions_total",
			Help: "Worker sessions registered since start.",
		}),
		StoreCommits: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Name: "store_commits_total",
			Help: "Group-commit transactions written to the store.",
		}),
		StoreCommitFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Name: "store_commit_failures_total",
			Help: "Group-commit attempts the store refused; each batch is retried until it commits.",
		}),
		StoreCommitTasks: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: namespace, Name: "store_commit_tasks",
			Help:    "Task writes batched into one store commit.",
			Buckets: prometheus.ExponentialBuckets(1, 4, 8),
		}),
		StoreCommitDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: namespace, Name: "store_commit_duration_seconds",
			Help:    "Time to write and flush one store commit.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
		}),
		TasksRecovered: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Name: "tasks_recovered_total",
			Help: "Unfinished tasks loaded from the store at start.",
		}),
		TasksPruned: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Name: "tasks_pruned_total",
			Help: "Finished tasks deleted by the retention setting.",
		}),
		JournalRecords: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Name: "journal_records_total",
			Help: "Journal records (completed LLM turns and tool results) kept with their tasks.",
		}),
		JournalFull: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Name: "journal_full_total",
			Help: "Task journals that reached their size limit (Assignment.journal); later steps of those tasks are not recorded.",
		}),
		Leader: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace, Name: "leader",
			Help: "1 while this orchestrator schedules (it holds the leader lease of the Redis store, or runs on bolt or memory), 0 while it is a standby.",
		}),
		queueDepthSeries: map[[2]string]bool{},
	}
	reg.MustRegister(
		m.TasksSubmitted, m.TasksFinished, m.TaskRetries, m.QueueDepth, m.TasksRunning,
		m.SchedulingLatency, m.TaskDuration, m.WorkersConnected, m.WorkerCreditsFree,
		m.LeasesExpired, m.StaleMessages, m.WorkerMessages, m.WatchersActive, m.WatchersLagged,
		m.SubmitRejected, m.AssignmentsSent, m.CancellationsSent, m.WorkerSessionsOpen,
		m.StoreCommits, m.StoreCommitFailures, m.StoreCommitTasks, m.StoreCommitDuration, m.TasksRecovered, m.TasksPruned,
		m.JournalRecords, m.JournalFull,
		m.Leader,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	m.SetQueueDepth(nil, 0)
	return m
}

// OtherTenants is the tenant label value of tenants beyond the top N.
const OtherTenants = "other"

// SetQueueDepth sets the queue-depth gauge from depth by tenant and priority. The
// topN tenants with the most queued tasks get their own label; the rest add up
// under "other", which is always present. Series of tenants no longer shown are
// deleted, so the label set stays bounded. Not safe for concurrent use (the
// scheduler calls it under its lock).
func (m *Metrics) SetQueueDepth(depth map[string]*[task.MaxPriority + 1]int, topN int) {
	type tenantTotal struct {
		tenant string
		total  int
	}
	totals := make([]tenantTotal, 0, len(depth))
	for tenant, d := range depth {
		n := 0
		for _, v := range d {
			n += v
		}
		totals = append(totals, tenantTotal{tenant, n})
	}
	slices.SortFunc(totals, func(a, b tenantTotal) int {
		if a.total != b.total {
			return b.total - a.total
		}
		if a.tenant < b.tenant {
			return -1
		}
		return 1
	})
	var other [task.MaxPriority + 1]int
	seen := make(map[[2]string]bool, len(m.queueDepthSeries))
	for i, tt := range totals {
		d := depth[tt.tenant]
		if i >= topN || tt.tenant == OtherTenants {
			for p, v := range d {
				other[p] += v
			}
			continue
		}
		for p, v := range d {
			if v == 0 {
				continue
			}
			k := [2]string{strconv.Itoa(p), tt.tenant}
			m.QueueDepth.WithLabelValues(k[0], k[1]).Set(float64(v))
			seen[k] = true
		}
	}
	for p, v := range other {
		k := [2]string{strconv.Itoa(p), OtherTenants}
		m.QueueDepth.WithLabelValues(k[0], k[1]).Set(float64(v))
		seen[k] = true
	}
	for k := range m.queueDepthSeries {
		if !seen[k] {
			m.QueueDepth.DeleteLabelValues(k[0], k[1])
		}
	}
	m.queueDepthSeries = seen
}

// AgentSeries holds one agent's per-task series, looked up once rather than by label
// values on every task (a hash and a map lookup each). Not safe for concurrent use:
// the scheduler keeps them under its lock.
type AgentSeries struct {
	m        *Metrics
	agent    string
	submit   prometheus.Counter
	finished [task.StatusTimedOut + 1]prometheus.Counter
	duration [task.StatusTimedOut + 1]prometheus.Observer
}

// AgentSeries returns the agent's series handle; series are created on first use,
// except the retry counter, which starts at 0 so that rate() over it works from the
// agent's first task rather than from its first retry.
func (m *Metrics) AgentSeries(agent string) *AgentSeries {
	m.TaskRetries.WithLabelValues(agent)
	return &AgentSeries{m: m, agent: agent}
}

// Submitted is TasksSubmitted{agent}.
func (a *AgentSeries) Submitted() prometheus.Counter {
	if a.submit == nil {
		a.submit = a.m.TasksSubmitted.WithLabelValues(a.agent)
	}
	return a.submit
}

// Finished is TasksFinished{agent,status}; status must be terminal.
func (a *AgentSeries) Finished(status task.Status) prometheus.Counter {
	if a.finished[status] == nil {
		a.finished[status] = a.m.TasksFinished.WithLabelValues(a.agent, status.String())
	}
	return a.finished[status]
}

// Duration is TaskDuration{agent,status}; status must be terminal.
func (a *AgentSeries) Duration(status task.Status) prometheus.Observer {
	if a.duration[status] == nil {
		a.duration[status] = a.m.TaskDuration.WithLabelValues(a.agent, status.String())
	}
	return a.duration[status]
}

// NewTestMetrics returns metrics on a private registry.
func NewTestMetrics() *Metrics { return NewMetrics(prometheus.NewRegistry()) }

// ---- Workflow engine (internal/workflow) ----

// WorkflowMetrics are the workflow engine's metrics, registered apart from Metrics
// so the engine and the scheduler can be wired independently.
type WorkflowMetrics struct {
	Started      *prometheus.CounterVec // {mode}
	Finished     *prometheus.CounterVec // {status}
	Running      prometheus.Gauge       //
	StepOverhead prometheus.Histogram   // step ready -> its tasks submitted
}

// NewWorkflowMetrics creates the workflow metrics and registers them on reg.
func NewWorkflowMetrics(reg prometheus.Registerer) *WorkflowMetrics {
	m := &WorkflowMetrics{
		Started: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "workflows_started_total",
			Help: "Workflows accepted by SubmitWorkflow (idempotent repeats excluded), by mode.",
		}, []string{"mode"}),
		Finished: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "workflows_finished_total",
			Help: "Workflows that reached a terminal status.",
		}, []string{"status"}),
		Running: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace, Name: "workflows_running",
			Help: "Workflows started and not yet finished.",
		}),
		StepOverhead: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: namespace, Name: "workflow_step_overhead_seconds",
			Help:    "Time from a step becoming ready (its upstream steps done) to its tasks being submitted.",
			Buckets: prometheus.ExponentialBuckets(0.00005, 2, 16),
		}),
	}
	reg.MustRegister(m.Started, m.Finished, m.Running, m.StepOverhead)
	return m
}
