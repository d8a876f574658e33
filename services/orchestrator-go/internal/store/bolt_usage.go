package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// bucketUsage holds the hourly usage rollups: usageKeyBytes → encodeUsageCounts.
// Created by the first write; retention never touches it.
var bucketUsage = []byte("usage_hourly")

// AddUsage implements UsageRollups: one transaction, one fsync.
func (b *Bolt) AddUsage(_ context.Context, rollups []UsageRollup) error {
	if len(rollups) == 0 {
		return nil
	}
	return b.db.Update(func(tx *bolt.Tx) error {
		bucket, err := tx.CreateBucketIfNotExists(bucketUsage)
		if err != nil {
			return err
		}
		for _, r := range rollups {
			key := usageKeyBytes(r.Key)
			counts := r.Counts
			if old := bucket.Get(key); old != nil {
				stored, err := decodeUsageCounts(old)
				if err != nil {
					return fmt.Errorf("usage rollup %q: %w", key, err)
				}
				counts.Add(stored)
			}
			if err := bucket.Put(key, encodeUsageCounts(counts)); err != nil {
				return err
			}
		}
		return nil
	})
}

// UsageBetween implements UsageRollups, reading the hours in key order.
func (b *Bolt) UsageBetween(_ context.Context, from, to int64, tenant string) ([]UsageRollup, error) {
	var out []UsageRollup
	err := b.db.View(func(tx *bolt.Tx) error {
		bucket := tx.Bucket(bucketUsage)
		if bucket == nil {
			return nil
		}
		end := binary.BigEndian.AppendUint64(nil, uint64(to))
		c := bucket.Cursor()
		for k, v := c.Seek(binary.BigEndian.AppendUint64(nil, uint64(from))); k != nil && bytes.Compare(k, end) < 0; k, v = c.Next() {
			key, err := parseUsageKey(k)
			if err != nil {
				return err
			}
			if tenant != "" && key.Tenant != tenant {
				continue
			}
			counts, err := decodeUsageCounts(v)
			if err != nil {
				return err
			}
			out = append(out, UsageRollup{key, counts})
		}
		return nil
	})
	return out, err
}
