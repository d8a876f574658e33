"""`python -m taskloom.agents` with named endpoints, as a process: a bad endpoint
configuration stops the start with an error that names it; a task on a priced endpoint
(a real local OpenAI-compatible server) carries its cost in its result, in the worker's
/metrics and /readyz show the endpoints, and the endpoint's key appears in no log line."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from google.protobuf import json_format

from taskloom.sdk.localstack import ENDPOINTS_ENV
from taskloom.v1 import common_pb2, worker_hub_pb2

pytestmark = pytest.mark.asyncio

EXIT_WAIT_S = 30.0
START_WAIT_S = 60.0  # a worker process starts in seconds, more on a loaded machine
SECRET = "sk-live-never-print-me-0123456789"
AGENT = "name: {name}\nprovider: {provider}\nmodel: {model}\ncache: false\n"


def worker_env(tmp_path: Path, endpoints: dict[str, Any], **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "TASKLOOM_HTTP_ADDR": "127.0.0.1:0",
        "TASKLOOM_AGENTS_DIR": str(tmp_path),
        "TASKLOOM_AGENTS_RELOAD": "false",
        ENDPOINTS_ENV: json.dumps(endpoints),  # the launcher reads the key names from it too
        "TASKLOOM_LOG_LEVEL": "debug",
        **extra,
    }


def write_agent(tmp_path: Path, name: str, provider: str, model: str = "m") -> None:
    (tmp_path / f"{name}.yaml").write_text(AGENT.format(name=name, provider=provider, model=model))


async def start_fails(env: dict[str, str]) -> str:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "taskloom.agents",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), EXIT_WAIT_S)
    assert proc.returncode == 2, (out, err)
    return (out + err).decode()


async def test_an_agent_naming_an_unknown_endpoint_stops_the_start(tmp_path: Path) -> None:
    write_agent(tmp_path, "writer", "local-vllm")
    output = await start_fails(worker_env(tmp_path, {}))
    assert "provider 'local-vllm' (used by writer) is not a configured endpoint" in output


async def test_a_missing_key_variable_is_named_and_no_key_is_printed(tmp_path: Path) -> None:
    write_agent(tmp_path, "writer", "vllm")
    endpoints = {
        "vllm": {"kind": "openai", "base_url": "http://x/v1", "api_key_env": "VLLM_KEY_UNSET"},
        "paid": {"kind": "openai", "base_url": "http://y/v1", "api_key_env": "PAID_KEY"},
    }
    env = worker_env(tmp_path, endpoints, PAID_KEY=SECRET)
    env.pop("VLLM_KEY_UNSET", None)
    output = await start_fails(env)
    assert (
        "endpoints.vllm.api_key_env: the environment variable VLLM_KEY_UNSET is not set" in output
    )
    assert SECRET not in output


@pytest.mark.parametrize(
    ("endpoint", "expected"),
    [
        (
            {
                "kind": "openai",
                "base_url": "http://x/v1",
                "prices": {"m": {"input": -1, "output": 2}},
            },
            "prices.m.input",
        ),
        (
            {"kind": "openai", "base_url": "http://x/v1", "prices": {"m": {"input": 1}}},
            "prices.m.output",
        ),
        ({"kind": "gemini", "base_url": "http://x/v1"}, "kind"),
        ({"kind": "openai"}, "base_url is required"),
    ],
)
async def test_a_bad_endpoint_is_named_with_its_field(
    tmp_path: Path, endpoint: dict[str, Any], expected: str
) -> None:
    output = await start_fails(worker_env(tmp_path, {"bad": endpoint}))
    assert "endpoints" in output and "bad" in output and expected in output


async def test_a_fallback_to_an_unknown_endpoint_is_named(tmp_path: Path) -> None:
    endpoint = {"kind": "simulated", "fallback": {"endpoint": "nowhere"}}
    output = await start_fails(worker_env(tmp_path, {"sim2": endpoint}))
    assert "endpoints.sim2.fallback.endpoint: 'nowhere' is not a configured endpoint" in output


async def test_a_task_on_a_priced_endpoint_carries_its_cost_everywhere(
    tmp_path: Path, hub_server, fake_openai
) -> None:
    write_agent(tmp_path, "writer", "paid", model="fast")
    endpoints = {
        "paid": {
            "kind": "openai",
            "base_url": fake_openai.base_url,
            "api_key_env": "PAID_KEY",
            "models": {"fast": "gpt-test"},
            "prices": {"gpt-test": {"input": 2.5, "output": 10}},
        }
    }
    env = worker_env(
        tmp_path, endpoints, PAID_KEY=SECRET, TASKLOOM_ORCHESTRATOR_ADDR=hub_server.addr
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "taskloom.agents",
        env=env,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stderr is not None
    lines: list[str] = []
    try:
        while "agent worker starting" not in (line := (await proc.stderr.readline()).decode()):
            assert line, "the worker exited before starting"
            lines.append(line)
        lines.append(line)
        http = "http://" + orjson.loads(line)["http_addr"]
        session = await asyncio.wait_for(hub_server.hub.sessions.get(), START_WAIT_S)
        await session.recv("credit")
        task = common_pb2.Task(
            id="t-1", agent="writer", tenant="acme", input={"string_value": "hi"}
        )
        session.send(assignment=worker_hub_pb2.Assignment(task=task, lease_id="lease-1"))
        result = await session.recv("result")
        async with httpx.AsyncClient(base_url=http) as client:
            metrics = (await client.get("/metrics")).text
            ready = (await client.get("/readyz")).json()
        proc.terminate()
        _, rest = await asyncio.wait_for(proc.communicate(), EXIT_WAIT_S)
        lines.append(rest.decode())
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()

    # The wire usage, which the orchestrator adds into its rollups.
    assert result.usage.cost_nano_usd == 7 * 2500 + 3 * 10_000
    line = result.usage.models[0]
    assert (line.endpoint, line.model, line.calls, line.priced) == ("paid", "gpt-test", 1, True)
    assert (line.prompt_tokens, line.completion_tokens) == (7, 3)
    usage = json_format.MessageToDict(result.output)["usage"]
    # The fake server reports 7 prompt and 3 completion tokens.
    assert usage["prompt_tokens"] == 7 and usage["completion_tokens"] == 3
    assert usage["cost_usd"] == pytest.approx((7 * 2.5 + 3 * 10) / 1e6)
    assert usage["models"] == [
        {
            "endpoint": "paid",
            "model": "gpt-test",
            "prompt_tokens": 7,
            "completion_tokens": 3,
            "cost_usd": pytest.approx(4.75e-05),
            "saved_tokens": 0,
            "saved_cost_usd": 0,
        }
    ]
    labels = 'agent="writer",endpoint="paid",model="gpt-test",tenant="acme"'
    assert f"taskloom_agent_llm_cost_usd_total{{{labels}}} 4.75e-05" in metrics
    prompt = 'agent="writer",endpoint="paid",kind="prompt",model="gpt-test",tenant="acme"'
    assert f"taskloom_agent_llm_tokens_total{{{prompt}}} 7.0" in metrics
    assert ready["endpoints"]["paid"] == {"kind": "openai", "breaker": "closed"}
    assert fake_openai.headers[0]["authorization"] == f"Bearer {SECRET}"
    logged = "".join(lines)
    assert '"paid"' in logged and "PAID_KEY" in logged  # the settings were printed
    assert SECRET not in logged
