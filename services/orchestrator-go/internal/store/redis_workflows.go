package store

// The workflow records of the Redis store (see redis.go for its layout).

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// PruneFinishedWorkflows implements Store.
func (r *Redis) PruneFinishedWorkflows(ctx context.Context, before time.Time, limit int) (int, error) {
	ids, err := r.c.ZRangeArgs(ctx, redis.ZRangeArgs{
		Key: r.key("wf_finished"), Start: "-inf", Stop: "(" + strconv.FormatInt(before.UnixMilli(), 10), ByScore: true, Count: int64(limit),
	}).Result()
	if err != nil || len(ids) == 0 {
		return 0, err
	}
	var doomed []*Workflow
	for _, id := range ids {
		w, err := r.GetWorkflow(ctx, id)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return 0, err
		}
		if w.Done {
			doomed = append(doomed, w)
		}
	}
	_, err = r.c.TxPipelined(ctx, func(p redis.Pipeliner) error {
		for _, w := range doomed {
			p.Del(ctx, r.key("wf:", w.ID))
			if w.IdempotencyKey != "" {
				p.HDel(ctx, r.key("wf_idem"), idemField(w.Tenant, w.IdempotencyKey))
			}
		}
		members := make([]any, len(ids))
		for i, id := range ids {
			members[i] = id
		}
		p.ZRem(ctx, r.key("wf_finished"), members...)
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("redis prune workflows: %w", err)
	}
	return len(doomed), nil
}

// PutWorkflow implements Store.
func (r *Redis) PutWorkflow(ctx context.Context, w *Workflow) error {
	_, err := r.c.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, r.key("wf:", w.ID), encodeWorkflow(w), 0)
		if w.IdempotencyKey != "" {
			p.HSet(ctx, r.key("wf_idem"), idemField(w.Tenant, w.IdempotencyKey), w.ID)
		}
		if !w.Done {
			p.SAdd(ctx, r.key("wf_open"), w.ID)
			return nil
		}
		p.SRem(ctx, r.key("wf_open"), w.ID)
		if !w.FinishedAt.IsZero() {
			p.ZAdd(ctx, r.key("wf_finished"), redis.Z{Score: float64(w.FinishedAt.UnixMilli()), Member: w.ID})
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("redis put workflow: %w", err)
	}
	return nil
}

// GetWorkflow implements Store.
func (r *Redis) GetWorkflow(ctx context.Context, id string) (*Workflow, error) {
	v, err := r.c.Get(ctx, r.key("wf:", id)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, ErrWorkflowNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("redis get workflow: %w", err)
	}
	return decodeWorkflow(v)
}

// FindWorkflowByIdempotencyKey implements Store.
func (r *Redis) FindWorkflowByIdempotencyKey(ctx context.Context, tenant, key string) (*Workflow, error) {
	id, err := r.c.HGet(ctx, r.key("wf_idem"), idemField(tenant, key)).Result()
	if errors.Is(err, redis.Nil) {
		return nil, ErrWorkflowNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("redis workflow idempotency lookup: %w", err)
	}
	return r.GetWorkflow(ctx, id)
}

// UnfinishedWorkflows implements Store.
func (r *Redis) UnfinishedWorkflows(ctx context.Context) ([]*Workflow, error) {
	ids, err := r.c.SMembers(ctx, r.key("wf_open")).Result()
	if err != nil {
		return nil, fmt.Errorf("redis open workflows: %w", err)
	}
	out := make([]*Workflow, 0, len(ids))
	for _, id := range ids {
		w, err := r.GetWorkflow(ctx, id)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, w)
	}
	return out, nil
}
