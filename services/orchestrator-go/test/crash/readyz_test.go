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
	readyz := func() (int, body, error) {
		resp, err := http.Get("http://" + httpAddr + "/readyz")
		if err != nil {
			return 0, body{}, err
		}
		defer func() { _ = resp.Body.Close() }()
		var b body
		err = json.NewDecoder(resp.Body).Decode(&b)
		return resp.StatusCode, b, err
	}
	// start waits for the gRPC port only: the HTTP server may listen, and the service be
	// marked ready, a moment later (longer on a loaded machine).
	code, b, err := readyz()
	for deadline := time.Now().Add(30 * time.Second); (err != nil || code != http.StatusOK) && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
		code, b, err = readyz()
	}
	if err != nil || code != http.StatusOK || b.Checks["store"] != "ok" {
		t.Fatalf("/readyz with Redis up = %d %+v (%v)", code, b, err)
	}
	srv.Stop()
	if code, b, err = readyz(); err != nil || code != http.StatusServiceUnavailable || !reflect.DeepEqual(b.NotReady, []string{"store"}) {
		t.Fatalf("/readyz with Redis down = %d %+v (%v)", code, b, err)
	}
}
