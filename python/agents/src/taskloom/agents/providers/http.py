"""What the HTTP providers share: the client of one endpoint (pool, keep-alive, HTTP/2,
timeouts), reading a server-sent event stream, and turning an error response into a
`ProviderError` that carries the status and the server's `Retry-After`."""

from __future__ import annotations

import email.utils
import time
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import httpx
import orjson

from taskloom.agents.endpoints import ConnectionSettings
from taskloom.agents.providers.base import ProviderError, ProviderEvent

RETRYABLE_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504, 529})


def build_client(connection: ConnectionSettings, headers: Mapping[str, str]) -> httpx.AsyncClient:
    """One pooled client per endpoint. HTTP/2 is offered through TLS's ALPN, so a server
    that does not speak it gets HTTP/1.1; plain-text URLs always use HTTP/1.1."""
    return httpx.AsyncClient(
        http2=connection.http2,
        limits=httpx.Limits(
            max_connections=connection.pool_size,
            max_keepalive_connections=connection.keepalive,
            keepalive_expiry=connection.keepalive_expiry_s,
        ),
        timeout=httpx.Timeout(
            connection.read_timeout_s,
            connect=connection.connect_timeout_s,
            pool=connection.connect_timeout_s,
        ),
        headers=dict(headers),
    )


def retry_after_seconds(value: str | None) -> float | None:
    """Parse a Retry-After header: delta-seconds or an HTTP date."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def error_detail(response: httpx.Response) -> str:
    """The message of an error body in the OpenAI or Anthropic shape, else its text."""
    try:
        data = orjson.loads(response.content)
        if isinstance(data, dict) and isinstance(data.get("error"), dict):
            return str(data["error"].get("message", data["error"]))
    except orjson.JSONDecodeError:
        pass
    return response.text[:500] or response.reason_phrase


async def status_error(name: str, response: httpx.Response) -> ProviderError:
    """The error of a non-200 answer (its body read), retryable for 408/409/429/5xx."""
    await response.aread()
    status = response.status_code
    return ProviderError(
        f"{name} returned HTTP {status}: {error_detail(response)}",
        retryable=status in RETRYABLE_STATUS,
        status=status,
        retry_after_s=retry_after_seconds(response.headers.get("retry-after")),
    )


def transport_error(name: str, err: httpx.TransportError) -> ProviderError:
    """Connection refused/reset, timeouts: worth another attempt."""
    return ProviderError(f"{name} request failed: {str(err) or type(err).__name__}", retryable=True)


async def sse_data(response: httpx.Response) -> AsyncIterator[str]:
    """The `data:` payloads of a server-sent event stream; comments, `event:` and `id:`
    lines are skipped (both APIs repeat the event type inside the data)."""
    async for line in response.aiter_lines():
        if line.startswith("data:"):
            yield line[5:].strip()


async def post_events(
    client: httpx.AsyncClient,
    url: str,
    body: Mapping[str, Any],
    name: str,
    read: Callable[[httpx.Response], AsyncIterator[ProviderEvent]],
) -> AsyncIterator[ProviderEvent]:
    """POST a streaming request and `read` its events; failures as `ProviderError`s."""
    try:
        async with client.stream(
            "POST", url, content=orjson.dumps(body), headers={"Content-Type": "application/json"}
        ) as response:
            if response.status_code != 200:
                raise await status_error(name, response)
            async for event in read(response):
                yield event
    except httpx.TransportError as err:
        raise transport_error(name, err) from err
