"""A fake OpenAI-compatible chat server for the `providers` benchmark: answers every
`POST .../chat/completions` at once with the same short streamed completion, and
`GET /stats` with how many completions it served and when the first and last came.

Hand-written over asyncio streams, HTTP/1.1 keep-alive only: the benchmark measures the
clients, so the server must cost far less than they do (a full ASGI stack would be the
bottleneck and hide the difference between them).

    python _fake_llm_server.py PORT
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

_CHUNKS = [
    {"choices": [{"index": 0, "delta": {"role": "assistant", "content": "Hello"}}]},
    {"choices": [{"index": 0, "delta": {"content": " world"}}]},
    {
        "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 7, "completion_tokens": 2, "total_tokens": 9},
    },
]
_BODY = (
    "".join(
        "data: "
        + json.dumps(
            {"id": "c1", "object": "chat.completion.chunk", "created": 0, "model": "m", **c}
        )
        + "\n\n"
        for c in _CHUNKS
    )
    + "data: [DONE]\n\n"
).encode()
_COMPLETION = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
    + f"content-length: {len(_BODY)}\r\n\r\n".encode()
    + _BODY
)


class Stats:
    def __init__(self) -> None:
        self.count = 0
        self.first = 0.0
        self.last = 0.0

    def hit(self) -> None:
        now = time.monotonic()
        if not self.count:
            self.first = now
        self.count += 1
        self.last = now

    def answer(self) -> bytes:
        body = json.dumps({"count": self.count, "span_s": self.last - self.first}).encode()
        self.__init__()  # type: ignore[misc]  # reading resets
        return (
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
            + f"content-length: {len(body)}\r\n\r\n".encode()
            + body
        )


async def serve(port: int) -> None:
    stats = Stats()

    async def connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                if length:
                    await reader.readexactly(length)
                if head.startswith(b"GET /stats"):
                    writer.write(stats.answer())
                else:
                    stats.hit()
                    writer.write(_COMPLETION)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(connection, "127.0.0.1", port, backlog=1024)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(serve(int(sys.argv[1])))
