package apikeys

import (
	"bytes"
	"context"
	"crypto/sha256"
	"strings"
	"testing"

	"github.com/taskloom/taskloom/services/orchestrator-go/internal/errs"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/store"
)

func TestAKeyVerifiesUntilRevokedAndOnlyItsHashIsStored(t *testing.T) {
	ctx := context.Background()
	st := store.NewMemory()
	s := New(st)
	key, secret, err := s.Create(ctx, "acme", RoleTenant, "ci")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(secret, SecretPrefix) || len(secret) < 40 || !strings.HasPrefix(secret, key.Prefix) || len(key.Prefix) >= len(secret)/2 {
		t.Fatalf("secret %q, shown prefix %q", secret, key.Prefix)
	}
	rec, err := st.GetAPIKey(ctx, key.ID)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(secret))
	if !bytes.Equal(rec.Hash, sum[:]) || bytes.Contains(rec.Hash, []byte(secret)) {
		t.Fatalf("stored %+v", rec)
	}
	got, err := s.Verify(ctx, secret)
	if err != nil || got.ID != key.ID || got.Tenant != "acme" || got.Role != RoleTenant {
		t.Fatalf("Verify = %+v, %v", got, err)
	}
	for _, wrong := range []string{secret + "x", "tlk_nothing", "plain"} {
		if _, err := s.Verify(ctx, wrong); !isKind(err, errs.KindUnauthenticated) {
			t.Errorf("Verify(%q) = %v", wrong, err)
		}
	}
	revoked, err := s.Revoke(ctx, key.ID)
	if err != nil || !revoked.Revoked() {
		t.Fatalf("Revoke = %+v, %v", revoked, err)
	}
	if _, err := s.Verify(ctx, secret); !isKind(err, errs.KindUnauthenticated) {
		t.Fatalf("a revoked key verified: %v", err)
	}
	again, err := s.Revoke(ctx, key.ID)
	if err != nil || !again.RevokedAt.Equal(revoked.RevokedAt) {
		t.Fatalf("second Revoke = %+v, %v", again, err)
	}
	if _, err := s.Revoke(ctx, "missing"); !isKind(err, errs.KindNotFound) {
		t.Fatalf("Revoke(missing) = %v", err)
	}
}

func TestListHidesRevokedKeysUnlessAsked(t *testing.T) {
	ctx := context.Background()
	s := New(store.NewMemory())
	a, _, _ := s.Create(ctx, "acme", RoleTenant, "")
	b, _, _ := s.Create(ctx, "acme", RoleAdmin, "ops")
	_, _, _ = s.Create(ctx, "globex", RoleTenant, "")
	if _, err := s.Revoke(ctx, a.ID); err != nil {
		t.Fatal(err)
	}
	live, _, err := s.List(ctx, "acme", "", 10, false)
	if err != nil || len(live) != 1 || live[0].ID != b.ID || live[0].Role != RoleAdmin {
		t.Fatalf("live = %+v, %v", live, err)
	}
	all, _, _ := s.List(ctx, "", "", 10, true)
	if len(all) != 3 || all[0].ID != a.ID {
		t.Fatalf("all = %+v", all)
	}
	if _, _, err := s.Create(ctx, "acme", Role(7), ""); !isKind(err, errs.KindInvalidArgument) {
		t.Fatalf("an unknown role: %v", err)
	}
}

func isKind(err error, kind errs.Kind) bool {
	e, ok := errs.As(err)
	return ok && e.Kind == kind
}
