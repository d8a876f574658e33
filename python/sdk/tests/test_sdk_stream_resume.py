"""A task's event stream that breaks mid-way is reopened with Last-Event-ID: through a real
TCP proxy in front of the gateway that cuts the first event stream after its first chunk."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

from taskloom.sdk.client import TaskloomClient
from taskloom.sdk.retry import RetryPolicy


class CuttingProxy:
    """Forwards each connection to the gateway, one request per connection; the first
    `/events` request's connection is closed right after the first event with an id."""

    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname or "", parts.port or 80)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.heads: list[bytes] = []
        self.cut = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        with client, socket.create_connection(self.upstream) as server:
            head = b""
            while b"\r\n\r\n" not in head:
                data = client.recv(65536)
                if not data:
                    return
                head += data
            self.heads.append(head)
            # One request per connection: the server answers `Connection: close`.
            server.sendall(head.replace(b"\r\n", b"\r\nConnection: close\r\n", 1))
            cut_this = not self.cut and b"/events" in head.split(b"\r\n", 1)[0]
            self.cut = self.cut or cut_this
            threading.Thread(target=_pump, args=(client, server), daemon=True).start()
            if not cut_this:
                _pump(server, client)
                return
            answer = b""
            while (end := _end_of_first_event_with_id(answer)) is None:
                data = server.recv(65536)
                if not data:
                    return
                answer += data
            client.sendall(answer[:end])
            client.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self.listener.close()


def _pump(source: socket.socket, sink: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            sink.sendall(data)
        sink.shutdown(socket.SHUT_WR)
    except OSError:
        pass


def _end_of_first_event_with_id(answer: bytes) -> int | None:
    start = answer.find(b"\nid: ")
    if start < 0:
        return None
    end = answer.find(b"\r\n\r\n", start)
    return None if end < 0 else end + 4


@pytest.fixture
def proxy(base_url: str) -> Iterator[CuttingProxy]:
    proxy = CuttingProxy(base_url)
    yield proxy
    proxy.close()


def test_a_broken_stream_resumes_after_the_last_event_it_saw(proxy: CuttingProxy) -> None:
    policy = RetryPolicy(backoff=0.01)
    with TaskloomClient(proxy.url, api_key="k1", retry=policy) as client:
        task = client.submit_task("echo", "x y z")
        events = list(client.stream_events(task.id))
    assert proxy.cut
    chunks = [e for e in events if e.event == "chunk"]
    # Each chunk once, in order, though the first connection ended after "x".
    assert [c.data["text"] for c in chunks] == ["x", "y", "z"]
    assert events[-1].event == "done" and events[-1].task().status == "succeeded"
    resumed = [h for h in proxy.heads if b"/events" in h][1]
    assert f"last-event-id: {chunks[0].id}".encode() in resumed.lower()
