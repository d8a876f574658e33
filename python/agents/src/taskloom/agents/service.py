"""Wires the agent worker together: catalog (and its hot reload), providers, tools (sandbox
pool, HTTP client, child tasks, MCP servers), cache, metrics, HTTP port and the
orchestrator session; runs until SIGTERM/SIGINT, then drains and shuts down."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from dataclasses import dataclass, field

import httpx
import structlog

from taskloom.agents import __version__
from taskloom.agents.cache_client import CacheClient
from taskloom.agents.catalog import Catalog, CatalogError, load_catalog
from taskloom.agents.catalog.reload import CatalogReloader
from taskloom.agents.embeddings import cached_embedder
from taskloom.agents.http_server import HttpServer, build_app
from taskloom.agents.memory import long_term_memory, memory_tools
from taskloom.agents.memory.long_term import LongTermMemory
from taskloom.agents.memory.sessions import SessionMemory
from taskloom.agents.metrics_reporter import MetricsReporter
from taskloom.agents.providers.registry import LegacySettings, LLMEndpoints, build_llm_endpoints
from taskloom.agents.runtime import AgentRuntime
from taskloom.agents.semantic_cache import SemanticCache
from taskloom.agents.settings import Settings
from taskloom.agents.streaming import StreamOptions
from taskloom.agents.telemetry import Telemetry
from taskloom.agents.tools import ToolRegistry, builtin_factories
from taskloom.agents.tools.agent_call import ChildTasks
from taskloom.agents.tools.mcp_servers import McpServers
from taskloom.agents.tools.sandbox import (
    SandboxConfig,
    SandboxPool,
    SandboxUnavailable,
    sandbox_pool,
)
from taskloom.agents.worker import Worker, WorkerOptions
from taskloom.sdk import tracing
from taskloom.sdk.collections import Collections
from taskloom.sdk.sessions import RedisSessions

log = structlog.get_logger(__name__)


def build_providers(settings: Settings, catalog: Catalog, telemetry: Telemetry) -> LLMEndpoints:
    """The endpoints agents may name (the configured ones and the implicit simulated,
    openai and anthropic); a bad endpoint configuration stops the start, named."""
    return build_llm_endpoints(
        settings.endpoints,
        [(name, spec.provider) for name, spec in catalog.items()],
        os.environ,
        LegacySettings(
            openai_base_url=settings.openai_base_url,
            openai_api_key=settings.openai_api_key,
            llm_timeout_s=settings.llm_timeout_s,
            llm_max_retries=settings.llm_max_retries,
            sim_latency_s=settings.sim_latency_ms / 1000,
            sim_tokens_per_second=settings.sim_tokens_per_second,
        ),
        telemetry,
        settings.redis_url,
    )


@dataclass
class ToolResources:
    """What the built-in tools share, closed at shutdown."""

    sandbox: SandboxPool
    http: httpx.AsyncClient
    children: ChildTasks
    mcp: McpServers = field(default_factory=McpServers)
    collections: Collections | None = None
    # The agents' long-term memory, shared by the memory tools and the runtime's recall.
    memory: LongTermMemory | None = None

    async def aclose(self) -> None:
        if self.memory is not None:
            await self.memory.memories.aclose()
        if self.collections is not None:
            await self.collections.aclose()
            await self.collections.embedder.aclose()
        await self.mcp.aclose()
        await self.sandbox.aclose()
        await self.http.aclose()
        await self.children.aclose()


def build_tools(
    settings: Settings, telemetry: Telemetry, cache: CacheClient | None
) -> tuple[ToolRegistry, ToolResources]:
    resources = ToolResources(
        sandbox=sandbox_pool(
            SandboxConfig(
                backend=settings.sandbox_backend,
                bwrap=settings.sandbox_bwrap,
                python=settings.sandbox_python,
                pool_size=settings.sandbox_pool_size,
                tmpfs_bytes=settings.sandbox_tmpfs_mb << 20,
                unsandboxed=settings.sandbox_unsandboxed,
                docker_url=settings.sandbox_docker_url,
                docker_image=settings.sandbox_docker_image,
            )
        ),
        http=httpx.AsyncClient(follow_redirects=False),
        children=ChildTasks(settings.orchestrator_addr, settings.agent_max_depth),
    )
    if settings.vector_addr:
        embedder = cached_embedder(
            settings.embedder,
            dimension=settings.embeddings_dimension,
            base_url=settings.embeddings_base_url,
            model=settings.embeddings_model,
            api_key=settings.embeddings_api_key.get_secret_value(),
            cache=cache,
            cache_ttl_s=settings.embed_cache_ttl_s,
        )
        resources.collections = Collections(settings.vector_addr, embedder)
        resources.memory = long_term_memory(resources.collections)
    registry = ToolRegistry(
        builtin_factories(
            sandbox=resources.sandbox,
            http=resources.http,
            children=resources.children,
            memory=memory_tools(resources.collections, resources.memory, cache),
        ),
        mcp=resources.mcp,
        cache=cache,
        metrics=telemetry,
        max_parallel=settings.max_parallel_tool_calls,
    )
    return registry, resources


def build_worker(
    settings: Settings,
    telemetry: Telemetry,
    cache: CacheClient | None,
    tools: ToolRegistry,
    collections: Collections | None = None,
    memory: LongTermMemory | None = None,
) -> tuple[Worker, LLMEndpoints]:
    catalog = load_catalog(settings.agents_dir)
    if memory is None:
        _refuse_recall(catalog)
    llm = build_providers(settings, catalog, telemetry)
    sessions = (
        RedisSessions(
            settings.sessions_redis_url,
            max_messages=settings.session_max_messages,
            ttl_s=settings.session_ttl_s,
        )
        if settings.sessions_redis_url
        else None
    )
    runtime = AgentRuntime(
        catalog,
        llm.providers,
        telemetry,
        cache,
        settings.cache_ttl_s,
        tools,
        llm.accounting,
        sessions=SessionMemory(sessions),
        semantic=(
            SemanticCache(
                Collections(collections.vector_addr, collections.embedder, kind="s"), telemetry
            )
            if collections is not None
            else None
        ),
        memory=memory,
    )
    options = WorkerOptions(
        orchestrator_addr=settings.orchestrator_addr,
        worker_token=settings.worker_token.get_secret_value(),
        worker_id=settings.worker_id,
        concurrency=settings.concurrency,
        drain_timeout_s=settings.drain_timeout_s,
        reconnect_initial_s=settings.reconnect_initial_s,
        reconnect_max_s=settings.reconnect_max_s,
        heartbeat_interval_s=settings.heartbeat_interval_s,
        stream=StreamOptions(settings.stream_buffer_size, settings.stream_flush_interval_ms),
        journal=settings.journal,
    )
    return Worker(options, runtime, telemetry), llm


def _refuse_recall(catalog: Catalog) -> None:
    """Without a vector service, an agent that recalls memories would fail every task: the
    worker does not start with one (a catalog reload can still add one; its tasks fail)."""
    for name, spec in catalog.items():
        if spec.memory.auto_recall:
            raise CatalogError(
                f"{catalog.sources.get(name, name)}: agent {name!r} recalls memories "
                "(memory.auto_recall), which needs a vector service: set vector_addr"
            )


async def _start_sandbox(pool: SandboxPool, catalog: Catalog) -> None:
    """Pre-start the sandboxes when an agent uses the python tool; say so when it cannot."""
    if any(t.name == "python" and not t.function for s in catalog.values() for t in s.tools):
        with contextlib.suppress(SandboxUnavailable):  # logged by the pool; calls report it
            await pool.start()


async def serve(settings: Settings) -> None:
    # Off unless OTEL_EXPORTER_OTLP_ENDPOINT is set; before the clients, whose channels it traces.
    tracing.setup("taskloom-worker")
    try:
        await _serve(settings)
    finally:
        tracing.shutdown()  # the spans still queued go out before the exit


async def _serve(settings: Settings) -> None:
    reporter = MetricsReporter(settings.metrics_addr, interval_s=settings.metrics_interval_s)
    telemetry = Telemetry(reporter)
    cache = (
        CacheClient(settings.cache_addr, timeout_s=settings.cache_timeout_s)
        if settings.cache_addr
        else None
    )
    tools, resources = build_tools(settings, telemetry, cache)
    worker, llm = build_worker(
        settings, telemetry, cache, tools, resources.collections, resources.memory
    )
    runtime = worker.runtime
    http = HttpServer(
        build_app(telemetry.registry, lambda: worker.ready, lambda: {"endpoints": llm.states()}),
        settings.http_addr,
    )
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
        worker.agents_changed()

    reloader = CatalogReloader(
        settings.agents_dir if settings.agents_reload else [],
        lambda: runtime.catalog,
        swap,
        telemetry.catalog_reload,
        providers=set(llm.providers),
    )

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    http.start()
    reporter.start()
    # In the background: registering with the orchestrator need not wait for sandboxes.
    sandbox_start = asyncio.create_task(_start_sandbox(resources.sandbox, runtime.catalog))
    await llm.warm_up()
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
        if runtime.sessions.store is not None:
            await runtime.sessions.store.aclose()
        if runtime.semantic is not None:
            await runtime.semantic.aclose()
        await llm.aclose()
        log.info("agent worker stopped")
