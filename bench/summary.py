"""The summary in bench/README.md: every `bench/results/*.json` as a table, each figure
beside its peer with the ratio, whether Taskloom is ahead or behind, the goal and
whether it is met, and the machine's facts. `make bench` rewrites the part between
the markers; the rest of the README is written by hand."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from result import goal_met

START = "<!-- summary:start (written by bench/run.py; edits here are lost) -->"
END = "<!-- summary:end -->"


def verdict(row: dict[str, Any]) -> str:
    """ "ahead", "behind" or "even" against the peer ("" without one)."""
    ratio = row.get("ratio")
    if ratio is None:
        return ""
    if abs(ratio - 1) < 0.005:
        return "even"
    ahead = ratio < 1 if row["better"] == "lower" else ratio > 1
    return "ahead" if ahead else "**behind**"


def goal_cell(row: dict[str, Any]) -> str:
    goal = row.get("goal")
    if not goal:
        return ""
    met = goal_met(goal, row["value"], row.get("ratio"))
    word = {True: "met", False: "**missed**", None: "no peer figure"}[met]
    return f"{goal}: {word}"


def _num(x: float | None) -> str:
    return "" if x is None else f"{x:g}"


def scenario_table(doc: dict[str, Any]) -> str:
    m = doc.get("machine", {})
    load = m.get("load_average_1m", {})
    versions = m.get("versions", {})
    lines = [
        f"### {doc['scenario']}",
        "",
        f"{m.get('mode', '?')} run, {m.get('date', '?')}, {m.get('seconds', '?')} s; "
        f"{m.get('cores', '?')} cores ({m.get('cpu', '?')}), {m.get('memory_gb', '?')} GB, "
        f"load average {load.get('before', '?')} before, {load.get('after', '?')} after; "
        f"Python {versions.get('python', '?')}, {versions.get('go', '?')}.",
        "",
        f"![{doc['scenario']}](results/{doc['scenario']}.png)",
        "",
        "| metric | Taskloom | unit | peer | peer's | ratio | | goal |",
        "|---|---:|---|---|---:|---:|---|---|",
    ]
    for r in doc["results"]:
        lines.append(
            f"| `{r['metric']}` | {_num(r['value'])} | {r['unit']} | {r.get('peer') or ''} "
            f"| {_num(r.get('peer_value'))} | {_num(r.get('ratio'))} | {verdict(r)} "
            f"| {goal_cell(r)} |"
        )
    return "\n".join(lines)


def render(docs: list[dict[str, Any]]) -> str:
    """The summary's markdown for every scenario's JSON document."""
    if not docs:
        return "No results yet: run `make bench`."
    return "\n\n".join(scenario_table(doc) for doc in docs)


def rewrite(readme: Path, docs: list[dict[str, Any]]) -> None:
    """Replaces the text between the markers of readme with the summary."""
    text = readme.read_text()
    if START not in text or END not in text:
        raise ValueError(f"{readme} has no summary markers ({START!r} ... {END!r})")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    readme.write_text(f"{head}{START}\n{render(docs)}\n{END}{tail}")
