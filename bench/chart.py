"""A scenario's chart: one row per metric, Taskloom's bar beside its peer's, each row
scaled to the larger of the two (the metrics have different units), values written
on the bars. PNG, drawn with matplotlib without a display."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display: draw to files only

import matplotlib.pyplot as plt

TASKLOOM_COLOR = "#2563eb"
PEER_COLOR = "#9ca3af"


def draw(doc: dict[str, Any], path: Path) -> None:
    """Draws the results of one scenario's JSON document to path (PNG)."""
    rows = doc["results"]
    height = 1.2 + 0.55 * max(len(rows), 1)
    fig, ax = plt.subplots(figsize=(10, height))
    labels: list[str] = []
    for i, r in enumerate(reversed(rows)):
        peer = r.get("peer_value")
        top = max(abs(r["value"]), abs(peer or 0)) or 1.0
        y = i * 1.0
        ax.barh(y + 0.18, r["value"] / top, height=0.34, color=TASKLOOM_COLOR)
        ax.text(
            r["value"] / top + 0.01,
            y + 0.18,
            f"{r['value']:g} {r['unit']}",
            va="center",
            fontsize=8,
        )
        if peer is not None:
            ax.barh(y - 0.18, peer / top, height=0.34, color=PEER_COLOR)
            ax.text(peer / top + 0.01, y - 0.18, f"{r['peer']}: {peer:g}", va="center", fontsize=8)
        labels.append(f"{r['metric']} ({r['better']} is better)")
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels(labels, fontsize=8)
    ax.set_xlim(0, 1.45)
    ax.set_xticks([])
    for side in ("top", "right", "bottom"):
        ax.spines[side].set_visible(False)
    m = doc.get("machine", {})
    ax.set_title(
        f"{doc['scenario']} ({m.get('mode', '?')} run, {m.get('date', '?')}, "
        f"{m.get('cores', '?')} cores): Taskloom (blue) beside its peer (grey)",
        fontsize=9,
        loc="left",
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
