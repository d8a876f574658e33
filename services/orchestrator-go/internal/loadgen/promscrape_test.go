package loadgen

import (
	"math"
	"testing"
)

func TestHistogramQuantileBound(t *testing.T) {
	h := histogram{
		bounds: []float64{0.0005, 0.001, 0.002, math.Inf(1)},
		counts: []uint64{90, 98, 100, 100}, // cumulative
	}
	cases := []struct {
		q    float64
		want float64
	}{
		{0.5, 0.0005}, {0.9, 0.0005}, {0.91, 0.001}, {0.98, 0.001}, {0.99, 0.002}, {1, 0.002},
	}
	for _, c := range cases {
		if got := h.quantileBound(c.q); got != c.want {
			t.Errorf("quantileBound(%v) = %v, want %v", c.q, got, c.want)
		}
	}
	beyond := histogram{bounds: []float64{0.001, math.Inf(1)}, counts: []uint64{1, 10}}
	if got := beyond.quantileBound(0.99); !math.IsInf(got, 1) {
		t.Errorf("quantile past the last finite bucket = %v, want +Inf", got)
	}
	if got := (histogram{}).quantileBound(0.99); got != 0 {
		t.Errorf("empty histogram bound = %v, want 0", got)
	}
}

func TestHistogramSince(t *testing.T) {
	before := histogram{bounds: []float64{0.001, math.Inf(1)}, counts: []uint64{5, 6}}
	after := histogram{bounds: []float64{0.001, math.Inf(1)}, counts: []uint64{7, 16}}
	d := after.since(before)
	if d.counts[0] != 2 || d.counts[1] != 10 || d.total() != 10 {
		t.Errorf("since = %v, want [2 10]", d.counts)
	}
	// Only the last 10 observations count: 2 of them <= 1ms, so the median is beyond it.
	if got := d.quantileBound(0.5); !math.IsInf(got, 1) {
		t.Errorf("median bound = %v, want +Inf", got)
	}
}
