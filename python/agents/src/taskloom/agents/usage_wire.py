"""A task's usage and cost in the wire format (`TokenUsage`) that its result carries to the
orchestrator, which adds the per-model lines into its usage rollups."""

from __future__ import annotations

from taskloom.agents.cost import TaskUsage
from taskloom.v1 import common_pb2


def token_usage(
    ledger: TaskUsage | None, prompt_tokens: int, completion_tokens: int, cached_completions: int
) -> common_pb2.TokenUsage:
    """The totals (handed-off tasks' tokens included) and this task's own lines."""
    usage = common_pb2.TokenUsage(
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        cached_completions=cached_completions,
    )
    if ledger is None:
        return usage
    usage.cost_nano_usd = ledger.cost_nano_usd
    usage.saved_tokens = ledger.saved_tokens
    usage.saved_cost_nano_usd = ledger.saved_cost_nano_usd
    for line in ledger.lines.values():
        usage.models.add(
            endpoint=line.endpoint,
            model=line.model,
            calls=line.calls,
            prompt_tokens=line.prompt_tokens,
            completion_tokens=line.completion_tokens,
            cost_nano_usd=line.cost_nano_usd,
            priced=line.priced,
            saved_prompt_tokens=line.saved_prompt_tokens,
            saved_completion_tokens=line.saved_completion_tokens,
            saved_cost_nano_usd=line.saved_cost_nano_usd,
        )
    return usage
