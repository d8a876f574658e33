package store

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

// Redis keeps the rollups of an hour in one hash (usage:<hour>, field
// "<tenant>\x00<agent>\x00<endpoint>\x00<model>\x00<counter>") and the hours that
// have any in a sorted set (usage:hours), so a report reads only those hours.

const usageCounters = 7

func (r *Redis) usageHourKey(hour int64) string {
	return r.key("usage:", strconv.FormatInt(hour, 10))
}

// AddUsage implements UsageRollups: HINCRBYs in one MULTI/EXEC.
func (r *Redis) AddUsage(ctx context.Context, rollups []UsageRollup) error {
	if len(rollups) == 0 {
		return nil
	}
	_, err := r.c.TxPipelined(ctx, func(p redis.Pipeliner) error {
		for _, u := range rollups {
			k := u.Key
			hash := r.usageHourKey(k.Hour)
			prefix := strings.Join([]string{k.Tenant, k.Agent, k.Endpoint, k.Model}, "\x00") + "\x00"
			for i, v := range u.Counts.fields() {
				if v != 0 {
					p.HIncrBy(ctx, hash, prefix+strconv.Itoa(i), v)
				}
			}
			p.ZAdd(ctx, r.key("usage:hours"), redis.Z{Score: float64(k.Hour), Member: k.Hour})
		}
		return nil
	})
	return err
}

// UsageBetween implements UsageRollups.
func (r *Redis) UsageBetween(ctx context.Context, from, to int64, tenant string) ([]UsageRollup, error) {
	hours, err := r.c.ZRangeArgs(ctx, redis.ZRangeArgs{
		Key: r.key("usage:hours"), ByScore: true,
		Start: strconv.FormatInt(from, 10), Stop: "(" + strconv.FormatInt(to, 10),
	}).Result()
	if err != nil || len(hours) == 0 {
		return nil, err
	}
	cmds := make([]*redis.MapStringStringCmd, len(hours))
	_, err = r.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, h := range hours {
			cmds[i] = p.HGetAll(ctx, r.key("usage:", h))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	var out []UsageRollup
	for i, h := range hours {
		hour, err := strconv.ParseInt(h, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("usage hour %q: %w", h, err)
		}
		rows, err := usageRowsOfHash(hour, cmds[i].Val(), tenant)
		if err != nil {
			return nil, err
		}
		out = append(out, rows...)
	}
	return out, nil
}

func usageRowsOfHash(hour int64, hash map[string]string, tenant string) ([]UsageRollup, error) {
	byKey := map[UsageKey]*[usageCounters]int64{}
	for field, value := range hash {
		parts := strings.Split(field, "\x00")
		if len(parts) != 5 {
			return nil, fmt.Errorf("usage field %q: %w", field, errBadUsageKey)
		}
		counter, err := strconv.Atoi(parts[4])
		if err != nil || counter < 0 || counter >= usageCounters {
			return nil, fmt.Errorf("usage field %q: %w", field, errBadUsageKey)
		}
		n, err := strconv.ParseInt(value, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("usage field %q: %w", field, err)
		}
		key := UsageKey{hour, parts[0], parts[1], parts[2], parts[3]}
		if tenant != "" && key.Tenant != tenant {
			continue
		}
		if byKey[key] == nil {
			byKey[key] = &[usageCounters]int64{}
		}
		byKey[key][counter] = n
	}
	out := make([]UsageRollup, 0, len(byKey))
	for k, f := range byKey {
		out = append(out, UsageRollup{k, countsFrom(*f)})
	}
	sort.Slice(out, func(i, j int) bool {
		return string(usageKeyBytes(out[i].Key)) < string(usageKeyBytes(out[j].Key))
	})
	return out, nil
}
