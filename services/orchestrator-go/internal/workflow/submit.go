package workflow

// Submitting a workflow: validation, the tenant's idempotency key, the first write.

import (
	"context"
	"errors"
	"fmt"

	"github.com/taskloom/taskloom/services/orchestrator-go/internal/errs"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/store"
)

// Submit validates, stores and starts a workflow. A tenant's idempotency key
// already used returns the workflow it created, with existing=true.
func (e *Engine) Submit(ctx context.Context, spec Spec) (*Workflow, bool, error) {
	spec = (&Workflow{Spec: spec}).Clone().Spec
	fp := spec.Fingerprint()
	applyDefaults(&spec)
	p, err := validate(&spec, e.catalog)
	if err != nil {
		return nil, false, err
	}
	e.mu.Lock()
	started := e.started
	e.mu.Unlock()
	if !started {
		return nil, false, errNotStarted
	}

	unlock := func() {}
	if spec.IdempotencyKey != "" {
		e.submitMu.Lock()
		unlock = e.submitMu.Unlock
		sw, err := e.store.FindWorkflowByIdempotencyKey(ctx, spec.Tenant, spec.IdempotencyKey)
		if err == nil {
			unlock()
			wf, err := e.Get(ctx, sw.ID)
			if err != nil {
				return nil, false, err
			}
			if !wf.Fingerprint.IsZero() && wf.Fingerprint != fp {
				return nil, false, &errs.Error{
					Kind: errs.KindAlreadyExists, Reason: errs.ReasonIdempotencyConflict,
					Message: fmt.Sprintf("idempotency key %q already named workflow %s, submitted with a different request; "+
						"resend that request to get the workflow, or use a new key", errs.Clip(spec.IdempotencyKey), wf.ID),
					Metadata: map[string]string{"existing_id": wf.ID},
				}
			}
			return wf, true, nil
		}
		if !errors.Is(err, store.ErrNotFound) {
			unlock()
			return nil, false, fmt.Errorf("look up workflow idempotency key: %w", err)
		}
	}
	wf := &Workflow{
		Format: currentFormat, ID: e.newID(), Spec: spec, Status: StatusRunning,
		Steps: make([]StepState, len(spec.Steps)), CreatedAt: e.now(), Fingerprint: fp,
	}
	for i, s := range spec.Steps {
		wf.Steps[i].StepID = s.ID
	}
	if err := e.write(ctx, wf); err != nil {
		unlock()
		return nil, false, err
	}
	r := newRun(wf, p)
	e.mu.Lock()
	e.runs[wf.ID] = r
	e.mu.Unlock()
	unlock()
	e.metrics.Started.WithLabelValues(spec.Mode.String()).Inc()
	e.metrics.Running.Inc()
	e.log.Info("workflow submitted", "workflow_id", wf.ID, "tenant", spec.Tenant, "mode", spec.Mode.String(), "steps", len(spec.Steps))

	// The workflow is stored: from here on, failures to start steps are retried.
	ctx = context.WithoutCancel(ctx)
	r.mu.Lock()
	defer r.mu.Unlock()
	e.advance(ctx, r)
	e.flush(ctx, r)
	return r.wf.Clone(), false, nil
}
