"""The worker's HTTP port (readiness, metrics, port fallback) and its settings."""

from __future__ import annotations

import httpx
import pytest
from prometheus_client import CollectorRegistry

from taskloom.agents.http_server import HttpServer, bind_with_fallback, build_app
from taskloom.agents.metrics_reporter import MetricsReporter
from taskloom.agents.settings import Settings, env_names, load_settings
from taskloom.agents.telemetry import Telemetry


@pytest.mark.asyncio
async def test_readyz_follows_registration_and_metrics_are_served() -> None:
    telemetry = Telemetry(MetricsReporter(""), registry=CollectorRegistry())
    telemetry.llm_cache("writer", "m1", hit=True)
    ready = False
    server = HttpServer(build_app(telemetry.registry, lambda: ready), "127.0.0.1:0")
    server.start()
    try:
        async with httpx.AsyncClient(base_url=f"http://{server.addr}") as client:
            assert (await client.get("/healthz")).json() == {"status": "ok"}
            not_ready = await client.get("/readyz")
            assert not_ready.status_code == 503
            assert not_ready.json()["not_ready"] == ["orchestrator"]
            ready = True
            assert (await client.get("/readyz")).status_code == 200
            metrics = (await client.get("/metrics")).text
            assert (
                'taskloom_agent_llm_cache_total{agent="writer",model="m1",result="hit"} 1.0'
                in metrics
            )
    finally:
        await server.stop()


def test_busy_port_moves_to_the_next_one() -> None:
    first = bind_with_fallback("127.0.0.1:0")
    port = first.getsockname()[1]
    try:
        second = bind_with_fallback(f"127.0.0.1:{port}", search=20)
        assert port < second.getsockname()[1] <= port + 20
        second.close()
    finally:
        first.close()


def test_flags_override_env_and_secrets_are_masked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TASKLOOM_CONCURRENCY", "4")
    monkeypatch.setenv("TASKLOOM_CACHE_ADDR", "127.0.0.1:50052")
    monkeypatch.setenv("TASKLOOM_OPENAI_API_KEY", "sk-secret")
    monkeypatch.setenv("TASKLOOM_AGENTS_DIR", "/a:/b")
    settings = load_settings(["--concurrency", "8", "--sim-latency-ms", "0"])
    assert settings.concurrency == 8
    assert settings.cache_addr == "127.0.0.1:50052"
    assert settings.sim_latency_ms == 0
    assert [str(p) for p in settings.agents_dir] == ["/a", "/b"]
    assert settings.openai_api_key.get_secret_value() == "sk-secret"
    assert "sk-secret" not in str(settings.printable())
    assert settings.printable()["openai_api_key"] == "***"


def test_help_documents_every_setting_with_its_env_var(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exited:
        load_settings(["--help"])
    assert exited.value.code == 0
    help_text = " ".join(capsys.readouterr().out.split())  # undo argparse's line wrapping
    for name, field in Settings.model_fields.items():
        assert field.description, f"setting {name} has no description"
        for env in env_names(name):
            assert env in help_text, f"--help does not mention {env}"
        if not Settings.is_secret(name):
            assert "--" + name.replace("_", "-") in help_text
    for secret in ("--openai-api-key", "--worker-token", "--embeddings-api-key"):
        assert secret not in help_text  # secrets come from the file or environment only


def test_stack_wide_and_unknown_env_vars_are_tolerated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TASKLOOM_GRPC_ADDR", "127.0.0.1:50052")  # set for the Rust services
    monkeypatch.setenv("TASKLOOM_SOMETHING_ELSE", "x")
    monkeypatch.setenv("TASKLOOM_VECTOR_ADDR", "127.0.0.1:50054")
    settings = load_settings([])
    assert settings.vector_addr == "127.0.0.1:50054"
    assert settings.printable()["vector_addr"] == "127.0.0.1:50054"
    assert load_settings(["--vector-addr", ""]).vector_addr == ""


def test_api_key_flag_is_refused() -> None:
    with pytest.raises(SystemExit) as exited:
        load_settings(["--openai-api-key", "sk-on-argv"])
    assert exited.value.code == 2
