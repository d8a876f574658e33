package task

// JournalRecord is one completed step of a task's agent loop (taskloom.v1.JournalRecord):
// an LLM turn or a tool result, which a later attempt of the task replays instead of
// paying for it again. The orchestrator keeps Payload as the worker sent it.
type JournalRecord struct {
	TaskID string
	// Seq is the record's position in the task's journal, from 0, across attempts.
	Seq     int64
	Kind    int32 // taskloom.v1.JournalKind
	Payload []byte
}
