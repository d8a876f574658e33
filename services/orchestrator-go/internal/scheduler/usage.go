package scheduler

import (
	"time"

	"github.com/taskloom/taskloom/services/orchestrator-go/internal/task"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/usage"
)

// recordUsage hands an attempt's usage to the rollups' recorder, which never blocks
// (it is called with the lock held). Every attempt's usage counts: it was spent.
func (s *Scheduler) recordUsage(t *task.Task, lines []usage.Line, now time.Time) {
	if s.usage != nil && len(lines) > 0 {
		s.usage.Record(usage.Rollups(now, t.Tenant, t.Agent, lines))
	}
}

// Usage is the recorder of the usage rollups, which also answers reports; nil when
// the scheduler keeps none.
func (s *Scheduler) Usage() *usage.Recorder { return s.usage }
