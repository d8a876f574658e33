//! The HNSW crates Taskloom's own graph was measured against, behind the `ann-peers`
//! feature: `hnsw_rs` (pure Rust) and `usearch` (C++ through cxx), built on one thread
//! with the same M and ef_construction.

use hnsw_rs::prelude::{DistDot, DistL2, Distance, Hnsw as HnswRs};
use taskloom_vector::hnsw::{HnswParams, Slot};
use usearch::{Index, IndexOptions, MetricKind, ScalarKind};

use crate::{timed, Dataset, Searcher};

pub fn build_hnsw_rs(data: &Dataset, cosine: bool, params: HnswParams) -> (Searcher, f64) {
    // Vectors are normalized for cosine: the dot distance ranks as cosine does.
    if cosine {
        build_hnsw_rs_with(data, params, DistDot {})
    } else {
        build_hnsw_rs_with(data, params, DistL2 {})
    }
}

fn build_hnsw_rs_with<D>(data: &Dataset, params: HnswParams, distance: D) -> (Searcher, f64)
where
    D: Distance<f32> + Send + Sync + 'static,
{
    let (index, seconds) = timed(true, || {
        let n = data.base.len();
        let index = HnswRs::<f32, D>::new(params.m, n, 16, params.ef_construction, distance);
        for (i, v) in data.base.iter().enumerate() {
            index.insert((v.as_slice(), i));
        }
        index
    });
    let search: Searcher = Box::new(move |q: &[f32], k: usize, ef: usize| {
        index
            .search(q, k, ef)
            .iter()
            .map(|n| n.d_id as Slot)
            .collect()
    });
    (search, seconds)
}

pub fn build_usearch(data: &Dataset, cosine: bool, params: HnswParams) -> (Searcher, f64) {
    let options = IndexOptions {
        dimensions: data.base[0].len(),
        metric: if cosine {
            MetricKind::IP
        } else {
            MetricKind::L2sq
        },
        quantization: ScalarKind::F32,
        connectivity: params.m,
        expansion_add: params.ef_construction,
        expansion_search: params.ef_search,
        multi: false,
    };
    let (index, seconds) = timed(true, || {
        let index = Index::new(&options).expect("usearch index");
        index.reserve(data.base.len()).expect("reserve");
        for (i, v) in data.base.iter().enumerate() {
            index.add(i as u64, v.as_slice()).expect("add");
        }
        index
    });
    let search: Searcher = Box::new(move |q: &[f32], k: usize, ef: usize| {
        index.change_expansion_search(ef);
        index
            .search(q, k)
            .map(|m| m.keys.iter().map(|&key| key as Slot).collect())
            .unwrap_or_default()
    });
    (search, seconds)
}
