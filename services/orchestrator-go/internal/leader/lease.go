// Package leader elects one orchestrator among several that share a Redis store.
// A lease (a key with a TTL that its holder renews) names the leader; a fencing
// token, a counter incremented on every acquisition, numbers its term. The Redis
// store checks the token on every write (store/redis_fence.go), so a deposed
// leader's late write fails instead of landing. The others are standbys: they try
// to acquire the lease every renew interval and take over once it expires.
//
// Written here rather than taken from a lock library (redsync, redislock): those
// give a lock without a fencing token, and the token must be issued in the same
// atomic step as the lease and be read by the store's own transactions. The three
// scripts below are the whole protocol.
package leader

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/taskloom/taskloom/services/orchestrator-go/internal/store"
)

// Keys of the election under the store's key prefix P (see store/redis.go):
//
//	P leader        string with a TTL: the lease, JSON {"token","id","addr"} of its holder
//	P leader:fence  integer: the fencing token of the latest acquisition (INCR)
const (
	leaseKeySuffix = "leader"
	fenceKeySuffix = "leader:fence"
)

// FenceKey is the key holding the current fencing token, for the store's fence.
func FenceKey(prefix string) string { return prefix + fenceKeySuffix }

// acquire takes the lease when nobody holds it: it increments the fencing token and
// stores the holder with the TTL. It returns {token, holder}; token 0 when the
// lease is held (holder is then the current one).
var acquire = redis.NewScript(`
local held = redis.call('GET', KEYS[1])
if held then return {0, held} end
local token = redis.call('INCR', KEYS[2])
local holder = cjson.encode({token = token, id = ARGV[1], addr = ARGV[2]})
redis.call('SET', KEYS[1], holder, 'PX', ARGV[3])
return {token, holder}
`)

// renew extends the lease while the fencing token is still this term's; 0 once a
// newer term began (the lease is then someone else's).
var renew = redis.NewScript(`
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1
`)

