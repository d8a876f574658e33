// Package usage turns the LLM usage that task results report into hourly rollups in
// the store (written in batches by a Recorder, off the scheduler's path) and answers
// usage reports from them, grouped by tenant, agent or model.
package usage

import (
	"time"

	"github.com/taskloom/taskloom/services/orchestrator-go/internal/store"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/task"
)

// Rollups are the lines of one attempt, finished at `at`, as rollup increments.
func Rollups(at time.Time, tenant, agent string, lines []task.UsageLine) []store.UsageRollup {
	out := make([]store.UsageRollup, 0, len(lines))
	hour := store.UsageHour(at)
	for _, l := range lines {
		counts := store.UsageCounts{
			Calls:            l.Calls,
			PromptTokens:     l.PromptTokens,
			CompletionTokens: l.CompletionTokens,
			CostNanoUSD:      l.CostNanoUSD,
			SavedTokens:      l.SavedPromptTokens + l.SavedCompletionTokens,
			SavedCostNanoUSD: l.SavedCostNanoUSD,
		}
		if !l.Priced {
			counts.UnpricedTokens = l.PromptTokens + l.CompletionTokens
			counts.CostNanoUSD, counts.SavedCostNanoUSD = 0, 0
		}
		key := store.UsageKey{Hour: hour, Tenant: tenant, Agent: agent, Endpoint: l.Endpoint, Model: l.Model}
		out = append(out, store.UsageRollup{Key: key, Counts: counts})
	}
	return out
}
