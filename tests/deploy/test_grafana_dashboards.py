"""The Grafana dashboards in deploy/grafana follow Grafana's dashboard schema.

The schema is Grafana's own, as the typed models of `grafana-foundation-sdk` (generated from
Grafana's schemas, panel plugins included): a dashboard is decoded into them and encoded
back, and every key of the file must survive, so a misspelled or unknown field (a panel's
`gridPoss`, a query's `exprr`, a legend's `displayMod`) fails. The models do not check the
types of plain values.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from grafana_foundation_sdk.cog import plugins
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import Dashboard

from .deploy_files import REPO

DASHBOARDS = sorted((REPO / "deploy/grafana/dashboards").glob("*.json"))
# The overview and one per area.
AREAS = {"overview", "orchestrator", "agents-llm", "cache", "vector", "gateway"}

plugins.register_default_plugins()


def lost_keys(original: Any, decoded: Any, path: str = "") -> list[str]:
    """Where `decoded` lacks a key of `original` or differs from it."""
    if isinstance(original, dict):
        if not isinstance(decoded, dict):
            return [f"{path}: not an object after decoding"]
        return [
            lost
            for key, value in original.items()
            for lost in (
                lost_keys(value, decoded[key], f"{path}.{key}")
                if key in decoded
                else [f"{path}.{key}: not in the schema"]
            )
        ]
    if isinstance(original, list):
        if not isinstance(decoded, list) or len(decoded) != len(original):
            return [f"{path}: a list of another length after decoding"]
        return [
            lost
            for i, pair in enumerate(zip(original, decoded, strict=True))
            for lost in lost_keys(*pair, f"{path}[{i}]")
        ]
    return [] if original == decoded else [f"{path}: {original!r} decodes as {decoded!r}"]


def schema_errors(document: dict[str, Any]) -> list[str]:
    decoded = json.loads(json.dumps(Dashboard.from_json(document), cls=JSONEncoder))
    return lost_keys(document, decoded)


def test_there_is_a_dashboard_per_area() -> None:
    assert {p.stem.removeprefix("taskloom-") for p in DASHBOARDS} == AREAS


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.stem)
def test_dashboard_follows_grafanas_schema(path: Path) -> None:
    document = json.loads(path.read_text())
    assert schema_errors(document) == []
    assert document["uid"] == path.stem
    ids = [panel["id"] for panel in document["panels"]]
    assert len(ids) == len(set(ids)), "panel ids repeat"


def test_the_schema_check_finds_unknown_fields() -> None:
    document = json.loads(DASHBOARDS[0].read_text())
    panel = next(p for p in document["panels"] if p.get("targets"))
    panel["gridPoss"] = panel.pop("gridPos")
    panel["targets"][0]["exprr"] = panel["targets"][0].pop("expr")
    errors = schema_errors(document)
    assert any(e.endswith(".gridPoss: not in the schema") for e in errors), errors
    assert any(e.endswith(".exprr: not in the schema") for e in errors), errors
