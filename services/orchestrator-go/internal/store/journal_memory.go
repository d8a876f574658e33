package store

import (
	"context"
	"slices"
	"sync"

	"github.com/taskloom/taskloom/services/orchestrator-go/internal/task"
)

// memoryJournals is the Memory store's Journals: records by task, then by seq.
type memoryJournals struct {
	jmu      sync.Mutex
	journals map[string]map[int64]task.JournalRecord
}

// AppendJournal implements Journals.
func (m *memoryJournals) AppendJournal(_ context.Context, records ...task.JournalRecord) error {
	m.jmu.Lock()
	defer m.jmu.Unlock()
	if m.journals == nil {
		m.journals = map[string]map[int64]task.JournalRecord{}
	}
	for _, r := range records {
		byseq := m.journals[r.TaskID]
		if byseq == nil {
			byseq = map[int64]task.JournalRecord{}
			m.journals[r.TaskID] = byseq
		}
		r.Payload = slices.Clone(r.Payload)
		byseq[r.Seq] = r
	}
	return nil
}

// Journal implements Journals.
func (m *memoryJournals) Journal(_ context.Context, taskID string) ([]task.JournalRecord, error) {
	m.jmu.Lock()
	defer m.jmu.Unlock()
	var out []task.JournalRecord
	for _, r := range m.journals[taskID] {
		r.Payload = slices.Clone(r.Payload)
		out = append(out, r)
	}
	sortJournal(out)
	return out, nil
}

// deleteJournal drops a pruned task's journal.
func (m *memoryJournals) deleteJournal(taskID string) {
	m.jmu.Lock()
	defer m.jmu.Unlock()
	delete(m.journals, taskID)
}
