package httpserver

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/taskloom/taskloom/services/orchestrator-go/internal/redistest"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/store"
)

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
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

type readyBody struct {
	Status   string            `json:"status"`
	NotReady []string          `json:"not_ready"`
	Checks   map[string]string `json:"checks"`
}

func readyz(t *testing.T, base string) (int, readyBody) {
	t.Helper()
	code, body := get(t, base+"/readyz")
	var b readyBody
	if err := json.Unmarshal([]byte(body), &b); err != nil {
		t.Fatalf("/readyz body %q: %v", body, err)
	}
	return code, b
}

func TestEndpoints(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "taskloom_orchestrator_probe_total", Help: "probe"})
	reg.MustRegister(c)
	var ready Readiness
	srv := httptest.NewServer(Handler(&ready, reg))
	defer srv.Close()

	if code, body := get(t, srv.URL+"/healthz"); code != 200 || !strings.Contains(body, `"ok"`) {
		t.Fatalf("/healthz = %d %s", code, body)
	}
	if code, body := readyz(t, srv.URL); code != 503 || !reflect.DeepEqual(body.NotReady, []string{"grpc"}) {
		t.Fatalf("/readyz before ready = %d %+v", code, body)
	}
	ready.Set(true)
	if code, body := readyz(t, srv.URL); code != 200 || body.Status != "ready" {
		t.Fatalf("/readyz when ready = %d %+v", code, body)
	}
	if code, body := get(t, srv.URL+"/metrics"); code != 200 || !strings.Contains(body, "taskloom_orchestrator_probe_total") {
		t.Fatalf("/metrics = %d %s", code, body)
	}
}

// /readyz probes the store: it turns 503 naming the store once the bolt file is
// closed or Redis stops answering, while the gRPC listener stays ready.
func TestReadyzChecksTheStore(t *testing.T) {
	t.Run("bolt", func(t *testing.T) {
		b, err := store.OpenBolt(filepath.Join(t.TempDir(), store.BoltFileName))
		if err != nil {
			t.Fatal(err)
		}
		checkStoreReadiness(t, b, func() { _ = b.Close() })
	})
	t.Run("redis", func(t *testing.T) {
		srv := redistest.Start(t)
		r, err := store.OpenRedis(context.Background(), srv.URL, "")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = r.Close() })
		checkStoreReadiness(t, r, srv.Stop)
	})
}

func checkStoreReadiness(t *testing.T, st store.Store, down func()) {
	var ready Readiness
	ready.Set(true)
	srv := httptest.NewServer(Handler(&ready, prometheus.NewRegistry(), Check{Name: "store", Probe: st.Ping}))
	defer srv.Close()
	code, body := readyz(t, srv.URL)
	if code != 200 || body.Checks["store"] != "ok" || body.Checks["grpc"] != "ok" {
		t.Fatalf("/readyz with the store up = %d %+v", code, body)
	}
	down()
	code, body = readyz(t, srv.URL)
	if code != 503 || !reflect.DeepEqual(body.NotReady, []string{"store"}) || body.Checks["store"] == "ok" || body.Checks["grpc"] != "ok" {
		t.Fatalf("/readyz with the store down = %d %+v", code, body)
	}
	ready.Set(false)
	if code, body = readyz(t, srv.URL); code != 503 || !reflect.DeepEqual(body.NotReady, []string{"grpc", "store"}) {
		t.Fatalf("/readyz with both down = %d %+v", code, body)
	}
}

// /debug/pprof is absent unless profiling is switched on (who may reach it is the
// listen address's: TestProfilingIsOffByDefaultAndLoopbackUnlessAllowed).
func TestProfilingIsOptIn(t *testing.T) {
	base := Handler(&Readiness{}, prometheus.NewRegistry())
	serve := func(h http.Handler, path, peer string) (int, string) {
		req := httptest.NewRequest(http.MethodGet, path, nil)
		req.RemoteAddr = peer
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec.Code, rec.Body.String()
	}
	const loopback = "127.0.0.1:40000"
	if code, _ := serve(base, "/debug/pprof/cmdline", loopback); code != http.StatusNotFound {
		t.Fatalf("profiling off: /debug/pprof/cmdline = %d, want 404", code)
	}
	profiled := WithProfiling(base)
	if code, body := serve(profiled, "/debug/pprof/goroutine?debug=1", loopback); code != 200 || !strings.Contains(body, "goroutine profile") {
		t.Fatalf("profiling on: %d %.200s", code, body)
	}
	if code, _ := serve(profiled, "/healthz", loopback); code != 200 {
		t.Fatalf("/healthz behind the profiling mux = %d", code)
	}
}
