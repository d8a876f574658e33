package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/taskloom/taskloom/services/orchestrator-go/internal/task"
)

// Bolt is the embedded default store: one bbolt file. Every Put is one read-write
// transaction, committed with fsync before Put returns (the Committer batches many
// writes into one Put, so one fsync covers them all).
//
// Buckets:
//
//	tasks        id -> task record (codec.go): O(1) Get by id
//	created      created-at (8-byte big-endian ns) + id -> status + agent: newest-first List
//	tenant_created  tenant 0x00 created-at (8-byte ns) + id -> status + agent: a
//	             tenant's List in O(page); status and agent filters read the value,
//	             not the task (listing.go)
//	idem         tenant 0x00 key -> id
//	unfinished   id -> nil: recovery at start
//	finished     finished-at (8-byte ns) + id -> nil: retention pruning, oldest first
//	workflows    id -> workflow record
//	wf_idem      tenant 0x00 key -> workflow id
//	wf_open      id -> nil: workflows not done
//	wf_finished  finished-at (8-byte ns) + id -> nil: workflow retention pruning
//	agents       name -> agent record (JSON): the persisted agent catalog
type Bolt struct {
	db *bolt.DB
}

var (
	bucketTasks      = []byte("tasks")
	bucketCreated    = []byte("created")
	bucketTenantIdx  = []byte("tenant_created")
	bucketIdem       = []byte("idem")
	bucketUnfinished = []byte("unfinished")
	bucketFinished   = []byte("finished")
	bucketWorkflows  = []byte("workflows")
	bucketWfIdem     = []byte("wf_idem")
	bucketWfOpen     = []byte("wf_open")
	bucketWfFinished = []byte("wf_finished")
	bucketAgents     = []byte("agents")
)

// appendFillPercent is the page fill of buckets whose keys are appended in order.
// bbolt's default (0.5) suits random inserts; for appends it leaves every page half
// empty, doubling the pages each commit rewrites and the file's size.
const appendFillPercent = 0.9

// OpenBolt opens (creating if needed) the bbolt file at path.
func OpenBolt(path string) (*Bolt, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{
		Timeout: 5 * time.Second, // another process holds the file lock
		// The freelist is rebuilt at open instead of written on every commit:
		// smaller commits, the usual choice for write-heavy bbolt use.
		NoFreelistSync: true,
		FreelistType:   bolt.FreelistMapType,
	})
	if err != nil {
		return nil, fmt.Errorf("open bolt store %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		backfill := tx.Bucket(bucketTenantIdx) == nil && tx.Bucket(bucketTasks) != nil
		for _, b := range [][]byte{bucketTasks, bucketCreated, bucketTenantIdx, bucketIdem, bucketUnfinished, bucketFinished, bucketWorkflows, bucketWfIdem, bucketWfOpen, bucketWfFinished, bucketAgents} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		if backfill { // a file from before the tenant index
			idx := tx.Bucket(bucketTenantIdx)
			return tx.Bucket(bucketTasks).ForEach(func(_, v []byte) error {
				t, err := decodeTask(v)
				if err != nil {
					return err
				}
				return idx.Put(tenantTimeKey(t.Tenant, t.CreatedAt, t.ID), indexValue(t))
			})
		}
		return nil
	})
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("create bolt buckets: %w", err)
	}
	return &Bolt{db: db}, nil
}

func timeKey(t time.Time, id string) []byte {
	k := make([]byte, 8, 8+len(id))
	binary.BigEndian.PutUint64(k, uint64(unixNano(t)))
	return append(k, id...)
}

// tenantTimeKey is a task's key in the tenant index: tenant 0x00 timeKey.
func tenantTimeKey(tenant string, t time.Time, id string) []byte {
	k := make([]byte, 0, len(tenant)+1+8+len(id))
	k = append(k, tenant...)
	k = append(k, 0)
	return append(k, timeKey(t, id)...)
}

func idemBoltKey(tenant, key string) []byte {
	k := make([]byte, 0, len(tenant)+1+len(key))
	k = append(k, tenant...)
	k = append(k, 0)
	return append(k, key...)
}

