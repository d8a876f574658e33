//! `vector-bench`: the in-process half of `make bench SCENARIO=vector`. Reads a dataset
//! the scenario wrote (raw little-endian f32 vectors, i32 ground-truth ids), builds the
//! HNSW graph with one thread (and again in parallel), sweeps `ef` over single-query
//! searches on one thread, deletes a share of the points and measures recall again.
//! Prints one JSON object on stdout.
//!
//! One-thread figures are in the thread's CPU time, as the peers' are
//! (`time.thread_time()`): on a machine shared with other work, wall time measures the
//! neighbours. The parallel build is in wall time.

use std::path::PathBuf;
use std::time::Instant;

use clap::Parser;
use taskloom_vector::hnsw::{Hnsw, HnswParams, Metric, Slot};

#[cfg(feature = "ann-peers")]
mod peers;

/// A built index's single-query search: (query, k, ef) -> ids, closest first.
type Searcher = Box<dyn Fn(&[f32], usize, usize) -> Vec<Slot>>;

#[derive(Parser)]
struct Args {
    /// Base vectors: `n × dim` little-endian f32.
    #[arg(long)]
    base: PathBuf,
    /// Query vectors: `q × dim` little-endian f32.
    #[arg(long)]
    queries: PathBuf,
    /// Exact top-k ids of each query: `q × k` little-endian i32.
    #[arg(long)]
    truth: PathBuf,
    #[arg(long)]
    dim: usize,
    #[arg(long, default_value_t = 10)]
    k: usize,
    /// `l2` or `cosine` (vectors are normalized, then compared by inner product).
    #[arg(long, default_value = "l2")]
    metric: String,
    #[arg(long, default_value_t = 16)]
    m: usize,
    #[arg(long, default_value_t = 200)]
    ef_construction: usize,
    /// The `ef` values of the QPS–recall curve.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "10,16,24,32,48,64,96,128,192,256"
    )]
    efs: Vec<usize>,
    /// Threads of the extra parallel build (1 skips it).
    #[arg(long, default_value_t = 2)]
    parallel_threads: usize,
    /// Share of the points deleted before measuring recall again.
    #[arg(long, default_value_t = 0.3)]
    delete_share: f64,
    /// Passes over the queries per `ef`; the fastest counts.
    #[arg(long, default_value_t = 3)]
    repeats: usize,
    /// `taskloom`, or with `--features ann-peers` one of the crates it was measured
    /// against: `hnsw_rs`, `usearch` (build and curve only).
    #[arg(long, default_value = "taskloom")]
    engine: String,
}

/// CPU time of the calling thread, in seconds.
fn thread_cpu_seconds() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the call's duration.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID) failed");
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

/// Wall or CPU seconds taken by `f`.
fn timed<T>(cpu: bool, f: impl FnOnce() -> T) -> (T, f64) {
    if cpu {
        let started = thread_cpu_seconds();
        let out = f();
        (out, thread_cpu_seconds() - started)
    } else {
        let started = Instant::now();
        let out = f();
        (out, started.elapsed().as_secs_f64())
    }
}

fn read_f32s(path: &PathBuf) -> anyhow::Result<Vec<f32>> {
    let bytes = std::fs::read(path)?;
    Ok(bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect())
}

fn normalize(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
}

struct Dataset {
    base: Vec<Vec<f32>>,
    queries: Vec<Vec<f32>>,
    truth: Vec<Vec<Slot>>,
}

fn load(args: &Args, metric: Metric) -> anyhow::Result<Dataset> {
    let rows = |flat: Vec<f32>| -> Vec<Vec<f32>> {
        flat.chunks_exact(args.dim)
            .map(|c| {
                let mut v = c.to_vec();
                if metric == Metric::InnerProduct {
                    normalize(&mut v);
                }
                v
            })
            .collect()
    };
    let truth = std::fs::read(&args.truth)?
        .chunks_exact(4)
        .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as Slot)
        .collect::<Vec<_>>()
        .chunks_exact(args.k)
        .map(<[Slot]>::to_vec)
        .collect();
    Ok(Dataset {
        base: rows(read_f32s(&args.base)?),
        queries: rows(read_f32s(&args.queries)?),
        truth,
    })
}

fn build(data: &Dataset, metric: Metric, params: HnswParams, threads: usize) -> (Hnsw, f64) {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("thread pool");
    let refs: Vec<&[f32]> = data.base.iter().map(Vec::as_slice).collect();
    timed(threads == 1, || {
        let mut graph = Hnsw::new(data.base[0].len(), metric, params);
        graph.insert_batch(&refs, Some(&pool));
        graph
    })
}

