package leader

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/taskloom/taskloom/services/orchestrator-go/internal/redistest"
)

const prefix = "test:"

// Short times so that expiry happens within the test; nothing below asserts on a
// duration, every wait is for an event.
const (
	testTTL   = 400 * time.Millisecond
	testRenew = 100 * time.Millisecond
)

func connect(t *testing.T, url, addr string) *Elector {
	t.Helper()
	return connectTimed(t, url, addr, testTTL, testRenew)
}

func connectTimed(t *testing.T, url, addr string, ttl, renew time.Duration) *Elector {
	t.Helper()
	e, err := Connect(context.Background(), Options{RedisURL: url, Prefix: prefix, Addr: addr, TTL: ttl, RenewInterval: renew})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close() })
	return e
}

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func client(t *testing.T, srv *redistest.Server) *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: srv.Addr})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// leaderAndStandby starts a Redis and two electors; a has won the lease.
func leaderAndStandby(t *testing.T) (*redistest.Server, context.Context, *Elector, *Elector, *Term) {
	t.Helper()
	srv := redistest.Start(t)
	ctx := ctxFor(t)
	a, b := connect(t, srv.URL, "a:1"), connect(t, srv.URL, "b:1")
	term, err := a.Campaign(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return srv, ctx, a, b, term
}

// awaitLost waits until term is lost and checks why.
func awaitLost(ctx context.Context, t *testing.T, term *Term, why string) {
	t.Helper()
	select {
	case <-term.Lost():
	case <-ctx.Done():
		t.Fatal("the term was never lost")
	}
	if err := term.Err(); err == nil || !strings.Contains(err.Error(), why) {
		t.Fatalf("lost because %v, want %q", err, why)
	}
}

// One of two campaigners wins and renews its lease; the other waits as a standby,
// knows the leader, and takes over with a higher fencing token once it resigns.
func TestOneLeaderAtATimeAndResignHandsOver(t *testing.T) {
	srv := redistest.Start(t)
	ctx := ctxFor(t)
	c := client(t, srv)
	// A long TTL: the lease must not lapse on a slow machine while the test looks.
	a, b := connectTimed(t, srv.URL, "a:1", time.Minute, 50*time.Millisecond), connect(t, srv.URL, "b:1")
	termA, err := a.Campaign(ctx)
	if err != nil || termA.Token != 1 {
		t.Fatalf("first campaign: %+v, %v", termA, err)
	}
	// The leader renews: the lease's remaining time goes up again.
	first := c.PTTL(ctx, prefix+leaseKeySuffix).Val()
	for c.PTTL(ctx, prefix+leaseKeySuffix).Val() <= first {
		if ctx.Err() != nil {
			t.Fatal("the lease was never renewed")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if token, h, _, err := b.tryAcquire(ctx); err != nil || token != 0 || h.ID != a.ID() {
		t.Fatalf("acquiring a held lease: token %d, holder %+v, %v", token, h, err)
	}
	won := make(chan *Term, 1)
	go func() { tb, _ := b.Campaign(ctx); won <- tb }()
	for {
		if h, ok := b.Leader(); ok {
			if h.Addr != "a:1" || h.Token != 1 || h.ID != a.ID() {
				t.Fatalf("the standby sees %+v", h)
			}
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := termA.Resign(ctx); err != nil {
		t.Fatal(err)
	}
	termB := <-won
	if fence := c.Get(ctx, FenceKey(prefix)).Val(); termB == nil || termB.Token != 2 || fence != "2" {
		t.Fatalf("after the resignation: %+v, fence %s", termB, fence)
	}
	if h, _ := b.Leader(); h.Addr != "b:1" {
		t.Fatalf("the new leader sees %+v", h)
	}
	select {
	case <-termA.Lost():
		t.Fatal("a resigned term reports itself lost")
	default:
	}
}

// A leader that cannot renew (its Redis connection gone, like a partition) loses
// its term once the TTL passes, and a standby takes over with a higher token.
func TestALeaderThatCannotRenewLosesItsTermAndAStandbyTakesOver(t *testing.T) {
	_, ctx, a, b, termA := leaderAndStandby(t)
	_ = a.Close() // renewals fail from now on
	awaitLost(ctx, t, termA, "not renewed within its TTL")
	termB, err := b.Campaign(ctx)
	if err != nil || termB.Token != termA.Token+1 {
		t.Fatalf("takeover: %+v, %v", termB, err)
	}
}

// A leader whose lease was taken while it could not see Redis (the lease expired
// and a standby won it) learns at its next renewal that a newer term began.
func TestALeaderLearnsANewerTermBeganAndStops(t *testing.T) {
	srv, ctx, _, b, termA := leaderAndStandby(t)
	// The lease vanishes under the leader (as if it had expired) and b wins it.
	c := client(t, srv)
	if err := c.Del(ctx, prefix+leaseKeySuffix).Err(); err != nil {
		t.Fatal(err)
	}
	termB, err := b.Campaign(ctx)
	if err != nil || termB.Token != 2 {
		t.Fatalf("b: %+v, %v", termB, err)
	}
	awaitLost(ctx, t, termA, "superseded fencing token 1")
	// The old term's resignation does not release the new leader's lease.
	if err := termA.Resign(ctx); err != nil {
		t.Fatal(err)
	}
	if held, err := c.Exists(ctx, prefix+leaseKeySuffix).Result(); err != nil || held != 1 {
		t.Fatalf("the new lease after the old term resigned: %d, %v", held, err)
	}
}

// Depose ends a term at once (the store found its token superseded) and says why.
func TestDeposeEndsTheTerm(t *testing.T) {
	srv := redistest.Start(t)
	ctx := ctxFor(t)
	term, err := connect(t, srv.URL, "a:1").Campaign(ctx)
	if err != nil {
		t.Fatal(err)
	}
	term.Depose(context.Canceled)
	term.Depose(context.DeadlineExceeded) // the first reason stays
	<-term.Lost()
	if term.Err() != context.Canceled {
		t.Fatalf("Err = %v", term.Err())
	}
}

func TestConnectRefusesARenewalNoShorterThanTheTTL(t *testing.T) {
	if _, err := Connect(context.Background(), Options{RedisURL: "redis://127.0.0.1:1/0", TTL: time.Second, RenewInterval: time.Second}); err == nil {
		t.Fatal("accepted")
	}
}

// An elector that finds the lease held under its own id (its acquisition went
// through but the reply was lost) takes it up at once instead of waiting for it to
// expire.
func TestALeaseHeldUnderOwnIdIsTakenUp(t *testing.T) {
	srv := redistest.Start(t)
	ctx := ctxFor(t)
	c := client(t, srv)
	e, err := Connect(ctx, Options{RedisURL: srv.URL, Prefix: prefix, ID: "me", Addr: "me:1", TTL: time.Minute, RenewInterval: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = e.Close() }()
	if err := c.Set(ctx, FenceKey(prefix), 5, 0).Err(); err != nil {
		t.Fatal(err)
	}
	if err := c.Set(ctx, prefix+leaseKeySuffix, `{"token":5,"id":"me","addr":"me:1"}`, time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	term, err := e.Campaign(ctx)
	if err != nil || term.Token != 5 || c.Get(ctx, FenceKey(prefix)).Val() != "5" {
		t.Fatalf("took up %+v, %v", term, err)
	}
}
