"""Scenario `vector`: Taskloom's HNSW index against hnswlib and faiss-cpu, then the real
vector service over gRPC.

Datasets, ground truth and peers come from bench/vector_peers.py, run in an isolated peer
environment (bench/peers/env.py): `vector` (hnswlib, faiss-cpu, numpy) in quick runs,
`vector-text` (those plus torch and the MiniLM model) in full runs only, since torch takes
minutes to install; nothing enters the services' .venv. Embeddings and sets are cached
under bench/.cache/vector/.
In process, one thread, same M and ef_construction for all three: build time and a
QPS-recall curve of single-query calls (ours through target/release/vector-bench).
Over gRPC (bin/taskloom-vector, fresh data dir): p99 of one-query calls, recall under
payload filters, recovery time after `kill -9`.

Follows the runner's mode: quick (`make bench`) uses 20,000 synthetic points and leaves the
text set (and its `_text` metrics) out; full (`make bench-full`) runs the issue's sizes,
100,000 x 128 and 20,000 MiniLM x 384, whose results are committed.
Needs `make build` and `cargo build --release -p taskloom-vector --bin vector-bench`
(run() builds the latter).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from array import array
from pathlib import Path

import grpc
from peers import env
from run import Result

from taskloom.v1 import vector_pb2, vector_pb2_grpc

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "bench"
SERVICE = ROOT / "bin" / "taskloom-vector"
VECTOR_BENCH = ROOT / "target" / "release" / "vector-bench"

M, EF_CONSTRUCTION = 16, 200
EFS = "16,24,32,40,48,64,96,128"
REPEATS = 2  # passes over the queries per ef; the fastest counts
TARGET_RECALL = 0.95
# Issue #10's goals. recovery_seconds has none: the issue asks for the figure, not a bound.
QPS_GOAL = "ratio >= 1.0"  # against the faster of hnswlib and faiss
BUILD_GOAL = "ratio <= 1.2"  # against hnswlib
GRPC_P99_GOAL = "value <= 2"
FILTERED_RECALL_GOAL = "value >= 0.90"
RECALL_AFTER_DELETES_GOAL = "value >= 0.95"
GRPC_QUERIES = 2000
FILTER_QUERIES = 200


def run(quick: bool = False) -> list[Result]:
    python = env.python("vector" if quick else "vector-text")
    subprocess.run(
        ["cargo", "build", "--release", "-q", "-p", "taskloom-vector", "--bin", "vector-bench"],
        cwd=ROOT,
        check=True,
    )
    if not SERVICE.exists():
        raise RuntimeError(f"{SERVICE} is missing: run `make build` first")
    datasets = _json([python, BENCH / "vector_peers.py", "datasets", *(["--full"] * (not quick))])
    results = _over_grpc(datasets["synthetic"])
    for name, suffix in (("synthetic", ""), ("text", "_text")):
        if name in datasets:
            results += _in_process(python, datasets[name], suffix)
    if quick:
        print("vector: quick run: the text set (MiniLM, torch) runs in `make bench-full` only")
    return results


def _json(cmd: list) -> dict:
    out = subprocess.run([str(c) for c in cmd], check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


def _qps_at(curve: list[dict], recall: float) -> tuple[float, int] | None:
    """QPS of the smallest swept ef whose recall reaches `recall`, and that ef."""
    for point in sorted(curve, key=lambda p: p["ef"]):
        if point["recall"] >= recall:
            return point["qps"], point["ef"]
    return None


def _in_process(python: Path, meta: dict, suffix: str) -> list[Result]:
    directory = Path(meta["dir"])
    ours = _json(
        [
            VECTOR_BENCH,
            *("--base", directory / "base.f32", "--queries", directory / "queries.f32"),
            *("--truth", directory / "truth.i32", "--dim", meta["dim"]),
            *("--metric", meta["metric"], "--m", M, "--ef-construction", EF_CONSTRUCTION),
            *("--efs", EFS, "--parallel-threads", os.cpu_count() or 1, "--repeats", REPEATS),
        ]
    )
    peers = _json(
        [
            python,
            BENCH / "vector_peers.py",
            "peers",
            *("--dir", directory, "--m", M, "--ef-construction", EF_CONSTRUCTION, "--efs", EFS),
            *("--repeats", REPEATS),
        ]
    )
    label = f"{meta['points']}x{meta['dim']}"
    ours_qps = _qps_at(ours["curve"], TARGET_RECALL)
    peer_qps = {name: _qps_at(peers[name]["curve"], TARGET_RECALL) for name in peers}
    reached = {name: q for name, q in peer_qps.items() if q is not None}
    best = max(reached, key=lambda n: reached[n][0]) if reached else None
    rows = [
        Result(
            f"index_qps_at_recall_0.95{suffix}",
            round(ours_qps[0]) if ours_qps else 0,
            f"q/s ({label})",
            "higher",
            peer=best,
            peer_value=round(reached[best][0]) if best else None,
            goal=QPS_GOAL,
        )
    ]
    for name, q in reached.items():
        if name != best:
            rows.append(
                Result(
                    f"index_qps_at_recall_0.95{suffix}_vs_{name}",
                    rows[0].value,
                    f"q/s ({label})",
                    "higher",
                    peer=name,
                    peer_value=round(q[0]),
                )
            )
    batch = _qps_at(peers["hnswlib"]["batch_curve"], TARGET_RECALL)
    if batch:
        # hnswlib's one-call batch on one thread: its engine without per-call Python cost.
        rows.append(
            Result(
                f"index_qps_at_recall_0.95{suffix}_vs_hnswlib_batch",
                rows[0].value,
                f"q/s ({label})",
                "higher",
                peer="hnswlib (batch call)",
                peer_value=round(batch[0]),
            )
        )
    rows.append(
        Result(
            f"build_seconds{suffix}",
            round(ours["build_seconds"], 2),
            "s (1 thread)",
            "lower",
            peer="hnswlib",
            peer_value=round(peers["hnswlib"]["build_seconds"], 2),
            goal=BUILD_GOAL,
        )
    )
    rows.append(
        Result(
            f"build_seconds{suffix}_vs_faiss",
            round(ours["build_seconds"], 2),
            "s (1 thread)",
            "lower",
            peer="faiss",
            peer_value=round(peers["faiss"]["build_seconds"], 2),
        )
    )
    parallel = ours.get("parallel_build")
    if parallel:
        rows.append(
            Result(
                f"build_seconds_parallel{suffix}",
                round(parallel["seconds"], 2),
                f"s ({parallel['threads']} threads)",
                "lower",
            )
        )
    rows.append(
        Result(
            f"recall_at_10_after_deleting_30pct{suffix}",
            round(ours["delete"]["recall"], 4),
            f"recall (ef {ours['delete']['ef']})",
            "higher",
            goal=RECALL_AFTER_DELETES_GOAL,
        )
    )
    # The whole curves, one row per ef, so the README table can show them side by side.
    for name, curve in (("taskloom", ours["curve"]), *((n, peers[n]["curve"]) for n in peers)):
        for point in curve:
            rows.append(
                Result(
                    f"curve{suffix}_{name}_ef{point['ef']}",
                    round(point["qps"]),
                    f"q/s at recall {point['recall']:.4f}",
                    "higher",
                )
            )
    return rows


def _read_f32(path: Path, dim: int) -> list[list[float]]:
    flat = array("f")
    flat.frombytes(path.read_bytes())
    if sys.byteorder != "little":
        flat.byteswap()
    return [flat[i : i + dim].tolist() for i in range(0, len(flat), dim)]


class _Service:
    """bin/taskloom-vector on free loopback ports, its stderr read for the serving line."""

    def __init__(self, data_dir: str) -> None:
        self.data_dir = data_dir
        self.proc: subprocess.Popen[str] | None = None
        self.log: list[str] = []

    def start(self) -> float:
        started = time.perf_counter()
        self.proc = subprocess.Popen(
            [
                str(SERVICE),
                *("--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0"),
                *("--data-dir", self.data_dir),
            ],
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stderr
        for line in self.proc.stderr:
            self.log.append(line)
            entry = json.loads(line) if line.startswith("{") else {}
            if entry.get("msg") == "serving":
                self.addr = entry["grpc_addr"]
                return time.perf_counter() - started
        raise RuntimeError("taskloom-vector exited before serving:\n" + "".join(self.log))

    def logged_recovery_seconds(self) -> float:
        for line in self.log:
            if '"vector store recovered"' in line:
                return float(json.loads(line)["seconds"])
        return float("nan")

    def kill(self) -> None:
        if self.proc:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
            self.proc = None

    def stop(self) -> None:
        if self.proc:
            self.proc.terminate()
            self.proc.wait(timeout=30)
            self.proc = None


def _over_grpc(meta: dict) -> list[Result]:
    directory, dim = Path(meta["dir"]), meta["dim"]
    base = _read_f32(directory / "base.f32", dim)
    queries = _read_f32(directory / "queries.f32", dim)
    with tempfile.TemporaryDirectory(prefix="taskloom-vector-bench-") as data_dir:
        service = _Service(data_dir)
        service.start()
        try:
            stub = vector_pb2_grpc.VectorServiceStub(grpc.insecure_channel(service.addr))
            stub.CreateCollection(
                vector_pb2.CreateCollectionRequest(
                    name="bench",
                    dimension=dim,
                    distance=vector_pb2.DISTANCE_EUCLIDEAN,
                    hnsw=vector_pb2.HnswConfig(m=M, ef_construction=EF_CONSTRUCTION),
                )
            )
            for start in range(0, len(base), 1000):
                points = []
                for i, vector in enumerate(base[start : start + 1000], start):
                    point = vector_pb2.Point(id=str(i), vector=vector)
                    point.payload.update({"bucket": i % 10})
                    points.append(point)
                stub.Upsert(vector_pb2.UpsertRequest(collection="bench", points=points))
            latencies = []
            for n in range(GRPC_QUERIES + 200):
                request = vector_pb2.SearchRequest(
                    collection="bench", vector=queries[n % len(queries)], top_k=10
                )
                started = time.perf_counter()
                stub.Search(request)
                if n >= 200:  # the first calls warm the channel
                    latencies.append(time.perf_counter() - started)
            latencies.sort()
            p99 = latencies[int(len(latencies) * 0.99) - 1] * 1000
            tenth = _filtered_recall(stub, queries, ["3"])
            half = _filtered_recall(stub, queries, ["0", "1", "2", "3", "4"])
            service.kill()
            restart = _Service(data_dir)
            wall = restart.start()
            stub = vector_pb2_grpc.VectorServiceStub(grpc.insecure_channel(restart.addr))
            held = stub.GetCollection(vector_pb2.GetCollectionRequest(name="bench")).collection
            restart.stop()
            if held.points != len(base):
                raise RuntimeError(f"{held.points} points after restart, wanted {len(base)}")
        finally:
            service.kill()
    label = f"{len(base)} points"
    return [
        Result("grpc_search_p99_ms", round(p99, 3), f"ms ({label})", "lower", goal=GRPC_P99_GOAL),
        Result(
            "filtered_recall_at_10",
            round(tenth, 4),
            "recall (filter: 10 %)",
            "higher",
            goal=FILTERED_RECALL_GOAL,
        ),
        Result("filtered_recall_at_10_half", round(half, 4), "recall (filter: 50 %)", "higher"),
        Result("recovery_seconds", round(wall, 2), f"s to serving ({label})", "lower"),
        Result(
            "recovery_seconds_logged",
            round(restart.logged_recovery_seconds(), 2),
            "s (the service's log)",
            "lower",
        ),
    ]


def _filtered_recall(stub, queries: list[list[float]], buckets: list[str]) -> float:
    """Recall@10 of filtered searches against the service's exact filtered search."""
    condition = vector_pb2.FilterCondition(key="bucket", any_of=buckets)
    found = wanted = 0
    for vector in queries[:FILTER_QUERIES]:

        def search(exact: bool, vector: list[float] = vector) -> set[str]:
            request = vector_pb2.SearchRequest(
                collection="bench", vector=vector, top_k=10, conditions=[condition], exact=exact
            )
            return {hit.id for hit in stub.Search(request).hits}

        truth = search(True)
        found += len(search(False) & truth)
        wanted += len(truth)
    return found / wanted
