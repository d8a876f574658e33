"""Document collections end to end on the real vector service: REST create, list, add,
search and delete; tenants never see each other's collections; bad input answered
clearly; and the `rag` tool answering from a document uploaded through REST (the
simulated provider scripted to call it, embeddings by the hashing embedder)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from taskloom.sdk.client import TaskloomClient
from taskloom.sdk.localstack import Ports, Stack, StackConfig
from taskloom.sdk.streams import collect_stream

BIN = Path(__file__).resolve().parents[2] / "bin"
LIBRARIAN = """
name: librarian
provider: simulated
model: sim-1
cache: false
tools:
  - name: rag
    options: {collection: handbook, top_k: 2}
"""
KEEPER = """
name: keeper
provider: simulated
model: sim-1
cache: false
tools:
  - name: remember
  - name: memory_search
    options: {top_k: 3, token_budget: 200}
"""
HANDBOOK = (
    "Holidays: every employee gets twenty eight days of paid leave per year. "
    "Expenses: receipts are filed within thirty days through the finance portal. "
) + "Filler text about the office plants and the coffee machine. " * 60


@pytest.fixture(scope="module")
def gateway_url(local_processes: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    agents = Path(tmp_path_factory.mktemp("librarian-agents"))
    (agents / "librarian.yaml").write_text(LIBRARIAN)
    (agents / "keeper.yaml").write_text(KEEPER)
    cfg = StackConfig(
        bin_dir=BIN,
        state_dir=Path(tmp_path_factory.mktemp("collections-stack")),
        ports=Ports.random(),
        only=("vector", "orchestrator", "worker", "gateway"),
        env_overrides={
            "worker": {
                "TASKLOOM_AGENTS_DIR": str(agents),
                "TASKLOOM_SIM_LATENCY_MS": "0",
                "TASKLOOM_SIM_TOKENS_PER_SECOND": "0",
                "TASKLOOM_CACHE_ADDR": "",
                "TASKLOOM_METRICS_ADDR": "",
            },
            "gateway": {"TASKLOOM_API_KEYS": "ka=acme,kg=globex"},
        },
    )
    with Stack(cfg) as running:
        yield running.gateway_url


@pytest.fixture
def acme(gateway_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gateway_url, headers={"X-API-Key": "ka"}, timeout=30) as c:
        yield c


@pytest.fixture
def globex(gateway_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gateway_url, headers={"X-API-Key": "kg"}, timeout=30) as c:
        yield c


def problem(response: httpx.Response, status: int, reason: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["reason"] == reason, body
    return body


def test_a_collection_is_filled_searched_and_deleted(acme: httpx.Client) -> None:
    created = acme.post("/v1/collections", json={"name": "notes"})
    assert created.status_code == 201, created.text
    added = acme.post("/v1/collections/notes/documents", json={"text": HANDBOOK, "id": "hb"})
    assert added.status_code == 201, added.text
    assert added.json()["document_id"] == "hb" and added.json()["chunks"] > 1
    assert acme.get("/v1/collections/notes").json()["chunks"] == added.json()["chunks"]
    assert "notes" in [c["name"] for c in acme.get("/v1/collections").json()["collections"]]

    found = acme.post("/v1/collections/notes/search", json={"query": "paid leave holidays"})
    assert found.status_code == 200, found.text
    assert "twenty eight days of paid leave" in found.json()["hits"][0]["text"]

    assert acme.delete("/v1/collections/notes").status_code == 204
    problem(acme.get("/v1/collections/notes"), 404, "COLLECTION_NOT_FOUND")


def test_tenants_never_see_each_others_collections(
    acme: httpx.Client, globex: httpx.Client
) -> None:
    assert acme.post("/v1/collections", json={"name": "secrets"}).status_code == 201
    acme.post("/v1/collections/secrets/documents", json={"text": "the vault code is 1234"})
    assert "secrets" not in [c["name"] for c in globex.get("/v1/collections").json()["collections"]]
    for response in (
        globex.get("/v1/collections/secrets"),
        globex.post("/v1/collections/secrets/search", json={"query": "vault code"}),
        globex.post("/v1/collections/secrets/documents", json={"text": "overwrite"}),
        globex.delete("/v1/collections/secrets"),
    ):
        problem(response, 404, "COLLECTION_NOT_FOUND")
    # The same name is free for another tenant, and is another collection.
    assert globex.post("/v1/collections", json={"name": "secrets"}).status_code == 201
    assert globex.get("/v1/collections/secrets").json()["chunks"] == 0
    assert acme.get("/v1/collections/secrets").json()["chunks"] == 1


def test_bad_input_is_answered_clearly_and_changes_nothing(acme: httpx.Client) -> None:
    problem(
        acme.post("/v1/collections/nope/documents", json={"text": "x"}), 404, "COLLECTION_NOT_FOUND"
    )
    problem(
        acme.post("/v1/collections/nope/search", json={"query": "x"}), 404, "COLLECTION_NOT_FOUND"
    )
    assert acme.post("/v1/collections", json={"name": "docs"}).status_code == 201
    problem(acme.post("/v1/collections", json={"name": "docs"}), 409, "COLLECTION_EXISTS")
    bad_name = problem(
        acme.post("/v1/collections", json={"name": "Bad Name!"}), 422, "INVALID_ARGUMENT"
    )
    assert bad_name["errors"][0]["field"] == "name"
    empty = problem(
        acme.post("/v1/collections/docs/documents", json={"text": "  "}), 422, "INVALID_ARGUMENT"
    )
    assert empty["errors"][0]["field"] == "text"
    wrong = problem(
        acme.post("/v1/collections/docs/search", json={"vector": [0.1, 0.2, 0.3]}),
        422,
        "DIMENSION_MISMATCH",
    )
    assert wrong["errors"][0]["field"] == "vector" and "dimension 3" in wrong["detail"]
    assert acme.get("/v1/collections/docs").json()["chunks"] == 0


def test_the_rag_tool_answers_from_a_document_uploaded_through_rest(acme: httpx.Client) -> None:
    assert acme.post("/v1/collections", json={"name": "handbook"}).status_code == 201
    added = acme.post("/v1/collections/handbook/documents", json={"text": HANDBOOK})
    assert added.status_code == 201, added.text
    script = [
        {"tool_calls": [{"name": "rag", "arguments": {"query": "how many days of paid leave"}}]},
        {"text": "Done."},
    ]
    body = {"prompt": "Holidays?", "simulate": {"script": script}}
    with TaskloomClient(str(acme.base_url), "ka") as sdk:
        task_id = sdk.submit_task("librarian", body).id
        run = collect_stream(sdk.stream_events(task_id))
    assert run.status == "succeeded" and run.task is not None, run
    assert run.task["result"]["tool_calls"] == [{"name": "rag", "ok": True, "cached": False}]
    # What the tool gave the model: the handbook's passage on leave, first.
    (result,) = run.tool_results
    passages = orjson.loads(result["content"])["results"]
    assert "twenty eight days of paid leave" in passages[0]["text"]


def scripted(sdk: TaskloomClient, agent: str, *calls: dict[str, Any]) -> list[dict[str, Any]]:
    """Runs `agent` with the simulated model calling `calls` (one per turn); returns the
    tools' results as the model read them."""
    script = [{"tool_calls": [call]} for call in calls] + [{"text": "Done."}]
    task_id = sdk.submit_task(agent, {"prompt": "go", "simulate": {"script": script}}).id
    run = collect_stream(sdk.stream_events(task_id))
    assert run.status == "succeeded", run
    assert all(r["ok"] for r in run.tool_results), run.tool_results
    return [orjson.loads(r["content"]) for r in run.tool_results]


def test_an_agent_stores_a_fact_in_one_task_and_recalls_it_in_another(gateway_url: str) -> None:
    remember = {
        "name": "remember",
        "arguments": {"fact": "Ada's favourite colour is teal", "importance": 0.9},
    }
    other = {
        "name": "remember",
        "arguments": {"fact": "The build server runs Debian", "importance": 0.2},
    }
    search = {"name": "memory_search", "arguments": {"query": "what is Ada's favourite colour"}}
    with TaskloomClient(gateway_url, "ka") as acme, TaskloomClient(gateway_url, "kg") as globex:
        scripted(acme, "keeper", remember, other)
        (found,) = scripted(acme, "keeper", search)
        first = found["facts"][0]
        assert first["fact"] == "Ada's favourite colour is teal" and first["importance"] == 0.9
        # Another tenant's keeper remembers nothing of it.
        (theirs,) = scripted(globex, "keeper", search)
        assert theirs["facts"] == []
