package store

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"
)

func testKey(id, tenant string, created time.Time) *APIKey {
	h := sha256.Sum256([]byte("secret-of-" + id))
	return &APIKey{ID: id, Tenant: tenant, Role: 1, Name: "ci " + id, Prefix: "tlk_" + id[:2], Hash: h[:], CreatedAt: created.UTC()}
}

func TestStoreKeepsAPIKeysByHashAndID(t *testing.T) {
	forEachStore(t, func(t *testing.T, s Store, reopen func() Store) {
		ctx := context.Background()
		now := time.Unix(1_800_000_000, 0)
		k := testKey("k1", "acme", now)
		if err := s.PutAPIKey(ctx, k); err != nil {
			t.Fatal(err)
		}
		if reopen != nil {
			s = reopen()
		}
		if got, err := s.APIKeyByHash(ctx, k.Hash); err != nil || !reflect.DeepEqual(got, k) {
			t.Fatalf("APIKeyByHash = %+v, %v; want %+v", got, err, k)
		}
		if got, err := s.GetAPIKey(ctx, "k1"); err != nil || !reflect.DeepEqual(got, k) {
			t.Fatalf("GetAPIKey = %+v, %v", got, err)
		}
		other := sha256.Sum256([]byte("unknown"))
		if _, err := s.APIKeyByHash(ctx, other[:]); !errors.Is(err, ErrAPIKeyNotFound) || !errors.Is(err, ErrNotFound) {
			t.Fatalf("APIKeyByHash(unknown) = %v", err)
		}
		if _, err := s.GetAPIKey(ctx, "nope"); !errors.Is(err, ErrAPIKeyNotFound) {
			t.Fatalf("GetAPIKey(unknown) = %v", err)
		}
		// Revocation rewrites the record; the hash still finds it, revoked.
		k.RevokedAt = now.Add(time.Minute).UTC()
		if err := s.PutAPIKey(ctx, k); err != nil {
			t.Fatal(err)
		}
		if got, err := s.APIKeyByHash(ctx, k.Hash); err != nil || !got.RevokedAt.Equal(k.RevokedAt) {
			t.Fatalf("revoked key = %+v, %v", got, err)
		}
	})
}

func TestStoreListsAPIKeysInIDOrderByTenantWithPages(t *testing.T) {
	forEachStore(t, func(t *testing.T, s Store, _ func() Store) {
		ctx := context.Background()
		now := time.Unix(1_800_000_000, 0)
		var acme []string
		for i := range 7 {
			tenant := "acme"
			if i%3 == 1 {
				tenant = "globex"
			}
			id := fmt.Sprintf("k%02d", i)
			if tenant == "acme" {
				acme = append(acme, id)
			}
			if err := s.PutAPIKey(ctx, testKey(id, tenant, now)); err != nil {
				t.Fatal(err)
			}
		}
		var got []string
		after := ""
		for pages := 0; ; pages++ {
			page, next, err := s.ListAPIKeys(ctx, "acme", after, 2)
			if err != nil || pages > 5 {
				t.Fatalf("ListAPIKeys: %v (page %d)", err, pages)
			}
			for _, k := range page {
				got = append(got, k.ID)
			}
			if next == "" {
				break
			}
			after = next
		}
		if !reflect.DeepEqual(got, acme) {
			t.Fatalf("acme's keys = %v, want %v", got, acme)
		}
		all, next, err := s.ListAPIKeys(ctx, "", "", 100)
		if err != nil || next != "" || len(all) != 7 || all[0].ID != "k00" || all[6].ID != "k06" {
			t.Fatalf("every key = %d keys, next %q, %v", len(all), next, err)
		}
	})
}
