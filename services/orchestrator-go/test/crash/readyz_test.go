package crash

import (
	"context"
	"net/http"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/taskloom/taskloom/services/orchestrator-go/internal/redistest"
)

// The real binary's /readyz checks its store: ready while Redis answers, 503
// naming the store once Redis is gone.
func TestReadyzNamesTheStoreWhenRedisIsDown(t *testing.T) {
	srv := redistest.Start(t)
	grpcAddr, httpAddr := freeAddr(t), freeAddr(t)
	start(t, []string{"--grpc-addr", grpcAddr, "--http-addr", httpAddr, "--log-level", "warn", "--store", "redis", "--redis-url", srv.URL},
		filepath.Join(t.TempDir(), "orchestrator.log"))

	// start waits for the gRPC port only: the HTTP server listens, and the service is
	// marked ready, a moment later.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if !waitReady(ctx, t, httpAddr) {
		t.Fatal("/readyz never answered 200 with Redis up")
	}
	srv.Stop()
	if code, notReady := readyz("http://" + httpAddr + "/readyz"); code != http.StatusServiceUnavailable || !reflect.DeepEqual(notReady, []string{"store"}) {
		t.Fatalf("/readyz with Redis down = %d %v", code, notReady)
	}
}