// Put implements Store.
func (b *Bolt) Put(_ context.Context, tasks ...*task.Task) error {
	if len(tasks) == 0 {
		return nil
	}
	return b.db.Update(func(tx *bolt.Tx) error {
		byID, created, idem := tx.Bucket(bucketTasks), tx.Bucket(bucketCreated), tx.Bucket(bucketIdem)
		unfinished, finished, tenants := tx.Bucket(bucketUnfinished), tx.Bucket(bucketFinished), tx.Bucket(bucketTenantIdx)
		// Their keys grow with time (UUIDv7 ids, time-prefixed index keys), so new
		// keys land on the last page: fill pages before splitting instead of half.
		for _, bk := range []*bolt.Bucket{byID, created, unfinished, finished} {
			bk.FillPercent = appendFillPercent
		}
		for _, t := range tasks {
			// bbolt keeps references to keys and values until the commit: no reuse.
			id := []byte(t.ID)
			if err := byID.Put(id, encodeTask(nil, t)); err != nil {
				return err
			}
			// The index keys derive from immutable fields (created-at, tenant, key)
			// or are written once (finished-at), so re-putting them is harmless; the
			// created indexes' values follow the status.
			iv := indexValue(t)
			if err := created.Put(timeKey(t.CreatedAt, t.ID), iv); err != nil {
				return err
			}
			if err := tenants.Put(tenantTimeKey(t.Tenant, t.CreatedAt, t.ID), iv); err != nil {
				return err
			}
			if t.IdempotencyKey != "" {
				if err := idem.Put(idemBoltKey(t.Tenant, t.IdempotencyKey), id); err != nil {
					return err
				}
			}
			if t.Status.Finished() {
				if err := unfinished.Delete(id); err != nil {
					return err
				}
				if err := finished.Put(timeKey(t.FinishedAt, t.ID), nil); err != nil {
					return err
				}
			} else if err := unfinished.Put(id, nil); err != nil {
				return err
			}
		}
		return nil
	})
}

// Get implements Store.
func (b *Bolt) Get(_ context.Context, id string) (*task.Task, error) {
	var t *task.Task
	err := b.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketTasks).Get([]byte(id))
		if v == nil {
			return ErrTaskNotFound
		}
		var err error
		t, err = decodeTask(v)
		return err
	})
	return t, err
}

// FindByIdempotencyKey implements Store.
func (b *Bolt) FindByIdempotencyKey(_ context.Context, tenant, key string) (*task.Task, error) {
	var t *task.Task
	err := b.db.View(func(tx *bolt.Tx) error {
		id := tx.Bucket(bucketIdem).Get(idemBoltKey(tenant, key))
		if id == nil {
			return ErrTaskNotFound
		}
		v := tx.Bucket(bucketTasks).Get(id)
		if v == nil {
			return ErrTaskNotFound // pruned
		}
		var err error
		t, err = decodeTask(v)
		return err
	})
	return t, err
}

// FindByIdempotencyKeys implements Store: one read transaction.
func (b *Bolt) FindByIdempotencyKeys(_ context.Context, keys []IdempotencyKey) (map[IdempotencyKey]*task.Task, error) {
	out := map[IdempotencyKey]*task.Task{}
	err := b.db.View(func(tx *bolt.Tx) error {
		idem, byID := tx.Bucket(bucketIdem), tx.Bucket(bucketTasks)
		for _, k := range keys {
			id := idem.Get(idemBoltKey(k.Tenant, k.Key))
			if id == nil {
				continue
			}
			v := byID.Get(id)
			if v == nil {
				continue // pruned
			}
			t, err := decodeTask(v)
			if err != nil {
				return err
			}
			out[k] = t
		}
		return nil
	})
	return out, err
}

// List implements Store: it walks the created index backwards, or the tenant's
// part of the tenant index when f names a tenant, reading a task only when the
// index value matches f's status and agent; at most MaxListScan entries per call.
func (b *Bolt) List(_ context.Context, f Filter, cursor string, limit int) ([]*task.Task, string, error) {
	var out []*task.Task
	next := ""
	err := b.db.View(func(tx *bolt.Tx) error {
		byID := tx.Bucket(bucketTasks)
		idx, prefix := tx.Bucket(bucketCreated), []byte(nil)
		if f.Tenant != "" {
			idx, prefix = tx.Bucket(bucketTenantIdx), append([]byte(f.Tenant), 0)
		}
		c := idx.Cursor()
		// start: the first key after the range to list (the tenant's range, or the
		// cursor's position); the walk begins just before it.
		var start []byte
		if cursor != "" {
			pos, err := boltCursorPos(byID, cursor)
			if err != nil {
				return err
			}
			start = append(bytes.Clone(prefix), pos...)
		} else if prefix != nil {
			start = append([]byte(f.Tenant), 1)
		}
		var k, v []byte
		if start == nil {
			k, v = c.Last()
		} else if k, _ = c.Seek(start); k == nil {
			k, v = c.Last()
		} else {
			k, v = c.Prev()
		}
		var last []byte // position of the last entry examined
		for scanned := 0; k != nil && bytes.HasPrefix(k, prefix); k, v = c.Prev() {
			if scanned == MaxListScan && last != nil {
				next = cursorOfKey(last) // the next call goes on just before it
				return nil
			}
			scanned++
			pos := k[len(prefix):]
			if len(pos) < 8 {
				continue
			}
			last = pos
			if !indexMayMatch(v, f) {
				continue
			}
			rec := byID.Get(pos[8:])
			if rec == nil {
				continue
			}
			t, err := decodeTask(rec)
			if err != nil {
				return err
			}
			if !matches(t, f) {
				continue
			}
			if len(out) == limit {
				next = createdMember(out[len(out)-1])
				return nil
			}
			out = append(out, t)
		}
		return nil
	})
	if err != nil {
		return nil, "", err
	}
	return out, next, nil
}

