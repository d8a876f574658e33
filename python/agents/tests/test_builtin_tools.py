"""The `calculator` and `http_fetch` built-ins, and the tool result cache."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest
import pytest_asyncio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from taskloom.agents.cache_client import CacheClient
from taskloom.agents.catalog.spec import AgentSpec
from taskloom.agents.http_server import HttpServer
from taskloom.agents.providers import ToolCall
from taskloom.agents.tools import TaskInfo, ToolContext, ToolError, ToolRegistry, builtin_factories
from taskloom.agents.tools.calculator import evaluate
from taskloom.agents.tools.http_fetch import host_allowed
from taskloom.agents.tools.registry import TOOL_NAMESPACE, tool_cache_key

pytestmark = pytest.mark.asyncio


async def test_calculator_computes_arithmetic() -> None:
    assert evaluate("(2 + 3) * sqrt(16) / 2") == 10.0
    assert evaluate("7 // 2 + 7 % 2 - -1") == 5
    assert evaluate("round(pi, 2)") == 3.14


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("__import__('os').system('id')", "is not allowed"),
        ("open('/etc/passwd')", "is not allowed"),
        ("(1).__class__", "is not allowed"),
        ("9 ** 9 ** 9", "beyond the limit"),
        ("10 ** 999 * 10 ** 999", "out of range"),
        ("1 / 0", "cannot compute"),
        ("2 +", "not an arithmetic expression"),
        ("'a' * 3", "is not allowed"),
    ],
)
async def test_calculator_refuses_everything_else(expression: str, expected: str) -> None:
    with pytest.raises(ToolError, match=expected):
        evaluate(expression)


class Site:
    """A local HTTP site for http_fetch: a page, a big page, a redirect off the allow-list."""

    def __init__(self) -> None:
        self.hits = 0
        self.addr = ""
        self.release = asyncio.Event()

    async def page(self, request: Request) -> Response:
        self.hits += 1
        body = (await request.body()).decode()
        return PlainTextResponse(f"{request.method} {body}".strip())

    async def big(self, request: Request) -> Response:
        return PlainTextResponse("x" * 10_000)

    async def away(self, request: Request) -> Response:
        return RedirectResponse("http://not-allowed.example/steal")

    async def slow(self, request: Request) -> Response:
        await self.release.wait()
        return PlainTextResponse("late")


@pytest_asyncio.fixture
async def site() -> AsyncIterator[Site]:
    served = Site()
    app = Starlette(
        routes=[
            Route("/page", served.page, methods=["GET", "POST"]),
            Route("/big", served.big),
            Route("/away", served.away),
            Route("/slow", served.slow),
        ]
    )
    server = HttpServer(app, "127.0.0.1:0")
    server.start()
    served.addr = server.addr
    yield served
    served.release.set()
    await server.stop()


async def fetch(site: Site, allow: list[str], **arguments: Any) -> dict[str, Any]:
    options = {"allow_hosts": allow, "max_bytes": 5000, "timeout_s": 0.5}
    spec = AgentSpec.model_validate(
        {"name": "fetcher", "model": "m", "tools": [{"name": "http_fetch", "options": options}]}
    )
    async with httpx.AsyncClient() as client:
        toolset = ToolRegistry(builtin_factories(http=client)).toolset(spec)
        call = ToolCall("c", "http_fetch", orjson.dumps(arguments).decode())
        [outcome] = await toolset.execute([call], ToolContext(TaskInfo("t", "fetcher")))
    return {"ok": outcome.ok, **orjson.loads(outcome.content)}


async def test_http_fetch_gets_and_posts_to_allowed_hosts(site: Site) -> None:
    url = f"http://{site.addr}/page"
    got = await fetch(site, [site.addr], url=url)
    assert got["ok"] and got["status"] == 200 and got["body"] == "GET"
    posted = await fetch(site, [site.addr], url=url, method="POST", body="hello")
    assert posted["body"] == "POST hello"


async def test_http_fetch_refuses_hosts_off_the_allow_list(site: Site) -> None:
    refused = await fetch(site, ["example.com"], url=f"http://{site.addr}/page")
    assert refused["ok"] is False and "not on the allow-list (example.com)" in refused["error"]
    assert site.hits == 0
    redirected = await fetch(site, [site.addr], url=f"http://{site.addr}/away")
    assert redirected["ok"] is False
    assert "http://not-allowed.example/steal is not on the allow-list" in redirected["error"]
    wrong_method = await fetch(site, [site.addr], url=f"http://{site.addr}/page", method="PUT")
    assert wrong_method["ok"] is False and "$.method: 'PUT' is not one of" in wrong_method["error"]


async def test_http_fetch_limits_size_and_time(site: Site) -> None:
    big = await fetch(site, [site.addr], url=f"http://{site.addr}/big")
    assert big["ok"] is False and "larger than 5000 bytes" in big["error"]
    slow = await fetch(site, [site.addr], url=f"http://{site.addr}/slow")
    assert slow["ok"] is False and "did not answer within 0.5 s" in slow["error"]


async def test_allow_list_patterns() -> None:
    assert host_allowed("https://api.example.com/x", ("*.example.com",))
    assert not host_allowed("https://example.com.evil.io/", ("example.com",))
    assert host_allowed("http://127.0.0.1:8080/", ("127.0.0.1:8080",))
    assert not host_allowed("http://127.0.0.1:9090/", ("127.0.0.1:8080",))


async def test_cacheable_tool_results_are_cached_per_tenant(cache_server) -> None:
    fake_cache, addr = cache_server
    spec = AgentSpec.model_validate(
        {
            "name": "calc",
            "model": "m",
            "tools": [{"name": "calculator", "cacheable": True, "cache_ttl_s": 60}],
        }
    )
    cache = CacheClient(addr)
    registry = ToolRegistry(builtin_factories(), cache=cache)
    toolset = registry.toolset(spec)

    async def call(expression: str, tenant: str) -> Any:
        arguments = orjson.dumps({"expression": expression}).decode()
        context = ToolContext(TaskInfo("t", "calc", tenant=tenant))
        [outcome] = await toolset.execute([ToolCall("c", "calculator", arguments)], context)
        return outcome

    try:
        first = await call("1 + 1", "a")
        again = await call("1 + 1", "a")
        other_tenant = await call("1 + 1", "b")
        failed = await call("1 / 0", "a")
    finally:
        await cache.aclose()
    assert (first.cached, again.cached, other_tenant.cached) == (False, True, False)
    assert again.value == {"result": 2}
    assert failed.ok is False
    key = tool_cache_key("calculator", {"expression": "1 + 1"}, "a")
    assert fake_cache.data[(TOOL_NAMESPACE, key)] == b'{"result":2}'
    # Two successes cached (tenants a and b); the failure was not.
    assert len(fake_cache.data) == 2
