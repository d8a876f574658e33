package store

// The API keys of the Redis store:
//
//	P apikey:<id>     string: key record (JSON)
//	P apikey_hashes   hash hex(sha256) -> id
//	P apikeys         sorted set, all scores 0, member id: ListAPIKeys in id order

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"
)

// PutAPIKey implements KeyStore.
func (r *Redis) PutAPIKey(ctx context.Context, k *APIKey) error {
	_, err := r.c.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, r.key("apikey:", k.ID), encodeAPIKey(k), 0)
		p.HSet(ctx, r.key("apikey_hashes"), hex.EncodeToString(k.Hash), k.ID)
		p.ZAdd(ctx, r.key("apikeys"), redis.Z{Score: 0, Member: k.ID})
		return nil
	})
	if err != nil {
		return fmt.Errorf("redis put api key: %w", err)
	}
	return nil
}

// APIKeyByHash implements KeyStore.
func (r *Redis) APIKeyByHash(ctx context.Context, hash []byte) (*APIKey, error) {
	id, err := r.c.HGet(ctx, r.key("apikey_hashes"), hex.EncodeToString(hash)).Result()
	if errors.Is(err, redis.Nil) {
		return nil, ErrAPIKeyNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("redis api key lookup: %w", err)
	}
	return r.GetAPIKey(ctx, id)
}

// GetAPIKey implements KeyStore.
func (r *Redis) GetAPIKey(ctx context.Context, id string) (*APIKey, error) {
	v, err := r.c.Get(ctx, r.key("apikey:", id)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, ErrAPIKeyNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("redis get api key: %w", err)
	}
	return decodeAPIKey(v)
}

// ListAPIKeys implements KeyStore: it reads the id index in chunks until the page
// is full (a tenant's keys may be spread among others').
func (r *Redis) ListAPIKeys(ctx context.Context, tenant, after string, limit int) ([]*APIKey, string, error) {
	const chunk = 256
	start := "-"
	if after != "" {
		start = "(" + after
	}
	var keys []*APIKey
	for len(keys) <= limit {
		ids, err := r.c.ZRangeArgs(ctx, redis.ZRangeArgs{
			Key: r.key("apikeys"), Start: start, Stop: "+", ByLex: true, Count: chunk,
		}).Result()
		if err != nil {
			return nil, "", fmt.Errorf("redis list api keys: %w", err)
		}
		if len(ids) == 0 {
			break
		}
		page, err := mget(ctx, r, "apikey:", ids, decodeAPIKey)
		if err != nil {
			return nil, "", err
		}
		for _, k := range page {
			if tenant == "" || k.Tenant == tenant {
				keys = append(keys, k)
			}
		}
		if len(ids) < chunk {
			break
		}
		start = "(" + ids[len(ids)-1]
	}
	page, next := pageOfKeys(keys, limit)
	return page, next, nil
}
