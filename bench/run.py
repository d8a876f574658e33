"""`make bench`: runs the benchmark scenarios and writes bench/results/<scenario>.json + .svg.

A scenario is a module in bench/scenarios/ with `run() -> list[Result]`. Each result
names a metric, its value and unit, which direction is better, and, where one was
measured in the same run, a peer's value (DESIGN.md §7).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results"


@dataclass
class Result:
    metric: str
    value: float
    unit: str
    better: str  # "higher" | "lower"
    peer: str | None = None
    peer_value: float | None = None

    @property
    def ratio(self) -> float | None:
        if self.peer_value in (None, 0):
            return None
        return round(self.value / self.peer_value, 3)


def _version(cmd: list[str]) -> str:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, check=False).stdout.strip()
    except OSError:
        return "not found"


def machine() -> dict[str, object]:
    cpu = "unknown"
    with open("/proc/cpuinfo") as info:
        for line in info:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "cores": os.cpu_count(),
        "cpu": cpu,
        "versions": {
            "python": platform.python_version(),
            "go": _version(["go", "env", "GOVERSION"]),
            "rustc": _version(["rustc", "--version"]),
        },
    }


def chart(scenario: str, results: list[Result]) -> str:
    """A bar per metric: Taskloom against its peer, each scaled to the larger of the two."""
    row, width = 28, 640
    lines = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" '
        f'height="{40 + row * len(results)}" font-family="sans-serif" font-size="12">',
        f'<text x="8" y="18" font-weight="bold">{scenario}</text>',
    ]
    for i, r in enumerate(results):
        y = 30 + i * row
        top = max(r.value, r.peer_value or 0) or 1
        lines.append(f'<text x="8" y="{y + 14}">{r.metric} ({r.unit}, {r.better})</text>')
        lines.append(
            f'<rect x="330" y="{y + 2}" width="{200 * r.value / top:.1f}" height="10" '
            'fill="#3b82f6"/>'
        )
        if r.peer_value is not None:
            lines.append(
                f'<rect x="330" y="{y + 13}" width="{200 * r.peer_value / top:.1f}" '
                'height="10" fill="#9ca3af"/>'
            )
        lines.append(f'<text x="540" y="{y + 12}">{r.value:g}</text>')
    lines.append("</svg>")
    return "\n".join(lines)


def write(scenario: str, results: list[Result]) -> None:
    RESULTS.mkdir(exist_ok=True)
    doc = {
        "scenario": scenario,
        "machine": machine(),
        "results": [{**asdict(r), "ratio": r.ratio} for r in results],
    }
    (RESULTS / f"{scenario}.json").write_text(json.dumps(doc, indent=2) + "\n")
    (RESULTS / f"{scenario}.svg").write_text(chart(scenario, results))
    print(f"\n{scenario}")
    print(f"  {'metric':<36}{'value':>14}  {'unit':<10}{'peer':<22}{'peer value':>12}{'ratio':>8}")
    for r in results:
        peer_value = "" if r.peer_value is None else f"{r.peer_value:g}"
        ratio = "" if r.ratio is None else f"{r.ratio:g}"
        print(
            f"  {r.metric:<36}{r.value:>14g}  {r.unit:<10}{r.peer or '-':<22}"
            f"{peer_value:>12}{ratio:>8}"
        )


def scenarios() -> dict[str, Path]:
    return {p.stem: p for p in sorted((ROOT / "scenarios").glob("*.py")) if p.stem[0] != "_"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scenario", help="run only this one")
    args = parser.parse_args()
    found = scenarios()
    chosen = [args.scenario] if args.scenario else list(found)
    unknown = [name for name in chosen if name not in found]
    if unknown:
        print(f"unknown scenario {unknown[0]!r}; have: {', '.join(found)}", file=sys.stderr)
        return 2
    sys.path.insert(0, str(ROOT))
    for name in chosen:
        spec = importlib.util.spec_from_file_location(f"bench_{name}", found[name])
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        write(name, module.run())
    return 0


if __name__ == "__main__":
    sys.exit(main())
