"""`make proto-check` runs `buf breaking` against the committed v1 baseline: the contracts as
they are pass, a renumbered or retyped field fails."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BUF = REPO / ".tools/bin/buf"
BASELINE = REPO / "proto/baseline/v1.binpb"


def _breaking(proto_dir: Path) -> subprocess.CompletedProcess[str]:
    assert BUF.exists(), "run `make tools` first"
    return subprocess.run(
        [str(BUF), "breaking", str(proto_dir), "--against", str(BASELINE)],
        capture_output=True,
        text=True,
    )


def _copy_with(tmp_path: Path, file: str, old: str, new: str) -> Path:
    copy = tmp_path / "proto"
    shutil.copytree(REPO / "proto", copy)
    path = copy / "taskloom/v1" / file
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    return copy


def test_the_contracts_pass_their_baseline() -> None:
    run = _breaking(REPO / "proto")
    assert run.returncode == 0, run.stdout + run.stderr


@pytest.mark.parametrize(
    ("old", "new", "complaint"),
    [
        ("int32 attempts = 11;", "int32 attempts = 31;", 'field "11" with name "attempts"'),
        ("int32 attempts = 11;", "string attempts = 11;", 'changed type from "int32"'),
    ],
    ids=["renumbered", "retyped"],
)
def test_a_renumbered_or_retyped_field_breaks(
    tmp_path: Path, old: str, new: str, complaint: str
) -> None:
    run = _breaking(_copy_with(tmp_path, "common.proto", old, new))
    assert run.returncode != 0
    assert complaint in (run.stdout + run.stderr).lower()
