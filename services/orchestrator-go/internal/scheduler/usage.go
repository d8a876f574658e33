package scheduler

import (
	"slices"
	"time"

	"github.com/taskloom/taskloom/services/orchestrator-go/internal/task"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/usage"
)

// recordUsage hands an attempt's usage to the rollups' recorder, which never blocks
// (it is called with the lock held). Every attempt's usage counts: it was spent.
func (s *Scheduler) recordUsage(t *task.Task, lines []task.UsageLine, now time.Time) {
	if s.usage != nil && len(lines) > 0 {
		s.usage.Record(usage.Rollups(now, t.Tenant, t.Agent, lines))
	}
}

// Usage is the recorder of the usage rollups, which also answers reports; nil when
// the scheduler keeps none.
func (s *Scheduler) Usage() *usage.Recorder { return s.usage }

// mergeUsageLines returns a new slice (snapshots share the old one) with the lines of
// add summed into those of total, by endpoint and model.
func mergeUsageLines(total, add []task.UsageLine) []task.UsageLine {
	out := slices.Clone(total)
	for _, a := range add {
		i := slices.IndexFunc(out, func(l task.UsageLine) bool { return l.Endpoint == a.Endpoint && l.Model == a.Model })
		if i < 0 {
			out = append(out, a)
			continue
		}
		l := &out[i]
		l.Calls += a.Calls
		l.PromptTokens += a.PromptTokens
		l.CompletionTokens += a.CompletionTokens
		l.CostNanoUSD += a.CostNanoUSD
		l.Priced = l.Priced && a.Priced
		l.SavedPromptTokens += a.SavedPromptTokens
		l.SavedCompletionTokens += a.SavedCompletionTokens
		l.SavedCostNanoUSD += a.SavedCostNanoUSD
	}
	return out
}
