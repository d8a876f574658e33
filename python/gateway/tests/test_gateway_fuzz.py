"""Schemathesis over the gateway's OpenAPI document: the gateway served by uvicorn in front of
the real orchestrator binary (authentication on, the echo worker registered), a real
redis-server (sessions) and the real vector service (collections), every operation fuzzed
with data the document allows and data it forbids.

Conformance checked on every response: no 5xx; every status is in the document; every 4xx is
problem+json, as documented; every body follows its schema; data the document forbids is
refused; and data it allows is never refused by the gateway's own validation (a 422 of the
gateway's models is a constraint the document does not state; the orchestrator's 422s, about
step graphs and templates, are semantics no schema holds)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import Case, CheckContext, Response
from schemathesis.checks import (
    content_type_conformance,
    negative_data_rejection,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.generation import GenerationMode

from taskloom.gateway.app import create_app
from taskloom.gateway.config import Settings
from taskloom.gateway.errors import VALIDATION_DETAIL
from taskloom.testing.real_orchestrator import Tokens, serve_real_orchestrator
from taskloom.testing.redis_server import redis_server
from taskloom.testing.servers import serve_gateway
from taskloom.testing.vector_server import vector_server

BIN = Path(__file__).resolve().parents[3] / "bin"
KEY = "fuzz-key"
TOKENS = Tokens()


@pytest.fixture(scope="module")
def gateway_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    data = tmp_path_factory.mktemp("orchestrator")
    with (
        serve_real_orchestrator(BIN / "taskloom-orchestrator", data, tokens=TOKENS) as addr,
        redis_server() as redis_url,
        vector_server(BIN / "taskloom-vector") as vector_addr,
    ):
        settings_ = Settings(
            orchestrator_addr=addr,
            orchestrator_token=TOKENS.service,
            api_keys=f"{KEY}=fuzz",
            sessions_redis_url=redis_url,
            vector_addr=vector_addr,
        )
        with serve_gateway(settings_) as url:
            yield url


# The document the gateway serves at /openapi.json (a test below holds them equal); loaded
# here because schemathesis' lazy fixture loader does not run under pytest 9.
# Agent metrics need the metrics service, which this gateway is not given (it answers 503
# here); its bad input is tested against the real service (tests/e2e/test_metrics_service.py).
schema = schemathesis.openapi.from_dict(create_app(Settings()).openapi()).exclude(
    path_regex="^/v1/metrics"
)


@schemathesis.check
def gateway_refuses_only_what_the_document_forbids(
    ctx: CheckContext, response: Response, case: Case[Any]
) -> bool | None:
    meta = case.meta
    if meta is None or meta.generation.mode != GenerationMode.POSITIVE:
        return None
    if response.status_code == 422 and response.json().get("detail", "").startswith(
        VALIDATION_DETAIL
    ):
        raise AssertionError(f"data the document allows was refused: {response.text[:500]}")
    return None


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    negative_data_rejection,
    gateway_refuses_only_what_the_document_forbids,
]


@schema.parametrize()
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,  # the same cases every run: a failure is reproducible
)
def test_the_gateway_conforms_to_its_openapi_document(case: Case[Any], gateway_url: str) -> None:
    case.call_and_validate(
        base_url=gateway_url, headers={"X-API-Key": KEY}, checks=CHECKS, timeout=30
    )


def test_the_fuzzed_document_is_the_one_served(gateway_url: str) -> None:
    served = httpx.get(f"{gateway_url}/openapi.json").json()
    assert served == create_app(Settings()).openapi()
