//! One collection in memory: its HNSW graph, the point id and payload of every slot, and
//! the payload index; the validation that keeps bad input from changing anything; and
//! the choice between graph and exact search.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::distance::Distance;
use crate::filter::{Filter, Payload, PayloadBelow, PayloadIndex};
use crate::hnsw::{Hnsw, HnswParams, Near, Slot, EF_RANGE, M_RANGE};

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum VectorError {
    #[error("collection {0:?} does not exist")]
    CollectionNotFound(String),
    #[error("collection {0:?} already exists")]
    CollectionExists(String),
    /// A request field is malformed; `field` names it (e.g. `points[2].id`).
    #[error("{field}: {message}")]
    InvalidArgument { field: String, message: String },
    #[error("{field}: has dimension {got}, the collection's is {expected}")]
    DimensionMismatch {
        field: String,
        expected: usize,
        got: usize,
    },
    /// A configured capacity would be exceeded; `limit` names the setting.
    #[error("{message}")]
    CapacityExceeded {
        limit: &'static str,
        message: String,
    },
    #[error("storage: {0}")]
    Storage(String),
}

impl VectorError {
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::InvalidArgument {
            field: field.into(),
            message: message.into(),
        }
    }

    /// The same error with `prefix` before the field it names (`searches[2].` + `vector`).
    pub fn within(self, prefix: &str) -> Self {
        match self {
            Self::InvalidArgument { field, message } => Self::InvalidArgument {
                field: format!("{prefix}{field}"),
                message,
            },
            Self::DimensionMismatch {
                field,
                expected,
                got,
            } => Self::DimensionMismatch {
                field: format!("{prefix}{field}"),
                expected,
                got,
            },
            other => other,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Point {
    pub id: String,
    pub vector: Vec<f32>,
    #[serde(default)]
    pub payload: Payload,
}

/// What a collection is, fixed at creation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CollectionConfig {
    pub name: String,
    pub dimension: usize,
    pub distance: Distance,
    pub hnsw: HnswParams,
}

impl CollectionConfig {
    /// Checks the HNSW parameters against the limits `vector.proto` states.
    pub fn validate_hnsw(params: &HnswParams) -> Result<(), VectorError> {
        if !M_RANGE.contains(&params.m) {
            return Err(VectorError::invalid(
                "hnsw.m",
                format!("must be between {} and {}", M_RANGE.start(), M_RANGE.end()),
            ));
        }
        for (field, value) in [
            ("hnsw.ef_construction", params.ef_construction),
            ("hnsw.ef_search", params.ef_search),
        ] {
            if !EF_RANGE.contains(&value) {
                return Err(VectorError::invalid(
                    field,
                    format!(
                        "must be between {} and {}",
                        EF_RANGE.start(),
                        EF_RANGE.end()
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// A collection's description, as listed.
#[derive(Debug, Clone, PartialEq)]
pub struct CollectionInfo {
    pub config: CollectionConfig,
    pub points: usize,
    pub tombstones: usize,
}

/// A search hit with its payload when asked for.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoredPoint {
    pub id: String,
    pub score: f32,
    pub payload: Option<Payload>,
}

/// One search, validated by the caller except for the vector.
#[derive(Debug, Clone, Default)]
pub struct SearchQuery {
    pub vector: Vec<f32>,
    pub top_k: usize,
    /// None for the collection's `ef_search`.
    pub ef: Option<usize>,
    pub exact: bool,
    pub filter: Filter,
    pub with_payload: bool,
}

/// Service-wide knobs of the search path.
#[derive(Debug, Clone, Copy)]
pub struct SearchTuning {
    /// Collections with at most this many points are searched exactly.
    pub exact_below: usize,
}

impl Default for SearchTuning {
    fn default() -> Self {
        Self { exact_below: 1000 }
    }
}

pub struct Collection {
    pub config: CollectionConfig,
    graph: Hnsw,
    ids: Vec<Option<String>>,
    payloads: Vec<Payload>,
    slots: HashMap<String, Slot>,
    payload_index: PayloadIndex,
    payload_bytes: usize,
}

impl Collection {
    pub fn new(config: CollectionConfig) -> Self {
        let graph = Hnsw::new(config.dimension, config.distance.metric(), config.hnsw);
        Self::with_graph(config, graph)
    }

    fn with_graph(config: CollectionConfig, graph: Hnsw) -> Self {
        Self {
            config,
            graph,
            ids: Vec::new(),
            payloads: Vec::new(),
            slots: HashMap::new(),
            payload_index: PayloadIndex::default(),
            payload_bytes: 0,
        }
    }

    /// A collection from a snapshot's graph and the id and payload of each slot.
    pub fn restore(
        config: CollectionConfig,
        graph: Hnsw,
        slots: Vec<Option<(String, Payload)>>,
    ) -> Result<Self, String> {
        if slots.len() != graph.capacity() {
            return Err("slot table does not match the graph".into());
        }
        let mut collection = Self::with_graph(config, graph);
        for (slot, entry) in slots.into_iter().enumerate() {
            let slot = slot as Slot;
            match entry {
                Some((id, payload)) if collection.graph.is_live(slot) => {
                    collection.remember(slot, id, payload)
                }
                None if !collection.graph.is_live(slot) => collection.forget_slot(slot),
                _ => return Err(format!("slot {slot} disagrees with the graph")),
            }
        }
        Ok(collection)
    }

    /// The id and payload of every slot (None where no live point is), for snapshots.
    pub fn slot_table(&self) -> impl Iterator<Item = Option<(&str, &Payload)>> {
        (0..self.graph.capacity()).map(|slot| {
            self.ids
                .get(slot)
                .and_then(|id| id.as_deref())
                .map(|id| (id, &self.payloads[slot]))
        })
    }

    pub fn graph(&self) -> &Hnsw {
        &self.graph
    }

    pub fn len(&self) -> usize {
        self.graph.len()
    }

    pub fn contains(&self, id: &str) -> bool {
        self.slots.contains_key(id)
    }

    pub fn is_empty(&self) -> bool {
        self.graph.is_empty()
    }

    pub fn info(&self) -> CollectionInfo {
        CollectionInfo {
            config: self.config.clone(),
            points: self.graph.len(),
            tombstones: self.graph.tombstones(),
        }
    }

    /// Approximate bytes held: graph, ids and payloads.
    pub fn memory_bytes(&self) -> usize {
        self.graph.memory_bytes() + self.payload_bytes + self.slots.len() * 48
    }

    /// Bytes `points` would add, by the same estimate.
    pub fn estimate_bytes(&self, points: &[Point]) -> usize {
        let per_point = self.config.dimension * 4 + (self.config.hnsw.m * 2 + 1) * 4 + 72;
        points
            .iter()
            .map(|p| per_point + p.id.len() * 2 + payload_size(&p.payload))
            .sum()
    }

    pub fn check_vector(&self, field: &str, vector: &[f32]) -> Result<(), VectorError> {
        if vector.len() != self.config.dimension {
            return Err(VectorError::DimensionMismatch {
                field: field.to_string(),
                expected: self.config.dimension,
                got: vector.len(),
            });
        }
        if vector.iter().any(|x| !x.is_finite()) {
            return Err(VectorError::invalid(
                field,
                "must hold finite numbers only (no NaN or infinity)",
            ));
        }
        Ok(())
    }

    /// Validates every point; returns them with later duplicates of an id winning.
    pub fn validate_upsert(&self, points: Vec<Point>) -> Result<Vec<Point>, VectorError> {
        for (i, p) in points.iter().enumerate() {
            if p.id.is_empty() || p.id.len() > MAX_ID_BYTES {
                return Err(VectorError::invalid(
                    format!("points[{i}].id"),
                    format!("must be 1 to {MAX_ID_BYTES} bytes"),
                ));
            }
            self.check_vector(&format!("points[{i}].vector"), &p.vector)?;
        }
        let mut last: HashMap<&str, usize> = HashMap::with_capacity(points.len());
        for (i, p) in points.iter().enumerate() {
            last.insert(p.id.as_str(), i);
        }
        if last.len() == points.len() {
            return Ok(points);
        }
        let keep: Vec<bool> = (0..points.len())
            .map(|i| last[points[i].id.as_str()] == i)
            .collect();
        Ok(points
            .into_iter()
            .zip(keep)
            .filter_map(|(p, k)| k.then_some(p))
            .collect())
    }

    /// Inserts or replaces validated points (see [`Self::validate_upsert`]).
    pub fn apply_upsert(&mut self, points: Vec<Point>, pool: Option<&rayon::ThreadPool>) -> usize {
        for p in &points {
            if let Some(&slot) = self.slots.get(&p.id) {
                self.remove_slot(slot, pool);
            }
        }
        let prepared: Vec<Vec<f32>> = points
            .iter()
            .map(|p| self.config.distance.prepare(&p.vector))
            .collect();
        let refs: Vec<&[f32]> = prepared.iter().map(Vec::as_slice).collect();
        let slots = self.graph.insert_batch(&refs, pool);
        let n = points.len();
        for (slot, p) in slots.into_iter().zip(points) {
            self.remember(slot, p.id, p.payload);
        }
        n
    }

    /// Deletes the points with these ids; returns how many existed.
    pub fn apply_delete(&mut self, ids: &[String], pool: Option<&rayon::ThreadPool>) -> usize {
        ids.iter()
            .filter(|id| match self.slots.get(id.as_str()) {
                Some(&slot) => {
                    self.remove_slot(slot, pool);
                    true
                }
                None => false,
            })
            .count()
    }

    /// Ids of the points any of `bounds` holds for (a scan of every payload: retention
    /// runs on small memory collections, and an index by number would cost every upsert).
    pub fn ids_below(&self, bounds: &[PayloadBelow]) -> Vec<String> {
        if bounds.is_empty() {
            return Vec::new();
        }
        self.ids
            .iter()
            .zip(&self.payloads)
            .filter_map(|(id, payload)| {
                let id = id.as_ref()?;
                bounds.iter().any(|b| b.holds(payload)).then(|| id.clone())
            })
            .collect()
    }

    fn remember(&mut self, slot: Slot, id: String, payload: Payload) {
        let i = slot as usize;
        if self.ids.len() <= i {
            self.ids.resize(i + 1, None);
            self.payloads.resize(i + 1, Payload::new());
        }
        self.payload_index.add(slot, &payload);
        self.payload_bytes += payload_size(&payload) + id.len();
        self.slots.insert(id.clone(), slot);
        self.ids[i] = Some(id);
        self.payloads[i] = payload;
    }

    fn forget_slot(&mut self, slot: Slot) {
        let i = slot as usize;
        if self.ids.len() <= i {
            self.ids.resize(i + 1, None);
            self.payloads.resize(i + 1, Payload::new());
        }
    }

    fn remove_slot(&mut self, slot: Slot, pool: Option<&rayon::ThreadPool>) {
        let i = slot as usize;
        let payload = std::mem::take(&mut self.payloads[i]);
        self.payload_index.remove(slot, &payload);
        if let Some(id) = self.ids[i].take() {
            self.payload_bytes = self
                .payload_bytes
                .saturating_sub(payload_size(&payload) + id.len());
            self.slots.remove(&id);
        }
        self.graph.delete(slot, pool);
    }

    /// The closest points, closest first. Exact when asked, when the collection is small,
    /// or when a filter matches so few points that scanning them costs less than walking
    /// the graph past all the points it rejects.
    pub fn search(
        &self,
        query: &SearchQuery,
        tuning: SearchTuning,
    ) -> Result<Vec<ScoredPoint>, VectorError> {
        self.check_vector("vector", &query.vector)?;
        let vector = self.config.distance.prepare(&query.vector);
        let ef = query
            .ef
            .unwrap_or(self.config.hnsw.ef_search)
            .max(query.top_k);
        let live = self.graph.len();
        let near: Vec<Near> = if query.filter.is_empty() {
            if query.exact || live <= tuning.exact_below {
                self.graph
                    .exact(&vector, query.top_k, self.graph.live_slots())
            } else {
                self.graph
                    .search(&vector, query.top_k, ef, &|_| true, false)
            }
        } else {
            let matching = self.payload_index.matching(&query.filter);
            let count = matching.len() as usize;
            // A filtered walk visits about ef / share nodes of 2·m links each.
            let walk_cost =
                ef as f64 * (2 * self.config.hnsw.m) as f64 * live as f64 / count.max(1) as f64;
            if query.exact || count <= tuning.exact_below || (count as f64) <= walk_cost {
                self.graph.exact(&vector, query.top_k, matching.iter())
            } else {
                self.graph
                    .search(&vector, query.top_k, ef, &|s| matching.contains(s), true)
            }
        };
        Ok(near
            .into_iter()
            .filter_map(|n| {
                let i = n.slot as usize;
                let id = self.ids.get(i)?.clone()?;
                Some(ScoredPoint {
                    id,
                    score: self.config.distance.score(n.distance),
                    payload: query.with_payload.then(|| self.payloads[i].clone()),
                })
            })
            .collect())
    }
}

/// Longest point id, in bytes.
pub const MAX_ID_BYTES: usize = 512;

fn payload_size(payload: &Payload) -> usize {
    if payload.is_empty() {
        0
    } else {
        serde_json::to_vec(payload).map_or(0, |v| v.len()) * 2
    }
}

#[cfg(test)]
mod tests;
