package store

// The workflow records of the bbolt store (see bolt.go for its layout).

import (
	"bytes"
	"context"
	"encoding/binary"
	"time"

	bolt "go.etcd.io/bbolt"
)

var (
	bucketWfCreated       = []byte("wf_created")
	bucketWfTenantCreated = []byte("wf_tenant_created")
)

// workflowIndexBuckets creates the listing's indexes (OpenBolt calls it): created
// (8-byte ns + id) and tenant 0x00 created, each -> status + name, so that filters
// skip workflows without decoding them. A file from before them is indexed now.
func workflowIndexBuckets(tx *bolt.Tx) error {
	backfill := tx.Bucket(bucketWfCreated) == nil
	for _, b := range [][]byte{bucketWfCreated, bucketWfTenantCreated} {
		if _, err := tx.CreateBucketIfNotExists(b); err != nil {
			return err
		}
	}
	if !backfill {
		return nil
	}
	return tx.Bucket(bucketWorkflows).ForEach(func(_, v []byte) error {
		w, err := decodeWorkflow(v)
		if err != nil {
			return err
		}
		return indexWorkflow(tx, w)
	})
}

func indexWorkflow(tx *bolt.Tx, w *Workflow) error {
	v := workflowIndexValue(w)
	if err := tx.Bucket(bucketWfCreated).Put(timeKey(w.CreatedAt, w.ID), v); err != nil {
		return err
	}
	return tx.Bucket(bucketWfTenantCreated).Put(tenantTimeKey(w.Tenant, w.CreatedAt, w.ID), v)
}

func unindexWorkflow(tx *bolt.Tx, w *Workflow) error {
	if err := tx.Bucket(bucketWfCreated).Delete(timeKey(w.CreatedAt, w.ID)); err != nil {
		return err
	}
	return tx.Bucket(bucketWfTenantCreated).Delete(tenantTimeKey(w.Tenant, w.CreatedAt, w.ID))
}

// workflowIndexValue is a workflow's status and name, as the indexes hold them.
func workflowIndexValue(w *Workflow) []byte {
	v := binary.AppendUvarint(make([]byte, 0, 2+len(w.Name)), uint64(w.Status))
	return append(v, w.Name...)
}

func workflowIndexMayMatch(v []byte, f WorkflowFilter) bool {
	st, n := binary.Uvarint(v)
	if n <= 0 {
		return true
	}
	return (f.Status == 0 || int32(st) == f.Status) && (f.Name == "" || string(v[n:]) == f.Name)
}

// ListWorkflows implements Store, as List does for tasks.
func (b *Bolt) ListWorkflows(_ context.Context, f WorkflowFilter, cursor string, limit int) ([]*Workflow, string, error) {
	var pos []byte
	if cursor != "" {
		ns, id, ok := parseCursor(cursor)
		if !ok {
			return nil, "", ErrBadCursor
		}
		pos = boltCursorKey(ns, id)
	}
	var out []*Workflow
	next := ""
	err := b.db.View(func(tx *bolt.Tx) error {
		all := tx.Bucket(bucketWorkflows)
		idx, prefix := tx.Bucket(bucketWfCreated), []byte(nil)
		if f.Tenant != "" {
			idx, prefix = tx.Bucket(bucketWfTenantCreated), append([]byte(f.Tenant), 0)
		}
		var err error
		out, next, err = newestFirst(idx, prefix, pos, limit, func(pos, v []byte) (*Workflow, error) {
			if !workflowIndexMayMatch(v, f) {
				return nil, nil
			}
			rec := all.Get(pos[8:])
			if rec == nil {
				return nil, nil
			}
			w, err := decodeWorkflow(rec)
			if err != nil || !f.matches(w) {
				return nil, err
			}
			return w, nil
		}, workflowPosition)
		return err
	})
	if err != nil {
		return nil, "", err
	}
	return out, next, nil
}

// workflowPosition is a workflow's place in the created indexes, in cursor form.
func workflowPosition(w *Workflow) string {
	return positionCursor(uint64(unixNano(w.CreatedAt)), w.ID)
}

