"""The agent LLM metrics that the metrics service summarizes per agent and model
(`SummarizeAgents`, `GET /v1/metrics/agents`). The service reads these names and labels
(services/metrics-rust/src/summary.rs); tests/e2e/test_metrics_service.py checks that the
two agree by recording here and reading the summary from the real service."""

from __future__ import annotations

from taskloom.sdk.metrics.client import MetricsClient

LLM_REQUESTS = "taskloom_agent_llm_requests_total"
LLM_REQUEST_DURATION = "taskloom_agent_llm_request_duration_seconds"
LLM_TOKENS = "taskloom_agent_llm_tokens_total"
LLM_CACHE = "taskloom_agent_llm_cache_total"

LLM_REQUESTS_HELP = (
    "LLM requests that reached the provider, by agent, model and outcome (ok|error)."
)
LLM_REQUEST_DURATION_HELP = "Latency of LLM requests, by agent and model."
LLM_TOKENS_HELP = "LLM tokens spent, by agent, model and kind (prompt|completion)."
LLM_CACHE_HELP = "LLM cache lookups, by agent, model and result (hit|miss)."

OUTCOME_OK = "ok"
OUTCOME_ERROR = "error"
RESULT_HIT = "hit"
RESULT_MISS = "miss"

# LLM calls take from tens of milliseconds to minutes.
LLM_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)


class AgentMetrics:
    """Records what agents do with their LLMs, labelled by agent and model."""

    def __init__(self, client: MetricsClient, *, tokens: bool = True) -> None:
        """`tokens=False` leaves `taskloom_agent_llm_tokens_total` to a process that records
        it with more labels (the agent worker adds tenant and endpoint), so the name keeps
        one label set in that process's client."""
        self._requests = client.counter(
            LLM_REQUESTS,
            LLM_REQUESTS_HELP,
            ("agent", "model", "outcome"),
        )
        self._duration = client.histogram(
            LLM_REQUEST_DURATION,
            LLM_REQUEST_DURATION_HELP,
            ("agent", "model"),
            buckets=LLM_BUCKETS,
        )
        self._tokens = (
            client.counter(
                LLM_TOKENS,
                LLM_TOKENS_HELP,
                ("agent", "model", "kind"),
            )
            if tokens
            else None
        )
        self._cache = client.counter(
            LLM_CACHE,
            LLM_CACHE_HELP,
            ("agent", "model", "result"),
        )

    def llm_request(
        self,
        agent: str,
        model: str,
        seconds: float,
        *,
        ok: bool = True,
        prompt_tokens: int = 0,
        completion_tokens: int = 0,
        trace_id: str | None = None,
    ) -> None:
        """One request to the provider; `trace_id` makes it an exemplar of its latency."""
        self._requests.labels(agent, model, OUTCOME_OK if ok else OUTCOME_ERROR).inc()
        self._duration.labels(agent, model).observe(seconds, trace_id)
        if self._tokens is None:
            return
        if prompt_tokens:
            self._tokens.labels(agent, model, "prompt").inc(prompt_tokens)
        if completion_tokens:
            self._tokens.labels(agent, model, "completion").inc(completion_tokens)

    def llm_cache(self, agent: str, model: str, *, hit: bool) -> None:
        """One lookup of the LLM response cache."""
        self._cache.labels(agent, model, RESULT_HIT if hit else RESULT_MISS).inc()
