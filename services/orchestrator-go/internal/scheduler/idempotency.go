package scheduler

// Idempotency keys: a tenant's key names one task for good. The in-memory map holds
// the keys of live tasks; older ones are looked up in the store, outside the lock.

import (
	"context"
	"fmt"
	"math"

	"github.com/taskloom/taskloom/services/orchestrator-go/internal/errs"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/store"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/task"
)

func hasIdempotencyKeys(specs []task.Spec) bool {
	for i := range specs {
		if specs[i].IdempotencyKey != "" {
			return true
		}
	}
	return false
}

// idemLookup is one Submit's read of its idempotency keys from the store, made
// outside the lock.
//
// Why it cannot miss a task: a key not found in the store belonged to no durable
// task when the read began. A task with that key that becomes durable later was
// live, so in the in-memory map, before it was written, and stays there until it
// finishes. The map drops a finished task's key only once no lookup that began
// before the task finished is still in flight (retireIdemLocked); so when admit
// takes the lock, the key is either still in the map or was read by this lookup.
type idemLookup struct {
	start uint64                 // this lookup's sequence number
	known map[idemKey]*task.Task // durable tasks found, by key
}

// retiredIdem is the key of a finished task, kept in the idempotency map while a
// lookup that began before the task finished (seq >= its start) is in flight.
type retiredIdem struct {
	key idemKey
	e   *liveTask
	seq uint64
}

// lookUpKeys reads from the store, in one call and outside the lock, the tasks of
// the specs' idempotency keys that the in-memory map does not hold. admit ends the
// lookup.
func (s *Scheduler) lookUpKeys(ctx context.Context, specs []task.Spec) (*idemLookup, error) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, ErrShuttingDown
	}
	s.lookupSeq++
	look := &idemLookup{start: s.lookupSeq, known: map[idemKey]*task.Task{}}
	s.lookups[look.start]++
	var keys []store.IdempotencyKey
	seen := map[idemKey]bool{}
	for i := range specs {
		k := idemKey{specs[i].Tenant, specs[i].IdempotencyKey}
		if k.key == "" || seen[k] {
			continue
		}
		seen[k] = true
		if e := s.idem[k]; e != nil {
			if e.final != nil { // finished and durable: may leave the map before admit
				look.known[k] = e.final
			}
			continue // live: stays in the map while this lookup is in flight
		}
		keys = append(keys, store.IdempotencyKey{Tenant: k.tenant, Key: k.key})
	}
	s.mu.Unlock()
	if len(keys) == 0 {
		return look, nil
	}
	found, err := s.store.FindByIdempotencyKeys(ctx, keys)
	if err != nil {
		s.mu.Lock()
		s.endLookupLocked(look)
		s.mu.Unlock()
		return nil, fmt.Errorf("look up idempotency keys: %w", err)
	}
	for k, t := range found {
		look.known[idemKey{k.Tenant, k.Key}] = t
	}
	return look, nil
}

// endLookupLocked ends an idempotency lookup and drops the keys of finished tasks
// that no lookup in flight may still need.
func (s *Scheduler) endLookupLocked(look *idemLookup) {
	if n := s.lookups[look.start] - 1; n > 0 {
		s.lookups[look.start] = n
	} else {
		delete(s.lookups, look.start)
	}
	s.purgeRetiredIdemLocked()
}

// retireIdemLocked drops the key of the finished task e from the idempotency map,
// or keeps it there (with the final snapshot) while an older lookup is in flight.
func (s *Scheduler) retireIdemLocked(k idemKey, e *liveTask, final *task.Task) {
	if s.idem[k] != e {
		return
	}
	if len(s.lookups) == 0 {
		delete(s.idem, k)
		return
	}
	e.final = final
	s.retiredIdem = append(s.retiredIdem, retiredIdem{key: k, e: e, seq: s.lookupSeq})
}

func (s *Scheduler) purgeRetiredIdemLocked() {
	if len(s.retiredIdem) == 0 {
		return
	}
	oldest := uint64(math.MaxUint64)
	for start := range s.lookups {
		oldest = min(oldest, start)
	}
	n := 0
	for _, r := range s.retiredIdem {
		if oldest <= r.seq {
			break
		}
		if s.idem[r.key] == r.e {
			delete(s.idem, r.key)
		}
		n++
	}
	clear(s.retiredIdem[:n])
	s.retiredIdem = s.retiredIdem[n:]
	if len(s.retiredIdem) == 0 {
		s.retiredIdem = nil
	}
}

type idemKey struct{ tenant, key string }

// fingerprints returns the fingerprints of the keyed specs (zero for the others).
func fingerprints(specs []task.Spec) []task.Fingerprint {
	fps := make([]task.Fingerprint, len(specs))
	for i := range specs {
		if specs[i].IdempotencyKey != "" {
			fps[i] = specs[i].Fingerprint()
		}
	}
	return fps
}

// existingLocked returns the task the key already names, if any: one submitted
// earlier in the same batch, a live or recently finished one, or one the lookup
// found in the store; and, for a task whose submission is still being stored, the
// write to wait for.
func (s *Scheduler) existingLocked(k idemKey, inBatch map[idemKey]*task.Task, look *idemLookup) (*task.Task, *batchWait) {
	if snap, ok := inBatch[k]; ok {
		return snap, nil
	}
	if e := s.idem[k]; e != nil {
		snap := e.final
		if snap == nil {
			snap = e.t.Snapshot()
		}
		if e.submitted != nil {
			return snap, &batchWait{e.submitted, e.t.ID}
		}
		return snap, nil
	}
	if t := look.known[k]; t != nil {
		return t, nil
	}
	return nil, nil
}

// sameRequest refuses a key that names a task submitted with a different request:
// a retry carries the same request, and gets the task; anything else gets
// IDEMPOTENCY_CONFLICT and creates nothing. A task stored without a fingerprint
// (by an older version) takes any request as its retry.
func sameRequest(existing *task.Task, fp task.Fingerprint, key string) error {
	if existing.Fingerprint.IsZero() || existing.Fingerprint == fp {
		return nil
	}
	return &errs.Error{
		Kind: errs.KindAlreadyExists, Reason: errs.ReasonIdempotencyConflict,
		Message: fmt.Sprintf("idempotency key %q already named task %s, submitted with a different request; "+
			"resend that request to get the task, or use a new key", errs.Clip(key), existing.ID),
		Metadata: map[string]string{"existing_id": existing.ID},
	}
}
