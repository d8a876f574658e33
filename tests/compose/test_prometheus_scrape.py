"""The Compose stack's Prometheus scrapes every Taskloom service, each worker replica included
(found through Docker's DNS)."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import httpx
import yaml

from .compose_stack import ComposeStack

SCRAPE_CONFIG = Path(__file__).resolve().parents[2] / "deploy/prometheus/prometheus.yml"


def test_prometheus_scrapes_every_job_and_every_worker(compose: ComposeStack) -> None:
    jobs = {job["job_name"] for job in yaml.safe_load(SCRAPE_CONFIG.read_text())["scrape_configs"]}
    workers = len(compose.container_ids("worker"))
    api = compose.url("prometheus", 9090) + "/api/v1"
    deadline = time.monotonic() + 90
    while True:
        result = httpx.get(f"{api}/query", params={"query": "up"}).json()["data"]["result"]
        up = {(r["metric"]["job"], r["metric"]["instance"]): r["value"][1] for r in result}
        scraped = Counter(job for job, _ in up)
        if set(scraped) == jobs and scraped["worker"] == workers and set(up.values()) == {"1"}:
            break
        assert time.monotonic() < deadline, f"scraped: {up}, configured jobs: {sorted(jobs)}"
        time.sleep(1)
    print(f"\ncompose-test: Prometheus scrapes {len(up)} targets, all up: {sorted(up)}")
