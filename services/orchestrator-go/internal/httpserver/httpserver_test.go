package httpserver

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestEndpoints(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "taskloom_orchestrator_probe_total", Help: "probe"})
	reg.MustRegister(c)
	var ready Readiness
	srv := httptest.NewServer(Handler(&ready, reg))
	defer srv.Close()

	get := func(path string) (int, string) {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = resp.Body.Close() }()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, string(b)
	}
	if code, body := get("/healthz"); code != 200 || !strings.Contains(body, `"ok"`) {
		t.Fatalf("/healthz = %d %s", code, body)
	}
	if code, body := get("/readyz"); code != 503 || !strings.Contains(body, "grpc") {
		t.Fatalf("/readyz before ready = %d %s", code, body)
	}
	ready.Set(true)
	if code, _ := get("/readyz"); code != 200 {
		t.Fatalf("/readyz when ready = %d", code)
	}
	if code, body := get("/metrics"); code != 200 || !strings.Contains(body, "taskloom_orchestrator_probe_total") {
		t.Fatalf("/metrics = %d %s", code, body)
	}
}
