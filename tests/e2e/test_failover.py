"""A leader and a standby orchestrator on one Redis, a Python worker and the gateway given both
addresses: the leader is killed with SIGKILL while tasks are submitted through the gateway; the
standby takes over, the worker and the gateway follow it, and every accepted task succeeds with
exactly one result recorded in Redis."""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from taskloom.sdk.localstack import Ports, Stack, StackConfig, free_port

BIN = Path(__file__).resolve().parents[2] / "bin"
FAST_SIMULATION = {"TASKLOOM_SIM_LATENCY_MS": "30", "TASKLOOM_SIM_TOKENS_PER_SECOND": "400"}
TASKS = 40
KILL_AFTER = 15  # tasks accepted before the SIGKILL
RESULT_INDEX = b'"taskloom:orch:finished"'  # every write of a finished task adds it here


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    binary = shutil.which("redis-server")
    if binary is None:  # CI installs it (make deps): its absence is a failure, not a skip
        pytest.fail("redis-server is not on PATH: run `make deps`")
    port = free_port()
    argv = [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(tmp_path)]
    argv += ["--save", "", "--appendonly", "yes", "--appendfsync", "always"]
    server = subprocess.Popen(
        argv,
        stdout=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            assert time.monotonic() < deadline, "redis-server did not listen"
            time.sleep(0.05)
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        server.kill()
        server.wait()


class ResultWrites:
    """Counts, per task id, the terminal writes Redis applies (MONITOR shows every command,
    those inside transactions included)."""

    def __init__(self, redis_url: str) -> None:
        host, port = redis_url.removeprefix("redis://").split("/")[0].split(":")
        self.sock = socket.create_connection((host, int(port)))
        self.sock.sendall(b"MONITOR\r\n")
        self.counts: Counter[str] = Counter()
        self.lock = threading.Lock()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        with self.sock.makefile("rb") as lines:
            for line in lines:
                # +<time> [<db> <client>] "zadd" "taskloom:orch:finished" "<score>" "<id>"
                head, sep, rest = line.partition(RESULT_INDEX)
                if sep and head.lower().endswith(b'"zadd" '):
                    args = rest.split()
                    if len(args) == 2:
                        with self.lock:
                            self.counts[args[1].strip(b'"').decode()] += 1

    def of(self, task_id: str) -> int:
        with self.lock:
            return self.counts[task_id]

    def close(self) -> None:
        self.sock.close()


def orchestrator(
    state: Path, redis_url: str, ports: Ports, also: tuple[str, ...] = (), **env: str
) -> Stack:
    """A stack of the launcher with an orchestrator on the Redis store (and `also`)."""
    return Stack(
        StackConfig(
            bin_dir=BIN,
            state_dir=state,
            ports=ports,
            only=("orchestrator", *also),
            worker_env=FAST_SIMULATION,
            # A standby is alive, not ready: "started" is /healthz.
            ready_path="/healthz",
            env_overrides={
                "orchestrator": {"TASKLOOM_STORE": "redis", "TASKLOOM_REDIS_URL": redis_url},
                "worker": {
                    "TASKLOOM_CACHE_ADDR": "",
                    "TASKLOOM_METRICS_ADDR": "",
                    "TASKLOOM_VECTOR_ADDR": "",
                    **env,
                },
                "gateway": env,
            },
        )
    )


def ready(stack: Stack, name: str) -> bool:
    try:
        return httpx.get(f"{stack.service(name).base_url}/readyz").status_code == 200
    except httpx.HTTPError:
        return False


def wait_for(what: str, condition: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


@pytest.mark.usefixtures("local_processes")
def test_standby_takes_over_and_the_gateway_and_worker_follow(
    tmp_path: Path, redis_url: str
) -> None:
    results = ResultWrites(redis_url)
    ports_a, ports_b = Ports.random(), Ports.random()
    both = f"127.0.0.1:{ports_a.orchestrator_grpc},127.0.0.1:{ports_b.orchestrator_grpc}"
    leader = orchestrator(tmp_path / "a", redis_url, ports_a)
    leader.start()
    try:
        wait_for("the first orchestrator to lead", lambda: ready(leader, "orchestrator"))
        rest = orchestrator(
            tmp_path / "b",
            redis_url,
            ports_b,
            ("worker", "gateway"),
            TASKLOOM_ORCHESTRATOR_ADDR=both,
        )
        rest.start()
        try:
            assert not ready(rest, "orchestrator"), "two leaders"
            run_through_failover(leader, rest, results)
        finally:
            codes = rest.stop()
        assert codes == {"gateway": 0, "worker": 0, "orchestrator": 0}, codes
    finally:
        leader.stop()
        results.close()


def run_through_failover(leader: Stack, rest: Stack, results: ResultWrites) -> None:
    accepted: dict[str, str] = {}  # idempotency key -> task id
    with httpx.Client(base_url=rest.gateway_url, timeout=15.0) as client:
        wait_for("the worker to register", lambda: ready(rest, "worker"))
        killed_at = 0.0
        for i in range(TASKS):
            key = f"failover-{i}"
            while key not in accepted:  # a careful client retries with the same key
                response = client.post(
                    "/v1/tasks",
                    json={"agent": "assistant", "input": f"task {i}"},
                    headers={"Idempotency-Key": key},
                )
                if response.status_code in (200, 202):
                    accepted[key] = response.json()["id"]
                else:
                    assert response.status_code in (503, 504), response.text
                    time.sleep(0.1)
            if i == KILL_AFTER:
                process = leader.service("orchestrator").process
                assert process is not None
                process.kill()
                process.wait()
                killed_at = time.monotonic()
        wait_for("the standby to lead", lambda: ready(rest, "orchestrator"))
        print(f"the standby leads {time.monotonic() - killed_at:.1f}s after the SIGKILL")

        for key, task_id in accepted.items():

            def finished(task_id: str = task_id) -> bool:
                response = client.get(f"/v1/tasks/{task_id}")
                return response.status_code == 200 and response.json()["status"] == "succeeded"

            wait_for(f"task {task_id} ({key}) to succeed", finished)
            assert results.of(task_id) == 1, f"task {task_id}: {results.of(task_id)} results"
