// Package gctune keeps the Go garbage collector from running needlessly often while
// the live heap is small. With the default GOGC=100 a heap of 20 MB is collected
// every 20 MB allocated; at tens of thousands of tasks a second that is dozens of
// collections a second, a fifth of the orchestrator's CPU. The tuner raises GOGC
// after each collection so the heap may grow to a floor before the next one, and
// lowers it back (never below the minimum) as the live heap grows towards the
// floor, so memory stays bounded as with GOGC=minimum once the heap is large.
package gctune

import (
	"math"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync/atomic"
)

const liveHeapMetric = "/gc/heap/live:bytes"

// Tuner adjusts GOGC after every garbage collection.
type Tuner struct {
	floor              uint64
	minPercent, maxPct int
	stopped            atomic.Bool
	last               atomic.Int64     // GOGC last set (-1: none yet)
	sample             []metrics.Sample // read by one adjust at a time: Start's, then each finalizer's
}

// Start sets GOGC after every collection to the percentage that lets the heap reach
// floor bytes before the next one, clamped to [minPercent, maxPercent]. Stop ends it
// (GOGC keeps its last value).
func Start(floor uint64, minPercent, maxPercent int) *Tuner {
	t := &Tuner{floor: floor, minPercent: minPercent, maxPct: maxPercent, sample: []metrics.Sample{{Name: liveHeapMetric}}}
	t.last.Store(-1)
	t.adjust()
	t.arm()
	return t
}

// Stop ends the tuning.
func (t *Tuner) Stop() { t.stopped.Store(true) }

// arm schedules adjust for the end of the next collection: an unreachable object's
// finalizer runs once a collection has found it, and re-arms a fresh one.
func (t *Tuner) arm() {
	s := &sentinel{}
	runtime.SetFinalizer(s, func(*sentinel) {
		if t.stopped.Load() {
			return
		}
		t.adjust()
		t.arm()
	})
}

type sentinel struct{ _ [16]byte } // not zero-sized: those may share an address and never be finalized

// Percent returns the GOGC value for a live heap: room to grow to the floor.
func Percent(live, floor uint64, minPercent, maxPercent int) int {
	if live == 0 {
		return maxPercent
	}
	p := (float64(floor) - float64(live)) / float64(live) * 100
	return int(math.Max(float64(minPercent), math.Min(float64(maxPercent), p)))
}

func (t *Tuner) adjust() {
	metrics.Read(t.sample)
	if t.sample[0].Value.Kind() != metrics.KindUint64 {
		return
	}
	p := Percent(t.sample[0].Value.Uint64(), t.floor, t.minPercent, t.maxPct)
	if int64(p) != t.last.Swap(int64(p)) {
		debug.SetGCPercent(p)
	}
}
