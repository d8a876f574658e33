"""Sandboxes for the `python` tool: one bubblewrap process per call, taken from a small pool
of pre-started ones so a call does not wait for Python to start.

A sandbox has no network (its own empty network namespace), a read-only view of /usr (and
of the interpreter's prefix) and nothing else of the host: not the worker's files, not its
environment (cleared), not its processes (own PID namespace). Its working directory and
/tmp are size-limited tmpfs mounts that vanish with it. It runs as an unprivileged user
(when the worker is root) so that the process limit holds. Inside, a bootstrap reads one
line of limits (CPU seconds, address space, processes, file size) and sets them before it
runs the code from stdin; the worker enforces wall time and output size itself and kills
the whole process group at the end. Each sandbox runs one call and is thrown away.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import structlog

from taskloom.agents.catalog.spec import SandboxLimits

log = structlog.get_logger(__name__)

# Runs inside the sandbox before the user's code: lower the limits, then run the code.
# The CPU hard limit is one second past the soft one, so the soft one's SIGXCPU says why.
BOOTSTRAP = """\
import resource, sys
_l = sys.stdin.buffer.readline().split()
_cpu, _mem, _nproc, _fsize = (int(x) for x in _l)
resource.setrlimit(resource.RLIMIT_CPU, (_cpu, _cpu + 1))
resource.setrlimit(resource.RLIMIT_AS, (_mem, _mem))
resource.setrlimit(resource.RLIMIT_NPROC, (_nproc, _nproc))
resource.setrlimit(resource.RLIMIT_FSIZE, (_fsize, _fsize))
_src = sys.stdin.buffer.read()
del _l, _cpu, _mem, _nproc, _fsize
exec(compile(_src, "<tool>", "exec"), {"__name__": "__main__", "__builtins__": __builtins__})
"""

SIGXCPU_EXIT = 128 + signal.SIGXCPU
SIGKILL_EXIT = 128 + signal.SIGKILL


class SandboxUnavailable(Exception):
    """The sandbox cannot run here (no bubblewrap, no user namespaces, ...)."""


@dataclass(frozen=True)
class SandboxConfig:
    bwrap: str = "bwrap"
    python: str = "/usr/bin/python3"
    pool_size: int = 2
    tmpfs_bytes: int = 16 << 20
    # Run without bubblewrap: for development machines only; loud at every start.
    unsandboxed: bool = False
    # The user sandboxes run as when the worker is root (nobody).
    uid: int = 65534


@dataclass
class SandboxRun:
    exit_code: int
    stdout: str
    stderr: str
    wall_s: float
    timed_out: bool = False
    output_exceeded: bool = False


def _root_entries() -> list[str]:
    """bwrap arguments that show /usr and the merged-usr links (/bin, /lib...) read-only."""
    args = ["--ro-bind", "/usr", "/usr"]
    for name in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        path = Path("/") / name
        if path.is_symlink():
            args += ["--symlink", os.readlink(path), str(path)]
        elif path.is_dir():
            args += ["--ro-bind", str(path), str(path)]
    return args


def bwrap_argv(config: SandboxConfig, python: str) -> list[str]:
    """The command that starts one sandbox with the bootstrap waiting on stdin."""
    argv = [
        shutil.which(config.bwrap) or config.bwrap,
        "--unshare-all",
        "--unshare-user",
        "--disable-userns",
        "--die-with-parent",
        "--new-session",
        "--clearenv",
        "--setenv", "PATH", "/usr/bin:/bin",
        "--setenv", "HOME", "/sandbox",
        "--setenv", "LANG", "C.UTF-8",
        *_root_entries(),
    ]  # fmt: skip
    prefix = Path(python).resolve().parents[1]
    if not prefix.is_relative_to("/usr"):
        argv += ["--ro-bind", str(prefix), str(prefix)]
    argv += [
        "--proc", "/proc",
        "--dev", "/dev",
        "--size", str(config.tmpfs_bytes), "--tmpfs", "/tmp",
        "--size", str(config.tmpfs_bytes), "--tmpfs", "/sandbox",
        "--chdir", "/sandbox",
        python, "-I", "-S", "-c", BOOTSTRAP,
    ]  # fmt: skip
    return argv


class Sandbox:
    """One started sandbox waiting for its code."""

    def __init__(
        self, process: asyncio.subprocess.Process, workdir: str | None, max_file_bytes: int
    ) -> None:
        self.process = process
        self._workdir = workdir
        self._max_file_bytes = max_file_bytes

    async def run(self, code: str, limits: SandboxLimits) -> SandboxRun:
        proc = self.process
        assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
        loop = asyncio.get_running_loop()
        started = loop.time()
        header = (
            f"{limits.cpu_s} {limits.memory_mb << 20} {limits.processes} {self._max_file_bytes}\n"
        )
        run = SandboxRun(exit_code=-1, stdout="", stderr="", wall_s=0.0)
        budget = [limits.output_bytes]
        try:
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                proc.stdin.write(header.encode() + code.encode())
                await proc.stdin.drain()
                proc.stdin.close()
            try:
                async with asyncio.timeout(limits.wall_s):
                    out, err = await asyncio.gather(
                        _read_capped(proc.stdout, budget), _read_capped(proc.stderr, budget)
                    )
                    run.exit_code = await proc.wait()
            except TimeoutError:
                run.timed_out = True
                out, err = b"", b""
            except _OutputExceeded:
                run.output_exceeded = True
                out, err = b"", b""
            run.stdout = out.decode(errors="replace")
            run.stderr = err.decode(errors="replace")
        finally:
            await self.kill()
            run.wall_s = loop.time() - started
        return run

    async def kill(self) -> None:
        if self.process.returncode is None:
            # bubblewrap itself first: its --die-with-parent then kills the sandbox's PID 1,
            # and with it every process inside; the group is for the unsandboxed mode.
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.process.pid, signal.SIGKILL)
            await self.process.wait()
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)


class _OutputExceeded(Exception):
    pass


async def _read_capped(stream: asyncio.StreamReader, budget: list[int]) -> bytes:
    """Read to EOF; raise once stdout and stderr together pass the shared budget."""
    data = bytearray()
    while piece := await stream.read(65536):
        budget[0] -= len(piece)
        if budget[0] < 0:
            raise _OutputExceeded()
        data += piece
    return bytes(data)


class SandboxPool:
    """Keeps `pool_size` sandboxes started; each call takes one and a new one is started."""

    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self._ready: asyncio.Queue[Sandbox] = asyncio.Queue()
        self._refills: set[asyncio.Task[None]] = set()
        self._started = False
        self._unavailable: str | None = None
        self._lock = asyncio.Lock()

    def _check(self) -> None:
        cfg = self.config
        if cfg.unsandboxed:
            return
        if shutil.which(cfg.bwrap) is None:
            raise SandboxUnavailable(
                f"the python tool needs bubblewrap ({cfg.bwrap!r} not found): install the "
                "Debian package bubblewrap, or set TASKLOOM_SANDBOX_UNSANDBOXED=true on a "
                "development machine only"
            )
        if not Path(cfg.python).exists():
            raise SandboxUnavailable(f"the sandbox interpreter {cfg.python} does not exist")

    async def start(self) -> None:
        """Check the sandbox works and fill the pool; SandboxUnavailable says why not."""
        async with self._lock:
            if self._unavailable is not None:
                raise SandboxUnavailable(self._unavailable)
            if self._started:
                return
            try:
                self._check()
                probe = await self._spawn()
                result = await probe.run("print('ok')", SandboxLimits())
                if result.exit_code != 0 or result.stdout.strip() != "ok":
                    raise SandboxUnavailable(
                        f"a sandbox could not start (exit {result.exit_code}): "
                        f"{result.stderr.strip()[-500:]}"
                    )
            except SandboxUnavailable as err:
                self._unavailable = str(err)
                log.error("python sandbox unavailable", error=str(err))
                raise
            self._started = True
            for _ in range(self.config.pool_size):
                self._refill()

    async def _spawn(self) -> Sandbox:
        cfg = self.config
        if cfg.unsandboxed:
            log.warning(
                "UNSANDBOXED python tool: code runs with the worker's user, files and network "
                "(TASKLOOM_SANDBOX_UNSANDBOXED is set; never use this in production)"
            )
            workdir = tempfile.mkdtemp(prefix="taskloom-unsandboxed-")
            process = await _spawn([cfg.python, "-I", "-S", "-c", BOOTSTRAP], workdir)
            return Sandbox(process, workdir, cfg.tmpfs_bytes)
        # Dropping root goes through setpriv (util-linux) rather than Popen's user=: with
        # user= Python forks instead of vforking, and a fork of this multi-threaded gRPC
        # process runs gRPC's fork handlers in the child, which may crash it.
        as_user: list[str] = []
        if os.geteuid() == 0:
            uid = str(cfg.uid)
            as_user = ["setpriv", "--reuid", uid, "--regid", uid, "--clear-groups", "--"]
        try:
            process = await _spawn([*as_user, *bwrap_argv(cfg, cfg.python)], None)
        except OSError as err:
            raise SandboxUnavailable(f"cannot start bubblewrap: {err}") from err
        return Sandbox(process, None, cfg.tmpfs_bytes)

    def _refill(self) -> None:
        async def spawn_one() -> None:
            try:
                self._ready.put_nowait(await self._spawn())
            except (OSError, SandboxUnavailable) as err:
                log.warning("could not pre-start a sandbox", error=str(err))

        task = asyncio.create_task(spawn_one())
        self._refills.add(task)
        task.add_done_callback(self._refills.discard)

    async def acquire(self) -> Sandbox:
        """A started sandbox for one call."""
        await self.start()
        while not self._ready.empty():
            sandbox = self._ready.get_nowait()
            self._refill()
            if sandbox.process.returncode is None:
                return sandbox
            await sandbox.kill()  # died while waiting (killed from outside)
        self._refill()
        return await self._spawn()

    async def run(self, code: str, limits: SandboxLimits) -> SandboxRun:
        sandbox = await self.acquire()
        return await sandbox.run(code, limits)

    async def aclose(self) -> None:
        for task in list(self._refills):
            task.cancel()
        for task in list(self._refills):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        while not self._ready.empty():
            await self._ready.get_nowait().kill()


async def _spawn(argv: list[str], cwd: str | None) -> asyncio.subprocess.Process:
    """Start a process with pipes, in a session of its own, with nothing of our environment."""
    return await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
        cwd=cwd,
        env={"PATH": "/usr/bin:/bin"},
    )


def default_python() -> str:
    """The system interpreter, readable by the sandbox's user (not the worker's venv)."""
    for candidate in ("/usr/bin/python3", "/usr/local/bin/python3"):
        if Path(candidate).exists():
            return candidate
    return sys.executable
