"""Runs the whole Taskloom stack as local processes: `make up`, and the end-to-end tests.

Starts cache, metrics, vector, orchestrator, the agent workers and the gateway with
embedded defaults (no Docker, no Redis), waits until each answers `/readyz`, and on
SIGINT/SIGTERM stops them in reverse order. Every child also gets SIGTERM from the
kernel if this launcher dies, so nothing of the stack outlives it.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import httpx

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """Runs in each child before exec: ask the kernel for SIGTERM when the launcher dies."""
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago, chosen by the system."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@dataclass
class Ports:
    """gRPC and HTTP ports of every service; the defaults are DESIGN.md's."""

    orchestrator_grpc: int = 50051
    orchestrator_http: int = 9101
    cache_grpc: int = 50052
    cache_http: int = 9102
    metrics_grpc: int = 50053
    metrics_http: int = 9103
    vector_grpc: int = 50054
    vector_http: int = 9104
    worker_http: int = 9105
    gateway_http: int = 8000

    @classmethod
    def random(cls) -> Ports:
        return cls(**{name: free_port() for name in cls.__dataclass_fields__})


@dataclass
class Service:
    name: str
    argv: list[str]
    env: dict[str, str]
    http_port: int
    grpc_port: int | None = None
    process: subprocess.Popen[bytes] | None = None
    log: IO[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"


@dataclass
class StackConfig:
    bin_dir: Path
    state_dir: Path
    ports: Ports = field(default_factory=Ports)
    workers: int = 1
    python: str = sys.executable
    # Extra environment for every worker, e.g. the simulated provider's latency.
    worker_env: dict[str, str] = field(default_factory=dict)
    ready_timeout: float = 90.0
    # Run only these services (by name); None runs all of them.
    only: tuple[str, ...] | None = None
    # Per-service environment on top of the defaults, by service name.
    env_overrides: dict[str, dict[str, str]] = field(default_factory=dict)
    # What "started" means: /readyz (dependencies reachable) or /healthz (alive).
    ready_path: str = "/readyz"


def _services(cfg: StackConfig) -> list[Service]:
    p = cfg.ports
    base = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": os.environ.get("HOME", "/tmp"),
        "TASKLOOM_LOG_LEVEL": os.environ.get("TASKLOOM_LOG_LEVEL", "info"),
    }

    def addrs(grpc: int | None, http: int) -> dict[str, str]:
        env = {**base, "TASKLOOM_HTTP_ADDR": f"127.0.0.1:{http}"}
        if grpc is not None:
            env["TASKLOOM_GRPC_ADDR"] = f"127.0.0.1:{grpc}"
        return env

    orchestrator = f"127.0.0.1:{p.orchestrator_grpc}"
    services = [
        Service(
            "cache",
            [str(cfg.bin_dir / "taskloom-cache")],
            addrs(p.cache_grpc, p.cache_http),
            p.cache_http,
            p.cache_grpc,
        ),
        Service(
            "metrics",
            [str(cfg.bin_dir / "taskloom-metrics")],
            addrs(p.metrics_grpc, p.metrics_http),
            p.metrics_http,
            p.metrics_grpc,
        ),
        Service(
            "vector",
            [str(cfg.bin_dir / "taskloom-vector")],
            {
                **addrs(p.vector_grpc, p.vector_http),
                "TASKLOOM_VECTOR_DATA_DIR": str(cfg.state_dir / "vector"),
            },
            p.vector_http,
            p.vector_grpc,
        ),
        Service(
            "orchestrator",
            [str(cfg.bin_dir / "taskloom-orchestrator")],
            {
                **addrs(p.orchestrator_grpc, p.orchestrator_http),
                "TASKLOOM_DATA_DIR": str(cfg.state_dir / "orchestrator"),
            },
            p.orchestrator_http,
            p.orchestrator_grpc,
        ),
    ]
    for index in range(cfg.workers):
        http = p.worker_http + index
        services.append(
            Service(
                "worker" if cfg.workers == 1 else f"worker-{index + 1}",
                [cfg.python, "-m", "taskloom.agents"],
                {
                    **addrs(None, http),
                    **cfg.worker_env,
                    "TASKLOOM_ORCHESTRATOR_ADDR": orchestrator,
                    "TASKLOOM_CACHE_ADDR": f"127.0.0.1:{p.cache_grpc}",
                    "TASKLOOM_METRICS_ADDR": f"127.0.0.1:{p.metrics_grpc}",
                    "TASKLOOM_VECTOR_ADDR": f"127.0.0.1:{p.vector_grpc}",
                },
                http,
            )
        )
    services.append(
        Service(
            "gateway",
            [cfg.python, "-m", "taskloom.gateway"],
            {
                **addrs(None, p.gateway_http),
                "TASKLOOM_ORCHESTRATOR_ADDR": orchestrator,
                "TASKLOOM_METRICS_ADDR": f"127.0.0.1:{p.metrics_grpc}",
            },
            p.gateway_http,
        )
    )
    for svc in services:
        svc.env.update(cfg.env_overrides.get(svc.name, {}))
    if cfg.only is not None:
        services = [svc for svc in services if svc.name in cfg.only]
    return services


