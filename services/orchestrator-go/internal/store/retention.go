package store

import (
	"context"
	"log/slog"
	"time"
)

// Pruner deletes finished tasks and done workflows older than the retention, in
// small batches (one transaction each), so it never holds the store for long and
// never touches the scheduler: live tasks are never pruned, nor are the finished
// step tasks of a workflow still running (the store keeps them until it is done).
type Pruner struct {
	Store     Store
	Retention time.Duration
	Interval  time.Duration // between passes; default Retention/100, at least 10s, at most 10m
	BatchSize int           // tasks per transaction; default 1000
	Now       func() time.Time
	Log       *slog.Logger
	OnPruned  func(n int) // finished tasks deleted (metrics)
}

// PruneOnce deletes every finished task older than the retention now, batch by
// batch, and returns how many it deleted.
func (p *Pruner) PruneOnce(ctx context.Context) (int, error) {
	return p.pruneBatches(ctx, p.Store.PruneFinished, p.OnPruned)
}

// PruneWorkflowsOnce deletes every done workflow older than the retention now and
// returns how many it deleted. Their step tasks go with the task pruning.
func (p *Pruner) PruneWorkflowsOnce(ctx context.Context) (int, error) {
	return p.pruneBatches(ctx, p.Store.PruneFinishedWorkflows, nil)
}

func (p *Pruner) pruneBatches(ctx context.Context, prune func(context.Context, time.Time, int) (int, error), onPruned func(int)) (int, error) {
	batch := p.BatchSize
	if batch <= 0 {
		batch = 1000
	}
	now := time.Now
	if p.Now != nil {
		now = p.Now
	}
	before := now().Add(-p.Retention)
	total := 0
	for ctx.Err() == nil {
		n, err := prune(ctx, before, batch)
		total += n
		if n > 0 && onPruned != nil {
			onPruned(n)
		}
		if err != nil || n < batch {
			return total, err
		}
	}
	return total, ctx.Err()
}

// Run prunes every Interval until ctx ends.
func (p *Pruner) Run(ctx context.Context) {
	interval := p.Interval
	if interval <= 0 {
		interval = min(max(p.Retention/100, 10*time.Second), 10*time.Minute)
	}
	log := p.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		n, err := p.PruneOnce(ctx)
		if err != nil && ctx.Err() == nil {
			log.Error("prune finished tasks", "err", err)
		} else if n > 0 {
			log.Info("pruned finished tasks", "count", n, "retention", p.Retention.String())
		}
		n, err = p.PruneWorkflowsOnce(ctx)
		if err != nil && ctx.Err() == nil {
			log.Error("prune finished workflows", "err", err)
		} else if n > 0 {
			log.Info("pruned finished workflows", "count", n, "retention", p.Retention.String())
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
