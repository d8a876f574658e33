package store

import (
	"context"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/taskloom/taskloom/services/orchestrator-go/internal/task"
)

// listAll follows next cursors from the first page and returns every task listed.
func listAll(t *testing.T, s Store, f Filter, limit int) string {
	t.Helper()
	out, cursor := "", ""
	for range 1000 {
		page, next, err := s.List(context.Background(), f, cursor, limit)
		if err != nil {
			t.Fatalf("List(%+v, %q): %v", f, cursor, err)
		}
		if len(page) > limit {
			t.Fatalf("page of %d > limit %d", len(page), limit)
		}
		out += ids(page)
		if next == "" {
			return out
		}
		cursor = next
	}
	t.Fatal("List never ended")
	return ""
}

// putMixed stores 30 tasks, newest last: tenants a and b alternate, every third is
// running, agent "x" on multiples of 5.
func putMixed(t *testing.T, s Store) {
	t.Helper()
	for i := range 30 {
		tk := &task.Task{ID: fmt.Sprintf("t%02d", i), Agent: "echo", Tenant: "a", Status: task.StatusQueued, CreatedAt: t0.Add(time.Duration(i) * time.Second)}
		if i%2 == 1 {
			tk.Tenant = "b"
		}
		if i%3 == 0 {
			tk.Status = task.StatusRunning
		}
		if i%5 == 0 {
			tk.Agent = "x"
		}
		if err := s.Put(context.Background(), tk); err != nil {
			t.Fatal(err)
		}
	}
}

// want lists the ids of putMixed's tasks matching keep, newest first.
func want(keep func(i int) bool) string {
	out := ""
	for i := 29; i >= 0; i-- {
		if keep(i) {
			out += fmt.Sprintf("t%02d,", i)
		}
	}
	return out
}

func TestStoreListFiltersByTenantStatusAndAgentAcrossPages(t *testing.T) {
	forEachStore(t, func(t *testing.T, s Store, _ func() Store) {
		putMixed(t, s)
		// A status change after the first write must move the task between filters.
		moved := &task.Task{ID: "t04", Agent: "echo", Tenant: "a", Status: task.StatusSucceeded, CreatedAt: t0.Add(4 * time.Second), FinishedAt: t0.Add(time.Minute)}
		if err := s.Put(context.Background(), moved); err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct {
			f    Filter
			keep func(int) bool
		}{
			{Filter{Tenant: "a"}, func(i int) bool { return i%2 == 0 }},
			{Filter{Tenant: "b", Status: task.StatusRunning}, func(i int) bool { return i%2 == 1 && i%3 == 0 }},
			{Filter{Tenant: "a", Status: task.StatusQueued}, func(i int) bool { return i%2 == 0 && i%3 != 0 && i != 4 }},
			{Filter{Tenant: "a", Status: task.StatusSucceeded}, func(i int) bool { return i == 4 }},
			{Filter{Tenant: "a", Agent: "x"}, func(i int) bool { return i%2 == 0 && i%5 == 0 }},
			{Filter{Status: task.StatusRunning}, func(i int) bool { return i%3 == 0 }},
			{Filter{Tenant: "nobody"}, func(int) bool { return false }},
		} {
			for _, limit := range []int{1, 4, 100} {
				if got, w := listAll(t, s, c.f, limit), want(c.keep); got != w {
					t.Errorf("List(%+v) by %d = %s\nwant %s", c.f, limit, got, w)
				}
			}
		}
	})
}

func TestStoreListCapsTheScanAndContinues(t *testing.T) {
	old := MaxListScan
	MaxListScan = 4
	t.Cleanup(func() { MaxListScan = old })
	forEachStore(t, func(t *testing.T, s Store, _ func() Store) {
		putMixed(t, s)
		// Only t00 matches: every call examines at most 4 entries, so the first
		// pages are empty yet carry a cursor, and following them reaches t00.
		f := Filter{Tenant: "a", Agent: "x", Status: task.StatusRunning}
		page, next, err := s.List(context.Background(), f, "", 10)
		if err != nil || len(page) != 0 || next == "" {
			t.Fatalf("first capped call = %s next=%q err=%v; want an empty page with a cursor", ids(page), next, err)
		}
		if got := listAll(t, s, f, 10); got != "t00," {
			t.Fatalf("capped listing = %s, want t00,", got)
		}
		if got := listAll(t, s, Filter{}, 3); got != want(func(int) bool { return true }) {
			t.Fatalf("capped unfiltered listing = %s", got)
		}
	})
}

