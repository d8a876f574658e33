"""The peers' isolated environments: one virtualenv per peer under bench/.venv-peers/,
made on first use with uv (from the services' .venv, pinned there) from the peer's
pinned bench/peers/requirements-<peer>.txt, and made again when that file (or one it
includes with `-r`) changes. Nothing a peer needs is ever installed into the services' .venv."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
VENVS = HERE.parent / ".venv-peers"
PEERS = ("langgraph", "ray", "celery", "vector", "vector-text")


class PeerEnvError(RuntimeError):
    """A peer's environment could not be made."""


def requirements(peer: str) -> Path:
    if peer not in PEERS:
        raise ValueError(f"unknown peer {peer!r}; have: {', '.join(PEERS)}")
    return HERE / f"requirements-{peer}.txt"


def _uv() -> Path:
    uv = Path(sys.executable).parent / "uv"
    if not uv.exists():
        raise PeerEnvError(
            f"{uv} is missing: run `make venv` (uv is pinned in python/constraints.txt)"
        )
    return uv


def _with_includes(req: Path) -> bytes:
    """The file's bytes and those of the files it includes (`-r other.txt`), so that a
    change to either makes the environment again."""
    text = req.read_bytes()
    for line in text.decode().splitlines():
        if line.startswith("-r "):
            text += _with_includes(req.parent / line.removeprefix("-r ").strip())
    return text


def python(peer: str) -> Path:
    """The python of the peer's environment, made (or remade) first if needed."""
    req = requirements(peer)
    venv = VENVS / peer
    exe = venv / "bin" / "python"
    stamp = venv / ".requirements.sha256"
    want = hashlib.sha256(_with_includes(req)).hexdigest()
    if exe.exists() and stamp.exists() and stamp.read_text().strip() == want:
        return exe
    uv = str(_uv())
    started = time.monotonic()
    print(f"bench: making the {peer} peer's environment in {venv} ...", file=sys.stderr, flush=True)
    for cmd in (
        [uv, "venv", "--quiet", "--clear", "--python", sys.executable, str(venv)],
        [uv, "pip", "install", "--quiet", "--python", str(exe), "-r", str(req)],
    ):
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise PeerEnvError(f"{' '.join(cmd)} failed: {done.stderr.strip()[-2000:]}")
    stamp.write_text(want + "\n")
    print(
        f"bench: {peer} environment ready in {time.monotonic() - started:.1f} s",
        file=sys.stderr,
        flush=True,
    )
    return exe
