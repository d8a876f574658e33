package usage

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"reflect"
	"testing"
	"time"

	"github.com/taskloom/taskloom/services/orchestrator-go/internal/store"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/task"
)

var noon = time.Date(2026, 11, 30, 12, 30, 0, 0, time.UTC)

func TestRollupsCountUnpricedTokensApartFromTheCost(t *testing.T) {
	got := Rollups(noon, "acme", "writer", []task.UsageLine{
		{Endpoint: "claude", Model: "haiku", Calls: 2, PromptTokens: 10, CompletionTokens: 5, CostNanoUSD: 99, Priced: true, SavedPromptTokens: 4, SavedCompletionTokens: 1, SavedCostNanoUSD: 7},
		{Endpoint: "local", Model: "llama", Calls: 1, PromptTokens: 3, CompletionTokens: 2},
	})
	hour := store.UsageHour(noon)
	want := []store.UsageRollup{
		{Key: store.UsageKey{Hour: hour, Tenant: "acme", Agent: "writer", Endpoint: "claude", Model: "haiku"},
			Counts: store.UsageCounts{Calls: 2, PromptTokens: 10, CompletionTokens: 5, CostNanoUSD: 99, SavedTokens: 5, SavedCostNanoUSD: 7}},
		{Key: store.UsageKey{Hour: hour, Tenant: "acme", Agent: "writer", Endpoint: "local", Model: "llama"},
			Counts: store.UsageCounts{Calls: 1, PromptTokens: 3, CompletionTokens: 2, UnpricedTokens: 5}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("rollups = %+v\nwant %+v", got, want)
	}
}

type failingOnce struct {
	store.UsageRollups
	fail bool
}

func (f *failingOnce) AddUsage(ctx context.Context, r []store.UsageRollup) error {
	if f.fail {
		f.fail = false
		return errors.New("store down")
	}
	return f.UsageRollups.AddUsage(ctx, r)
}

func TestRecorderSumsAndKeepsWhatAFailedWriteDidNotStore(t *testing.T) {
	ctx := context.Background()
	mem := store.NewMemory()
	target := &failingOnce{UsageRollups: mem, fail: true}
	rec := NewRecorder(target, time.Hour, slog.New(slog.NewTextHandler(io.Discard, nil)))
	line := []task.UsageLine{{Endpoint: "e", Model: "m", Calls: 1, PromptTokens: 10, Priced: true, CostNanoUSD: 5}}
	rec.Record(Rollups(noon, "a", "x", line))
	if err := rec.Flush(ctx); err == nil {
		t.Fatal("the first flush should fail")
	}
	rec.Record(Rollups(noon, "a", "x", line))
	if err := rec.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	got, err := mem.UsageBetween(ctx, 0, noon.Unix()+3600, "")
	if err != nil || len(got) != 1 {
		t.Fatalf("stored %+v, %v", got, err)
	}
	if c := got[0].Counts; c.Calls != 2 || c.PromptTokens != 20 || c.CostNanoUSD != 10 {
		t.Fatalf("counts %+v: both results should be stored once each", c)
	}
}

func TestReportGroupsSortsByCostAndKeepsToTheRange(t *testing.T) {
	ctx := context.Background()
	mem := store.NewMemory()
	rec := NewRecorder(mem, time.Hour, slog.New(slog.NewTextHandler(io.Discard, nil)))
	rec.Record(Rollups(noon, "acme", "writer", []task.UsageLine{{Endpoint: "claude", Model: "haiku", Calls: 1, CostNanoUSD: 100, Priced: true}}))
	rec.Record(Rollups(noon, "acme", "critic", []task.UsageLine{{Endpoint: "claude", Model: "haiku", Calls: 1, CostNanoUSD: 300, Priced: true}}))
	rec.Record(Rollups(noon.Add(-48*time.Hour), "acme", "old", []task.UsageLine{{Endpoint: "x", Model: "y", Calls: 1, CostNanoUSD: 1, Priced: true}}))
	rec.Record(Rollups(noon, "globex", "writer", []task.UsageLine{{Endpoint: "local", Model: "llama", Calls: 5}}))
	if err := rec.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	day := NewRange(noon.Add(-time.Hour), noon, noon)
	if day.Until != noon.Truncate(time.Hour).Add(time.Hour) {
		t.Fatalf("until %v: a partial hour counts whole", day.Until)
	}
	byAgent, err := Report(ctx, mem, ByAgent, "acme", day)
	if err != nil {
		t.Fatal(err)
	}
	if len(byAgent) != 2 || byAgent[0].Agent != "critic" || byAgent[1].Agent != "writer" {
		t.Fatalf("by agent = %+v", byAgent)
	}
	byModel, err := Report(ctx, mem, ByModel, "", NewRange(time.Time{}, time.Time{}, noon.Add(time.Hour)))
	if err != nil {
		t.Fatal(err)
	}
	if len(byModel) != 3 || byModel[0].Model != "haiku" || byModel[0].Counts.Calls != 2 {
		t.Fatalf("by model = %+v", byModel)
	}
	byTenant, err := Report(ctx, mem, ByTenant, "", day)
	if err != nil {
		t.Fatal(err)
	}
	if len(byTenant) != 2 || byTenant[0].Tenant != "acme" || byTenant[0].Counts.CostNanoUSD != 400 || byTenant[1].Tenant != "globex" {
		t.Fatalf("by tenant = %+v", byTenant)
	}
}
