package store

// Usage rollups: the LLM usage that task results report, summed per hour and per
// (tenant, agent, endpoint, model). They live apart from tasks and retention never
// prunes them, so usage reports outlive the tasks they came from.

import (
	"context"
	"encoding/binary"
	"errors"
	"sort"
	"strings"
	"sync"
	"time"
)

// UsageKey is one rollup: an hour (Unix seconds of its start) and who spent what where.
type UsageKey struct {
	Hour     int64
	Tenant   string
	Agent    string
	Endpoint string
	Model    string
}

// UsageCounts are a rollup's sums. Cost is in nano-USD; UnpricedTokens were spent on
// models without a configured price (and are not in the cost).
type UsageCounts struct {
	Calls            int64
	PromptTokens     int64
	CompletionTokens int64
	CostNanoUSD      int64
	UnpricedTokens   int64
	SavedTokens      int64
	SavedCostNanoUSD int64
}

// Add adds o to c.
func (c *UsageCounts) Add(o UsageCounts) {
	c.Calls += o.Calls
	c.PromptTokens += o.PromptTokens
	c.CompletionTokens += o.CompletionTokens
	c.CostNanoUSD += o.CostNanoUSD
	c.UnpricedTokens += o.UnpricedTokens
	c.SavedTokens += o.SavedTokens
	c.SavedCostNanoUSD += o.SavedCostNanoUSD
}

func (c UsageCounts) fields() [7]int64 {
	return [7]int64{c.Calls, c.PromptTokens, c.CompletionTokens, c.CostNanoUSD, c.UnpricedTokens, c.SavedTokens, c.SavedCostNanoUSD}
}

func countsFrom(f [7]int64) UsageCounts {
	return UsageCounts{f[0], f[1], f[2], f[3], f[4], f[5], f[6]}
}

// UsageRollup is one key's counts.
type UsageRollup struct {
	Key    UsageKey
	Counts UsageCounts
}

// UsageRollups is implemented by every store.
type UsageRollups interface {
	// AddUsage adds the rollups' counts to the stored ones, all in one durable write.
	AddUsage(ctx context.Context, rollups []UsageRollup) error
	// UsageBetween returns the stored rollups of the hours in [from, to) (Unix
	// seconds), of one tenant or, with tenant "", of all.
	UsageBetween(ctx context.Context, from, to int64, tenant string) ([]UsageRollup, error)
}

// UsageHour is the start of t's hour, in Unix seconds (the key of its rollups).
func UsageHour(t time.Time) int64 { return t.Unix() - t.Unix()%3600 }

var errBadUsageKey = errors.New("malformed usage rollup key")

// usageKeyBytes orders rollups by hour (8 bytes big-endian), then by the names,
// NUL-separated (names never hold NUL: they are validated agent, tenant and
// endpoint names and model ids).
func usageKeyBytes(k UsageKey) []byte {
	b := binary.BigEndian.AppendUint64(nil, uint64(k.Hour))
	return append(b, strings.Join([]string{k.Tenant, k.Agent, k.Endpoint, k.Model}, "\x00")...)
}

func parseUsageKey(b []byte) (UsageKey, error) {
	if len(b) < 8 {
		return UsageKey{}, errBadUsageKey
	}
	names := strings.Split(string(b[8:]), "\x00")
	if len(names) != 4 {
		return UsageKey{}, errBadUsageKey
	}
	return UsageKey{int64(binary.BigEndian.Uint64(b[:8])), names[0], names[1], names[2], names[3]}, nil
}

func encodeUsageCounts(c UsageCounts) []byte {
	var b []byte
	for _, v := range c.fields() {
		b = binary.AppendVarint(b, v)
	}
	return b
}

func decodeUsageCounts(b []byte) (UsageCounts, error) {
	var f [7]int64
	for i := range f {
		v, n := binary.Varint(b)
		if n <= 0 {
			return UsageCounts{}, errors.New("malformed usage rollup counts")
		}
		f[i], b = v, b[n:]
	}
	return countsFrom(f), nil
}

// usageRollupsInMemory backs the memory store's rollups.
type usageRollupsInMemory struct {
	mu     sync.Mutex
	counts map[UsageKey]UsageCounts
}

func (u *usageRollupsInMemory) add(rollups []UsageRollup) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.counts == nil {
		u.counts = map[UsageKey]UsageCounts{}
	}
	for _, r := range rollups {
		c := u.counts[r.Key]
		c.Add(r.Counts)
		u.counts[r.Key] = c
	}
}

func (u *usageRollupsInMemory) between(from, to int64, tenant string) []UsageRollup {
	u.mu.Lock()
	defer u.mu.Unlock()
	var out []UsageRollup
	for k, c := range u.counts {
		if k.Hour >= from && k.Hour < to && (tenant == "" || k.Tenant == tenant) {
			out = append(out, UsageRollup{k, c})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		return string(usageKeyBytes(out[i].Key)) < string(usageKeyBytes(out[j].Key))
	})
	return out
}

// AddUsage implements UsageRollups.
func (m *Memory) AddUsage(_ context.Context, rollups []UsageRollup) error {
	m.usage.add(rollups)
	return nil
}

// UsageBetween implements UsageRollups.
func (m *Memory) UsageBetween(_ context.Context, from, to int64, tenant string) ([]UsageRollup, error) {
	return m.usage.between(from, to, tenant), nil
}