// PutWorkflow implements Store.
func (b *Bolt) PutWorkflow(_ context.Context, w *Workflow) error {
	return b.db.Update(func(tx *bolt.Tx) error {
		id := []byte(w.ID)
		if err := tx.Bucket(bucketWorkflows).Put(id, encodeWorkflow(w)); err != nil {
			return err
		}
		if err := indexWorkflow(tx, w); err != nil {
			return err
		}
		if w.IdempotencyKey != "" {
			if err := tx.Bucket(bucketWfIdem).Put(idemBoltKey(w.Tenant, w.IdempotencyKey), id); err != nil {
				return err
			}
		}
		if !w.Done {
			return tx.Bucket(bucketWfOpen).Put(id, nil)
		}
		if err := tx.Bucket(bucketWfOpen).Delete(id); err != nil {
			return err
		}
		if w.FinishedAt.IsZero() {
			return nil
		}
		return tx.Bucket(bucketWfFinished).Put(timeKey(w.FinishedAt, w.ID), nil)
	})
}

// PruneFinishedWorkflows implements Store: one transaction deletes the batch.
func (b *Bolt) PruneFinishedWorkflows(_ context.Context, before time.Time, limit int) (int, error) {
	n := 0
	err := b.db.Update(func(tx *bolt.Tx) error {
		all, idem, fin := tx.Bucket(bucketWorkflows), tx.Bucket(bucketWfIdem), tx.Bucket(bucketWfFinished)
		end := timeKey(before, "")
		var doomed [][]byte
		c := fin.Cursor()
		for k, _ := c.First(); k != nil && bytes.Compare(k[:8], end) < 0 && len(doomed) < limit; k, _ = c.Next() {
			doomed = append(doomed, bytes.Clone(k))
		}
		for _, k := range doomed {
			if err := fin.Delete(k); err != nil {
				return err
			}
			id := k[8:]
			v := all.Get(id)
			if v == nil {
				continue
			}
			w, err := decodeWorkflow(v)
			if err != nil {
				return err
			}
			if !w.Done || !bytes.Equal(timeKey(w.FinishedAt, w.ID), k) {
				continue // defensive: an index entry that no longer describes the record
			}
			if w.IdempotencyKey != "" {
				ik := idemBoltKey(w.Tenant, w.IdempotencyKey)
				if bytes.Equal(idem.Get(ik), id) {
					if err := idem.Delete(ik); err != nil {
						return err
					}
				}
			}
			if err := all.Delete(id); err != nil {
				return err
			}
			if err := unindexWorkflow(tx, w); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	return n, err
}

// GetWorkflow implements Store.
func (b *Bolt) GetWorkflow(_ context.Context, id string) (*Workflow, error) {
	var w *Workflow
	err := b.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketWorkflows).Get([]byte(id))
		if v == nil {
			return ErrWorkflowNotFound
		}
		var err error
		w, err = decodeWorkflow(v)
		return err
	})
	return w, err
}

// FindWorkflowByIdempotencyKey implements Store.
func (b *Bolt) FindWorkflowByIdempotencyKey(ctx context.Context, tenant, key string) (*Workflow, error) {
	var id []byte
	_ = b.db.View(func(tx *bolt.Tx) error {
		id = bytes.Clone(tx.Bucket(bucketWfIdem).Get(idemBoltKey(tenant, key)))
		return nil
	})
	if id == nil {
		return nil, ErrWorkflowNotFound
	}
	return b.GetWorkflow(ctx, string(id))
}

// UnfinishedWorkflows implements Store.
func (b *Bolt) UnfinishedWorkflows(context.Context) ([]*Workflow, error) {
	var out []*Workflow
	err := b.db.View(func(tx *bolt.Tx) error {
		all := tx.Bucket(bucketWorkflows)
		return tx.Bucket(bucketWfOpen).ForEach(func(id, _ []byte) error {
			v := all.Get(id)
			if v == nil {
				return nil
			}
			w, err := decodeWorkflow(v)
			if err != nil {
				return err
			}
			out = append(out, w)
			return nil
		})
	})
	return out, err
}
