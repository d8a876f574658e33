package store

// The API keys of the memory store.

import (
	"bytes"
	"context"
	"slices"
	"strings"
)

// PutAPIKey implements KeyStore.
func (m *Memory) PutAPIKey(_ context.Context, k *APIKey) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.apiKeys[k.ID] = k.Clone()
	return nil
}

// APIKeyByHash implements KeyStore: a scan, as keys are few and this is for tests.
func (m *Memory) APIKeyByHash(_ context.Context, hash []byte) (*APIKey, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	for _, k := range m.apiKeys {
		if bytes.Equal(k.Hash, hash) {
			return k.Clone(), nil
		}
	}
	return nil, ErrAPIKeyNotFound
}

// GetAPIKey implements KeyStore.
func (m *Memory) GetAPIKey(_ context.Context, id string) (*APIKey, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if k, ok := m.apiKeys[id]; ok {
		return k.Clone(), nil
	}
	return nil, ErrAPIKeyNotFound
}

// ListAPIKeys implements KeyStore.
func (m *Memory) ListAPIKeys(_ context.Context, tenant, after string, limit int) ([]*APIKey, string, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	var keys []*APIKey
	for _, k := range m.apiKeys {
		if k.ID > after && (tenant == "" || k.Tenant == tenant) {
			keys = append(keys, k.Clone())
		}
	}
	slices.SortFunc(keys, func(a, b *APIKey) int { return strings.Compare(a.ID, b.ID) })
	page, next := pageOfKeys(keys, limit)
	return page, next, nil
}
