package workflow

import (
	"encoding/json"
	"maps"
	"slices"
	"time"

	"github.com/taskloom/taskloom/services/orchestrator-go/internal/task"
)

// Mode says in which order steps run; the values match taskloom.v1.WorkflowMode.
type Mode int

// Workflow modes.
const (
	ModeUnspecified Mode = iota
	ModeSequential
	ModeParallel
	ModeDAG
)

func (m Mode) String() string {
	switch m {
	case ModeSequential:
		return "sequential"
	case ModeParallel:
		return "parallel"
	case ModeDAG:
		return "dag"
	}
	return "unspecified"
}

// FailurePolicy says what a failed step does to the rest; values match
// taskloom.v1.FailurePolicy.
type FailurePolicy int

// Failure policies; unspecified means FailFast.
const (
	PolicyUnspecified FailurePolicy = iota
	PolicyFailFast
	PolicyContinue
)

// Status is a workflow's lifecycle status; values match taskloom.v1.WorkflowStatus.
type Status int

// Workflow statuses.
const (
	StatusUnspecified Status = iota
	StatusRunning
	StatusSucceeded
	StatusFailed
	StatusCancelled
	StatusTimedOut
)

// Finished reports whether the status is terminal.
func (s Status) Finished() bool { return s >= StatusSucceeded }

func (s Status) String() string {
	switch s {
	case StatusRunning:
		return "running"
	case StatusSucceeded:
		return "succeeded"
	case StatusFailed:
		return "failed"
	case StatusCancelled:
		return "cancelled"
	case StatusTimedOut:
		return "timed_out"
	}
	return "unspecified"
}

// Step is one node of a workflow. Input holds JSON whose strings may be templates.
type Step struct {
	ID             string
	Agent          string
	Input          json.RawMessage
	DependsOn      []string
	MapOver        string
	ExitIf         string
	MaxAttempts    int32
	InitialBackoff time.Duration
	MaxBackoff     time.Duration
	Timeout        time.Duration
	Priority       int32
}

// Spec is what a client submits.
type Spec struct {
	Name           string
	Mode           Mode
	Steps          []Step
	Input          json.RawMessage
	FailurePolicy  FailurePolicy
	Tenant         string
	IdempotencyKey string
	Labels         map[string]string
}

// StepState is where one step is. Status is StatusUnspecified while the step waits
// for its upstream steps, then follows the task statuses (running, then terminal).
type StepState struct {
	StepID     string
	Status     task.Status
	TaskIDs    []string
	Output     json.RawMessage
	Failure    *task.Failure
	StartedAt  time.Time
	FinishedAt time.Time
	// Skipped: never run because an upstream step did not succeed (CONTINUE policy).
	Skipped bool
}

// Workflow is a submitted workflow and its state; it is also the persisted form
// (JSON, read back by decodeWorkflow).
type Workflow struct {
	// Format is the version of the persisted form: 0 before step priorities had
	// presence (a step priority of 0 then meant the default), 2 since.
	Format       int
	ID           string
	Spec         Spec
	Status       Status
	Steps        []StepState
	Output       json.RawMessage
	Failure      *task.Failure
	CreatedAt    time.Time
	FinishedAt   time.Time
	ExitedAtStep string
	// Fingerprint identifies the submitted spec (Spec.Fingerprint), so that its
	// idempotency key's reuse with another request is told from a retry.
	Fingerprint task.Fingerprint
}

// currentFormat is the Format of the workflows written now.
const currentFormat = 2

// decodeWorkflow reads a stored workflow, bringing older formats up to date.
func decodeWorkflow(state []byte) (*Workflow, error) {
	wf := &Workflow{}
	if err := json.Unmarshal(state, wf); err != nil {
		return nil, err
	}
	if wf.Format < currentFormat {
		for i := range wf.Spec.Steps {
			if wf.Spec.Steps[i].Priority == 0 {
				wf.Spec.Steps[i].Priority = defaultPriority
			}
		}
		wf.Format = currentFormat
	}
	return wf, nil
}

// Fingerprint digests what the client asked for: every field of the spec but its
// identity (tenant and idempotency key) and the traceparent label.
func (s *Spec) Fingerprint() task.Fingerprint {
	f := task.NewFingerprinter()
	f.String(s.Name)
	f.Int(int64(s.Mode))
	f.JSON(s.Input)
	f.Int(int64(s.FailurePolicy))
	f.Labels(s.Labels)
	f.Int(int64(len(s.Steps)))
	for _, st := range s.Steps {
		f.String(st.ID)
		f.String(st.Agent)
		f.JSON(st.Input)
		f.Int(int64(len(st.DependsOn)))
		for _, d := range st.DependsOn {
			f.String(d)
		}
		f.String(st.MapOver)
		f.String(st.ExitIf)
		f.Int(int64(st.MaxAttempts))
		f.Int(int64(st.InitialBackoff))
		f.Int(int64(st.MaxBackoff))
		f.Int(int64(st.Timeout))
		f.Int(int64(st.Priority))
	}
	return f.Sum()
}

// Clone returns a deep copy.
func (w *Workflow) Clone() *Workflow {
	if w == nil {
		return nil
	}
	c := *w
	c.Spec.Input = slices.Clone(w.Spec.Input)
	c.Spec.Labels = maps.Clone(w.Spec.Labels)
	c.Spec.Steps = make([]Step, len(w.Spec.Steps))
	for i, s := range w.Spec.Steps {
		s.Input = slices.Clone(s.Input)
		s.DependsOn = slices.Clone(s.DependsOn)
		c.Spec.Steps[i] = s
	}
	c.Steps = make([]StepState, len(w.Steps))
	for i, s := range w.Steps {
		s.TaskIDs = slices.Clone(s.TaskIDs)
		s.Output = slices.Clone(s.Output)
		s.Failure = cloneFailure(s.Failure)
		c.Steps[i] = s
	}
	c.Output = slices.Clone(w.Output)
	c.Failure = cloneFailure(w.Failure)
	return &c
}

func cloneFailure(f *task.Failure) *task.Failure {
	if f == nil {
		return nil
	}
	c := *f
	return &c
}
