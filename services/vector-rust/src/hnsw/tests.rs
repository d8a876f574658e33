//! Recall of the graph against brute force on seeded clustered data: after a build (one
//! by one and in parallel), after deleting 30 %, under a filter, and after a codec round
//! trip.

use super::*;

/// Seeded clustered vectors: `n` points around 20 random centres.
fn clustered(n: usize, dim: usize, seed: u64) -> Vec<Vec<f32>> {
    let mut state = seed;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f32 / (1u64 << 53) as f32 - 0.5
    };
    let centres: Vec<Vec<f32>> = (0..20)
        .map(|_| (0..dim).map(|_| next() * 10.0).collect())
        .collect();
    (0..n)
        .map(|i| {
            centres[i % centres.len()]
                .iter()
                .map(|c| c + next())
                .collect()
        })
        .collect()
}

/// The last 100 points as queries, the rest as data.
fn split(mut all: Vec<Vec<f32>>) -> (Vec<Vec<f32>>, Vec<Vec<f32>>) {
    let queries = all.split_off(all.len() - 100);
    (all, queries)
}

fn build(vectors: &[Vec<f32>], pool: Option<&rayon::ThreadPool>) -> Hnsw {
    let mut graph = Hnsw::new(vectors[0].len(), Metric::L2, HnswParams::default());
    let refs: Vec<&[f32]> = vectors.iter().map(Vec::as_slice).collect();
    let slots = graph.insert_batch(&refs, pool);
    assert_eq!(slots, (0..vectors.len() as Slot).collect::<Vec<_>>());
    graph
}

/// Mean recall@10 of HNSW search against exact search, over `queries`.
fn recall<F: Fn(Slot) -> bool>(
    graph: &Hnsw,
    queries: &[Vec<f32>],
    accept: &F,
    filtered: bool,
) -> f64 {
    let mut found = 0;
    let mut wanted = 0;
    for q in queries {
        let truth: Vec<Slot> = graph
            .exact(q, 10, graph.live_slots().filter(|&s| accept(s)))
            .iter()
            .map(|n| n.slot)
            .collect();
        let got = graph.search(q, 10, 64, accept, filtered);
        assert!(got.iter().all(|n| graph.is_live(n.slot) && accept(n.slot)));
        assert!(got.windows(2).all(|w| w[0].distance <= w[1].distance));
        found += got.iter().filter(|n| truth.contains(&n.slot)).count();
        wanted += truth.len();
    }
    found as f64 / wanted as f64
}

fn pool(threads: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("pool")
}

#[test]
fn recall_at_10_is_at_least_095_against_exact_search() {
    let (data, queries) = split(clustered(5000 + 100, 32, 7));
    let graph = build(&data, None);
    assert_eq!(graph.len(), 5000);
    let r = recall(&graph, &queries, &|_| true, false);
    assert!(r >= 0.95, "recall {r}");
}

#[test]
fn a_parallel_build_keeps_recall() {
    let (data, queries) = split(clustered(5000 + 100, 32, 8));
    let graph = build(&data, Some(&pool(2)));
    let r = recall(&graph, &queries, &|_| true, false);
    assert!(r >= 0.95, "recall {r}");
}

#[test]
fn recall_holds_after_deleting_30_percent_and_slots_are_reused() {
    let (data, queries) = split(clustered(5000 + 100, 32, 9));
    let mut graph = build(&data, None);
    for slot in (0..5000).filter(|s| s % 10 < 3) {
        assert!(graph.delete(slot, None));
    }
    assert!(!graph.delete(0, None), "a deleted slot is not live");
    assert_eq!(graph.len(), 3500);
    let r = recall(&graph, &queries, &|_| true, false);
    assert!(r >= 0.95, "recall after deletes {r}");
    graph.repair(None);
    assert_eq!(graph.tombstones(), 0);
    let reused = graph.insert(&data[0]);
    assert!(reused < 5000, "a freed slot is reused, got {reused}");
    assert_eq!(
        graph.search(&data[0], 1, 64, &|_| true, false)[0].slot,
        reused
    );
}

#[test]
fn deleting_everything_then_inserting_starts_a_new_graph() {
    let data = clustered(300, 8, 10);
    let mut graph = build(&data, None);
    for slot in 0..300 {
        graph.delete(slot, None);
    }
    graph.repair(None);
    assert!(graph.is_empty());
    assert!(graph.search(&data[0], 5, 64, &|_| true, false).is_empty());
    let slot = graph.insert(&data[5]);
    assert_eq!(
        graph.search(&data[5], 5, 64, &|_| true, false)[0].slot,
        slot
    );
}

#[test]
fn filtered_search_returns_only_accepted_points_with_recall() {
    let (data, queries) = split(clustered(5000 + 100, 32, 11));
    let graph = build(&data, None);
    let r = recall(&graph, &queries, &|s| s % 2 == 0, true);
    assert!(r >= 0.95, "recall under a 50 % filter {r}");
}

#[test]
fn inner_product_finds_the_most_similar_unit_vector() {
    let mut data = clustered(2000, 16, 12);
    for v in &mut data {
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.iter_mut().for_each(|x| *x /= norm);
    }
    let mut graph = Hnsw::new(16, Metric::InnerProduct, HnswParams::default());
    for v in &data {
        graph.insert(v);
    }
    let hit = graph.search(&data[42], 1, 64, &|_| true, false)[0];
    assert_eq!(hit.slot, 42);
    assert!(hit.distance.abs() < 1e-5);
}

#[test]
fn the_codec_round_trips_the_graph_and_rejects_garbage() {
    let data = clustered(1000, 16, 13);
    let mut graph = build(&data, None);
    graph.delete(3, None);
    let mut bytes = Vec::new();
    graph.encode(&mut bytes).expect("encode");
    let copy = Hnsw::decode(&mut bytes.as_slice()).expect("decode");
    assert_eq!(
        (copy.len(), copy.tombstones(), copy.capacity()),
        (999, 1, 1000)
    );
    for q in data.iter().take(20) {
        assert_eq!(
            copy.search(q, 10, 64, &|_| true, false),
            graph.search(q, 10, 64, &|_| true, false)
        );
    }
    assert!(Hnsw::decode(&mut &bytes[..bytes.len() / 2]).is_err());
    assert!(Hnsw::decode(&mut &b"not a graph at all"[..]).is_err());
}
