package store

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
)

// Kinds of store Open knows.
const (
	KindBolt   = "bolt"
	KindRedis  = "redis"
	KindMemory = "memory"
)

// Options choose and locate a store.
type Options struct {
	Kind     string // bolt (default), redis or memory
	DataDir  string // bolt: the file is <DataDir>/orchestrator.db
	RedisURL string // redis: redis://host:port/db
	// RedisPrefix namespaces the keys (default DefaultRedisPrefix).
	RedisPrefix string
}

// BoltFileName is the bbolt file inside the data directory.
const BoltFileName = "orchestrator.db"

// Open returns the store the options name.
func Open(ctx context.Context, o Options) (Store, error) {
	switch o.Kind {
	case KindBolt, "":
		if err := os.MkdirAll(o.DataDir, 0o750); err != nil {
			return nil, fmt.Errorf("create data dir: %w", err)
		}
		return OpenBolt(filepath.Join(o.DataDir, BoltFileName))
	case KindRedis:
		return OpenRedis(ctx, o.RedisURL, o.RedisPrefix)
	case KindMemory:
		return NewMemory(), nil
	}
	return nil, fmt.Errorf("unknown store %q (want bolt, redis or memory)", o.Kind)
}
