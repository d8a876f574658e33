package crash

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// --check-config validates the layered configuration and exits: 0 and the effective
// settings (the Redis password masked) when valid, non-zero naming the setting when not.
func TestCheckConfigValidatesAndExits(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "orchestrator.yaml")
	if err := os.WriteFile(file, []byte("max_queue: 5\nstore: redis\nredis_url: redis://:hunter2@127.0.0.1:6390/0\nagent_limit:\n  writer: 2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(binary, "--config", file, "--check-config")
	cmd.Env = append(os.Environ(), "TASKLOOM_MAX_QUEUE=7")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("valid configuration: %v\n%s", err, out)
	}
	text := string(out)
	if !strings.Contains(text, `"max_queue":7`) || !strings.Contains(text, `"writer":2`) || strings.Contains(text, "hunter2") {
		t.Fatalf("printed configuration: %s", text)
	}

	if err := os.WriteFile(file, []byte("max_queue: 5\nlease_tl: 3s\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err = exec.Command(binary, "--config", file, "--check-config").CombinedOutput()
	if err == nil || !strings.Contains(string(out), `"lease_tl" is not a setting`) {
		t.Fatalf("a misspelt key: %v\n%s", err, out)
	}
	out, err = exec.Command(binary, "--check-config", "--heartbeat-interval", "1m").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "--heartbeat-interval") {
		t.Fatalf("an invalid flag: %v\n%s", err, out)
	}
}