class Stack:
    """The running stack; use as a context manager or call start()/stop()."""

    def __init__(self, cfg: StackConfig) -> None:
        self.cfg = cfg
        self.services = _services(cfg)
        self.log_dir = cfg.state_dir / "logs"

    def __enter__(self) -> Stack:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def service(self, name: str) -> Service:
        return next(s for s in self.services if s.name == name)

    @property
    def gateway_url(self) -> str:
        return self.service("gateway").base_url

    def start(self) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        try:
            for svc in self.services:
                self._spawn(svc)
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        self._write_state()

    def _spawn(self, svc: Service) -> None:
        program = svc.argv[0]
        if program != self.cfg.python and not Path(program).exists():
            raise FileNotFoundError(f"{program} not found: run 'make build' first")
        svc.log = (self.log_dir / f"{svc.name}.log").open("ab")
        svc.process = subprocess.Popen(
            svc.argv,
            env=svc.env,
            stdin=subprocess.DEVNULL,
            stdout=svc.log,
            stderr=svc.log,
            preexec_fn=_die_with_parent,
            start_new_session=True,
        )

    def wait_ready(self) -> None:
        deadline = time.monotonic() + self.cfg.ready_timeout
        pending = list(self.services)
        with httpx.Client(timeout=2.0) as http:
            while pending:
                for svc in list(pending):
                    assert svc.process is not None
                    if svc.process.poll() is not None:
                        raise RuntimeError(
                            f"{svc.name} exited with {svc.process.returncode}; "
                            f"see {self.log_dir / (svc.name + '.log')}:\n{self.tail(svc.name)}"
                        )
                    with contextlib.suppress(httpx.HTTPError):
                        if http.get(f"{svc.base_url}{self.cfg.ready_path}").status_code == 200:
                            pending.remove(svc)
                if not pending:
                    break
                if time.monotonic() > deadline:
                    names = ", ".join(s.name for s in pending)
                    raise TimeoutError(f"not ready after {self.cfg.ready_timeout}s: {names}")
                time.sleep(0.1)

    def tail(self, name: str, lines: int = 20) -> str:
        path = self.log_dir / f"{name}.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self, timeout: float = 15.0) -> dict[str, int]:
        """SIGTERM in reverse start order (gateway first), then SIGKILL what lingers.

        Returns the exit code of every service this call stopped (-9 for a SIGKILL).
        """
        codes: dict[str, int] = {}
        for svc in reversed(self.services):
            if svc.process is not None and svc.process.poll() is None:
                svc.process.send_signal(signal.SIGTERM)
                try:
                    codes[svc.name] = svc.process.wait(timeout)
                except subprocess.TimeoutExpired:
                    svc.process.kill()
                    codes[svc.name] = svc.process.wait()
            if svc.log is not None:
                svc.log.close()
                svc.log = None
        return codes

    def _write_state(self) -> None:
        state = {
            svc.name: {
                "pid": svc.process.pid if svc.process else None,
                "http": svc.base_url,
                "grpc": f"127.0.0.1:{svc.grpc_port}" if svc.grpc_port else None,
            }
            for svc in self.services
        }
        (self.cfg.state_dir / "stack.json").write_text(json.dumps(state, indent=2))


def _banner(stack: Stack) -> str:
    gw = stack.gateway_url
    rows = [f"  {'service':<14}{'gRPC':<18}HTTP"]
    for svc in stack.services:
        grpc = f"127.0.0.1:{svc.grpc_port}" if svc.grpc_port else "-"
        rows.append(f"  {svc.name:<14}{grpc:<18}{svc.base_url}")
    sample = (
        f"curl -s -X POST {gw}/v1/tasks -H 'content-type: application/json' "
        '-d \'{"agent": "assistant", "input": "What is Taskloom?"}\''
    )
    return "\n".join(
        [
            "Taskloom is up. Every service reports ready.",
            *rows,
            f"  API docs      {gw}/docs",
            f"  logs          {stack.log_dir}/",
            "",
            "Try it:",
            f"  {sample}",
            f"  curl -s {gw}/v1/tasks/<id>",
            f"  curl -N {gw}/v1/tasks/<id>/events",
            "",
            "Ctrl-C stops everything.",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bin-dir", type=Path, default=Path("bin"))
    parser.add_argument("--state-dir", type=Path, default=Path(".run"))
    parser.add_argument("--workers", type=int, default=int(os.environ.get("TASKLOOM_WORKERS", 1)))
    parser.add_argument(
        "--random-ports", action="store_true", help="let the system choose every port"
    )
    args = parser.parse_args(argv)

    cfg = StackConfig(
        bin_dir=args.bin_dir.resolve(),
        state_dir=args.state_dir.resolve(),
        ports=Ports.random() if args.random_ports else Ports(),
        workers=args.workers,
    )
    stopping = False

    def on_signal(signum: int, _frame: object) -> None:
        nonlocal stopping
        if stopping:
            return
        stopping = True
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    stack = Stack(cfg)
    try:
        stack.start()
        print(_banner(stack), flush=True)
        while True:
            for svc in stack.services:
                if svc.process is not None and svc.process.poll() is not None:
                    print(f"{svc.name} exited ({svc.process.returncode}); stopping the stack")
                    print(stack.tail(svc.name))
                    return 1
            time.sleep(0.5)
    except KeyboardInterrupt:
        print("\nStopping Taskloom…", flush=True)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        unclean = {name: code for name, code in stack.stop().items() if code != 0}
        for name, code in unclean.items():
            print(f"{name} did not exit cleanly (exit code {code})", flush=True)
        print("Stopped.", flush=True)
        return 1 if unclean else 0
    except (RuntimeError, TimeoutError, FileNotFoundError) as exc:
        print(f"taskloom: {exc}", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        stack.stop()


if __name__ == "__main__":
    sys.exit(main())
