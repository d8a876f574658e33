package loadgen

import (
	"testing"
	"time"
)

func TestPercentileNearestRank(t *testing.T) {
	sorted := make([]time.Duration, 100)
	for i := range sorted {
		sorted[i] = time.Duration(i+1) * time.Millisecond // 1ms..100ms
	}
	cases := []struct {
		p    float64
		want time.Duration
	}{
		{50, 50 * time.Millisecond},
		{99, 99 * time.Millisecond},
		{100, 100 * time.Millisecond},
		{0.1, 1 * time.Millisecond},
	}
	for _, c := range cases {
		if got := Percentile(sorted, c.p); got != c.want {
			t.Errorf("Percentile(1..100ms, %v) = %v, want %v", c.p, got, c.want)
		}
	}
}

func TestPercentileSmallSamples(t *testing.T) {
	if got := Percentile(nil, 99); got != 0 {
		t.Errorf("Percentile(empty) = %v, want 0", got)
	}
	one := []time.Duration{7 * time.Millisecond}
	if got := Percentile(one, 50); got != 7*time.Millisecond {
		t.Errorf("Percentile(single, 50) = %v, want 7ms", got)
	}
	three := []time.Duration{1, 2, 3}
	if got := Percentile(three, 50); got != 2 {
		t.Errorf("Percentile([1 2 3], 50) = %v, want 2", got)
	}
	if got := Percentile(three, 99); got != 3 {
		t.Errorf("Percentile([1 2 3], 99) = %v, want 3", got)
	}
}

func TestSummarizeSortsAndConvertsToMilliseconds(t *testing.T) {
	ds := []time.Duration{4 * time.Millisecond, 1500 * time.Microsecond, 2 * time.Millisecond, 500 * time.Microsecond}
	s := Summarize(ds)
	want := Summary{Count: 4, P50: 1.5, P90: 4, P99: 4, Max: 4, Mean: 2}
	if s != want {
		t.Errorf("Summarize = %+v, want %+v", s, want)
	}
	if ds[0] != 500*time.Microsecond {
		t.Errorf("Summarize left the sample unsorted: %v", ds)
	}
	if (Summarize(nil) != Summary{}) {
		t.Errorf("Summarize(nil) is not the zero Summary")
	}
}