/// (recall@k, queries per second) of single-query searches at `ef`, fastest of `repeats`.
fn sweep_point(
    search: &Searcher,
    data: &Dataset,
    k: usize,
    ef: usize,
    repeats: usize,
) -> (f64, f64) {
    let mut best = f64::INFINITY;
    let mut found = 0;
    for _ in 0..repeats {
        let (hits, seconds) = timed(true, || {
            data.queries
                .iter()
                .map(|query| search(query, k, ef))
                .collect::<Vec<_>>()
        });
        found = hits
            .iter()
            .zip(&data.truth)
            .map(|(hits, truth)| hits.iter().filter(|h| truth.contains(h)).count())
            .sum();
        best = best.min(seconds);
    }
    let recall = found as f64 / (data.queries.len() * k) as f64;
    (recall, data.queries.len() as f64 / best)
}

/// Recall@k after deleting every slot whose index falls in the first `share` of each
/// hundred, against exact search over the live points.
fn recall_after_deletes(graph: &mut Hnsw, data: &Dataset, k: usize, ef: usize, share: f64) -> f64 {
    let cut = (share * 100.0).round() as usize;
    for slot in 0..data.base.len() {
        if slot % 100 < cut {
            graph.delete(slot as Slot, None);
        }
    }
    let mut found = 0;
    for query in &data.queries {
        let truth: Vec<Slot> = graph
            .exact(query, k, graph.live_slots())
            .iter()
            .map(|n| n.slot)
            .collect();
        let hits = graph.search(query, k, ef, &|_| true, false);
        found += hits.iter().filter(|h| truth.contains(&h.slot)).count();
    }
    found as f64 / (data.queries.len() * k) as f64
}

fn graph_searcher(graph: &std::rc::Rc<Hnsw>) -> Searcher {
    let graph = graph.clone();
    Box::new(move |q: &[f32], k: usize, ef: usize| {
        graph
            .search(q, k, ef, &|_| true, false)
            .iter()
            .map(|n| n.slot)
            .collect()
    })
}

fn sweep(searcher: &Searcher, data: &Dataset, args: &Args) -> Vec<serde_json::Value> {
    args.efs
        .iter()
        .map(|&ef| {
            let (recall, qps) = sweep_point(searcher, data, args.k, ef, args.repeats);
            serde_json::json!({"ef": ef, "recall": recall, "qps": qps})
        })
        .collect()
}

#[cfg(feature = "ann-peers")]
fn compare_engine(
    args: &Args,
    data: &Dataset,
    metric: Metric,
    params: HnswParams,
) -> anyhow::Result<()> {
    let cosine = metric == Metric::InnerProduct;
    let (searcher, build_seconds) = match args.engine.as_str() {
        "hnsw_rs" => peers::build_hnsw_rs(data, cosine, params),
        "usearch" => peers::build_usearch(data, cosine, params),
        other => anyhow::bail!("unknown engine {other:?}"),
    };
    let curve = sweep(&searcher, data, args);
    println!(
        "{}",
        serde_json::json!({"engine": args.engine, "build_seconds": build_seconds, "curve": curve})
    );
    Ok(())
}

#[cfg(not(feature = "ann-peers"))]
fn compare_engine(args: &Args, _: &Dataset, _: Metric, _: HnswParams) -> anyhow::Result<()> {
    anyhow::bail!("engine {:?} needs `--features ann-peers`", args.engine)
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let metric = match args.metric.as_str() {
        "l2" => Metric::L2,
        "cosine" => Metric::InnerProduct,
        other => anyhow::bail!("unknown metric {other:?}"),
    };
    let data = load(&args, metric)?;
    let params = HnswParams {
        m: args.m,
        ef_construction: args.ef_construction,
        ef_search: 64,
    };
    if args.engine != "taskloom" {
        return compare_engine(&args, &data, metric, params);
    }
    let (graph, build_seconds) = build(&data, metric, params, 1);
    let graph = std::rc::Rc::new(graph);
    let searcher = graph_searcher(&graph);
    let curve = sweep(&searcher, &data, &args);
    drop(searcher);
    let mut graph = std::rc::Rc::into_inner(graph).expect("no other owner");
    // The delete check runs at the smallest swept ef that reached 0.95 before deleting.
    let delete_ef = curve
        .iter()
        .find(|p| p["recall"].as_f64().unwrap_or(0.0) >= 0.95)
        .and_then(|p| p["ef"].as_u64())
        .unwrap_or(64) as usize;
    let parallel_build_seconds = (args.parallel_threads > 1).then(|| {
        let (parallel, seconds) = build(&data, metric, params, args.parallel_threads);
        let (recall, _) = sweep_point(
            &graph_searcher(&std::rc::Rc::new(parallel)),
            &data,
            args.k,
            delete_ef,
            1,
        );
        serde_json::json!({"threads": args.parallel_threads, "seconds": seconds, "recall": recall})
    });
    let delete_recall =
        recall_after_deletes(&mut graph, &data, args.k, delete_ef, args.delete_share);
    let out = serde_json::json!({
        "points": data.base.len(),
        "queries": data.queries.len(),
        "build_seconds": build_seconds,
        "parallel_build": parallel_build_seconds,
        "curve": curve,
        "delete": {"share": args.delete_share, "ef": delete_ef, "recall": delete_recall},
        "memory_bytes": graph.memory_bytes(),
    });
    println!("{out}");
    Ok(())
}
