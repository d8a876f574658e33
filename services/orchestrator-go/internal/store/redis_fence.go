package store

// The fence of the Redis store. With several orchestrators on one Redis
// (internal/leader), each write is applied only while this orchestrator's fencing
// token is the current one, so a deposed leader's late write fails (ErrFenced)
// instead of landing.
//
// How: a go-redis hook sees every command and pipeline the client sends. A write
// (a command Redis itself flags "write" or "may_replicate", or a script)
// is sent as WATCH fence; GET fence; MULTI <the writes> EXEC on one connection:
// nothing is sent when the token already moved, and EXEC applies nothing when it
// moves in between. Reads pass as they are. Being a hook, it fences every write of
// the store, those added later included, with no change where they are made.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/redis/go-redis/v9"
)

// ErrFenced refuses a write of a store whose fencing token is not (or no longer)
// the current one: another orchestrator is the leader. Retrying does not help
// here, but it is not permanent either: the write belongs on the leader.
var ErrFenced = errors.New("fenced: this orchestrator does not hold the current leader term")

// Fence makes every later write of the store conditional on key holding token,
// the fencing token of this orchestrator's leader term. Token 0 (no term, a
// standby) refuses every write. onFenced, if not nil, is called (once per
// refusal) when a write found the token superseded. Call it again with the token
// of a new term.
func (r *Redis) Fence(ctx context.Context, key string, token int64, onFenced func(error)) error {
	r.fenceMu.Lock()
	defer r.fenceMu.Unlock()
	if r.fence == nil {
		writes, err := writeCommands(ctx, r.c)
		if err != nil {
			return err
		}
		r.fence = &fence{key: key, writes: writes, c: r.c}
		r.c.AddHook(r.fence)
	}
	if key != r.fence.key {
		return fmt.Errorf("the store is fenced by %s already, not %s", r.fence.key, key)
	}
	r.fence.onFenced.Store(&onFenced)
	r.fence.token.Store(token)
	return nil
}

// fence is the hook. c, key and writes are set before it is installed.
type fence struct {
	c        *redis.Client
	key      string
	writes   map[string]bool // command name (or "name|subcommand") -> it may write
	onFenced atomic.Pointer[func(error)]
	token    atomic.Int64
}

// writeCommands asks Redis which of its commands may write (COMMAND INFO flags).
func writeCommands(ctx context.Context, c *redis.Client) (map[string]bool, error) {
	infos, err := c.Command(ctx).Result()
	if err != nil {
		return nil, fmt.Errorf("redis command table (for the fence): %w", err)
	}
	out := make(map[string]bool, len(infos))
	for name, info := range infos {
		// Scripts are not flagged "write" (Redis cannot tell), only their _ro forms "readonly".
		script := slices.Contains(info.ACLFlags, "@scripting") && !slices.Contains(info.Flags, "readonly")
		out[strings.ToLower(name)] = script || slices.Contains(info.Flags, "write") || slices.Contains(info.Flags, "may_replicate")
	}
	return out, nil
}

// mayWrite reports whether cmd may change data; unknown commands count as writes.
func (f *fence) mayWrite(cmd redis.Cmder) bool {
	name := cmd.Name()
	if args := cmd.Args(); len(args) > 1 {
		if sub, ok := args[1].(string); ok {
			if w, found := f.writes[name+"|"+strings.ToLower(sub)]; found {
				return w
			}
		}
	}
	w, found := f.writes[name]
	return w || !found
}

// inside marks the commands the fence itself sends, which pass unchecked.
type insideKey struct{}

func isInside(ctx context.Context) bool { return ctx.Value(insideKey{}) != nil }

// DialHook implements redis.Hook.
func (f *fence) DialHook(next redis.DialHook) redis.DialHook { return next }

// ProcessHook implements redis.Hook: a single write goes through exec.
func (f *fence) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if isInside(ctx) || !f.mayWrite(cmd) {
			return next(ctx, cmd)
		}
		return f.exec(ctx, []redis.Cmder{cmd})
	}
}

// ProcessPipelineHook implements redis.Hook: a pipeline or transaction holding a
// write goes through exec whole (MULTI and EXEC of a transaction are its own).
func (f *fence) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if isInside(ctx) || !slices.ContainsFunc(cmds, f.mayWrite) {
			return next(ctx, cmds)
		}
		if len(cmds) >= 2 && cmds[0].Name() == "multi" && cmds[len(cmds)-1].Name() == "exec" {
			cmds = cmds[1 : len(cmds)-1]
		}
		return f.exec(ctx, cmds)
	}
}

// exec runs cmds in one transaction that applies only while the fence key holds
// this store's token; the commands get their replies as if sent directly.
func (f *fence) exec(ctx context.Context, cmds []redis.Cmder) error {
	token := f.token.Load()
	if token == 0 {
		return refuse(cmds, fmt.Errorf("%w (it is a standby)", ErrFenced))
	}
	ctx = context.WithValue(ctx, insideKey{}, true)
	var superseded error
	err := f.c.Watch(ctx, func(tx *redis.Tx) error {
		current, err := tx.Get(ctx, f.key).Result()
		if err != nil && !errors.Is(err, redis.Nil) {
			return err
		}
		if current != strconv.FormatInt(token, 10) {
			superseded = fmt.Errorf("%w (fencing token %d, the current one is %q)", ErrFenced, token, current)
			return superseded
		}
		_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			for _, cmd := range cmds {
				_ = p.Process(ctx, cmd)
			}
			return nil
		})
		if errors.Is(err, redis.TxFailedErr) { // the token moved between GET and EXEC
			superseded = fmt.Errorf("%w (fencing token %d was superseded during the write)", ErrFenced, token)
			return superseded
		}
		return err
	}, f.key)
	if superseded != nil {
		if onFenced := f.onFenced.Load(); onFenced != nil && *onFenced != nil {
			(*onFenced)(superseded)
		}
		return refuse(cmds, superseded)
	}
	return err
}

func refuse(cmds []redis.Cmder, err error) error {
	for _, cmd := range cmds {
		cmd.SetErr(err)
	}
	return err
}

// fenceState is embedded in Redis: the fence, once installed.
type fenceState struct {
	fenceMu sync.Mutex
	fence   *fence
}
