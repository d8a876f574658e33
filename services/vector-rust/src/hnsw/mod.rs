//! The HNSW graph (Malkov & Yashunin, 2016) behind a collection's approximate search:
//! dense slot numbers, every vector in one contiguous buffer, layer-0 links in one flat
//! array, distances from the SIMD kernels of `kernel.rs`.
//!
//! Written here rather than taken whole from a crate: Taskloom needs
//! tombstones with repair, a filter inside the walk, a parallel batch build and a
//! snapshot of the graph itself, and it measured level with hnswlib (README, "Vector
//! search", where `vector-bench --features ann-peers` measures `hnsw_rs` and `usearch`).

mod codec;
mod kernel;
mod repair;
mod visited;

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::sync::Mutex;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use visited::Visited;

pub use codec::DecodeError;

/// A vector's position in the graph; reused after a deleted point is repaired away.
pub type Slot = u32;

/// Defaults and limits of the HNSW parameters, as `vector.proto` documents them.
pub const DEFAULT_M: usize = 16;
pub const DEFAULT_EF_CONSTRUCTION: usize = 200;
pub const DEFAULT_EF_SEARCH: usize = 64;
pub const M_RANGE: std::ops::RangeInclusive<usize> = 2..=128;
pub const EF_RANGE: std::ops::RangeInclusive<usize> = 1..=4096;

/// Per-collection graph parameters: links per node (`m`, twice that on layer 0), the
/// candidate list while building (`ef_construction`) and while searching (`ef_search`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HnswParams {
    pub m: usize,
    pub ef_construction: usize,
    pub ef_search: usize,
}

impl Default for HnswParams {
    fn default() -> Self {
        Self {
            m: DEFAULT_M,
            ef_construction: DEFAULT_EF_CONSTRUCTION,
            ef_search: DEFAULT_EF_SEARCH,
        }
    }
}

/// How the graph measures closeness; lower is closer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Metric {
    /// Squared euclidean distance.
    L2,
    /// `1 - a·b`: cosine distance when both vectors are unit length.
    InnerProduct,
}

impl Metric {
    #[inline]
    pub fn distance(self, a: &[f32], b: &[f32]) -> f32 {
        kernel::select(self)(a, b)
    }
}

/// A slot and its distance to the query; ordered by distance, then slot.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Near {
    pub distance: f32,
    pub slot: Slot,
}

impl Eq for Near {}

impl Ord for Near {
    fn cmp(&self, other: &Self) -> Ordering {
        self.distance
            .total_cmp(&other.distance)
            .then(self.slot.cmp(&other.slot))
    }
}

impl PartialOrd for Near {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum SlotState {
    Live = 0,
    /// Deleted but still linked: searches pass through it and never return it.
    Deleted = 1,
    /// Unlinked by a repair; the next insert takes it.
    Free = 2,
}

/// Batch inserts smaller than this, or into a graph smaller than this, run one by one.
const PARALLEL_MIN: usize = 256;
/// Most points whose neighbours are searched in parallel against one frozen graph.
const PARALLEL_CHUNK: usize = 1024;

pub struct Hnsw {
    dim: usize,
    metric: Metric,
    /// `metric`'s kernel for this CPU, chosen once.
    kernel: kernel::Kernel,
    params: HnswParams,
    /// Links per node on layer 0 (`2 m`).
    m0: usize,
    level_mult: f64,
    rng: u64,
    vectors: Vec<f32>,
    levels: Vec<u8>,
    states: Vec<SlotState>,
    /// Layer 0: `m0 + 1` words per slot, a count then the links.
    links0: Vec<Slot>,
    /// Layers 1..=level: `m + 1` words per layer per slot; empty for level-0 slots.
    upper: Vec<Box<[Slot]>>,
    free: Vec<Slot>,
    entry: Option<Slot>,
    max_level: usize,
    live: usize,
    deleted: usize,
    visited_pool: Mutex<Vec<Visited>>,
}

impl Hnsw {
    pub fn new(dim: usize, metric: Metric, params: HnswParams) -> Self {
        Self {
            dim,
            metric,
            kernel: kernel::select(metric),
            params,
            m0: params.m * 2,
            level_mult: 1.0 / (params.m.max(2) as f64).ln(),
            rng: 0x5eed_7a5c_100d_0001,
            vectors: Vec::new(),
            levels: Vec::new(),
            states: Vec::new(),
            links0: Vec::new(),
            upper: Vec::new(),
            free: Vec::new(),
            entry: None,
            max_level: 0,
            live: 0,
            deleted: 0,
            visited_pool: Mutex::new(Vec::new()),
        }
    }

