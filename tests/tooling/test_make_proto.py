"""`make proto` needs no system protoc and never leaves the tree half-generated."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
GENERATED = [
    REPO / "services/orchestrator-go/gen",
    REPO / "python/sdk/src/taskloom/v1",
    REPO / "services/proto-rust/src/gen",
]


def _digest(paths: list[Path]) -> dict[str, str]:
    out = {}
    for root in paths:
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            out[str(path.relative_to(REPO))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def test_the_protoc_wrapper_brings_the_well_known_types(tmp_path: Path) -> None:
    # A PATH without any system protoc: only the wrapper's own interpreter is used.
    env = {"PATH": "/usr/bin:/bin", "HOME": os.environ.get("HOME", "/root")}
    src = tmp_path / "wkt.proto"
    src.write_text(
        'syntax = "proto3";\npackage t;\nimport "google/protobuf/duration.proto";\n'
        "message M { google.protobuf.Duration d = 1; }\n"
    )
    subprocess.run(
        [REPO / "scripts/protoc", f"-I{tmp_path}", f"--python_out={tmp_path}", str(src)],
        check=True,
        env=env,
    )
    assert (tmp_path / "wkt_pb2.py").exists()


def test_a_failed_generator_leaves_the_generated_code_untouched(tmp_path: Path) -> None:
    before = _digest(GENERATED)
    # The Rust generator runs last; a `cargo` that fails stands in for any generator failing
    # after the Go and Python code were already written.
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    fake_cargo = fake_bin / "cargo"
    fake_cargo.write_text("#!/bin/sh\necho 'cargo: simulated generator failure' >&2\nexit 3\n")
    fake_cargo.chmod(0o755)
    env = {**os.environ, "PATH": f"{fake_bin}:{os.environ['PATH']}"}
    assert shutil.which("buf", path=str(REPO / ".tools/bin")), "run `make tools` first"
    run = subprocess.run(
        [REPO / "scripts/proto.sh"], cwd=REPO, env=env, capture_output=True, text=True
    )
    assert run.returncode != 0
    assert "simulated generator failure" in run.stderr
    assert _digest(GENERATED) == before
