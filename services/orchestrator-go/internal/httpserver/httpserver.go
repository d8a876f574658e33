// Package httpserver serves the orchestrator's operational HTTP endpoints:
// /healthz (alive), /readyz (gRPC listening and the store reachable), /metrics, and
// /debug/pprof when profiling is switched on (WithProfiling).
package httpserver

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/pprof"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Readiness is flipped on once the gRPC server listens, and off at shutdown.
type Readiness struct{ ready atomic.Bool }

// Set marks the orchestrator ready or not.
func (r *Readiness) Set(ready bool) { r.ready.Store(ready) }

// Check is a dependency /readyz probes on every request, e.g. the store.
type Check struct {
	Name  string
	Probe func(ctx context.Context) error
}

// CheckTimeout bounds each /readyz request's probes together.
const CheckTimeout = 2 * time.Second

// grpcCheck is the name /readyz gives the gRPC listener.
const grpcCheck = "grpc"

// Handler returns the mux of operational endpoints. /readyz answers 200 with
// {"status":"ready","checks":{name:"ok"}} when the gRPC server listens and every
// check passes, else 503 with {"status":"unavailable","not_ready":[names],
// "checks":{name:"ok" or the error}}.
func Handler(ready *Readiness, gatherer prometheus.Gatherer, checks ...Check) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		results := map[string]string{grpcCheck: "ok"}
		notReady := []string{}
		if !ready.ready.Load() {
			results[grpcCheck] = "the gRPC server is not listening (starting or shutting down)"
			notReady = append(notReady, grpcCheck)
		}
		ctx, cancel := context.WithTimeout(r.Context(), CheckTimeout)
		defer cancel()
		for _, c := range checks {
			results[c.Name] = "ok"
			if err := c.Probe(ctx); err != nil {
				results[c.Name] = err.Error()
				notReady = append(notReady, c.Name)
			}
		}
		if len(notReady) == 0 {
			writeJSON(w, http.StatusOK, map[string]any{"status": "ready", "checks": results})
			return
		}
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "unavailable", "not_ready": notReady, "checks": results})
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(gatherer, promhttp.HandlerOpts{}))
	return mux
}

// WithProfiling adds net/http/pprof's endpoints under /debug/pprof/ to h. Who may
// reach them is the listen address's business: the configuration refuses
// --profiling on a non-loopback --http-addr unless --profiling-allow-remote.
func WithProfiling(h http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/", h)
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}

// New returns the HTTP server for addr.
func New(addr string, h http.Handler) *http.Server {
	return &http.Server{Addr: addr, Handler: h, ReadHeaderTimeout: 5 * time.Second}
}

func writeJSON(w http.ResponseWriter, code int, body any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(body)
}
