package loadgen

import (
	"context"
	"fmt"
	"net/http"
	"sort"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// schedulingHistogram is the orchestrator's own queued -> assigned histogram: it
// starts when a task enters the queue (after its durable write), which the task's
// created_at cannot show.
const schedulingHistogram = "taskloom_orchestrator_scheduling_latency_seconds"

// histogram is a cumulative Prometheus histogram: counts[i] observations <= bounds[i].
type histogram struct {
	bounds []float64 // seconds, ascending, +Inf last
	counts []uint64
}

// scrapeHistogram reads one histogram from the orchestrator's /metrics.
func scrapeHistogram(ctx context.Context, httpAddr, name string) (histogram, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+httpAddr+"/metrics", nil)
	if err != nil {
		return histogram{}, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return histogram{}, err
	}
	defer func() { _ = resp.Body.Close() }()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		return histogram{}, fmt.Errorf("parse /metrics: %w", err)
	}
	fam, ok := families[name]
	if !ok || len(fam.GetMetric()) == 0 || fam.GetMetric()[0].GetHistogram() == nil {
		return histogram{}, fmt.Errorf("/metrics has no histogram %s", name)
	}
	var h histogram
	for _, b := range fam.GetMetric()[0].GetHistogram().GetBucket() {
		h.bounds = append(h.bounds, b.GetUpperBound())
		h.counts = append(h.counts, b.GetCumulativeCount())
	}
	return h, nil
}

// since returns the observations made after prev was scraped (same buckets).
func (h histogram) since(prev histogram) histogram {
	out := histogram{bounds: h.bounds, counts: make([]uint64, len(h.counts))}
	for i, c := range h.counts {
		if i < len(prev.counts) {
			c -= prev.counts[i]
		}
		out.counts[i] = c
	}
	return out
}

func (h histogram) total() uint64 {
	if len(h.counts) == 0 {
		return 0
	}
	return h.counts[len(h.counts)-1]
}

// quantileBound returns the upper bound, in seconds, of the bucket holding the
// q-quantile (0 < q <= 1): the q-quantile is at most this. It is +Inf when the
// quantile lies beyond the last finite bucket, and 0 for an empty histogram.
func (h histogram) quantileBound(q float64) float64 {
	n := h.total()
	if n == 0 {
		return 0
	}
	rank := uint64(q*float64(n) + 0.999999) // ceil without float noise
	i := sort.Search(len(h.counts), func(i int) bool { return h.counts[i] >= rank })
	return h.bounds[min(i, len(h.bounds)-1)]
}

// boundSummary is a histogram's quantiles as upper bounds, in milliseconds.
type boundSummary struct {
	Count uint64  `json:"count"`
	P50   float64 `json:"p50_ms_at_most"`
	P99   float64 `json:"p99_ms_at_most"`
}

func (h histogram) summary() boundSummary {
	return boundSummary{Count: h.total(), P50: h.quantileBound(0.50) * 1000, P99: h.quantileBound(0.99) * 1000}
}
