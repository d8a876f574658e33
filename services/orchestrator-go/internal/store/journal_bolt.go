package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/taskloom/taskloom/services/orchestrator-go/internal/task"
)

// bucketJournal holds every task's journal: task id 0x00 seq (8 bytes, big-endian)
// -> record value, so one task's records are one ordered key range.
var bucketJournal = []byte("journal")

func journalPrefix(taskID string) []byte { return append([]byte(taskID), 0) }

func journalBoltKey(taskID string, seq int64) []byte {
	return binary.BigEndian.AppendUint64(journalPrefix(taskID), uint64(seq))
}

// AppendJournal implements Journals.
func (b *Bolt) AppendJournal(_ context.Context, records ...task.JournalRecord) error {
	if len(records) == 0 {
		return nil
	}
	return b.db.Update(func(tx *bolt.Tx) error {
		bk, err := tx.CreateBucketIfNotExists(bucketJournal)
		if err != nil {
			return err
		}
		for _, r := range records {
			if err := bk.Put(journalBoltKey(r.TaskID, r.Seq), encodeJournalValue(r)); err != nil {
				return fmt.Errorf("bolt append journal: %w", err)
			}
		}
		return nil
	})
}

// Journal implements Journals.
func (b *Bolt) Journal(_ context.Context, taskID string) ([]task.JournalRecord, error) {
	var out []task.JournalRecord
	err := b.db.View(func(tx *bolt.Tx) error {
		bk := tx.Bucket(bucketJournal)
		if bk == nil {
			return nil
		}
		prefix := journalPrefix(taskID)
		c := bk.Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			if len(k) != len(prefix)+8 {
				continue // another task's id that starts with this one and a 0 byte
			}
			rec, err := decodeJournalValue(taskID, int64(binary.BigEndian.Uint64(k[len(prefix):])), v)
			if err != nil {
				return err
			}
			out = append(out, rec)
		}
		return nil
	})
	return out, err
}

// deleteJournal drops a pruned task's journal inside the pruning transaction.
func deleteJournal(tx *bolt.Tx, taskID string) error {
	bk := tx.Bucket(bucketJournal)
	if bk == nil {
		return nil
	}
	prefix := journalPrefix(taskID)
	var keys [][]byte // bbolt cursors must not walk a bucket being modified
	c := bk.Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		if len(k) == len(prefix)+8 {
			keys = append(keys, bytes.Clone(k))
		}
	}
	for _, k := range keys {
		if err := bk.Delete(k); err != nil {
			return err
		}
	}
	return nil
}
