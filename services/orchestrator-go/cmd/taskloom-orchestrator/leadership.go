package main

// Leader election wiring (--store redis): the standby phase before this
// orchestrator wins the leader lease, the fence of its store, and the term.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"

	"github.com/taskloom/taskloom/services/orchestrator-go/internal/api"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/config"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/httpserver"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/leader"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/store"
)

type leadership struct {
	elector *leader.Elector
	store   store.Fenceable
	key     string
	log     *slog.Logger
	term    atomic.Pointer[leader.Term] // set once the lease is won
}

// newLeadership fences st with no token (a standby writes nothing) and connects
// the elector; advertise is the address standbys will name to clients.
func newLeadership(ctx context.Context, cfg config.Config, st store.Store, advertise string, log *slog.Logger) (*leadership, error) {
	fenced, ok := st.(store.Fenceable)
	if !ok {
		return nil, fmt.Errorf("the %s store has no leader election", cfg.Store)
	}
	key := leader.FenceKey(store.DefaultRedisPrefix)
	if err := fenced.Fence(ctx, key, 0, nil); err != nil {
		return nil, err
	}
	e, err := leader.Connect(ctx, leader.Options{
		RedisURL: cfg.RedisURL, Prefix: store.DefaultRedisPrefix, Addr: advertise,
		TTL: cfg.LeaderLeaseTTL, RenewInterval: cfg.LeaderRenewInterval, Log: log,
	})
	if err != nil {
		return nil, err
	}
	return &leadership{elector: e, store: fenced, key: key, log: log}, nil
}

func (l *leadership) leaderAddr() string {
	h, _ := l.elector.Leader()
	return h.Addr
}

// check is /readyz's "leader": ready only while this orchestrator holds the lease.
func (l *leadership) check(context.Context) error {
	if t := l.term.Load(); t != nil {
		if err := t.Err(); err != nil {
			return fmt.Errorf("lost the leader lease: %w", err)
		}
		return nil
	}
	if addr := l.leaderAddr(); addr != "" {
		return errors.New("standby; the leader is " + addr)
	}
	return errors.New("standby; no leader known yet")
}

// standby serves as a standby on lis (api.NewStandby) until this orchestrator wins
// the lease; then it fences the store with the term's token and returns a new
// listener on the same address for the leader's server. It returns a nil
// listener when a signal came first.
func (l *leadership) standby(opts []grpc.ServerOption, lis net.Listener, sig <-chan os.Signal, ready *httpserver.Readiness) (net.Listener, error) {
	srv := api.NewStandby(l.leaderAddr, opts...)
	go func() { _ = srv.Serve(lis) }()
	ready.Set(true)
	l.log.Info("standby: serving and campaigning for the leader lease", "grpc_addr", lis.Addr().String(), "id", l.elector.ID())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	won := make(chan *leader.Term, 1)
	go func() { t, _ := l.elector.Campaign(ctx); won <- t }()
	var term *leader.Term
	select {
	case s := <-sig:
		l.log.Info("shutting down (standby)", "signal", s.String())
		cancel()
		if t := <-won; t != nil { // won at that very moment: hand it on
			_ = t.Resign(context.Background())
		}
		srv.Stop()
		return nil, nil
	case term = <-won:
	}
	ready.Set(false)
	addr := lis.Addr().String()
	srv.Stop() // ends the standby's connections: clients and workers reconnect, to the leader
	if err := l.store.Fence(ctx, l.key, term.Token, term.Depose); err != nil {
		_ = term.Resign(context.Background())
		return nil, err
	}
	l.term.Store(term)
	l.log.Info("leader: won the lease; loading the state from the store", "fencing_token", term.Token)
	leaderLis, err := net.Listen("tcp", addr)
	if err != nil {
		_ = term.Resign(context.Background())
		return nil, fmt.Errorf("listen gRPC on %s: %w", addr, err)
	}
	return leaderLis, nil
}

// lost is closed when the term ends without resigning (nil channel before a term).
func (l *leadership) lost() <-chan struct{} {
	if t := l.term.Load(); t != nil {
		return t.Lost()
	}
	return nil
}

// resign releases the lease after a graceful stop, so a standby takes over at once.
func (l *leadership) resign() {
	t := l.term.Load()
	if t == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := t.Resign(ctx); err != nil {
		l.log.Warn("could not release the leader lease; a standby takes over when it expires", "err", err)
	}
}

func (l *leadership) close() { _ = l.elector.Close() }
