"""The Compose stack's Prometheus scrapes every Taskloom service, workers included."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import yaml

from .compose_stack import ComposeStack

SCRAPE_CONFIG = Path(__file__).resolve().parents[2] / "deploy/prometheus/prometheus.yml"


def test_prometheus_scrapes_every_job_of_its_configuration(compose: ComposeStack) -> None:
    jobs = {job["job_name"] for job in yaml.safe_load(SCRAPE_CONFIG.read_text())["scrape_configs"]}
    api = compose.url("prometheus", 9090) + "/api/v1"
    deadline = time.monotonic() + 90
    while True:
        result = httpx.get(f"{api}/query", params={"query": "up"}).json()["data"]["result"]
        up = {(r["metric"]["job"], r["metric"]["instance"]): r["value"][1] for r in result}
        if {job for job, _ in up} == jobs and set(up.values()) == {"1"}:
            break
        assert time.monotonic() < deadline, f"scraped: {up}, configured jobs: {sorted(jobs)}"
        time.sleep(1)
    print(f"\ncompose-test: Prometheus scrapes {len(up)} targets, all up: {sorted(up)}")
