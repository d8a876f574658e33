package store

// The API keys of the bbolt store: bucket api_keys (id -> record) and api_key_hashes
// (hash -> id).

import (
	"bytes"
	"context"

	bolt "go.etcd.io/bbolt"
)

var (
	bucketAPIKeys      = []byte("api_keys")
	bucketAPIKeyHashes = []byte("api_key_hashes")
)

// keyBuckets creates the key buckets (OpenBolt calls it).
func keyBuckets(tx *bolt.Tx) error {
	for _, b := range [][]byte{bucketAPIKeys, bucketAPIKeyHashes} {
		if _, err := tx.CreateBucketIfNotExists(b); err != nil {
			return err
		}
	}
	return nil
}

// PutAPIKey implements KeyStore.
func (b *Bolt) PutAPIKey(_ context.Context, k *APIKey) error {
	return b.db.Update(func(tx *bolt.Tx) error {
		if err := tx.Bucket(bucketAPIKeys).Put([]byte(k.ID), encodeAPIKey(k)); err != nil {
			return err
		}
		return tx.Bucket(bucketAPIKeyHashes).Put(bytes.Clone(k.Hash), []byte(k.ID))
	})
}

// APIKeyByHash implements KeyStore.
func (b *Bolt) APIKeyByHash(ctx context.Context, hash []byte) (*APIKey, error) {
	var id []byte
	_ = b.db.View(func(tx *bolt.Tx) error {
		id = bytes.Clone(tx.Bucket(bucketAPIKeyHashes).Get(hash))
		return nil
	})
	if id == nil {
		return nil, ErrAPIKeyNotFound
	}
	return b.GetAPIKey(ctx, string(id))
}

// GetAPIKey implements KeyStore.
func (b *Bolt) GetAPIKey(_ context.Context, id string) (*APIKey, error) {
	var k *APIKey
	err := b.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketAPIKeys).Get([]byte(id))
		if v == nil {
			return ErrAPIKeyNotFound
		}
		var err error
		k, err = decodeAPIKey(v)
		return err
	})
	return k, err
}

// ListAPIKeys implements KeyStore: bbolt keeps the ids sorted.
func (b *Bolt) ListAPIKeys(_ context.Context, tenant, after string, limit int) ([]*APIKey, string, error) {
	var keys []*APIKey
	err := b.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketAPIKeys).Cursor()
		k, v := c.First()
		if after != "" {
			if k, v = c.Seek([]byte(after)); k != nil && string(k) == after {
				k, v = c.Next()
			}
		}
		for ; k != nil && len(keys) <= limit; k, v = c.Next() {
			key, err := decodeAPIKey(v)
			if err != nil {
				return err
			}
			if tenant == "" || key.Tenant == tenant {
				keys = append(keys, key)
			}
		}
		return nil
	})
	if err != nil {
		return nil, "", err
	}
	page, next := pageOfKeys(keys, limit)
	return page, next, nil
}
