package scheduler

// Task journals (taskloom.v1.JournalRecord): the completed LLM turns and tool results
// of a task's attempts. The scheduler keeps a live task's journal in memory and writes
// each record through the committer (group-committed, nobody waits); a later attempt
// of the task gets the journal with its assignment and replays it instead of paying
// for those steps again. A journal is bounded (the limits declared on
// Assignment.journal): past them nothing more is recorded for the task, with a log
// line and taskloom_orchestrator_journal_full_total, and its attempts run the rest live.

import (
	"context"
	"fmt"

	pb "github.com/taskloom/taskloom/services/orchestrator-go/gen/taskloom/v1"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/limits"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/task"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/workers"
)

// The bounds of one task's journal, as the contract declares them.
var (
	journalMaxRecords = int(limits.Field(&pb.Assignment{}, "journal").GetMaxItems())
	journalMaxBytes   = int(limits.Field(&pb.Assignment{}, "journal").GetMaxBytes())
)

// taskJournal is a live task's journal: its records in seq order (seq = index).
// Records are only appended, so an assignment may share the slice.
type taskJournal struct {
	records []task.JournalRecord
	bytes   int  // payload bytes of records
	full    bool // a record did not fit: nothing more is recorded
}

// Journal records a completed step of the attempt holding leaseID. A record from a
// stale lease, one already recorded (seq below the journal's length) or one out of
// order is ignored.
func (s *Scheduler) Journal(w *workers.Worker, leaseID string, r task.JournalRecord) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.currentLeaseLocked(w, r.TaskID, leaseID, "journal") == nil {
		return
	}
	e := s.live[r.TaskID]
	if e == nil || e.finishing {
		return
	}
	j := &e.journal
	if j.full || r.Seq < int64(len(j.records)) {
		return
	}
	if r.Seq > int64(len(j.records)) {
		s.log.Warn("journal record out of order; ignored", "task_id", r.TaskID, "seq", r.Seq, "expected", len(j.records))
		return
	}
	if len(j.records) >= journalMaxRecords || j.bytes+len(r.Payload) > journalMaxBytes {
		j.full = true
		s.metrics.JournalFull.Inc()
		s.log.Warn("task journal full: later steps of the task are not recorded and run again on a retry",
			"task_id", r.TaskID, "records", len(j.records), "bytes", j.bytes,
			"max_records", journalMaxRecords, "max_bytes", journalMaxBytes)
		return
	}
	j.records = append(j.records, r)
	j.bytes += len(r.Payload)
	s.commit.WriteJournal(r)
	s.metrics.JournalRecords.Inc()
}

// loadJournals reads, for Recover, the journals of the tasks that may have run: those
// with an attempt (or running) as stored.
func (s *Scheduler) loadJournals(ctx context.Context, tasks []*task.Task) (map[string]taskJournal, error) {
	out := map[string]taskJournal{}
	for _, t := range tasks {
		if t.Attempts == 0 && t.Status != task.StatusRunning {
			continue
		}
		records, err := s.store.Journal(ctx, t.ID)
		if err != nil {
			return nil, fmt.Errorf("load the journal of task %s: %w", t.ID, err)
		}
		var j taskJournal
		for i, r := range records {
			if r.Seq != int64(i) { // a gap: only the part before it replays in order
				break
			}
			j.records = append(j.records, r)
			j.bytes += len(r.Payload)
		}
		if len(j.records) > 0 {
			out[t.ID] = j
		}
	}
	return out, nil
}
