// Package apikeys creates, verifies, lists and revokes the API keys that bind a
// caller to a tenant and a role. A secret is "tlk_" and 32 random bytes in base64url;
// only its SHA-256 is stored, so the store reveals no usable key. SHA-256 rather
// than a slow password hash: a 256-bit random secret leaves nothing to guess, and
// verifying stays one hash and one lookup per call.
package apikeys

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strings"
	"time"

	"github.com/google/uuid"

	pb "github.com/taskloom/taskloom/services/orchestrator-go/gen/taskloom/v1"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/errs"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/store"
)

// Role is what a key may do; the values are taskloom.v1.APIKeyRole's.
type Role int32

// Roles.
const (
	RoleTenant = Role(pb.APIKeyRole_API_KEY_ROLE_TENANT)
	RoleAdmin  = Role(pb.APIKeyRole_API_KEY_ROLE_ADMIN)
)

// SecretPrefix starts every secret, so that a leaked one is recognised (secret scanners).
const SecretPrefix = "tlk_"

// shownPrefixLen is how much of a secret a key's listing shows (SecretPrefix and 6
// characters of the random part: enough to tell keys apart, nothing to guess with).
const shownPrefixLen = len(SecretPrefix) + 6

// Key is an API key as callers see it: never its secret.
type Key struct {
	ID        string
	Tenant    string
	Role      Role
	Name      string
	Prefix    string
	CreatedAt time.Time
	RevokedAt time.Time
}

// Revoked reports whether the key was revoked.
func (k Key) Revoked() bool { return !k.RevokedAt.IsZero() }

// Service manages the keys of a store.
type Service struct {
	store store.KeyStore
	now   func() time.Time
}

// New returns the service of the keys in st.
func New(st store.KeyStore) *Service {
	return &Service{store: st, now: time.Now}
}

// Create makes a key for the tenant and returns it with its secret, which is shown
// here only.
func (s *Service) Create(ctx context.Context, tenant string, role Role, name string) (Key, string, error) {
	if role != RoleTenant && role != RoleAdmin {
		return Key{}, "", errs.InvalidArgument("role", "role must be API_KEY_ROLE_TENANT or API_KEY_ROLE_ADMIN")
	}
	random := make([]byte, 32)
	_, _ = rand.Read(random) // never fails (crypto/rand)
	secret := SecretPrefix + base64.RawURLEncoding.EncodeToString(random)
	rec := &store.APIKey{
		ID: uuid.Must(uuid.NewV7()).String(), Tenant: tenant, Role: int32(role), Name: name,
		Prefix: secret[:shownPrefixLen], Hash: hash(secret), CreatedAt: s.now().UTC(),
	}
	if err := s.store.PutAPIKey(ctx, rec); err != nil {
		return Key{}, "", err
	}
	return fromRecord(rec), secret, nil
}

// Verify returns the live key whose secret this is; an unknown or revoked secret is
// UNAUTHENTICATED (the same answer for both, so a caller learns nothing).
func (s *Service) Verify(ctx context.Context, secret string) (Key, error) {
	if !strings.HasPrefix(secret, SecretPrefix) {
		return Key{}, errUnknownKey
	}
	rec, err := s.store.APIKeyByHash(ctx, hash(secret))
	if errors.Is(err, store.ErrNotFound) {
		return Key{}, errUnknownKey
	}
	if err != nil {
		return Key{}, err
	}
	if !rec.RevokedAt.IsZero() {
		return Key{}, errUnknownKey
	}
	return fromRecord(rec), nil
}

var errUnknownKey = errs.Unauthenticated("the API key is not valid (unknown or revoked)")

// List returns a page of keys in creation order, the tenant's only unless it is
// empty, without the revoked ones unless asked; a page may be short (even empty)
// while next is set.
func (s *Service) List(ctx context.Context, tenant, after string, limit int, includeRevoked bool) ([]Key, string, error) {
	recs, next, err := s.store.ListAPIKeys(ctx, tenant, after, limit)
	if err != nil {
		return nil, "", err
	}
	keys := make([]Key, 0, len(recs))
	for _, r := range recs {
		if includeRevoked || r.RevokedAt.IsZero() {
			keys = append(keys, fromRecord(r))
		}
	}
	return keys, next, nil
}

// Revoke ends the key for good; a revoked key is returned as it is.
func (s *Service) Revoke(ctx context.Context, id string) (Key, error) {
	rec, err := s.store.GetAPIKey(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return Key{}, errs.NotFound(errs.ReasonAPIKeyNotFound, "no API key has id %q", errs.Clip(id))
	}
	if err != nil {
		return Key{}, err
	}
	if rec.RevokedAt.IsZero() {
		rec.RevokedAt = s.now().UTC()
		if err := s.store.PutAPIKey(ctx, rec); err != nil {
			return Key{}, err
		}
	}
	return fromRecord(rec), nil
}

func hash(secret string) []byte {
	h := sha256.Sum256([]byte(secret))
	return h[:]
}

func fromRecord(r *store.APIKey) Key {
	return Key{ID: r.ID, Tenant: r.Tenant, Role: Role(r.Role), Name: r.Name, Prefix: r.Prefix, CreatedAt: r.CreatedAt, RevokedAt: r.RevokedAt}
}
