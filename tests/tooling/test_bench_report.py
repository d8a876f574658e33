"""bench/'s reporting: result rows and goals, the JSON of DESIGN.md §7, the summary table
in bench/README.md, the chart, and how run.py finds and calls scenarios."""

from __future__ import annotations

import importlib
import inspect
import json
import re
import sys
import types
from pathlib import Path
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))

# bench/ is not a package: its modules import by path (and are not type-checked).
chart = importlib.import_module("chart")
bench_run = importlib.import_module("run")
summary = importlib.import_module("summary")
result = importlib.import_module("result")
Result, Run = result.Result, result.Run


def test_ratio_is_taskloom_over_peer_and_none_without_a_peer() -> None:
    assert Result("m", 3.0, "ms", "lower", "p", 6.0).ratio == 0.5
    assert Result("m", 3.0, "ms", "lower").ratio is None
    assert Result("m", 3.0, "ms", "lower", "p", 0.0).ratio is None


def test_bad_better_and_bad_goal_are_refused() -> None:
    with pytest.raises(ValueError, match="better"):
        Result("m", 1.0, "ms", "faster")
    with pytest.raises(ValueError, match="goal"):
        Result("m", 1.0, "ms", "lower", goal="ratio < 1")
    with pytest.raises(ValueError, match="goal"):
        result.parse_goal("speed <= 1")


def test_goals_are_judged_on_ratio_or_value() -> None:
    assert result.goal_met("ratio <= 1.0", 5.0, 0.9) is True
    assert result.goal_met("ratio <= 1.0", 5.0, 1.1) is False
    assert result.goal_met("ratio >= 3", 5.0, None) is None
    assert result.goal_met("value == 0", 0.0, None) is True
    assert result.goal_met("value <= 205", 210.0, None) is False


def _run() -> Any:
    return Run(quick=True, started=0.0, seconds=1.5, load_before=0.5, load_after=0.7)


def test_json_has_the_design_format_and_the_runs_facts(tmp_path: Path) -> None:
    rows = [Result("tasks_per_s", 10.0, "tasks/s", "higher", "ray", 5.0, "ratio >= 3")]
    doc = result.write_json("queue-throughput", rows, _run(), tmp_path / "queue-throughput.json")
    on_disk = json.loads((tmp_path / "queue-throughput.json").read_text())
    assert on_disk == doc
    assert doc["scenario"] == "queue-throughput"
    assert {"cores", "cpu", "versions", "mode", "load_average_1m"} <= set(doc["machine"])
    assert doc["machine"]["mode"] == "quick"
    row = doc["results"][0]
    assert {k: row[k] for k in ("metric", "value", "unit", "better", "peer", "peer_value")} == {
        "metric": "tasks_per_s",
        "value": 10.0,
        "unit": "tasks/s",
        "better": "higher",
        "peer": "ray",
        "peer_value": 5.0,
    }
    assert row["ratio"] == 2.0
    assert result.read_all(tmp_path) == [doc]


def _doc(scenario: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
    return {"scenario": scenario, "machine": {"cores": 2}, "results": rows}


def _row(metric: str, value: float, peer_value: float | None, goal: str | None = None) -> Any:
    ratio = None if peer_value is None else value / peer_value
    peer = None if peer_value is None else "peer"
    return {"metric": metric, "value": value, "unit": "ms", "better": "lower", "peer": peer,
            "peer_value": peer_value, "ratio": ratio, "goal": goal}  # fmt: skip


def test_summary_says_ahead_behind_and_whether_goals_are_met() -> None:
    doc = _doc(
        "workflow-overhead",
        [
            _row("fast", 1, 2, "ratio <= 1.0"),
            _row("slow", 4, 2, "ratio <= 1.0"),
            _row("alone", 7, None),
        ],
    )
    table = summary.render([doc]).splitlines()
    fast = next(line for line in table if "`fast`" in line)
    slow = next(line for line in table if "`slow`" in line)
    alone = next(line for line in table if "`alone`" in line)
    assert "ahead" in fast and "met" in fast and "missed" not in fast
    assert "**behind**" in slow and "**missed**" in slow
    assert "ahead" not in alone and "behind" not in alone
    assert "![workflow-overhead](results/workflow-overhead.png)" in table


def test_summary_rewrites_only_between_the_markers(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(f"# Bench\nby hand\n{summary.START}\nold\n{summary.END}\ntail\n")
    summary.rewrite(readme, [_doc("memory", [])])
    text = readme.read_text()
    assert text.startswith("# Bench\nby hand\n") and text.endswith(f"{summary.END}\ntail\n")
    assert "old" not in text and "### memory" in text
    readme.write_text("no markers")
    with pytest.raises(ValueError, match="markers"):
        summary.rewrite(readme, [])


def test_chart_is_a_png(tmp_path: Path) -> None:
    doc = _doc("crash", [_row("lost", 0, 3)])
    chart.draw(doc, tmp_path / "crash.png")
    assert (tmp_path / "crash.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_every_scenario_file_is_a_scenario_named_with_dashes() -> None:
    found = bench_run.scenarios()
    for name in ("workflow-overhead", "llm-workflows", "queue-throughput", "crash", "memory"):
        assert found[name].name == name.replace("-", "_") + ".py"


def test_quick_is_passed_only_to_scenarios_that_take_it() -> None:
    rows = [Result("m", 1.0, "ms", "lower")]
    takes = types.SimpleNamespace(run=lambda quick=False: rows if quick else [])
    plain = types.SimpleNamespace(run=lambda: rows)
    assert bench_run.run_scenario(takes, quick=True) == rows
    assert bench_run.run_scenario(plain, quick=True) == rows


def test_every_scenario_module_loads_with_a_run_function() -> None:
    """Including the other slices' (agents, cache, vector, ...): run.py accepts them all."""
    for name, path in bench_run.scenarios().items():
        assert callable(bench_run.load(name, path).run), name


def test_a_module_without_run_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "empty.py"
    path.write_text('"""No run()."""\n')
    with pytest.raises(TypeError, match="no run"):
        bench_run.load("empty", path)


def test_scenarios_follow_the_runners_mode_not_a_variable_of_their_own() -> None:
    # `make bench` / `make bench-full` choose the counts (run(quick=...), BENCH_QUICK); a
    # scenario reading its own switch (VECTOR_FULL, SEMANTIC_CACHE_FULL once) would run full
    # sizes in a quick run.
    for name, path in bench_run.scenarios().items():
        source = path.read_text()
        assert not re.search(r"environ(\.get)?[\[(]\s*\"[A-Z_]*FULL", source), name
    vector = bench_run.load("vector", bench_run.scenarios()["vector"])
    assert "quick" in inspect.signature(vector.run).parameters


def test_the_vector_scenarios_quick_environment_installs_no_torch() -> None:
    peers_env = importlib.import_module("peers.env")
    quick = peers_env.requirements("vector").read_text()
    full = peers_env.requirements("vector-text").read_text()
    assert "torch" not in quick and "sentence-transformers" not in quick
    assert "torch==" in full and "-r requirements-vector.txt" in full.splitlines()
