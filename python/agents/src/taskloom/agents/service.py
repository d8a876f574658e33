"""Wires the agent worker together: catalog (and its hot reload), providers, tools (sandbox
pool, HTTP client, child tasks, MCP servers), cache, metrics, HTTP port and the
orchestrator session; runs until SIGTERM/SIGINT, then drains and shuts down."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from dataclasses import dataclass, field

import httpx
import structlog

from taskloom.agents import __version__
from taskloom.agents.cache_client import CacheClient
from taskloom.agents.catalog import Catalog, CatalogError, ProviderKind, load_catalog
from taskloom.agents.catalog.reload import CatalogReloader
from taskloom.agents.http_server import HttpServer, build_app
from taskloom.agents.metrics_reporter import MetricsReporter
from taskloom.agents.providers import Provider
from taskloom.agents.providers.openai import OpenAIProvider
from taskloom.agents.providers.simulated import SimulatedProvider
from taskloom.agents.runtime import AgentRuntime
from taskloom.agents.settings import Settings
from taskloom.agents.streaming import StreamOptions
from taskloom.agents.telemetry import Telemetry
from taskloom.agents.tools import ToolRegistry, builtin_factories
from taskloom.agents.tools.agent_call import ChildTasks
from taskloom.agents.tools.mcp_servers import McpServers
from taskloom.agents.tools.sandbox import SandboxConfig, SandboxPool, SandboxUnavailable
from taskloom.agents.worker import Worker, WorkerOptions

log = structlog.get_logger(__name__)


def build_providers(settings: Settings, catalog: Catalog) -> dict[str, Provider]:
    """The providers this worker runs (both kinds it supports, so a hot reload may switch an
    agent between them); an agent that needs another one stops the start."""
    providers: dict[str, Provider] = {
        ProviderKind.SIMULATED: SimulatedProvider(
            settings.sim_latency_ms / 1000, settings.sim_tokens_per_second
        ),
        ProviderKind.OPENAI: OpenAIProvider(
            settings.openai_base_url,
            settings.openai_api_key.get_secret_value(),
            timeout_s=settings.llm_timeout_s,
            max_retries=settings.llm_max_retries,
        ),
    }
    for kind in {spec.provider for spec in catalog.values()} - set(providers):
        users = sorted(name for name, spec in catalog.items() if spec.provider == kind)
        raise CatalogError(
            f"provider {kind.value!r} (used by {', '.join(users)}) is not supported by this "
            "worker yet; use 'simulated' or 'openai' (any OpenAI-compatible server)"
        )
    return providers


@dataclass
class ToolResources:
    """What the built-in tools share, closed at shutdown."""

    sandbox: SandboxPool
    http: httpx.AsyncClient
    children: ChildTasks
    mcp: McpServers = field(default_factory=McpServers)

    async def aclose(self) -> None:
        await self.mcp.aclose()
        await self.sandbox.aclose()
        await self.http.aclose()
        await self.children.aclose()


def build_tools(
    settings: Settings, telemetry: Telemetry, cache: CacheClient | None
) -> tuple[ToolRegistry, ToolResources]:
    resources = ToolResources(
        sandbox=SandboxPool(
            SandboxConfig(
                bwrap=settings.sandbox_bwrap,
                python=settings.sandbox_python,
                pool_size=settings.sandbox_pool_size,
                tmpfs_bytes=settings.sandbox_tmpfs_mb << 20,
                unsandboxed=settings.sandbox_unsandboxed,
            )
        ),
        http=httpx.AsyncClient(follow_redirects=False),
        children=ChildTasks(settings.orchestrator_addr, settings.agent_max_depth),
    )
    registry = ToolRegistry(
        builtin_factories(
            sandbox=resources.sandbox, http=resources.http, children=resources.children
        ),
        mcp=resources.mcp,
        cache=cache,
        metrics=telemetry,
        max_parallel=settings.max_parallel_tool_calls,
    )
    return registry, resources


def build_worker(
    settings: Settings, telemetry: Telemetry, cache: CacheClient | None, tools: ToolRegistry
) -> tuple[Worker, dict[str, Provider]]:
    catalog = load_catalog(settings.agents_dir)
    providers = build_providers(settings, catalog)
    runtime = AgentRuntime(catalog, providers, telemetry, cache, settings.cache_ttl_s, tools)
    options = WorkerOptions(
        orchestrator_addr=settings.orchestrator_addr,
        worker_id=settings.worker_id,
        concurrency=settings.concurrency,
        drain_timeout_s=settings.drain_timeout_s,
        reconnect_initial_s=settings.reconnect_initial_s,
        reconnect_max_s=settings.reconnect_max_s,
        heartbeat_interval_s=settings.heartbeat_interval_s,
        stream=StreamOptions(settings.stream_buffer_size, settings.stream_flush_interval_ms),
    )
    return Worker(options, runtime, telemetry), providers


async def _start_sandbox(pool: SandboxPool, catalog: Catalog) -> None:
    """Pre-start the sandboxes when an agent uses the python tool; say so when it cannot."""
    if any(t.name == "python" and not t.function for s in catalog.values() for t in s.tools):
        with contextlib.suppress(SandboxUnavailable):  # logged by the pool; calls report it
            await pool.start()


async def serve(settings: Settings) -> None:
    reporter = MetricsReporter(settings.metrics_addr, interval_s=settings.metrics_interval_s)
    telemetry = Telemetry(reporter)
    cache = (
        CacheClient(settings.cache_addr, timeout_s=settings.cache_timeout_s)
        if settings.cache_addr
        else None
    )
    tools, resources = build_tools(settings, telemetry, cache)
    worker, providers = build_worker(settings, telemetry, cache, tools)
    runtime = worker.runtime
    http = HttpServer(build_app(telemetry.registry, lambda: worker.ready), settings.http_addr)
    log.info(
        "agent worker starting",
        version=__version__,
        http_addr=http.addr,
        settings=settings.printable(),
    )
    if settings.sandbox_unsandboxed:
        log.warning(
            "UNSANDBOXED python tool: TASKLOOM_SANDBOX_UNSANDBOXED is set, code the model "
            "writes runs with this worker's user, files and network; development only"
        )

    def swap(catalog: Catalog) -> None:
        runtime.catalog = catalog

    reloader = CatalogReloader(
        settings.agents_dir if settings.agents_reload else [],
        lambda: runtime.catalog,
        swap,
        telemetry.catalog_reload,
        providers=set(providers),
    )

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    http.start()
    reporter.start()
    # In the background: registering with the orchestrator need not wait for sandboxes.
    sandbox_start = asyncio.create_task(_start_sandbox(resources.sandbox, runtime.catalog))
    watcher = asyncio.create_task(reloader.run(stop))
    try:
        await worker.run(stop)
    finally:
        stop.set()
        with contextlib.suppress(Exception):
            await watcher
        sandbox_start.cancel()
        with contextlib.suppress(BaseException):
            await sandbox_start
        await reporter.stop()
        await http.stop()
        await resources.aclose()
        if cache is not None:
            await cache.aclose()
        for provider in providers.values():
            await provider.aclose()
        log.info("agent worker stopped")
