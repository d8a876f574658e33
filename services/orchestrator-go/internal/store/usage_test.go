package store

import (
	"context"
	"reflect"
	"testing"
	"time"
)

func rollups(t *testing.T, s Store) UsageRollups {
	t.Helper()
	u, ok := s.(UsageRollups)
	if !ok {
		t.Fatalf("%T does not keep usage rollups", s)
	}
	return u
}

func TestUsageRollupsAddUpAndSurviveAReopen(t *testing.T) {
	forEachStore(t, func(t *testing.T, s Store, reopen func() Store) {
		ctx := context.Background()
		hour := UsageHour(time.Date(2026, 11, 30, 14, 25, 0, 0, time.UTC))
		acme := UsageKey{hour, "acme", "writer", "claude", "claude-haiku"}
		globex := UsageKey{hour + 3600, "globex", "critic", "local", "llama"}
		one := UsageCounts{Calls: 1, PromptTokens: 10, CompletionTokens: 5, CostNanoUSD: 700, SavedTokens: 3, SavedCostNanoUSD: 90}
		if err := rollups(t, s).AddUsage(ctx, []UsageRollup{{acme, one}, {globex, UsageCounts{Calls: 2, UnpricedTokens: 40}}}); err != nil {
			t.Fatal(err)
		}
		if err := rollups(t, s).AddUsage(ctx, []UsageRollup{{acme, one}}); err != nil {
			t.Fatal(err)
		}
		if reopen != nil {
			s = reopen()
		}
		got, err := rollups(t, s).UsageBetween(ctx, hour, hour+2*3600, "")
		if err != nil {
			t.Fatal(err)
		}
		twice := UsageCounts{Calls: 2, PromptTokens: 20, CompletionTokens: 10, CostNanoUSD: 1400, SavedTokens: 6, SavedCostNanoUSD: 180}
		want := []UsageRollup{{acme, twice}, {globex, UsageCounts{Calls: 2, UnpricedTokens: 40}}}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("rollups = %+v, want %+v", got, want)
		}
	})
}

func TestUsageBetweenKeepsToItsHoursAndTenant(t *testing.T) {
	forEachStore(t, func(t *testing.T, s Store, _ func() Store) {
		ctx := context.Background()
		h := UsageHour(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
		counts := UsageCounts{Calls: 1}
		var all []UsageRollup
		for i, tenant := range []string{"a", "b", "a"} {
			all = append(all, UsageRollup{UsageKey{h + int64(i)*3600, tenant, "x", "e", "m"}, counts})
		}
		if err := rollups(t, s).AddUsage(ctx, all); err != nil {
			t.Fatal(err)
		}
		got, err := rollups(t, s).UsageBetween(ctx, h+3600, h+3*3600, "a")
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 || got[0].Key.Hour != h+2*3600 || got[0].Key.Tenant != "a" {
			t.Fatalf("rollups = %+v, want only tenant a's third hour", got)
		}
		none, err := rollups(t, s).UsageBetween(ctx, h+10*3600, h+20*3600, "")
		if err != nil || len(none) != 0 {
			t.Fatalf("empty range = %+v, %v", none, err)
		}
	})
}

func TestUsageRollupsAreNotPrunedWithTasks(t *testing.T) {
	forEachStore(t, func(t *testing.T, s Store, _ func() Store) {
		ctx := context.Background()
		h := UsageHour(time.Now().Add(-30 * 24 * time.Hour))
		if err := rollups(t, s).AddUsage(ctx, []UsageRollup{{UsageKey{h, "a", "x", "e", "m"}, UsageCounts{Calls: 1}}}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.PruneFinished(ctx, time.Now(), 1000); err != nil {
			t.Fatal(err)
		}
		got, err := rollups(t, s).UsageBetween(ctx, h, h+3600, "")
		if err != nil || len(got) != 1 {
			t.Fatalf("after pruning: %+v, %v", got, err)
		}
	})
}