    pub fn dim(&self) -> usize {
        self.dim
    }

    pub fn metric(&self) -> Metric {
        self.metric
    }

    pub fn params(&self) -> HnswParams {
        self.params
    }

    /// Changes `ef_search` (the others shape the graph and stay as built).
    pub fn set_ef_search(&mut self, ef_search: usize) {
        self.params.ef_search = ef_search;
    }

    /// Points that searches can return.
    pub fn len(&self) -> usize {
        self.live
    }

    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// Deleted points still linked into the graph.
    pub fn tombstones(&self) -> usize {
        self.deleted
    }

    /// Slots ever allocated (live, deleted and free): the bound of every `Slot`.
    pub fn capacity(&self) -> usize {
        self.levels.len()
    }

    pub fn is_live(&self, slot: Slot) -> bool {
        self.states.get(slot as usize) == Some(&SlotState::Live)
    }

    pub fn vector(&self, slot: Slot) -> &[f32] {
        let start = slot as usize * self.dim;
        &self.vectors[start..start + self.dim]
    }

    /// Approximate bytes held by vectors and links.
    pub fn memory_bytes(&self) -> usize {
        let upper: usize = self.upper.iter().map(|u| u.len()).sum();
        (self.vectors.len() + self.links0.len() + upper) * 4 + self.levels.len() * 24
    }

    #[inline]
    fn distance_to(&self, query: &[f32], slot: Slot) -> f32 {
        (self.kernel)(query, self.vector(slot))
    }

    #[inline]
    fn max_links(&self, level: usize) -> usize {
        if level == 0 {
            self.m0
        } else {
            self.params.m
        }
    }

    #[inline]
    fn links_range(&self, slot: Slot, level: usize) -> (usize, usize) {
        if level == 0 {
            let start = slot as usize * (self.m0 + 1);
            (start, self.links0[start] as usize)
        } else {
            let start = (level - 1) * (self.params.m + 1);
            (start, self.upper[slot as usize][start] as usize)
        }
    }

    /// The links of `slot` on `level` (which must be at most the slot's level).
    #[inline]
    pub fn neighbors(&self, slot: Slot, level: usize) -> &[Slot] {
        let (start, count) = self.links_range(slot, level);
        if level == 0 {
            &self.links0[start + 1..start + 1 + count]
        } else {
            &self.upper[slot as usize][start + 1..start + 1 + count]
        }
    }

    fn set_neighbors(&mut self, slot: Slot, level: usize, links: impl IntoIterator<Item = Slot>) {
        let max = self.max_links(level);
        let (start, _) = self.links_range(slot, level);
        let words = if level == 0 {
            &mut self.links0[start..start + max + 1]
        } else {
            &mut self.upper[slot as usize][start..start + max + 1]
        };
        let mut count = 0;
        for link in links.into_iter().take(max) {
            count += 1;
            words[count] = link;
        }
        words[0] = count as Slot;
    }

