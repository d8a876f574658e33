package telemetry

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestLoggerWritesJSONWithServiceAndTs(t *testing.T) {
	var buf bytes.Buffer
	NewLogger(&buf, slog.LevelInfo).Info("started", "task_id", "t1")
	var line map[string]any
	if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
		t.Fatalf("not JSON: %q", buf.String())
	}
	for _, k := range []string{"ts", "level", "msg", "service", "task_id"} {
		if _, ok := line[k]; !ok {
			t.Errorf("missing %q in %v", k, line)
		}
	}
	if line["level"] != "info" || line["service"] != "orchestrator" {
		t.Errorf("line = %v", line)
	}
}

func TestMetricNamesFollowConvention(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	m.TasksSubmitted.WithLabelValues("echo").Inc()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, f := range families {
		names[f.GetName()] = true
	}
	for _, want := range []string{
		"taskloom_orchestrator_tasks_submitted_total", "taskloom_orchestrator_queue_depth",
		"taskloom_orchestrator_workers_connected", "taskloom_orchestrator_worker_credits_free",
	} {
		if !names[want] {
			t.Errorf("metric %s not registered", want)
		}
	}
}
