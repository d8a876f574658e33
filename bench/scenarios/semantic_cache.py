"""Scenario `semantic_cache`: one semantic cache lookup at the worker, embedding included
(`SemanticCache.lookup`: embed the question, filtered nearest-neighbour search in the real
vector service over gRPC, decide hit or miss), against the naive peer a semantic cache
without a vector index is: embed the question and scan every cached vector in Python.

Both hold the same N cached questions of one scope and answer the same queries (half
paraphrase-like hits, half misses), with the deterministic hashing embedder (in process,
so the figure is Taskloom's lookup rather than a remote model's latency).
Follows the runner's mode: N = 2,000 in quick runs (`make bench`), 20,000 in full ones
(`make bench-full`); 500 lookups in both.
Needs `make build` (bin/taskloom-vector).
"""

from __future__ import annotations

import asyncio
import random
import time

from prometheus_client import CollectorRegistry
from run import Result

from taskloom.agents.metrics_reporter import MetricsReporter
from taskloom.agents.semantic_cache import SemanticCache
from taskloom.agents.telemetry import Telemetry
from taskloom.sdk.collections import Collections
from taskloom.sdk.embeddings import HashingEmbedder, cosine
from taskloom.testing.vector_server import vector_server

ENTRIES_QUICK, ENTRIES_FULL = 2_000, 20_000
LOOKUPS = 500
THRESHOLD = 0.95
WORDS = [f"w{i}" for i in range(5000)]


def run(quick: bool = False) -> list[Result]:
    with vector_server() as addr:
        ours, peer = asyncio.run(_measure(addr, ENTRIES_QUICK if quick else ENTRIES_FULL))
    return [
        Result("semantic_cache_lookup_p99_ms", ours[0], "ms", "lower", "python_scan", peer[0]),
        Result("semantic_cache_lookup_p50_ms", ours[1], "ms", "lower", "python_scan", peer[1]),
    ]


def _question(rng: random.Random) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(12))


async def _measure(addr: str, entries: int) -> tuple[tuple[float, float], tuple[float, float]]:
    rng = random.Random(7)
    embedder = HashingEmbedder(256)
    store = Collections(addr, embedder, kind="s")
    cache = SemanticCache(store, Telemetry(MetricsReporter(""), registry=CollectorRegistry()))
    questions = [_question(rng) for _ in range(entries)]
    vectors = await embedder.embed(questions)
    await store.create("bench", "llm")
    for start in range(0, entries, 500):  # loaded in batches of 500 points
        batch = range(start, min(start + 500, entries))
        points = [(f"q{i}", vectors[i], {"scope": "s", "answer": "{}"}) for i in batch]
        await store.put("bench", "llm", points)
    queries = [
        rng.choice(questions) + (" please" if i % 2 else "") if i % 4 < 2 else _question(rng)
        for i in range(LOOKUPS)
    ]
    ours, our_hits = [], 0
    for query in queries:
        began = time.perf_counter()
        hit, _ = await cache.lookup("bench", "s", query, THRESHOLD)
        ours.append((time.perf_counter() - began) * 1000)
        our_hits += hit is not None
    peer, peer_hits = [], 0
    for query in queries:
        began = time.perf_counter()
        vector = (await embedder.embed([query]))[0]
        peer_hits += max(cosine(vector, v) for v in vectors) >= THRESHOLD
        peer.append((time.perf_counter() - began) * 1000)
    await store.aclose()
    # The index must find what the scan finds, or its speed means nothing.
    assert our_hits == peer_hits, (our_hits, peer_hits)
    return _p99_p50(ours), _p99_p50(peer)


def _p99_p50(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return (
        round(ordered[int(len(ordered) * 0.99) - 1], 3),
        round(ordered[len(ordered) // 2], 3),
    )
