package events

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The README states what the hub keeps for replays (SSE Last-Event-ID); it must be
// what DefaultOptions keeps.
func TestTheReadmeStatesTheReplayBound(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "..", "..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	readme := strings.Join(strings.Fields(string(raw)), " ")
	o := DefaultOptions()
	want := fmt.Sprintf("the current attempt's last %s chunks and %d MiB of a running task, and the last attempt's chunks of the %s tasks",
		thousands(o.ReplayChunks), o.ReplayBytes>>20, thousands(o.FinishedTasks))
	if !strings.Contains(readme, want) {
		t.Fatalf("the README's Streaming section does not say %q", want)
	}
}

func thousands(n int) string {
	if n < 1000 {
		return fmt.Sprint(n)
	}
	return fmt.Sprintf("%d,%03d", n/1000, n%1000)
}
