package usage

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/taskloom/taskloom/services/orchestrator-go/internal/store"
)

// Recorder sums rollup increments in memory and writes them to the store once per
// interval, in one write, so recording never waits on the store and costs one
// transaction per interval however many results arrive. A failed write is kept and
// retried with the next one. What is pending when the process dies is lost: at most
// one interval of usage, never a task (the task record has its own usage).
type Recorder struct {
	rollups  store.UsageRollups
	interval time.Duration
	log      *slog.Logger

	mu      sync.Mutex
	pending map[store.UsageKey]store.UsageCounts
}

// NewRecorder returns a recorder writing to rollups every interval (Run does it).
func NewRecorder(rollups store.UsageRollups, interval time.Duration, log *slog.Logger) *Recorder {
	return &Recorder{rollups: rollups, interval: interval, log: log, pending: map[store.UsageKey]store.UsageCounts{}}
}

// Record adds increments; it never blocks on the store.
func (r *Recorder) Record(increments []store.UsageRollup) {
	if len(increments) == 0 {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, inc := range increments {
		c := r.pending[inc.Key]
		c.Add(inc.Counts)
		r.pending[inc.Key] = c
	}
}

// Flush writes what is pending; on failure it stays pending.
func (r *Recorder) Flush(ctx context.Context) error {
	r.mu.Lock()
	batch := make([]store.UsageRollup, 0, len(r.pending))
	for k, c := range r.pending {
		batch = append(batch, store.UsageRollup{Key: k, Counts: c})
	}
	r.pending = map[store.UsageKey]store.UsageCounts{}
	r.mu.Unlock()
	if len(batch) == 0 {
		return nil
	}
	if err := r.rollups.AddUsage(ctx, batch); err != nil {
		r.Record(batch)
		return err
	}
	return nil
}

// Run flushes every interval until ctx ends, then once more (bounded by 5 s).
func (r *Recorder) Run(ctx context.Context) {
	ticker := time.NewTicker(r.interval)
	defer ticker.Stop()
	for {
		select {
		case <-ticker.C:
			if err := r.Flush(ctx); err != nil {
				r.log.Warn("usage rollups not written, kept for the next try", "error", err)
			}
		case <-ctx.Done():
			final, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			if err := r.Flush(final); err != nil {
				r.log.Error("usage rollups lost at shutdown", "error", err)
			}
			cancel()
			return
		}
	}
}

// Report is Report over the recorder's rollups, with what is pending written first
// (when the store takes it), so a report includes the results just received.
func (r *Recorder) Report(ctx context.Context, by GroupBy, tenant string, rng Range) ([]Row, error) {
	if err := r.Flush(ctx); err != nil {
		r.log.Warn("usage rollups not written before a report", "error", err)
	}
	return Report(ctx, r.rollups, by, tenant, rng)
}