    fn random_level(&mut self) -> usize {
        // splitmix64: a seeded stream keeps builds reproducible.
        self.rng = self.rng.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        let uniform = ((z >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
        ((-uniform.ln() * self.level_mult) as usize).min(u8::MAX as usize - 1)
    }

    fn take_visited(&self) -> Visited {
        let mut visited = self
            .visited_pool
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop()
            .unwrap_or_default();
        visited.reset(self.capacity());
        visited
    }

    fn return_visited(&self, visited: Visited) {
        self.visited_pool
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(visited);
    }

    /// Puts `vector` into a free or new slot at `level`, unlinked.
    fn allocate(&mut self, vector: &[f32], level: usize) -> Slot {
        let upper = vec![0; level * (self.params.m + 1)].into_boxed_slice();
        let slot = if let Some(slot) = self.free.pop() {
            let i = slot as usize;
            self.vectors[i * self.dim..(i + 1) * self.dim].copy_from_slice(vector);
            self.levels[i] = level as u8;
            self.states[i] = SlotState::Live;
            self.links0[i * (self.m0 + 1)] = 0;
            self.upper[i] = upper;
            slot
        } else {
            let slot = self.levels.len() as Slot;
            self.vectors.extend_from_slice(vector);
            self.levels.push(level as u8);
            self.states.push(SlotState::Live);
            self.links0.extend(std::iter::repeat_n(0, self.m0 + 1));
            self.upper.push(upper);
            slot
        };
        self.live += 1;
        slot
    }

    /// Inserts one vector (of the graph's dimension, normalized by the caller for
    /// cosine) and returns its slot.
    pub fn insert(&mut self, vector: &[f32]) -> Slot {
        let level = self.random_level();
        let plan = self.plan_insert(vector, level, &[]);
        let slot = self.allocate(vector, level);
        self.link(slot, level, plan);
        slot
    }

    /// Inserts many vectors; with a pool of more than one thread the neighbour searches
    /// of each chunk run in parallel against the graph as it was before the chunk, and
    /// each point also considers the chunk's earlier points as neighbours.
    pub fn insert_batch(
        &mut self,
        vectors: &[&[f32]],
        pool: Option<&rayon::ThreadPool>,
    ) -> Vec<Slot> {
        let mut slots = Vec::with_capacity(vectors.len());
        let parallel =
            pool.filter(|p| p.current_num_threads() > 1 && vectors.len() >= PARALLEL_MIN);
        let Some(pool) = parallel else {
            slots.extend(vectors.iter().map(|v| self.insert(v)));
            return slots;
        };
        let mut rest = vectors;
        while !rest.is_empty() {
            if self.capacity() < PARALLEL_MIN {
                slots.push(self.insert(rest[0]));
                rest = &rest[1..];
                continue;
            }
            // A chunk at most a tenth of the graph keeps the frozen graph representative.
            let size = (self.capacity() / 10)
                .clamp(32, PARALLEL_CHUNK)
                .min(rest.len());
            let (chunk, tail) = rest.split_at(size);
            let levels: Vec<usize> = chunk.iter().map(|_| self.random_level()).collect();
            let this = &*self;
            let plans: Vec<Vec<Vec<Near>>> = pool.install(|| {
                chunk
                    .par_iter()
                    .zip(levels.par_iter())
                    .enumerate()
                    .map(|(i, (vector, &level))| {
                        let earlier: Vec<(&[f32], usize)> = chunk[..i]
                            .iter()
                            .zip(&levels[..i])
                            .map(|(v, &l)| (*v, l))
                            .collect();
                        this.plan_insert(vector, level, &earlier)
                    })
                    .collect()
            });
            let first = slots.len();
            for ((vector, level), mut plan) in chunk.iter().zip(levels).zip(plans) {
                let slot = self.allocate(vector, level);
                // Earlier chunk members were planned as indices into the chunk.
                for layer in &mut plan {
                    for near in layer.iter_mut().filter(|n| n.slot & CHUNK_BIT != 0) {
                        near.slot = slots[first + (near.slot & !CHUNK_BIT) as usize];
                    }
                }
                self.link(slot, level, plan);
                slots.push(slot);
            }
            rest = tail;
        }
        slots
    }

    /// The neighbour candidates of a new vector at `level`, per layer from 0 up to
    /// `min(level, max_level)`, closest first. `earlier` are points inserted in the same
    /// parallel chunk (not in the graph yet): they join as `CHUNK_BIT | index`.
    fn plan_insert(
        &self,
        vector: &[f32],
        level: usize,
        earlier: &[(&[f32], usize)],
    ) -> Vec<Vec<Near>> {
        let Some(entry) = self.entry else {
            return Self::chunk_candidates(
                self.kernel,
                vector,
                earlier,
                0,
                level,
                self.params.ef_construction,
            );
        };
        let top = level.min(self.max_level);
        let mut current = Near {
            distance: self.distance_to(vector, entry),
            slot: entry,
        };
        for layer in (top + 1..=self.max_level).rev() {
            current = self.greedy_closest(vector, current, layer);
        }
        let mut visited = self.take_visited();
        let mut layers = vec![Vec::new(); top + 1];
        let mut entries = vec![current];
        for layer in (0..=top).rev() {
            visited.reset(self.capacity());
            let found = self.search_layer(
                vector,
                &entries,
                self.params.ef_construction,
                layer,
                &|s| self.is_live(s),
                self.deleted > 0,
                &mut visited,
            );
            let mut found = found.into_sorted_vec();
            entries = found.clone();
            if !earlier.is_empty() {
                found.extend(
                    Self::chunk_candidates(self.kernel, vector, earlier, layer, layer, usize::MAX)
                        .pop()
                        .unwrap_or_default(),
                );
                found.sort_unstable();
                found.truncate(self.params.ef_construction);
            }
            layers[layer] = found;
        }
        self.return_visited(visited);
        layers
    }

    /// Candidates among a chunk's earlier points for layers `from..=to`.
    fn chunk_candidates(
        kernel: kernel::Kernel,
        vector: &[f32],
        earlier: &[(&[f32], usize)],
        from: usize,
        to: usize,
        keep: usize,
    ) -> Vec<Vec<Near>> {
        let mut layers = vec![Vec::new(); to + 1];
        for (i, (other, other_level)) in earlier.iter().enumerate() {
            let distance = kernel(vector, other);
            for layer in layers
                .iter_mut()
                .take((*other_level).min(to) + 1)
                .skip(from)
            {
                layer.push(Near {
                    distance,
                    slot: CHUNK_BIT | i as Slot,
                });
            }
        }
        for layer in &mut layers {
            layer.sort_unstable();
            layer.truncate(keep);
        }
        layers
    }

    /// Links a freshly allocated slot to its planned neighbours, and them back to it.
    fn link(&mut self, slot: Slot, level: usize, plan: Vec<Vec<Near>>) {
        if self.entry.is_none() && plan.iter().all(Vec::is_empty) {
            self.entry = Some(slot);
            self.max_level = level;
            return;
        }
        for (layer, candidates) in plan.into_iter().enumerate() {
            let candidates: Vec<Near> = candidates
                .into_iter()
                .filter(|n| n.slot != slot && self.is_live(n.slot))
                .collect();
            let chosen = self.select_neighbors(&candidates, self.params.m);
            self.set_neighbors(slot, layer, chosen.iter().map(|n| n.slot));
            for near in chosen {
                self.link_back(near.slot, slot, near.distance, layer);
            }
        }
        if self.entry.is_none() || level > self.max_level {
            self.entry = Some(slot);
            self.max_level = level;
        }
    }

    /// Adds `new` to the links of `node` on `layer`, pruning by the heuristic when full.
    fn link_back(&mut self, node: Slot, new: Slot, distance: f32, layer: usize) {
        let max = self.max_links(layer);
        let current = self.neighbors(node, layer);
        if current.contains(&new) {
            return;
        }
        if current.len() < max {
            let (start, count) = self.links_range(node, layer);
            let words = if layer == 0 {
                &mut self.links0[start..]
            } else {
                &mut self.upper[node as usize][start..]
            };
            words[count + 1] = new;
            words[0] = count as Slot + 1;
            return;
        }
        let node_vector = self.vector(node);
        let mut candidates: Vec<Near> = current
            .iter()
            .map(|&s| Near {
                distance: (self.kernel)(node_vector, self.vector(s)),
                slot: s,
            })
            .collect();
        candidates.push(Near {
            distance,
            slot: new,
        });
        candidates.sort_unstable();
        let chosen = self.select_neighbors(&candidates, max);
        self.set_neighbors(node, layer, chosen.iter().map(|n| n.slot));
    }

    /// The neighbour-selection heuristic: walk candidates closest first and keep one
    /// only if it is closer to the base than to every one already kept, so links spread
    /// in several directions. `candidates` must be sorted.
    fn select_neighbors(&self, candidates: &[Near], max: usize) -> Vec<Near> {
        let mut chosen: Vec<Near> = Vec::with_capacity(max);
        for candidate in candidates {
            if chosen.len() >= max {
                break;
            }
            let vector = self.vector(candidate.slot);
            let diverse = chosen
                .iter()
                .all(|kept| (self.kernel)(vector, self.vector(kept.slot)) >= candidate.distance);
            if diverse {
                chosen.push(*candidate);
            }
        }
        chosen
    }

    fn greedy_closest(&self, query: &[f32], mut current: Near, layer: usize) -> Near {
        loop {
            let mut moved = false;
            for &next in self.neighbors(current.slot, layer) {
                let distance = self.distance_to(query, next);
                if distance < current.distance {
                    current = Near {
                        distance,
                        slot: next,
                    };
                    moved = true;
                }
            }
            if !moved {
                return current;
            }
        }
    }

    /// Best-first search of one layer from `entries`: a max-heap of at most `ef` accepted
    /// results. `exhaustive` (a filter or tombstones) keeps walking until `ef` results
    /// are accepted, since rejected nodes may lead to accepted ones.
    #[allow(clippy::too_many_arguments)]
    fn search_layer<F: Fn(Slot) -> bool>(
        &self,
        query: &[f32],
        entries: &[Near],
        ef: usize,
        layer: usize,
        accept: &F,
        exhaustive: bool,
        visited: &mut Visited,
    ) -> BinaryHeap<Near> {
        let mut results: BinaryHeap<Near> = BinaryHeap::with_capacity(ef + 1);
        let mut candidates: BinaryHeap<std::cmp::Reverse<Near>> = BinaryHeap::with_capacity(ef * 2);
        for &entry in entries {
            if !visited.insert(entry.slot) {
                continue;
            }
            candidates.push(std::cmp::Reverse(entry));
            if accept(entry.slot) {
                results.push(entry);
                if results.len() > ef {
                    results.pop();
                }
            }
        }
        let mut bound = results.peek().map_or(f32::INFINITY, |n| n.distance);
        while let Some(std::cmp::Reverse(closest)) = candidates.pop() {
            if closest.distance > bound && (results.len() >= ef || !exhaustive) {
                break;
            }
            let links = self.neighbors(closest.slot, layer);
            for (i, &next) in links.iter().enumerate() {
                if let Some(&ahead) = links.get(i + 1) {
                    self.prefetch(ahead);
                }
                if !visited.insert(next) {
                    continue;
                }
                let distance = self.distance_to(query, next);
                if results.len() < ef || distance < bound {
                    let near = Near {
                        distance,
                        slot: next,
                    };
                    candidates.push(std::cmp::Reverse(near));
                    if accept(next) {
                        results.push(near);
                        if results.len() > ef {
                            results.pop();
                        }
                        bound = results.peek().map_or(f32::INFINITY, |n| n.distance);
                    }
                }
            }
        }
        results
    }

    #[inline]
    fn prefetch(&self, slot: Slot) {
        #[cfg(target_arch = "x86_64")]
        {
            let start = slot as usize * self.dim;
            if let Some(first) = self.vectors.get(start) {
                // SAFETY: prefetching is a hint and never faults; the pointer is in bounds.
                unsafe {
                    std::arch::x86_64::_mm_prefetch(
                        (first as *const f32).cast::<i8>(),
                        std::arch::x86_64::_MM_HINT_T0,
                    );
                }
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = slot;
    }

    /// The `k` closest live points that `accept` lets through, closest first, searching
    /// layer 0 with a candidate list of `max(ef, k)`. `filtered` says `accept` rejects
    /// some live points.
    pub fn search<F: Fn(Slot) -> bool>(
        &self,
        query: &[f32],
        k: usize,
        ef: usize,
        accept: &F,
        filtered: bool,
    ) -> Vec<Near> {
        let Some(entry) = self.entry else {
            return Vec::new();
        };
        if k == 0 {
            return Vec::new();
        }
        let mut current = Near {
            distance: self.distance_to(query, entry),
            slot: entry,
        };
        for layer in (1..=self.max_level).rev() {
            current = self.greedy_closest(query, current, layer);
        }
        let mut visited = self.take_visited();
        let live_and_accepted = |s: Slot| self.is_live(s) && accept(s);
        let found = self.search_layer(
            query,
            &[current],
            ef.max(k),
            0,
            &live_and_accepted,
            filtered || self.deleted > 0,
            &mut visited,
        );
        self.return_visited(visited);
        let mut found = found.into_sorted_vec();
        found.truncate(k);
        found
    }

    /// The `k` closest of `slots` by brute force, closest first.
    pub fn exact(&self, query: &[f32], k: usize, slots: impl Iterator<Item = Slot>) -> Vec<Near> {
        if k == 0 {
            return Vec::new();
        }
        let mut best: BinaryHeap<Near> = BinaryHeap::with_capacity(k + 1);
        for slot in slots.filter(|&s| self.is_live(s)) {
            let distance = self.distance_to(query, slot);
            if best.len() < k || best.peek().is_some_and(|worst| distance < worst.distance) {
                best.push(Near { distance, slot });
                if best.len() > k {
                    best.pop();
                }
            }
        }
        best.into_sorted_vec()
    }

    /// Every live slot, ascending.
    pub fn live_slots(&self) -> impl Iterator<Item = Slot> + '_ {
        self.states
            .iter()
            .enumerate()
            .filter(|(_, s)| **s == SlotState::Live)
            .map(|(i, _)| i as Slot)
    }
}

/// Marks a candidate that is an earlier member of the chunk being inserted in parallel.
const CHUNK_BIT: Slot = 1 << 31;

#[cfg(test)]
mod tests;
