"""Every metric of the agent worker, defined in this one file. Each event updates the
worker's own Prometheus series (served on its HTTP port) and is also batched to the
metrics service under the same name."""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

from taskloom.agents.metrics_reporter import MetricsReporter
from taskloom.sdk.metrics.agents import (
    LLM_BUCKETS,
    LLM_CACHE,
    LLM_CACHE_HELP,
    LLM_REQUEST_DURATION,
    LLM_REQUEST_DURATION_HELP,
    LLM_REQUESTS,
    LLM_REQUESTS_HELP,
    LLM_TOKENS,
    OUTCOME_ERROR,
    OUTCOME_OK,
    RESULT_HIT,
    RESULT_MISS,
    AgentMetrics,
)

TASKS = "taskloom_agent_tasks_total"
TASK_DURATION = "taskloom_agent_task_duration_seconds"
TASKS_RUNNING = "taskloom_agent_tasks_running"
LLM_COST = "taskloom_agent_llm_cost_usd_total"
LLM_UNPRICED = "taskloom_agent_llm_unpriced_tokens_total"
LLM_SAVED_TOKENS = "taskloom_agent_llm_cache_saved_tokens_total"
LLM_SAVED_COST = "taskloom_agent_llm_cache_saved_cost_usd_total"
LLM_CALLS = "taskloom_agent_llm_calls_total"
LLM_BREAKER = "taskloom_agent_llm_breaker_state"
SEMANTIC_CACHE = "taskloom_agent_semantic_cache_total"
SESSIONS = "taskloom_agent_sessions_total"
TOOL_CALLS = "taskloom_agent_tool_calls_total"
TOOL_DURATION = "taskloom_agent_tool_duration_seconds"
CATALOG_RELOADS = "taskloom_agent_catalog_reloads_total"

TASK_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
TOOL_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)

# The series this worker sends through its reporter. The requests, their latency and the
# cache lookups go through the SDK's AgentMetrics, which names them and gives their help.
_HELP = {
    TASKS: "Agent tasks finished, by agent and outcome (succeeded|failed|cancelled|timed_out).",
    TASK_DURATION: "Wall time of one task attempt on this worker.",
    TASKS_RUNNING: "Tasks running on this worker now.",
    # The SDK's name, with the worker's labels (tenant and endpoint too): its own help.
    LLM_TOKENS: "LLM tokens spent, by tenant, agent, endpoint, model and kind (prompt|completion).",
    LLM_COST: "USD spent on LLM calls with a configured price, by tenant, agent, endpoint, model.",
    LLM_UNPRICED: "LLM tokens spent on models without a configured price (not in the cost).",
    LLM_SAVED_TOKENS: "LLM tokens the cache answered instead of the endpoint, by kind.",
    LLM_SAVED_COST: "USD the LLM cache saved, at the configured prices.",
    LLM_CALLS: "LLM calls by endpoint and outcome (ok|error|rate_limited|breaker_open|fallback).",
    LLM_BREAKER: "Circuit breaker state per endpoint: 0 closed, 1 half-open, 2 open.",
    SEMANTIC_CACHE: "Semantic cache lookups after an exact miss, by result "
    "(hit|near_miss|miss; near_miss: similar, but under the threshold).",
    SESSIONS: "Sessions opened with the orchestrator, by outcome (registered|failed).",
    TOOL_CALLS: "Tool calls, by tool and outcome (ok|error|cached).",
    TOOL_DURATION: "Wall time of one tool call, by tool.",
    CATALOG_RELOADS: "Agent catalog reloads after a file changed, by outcome (ok|refused).",
}

_BUCKETS = {TASK_DURATION: TASK_BUCKETS, TOOL_DURATION: TOOL_BUCKETS}


