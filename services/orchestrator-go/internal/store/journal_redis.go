package store

import (
	"context"
	"fmt"
	"strconv"

	"github.com/redis/go-redis/v9"

	"github.com/taskloom/taskloom/services/orchestrator-go/internal/task"
)

// A task's journal in Redis is one hash, journal:<task id>, of seq -> record value.

func (r *Redis) journalKey(taskID string) string { return r.key("journal:", taskID) }

// AppendJournal implements Journals.
func (r *Redis) AppendJournal(ctx context.Context, records ...task.JournalRecord) error {
	if len(records) == 0 {
		return nil
	}
	_, err := r.c.TxPipelined(ctx, func(p redis.Pipeliner) error {
		for _, rec := range records {
			p.HSet(ctx, r.journalKey(rec.TaskID), strconv.FormatInt(rec.Seq, 10), encodeJournalValue(rec))
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("redis append journal: %w", err)
	}
	return nil
}

// Journal implements Journals.
func (r *Redis) Journal(ctx context.Context, taskID string) ([]task.JournalRecord, error) {
	fields, err := r.c.HGetAll(ctx, r.journalKey(taskID)).Result()
	if err != nil {
		return nil, fmt.Errorf("redis journal: %w", err)
	}
	var out []task.JournalRecord
	for f, v := range fields {
		seq, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%w: journal field %q of task %s", errCorrupt, f, taskID)
		}
		rec, err := decodeJournalValue(taskID, seq, []byte(v))
		if err != nil {
			return nil, err
		}
		out = append(out, rec)
	}
	sortJournal(out)
	return out, nil
}
