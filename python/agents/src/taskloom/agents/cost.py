"""Cost accounting: the tokens each task spends, and what the LLM cache saved it, by
endpoint and model, priced from the endpoints' configured prices (USD per million tokens).

A task's ledger (`TaskUsage`) lives in a context variable for the length of the agent run,
so the endpoint that makes a call and the runtime that answers from the cache both add to
it without passing it around. The ledger goes out in the task's result (and from there into
the orchestrator's usage rollups); every addition also counts in the worker's metrics by
tenant, agent, endpoint and model. A model without a price costs nothing in the sums and is
listed as unpriced, never guessed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Protocol

from taskloom.agents.endpoints import Endpoint, Price

NANO = 1e-9


@dataclass
class UsageLine:
    """One endpoint and model's share of a task."""

    endpoint: str
    model: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_nano_usd: int = 0
    priced: bool = True
    calls: int = 0
    saved_prompt_tokens: int = 0
    saved_completion_tokens: int = 0
    saved_cost_nano_usd: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "endpoint": self.endpoint,
            "model": self.model,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "cost_usd": round(self.cost_nano_usd * NANO, 9) if self.priced else None,
            "saved_tokens": self.saved_prompt_tokens + self.saved_completion_tokens,
            "saved_cost_usd": round(self.saved_cost_nano_usd * NANO, 9) if self.priced else None,
        }


@dataclass
class TaskUsage:
    """One task's ledger."""

    tenant: str = ""
    agent: str = ""
    lines: dict[tuple[str, str], UsageLine] = field(default_factory=dict)

    def line(self, endpoint: str, model: str) -> UsageLine:
        key = (endpoint, model)
        if key not in self.lines:
            self.lines[key] = UsageLine(endpoint, model)
        return self.lines[key]

    @property
    def cost_nano_usd(self) -> int:
        return sum(line.cost_nano_usd for line in self.lines.values())

    @property
    def saved_cost_nano_usd(self) -> int:
        return sum(line.saved_cost_nano_usd for line in self.lines.values())

    @property
    def saved_tokens(self) -> int:
        return sum(
            line.saved_prompt_tokens + line.saved_completion_tokens for line in self.lines.values()
        )

    def unpriced(self) -> list[str]:
        return sorted(
            f"{line.endpoint}/{line.model}" for line in self.lines.values() if not line.priced
        )

    def summary(self) -> dict[str, Any]:
        """What the task's result shows beside its token counts."""
        out: dict[str, Any] = {
            "cost_usd": round(self.cost_nano_usd * NANO, 9),
            "saved_tokens": self.saved_tokens,
            "saved_cost_usd": round(self.saved_cost_nano_usd * NANO, 9),
            "models": [line.as_dict() for line in self.lines.values()],
        }
        if unpriced := self.unpriced():
            # Said plainly: these tokens are not in cost_usd.
            out["unpriced"] = unpriced
            out["cost_note"] = "no price is configured for " + ", ".join(unpriced)
        return out


_current: ContextVar[TaskUsage | None] = ContextVar("taskloom_task_usage", default=None)


def current() -> TaskUsage | None:
    return _current.get()


@contextlib.contextmanager
def task_usage(tenant: str, agent: str) -> Iterator[TaskUsage]:
    """A fresh ledger for the code run inside (one agent run)."""
    ledger = TaskUsage(tenant, agent)
    token = _current.set(ledger)
    try:
        yield ledger
    finally:
        _current.reset(token)


class UsageMetrics(Protocol):
    def llm_usage(
        self,
        labels: Mapping[str, str],
        prompt: int,
        completion: int,
        cost_usd: float | None,
    ) -> None: ...

    def llm_saved(
        self,
        labels: Mapping[str, str],
        prompt: int,
        completion: int,
        cost_usd: float | None,
    ) -> None: ...


class Accounting:
    """Prices usage and records it in the current task's ledger and in the metrics."""

    def __init__(self, endpoints: Mapping[str, Endpoint], metrics: UsageMetrics) -> None:
        self._endpoints = endpoints
        self._metrics = metrics

    def _price(self, endpoint: str, model: str) -> tuple[str, Price | None]:
        found = self._endpoints.get(endpoint)
        if found is None:
            return model, None
        return found.config.resolve_model(model), found.config.price(model)

    def _labels(self, endpoint: str, model: str) -> tuple[TaskUsage | None, dict[str, str]]:
        ledger = current()
        return ledger, {
            "tenant": ledger.tenant if ledger else "",
            "agent": ledger.agent if ledger else "",
            "endpoint": endpoint,
            "model": model,
        }

    def _record(
        self, endpoint: str, model: str, prompt: int, completion: int, *, saved: bool
    ) -> None:
        model, price = self._price(endpoint, model)
        cost = price.cost_nano_usd(prompt, completion) if price else 0
        ledger, labels = self._labels(endpoint, model)
        if ledger is not None:
            line = ledger.line(endpoint, model)
            line.priced = line.priced and price is not None
            if saved:
                line.saved_prompt_tokens += prompt
                line.saved_completion_tokens += completion
                line.saved_cost_nano_usd += cost
            else:
                line.calls += 1
                line.prompt_tokens += prompt
                line.completion_tokens += completion
                line.cost_nano_usd += cost
        record = self._metrics.llm_saved if saved else self._metrics.llm_usage
        record(labels, prompt, completion, cost * NANO if price else None)

    def spent(self, endpoint: str, model: str, prompt: int, completion: int) -> None:
        """One call's tokens (`model` as sent, an alias or a name)."""
        self._record(endpoint, model, prompt, completion, saved=False)

    def saved(self, endpoint: str, model: str, prompt: int, completion: int) -> None:
        """Tokens the LLM cache answered instead of the endpoint."""
        self._record(endpoint, model, prompt, completion, saved=True)
