"""The `http_fetch` tool: GET or POST to hosts on the agent's allow-list, with a size and a
time limit. Redirects are followed only while they stay on allowed hosts."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import httpx

from taskloom.agents.catalog.spec import AgentSpec, HttpFetchOptions, ToolDecl
from taskloom.agents.tools.base import FunctionTool, ToolContext, ToolError, declared_policy

MAX_REDIRECTS = 5

PARAMETERS = {
    "type": "object",
    "properties": {
        "url": {"type": "string", "pattern": "^https?://", "maxLength": 2048},
        "method": {"type": "string", "enum": ["GET", "POST"], "default": "GET"},
        "body": {"type": "string", "maxLength": 1_000_000},
        "headers": {
            "type": "object",
            "additionalProperties": {"type": "string"},
            "maxProperties": 20,
        },
    },
    "required": ["url"],
    "additionalProperties": False,
}


def host_allowed(url: str, allow_hosts: tuple[str, ...]) -> bool:
    """`example.com` allows that host; `*.example.com` its subdomains; `host:port` one port."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    with_port = f"{host}:{parts.port}" if parts.port else host
    for allowed in allow_hosts:
        allowed = allowed.lower()
        if allowed.startswith("*.") and host.endswith(allowed[1:]):
            return True
        if allowed in (host, with_port):
            return True
    return False


class HttpFetch:
    def __init__(self, options: HttpFetchOptions, client: httpx.AsyncClient) -> None:
        self._options = options
        self._client = client

    async def __call__(self, arguments: dict[str, Any], context: ToolContext) -> dict[str, Any]:
        opts = self._options
        url = arguments["url"]
        method = arguments.get("method", "GET")
        content = arguments.get("body")
        headers = arguments.get("headers") or {}
        for _ in range(MAX_REDIRECTS + 1):
            if not host_allowed(url, opts.allow_hosts):
                allowed = ", ".join(opts.allow_hosts) or "none"
                raise ToolError(f"host of {url} is not on the allow-list ({allowed})")
            request = self._client.build_request(
                method, url, content=content, headers=headers, timeout=opts.timeout_s
            )
            try:
                response = await self._client.send(request, stream=True)
            except httpx.TimeoutException:
                raise ToolError(f"{url} did not answer within {opts.timeout_s:g} s") from None
            except httpx.HTTPError as err:
                raise ToolError(f"request to {url} failed: {err}") from None
            try:
                if response.is_redirect and "location" in response.headers:
                    url = str(response.url.join(response.headers["location"]))
                    if response.status_code in (301, 302, 303):
                        method, content = "GET", None
                    continue
                body = bytearray()
                async for piece in response.aiter_bytes():
                    body += piece
                    if len(body) > opts.max_bytes:
                        raise ToolError(
                            f"the response of {url} is larger than {opts.max_bytes} bytes"
                        )
                return {
                    "status": response.status_code,
                    "content_type": response.headers.get("content-type", ""),
                    "body": body.decode(response.encoding or "utf-8", errors="replace"),
                }
            finally:
                await response.aclose()
        raise ToolError(f"more than {MAX_REDIRECTS} redirects")


def http_fetch_tool(client: httpx.AsyncClient) -> Any:
    def factory(decl: ToolDecl, spec: AgentSpec) -> FunctionTool:
        options: HttpFetchOptions = decl.builtin_options()
        return FunctionTool(
            name=decl.name,
            description=decl.description
            or "Fetch a URL with GET or POST (allowed hosts: "
            + (", ".join(options.allow_hosts) or "none")
            + ").",
            parameters=PARAMETERS,
            run=HttpFetch(options, client),
            policy=declared_policy(decl, options.timeout_s + 1),
        )

    return factory
