"""`make bench` / `make bench-full`: runs the benchmark scenarios, one after another.

A scenario is a module in bench/scenarios/ (`workflow_overhead.py` is scenario
`workflow-overhead`) with `run() -> list[Result]`, or `run(quick: bool)`. Each run
writes bench/results/<scenario>.json (DESIGN.md §7) and <scenario>.png, prints its
table and its time; at the end the summary in bench/README.md is rewritten from every
JSON file in bench/results/. Quick runs (the default) use smaller counts; BENCH_QUICK
(1 or 0) tells scenarios which one runs.
"""

from __future__ import annotations

import argparse
import importlib.util
import inspect
import os
import sys
import time
import traceback
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))

import chart  # noqa: E402  (bench/ is not a package: its modules import by path)
import summary  # noqa: E402
from result import RESULTS, Result, Run, load_average, read_all, write_json  # noqa: E402

__all__ = ["Result"]  # scenarios import it from here: `from run import Result`

QUICK_ENV = "BENCH_QUICK"


def scenarios() -> dict[str, Path]:
    """Every scenario by name: the file's stem with '-' for '_'."""
    found = sorted((ROOT / "scenarios").glob("*.py"))
    return {p.stem.replace("_", "-"): p for p in found if not p.stem.startswith("_")}


def load(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"bench_scenario_{path.stem}", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not callable(getattr(module, "run", None)):
        raise TypeError(f"scenario {name} ({path}) has no run() function")
    return module


def run_scenario(module: ModuleType, quick: bool) -> list[Result]:
    """Calls the scenario's run, with quick= when it takes it."""
    if "quick" in inspect.signature(module.run).parameters:
        return list(module.run(quick=quick))
    return list(module.run())


def print_table(name: str, results: list[Result], seconds: float) -> None:
    print(f"\n{name}  ({seconds:.1f} s)")
    print(f"  {'metric':<40}{'value':>12}  {'unit':<11}{'peer':<30}{'peer value':>11}{'ratio':>8}")
    for r in results:
        peer_value = "" if r.peer_value is None else f"{r.peer_value:g}"
        ratio = "" if r.ratio is None else f"{r.ratio:g}"
        print(
            f"  {r.metric:<40}{r.value:>12g}  {r.unit:<11}{r.peer or '-':<30}"
            f"{peer_value:>11}{ratio:>8}"
        )
    sys.stdout.flush()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", help="run only this one (e.g. workflow-overhead)")
    parser.add_argument("--full", action="store_true", help="full counts (the goals' run)")
    parser.add_argument(
        "--summary-only",
        action="store_true",
        help="run nothing: redraw every chart and rewrite the summary from bench/results/*.json",
    )
    args = parser.parse_args(argv)
    found = scenarios()
    chosen = list(found)
    if args.scenario:
        name = args.scenario.replace("_", "-")
        if name not in found:
            print(f"unknown scenario {args.scenario!r}; have: {', '.join(found)}", file=sys.stderr)
            return 2
        chosen = [name]
    quick = not args.full
    os.environ[QUICK_ENV] = "1" if quick else "0"
    failed: list[str] = []
    times: list[tuple[str, float]] = []
    if not args.summary_only:
        for name in chosen:
            print(f"\n== {name} ({'quick' if quick else 'full'} run)", flush=True)
            started, load_before = time.time(), load_average()
            try:
                results = run_scenario(load(name, found[name]), quick)
            except Exception:
                traceback.print_exc()
                failed.append(name)
                times.append((name, time.time() - started))
                continue
            seconds = time.time() - started
            times.append((name, seconds))
            run = Run(quick, started, seconds, load_before, load_average())
            doc = write_json(name, results, run, RESULTS / f"{name}.json")
            chart.draw(doc, RESULTS / f"{name}.png")
            print_table(name, results, seconds)
    docs = read_all(RESULTS)
    if args.summary_only:
        for doc in docs:
            chart.draw(doc, RESULTS / f"{doc['scenario']}.png")
    summary.rewrite(ROOT / "README.md", docs)
    if times:
        print("\nscenario times:")
        for name, seconds in times:
            print(f"  {name:<24}{seconds:>8.1f} s{'  FAILED' if name in failed else ''}")
        print(f"  {'total':<24}{sum(s for _, s in times):>8.1f} s")
    print(f"\nsummary written to {ROOT / 'README.md'}")
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
