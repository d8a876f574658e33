"""The `python` tool's second sandbox backend: each call runs in a Docker container of its
own, started ahead by the same pool as bubblewrap's (tools/sandbox.py) and thrown away after.

The container has no network (`network_mode: none`), a read-only root, size-limited tmpfs
mounts for its working directory and /tmp, no capabilities, no new privileges, an
unprivileged user, and an init (docker-init) so that the bootstrap is not PID 1 (which
ignores the limit signals). The bootstrap and its limits are bubblewrap's: it reads the limits
line and the code from stdin (the container's, through an attach), the worker enforces wall
time and output size and removes the container at the end. The engine is reached through
the `docker` SDK; its blocking calls run in threads.

Each container names the worker process that started it (label `org.taskloom.sandbox.owner`:
host name, pid and the process's start time, so that a reused pid is not mistaken for it).
A worker killed with SIGKILL cannot remove its pre-started containers; a worker starting on
the same host removes those whose process is gone (`remove_stale`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from pathlib import Path
from typing import Any

import docker
import docker.errors
import structlog
from docker.api.client import APIClient

from taskloom.agents.catalog.spec import SandboxLimits
from taskloom.agents.tools.sandbox import (
    BOOTSTRAP,
    OutputExceeded,
    SandboxConfig,
    SandboxPool,
    SandboxRun,
    SandboxUnavailable,
    StartedSandbox,
    limits_header,
)

log = structlog.get_logger(__name__)

LABEL = "org.taskloom.sandbox"
OWNER_LABEL = "org.taskloom.sandbox.owner"
_STDOUT, _STDERR = 1, 2


def process_identity(pid: int) -> str | None:
    """`pid:start-time` of a running process (Linux /proc), None when it is gone. The start
    time (clock ticks since boot) tells a reused pid from the process that had it."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # Field 22, counted after the ")" that closes the command name (which may hold spaces).
    return f"{pid}:{stat.rsplit(')', 1)[1].split()[19]}"


def owner() -> str:
    """This worker process as its containers name it: `host/pid:start-time`."""
    return f"{socket.gethostname()}/{process_identity(os.getpid())}"


def stale_owner(label: str, me: str) -> bool:
    """Whether a container's owner label names a process of this host that is gone. Other
    hosts' containers are never stale here: their processes cannot be seen."""
    host, _, identity = label.partition("/")
    my_host, _, my_identity = me.partition("/")
    if host != my_host or identity == my_identity:
        return False
    pid, _, _ = identity.partition(":")
    return not pid.isdigit() or process_identity(int(pid)) != identity


def remove_stale(api: APIClient) -> list[str]:
    """Removes the sandbox containers of this host's workers that are gone; their ids."""
    if process_identity(os.getpid()) is None:
        return []  # no /proc: no process can be told gone, so nothing is removed
    me = owner()
    removed = []
    for container in api.containers(all=True, filters={"label": [LABEL, OWNER_LABEL]}):
        if stale_owner(container["Labels"][OWNER_LABEL], me):
            with contextlib.suppress(docker.errors.NotFound):
                api.remove_container(container["Id"], force=True)
            removed.append(str(container["Id"]))
    if removed:
        log.info("removed the sandbox containers of workers that are gone", count=len(removed))
    return removed


