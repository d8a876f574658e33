"""Runs the whole Taskloom stack as local processes: `make up`, and the end-to-end tests.

Starts cache, metrics, vector, orchestrator, the agent workers and the gateway with
embedded defaults (no Docker, no Redis), waits until each answers `/readyz`, and on
SIGINT/SIGTERM stops them in reverse order. Every child also gets SIGTERM from the
kernel if this launcher dies, so nothing of the stack outlives it.

The user's `TASKLOOM_*` settings and configuration file (`--config` / `TASKLOOM_CONFIG`)
are passed to every service (each reads its own and ignores the rest), except the
addresses and directories the launcher assigns itself; the workers also get the variables
that hold their LLM endpoints' keys (see `provider_keys`).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx

from taskloom.sdk.config import (
    ANTHROPIC_API_KEY_ENV,
    CONFIG_ENV,
    ENV_PREFIX,
    MASK,
    ConfigError,
    mask_env_value,
    read_config_file,
)

# What the launcher itself reads, not passed on.
_LAUNCHER_ENV = frozenset({CONFIG_ENV, "TASKLOOM_WORKERS"})
# The worker's `endpoints` setting in the environment (JSON), as its settings name it.
ENDPOINTS_ENV = f"{ENV_PREFIX}ENDPOINTS"


# Each child's first program: it asks the kernel for SIGTERM when the launcher dies, then
# becomes the service. Not a preexec_fn: Python code between fork and exec can crash the
# child when other threads (gRPC's, in the tests) hold locks at the fork, while a child
# without one is started by vfork, which runs no fork handlers at all.
_DIE_WITH_PARENT = """\
import ctypes, os, signal, sys
ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, int(signal.SIGTERM))  # PR_SET_PDEATHSIG
if os.getppid() != int(sys.argv[1]):
    sys.exit("the launcher exited before the service started")
