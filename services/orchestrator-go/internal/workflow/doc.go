// Package workflow is the orchestrator's workflow engine: it validates a workflow
// spec, runs its steps as scheduler tasks, threads outputs between them through
// templates, persists each workflow when it is submitted and when it finishes, and
// resumes unfinished workflows after a restart. It knows nothing of protobuf;
// internal/api translates. What users may rely on (modes, validation, templates,
// map steps, exit_if, failure policies, durability, watching) is written down in
// docs/workflows.md.
package workflow