func TestStoreListGoesOnWhenTheCursorsTaskWasPruned(t *testing.T) {
	forEachStore(t, func(t *testing.T, s Store, _ func() Store) {
		ctx := context.Background()
		for i := range 6 {
			tk := &task.Task{ID: fmt.Sprintf("t%d", i), Agent: "echo", Tenant: "a", Status: task.StatusSucceeded,
				CreatedAt: t0.Add(time.Duration(i) * time.Second), FinishedAt: t0.Add(time.Hour + time.Duration(i)*time.Second)}
			if i == 3 {
				tk.FinishedAt = t0 // the first to be pruned
			}
			if err := s.Put(ctx, tk); err != nil {
				t.Fatal(err)
			}
		}
		filters := []Filter{{}, {Tenant: "a"}}
		cursors := make([]string, len(filters))
		for i, f := range filters {
			page, next, err := s.List(ctx, f, "", 3)
			if err != nil || ids(page) != "t5,t4,t3," || next == "" {
				t.Fatalf("%+v: page 1 = %s next=%q, %v", f, ids(page), next, err)
			}
			cursors[i] = next
		}
		if n, err := s.PruneFinished(ctx, t0.Add(time.Minute), 10); err != nil || n != 1 {
			t.Fatalf("pruned %d, %v", n, err)
		}
		for i, f := range filters {
			page, next, err := s.List(ctx, f, cursors[i], 3)
			if err != nil || ids(page) != "t2,t1,t0," || next != "" {
				t.Fatalf("%+v: page after the cursor's task was pruned = %s next=%q, %v", f, ids(page), next, err)
			}
		}
	})
}

func TestStoreFindsManyIdempotencyKeysAtOnce(t *testing.T) {
	forEachStore(t, func(t *testing.T, s Store, _ func() Store) {
		ctx := context.Background()
		a, b := fullTask("a"), fullTask("b")
		b.Tenant = "globex"
		if err := s.Put(ctx, a, b); err != nil {
			t.Fatal(err)
		}
		got, err := s.FindByIdempotencyKeys(ctx, []IdempotencyKey{
			{"acme", "key-a"}, {"acme", "key-b"}, {"globex", "key-b"}, {"acme", "missing"},
		})
		if err != nil || len(got) != 2 || got[IdempotencyKey{"acme", "key-a"}].ID != "a" || got[IdempotencyKey{"globex", "key-b"}].ID != "b" {
			t.Fatalf("FindByIdempotencyKeys = %v, %v", got, err)
		}
		if none, err := s.FindByIdempotencyKeys(ctx, nil); err != nil || len(none) != 0 {
			t.Fatalf("no keys = %v, %v", none, err)
		}
	})
}

func TestBoltBackfillsTheTenantIndexOfAnOlderFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), BoltFileName)
	b, err := OpenBolt(path)
	if err != nil {
		t.Fatal(err)
	}
	putMixed(t, b)
	if err := b.db.Update(func(tx *bolt.Tx) error { return tx.DeleteBucket(bucketTenantIdx) }); err != nil {
		t.Fatal(err)
	}
	_ = b.Close()
	b, err = OpenBolt(path)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = b.Close() }()
	if got, w := listAll(t, b, Filter{Tenant: "b"}, 5), want(func(i int) bool { return i%2 == 1 }); got != w {
		t.Fatalf("tenant listing after backfill = %s, want %s", got, w)
	}
}

// Records as versions 1 and 2 of the codec wrote fullTask("a") (version 1 lacks
// NotBefore; both name the failure's reason, LEASE_LOST, as a string).
const (
	recordV1 = "010161046563686f0a7b2271223a226869227d0304226f6b22010a4c454153455f4c4f5354016d010461636d650e02016b01760b7472616365706172656e740178056b65792d61040680e0ba84bf0380a8d6b90780e88887438080b4bdb6f6da983180a88af7bdf6da983180d0e0b0c5f6da9831027766027331020406027731"
	recordV2 = "020161046563686f0a7b2271223a226869227d0304226f6b22010a4c454153455f4c4f5354016d010461636d650e02016b01760b7472616365706172656e740178056b65792d61040680e0ba84bf0380a8d6b90780e88887438080b4bdb6f6da983180a88af7bdf6da983180d0e0b0c5f6da983102776602733102040602773180f8b6eaccf6da9831"
)

func TestCodecReadsOlderVersions(t *testing.T) {
	for name, rec := range map[string]string{"v1": recordV1, "v2": recordV2} {
		raw, err := hex.DecodeString(rec)
		if err != nil {
			t.Fatal(err)
		}
		want := fullTask("a")
		want.Fingerprint = task.Fingerprint{} // version 3 added it
		if name == "v1" {
			want.NotBefore = time.Time{}
		}
		got, err := decodeTask(raw)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Fatalf("%s record = %+v, %v\nwant %+v", name, got, err, want)
		}
	}
}
