package api

import (
	"strings"
	"testing"

	pb "github.com/taskloom/taskloom/services/orchestrator-go/gen/taskloom/v1"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/errs"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/task"
)

// The domain status values are cast to the proto enum; this keeps them in step.
func TestStatusValuesMatchProto(t *testing.T) {
	for s := task.StatusUnspecified; s <= task.StatusTimedOut; s++ {
		want := "TASK_STATUS_" + strings.ToUpper(s.String())
		if got := pb.TaskStatus(s).String(); got != want {
			t.Errorf("status %d: proto %s, domain %s", s, got, want)
		}
	}
}

func TestReasonsRoundTrip(t *testing.T) {
	for _, r := range []errs.Reason{errs.ReasonAgentError, errs.ReasonLeaseLost, errs.ReasonDeadlineExceeded, errs.ReasonCancelled} {
		p := failureToProto(&task.Failure{Reason: r})
		if p.GetReason() == pb.ErrorReason_ERROR_REASON_UNSPECIFIED || failureFromProto(p).Reason != r {
			t.Errorf("reason %s does not round-trip (%v)", r, p.GetReason())
		}
	}
}
