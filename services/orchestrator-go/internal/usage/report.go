package usage

import (
	"context"
	"sort"
	"time"

	"github.com/taskloom/taskloom/services/orchestrator-go/internal/store"
)

// GroupBy is what a report sums by.
type GroupBy int

// The groupings of a report.
const (
	ByTenant GroupBy = iota
	ByAgent
	ByModel
)

// Row is one group of a report: the grouping's fields are set, the others empty.
type Row struct {
	Tenant, Agent, Endpoint, Model string
	Counts                         store.UsageCounts
}

// Range is a report's hours: [Since, Until), both on the hour.
type Range struct{ Since, Until time.Time }

// NewRange rounds since down and until up to the hour (a partial hour counts
// whole); a zero since means the start of the rollups, a zero until means now.
func NewRange(since, until, now time.Time) Range {
	if until.IsZero() {
		until = now
	}
	end := store.UsageHour(until)
	if until.Unix() > end {
		end += 3600
	}
	start := int64(0)
	if !since.IsZero() {
		start = store.UsageHour(since)
	}
	return Range{time.Unix(start, 0).UTC(), time.Unix(end, 0).UTC()}
}

// Report sums the rollups of r, of one tenant (or all, with ""), by group; rows are
// sorted by cost, highest first, then by their key.
func Report(ctx context.Context, rollups store.UsageRollups, by GroupBy, tenant string, r Range) ([]Row, error) {
	stored, err := rollups.UsageBetween(ctx, r.Since.Unix(), r.Until.Unix(), tenant)
	if err != nil {
		return nil, err
	}
	groups := map[Row]*store.UsageCounts{}
	for _, s := range stored {
		var key Row
		switch by {
		case ByAgent:
			key.Agent = s.Key.Agent
		case ByModel:
			key.Endpoint, key.Model = s.Key.Endpoint, s.Key.Model
		default:
			key.Tenant = s.Key.Tenant
		}
		if groups[key] == nil {
			groups[key] = &store.UsageCounts{}
		}
		groups[key].Add(s.Counts)
	}
	rows := make([]Row, 0, len(groups))
	for key, counts := range groups {
		key.Counts = *counts
		rows = append(rows, key)
	}
	sort.Slice(rows, func(i, j int) bool {
		a, b := rows[i], rows[j]
		if a.Counts.CostNanoUSD != b.Counts.CostNanoUSD {
			return a.Counts.CostNanoUSD > b.Counts.CostNanoUSD
		}
		return a.Tenant+"\x00"+a.Agent+"\x00"+a.Endpoint+"\x00"+a.Model < b.Tenant+"\x00"+b.Agent+"\x00"+b.Endpoint+"\x00"+b.Model
	})
	return rows, nil
}
