"""Test doubles of the agent worker's peers, each a real server on a loopback port (a fake
orchestrator and a dict-backed cache over gRPC, an OpenAI-compatible chat API over HTTP),
offered to the tests as fixtures."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import orjson
import pytest
import pytest_asyncio
from google.protobuf import duration_pb2
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from taskloom.agents.catalog import load_catalog
from taskloom.agents.http_server import HttpServer
from taskloom.agents.metrics_reporter import MetricsReporter
from taskloom.agents.providers.simulated import SimulatedProvider
from taskloom.agents.runtime import AgentRuntime
from taskloom.agents.telemetry import Telemetry
from taskloom.agents.wire_batch import unbatched
from taskloom.agents.worker import Worker, WorkerOptions
from taskloom.sdk.embeddings import HashingEmbedder
from taskloom.sdk.localstack import free_port
from taskloom.sdk.metrics import MetricsClient
from taskloom.sdk.metrics.client import _encode
from taskloom.testing.vector_server import vector_server
from taskloom.v1 import cache_pb2, cache_pb2_grpc, metrics_pb2, worker_hub_pb2, worker_hub_pb2_grpc

WAIT_S = 10.0  # generous bound so a broken test fails instead of hanging


class HubSession:
    """One worker session as the fake orchestrator sees it."""

    def __init__(self) -> None:
        self.inbox: asyncio.Queue[worker_hub_pb2.SessionRequest | None] = asyncio.Queue()
        self.outbox: asyncio.Queue[worker_hub_pb2.SessionResponse | None] = asyncio.Queue()
        # What the worker sent, a ResultBatch as the hub applies it (wire_batch.unbatched).
        self.received: list[worker_hub_pb2.SessionRequest] = []
        self.raw: list[worker_hub_pb2.SessionRequest] = []  # as sent

    async def recv(self, *kinds: str) -> Any:
        """The next message of one of `kinds`, skipping others; None after the half-close."""
        while True:
            msg = await asyncio.wait_for(self.inbox.get(), WAIT_S)
            if msg is None:
                return None
            kind = msg.WhichOneof("msg")
            if kind in kinds:
                return getattr(msg, kind)

    def send(self, **kwargs: Any) -> None:
        self.outbox.put_nowait(worker_hub_pb2.SessionResponse(**kwargs))

    def close(self) -> None:
        self.outbox.put_nowait(None)


class FakeHub(worker_hub_pb2_grpc.WorkerHubServiceServicer):
    def __init__(self, heartbeat_interval_s: float = 5.0) -> None:
        self.sessions: asyncio.Queue[HubSession] = asyncio.Queue()
        self.heartbeat_interval_s = heartbeat_interval_s

    async def Session(self, request_iterator: Any, context: Any) -> AsyncIterator[Any]:
        session = HubSession()

        async def pump() -> None:
            async for request in request_iterator:
                session.raw.append(request)
                for msg in unbatched(request):
                    session.received.append(msg)
                    session.inbox.put_nowait(msg)
                if request.WhichOneof("msg") == "register":
                    interval = duration_pb2.Duration()
                    interval.FromNanoseconds(int(self.heartbeat_interval_s * 1e9))
                    session.send(
                        registered=worker_hub_pb2.Registered(
                            worker_id=request.register.worker_id or "assigned-id",
                            heartbeat_interval=interval,
                        )
                    )
            session.inbox.put_nowait(None)
            session.close()  # answer the worker's half-close by ending the stream

        reader = asyncio.create_task(pump())
        self.sessions.put_nowait(session)
        try:
            while (msg := await session.outbox.get()) is not None:
                yield msg
        finally:
            reader.cancel()

    async def next_session(self) -> HubSession:
        return await asyncio.wait_for(self.sessions.get(), WAIT_S)


class FakeCache(cache_pb2_grpc.CacheServiceServicer):
    def __init__(self) -> None:
        self.data: dict[tuple[str, str], bytes] = {}
        self.traceparents: list[str | None] = []  # each Get's traceparent metadata

    async def Get(self, request: Any, context: Any) -> cache_pb2.GetResponse:
        metadata = dict(context.invocation_metadata() or ())
        self.traceparents.append(metadata.get("traceparent"))
        value = self.data.get((request.namespace, request.key))
        return cache_pb2.GetResponse(found=value is not None, value=value or b"")

    async def Set(self, request: Any, context: Any) -> cache_pb2.SetResponse:
        self.data[(request.namespace, request.key)] = request.value
        return cache_pb2.SetResponse()


async def start_server(servicer: Any, add: Any, port: int = 0) -> tuple[grpc.aio.Server, int]:
    server = grpc.aio.server()
    add(servicer, server)
    port = server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    return server, port


def make_telemetry() -> Telemetry:
    return Telemetry(MetricsReporter(""), registry=CollectorRegistry())


def make_runtime(provider: Any = None, cache: Any = None) -> AgentRuntime:
    provider = provider or SimulatedProvider(latency_s=0, tokens_per_second=0)
    return AgentRuntime(load_catalog(), {"simulated": provider}, make_telemetry(), cache)


class RunningWorker:
    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.stop = asyncio.Event()
        self.task = asyncio.create_task(worker.run(self.stop))

    async def shutdown(self) -> None:
        self.stop.set()
        try:
            await asyncio.wait_for(self.task, WAIT_S)
        finally:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task


def start_worker(
    addr: str,
    provider: Any = None,
    concurrency: int = 4,
    drain_timeout_s: float = 5.0,
    runtime: AgentRuntime | None = None,
) -> RunningWorker:
    options = WorkerOptions(
        orchestrator_addr=addr,
        worker_id="worker-under-test",
        concurrency=concurrency,
        drain_timeout_s=drain_timeout_s,
        reconnect_initial_s=0.05,
        reconnect_max_s=0.2,
    )
    runtime = runtime or make_runtime(provider)
    return RunningWorker(Worker(options, runtime, make_telemetry()))


class HubServer:
    """The fake orchestrator's server; `restart` brings up a fresh hub on the same port."""

    def __init__(self, heartbeat_interval_s: float) -> None:
        self.heartbeat_interval_s = heartbeat_interval_s
        self.hub = FakeHub(heartbeat_interval_s)
        self.server: grpc.aio.Server | None = None
        self.port = 0

    @property
    def addr(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def start(self) -> None:
        self.hub = FakeHub(self.heartbeat_interval_s)
        self.server, self.port = await start_server(
            self.hub, worker_hub_pb2_grpc.add_WorkerHubServiceServicer_to_server, self.port
        )

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.stop(None)
            self.server = None


@pytest.fixture
def heartbeat_interval_s() -> float:
    return 5.0


@pytest_asyncio.fixture
async def hub_server(heartbeat_interval_s: float) -> AsyncIterator[HubServer]:
    server = HubServer(heartbeat_interval_s)
    await server.start()
    yield server
    await server.stop()


@pytest_asyncio.fixture
async def worker_factory() -> AsyncIterator[Callable[..., RunningWorker]]:
    started: list[RunningWorker] = []

    def factory(*args: Any, **kwargs: Any) -> RunningWorker:
        running = start_worker(*args, **kwargs)
        started.append(running)
        return running

    yield factory
    for running in started:
        await running.shutdown()


@pytest_asyncio.fixture
async def cache_server() -> AsyncIterator[tuple[FakeCache, str]]:
    cache = FakeCache()
    server, port = await start_server(cache, cache_pb2_grpc.add_CacheServiceServicer_to_server)
    yield cache, f"127.0.0.1:{port}"
    await server.stop(None)


@pytest.fixture
def runtime_factory() -> Callable[..., AgentRuntime]:
    return make_runtime


class FakeOpenAI:
    """Answers `/v1/chat/completions` as a stream of SSE deltas.

    `respond(body)` decides each answer: an int is an HTTP error status; a dict may hold
    `text`, `reasoning` and `tool_calls` ([{id, name, arguments}]); arguments are streamed
    in several pieces, as real servers do. By default it answers "Hello world".
    """

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.respond: Callable[[dict[str, Any]], int | dict[str, Any]] = lambda body: {
            "text": "Hello world"
        }
        self.base_url = ""
        self.retry_after = "0"  # the Retry-After of error answers
        self.delay_s = 0.0  # how long each answer takes
        self.in_flight = self.max_in_flight = 0

    async def completions(self, request: Request) -> Response:
        body = orjson.loads(await request.body())
        self.requests.append(body)
        self.headers.append(dict(request.headers))
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await asyncio.sleep(self.delay_s)
        finally:
            self.in_flight -= 1
        reply = self.respond(body)
        if isinstance(reply, int):
            error = {"error": {"message": f"failure {reply}", "type": "test"}}
            headers = {"Retry-After": self.retry_after}
            return JSONResponse(error, status_code=reply, headers=headers)
        return StreamingResponse(self._events(reply), media_type="text/event-stream")

    async def _events(self, reply: dict[str, Any]) -> AsyncIterator[bytes]:
        base = {"id": "c1", "object": "chat.completion.chunk", "model": "m"}

        def event(delta: dict[str, Any]) -> bytes:
            chunk = {**base, "choices": [{"index": 0, "delta": delta}]}
            return b"data: " + orjson.dumps(chunk) + b"\n\n"

        yield b": keep-alive comment\n\n"
        yield event({"role": "assistant"})
        if reply.get("reasoning"):
            yield event({"reasoning_content": reply["reasoning"]})
        text = reply.get("text", "")
        for piece in (text[:3], text[3:5], text[5:]):
            if piece:
                yield event({"content": piece})
        for index, call in enumerate(reply.get("tool_calls", ())):
            args = call["arguments"]
            args = args if isinstance(args, str) else orjson.dumps(args).decode()
            cut = len(args) // 2
            first = {"id": call.get("id", f"call_{index}"), "type": "function"}
            first["function"] = {"name": call["name"], "arguments": args[:cut]}
            yield event({"tool_calls": [{"index": index, **first}]})
            yield event({"tool_calls": [{"index": index, "function": {"arguments": args[cut:]}}]})
        usage = {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}
        yield b"data: " + orjson.dumps({**base, "choices": [], "usage": usage}) + b"\n\n"
        yield b"data: [DONE]\n\n"


@contextlib.asynccontextmanager
async def serving(app: Starlette) -> AsyncIterator[str]:
    """Serve an app on a free loopback port; yields its base URL."""
    server = HttpServer(app, "127.0.0.1:0")
    server.start()
    await asyncio.sleep(0)
    try:
        yield f"http://{server.addr}"
    finally:
        await server.stop()


async def serve_openai() -> AsyncIterator[FakeOpenAI]:
    fake = FakeOpenAI()
    app = Starlette(routes=[Route("/v1/chat/completions", fake.completions, methods=["POST"])])
    async with serving(app) as url:
        fake.base_url = f"{url}/v1"
        yield fake


@pytest_asyncio.fixture
async def fake_openai() -> AsyncIterator[FakeOpenAI]:
    async for fake in serve_openai():
        yield fake


@pytest_asyncio.fixture
async def second_openai() -> AsyncIterator[FakeOpenAI]:
    """Another OpenAI-compatible server, for two endpoints (or a fallback) at once."""
    async for fake in serve_openai():
        yield fake


@contextlib.asynccontextmanager
async def serve_post(path: str, endpoint: Any) -> AsyncIterator[str]:
    """Serves one POST endpoint on a loopback port; yields the `…/v1` base URL."""
    async with serving(Starlette(routes=[Route(path, endpoint, methods=["POST"])])) as url:
        yield f"{url}/v1"


class FakeEmbeddingsAPI:
    """Answers `/v1/embeddings` with the vector `vectors[text]` (or a hashing vector of
    `dimension`), recording each request; `status` forces an error answer."""

    def __init__(self, dimension: int = 8) -> None:
        self.dimension = dimension
        self.vectors: dict[str, list[float]] = {}
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.status = 200
        self.base_url = ""
        self._fallback = HashingEmbedder(dimension)

    async def embeddings(self, request: Request) -> Response:
        body = orjson.loads(await request.body())
        self.requests.append(body)
        self.headers.append(dict(request.headers))
        if self.status != 200:
            return JSONResponse({"error": {"message": "nope"}}, status_code=self.status)
        data = [
            {
                "object": "embedding",
                "index": i,
                "embedding": self.vectors.get(text) or self._fallback.embed_one(text),
            }
            for i, text in enumerate(body["input"])
        ]
        data.reverse()  # servers may answer out of order: the index says which is which
        return JSONResponse({"object": "list", "data": data, "model": body["model"]})


@pytest_asyncio.fixture
async def embeddings_api() -> AsyncIterator[FakeEmbeddingsAPI]:
    fake = FakeEmbeddingsAPI()
    async with serve_post("/v1/embeddings", fake.embeddings) as fake.base_url:
        yield fake


@pytest.fixture
def test_tools_importable(monkeypatch: pytest.MonkeyPatch) -> str:
    """Puts this directory on sys.path so agent files may name `tools_for_tests:...`."""
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    yield "tools_for_tests"
    sys.modules.pop("tools_for_tests", None)


@pytest.fixture
def telemetry() -> Telemetry:
    return make_telemetry()


class FakeAnthropic:
    """Answers `/v1/messages` as Anthropic's stream of typed SSE events.

    `respond(body)` decides each answer: an int is an HTTP error status; a dict may hold
    `text`, `thinking` and `tool_calls` ([{id, name, arguments}]); text and tool input
    JSON are streamed in several pieces. By default it answers "Hello world".
    """

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.respond: Callable[[dict[str, Any]], int | dict[str, Any]] = lambda body: {
            "text": "Hello world"
        }
        self.base_url = ""
        self.retry_after = "0"

    async def messages(self, request: Request) -> Response:
        body = orjson.loads(await request.body())
        self.requests.append(body)
        self.headers.append(dict(request.headers))
        reply = self.respond(body)
        if isinstance(reply, int):
            error = {"type": "error", "error": {"type": "overloaded_error", "message": "busy"}}
            headers = {"Retry-After": self.retry_after}
            return JSONResponse(error, status_code=reply, headers=headers)
        return StreamingResponse(self._events(reply), media_type="text/event-stream")

    async def _events(self, reply: dict[str, Any]) -> AsyncIterator[bytes]:
        def event(kind: str, data: dict[str, Any]) -> bytes:
            return (
                f"event: {kind}\ndata: ".encode() + orjson.dumps({"type": kind, **data}) + b"\n\n"
            )

        usage = {"input_tokens": 11, "output_tokens": 1, "cache_read_input_tokens": 2}
        yield event("message_start", {"message": {"id": "msg_1", "usage": usage}})
        yield event("ping", {})
        index = 0
        if reply.get("thinking"):
            yield event(
                "content_block_start",
                {"index": index, "content_block": {"type": "thinking", "thinking": ""}},
            )
            delta = {"type": "thinking_delta", "thinking": reply["thinking"]}
            yield event("content_block_delta", {"index": index, "delta": delta})
            yield event("content_block_stop", {"index": index})
            index += 1
        if text := reply.get("text", ""):
            yield event(
                "content_block_start",
                {"index": index, "content_block": {"type": "text", "text": ""}},
            )
            for piece in (text[:3], text[3:5], text[5:]):
                if piece:
                    delta = {"type": "text_delta", "text": piece}
                    yield event("content_block_delta", {"index": index, "delta": delta})
            yield event("content_block_stop", {"index": index})
            index += 1
        for call in reply.get("tool_calls", ()):
            args = call["arguments"]
            args = args if isinstance(args, str) else orjson.dumps(args).decode()
            block = {"type": "tool_use", "id": call["id"], "name": call["name"], "input": {}}
            yield event("content_block_start", {"index": index, "content_block": block})
            cut = len(args) // 2
            for piece in (args[:cut], args[cut:]):
                delta = {"type": "input_json_delta", "partial_json": piece}
                yield event("content_block_delta", {"index": index, "delta": delta})
            yield event("content_block_stop", {"index": index})
            index += 1
        stop = "tool_use" if reply.get("tool_calls") else "end_turn"
        yield event(
            "message_delta", {"delta": {"stop_reason": stop}, "usage": {"output_tokens": 5}}
        )
        yield event("message_stop", {})


@pytest_asyncio.fixture
async def fake_anthropic() -> AsyncIterator[FakeAnthropic]:
    fake = FakeAnthropic()
    app = Starlette(routes=[Route("/v1/messages", fake.messages, methods=["POST"])])
    async with serving(app) as url:
        fake.base_url = f"{url}/v1"
        yield fake


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    """A real redis-server on a free loopback port, for the shared rate limits."""
    binary = shutil.which("redis-server")
    assert binary, "redis-server is required (make deps installs it)"
    port = free_port()
    server = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(200):
            with contextlib.suppress(OSError):
                socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
                break
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        server.terminate()
        server.wait(10)


@pytest.fixture(scope="module")
def vector_addr() -> Iterator[str]:
    """A real vector service on a loopback port, one per test module."""
    with vector_server() as addr:
        yield addr


Samples = dict[tuple[str, tuple[tuple[str, str], ...]], Any]


def take_samples(client: MetricsClient) -> Samples:
    """What the client's next flush would send, by name and sorted labels (the framed
    request decoded, as the SDK's own tests read it)."""
    encoded = b"".join(_encode(client._take_all(time.monotonic())))
    request = metrics_pb2.IngestStreamRequest.FromString(encoded)
    return {(s.name, tuple(sorted(s.labels.items()))): s for s in request.samples}


@pytest.fixture
def client_samples() -> Callable[[MetricsClient], Samples]:
    return take_samples
