"""The LangGraph peer, run with its own environment's python (bench/peers/env.py):
the same workflow shapes as Taskloom's, timed in-process, one JSON line on stdout.

    python langgraph_peer.py runs --shape chain3|fanout5 --checkpointer sqlite|none --runs N
        no-op nodes, one invoke at a time; each run a new thread (SQLite: a file in a
        temp directory, LangGraph's SqliteSaver as it comes); p50/p99 of invoke().
    python langgraph_peer.py llm --concurrency C --workflows N --step-ms 50
        3 nodes that each await asyncio.sleep(step) (a simulated LLM call), ainvoke'd
        C at a time; p50/p99 of the time above the 3-step floor.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypedDict

from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.graph import END, START, StateGraph


class State(TypedDict, total=False):
    n: int


def noop(_state: State) -> dict[str, Any]:
    """A step that does nothing: the run measures the engine."""
    return {}


def build(shape: str, node: Callable[..., Any]) -> StateGraph:
    graph = StateGraph(State)
    if shape == "chain3":
        names = ["step1", "step2", "step3"]
        for name in names:
            graph.add_node(name, node)
        graph.add_edge(START, names[0])
        graph.add_edge(names[0], names[1])
        graph.add_edge(names[1], names[2])
        graph.add_edge(names[2], END)
        return graph
    fan = [f"f{i}" for i in range(1, 6)]
    for name in [*fan, "join"]:
        graph.add_node(name, node)
    for name in fan:
        graph.add_edge(START, name)
    graph.add_edge(fan, "join")  # join waits for all five
    graph.add_edge("join", END)
    return graph


def quantiles(ms: list[float]) -> dict[str, float]:
    ms = sorted(ms)
    pick = lambda q: ms[min(len(ms) - 1, int(q * len(ms)))]  # noqa: E731
    return {
        "p50_ms": round(statistics.median(ms), 3),
        "p99_ms": round(pick(0.99), 3),
        "mean_ms": round(statistics.fmean(ms), 3),
        "count": len(ms),
    }


def runs(shape: str, checkpointer: str, count: int, warmup: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-langgraph-") as tmp:
        saver = None
        conn = None
        if checkpointer == "sqlite":
            conn = sqlite3.connect(Path(tmp) / "checkpoints.sqlite", check_same_thread=False)
            saver = SqliteSaver(conn)
        app = build(shape, noop).compile(checkpointer=saver)
        times: list[float] = []
        for i in range(warmup + count):
            config = {"configurable": {"thread_id": uuid.uuid4().hex}}
            start = time.perf_counter()
            app.invoke({"n": 0}, config)
            if i >= warmup:
                times.append((time.perf_counter() - start) * 1000)
        if conn is not None:
            conn.close()
    return quantiles(times)


async def llm(concurrency: int, workflows: int, step_ms: float) -> dict[str, Any]:
    async def call(_state: State) -> dict[str, Any]:
        await asyncio.sleep(step_ms / 1000)
        return {}

    app = build("chain3", call).compile()
    floor = 3 * step_ms
    over: list[float] = []
    gate = asyncio.Semaphore(concurrency)

    async def one() -> None:
        async with gate:
            start = time.perf_counter()
            await app.ainvoke({"n": 0})
            over.append((time.perf_counter() - start) * 1000 - floor)

    await asyncio.gather(*(one() for _ in range(min(concurrency, 10))))  # warm up
    over.clear()
    await asyncio.gather(*(one() for _ in range(workflows)))
    return quantiles(over)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("runs")
    r.add_argument("--shape", choices=["chain3", "fanout5"], required=True)
    r.add_argument("--checkpointer", choices=["sqlite", "none"], required=True)
    r.add_argument("--runs", type=int, required=True)
    r.add_argument("--warmup", type=int, default=50)
    m = sub.add_parser("llm")
    m.add_argument("--concurrency", type=int, required=True)
    m.add_argument("--workflows", type=int, required=True)
    m.add_argument("--step-ms", type=float, default=50.0)
    args = parser.parse_args(argv)
    if args.cmd == "runs":
        out = runs(args.shape, args.checkpointer, args.runs, args.warmup)
    else:
        out = asyncio.run(llm(args.concurrency, args.workflows, args.step_ms))
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
