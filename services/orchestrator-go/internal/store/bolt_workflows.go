package store

// The workflow records of the bbolt store (see bolt.go for its layout).

import (
	"bytes"
	"context"
	"time"

	bolt "go.etcd.io/bbolt"
)

// PutWorkflow implements Store.
func (b *Bolt) PutWorkflow(_ context.Context, w *Workflow) error {
	return b.db.Update(func(tx *bolt.Tx) error {
		id := []byte(w.ID)
		if err := tx.Bucket(bucketWorkflows).Put(id, encodeWorkflow(w)); err != nil {
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
