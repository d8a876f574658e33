package store

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"
)

func TestStoreListsWorkflowsNewestFirstWithPagesAndFilters(t *testing.T) {
	forEachStore(t, func(t *testing.T, s Store, reopen func() Store) {
		ctx := context.Background()
		base := time.Unix(1_800_000_000, 0)
		var acmeRunning []string
		for i := range 9 {
			w := &Workflow{ID: fmt.Sprintf("w%d", i), Tenant: "acme", CreatedAt: base.Add(time.Duration(i) * time.Second),
				Status: 1, Name: "report", State: []byte("{}")}
			switch i % 3 {
			case 1:
				w.Tenant = "globex"
			case 2:
				w.Status, w.Done, w.FinishedAt, w.Name = 2, true, w.CreatedAt, "digest"
			}
			if w.Tenant == "acme" && w.Status == 1 {
				acmeRunning = append([]string{w.ID}, acmeRunning...)
			}
			if err := s.PutWorkflow(ctx, w); err != nil {
				t.Fatal(err)
			}
		}
		if reopen != nil {
			s = reopen()
		}
		ids := func(f WorkflowFilter, size int) []string {
			var out []string
			cursor := ""
			for pages := 0; ; pages++ {
				page, next, err := s.ListWorkflows(ctx, f, cursor, size)
				if err != nil || pages > 10 {
					t.Fatalf("ListWorkflows(%+v): %v", f, err)
				}
				for _, w := range page {
					out = append(out, w.ID)
				}
				if next == "" {
					return out
				}
				cursor = next
			}
		}
		if got := ids(WorkflowFilter{Tenant: "acme", Status: 1}, 2); !reflect.DeepEqual(got, acmeRunning) {
			t.Fatalf("acme's running = %v, want %v", got, acmeRunning)
		}
		if got := ids(WorkflowFilter{}, 4); !reflect.DeepEqual(got, []string{"w8", "w7", "w6", "w5", "w4", "w3", "w2", "w1", "w0"}) {
			t.Fatalf("every workflow = %v", got)
		}
		if got := ids(WorkflowFilter{Name: "digest"}, 100); !reflect.DeepEqual(got, []string{"w8", "w5", "w2"}) {
			t.Fatalf("named digest = %v", got)
		}
		// A status change moves a workflow between the filters.
		w3, _ := s.GetWorkflow(ctx, "w3")
		w3.Status, w3.Done, w3.FinishedAt = 4, true, base.Add(time.Hour)
		if err := s.PutWorkflow(ctx, w3); err != nil {
			t.Fatal(err)
		}
		if got := ids(WorkflowFilter{Status: 4}, 10); !reflect.DeepEqual(got, []string{"w3"}) {
			t.Fatalf("cancelled = %v", got)
		}
		if _, _, err := s.ListWorkflows(ctx, WorkflowFilter{}, "not-a-cursor", 10); !errors.Is(err, ErrBadCursor) {
			t.Fatalf("a foreign cursor: %v", err)
		}
		// Pruned workflows leave the listing.
		if n, err := s.PruneFinishedWorkflows(ctx, base.Add(2*time.Hour), 100); err != nil || n != 4 {
			t.Fatalf("pruned %d, %v", n, err)
		}
		if got := ids(WorkflowFilter{}, 100); len(got) != 5 {
			t.Fatalf("after pruning = %v", got)
		}
	})
}

func TestCodecReadsVersion2Workflows(t *testing.T) {
	// A version-2 record (no created time, status or name) is listed once indexed.
	w := &Workflow{ID: "old", Tenant: "acme", Done: true, State: []byte("{}")}
	rec := encodeWorkflow(w)
	rec[0] = 2
	rec = rec[:len(rec)-3] // drop the version-3 fields: created 0, status 0, empty name
	got, err := decodeWorkflow(rec)
	if err != nil || got.ID != "old" || !got.CreatedAt.IsZero() || got.Status != 0 {
		t.Fatalf("decode version 2 = %+v, %v", got, err)
	}
}
