"""The docker sandbox's containers name the worker process that started them, and a starting
worker removes those of its host whose process is gone (a worker killed with SIGKILL leaves
its pre-started containers behind). The tests marked `docker` run on a real engine in `make
compose-test`."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
from collections.abc import Iterator

import docker
import docker.errors
import pytest

from taskloom.agents.tools.docker_sandbox import (
    LABEL,
    OWNER_LABEL,
    DockerSandbox,
    owner,
    process_identity,
    stale_owner,
)
from taskloom.agents.tools.sandbox import SandboxConfig, sandbox_pool

# The image scripts/base-image.sh makes (compose-test passes the name it made).
DOCKER_IMAGE = os.environ.get("TASKLOOM_SANDBOX_DOCKER_IMAGE", SandboxConfig.docker_image)
HOST = socket.gethostname()


def gone_identity() -> str:
    """The identity of a process that has exited."""
    child = subprocess.Popen(["sleep", "60"])
    identity = process_identity(child.pid)
    child.kill()
    child.wait()
    assert identity is not None and process_identity(child.pid) is None
    return identity


@pytest.fixture
def live_identity() -> Iterator[str]:
    """The identity of another process that is running."""
    child = subprocess.Popen(["sleep", "600"])
    try:
        identity = process_identity(child.pid)
        assert identity is not None
        yield identity
    finally:
        child.kill()
        child.wait()


def test_a_process_identity_holds_its_start_time() -> None:
    mine = process_identity(os.getpid())
    assert mine is not None and mine.startswith(f"{os.getpid()}:")
    assert owner() == f"{HOST}/{mine}"


def test_only_a_gone_process_of_this_host_is_stale(live_identity: str) -> None:
    me = owner()
    assert stale_owner(f"{HOST}/{gone_identity()}", me)
    # Its pid now belongs to another process: a different start time.
    assert stale_owner(f"{HOST}/{os.getpid()}:1", me)
    assert not stale_owner(me, me)
    assert not stale_owner(f"{HOST}/{live_identity}", me)
    # Another host's processes cannot be seen from here.
    assert not stale_owner(f"elsewhere/{gone_identity()}", me)


@pytest.mark.docker
@pytest.mark.asyncio
async def test_a_starting_worker_removes_the_containers_of_its_hosts_gone_workers(
    live_identity: str,
) -> None:
    client = docker.from_env()
    owners = {
        "gone": f"{HOST}/{gone_identity()}",
        "pid reused": f"{HOST}/{os.getpid()}:1",
        "live": f"{HOST}/{live_identity}",
        "other host": f"elsewhere/{gone_identity()}",
    }
    made = {
        name: client.api.create_container(
            DOCKER_IMAGE, ["true"], labels={LABEL: "python", OWNER_LABEL: label}
        )["Id"]
        for name, label in owners.items()
    }
    # Made by a worker from before the owner label: whose it was cannot be told, so it stays.
    made["unowned"] = client.api.create_container(DOCKER_IMAGE, ["true"], labels={LABEL: "python"})[
        "Id"
    ]
    pool = sandbox_pool(SandboxConfig(backend="docker", pool_size=1, docker_image=DOCKER_IMAGE))
    try:
        await pool.start()
        left = {c["Id"] for c in client.api.containers(all=True, filters={"label": LABEL})}
        assert {name for name, cid in made.items() if cid in left} == {
            "live",
            "other host",
            "unowned",
        }
        # The pool's own containers name this process as their owner.
        sandbox = await pool.acquire()
        assert isinstance(sandbox, DockerSandbox)
        labels = client.api.inspect_container(sandbox.container_id)["Config"]["Labels"]
        assert labels[OWNER_LABEL] == owner()
        await sandbox.kill()
    finally:
        await pool.aclose()
        for cid in made.values():
            with contextlib.suppress(docker.errors.NotFound):
                client.api.remove_container(cid, force=True)
        client.close()