// release deletes the lease if this term still holds it, so a standby takes over
// without waiting for the TTL.
var release = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`)

// Holder is who holds (or last held) the lease.
type Holder struct {
	Token int64  `json:"token"`
	ID    string `json:"id"`
	Addr  string `json:"addr"` // its gRPC address, for clients told NOT_LEADER
}

// Options configure an Elector.
type Options struct {
	// RedisURL is the store's Redis (redis://host:port/db). The elector has its own
	// connection: the store's is fenced, and the election is what sets the fence.
	RedisURL string
	// Prefix is the store's key prefix.
	Prefix string
	// ID names this process in the lease; default host name, pid and a random suffix.
	ID string
	// Addr is this orchestrator's gRPC address as clients reach it.
	Addr string
	// TTL is how long a lease lasts without renewal: a dead leader's standby takes
	// over after at most TTL plus RenewInterval.
	TTL time.Duration
	// RenewInterval is how often the leader renews and a standby tries to acquire.
	RenewInterval time.Duration
	Log           *slog.Logger
}

// Elector campaigns for the lease and keeps it once won.
type Elector struct {
	o      Options
	c      *redis.Client
	lease  string
	fence  string
	leader atomic.Pointer[Holder] // the holder last seen; nil before the first look
}

// Connect returns an elector on its own connection to Redis, once Redis answers.
func Connect(ctx context.Context, o Options) (*Elector, error) {
	if o.TTL <= 0 || o.RenewInterval <= 0 || o.RenewInterval >= o.TTL {
		return nil, errors.New("leader: a TTL and a renew interval shorter than the TTL are required")
	}
	c, err := store.DialRedis(ctx, o.RedisURL)
	if err != nil {
		return nil, fmt.Errorf("leader election: %w", err)
	}
	if o.ID == "" {
		host, _ := os.Hostname()
		o.ID = fmt.Sprintf("%s-%d-%s", host, os.Getpid(), uuid.NewString()[:8])
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	return &Elector{o: o, c: c, lease: o.Prefix + leaseKeySuffix, fence: FenceKey(o.Prefix)}, nil
}

// Close closes the elector's connection (after its term, if any, ended).
func (e *Elector) Close() error { return e.c.Close() }

// Ping reports whether Redis answers (readiness of a standby).
func (e *Elector) Ping(ctx context.Context) error { return e.c.Ping(ctx).Err() }

// ID is this process's name in the lease.
func (e *Elector) ID() string { return e.o.ID }

// Leader returns the holder of the lease as last seen (by Campaign, or this
// process's own term), and false before anything was seen.
func (e *Elector) Leader() (Holder, bool) {
	h := e.leader.Load()
	if h == nil {
		return Holder{}, false
	}
	return *h, true
}

// Campaign tries to acquire the lease every RenewInterval until it wins or ctx
// ends. Once won, the Term renews it in the background until it is lost or
// resigned. Redis errors are logged and retried.
func (e *Elector) Campaign(ctx context.Context) (*Term, error) {
	wait := time.NewTimer(0)
	defer wait.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-wait.C:
		}
		start := time.Now()
		token, holder, raw, err := e.tryAcquire(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			e.o.Log.Warn("leader election: cannot reach Redis; retrying", "err", err)
		case token > 0:
			return e.begin(holder, raw, start), nil
		case holder.ID == e.o.ID && e.renew(ctx, holder.Token, raw):
			// An acquisition whose reply was lost: the lease is ours, renewed just now.
			return e.begin(holder, raw, start), nil
		case holder.ID != "":
			if prev := e.leader.Swap(&holder); prev == nil || prev.Token != holder.Token {
				e.o.Log.Info("standby: another orchestrator holds the leader lease", "leader_id", holder.ID, "leader_addr", holder.Addr, "fencing_token", holder.Token)
			}
		}
		wait.Reset(e.o.RenewInterval)
	}
}

// begin starts the term won at start (the lease lasts TTL from then at least).
func (e *Elector) begin(holder Holder, raw string, start time.Time) *Term {
	e.leader.Store(&holder)
	t := &Term{Token: holder.Token, e: e, value: raw, lost: make(chan struct{}), stop: make(chan struct{}), done: make(chan struct{})}
	t.validUntil.Store(start.Add(e.o.TTL).UnixNano())
	go t.keep()
	return t
}

// renew extends the lease stored as value while token is the current one.
func (e *Elector) renew(ctx context.Context, token int64, value string) bool {
	ok, err := renew.Run(ctx, e.c, []string{e.lease, e.fence}, strconv.FormatInt(token, 10), value, e.o.TTL.Milliseconds()).Bool()
	return err == nil && ok
}

// tryAcquire runs the acquire script: the token won (0 when the lease is held),
// the holder and its JSON as stored (renew and release compare it byte for byte).
func (e *Elector) tryAcquire(ctx context.Context) (int64, Holder, string, error) {
	res, err := acquire.Run(ctx, e.c, []string{e.lease, e.fence}, e.o.ID, e.o.Addr, e.o.TTL.Milliseconds()).Slice()
	if err != nil {
		return 0, Holder{}, "", err
	}
	if len(res) != 2 {
		return 0, Holder{}, "", fmt.Errorf("leader: unexpected reply %v", res)
	}
	token, _ := res[0].(int64)
	raw, _ := res[1].(string)
	var h Holder
	if err := json.Unmarshal([]byte(raw), &h); err != nil {
		return 0, Holder{}, "", fmt.Errorf("leader: the lease holds %q, not a holder: %w", raw, err)
	}
	return token, h, raw, nil
}

// Term is one tenure as leader: Token is its fencing token.
type Term struct {
	Token int64
	e     *Elector
	value string // the lease's value, as stored
	// validUntil (unix ns) is when the lease may expire for all this process
	// knows: TTL after the start of the last successful renewal.
	validUntil atomic.Int64
	lostOnce   sync.Once
	lost       chan struct{}
	why        atomic.Pointer[error]
	stop       chan struct{} // closed by Resign
	resignOnce sync.Once
	done       chan struct{} // closed when keep returns
}

// Lost is closed when the term ended without Resign: the lease could not be
// renewed in time, or a newer term began. The leader must stop at once.
func (t *Term) Lost() <-chan struct{} { return t.lost }

// Err says why the term was lost (nil while it holds).
func (t *Term) Err() error {
	if p := t.why.Load(); p != nil {
		return *p
	}
	return nil
}

// Depose ends the term now for the reason given (e.g. the store found its
// fencing token superseded); it is a no-op after the first call.
func (t *Term) Depose(why error) {
	t.lostOnce.Do(func() {
		t.why.Store(&why)
		close(t.lost)
	})
}

// keep renews the lease every RenewInterval. The lease counts as lost once it may
// have expired (no renewal succeeded for a TTL) or once Redis says a newer term
// began; the check of the local deadline comes first, so a process that was
// paused past its TTL stops before it does anything else.
func (t *Term) keep() {
	defer close(t.done)
	o := t.e.o
	token := strconv.FormatInt(t.Token, 10)
	tick := time.NewTicker(o.RenewInterval)
	defer tick.Stop()
	for {
		select {
		case <-t.stop:
			return
		case <-t.lost:
			return
		case <-tick.C:
		}
		start := time.Now()
		if start.UnixNano() >= t.validUntil.Load() {
			t.Depose(fmt.Errorf("the leader lease (fencing token %d) was not renewed within its TTL of %s", t.Token, o.TTL))
			return
		}
		ctx, cancel := context.WithDeadline(context.Background(), time.Unix(0, t.validUntil.Load()))
		ok, err := renew.Run(ctx, t.e.c, []string{t.e.lease, t.e.fence}, token, t.value, o.TTL.Milliseconds()).Bool()
		cancel()
		switch {
		case err != nil:
			o.Log.Warn("leader lease: renewal failed; retrying", "fencing_token", t.Token, "err", err)
		case !ok:
			t.Depose(fmt.Errorf("a newer leader term superseded fencing token %d", t.Token))
			return
		default:
			t.validUntil.Store(start.Add(o.TTL).UnixNano())
		}
	}
}

// Resign stops renewing and releases the lease if this term still holds it, so
// a standby takes over at once (graceful shutdown).
func (t *Term) Resign(ctx context.Context) error {
	t.resignOnce.Do(func() { close(t.stop) })
	<-t.done
	return release.Run(ctx, t.e.c, []string{t.e.lease}, t.value).Err()
}