class DockerSandbox:
    """One started container waiting on stdin for its limits and code."""

    def __init__(self, api: APIClient, container_id: str, max_file_bytes: int) -> None:
        self._api = api
        self.container_id = container_id
        self._max_file_bytes = max_file_bytes
        self._removed = False
        self._attached: socket.socket | None = None

    @property
    def alive(self) -> bool:
        return not self._removed

    async def run(self, code: str, limits: SandboxLimits) -> SandboxRun:
        loop = asyncio.get_running_loop()
        started = loop.time()
        run = SandboxRun(exit_code=-1, stdout="", stderr="", wall_s=0.0)
        payload = limits_header(limits, self._max_file_bytes) + code.encode()
        try:
            async with asyncio.timeout(limits.wall_s):
                out, err = await asyncio.to_thread(
                    self._exchange, payload, limits.output_bytes, limits.wall_s
                )
                status = await asyncio.to_thread(self._api.wait, self.container_id)
            run.exit_code = int(status["StatusCode"])
            run.stdout = out.decode(errors="replace")
            run.stderr = err.decode(errors="replace")
        except TimeoutError:
            run.timed_out = True
        except OutputExceeded:
            run.output_exceeded = True
        except (docker.errors.DockerException, OSError) as error:
            raise SandboxUnavailable(f"the docker sandbox failed: {error}") from error
        finally:
            # Removing the container also ends a thread still reading its output.
            await self.kill()
            run.wall_s = loop.time() - started
        return run

    def _exchange(self, payload: bytes, output_bytes: int, wall_s: float) -> tuple[bytes, bytes]:
        """Write the payload to the container's stdin, close it, read stdout and stderr to
        their end; OutputExceeded once together they pass output_bytes. No read waits past
        the wall time (and kill() shuts the socket, waking one that waits)."""
        params = {"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1}
        stream: Any = self._api.attach_socket(self.container_id, params=params)
        # The attach is a hijacked HTTP connection: its socket, half-closed after the code,
        # is the container's stdin (stdin_once closes that when the writer does).
        raw: socket.socket = getattr(stream, "_sock", stream)
        self._attached = raw
        try:
            raw.settimeout(wall_s)
            raw.sendall(payload)
            raw.shutdown(socket.SHUT_WR)
            output: dict[int, bytearray] = {_STDOUT: bytearray(), _STDERR: bytearray()}
            budget = output_bytes
            # The engine multiplexes both into frames: a header (stream, 0, 0, 0, size), data.
            while header := _receive(raw, 8):
                kind, size = header[0], int.from_bytes(header[4:], "big")
                budget -= size
                if budget < 0:
                    raise OutputExceeded()
                output.setdefault(kind, bytearray()).extend(_receive(raw, size))
            return bytes(output[_STDOUT]), bytes(output[_STDERR])
        finally:
            stream.close()

    async def kill(self) -> None:
        if self._removed:
            return
        self._removed = True
        if self._attached is not None:
            with contextlib.suppress(OSError):
                self._attached.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(docker.errors.NotFound):
            await asyncio.to_thread(self._api.remove_container, self.container_id, force=True)


def _receive(raw: socket.socket, size: int) -> bytes:
    """Exactly size bytes; b"" at the end of the stream."""
    data = bytearray()
    while len(data) < size:
        piece = raw.recv(size - len(data))
        if not piece:
            if data:
                raise ConnectionError("the docker attach stream ended inside a frame")
            return b""
        data += piece
    return bytes(data)


class DockerSandboxPool(SandboxPool):
    """SandboxPool with containers for sandboxes."""

    def __init__(self, config: SandboxConfig) -> None:
        super().__init__(config)
        self._client: docker.DockerClient | None = None
        self._owner = owner()

    def _connect(self) -> docker.DockerClient:
        if self._client is None:
            url = self.config.docker_url
            self._client = docker.DockerClient(base_url=url) if url else docker.from_env()
        return self._client

    async def _check(self) -> None:
        image = self.config.docker_image
        where = self.config.docker_url or "DOCKER_HOST or the local socket"
        try:
            client = await asyncio.to_thread(self._connect)
            await asyncio.to_thread(client.ping)
        except docker.errors.DockerException as err:
            raise SandboxUnavailable(
                f"the python tool's docker sandbox cannot reach the Docker engine ({where}): "
                f"{err}; start dockerd, or set TASKLOOM_SANDBOX_BACKEND=bubblewrap"
            ) from err
        try:
            await asyncio.to_thread(remove_stale, client.api)
        except docker.errors.DockerException as err:
            # Leftovers cost disk and memory, not correctness: the sandbox still starts.
            log.warning("could not remove stale sandbox containers", error=str(err))
        try:
            await asyncio.to_thread(client.images.get, image)
        except docker.errors.ImageNotFound as err:
            raise SandboxUnavailable(
                f"the docker sandbox image {image!r} is not in the engine: "
                "scripts/base-image.sh makes it, or set TASKLOOM_SANDBOX_DOCKER_IMAGE"
            ) from err

    async def _spawn(self) -> StartedSandbox:
        try:
            api = (await asyncio.to_thread(self._connect)).api
            container_id = await asyncio.to_thread(self._create, api)
            await asyncio.to_thread(api.start, container_id)
        except docker.errors.DockerException as err:
            raise SandboxUnavailable(f"cannot start a docker sandbox: {err}") from err
        return DockerSandbox(api, container_id, self.config.tmpfs_bytes)

    def _create(self, api: APIClient) -> str:
        """A container waiting on stdin. Not `detach`ed: the SDK then sets StdinOnce, so
        that the end of the code closes the container's stdin."""
        cfg = self.config
        # Owned by the sandbox's user: the engine drops a tmpfs mode on the working directory.
        tmpfs = f"size={cfg.tmpfs_bytes},uid={cfg.uid},gid={cfg.uid}"
        host_config = api.create_host_config(
            init=True,
            network_mode="none",
            read_only=True,
            tmpfs={"/sandbox": tmpfs, "/tmp": f"{tmpfs},mode=1777"},
            cap_drop=["ALL"],
            security_opt=["no-new-privileges"],
        )
        created = api.create_container(
            cfg.docker_image,
            [cfg.docker_python, "-I", "-S", "-c", BOOTSTRAP],
            stdin_open=True,
            user=f"{cfg.uid}:{cfg.uid}",
            working_dir="/sandbox",
            environment={"HOME": "/sandbox", "LANG": "C.UTF-8"},
            labels={LABEL: "python", OWNER_LABEL: self._owner},
            host_config=host_config,
        )
        return str(created["Id"])

    async def aclose(self) -> None:
        # Let the containers being started finish starting, so that they are removed too
        # (cancelling leaves the thread creating one running).
        await asyncio.gather(*self._refills, return_exceptions=True)
        await super().aclose()
        if self._client is not None:
            self._client.close()
