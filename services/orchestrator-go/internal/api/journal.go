package api

// Journal records between the WorkerHub stream and the domain (task.JournalRecord).

import (
	pb "github.com/taskloom/taskloom/services/orchestrator-go/gen/taskloom/v1"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/task"
)

func journalFromProto(r *pb.JournalRecord) task.JournalRecord {
	return task.JournalRecord{TaskID: r.GetTaskId(), Seq: r.GetSeq(), Kind: int32(r.GetKind()), Payload: r.GetPayload()}
}

// journalToProto is an assignment's journal; its records carry the new attempt's lease.
func journalToProto(records []task.JournalRecord, leaseID string) []*pb.JournalRecord {
	if len(records) == 0 {
		return nil
	}
	out := make([]*pb.JournalRecord, len(records))
	for i, r := range records {
		out[i] = &pb.JournalRecord{TaskId: r.TaskID, LeaseId: leaseID, Seq: r.Seq, Kind: pb.JournalKind(r.Kind), Payload: r.Payload}
	}
	return out
}
