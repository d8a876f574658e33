package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/taskloom/taskloom/services/orchestrator-go/internal/task"
)

// Redis is the shared store (Redis 6.2 or later): several orchestrators (or a restarted one on another
// host) see the same state. Every Put is one MULTI/EXEC transaction, so a batch is
// applied atomically; Put returns once Redis acknowledged EXEC.
//
// Durability is Redis's: run it with `appendonly yes` and `appendfsync always` so an
// acknowledged write is on disk (with `everysec`, a Redis crash may lose the last
// second of acknowledged tasks; an orchestrator crash never does).
//
// Keys (prefix P, default "taskloom:orch:"):
//
//	P task:<id>       string: task record (codec.go): O(1) Get by id
//	P created         sorted set, all scores 0, member "<16-hex created ns>:<id>": newest-first List by lex order
//	P created:t:<tenant>  the same for one tenant's tasks: a tenant's List in O(page)
//	P idem            hash "<tenant>\x00<key>" -> id
//	P unfinished      set of ids: recovery at start
//	P finished        sorted set, score finished-at unix ms, member id: retention pruning
//	P wf:<id>         string: workflow record
//	P wf_idem         hash "<tenant>\x00<key>" -> workflow id
//	P wf_open         set of ids of workflows not done
//	P wf_finished     sorted set, score finished-at unix ms, member workflow id: retention pruning
//	P agents          hash name -> agent record (JSON): the persisted agent catalog
type Redis struct {
	c      *redis.Client
	prefix string
}

// DefaultRedisPrefix namespaces the orchestrator's keys.
const DefaultRedisPrefix = "taskloom:orch:"

// OpenRedis connects to url (redis://host:port/db) and checks it answers.
func OpenRedis(ctx context.Context, url, prefix string) (*Redis, error) {
	opts, err := redis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("parse redis url: %w", err)
	}
	c := redis.NewClient(opts)
	if err := c.Ping(ctx).Err(); err != nil {
		_ = c.Close()
		return nil, fmt.Errorf("connect to redis at %s: %w", opts.Addr, err)
	}
	if prefix == "" {
		prefix = DefaultRedisPrefix
	}
	return &Redis{c: c, prefix: prefix}, nil
}

func (r *Redis) key(parts ...string) string {
	k := r.prefix
	for _, p := range parts {
		k += p
	}
	return k
}

func idemField(tenant, key string) string { return tenant + "\x00" + key }

