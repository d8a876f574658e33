// Package workflow is the orchestrator's workflow engine: it validates a workflow
// spec, runs its steps as scheduler tasks, threads outputs between them through
// templates, persists its state after every change and resumes unfinished
// workflows after a restart. It knows nothing of protobuf; internal/api translates.
//
// Semantics:
//
//   - Modes. SEQUENTIAL runs the steps one after another in the order given (each
//     step implicitly depends on the previous one); PARALLEL starts every step at
//     once; DAG starts a step once every step in its depends_on has succeeded. An
//     unspecified mode is DAG when any step has depends_on, else SEQUENTIAL;
//     depends_on is rejected in the other modes.
//   - Validation at submit (nothing is stored on failure): at least one step; step
//     ids non-empty, unique, made of letters, digits, '_' and '-'; depends_on names
//     known steps (UNKNOWN_STEP) and forms no cycle (WORKFLOW_CYCLE, the message and
//     the "cycle" metadata name it: "a -> b -> c -> a"); every agent is known
//     (AGENT_NOT_FOUND); templates parse, `steps.X` names a step upstream of the
//     one using it, `item`/`index` appear only in a map step's input and `output`
//     only in exit_if.
//   - Templates (template.go). Strings in a step's input may hold
//     `{{ input.x.y }}`, `{{ steps.ID.output.y }}`, `{{ item }}`, `{{ item.z }}` and
//     `{{ index }}`; numeric segments index lists (`steps.a.output.0`). A string that
//     is exactly one template takes the referenced JSON value, of any type; inside a
//     longer string a template is replaced by its text (strings as they are, other
//     values as JSON). A missing path fails the step with a message naming it.
//   - Map steps. map_over is one template naming a list; the step runs one task per
//     element (item and index bound), and its output is the list of the tasks'
//     outputs in order. An empty list succeeds at once with []. Under FAIL_FAST the
//     first failed element fails the step and cancels its other elements; under
//     CONTINUE the step waits for every element and fails if any failed.
//   - exit_if (condition.go): `{{ output.done }} == true`, `{{ output.label }} != "spam"`,
//     `{{ output.ok }}` (truthy: not false, null, 0, "", [] or {}) or `!{{ output.ok }}`.
//     Operands are one template or a JSON literal; a missing path reads as null. When
//     the condition holds after the step succeeds, the workflow SUCCEEDS with that
//     step's output, exited_at_step set, and every other pending or running step is
//     cancelled.
//   - Step tasks take the step's agent, retry policy, timeout and priority, and the
//     workflow's tenant and labels; their idempotency key is derived from
//     (workflow id, step id, element index), so a submission repeated after a crash
//     returns the task already created instead of a duplicate.
//   - Failure policy. FAIL_FAST (default): the first failed step fails the workflow
//     and cancels every other running step. CONTINUE: steps that do not depend on
//     the failed step go on; its dependents end CANCELLED with "skipped: upstream X
//     failed"; once nothing more can run the workflow ends FAILED, its error naming
//     the first step that failed.
//   - Output. SEQUENTIAL: the last step's output; PARALLEL and DAG: an object
//     {step_id: output} of the sink steps (those no step depends on) that succeeded;
//     an early exit: the exiting step's output.
//   - Cancel cancels the running step tasks through the scheduler and ends the
//     workflow CANCELLED; cancelling a finished workflow returns it unchanged. An
//     idempotency key per tenant returns the workflow first submitted with it.
//   - Durability. The whole Workflow (spec and step states) is written to the store
//     twice: when it is submitted (before Submit returns) and when it finishes.
//     In between, its progress is durable in the task store: each step task is
//     durable before it runs and its result before the engine hears of it, and a
//     step's task keys are derived from the workflow, so the step states need not
//     be written (that would cost a disk flush per step). At start the engine
//     loads every unfinished workflow and runs it again from its stored state:
//     each step is submitted again under the same idempotency keys, which return
//     the tasks that exist (finished ones are applied at once, with the step's
//     original start and end times; running ones are followed), so no step task
//     is created twice and only what is missing is submitted. Templates and
//     exit_if read only the recorded outputs, so the replay takes the same path.
//     A stored step in RUNNING (written by an older version) has its tasks read
//     by id; one whose task cannot be read goes back to pending and is submitted
//     again the same way. A step whose tasks cannot be submitted (no worker has
//     registered its agent since the restart, queue full) stays pending and is
//     retried every RetryInterval. Retention never prunes a finished step task
//     while its workflow is not done; done workflows are pruned by the same
//     retention (store.Pruner).
//   - Watching (watch.go). A watcher gets the workflow status first, then every event
//     of every step task (with its step id), then one last event with done=true and
//     the final workflow. Each run has one events.Feed: a started step's tasks are
//     attached to it (one hub subscription per task, however many watchers), and
//     a watcher holds one feed subscription and one goroutine, whatever the fan-out.
//     The engine never blocks on a watcher, nor does the hub: a watcher that falls
//     behind its bound resubscribes from its cursor and gets each task's current
//     status, the retained chunks it missed and every Done it has not seen (so
//     intermediate statuses may be skipped, never a Done). The final event waits
//     up to 5 s for the Done events of the tasks cancelled at the end.
//   - Finishing. The final state is written before the step tasks still running
//     are cancelled and the run is forgotten; if that write fails, the run stays
//     in memory (Get serves the finished state) and the loop retries the write;
//     Cancel then returns UNAVAILABLE (retry it to confirm). At start, step tasks
//     still unfinished whose workflow is done (a crash between the final write
//     and their cancellation) or pruned are cancelled.
//   - A store that hangs. Every scheduler or store call made while holding a
//     workflow is bounded by StoreTimeout: a step whose submission is not
//     confirmed in time stays pending and is retried (the same keys return the
//     tasks already created). Get, Cancel and Watch give up (UNAVAILABLE) when
//     their context ends while another call holds the workflow. Stop waits (up to
//     5 s) for step results being applied and ignores later ones.
package workflow
