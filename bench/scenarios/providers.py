"""Scenario `providers`: the cost of Taskloom's LLM call path and how well its shared limits
hold.

- `limiter_overhead_us`: one rate-limited call's acquire and release in process (peer: an
  asyncio.Semaphore's acquire and release).
- `limiter_overhead_redis_us`: the same through a real redis-server, one round trip (peer:
  a Redis PING from the same client).
- `shared_rate_error_pct`: 4 worker processes share a 100 requests/s limit through Redis
  for 30 s, each with 32 calls in flight, against a fake OpenAI server that counts what
  arrives: |observed rate - 100| / 100 x 100.
- `breaker_open_fail_fast_p99_ms`: a call to an endpoint whose breaker is open fails (no
  fallback), p99 over many calls.
- `openai_path_completions_per_s`: streamed completions per second, one process, 64 in
  flight, through the whole endpoint path (limits, breaker, retries, accounting, httpx)
  against a fake OpenAI server in its own process that answers at once; peer: the official
  `openai` SDK (AsyncOpenAI, streaming) on the same server in a plain asyncio loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import redis.asyncio as aioredis
from openai import AsyncOpenAI
from pydantic import SecretStr
from run import Result

from taskloom.agents import cost
from taskloom.agents.endpoints import RateLimit, parse_endpoints
from taskloom.agents.limits import LocalLimiter, RedisLimiter, Scope, acquire
from taskloom.agents.providers import GenerationParams, ProviderError
from taskloom.agents.providers.registry import LegacySettings, LLMEndpoints, build_llm_endpoints
from taskloom.sdk.localstack import free_port

HERE = Path(__file__).resolve().parent
LIMITER_CALLS = 20_000
REDIS_CALLS = 3_000
SHARED_RATE = 100.0
SHARED_WORKERS = 4
SHARED_SECONDS = 30.0
BREAKER_CALLS = 20_000
IN_FLIGHT = 64
THROUGHPUT_SECONDS = 8.0
LEGACY = LegacySettings("http://127.0.0.1:9/v1", SecretStr(""), 30, 0, 0, 0)
MESSAGES = [{"role": "user", "content": "Say hello."}]
PARAMS = GenerationParams(temperature=0, max_tokens=16)


class NoMetrics:
    """The endpoints' metrics hooks, doing nothing (the bench measures the call path)."""

    def __getattr__(self, name: str) -> Callable[..., None]:
        return lambda *args, **kwargs: None


def run() -> list[Result]:
    redis_server = shutil.which("redis-server")
    if redis_server is None:
        raise RuntimeError("redis-server is missing: `make deps` installs it")
    with _redis(redis_server) as redis_url, _fake_server() as base_url:
        limiter_us, semaphore_us = asyncio.run(_limiter_overhead())
        redis_us, ping_us = asyncio.run(_limiter_overhead_redis(redis_url))
        breaker_p99 = asyncio.run(_breaker_fail_fast_p99_ms())
        ours = asyncio.run(_taskloom_completions_per_s(base_url))
        peer = asyncio.run(_sdk_completions_per_s(base_url))
        observed = _shared_rate(base_url, redis_url)
    error_pct = abs(observed - SHARED_RATE) / SHARED_RATE * 100
    return [
        Result(
            "limiter_overhead_us",
            round(limiter_us, 2),
            "us",
            "lower",
            peer="asyncio.Semaphore",
            peer_value=round(semaphore_us, 2),
        ),
        Result(
            "limiter_overhead_redis_us",
            round(redis_us, 1),
            "us",
            "lower",
            peer="redis PING",
            peer_value=round(ping_us, 1),
        ),
        Result("shared_rate_error_pct", round(error_pct, 2), "%", "lower"),
        Result("shared_rate_observed_per_s", round(observed, 2), "req/s", "higher"),
        Result("breaker_open_fail_fast_p99_ms", round(breaker_p99, 4), "ms", "lower"),
        Result(
            "openai_path_completions_per_s",
            round(ours, 1),
            "completions/s",
            "higher",
            peer="openai-sdk",
            peer_value=round(peer, 1),
        ),
    ]


@contextlib.contextmanager
def _redis(binary: str) -> Iterator[str]:
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="taskloom-bench-redis-") as tmp:
        proc = subprocess.Popen(
            [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", tmp],
            stdout=subprocess.DEVNULL,
        )
        try:
            _wait_for_port(port)
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            proc.terminate()
            proc.wait(10)


@contextlib.contextmanager
def _fake_server() -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(HERE / "_fake_llm_server.py"), str(port)])
    try:
        _wait_for_port(port)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        proc.terminate()
        proc.wait(10)


