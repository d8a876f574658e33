package crash

import (
	"encoding/json"
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

	type body struct {
		NotReady []string          `json:"not_ready"`
		Checks   map[string]string `json:"checks"`
	}
	readyz := func() (int, body) {
		t.Helper()
		resp, err := http.Get("http://" + httpAddr + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = resp.Body.Close() }()
		var b body
		if err := json.NewDecoder(resp.Body).Decode(&b); err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, b
	}
	code, b := readyz()
	for i := 0; code != http.StatusOK && i < 100; i++ { // gRPC listens a moment before it is marked ready
		time.Sleep(20 * time.Millisecond)
		code, b = readyz()
	}
	if code != http.StatusOK || b.Checks["store"] != "ok" {
		t.Fatalf("/readyz with Redis up = %d %+v", code, b)
	}
	srv.Stop()
	if code, b = readyz(); code != http.StatusServiceUnavailable || !reflect.DeepEqual(b.NotReady, []string{"store"}) {
		t.Fatalf("/readyz with Redis down = %d %+v", code, b)
	}
}
