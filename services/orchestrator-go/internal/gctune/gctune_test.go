package gctune

import (
	"runtime"
	"runtime/debug"
	"testing"
)

func TestPercentLetsTheHeapGrowToTheFloorWithinBounds(t *testing.T) {
	const mb = 1 << 20
	for _, c := range []struct {
		live uint64
		want int
	}{
		{0, 500},          // nothing live yet: the most room
		{10 * mb, 500},    // 1,180% would reach the floor: capped
		{32 * mb, 300},    // 32 MB + 300% = 128 MB
		{64 * mb, 100},    // 64 MB + 100% = 128 MB
		{100 * mb, 100},   // past half the floor: never below the minimum
		{500 * mb, 100},   // past the floor: as with the default GOGC
		{128 * mb, 100},   // at the floor
		{40 * mb, 220},    // 40 MB + 220% = 128 MB
		{127 * mb, 100},   // just below
		{1 * mb, 500},     // tiny
		{25600 * mb, 100}, // huge
	} {
		if got := Percent(c.live, 128*mb, 100, 500); got != c.want {
			t.Errorf("Percent(live %d MB) = %d, want %d", c.live/mb, got, c.want)
		}
	}
}

// gogc reads GOGC without changing it.
func gogc() int {
	p := debug.SetGCPercent(100)
	debug.SetGCPercent(p)
	return p
}

func TestTunerLowersGOGCAsTheLiveHeapGrows(t *testing.T) {
	old := debug.SetGCPercent(100)
	defer debug.SetGCPercent(old)
	const mb = 1 << 20
	runtime.GC() // the live-heap figure is the last collection's
	tu := Start(64*mb, 100, 500)
	defer tu.Stop()
	if got := gogc(); got != 500 {
		t.Fatalf("GOGC with a small heap = %d, want 500", got)
	}
	live := make([]byte, 48*mb)
	for i := 0; i < 100 && gogc() != 100; i++ {
		runtime.GC() // a collection finds the sentinel; its finalizer adjusts GOGC
		runtime.Gosched()
	}
	runtime.KeepAlive(live)
	if got := gogc(); got != 100 {
		t.Fatalf("GOGC with 48 MB live and a 64 MB floor = %d, want the minimum 100", got)
	}
}