def _wait_for_port(port: int) -> None:
    for _ in range(400):
        with contextlib.suppress(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
            return
        time.sleep(0.025)
    raise RuntimeError(f"nothing listens on port {port}")


async def _per_call_us(calls: int, one: Callable[[], Awaitable[object]]) -> float:
    for _ in range(min(calls // 10, 500)):  # warm up
        await one()
    started = time.perf_counter()
    for _ in range(calls):
        await one()
    return (time.perf_counter() - started) / calls * 1e6


async def _limiter_overhead() -> tuple[float, float]:
    limiter = LocalLimiter()
    scopes = [Scope("bench", RateLimit(requests_per_second=1e6, burst=1000, concurrent=1000))]

    async def limited() -> None:
        permit = await acquire(limiter, scopes, 0, 10)
        await limiter.release(permit, None)

    semaphore = asyncio.Semaphore(1000)

    async def peer() -> None:
        async with semaphore:
            pass

    return await _per_call_us(LIMITER_CALLS, limited), await _per_call_us(LIMITER_CALLS, peer)


async def _limiter_overhead_redis(url: str) -> tuple[float, float]:
    limiter = RedisLimiter(url, lease_s=60)
    scopes = [Scope("bench-redis", RateLimit(requests_per_second=1e6, burst=1000))]
    client = aioredis.Redis.from_url(url)

    async def limited() -> None:
        permit = await acquire(limiter, scopes, 0, 10)
        await limiter.release(permit, None)

    try:
        ours = await _per_call_us(REDIS_CALLS, limited)
        ping = await _per_call_us(REDIS_CALLS, client.ping)
    finally:
        await limiter.aclose()
        await client.aclose()
    return ours, ping


def _endpoints(config: dict[str, object], redis_url: str = "") -> LLMEndpoints:
    return build_llm_endpoints(
        parse_endpoints(config),
        [],
        {},
        LEGACY,
        NoMetrics(),  # type: ignore[arg-type]
        redis_url,
    )


async def _breaker_fail_fast_p99_ms() -> float:
    llm = _endpoints(
        {
            "down": {
                "kind": "openai",
                "base_url": "http://127.0.0.1:9/v1",
                "retry": {"max_retries": 0},
            }
        }
    )
    provider = llm.providers["down"]
    for _ in range(provider.endpoint.config.breaker.failures):
        provider.breaker.failure()
    times: list[float] = []
    try:
        for _ in range(BREAKER_CALLS):
            started = time.perf_counter()
            try:
                async for _ in provider.stream(MESSAGES, "m", PARAMS):
                    pass
            except ProviderError:
                pass
            times.append(time.perf_counter() - started)
    finally:
        await llm.aclose()
    return statistics.quantiles(times, n=100)[98] * 1000


async def _count_for(seconds: float, one: Callable[[], Awaitable[None]]) -> float:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    done = 0

    async def caller() -> None:
        nonlocal done
        while loop.time() < deadline:
            await one()
            done += 1

    # Warm up the pool, then measure.
    await asyncio.gather(*(one() for _ in range(IN_FLIGHT)))
    started = loop.time()
    await asyncio.gather(*(caller() for _ in range(IN_FLIGHT)))
    return done / (loop.time() - started)


async def _taskloom_completions_per_s(base_url: str) -> float:
    llm = _endpoints({"bench": {"kind": "openai", "base_url": base_url}})
    provider = llm.providers["bench"]

    async def one() -> None:
        async for _ in provider.stream(MESSAGES, "m", PARAMS):
            pass

    try:
        with cost.task_usage("bench", "bench"):
            return await _count_for(THROUGHPUT_SECONDS, one)
    finally:
        await llm.aclose()


async def _sdk_completions_per_s(base_url: str) -> float:
    client = AsyncOpenAI(base_url=base_url, api_key="sk-bench", max_retries=0)

    async def one() -> None:
        stream = await client.chat.completions.create(
            model="m",
            messages=MESSAGES,  # type: ignore[arg-type]
            temperature=0,
            max_tokens=16,
            stream=True,
            stream_options={"include_usage": True},
        )
        async for _ in stream:
            pass

    try:
        return await _count_for(THROUGHPUT_SECONDS, one)
    finally:
        await client.close()


def _shared_rate(base_url: str, redis_url: str) -> float:
    """Requests per second the fake server saw while 4 processes shared the limit."""
    _stats(base_url)  # reset
    client = HERE / "_providers_rate_client.py"
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                str(client),
                base_url,
                redis_url,
                str(SHARED_RATE),
                str(SHARED_SECONDS),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(SHARED_WORKERS)
    ]
    for proc in procs:
        out, _ = proc.communicate(timeout=SHARED_SECONDS + 120)
        if proc.returncode != 0:
            raise RuntimeError(f"a rate client failed: {out}")
    stats = _stats(base_url)
    return (stats["count"] - 1) / stats["span_s"]


def _stats(base_url: str) -> dict[str, float]:
    url = base_url.removesuffix("/v1") + "/stats"
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())
