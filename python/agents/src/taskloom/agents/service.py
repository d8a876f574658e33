"""Wires the agent worker together: catalog, providers, cache, metrics, HTTP port and
the orchestrator session; runs until SIGTERM/SIGINT, then drains and shuts down."""

from __future__ import annotations

import asyncio
import signal

import structlog

from taskloom.agents import __version__
from taskloom.agents.cache_client import CacheClient
from taskloom.agents.catalog import Catalog, CatalogError, ProviderKind, load_catalog
from taskloom.agents.http_server import HttpServer, build_app
from taskloom.agents.metrics_reporter import MetricsReporter
from taskloom.agents.providers import Provider
from taskloom.agents.providers.openai import OpenAIProvider
from taskloom.agents.providers.simulated import SimulatedProvider
from taskloom.agents.runtime import AgentRuntime
from taskloom.agents.settings import Settings
from taskloom.agents.telemetry import Telemetry
from taskloom.agents.worker import Worker, WorkerOptions

log = structlog.get_logger(__name__)


def build_providers(settings: Settings, catalog: Catalog) -> dict[str, Provider]:
    """One client per provider kind the catalog uses."""
    providers: dict[str, Provider] = {}
    for kind in {spec.provider for spec in catalog.values()}:
        if kind == ProviderKind.SIMULATED:
            providers[kind] = SimulatedProvider(
                settings.sim_latency_ms / 1000, settings.sim_tokens_per_second
            )
        elif kind == ProviderKind.OPENAI:
            providers[kind] = OpenAIProvider(
                settings.openai_base_url,
                settings.openai_api_key.get_secret_value(),
                timeout_s=settings.llm_timeout_s,
                max_retries=settings.llm_max_retries,
            )
        else:
            users = sorted(name for name, spec in catalog.items() if spec.provider == kind)
            raise CatalogError(
                f"provider {kind.value!r} (used by {', '.join(users)}) is not supported by this "
                "worker yet; use 'simulated' or 'openai' (any OpenAI-compatible server)"
            )
    return providers


def build_worker(
    settings: Settings, telemetry: Telemetry, cache: CacheClient | None
) -> tuple[Worker, dict[str, Provider]]:
    catalog = load_catalog(settings.agents_dir)
    providers = build_providers(settings, catalog)
    runtime = AgentRuntime(catalog, providers, telemetry, cache, settings.cache_ttl_s)
    options = WorkerOptions(
        orchestrator_addr=settings.orchestrator_addr,
        worker_token=settings.worker_token.get_secret_value(),
        worker_id=settings.worker_id,
        concurrency=settings.concurrency,
        drain_timeout_s=settings.drain_timeout_s,
        reconnect_initial_s=settings.reconnect_initial_s,
        reconnect_max_s=settings.reconnect_max_s,
        heartbeat_interval_s=settings.heartbeat_interval_s,
    )
    return Worker(options, runtime, telemetry), providers


async def serve(settings: Settings) -> None:
    reporter = MetricsReporter(settings.metrics_addr, interval_s=settings.metrics_interval_s)
    telemetry = Telemetry(reporter)
    cache = (
        CacheClient(settings.cache_addr, timeout_s=settings.cache_timeout_s)
        if settings.cache_addr
        else None
    )
    worker, providers = build_worker(settings, telemetry, cache)
    http = HttpServer(build_app(telemetry.registry, lambda: worker.ready), settings.http_addr)
    log.info(
        "agent worker starting",
        version=__version__,
        http_addr=http.addr,
        settings=settings.printable(),
    )

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    http.start()
    reporter.start()
    try:
        await worker.run(stop)
    finally:
        await reporter.stop()
        await http.stop()
        if cache is not None:
            await cache.aclose()
        for provider in providers.values():
            await provider.aclose()
        log.info("agent worker stopped")
