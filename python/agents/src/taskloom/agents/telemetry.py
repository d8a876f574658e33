"""Every metric of the agent worker, defined in this one file. Each event updates the
worker's own Prometheus series (served on its HTTP port) and is also batched to the
metrics service under the same name."""

from __future__ import annotations

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

from taskloom.agents.metrics_reporter import MetricsReporter

TASKS = "taskloom_agent_tasks_total"
TASK_DURATION = "taskloom_agent_task_duration_seconds"
TASKS_RUNNING = "taskloom_agent_tasks_running"
LLM_TOKENS = "taskloom_agent_llm_tokens_total"
LLM_CACHE = "taskloom_agent_llm_cache_total"
SESSIONS = "taskloom_agent_sessions_total"
TOOL_CALLS = "taskloom_agent_tool_calls_total"
TOOL_DURATION = "taskloom_agent_tool_duration_seconds"
CATALOG_RELOADS = "taskloom_agent_catalog_reloads_total"

_HELP = {
    TASKS: "Agent tasks finished, by agent and outcome (succeeded|failed|cancelled|timed_out).",
    TASK_DURATION: "Wall time of one task attempt on this worker.",
    TASKS_RUNNING: "Tasks running on this worker now.",
    LLM_TOKENS: "LLM tokens spent, by provider and kind (prompt|completion).",
    LLM_CACHE: "LLM cache lookups, by result (hit|miss).",
    SESSIONS: "Sessions opened with the orchestrator, by outcome (registered|failed).",
    TOOL_CALLS: "Tool calls, by tool and outcome (ok|error|cached).",
    TOOL_DURATION: "Wall time of one tool call, by tool.",
    CATALOG_RELOADS: "Agent catalog reloads after a file changed, by outcome (ok|refused).",
}


class Telemetry:
    def __init__(self, reporter: MetricsReporter, registry: CollectorRegistry = REGISTRY) -> None:
        self.registry = registry
        self._reporter = reporter
        self.running = 0
        for name, help_text in _HELP.items():
            reporter.describe(name, help_text)
        # prometheus_client appends `_total` to counters itself.
        self._tasks = Counter(
            TASKS.removesuffix("_total"), _HELP[TASKS], ["agent", "outcome"], registry=registry
        )
        self._duration = Histogram(
            TASK_DURATION,
            _HELP[TASK_DURATION],
            ["agent"],
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
            registry=registry,
        )
        self._running = Gauge(TASKS_RUNNING, _HELP[TASKS_RUNNING], registry=registry)
        self._tokens = Counter(
            LLM_TOKENS.removesuffix("_total"),
            _HELP[LLM_TOKENS],
            ["provider", "kind"],
            registry=registry,
        )
        self._cache = Counter(
            LLM_CACHE.removesuffix("_total"), _HELP[LLM_CACHE], ["result"], registry=registry
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
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
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

    def llm_tokens(self, provider: str, prompt: int, completion: int) -> None:
        for kind, count in (("prompt", prompt), ("completion", completion)):
            if count:
                self._tokens.labels(provider, kind).inc(count)
                self._reporter.counter(LLM_TOKENS, count, {"provider": provider, "kind": kind})

    def llm_cache(self, hit: bool) -> None:
        result = "hit" if hit else "miss"
        self._cache.labels(result).inc()
        self._reporter.counter(LLM_CACHE, 1, {"result": result})

    def session(self, outcome: str) -> None:
        self._sessions.labels(outcome).inc()

    def tool_call(self, tool: str, outcome: str, duration_s: float) -> None:
        self._tool_calls.labels(tool, outcome).inc()
        self._tool_duration.labels(tool).observe(duration_s)
        self._reporter.counter(TOOL_CALLS, 1, {"tool": tool, "outcome": outcome})
        self._reporter.observe(TOOL_DURATION, duration_s, {"tool": tool})

    def catalog_reload(self, outcome: str) -> None:
        self._catalog_reloads.labels(outcome).inc()
        self._reporter.counter(CATALOG_RELOADS, 1, {"outcome": outcome})
