package store

// API keys: the orchestrator stores a key's hash, never its secret. A key is found
// by the hash of a presented secret (authentication) or by its id (listing,
// revocation). Keys are few and rarely written, so records are JSON.

import (
	"context"
	"encoding/json"
	"fmt"
	"time"
)

// ErrAPIKeyNotFound is what the key lookups return when nothing matches.
var ErrAPIKeyNotFound = fmt.Errorf("api key %w", ErrNotFound)

// APIKey is the stored record of an API key. Hash is the SHA-256 of its secret.
type APIKey struct {
	ID        string    `json:"id"`
	Tenant    string    `json:"tenant"`
	Role      int32     `json:"role"` // taskloom.v1.APIKeyRole's number
	Name      string    `json:"name,omitempty"`
	Prefix    string    `json:"prefix"`
	Hash      []byte    `json:"hash"`
	CreatedAt time.Time `json:"created_at"`
	RevokedAt time.Time `json:"revoked_at,omitzero"`
}

// Clone returns a deep copy.
func (k *APIKey) Clone() *APIKey {
	c := *k
	c.Hash = append([]byte(nil), k.Hash...)
	return &c
}

// KeyStore holds API keys; every Store is one.
type KeyStore interface {
	// PutAPIKey inserts or replaces a key, by id; its hash never changes.
	PutAPIKey(ctx context.Context, k *APIKey) error
	// APIKeyByHash returns the key whose secret hashes to hash, or ErrAPIKeyNotFound.
	APIKeyByHash(ctx context.Context, hash []byte) (*APIKey, error)
	// GetAPIKey returns the key with the id, or ErrAPIKeyNotFound.
	GetAPIKey(ctx context.Context, id string) (*APIKey, error)
	// ListAPIKeys returns up to limit keys in id order (ids grow with time), those
	// of tenant only unless it is empty, starting after the id after (empty: from
	// the first). next is empty on the last page.
	ListAPIKeys(ctx context.Context, tenant, after string, limit int) (keys []*APIKey, next string, err error)
}

func encodeAPIKey(k *APIKey) []byte {
	b, _ := json.Marshal(k) // strings, numbers and times always marshal
	return b
}

func decodeAPIKey(src []byte) (*APIKey, error) {
	k := &APIKey{}
	if err := json.Unmarshal(src, k); err != nil {
		return nil, fmt.Errorf("%w: api key: %v", errCorrupt, err)
	}
	return k, nil
}

// pageOfKeys cuts a list of keys in id order, already filtered, into a page.
func pageOfKeys(keys []*APIKey, limit int) ([]*APIKey, string) {
	if len(keys) <= limit {
		return keys, ""
	}
	return keys[:limit], keys[limit-1].ID
}