// Put implements Store.
func (r *Redis) Put(ctx context.Context, tasks ...*task.Task) error {
	if len(tasks) == 0 {
		return nil
	}
	created, idem, unfinished, finished := r.key("created"), r.key("idem"), r.key("unfinished"), r.key("finished")
	_, err := r.c.TxPipelined(ctx, func(p redis.Pipeliner) error {
		for _, t := range tasks {
			p.Set(ctx, r.key("task:", t.ID), encodeTask(nil, t), 0)
			m := createdMember(t)
			p.ZAdd(ctx, created, redis.Z{Score: 0, Member: m})
			p.ZAdd(ctx, r.key("created:t:", t.Tenant), redis.Z{Score: 0, Member: m})
			if t.IdempotencyKey != "" {
				p.HSet(ctx, idem, idemField(t.Tenant, t.IdempotencyKey), t.ID)
			}
			if t.Status.Finished() {
				p.SRem(ctx, unfinished, t.ID)
				p.ZAdd(ctx, finished, redis.Z{Score: float64(t.FinishedAt.UnixMilli()), Member: t.ID})
			} else {
				p.SAdd(ctx, unfinished, t.ID)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("redis put: %w", err)
	}
	return nil
}

// Get implements Store.
func (r *Redis) Get(ctx context.Context, id string) (*task.Task, error) {
	v, err := r.c.Get(ctx, r.key("task:", id)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, ErrTaskNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("redis get: %w", err)
	}
	return decodeTask(v)
}

// FindByIdempotencyKey implements Store.
func (r *Redis) FindByIdempotencyKey(ctx context.Context, tenant, key string) (*task.Task, error) {
	id, err := r.c.HGet(ctx, r.key("idem"), idemField(tenant, key)).Result()
	if errors.Is(err, redis.Nil) {
		return nil, ErrTaskNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("redis idempotency lookup: %w", err)
	}
	return r.Get(ctx, id)
}

// FindByIdempotencyKeys implements Store: one HMGET, then one MGET.
func (r *Redis) FindByIdempotencyKeys(ctx context.Context, keys []IdempotencyKey) (map[IdempotencyKey]*task.Task, error) {
	out := map[IdempotencyKey]*task.Task{}
	if len(keys) == 0 {
		return out, nil
	}
	fields := make([]string, len(keys))
	for i, k := range keys {
		fields[i] = idemField(k.Tenant, k.Key)
	}
	vals, err := r.c.HMGet(ctx, r.key("idem"), fields...).Result()
	if err != nil {
		return nil, fmt.Errorf("redis idempotency lookup: %w", err)
	}
	keyOf := map[string]IdempotencyKey{}
	var ids []string
	for i, v := range vals {
		if id, ok := v.(string); ok {
			keyOf[id] = keys[i]
			ids = append(ids, id)
		}
	}
	tasks, err := r.getMany(ctx, ids)
	if err != nil {
		return nil, err
	}
	for _, t := range tasks {
		if k, ok := keyOf[t.ID]; ok {
			out[k] = t
		}
	}
	return out, nil
}

// getMany loads the tasks with ids in one MGET; missing ones are skipped.
func (r *Redis) getMany(ctx context.Context, ids []string) ([]*task.Task, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	keys := make([]string, len(ids))
	for i, id := range ids {
		keys[i] = r.key("task:", id)
	}
	vals, err := r.c.MGet(ctx, keys...).Result()
	if err != nil {
		return nil, fmt.Errorf("redis mget: %w", err)
	}
	out := make([]*task.Task, 0, len(vals))
	for _, v := range vals {
		s, ok := v.(string)
		if !ok {
			continue
		}
		t, err := decodeTask([]byte(s))
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, nil
}

// List implements Store: it reads the created index backwards in chunks, or the
// tenant's own index when f names a tenant; at most MaxListScan entries per call.
// (Tasks stored before the tenant indexes existed are listed only without a tenant
// filter.)
func (r *Redis) List(ctx context.Context, f Filter, cursor string, limit int) ([]*task.Task, string, error) {
	key := r.key("created")
	if f.Tenant != "" {
		key = r.key("created:t:", f.Tenant)
	}
	maxLex := "+"
	if cursor != "" {
		if _, _, ok := parseCursor(cursor); ok {
			maxLex = "(" + cursor
		} else { // a bare task id (earlier versions' cursor)
			ct, err := r.Get(ctx, cursor)
			if errors.Is(err, ErrNotFound) {
				return nil, "", ErrBadCursor
			}
			if err != nil {
				return nil, "", err
			}
			maxLex = "(" + createdMember(ct)
		}
	}
	const chunk = 256
	var out []*task.Task
	for scanned := 0; ; {
		if scanned >= MaxListScan {
			return out, maxLex[1:], nil // the next call goes on from here
		}
		want := min(chunk, MaxListScan-scanned)
		members, err := r.c.ZRangeArgs(ctx, redis.ZRangeArgs{
			Key: key, Start: maxLex, Stop: "-", ByLex: true, Rev: true, Count: int64(want),
		}).Result()
		if err != nil {
			return nil, "", fmt.Errorf("redis list: %w", err)
		}
		ids := make([]string, 0, len(members))
		for _, m := range members {
			if _, id, ok := parseCursor(m); ok {
				ids = append(ids, id)
			}
		}
		tasks, err := r.getMany(ctx, ids)
		if err != nil {
			return nil, "", err
		}
		for _, t := range tasks {
			if !matches(t, f) {
				continue
			}
			if len(out) == limit {
				return out, createdMember(out[len(out)-1]), nil
			}
			out = append(out, t)
		}
		if len(members) < want { // the index ends here
			return out, "", nil
		}
		scanned += len(members)
		maxLex = "(" + members[len(members)-1]
	}
}

// Unfinished implements Store.
func (r *Redis) Unfinished(ctx context.Context) ([]*task.Task, error) {
	ids, err := r.c.SMembers(ctx, r.key("unfinished")).Result()
	if err != nil {
		return nil, fmt.Errorf("redis unfinished: %w", err)
	}
	var out []*task.Task
	for len(ids) > 0 {
		n := min(len(ids), 1000)
		tasks, err := r.getMany(ctx, ids[:n])
		if err != nil {
			return nil, err
		}
		out = append(out, tasks...)
		ids = ids[n:]
	}
	return out, nil
}

// PruneFinished implements Store. It reads the oldest entries of the finished
// index page by page; step tasks of open workflows stay indexed and are passed over
// (the next page starts after them).
func (r *Redis) PruneFinished(ctx context.Context, before time.Time, limit int) (int, error) {
	n, held := 0, 0
	for n < limit {
		want := limit - n
		ids, err := r.c.ZRangeArgs(ctx, redis.ZRangeArgs{
			Key: r.key("finished"), Start: "-inf", Stop: "(" + strconv.FormatInt(before.UnixMilli(), 10), ByScore: true,
			Offset: int64(held), Count: int64(want),
		}).Result()
		if err != nil || len(ids) == 0 {
			return n, err
		}
		tasks, err := r.getMany(ctx, ids)
		if err != nil {
			return n, err
		}
		open, err := r.openWorkflows(ctx, tasks)
		if err != nil {
			return n, err
		}
		keep := map[string]bool{}
		_, err = r.c.TxPipelined(ctx, func(p redis.Pipeliner) error {
			for _, t := range tasks {
				if !t.Status.Finished() {
					continue // defensive: never prune live work
				}
				if open[t.WorkflowID] {
					keep[t.ID] = true // its workflow may still read the result when it resumes
					continue
				}
				p.Del(ctx, r.key("task:", t.ID))
				p.ZRem(ctx, r.key("created"), createdMember(t))
				p.ZRem(ctx, r.key("created:t:", t.Tenant), createdMember(t))
				if t.IdempotencyKey != "" {
					p.HDel(ctx, r.key("idem"), idemField(t.Tenant, t.IdempotencyKey))
				}
				n++
			}
			// Index entries whose task is already gone (or live) go too.
			var members []any
			for _, id := range ids {
				if !keep[id] {
					members = append(members, id)
				}
			}
			if len(members) > 0 {
				p.ZRem(ctx, r.key("finished"), members...)
			}
			return nil
		})
		if err != nil {
			return n, fmt.Errorf("redis prune: %w", err)
		}
		held += len(keep)
		if len(ids) < want {
			return n, nil
		}
	}
	return n, nil
}

// openWorkflows reports which of the tasks' workflows are not done, in one call.
func (r *Redis) openWorkflows(ctx context.Context, tasks []*task.Task) (map[string]bool, error) {
	var wfIDs []any
	seen := map[string]bool{}
	for _, t := range tasks {
		if t.WorkflowID != "" && !seen[t.WorkflowID] {
			seen[t.WorkflowID] = true
			wfIDs = append(wfIDs, t.WorkflowID)
		}
	}
	open := map[string]bool{}
	if len(wfIDs) == 0 {
		return open, nil
	}
	member, err := r.c.SMIsMember(ctx, r.key("wf_open"), wfIDs...).Result()
	if err != nil {
		return nil, fmt.Errorf("redis open workflows: %w", err)
	}
	for i, ok := range member {
		if ok {
			open[wfIDs[i].(string)] = true
		}
	}
	return open, nil
}

// PutAgents implements Store.
func (r *Redis) PutAgents(ctx context.Context, agents ...task.AgentInfo) error {
	if len(agents) == 0 {
		return nil
	}
	fields := make([]any, 0, 2*len(agents))
	for _, a := range agents {
		fields = append(fields, a.Name, encodeAgent(a))
	}
	if err := r.c.HSet(ctx, r.key("agents"), fields...).Err(); err != nil {
		return fmt.Errorf("redis put agents: %w", err)
	}
	return nil
}

// Agents implements Store.
func (r *Redis) Agents(ctx context.Context) ([]task.AgentInfo, error) {
	all, err := r.c.HGetAll(ctx, r.key("agents")).Result()
	if err != nil {
		return nil, fmt.Errorf("redis agents: %w", err)
	}
	out := make([]task.AgentInfo, 0, len(all))
	for _, v := range all {
		a, err := decodeAgent([]byte(v))
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	sortAgents(out)
	return out, nil
}

// Close implements Store.
func (r *Redis) Close() error { return r.c.Close() }

// Ping implements Store: Redis answers PING.
func (r *Redis) Ping(ctx context.Context) error { return r.c.Ping(ctx).Err() }