class Telemetry:
    def __init__(self, reporter: MetricsReporter, registry: CollectorRegistry = REGISTRY) -> None:
        self.registry = registry
        self._reporter = reporter
        # The SDK's AgentMetrics owns the names the metrics service summarizes per agent
        # (requests, latency, cache); the tokens stay here, with tenant and endpoint too.
        self._agents = AgentMetrics(reporter.client, tokens=False)
        self.running = 0
        for name, help_text in _HELP.items():
            reporter.describe(name, help_text, _BUCKETS.get(name, ()))
        # prometheus_client appends `_total` to counters itself.
        self._tasks = Counter(
            TASKS.removesuffix("_total"), _HELP[TASKS], ["agent", "outcome"], registry=registry
        )
        self._duration = Histogram(
            TASK_DURATION,
            _HELP[TASK_DURATION],
            ["agent"],
            buckets=TASK_BUCKETS,
            registry=registry,
        )
        self._running = Gauge(TASKS_RUNNING, _HELP[TASKS_RUNNING], registry=registry)
        usage = ["tenant", "agent", "endpoint", "model"]
        self._tokens = Counter(
            LLM_TOKENS.removesuffix("_total"),
            _HELP[LLM_TOKENS],
            [*usage, "kind"],
            registry=registry,
        )
        self._cost = Counter(
            LLM_COST.removesuffix("_total"), _HELP[LLM_COST], usage, registry=registry
        )
        self._unpriced = Counter(
            LLM_UNPRICED.removesuffix("_total"), _HELP[LLM_UNPRICED], usage, registry=registry
        )
        self._saved_tokens = Counter(
            LLM_SAVED_TOKENS.removesuffix("_total"),
            _HELP[LLM_SAVED_TOKENS],
            [*usage, "kind"],
            registry=registry,
        )
        self._saved_cost = Counter(
            LLM_SAVED_COST.removesuffix("_total"), _HELP[LLM_SAVED_COST], usage, registry=registry
        )
        self._calls = Counter(
            LLM_CALLS.removesuffix("_total"),
            _HELP[LLM_CALLS],
            ["endpoint", "outcome"],
            registry=registry,
        )
        self._breaker = Gauge(LLM_BREAKER, _HELP[LLM_BREAKER], ["endpoint"], registry=registry)
        self._cache = Counter(
            LLM_CACHE.removesuffix("_total"),
            LLM_CACHE_HELP,
            ["agent", "model", "result"],
            registry=registry,
        )
        self._requests = Counter(
            LLM_REQUESTS.removesuffix("_total"),
            LLM_REQUESTS_HELP,
            ["agent", "model", "outcome"],
            registry=registry,
        )
        self._request_duration = Histogram(
            LLM_REQUEST_DURATION,
            LLM_REQUEST_DURATION_HELP,
            ["agent", "model"],
            buckets=LLM_BUCKETS,
            registry=registry,
        )
        self._semantic = Counter(
            SEMANTIC_CACHE.removesuffix("_total"),
            _HELP[SEMANTIC_CACHE],
            ["result"],
            registry=registry,
        )
        self._sessions = Counter(
            SESSIONS.removesuffix("_total"), _HELP[SESSIONS], ["outcome"], registry=registry
        )

        self._tool_calls = Counter(
            TOOL_CALLS.removesuffix("_total"),
            _HELP[TOOL_CALLS],
            ["tool", "outcome"],
            registry=registry,
        )
        self._tool_duration = Histogram(
            TOOL_DURATION,
            _HELP[TOOL_DURATION],
            ["tool"],
            buckets=TOOL_BUCKETS,
            registry=registry,
        )
        self._catalog_reloads = Counter(
            CATALOG_RELOADS.removesuffix("_total"),
            _HELP[CATALOG_RELOADS],
            ["outcome"],
            registry=registry,
        )

    def task_started(self) -> None:
        self.running += 1
        self._running.set(self.running)
        self._reporter.gauge(TASKS_RUNNING, self.running, {})

    def task_finished(self, agent: str, outcome: str, duration_s: float) -> None:
        self.running -= 1
        self._running.set(self.running)
        self._tasks.labels(agent, outcome).inc()
        self._duration.labels(agent).observe(duration_s)
        self._reporter.gauge(TASKS_RUNNING, self.running, {})
        self._reporter.counter(TASKS, 1, {"agent": agent, "outcome": outcome})
        self._reporter.observe(TASK_DURATION, duration_s, {"agent": agent})

    def _count(self, counter: Counter, name: str, value: float, labels: Mapping[str, str]) -> None:
        counter.labels(**labels).inc(value)
        self._reporter.counter(name, value, dict(labels))

    def llm_usage(
        self, labels: Mapping[str, str], prompt: int, completion: int, cost_usd: float | None
    ) -> None:
        """One call's tokens and cost. Every series of the combination is touched, at zero
        where nothing was spent, so rates start from the first call."""
        for kind, count in (("prompt", prompt), ("completion", completion)):
            self._count(self._tokens, LLM_TOKENS, count, {**labels, "kind": kind})
        if cost_usd is None:
            self._count(self._unpriced, LLM_UNPRICED, prompt + completion, labels)
        else:
            self._count(self._cost, LLM_COST, cost_usd, labels)
        for kind in ("prompt", "completion"):
            self._count(self._saved_tokens, LLM_SAVED_TOKENS, 0, {**labels, "kind": kind})
        self._count(self._saved_cost, LLM_SAVED_COST, 0, labels)

    def llm_saved(
        self, labels: Mapping[str, str], prompt: int, completion: int, cost_usd: float | None
    ) -> None:
        """Tokens (and their cost) the LLM cache answered instead of the endpoint."""
        for kind, count in (("prompt", prompt), ("completion", completion)):
            self._count(self._saved_tokens, LLM_SAVED_TOKENS, count, {**labels, "kind": kind})
        if cost_usd is not None:
            self._count(self._saved_cost, LLM_SAVED_COST, cost_usd, labels)

    def llm_call(self, endpoint: str, outcome: str) -> None:
        self._count(self._calls, LLM_CALLS, 1, {"endpoint": endpoint, "outcome": outcome})

    def llm_breaker_state(self, endpoint: str, state: int) -> None:
        self._breaker.labels(endpoint).set(state)
        self._reporter.gauge(LLM_BREAKER, state, {"endpoint": endpoint})

    def llm_request(self, agent: str, model: str, seconds: float, *, ok: bool) -> None:
        """One request that reached the provider (its tokens come through `llm_usage`)."""
        self._requests.labels(agent, model, OUTCOME_OK if ok else OUTCOME_ERROR).inc()
        self._request_duration.labels(agent, model).observe(seconds)
        self._agents.llm_request(agent, model, seconds, ok=ok)

    def llm_cache(self, agent: str, model: str, *, hit: bool) -> None:
        self._cache.labels(agent, model, RESULT_HIT if hit else RESULT_MISS).inc()
        self._agents.llm_cache(agent, model, hit=hit)

    def semantic_cache(self, result: str) -> None:
        self._semantic.labels(result).inc()
        self._reporter.counter(SEMANTIC_CACHE, 1, {"result": result})

    def session(self, outcome: str) -> None:
        self._sessions.labels(outcome).inc()
        self._reporter.counter(SESSIONS, 1, {"outcome": outcome})

    def tool_call(self, tool: str, outcome: str, duration_s: float) -> None:
        self._tool_calls.labels(tool, outcome).inc()
        self._tool_duration.labels(tool).observe(duration_s)
        self._reporter.counter(TOOL_CALLS, 1, {"tool": tool, "outcome": outcome})
        self._reporter.observe(TOOL_DURATION, duration_s, {"tool": tool})

    def catalog_reload(self, outcome: str) -> None:
        self._catalog_reloads.labels(outcome).inc()
        self._reporter.counter(CATALOG_RELOADS, 1, {"outcome": outcome})