// boltCursorPos returns the created-index position (8-byte ns + id) of a cursor.
func boltCursorPos(byID *bolt.Bucket, cursor string) ([]byte, error) {
	if ns, id, ok := parseCursor(cursor); ok {
		return boltCursorKey(ns, id), nil
	}
	v := byID.Get([]byte(cursor)) // a bare task id (earlier versions' cursor)
	if v == nil {
		return nil, ErrBadCursor
	}
	ct, err := decodeTask(v)
	if err != nil {
		return nil, err
	}
	return timeKey(ct.CreatedAt, ct.ID), nil
}

// Unfinished implements Store.
func (b *Bolt) Unfinished(context.Context) ([]*task.Task, error) {
	var out []*task.Task
	err := b.db.View(func(tx *bolt.Tx) error {
		byID := tx.Bucket(bucketTasks)
		return tx.Bucket(bucketUnfinished).ForEach(func(id, _ []byte) error {
			v := byID.Get(id)
			if v == nil {
				return nil
			}
			t, err := decodeTask(v)
			if err != nil {
				return err
			}
			out = append(out, t)
			return nil
		})
	})
	return out, err
}

// PruneFinished implements Store: one transaction deletes the batch.
func (b *Bolt) PruneFinished(_ context.Context, before time.Time, limit int) (int, error) {
	n := 0
	err := b.db.Update(func(tx *bolt.Tx) error {
		byID, created, idem := tx.Bucket(bucketTasks), tx.Bucket(bucketCreated), tx.Bucket(bucketIdem)
		fin := tx.Bucket(bucketFinished)
		end := timeKey(before, "")
		wfOpen := tx.Bucket(bucketWfOpen)
		// Collect first: bbolt cursors must not walk a bucket being modified. Step
		// tasks of open workflows stay indexed and are passed over, not counted.
		type entry struct {
			key []byte
			t   *task.Task
		}
		var doomed []entry
		var stale [][]byte
		c := fin.Cursor()
		for k, _ := c.First(); k != nil && bytes.Compare(k[:8], end) < 0 && len(doomed) < limit; k, _ = c.Next() {
			v := byID.Get(k[8:])
			if v == nil {
				stale = append(stale, bytes.Clone(k))
				continue
			}
			t, err := decodeTask(v)
			if err != nil {
				return err
			}
			switch {
			case !t.Status.Finished():
				stale = append(stale, bytes.Clone(k)) // defensive: never prune live work
			case t.WorkflowID != "" && has(wfOpen, []byte(t.WorkflowID)):
				// its workflow may still read the result when it resumes
			default:
				doomed = append(doomed, entry{bytes.Clone(k), t})
			}
		}
		for _, k := range stale {
			if err := fin.Delete(k); err != nil {
				return err
			}
		}
		for _, d := range doomed {
			t, id := d.t, []byte(d.t.ID)
			if err := fin.Delete(d.key); err != nil {
				return err
			}
			if err := created.Delete(timeKey(t.CreatedAt, t.ID)); err != nil {
				return err
			}
			if err := tx.Bucket(bucketTenantIdx).Delete(tenantTimeKey(t.Tenant, t.CreatedAt, t.ID)); err != nil {
				return err
			}
			if t.IdempotencyKey != "" {
				ik := idemBoltKey(t.Tenant, t.IdempotencyKey)
				if bytes.Equal(idem.Get(ik), id) {
					if err := idem.Delete(ik); err != nil {
						return err
					}
				}
			}
			if err := byID.Delete(id); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	return n, err
}

// has reports whether the bucket holds key. (Get cannot tell: a key put with a nil
// value reads back as nil inside the transaction that wrote it.)
func has(b *bolt.Bucket, key []byte) bool {
	k, _ := b.Cursor().Seek(key)
	return bytes.Equal(k, key)
}

// PutAgents implements Store.
func (b *Bolt) PutAgents(_ context.Context, agents ...task.AgentInfo) error {
	if len(agents) == 0 {
		return nil
	}
	return b.db.Update(func(tx *bolt.Tx) error {
		bk := tx.Bucket(bucketAgents)
		for _, a := range agents {
			if err := bk.Put([]byte(a.Name), encodeAgent(a)); err != nil {
				return err
			}
		}
		return nil
	})
}

// Agents implements Store; bbolt keeps keys sorted, so they come sorted by name.
func (b *Bolt) Agents(context.Context) ([]task.AgentInfo, error) {
	var out []task.AgentInfo
	err := b.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketAgents).ForEach(func(_, v []byte) error {
			a, err := decodeAgent(v)
			if err != nil {
				return err
			}
			out = append(out, a)
			return nil
		})
	})
	return out, err
}

// Ping implements Store: it fails once the file is closed.
func (b *Bolt) Ping(context.Context) error {
	return b.db.View(func(*bolt.Tx) error { return nil })
}

// Close implements Store.
func (b *Bolt) Close() error {
	if err := b.db.Close(); err != nil && !errors.Is(err, berrors.ErrDatabaseNotOpen) {
		return err
	}
	return nil
}
