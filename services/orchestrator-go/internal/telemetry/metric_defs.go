// Package telemetry defines every Prometheus metric of the orchestrator (this file,
// so names and labels are reviewable at a glance) and its slog JSON logger.
package telemetry

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/taskloom/taskloom/services/orchestrator-go/internal/task"
)

const namespace = "taskloom_orchestrator"

// Metrics holds the orchestrator's metrics. Label values are bounded: agents come
// from the catalog, statuses and priorities are enums.
type Metrics struct {
	TasksSubmitted     *prometheus.CounterVec   // {agent}
	TasksFinished      *prometheus.CounterVec   // {agent,status}
	TaskRetries        *prometheus.CounterVec   // {agent}
	QueueDepth         *prometheus.GaugeVec     // {priority}
	TasksRunning       prometheus.Gauge         //
	SchedulingLatency  prometheus.Histogram     // queued -> assigned
	TaskDuration       *prometheus.HistogramVec // {agent,status}: started -> finished
	WorkersConnected   prometheus.Gauge         //
	WorkerCreditsFree  prometheus.Gauge         //
	LeasesExpired      prometheus.Counter       //
	StaleMessages      *prometheus.CounterVec   // {kind}: chunk|result with an unknown lease
	WatchersActive     prometheus.Gauge         //
	WatchersLagged     prometheus.Counter       //
	SubmitRejected     *prometheus.CounterVec   // {reason}
	AssignmentsSent    prometheus.Counter       //
	CancellationsSent  prometheus.Counter       //
	WorkerSessionsOpen prometheus.Counter       // sessions ever registered
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
			Help: "Tasks waiting for a worker, by priority.",
		}, []string{"priority"}),
		TasksRunning: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace, Name: "tasks_running",
			Help: "Tasks assigned to a worker and not yet finished.",
		}),
		SchedulingLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: namespace, Name: "scheduling_latency_seconds",
			Help:    "Time from a task entering the queue to its assignment to a worker.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 18),
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
	}
	reg.MustRegister(
		m.TasksSubmitted, m.TasksFinished, m.TaskRetries, m.QueueDepth, m.TasksRunning,
		m.SchedulingLatency, m.TaskDuration, m.WorkersConnected, m.WorkerCreditsFree,
		m.LeasesExpired, m.StaleMessages, m.WatchersActive, m.WatchersLagged,
		m.SubmitRejected, m.AssignmentsSent, m.CancellationsSent, m.WorkerSessionsOpen,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	for p := task.MinPriority; p <= task.MaxPriority; p++ {
		m.QueueDepth.WithLabelValues(strconv.Itoa(p)).Set(0)
	}
	return m
}

// NewTestMetrics returns metrics on a private registry.
func NewTestMetrics() *Metrics { return NewMetrics(prometheus.NewRegistry()) }