os.execv(sys.argv[2], sys.argv[2:])
"""


class _Spawner:
    """Starts every child from one thread that lives as long as the process.

    The kernel sends the parent-death signal when the *thread* that forked a child exits,
    not the process: a service started or restarted from a short-lived thread would die
    with that thread.
    """

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[tuple[Callable[[], subprocess.Popen[bytes]], Future[Any]]]
        self._jobs = queue.SimpleQueue()
        threading.Thread(target=self._serve, name="taskloom-spawner", daemon=True).start()

    def _serve(self) -> None:
        while True:
            start, done = self._jobs.get()
            if done.set_running_or_notify_cancel():
                try:
                    done.set_result(start())
                except BaseException as err:
                    done.set_exception(err)

    def popen(self, argv: Sequence[str], **kwargs: Any) -> subprocess.Popen[bytes]:
        done: Future[subprocess.Popen[bytes]] = Future()
        self._jobs.put((lambda: subprocess.Popen(argv, **kwargs), done))
        return done.result()


_spawner: _Spawner | None = None
_spawner_lock = threading.Lock()


def _spawn_process(argv: Sequence[str], **kwargs: Any) -> subprocess.Popen[bytes]:
    global _spawner
    with _spawner_lock:
        if _spawner is None:
            _spawner = _Spawner()
    wrapped = [sys.executable, "-c", _DIE_WITH_PARENT, str(os.getpid()), *argv]
    return _spawner.popen(wrapped, **kwargs)


def user_settings(environ: Mapping[str, str]) -> dict[str, str]:
    """The user's `TASKLOOM_*` settings for the services (not the launcher's own)."""
    return {
        name: value
        for name, value in environ.items()
        if name.startswith(ENV_PREFIX) and name not in _LAUNCHER_ENV
    }


def provider_keys(environ: Mapping[str, str], config_file: Path | None) -> dict[str, str]:
    """The set variables that hold the worker's LLM keys, which are not `TASKLOOM_*`: each
    endpoint's `api_key_env` (in the config file's `worker.endpoints` or in
    TASKLOOM_ENDPOINTS) and the implicit `anthropic` endpoint's ANTHROPIC_API_KEY.

    A configuration the launcher cannot read passes no names: the worker reads it too, and
    stops naming what is wrong with it.
    """
    sources: list[object] = []
    if config_file is not None:
        with contextlib.suppress(ConfigError):
            worker = read_config_file(config_file).get("worker")
            if isinstance(worker, dict):
                sources.append(worker.get("endpoints"))
    with contextlib.suppress(ValueError):
        sources.append(json.loads(environ.get(ENDPOINTS_ENV, "null")))
    names = {ANTHROPIC_API_KEY_ENV}
    for endpoints in sources:
        if isinstance(endpoints, dict):
            names.update(
                endpoint["api_key_env"]
                for endpoint in endpoints.values()
                if isinstance(endpoint, dict) and isinstance(endpoint.get("api_key_env"), str)
            )
    return {name: environ[name] for name in sorted(names) if environ.get(name)}


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
    # The user's TASKLOOM_* settings, passed to every service under what the launcher sets.
    user_env: dict[str, str] = field(default_factory=dict)
    # The configuration file every service reads its own section of (TASKLOOM_CONFIG).
    config_file: Path | None = None
    # The variables holding the LLM endpoints' keys, for the workers only (provider_keys).
    provider_keys: dict[str, str] = field(default_factory=dict)


def _services(cfg: StackConfig) -> list[Service]:
    p = cfg.ports
    base = {
        "TASKLOOM_LOG_LEVEL": "info",
        **cfg.user_env,
        "PATH": os.environ.get("PATH", ""),
        "HOME": os.environ.get("HOME", "/tmp"),
    }
    if cfg.config_file is not None:
        base[CONFIG_ENV] = str(cfg.config_file)

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
                    **cfg.provider_keys,
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
                "TASKLOOM_VECTOR_ADDR": f"127.0.0.1:{p.vector_grpc}",
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
        svc.process = _spawn_process(
            svc.argv,
            env=svc.env,
            stdin=subprocess.DEVNULL,
            stdout=svc.log,
            stderr=svc.log,
            start_new_session=True,
        )

    def restart(self, name: str, timeout: float = 15.0) -> None:
        """Stop one service as `stop` does, start it again and wait until it is ready."""
        svc = self.service(name)
        self._stop_service(svc, timeout)
        self._spawn(svc)
        self.wait_ready([svc])

    def wait_ready(self, services: Sequence[Service] | None = None) -> None:
        deadline = time.monotonic() + self.cfg.ready_timeout
        pending = list(self.services if services is None else services)
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
            code = self._stop_service(svc, timeout)
            if code is not None:
                codes[svc.name] = code
        return codes

    @staticmethod
    def _stop_service(svc: Service, timeout: float) -> int | None:
        """SIGTERM, then SIGKILL after `timeout`; the exit code, None if it was not running."""
        code = None
        if svc.process is not None and svc.process.poll() is None:
            svc.process.send_signal(signal.SIGTERM)
            try:
                code = svc.process.wait(timeout)
            except subprocess.TimeoutExpired:
                svc.process.kill()
                code = svc.process.wait()
        if svc.log is not None:
            svc.log.close()
            svc.log = None
        return code

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


def passed_settings(cfg: StackConfig) -> str:
    """What of the user's configuration the services get, secrets masked."""
    services = _services(cfg)
    overridden = sorted(
        name
        for name, value in cfg.user_env.items()
        if any(svc.env.get(name) != value for svc in services)
    )
    passed = {name: value for name, value in cfg.user_env.items() if name not in overridden}
    if cfg.config_file is not None:
        passed[CONFIG_ENV] = str(cfg.config_file)
    if not passed and not overridden and not cfg.provider_keys:
        return "No TASKLOOM_* settings or config file given: every service runs on its defaults."
    lines = ["Passing your settings to the services (each reads its own):"]
    lines += [f"  {name}={mask_env_value(name, passed[name])}" for name in sorted(passed)]
    if cfg.provider_keys:
        lines.append("Passing the LLM endpoints' keys to the workers:")
        lines += [f"  {name}={MASK}" for name in cfg.provider_keys]
    if overridden:
        lines.append(f"Not passed (the launcher assigns them): {', '.join(overridden)}")
    return "\n".join(lines)


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
    parser.add_argument(
        "--config",
        type=Path,
        default=os.environ.get(CONFIG_ENV) or None,
        help=f"YAML file whose sections configure the services [env: {CONFIG_ENV}]",
    )
    args = parser.parse_args(argv)

    config_file = args.config.resolve() if args.config else None
    cfg = StackConfig(
        bin_dir=args.bin_dir.resolve(),
        state_dir=args.state_dir.resolve(),
        ports=Ports.random() if args.random_ports else Ports(),
        workers=args.workers,
        user_env=user_settings(os.environ),
        config_file=config_file,
        provider_keys=provider_keys(os.environ, config_file),
    )
    print(passed_settings(cfg), flush=True)
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
