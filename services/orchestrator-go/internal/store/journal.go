package store

// Task journals: the completed steps of a task's agent loop (task.JournalRecord),
// kept with the task and deleted with it by retention. Records are appended through
// the Committer, group-committed like task writes; a task's attempts read them back
// when the orchestrator restarts (Recover).

import (
	"cmp"
	"context"
	"encoding/binary"
	"fmt"
	"slices"

	"github.com/taskloom/taskloom/services/orchestrator-go/internal/task"
)

// Journals keeps tasks' journals; every Store implements it.
type Journals interface {
	// AppendJournal stores the records durably, all or none. A record whose task and
	// seq are stored already replaces it (a retried write).
	AppendJournal(ctx context.Context, records ...task.JournalRecord) error
	// Journal returns the task's records in seq order (nil when it has none).
	Journal(ctx context.Context, taskID string) ([]task.JournalRecord, error)
}

// A stored record is its kind as a uvarint, then its payload; the task id and seq are
// its key.
func encodeJournalValue(r task.JournalRecord) []byte {
	b := make([]byte, 0, binary.MaxVarintLen32+len(r.Payload))
	b = binary.AppendUvarint(b, uint64(r.Kind))
	return append(b, r.Payload...)
}

func decodeJournalValue(taskID string, seq int64, v []byte) (task.JournalRecord, error) {
	kind, n := binary.Uvarint(v)
	if n <= 0 {
		return task.JournalRecord{}, fmt.Errorf("%w: journal record %s/%d", errCorrupt, taskID, seq)
	}
	return task.JournalRecord{TaskID: taskID, Seq: seq, Kind: int32(kind), Payload: slices.Clone(v[n:])}, nil
}

func sortJournal(records []task.JournalRecord) {
	slices.SortFunc(records, func(a, b task.JournalRecord) int { return cmp.Compare(a.Seq, b.Seq) })
}
