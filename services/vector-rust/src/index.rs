//! Nearest-neighbour search behind the [`VectorIndex`] seam. [`ExactIndex`] scans every
//! vector (exact, O(n) per query); an HNSW index implements the same trait later.

use std::cmp::Ordering;
use std::collections::HashMap;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Distance {
    Cosine,
    Dot,
    Euclidean,
}

impl Distance {
    /// Similarity of two equal-length vectors: higher is closer for every distance.
    pub fn score(self, a: &[f32], b: &[f32]) -> f32 {
        match self {
            Distance::Dot => dot(a, b),
            Distance::Cosine => {
                let norms = dot(a, a).sqrt() * dot(b, b).sqrt();
                if norms == 0.0 {
                    0.0
                } else {
                    dot(a, b) / norms
                }
            }
            Distance::Euclidean => -a
                .iter()
                .zip(b)
                .map(|(x, y)| (x - y) * (x - y))
                .sum::<f32>()
                .sqrt(),
        }
    }
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// A search result: point id and score (higher is closer).
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    pub id: String,
    pub score: f32,
}

/// Vectors of one collection, searchable by similarity. Vectors have the collection's
/// dimension (checked by the caller).
pub trait VectorIndex: Send + Sync {
    fn upsert(&mut self, id: &str, vector: Vec<f32>);
    /// Whether the id was present.
    fn remove(&mut self, id: &str) -> bool;
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    fn vector(&self, id: &str) -> Option<&[f32]>;
    /// The `top_k` closest points that `accept` lets through, closest first.
    fn search(&self, query: &[f32], top_k: usize, accept: &dyn Fn(&str) -> bool) -> Vec<Hit>;
}

pub struct ExactIndex {
    distance: Distance,
    vectors: HashMap<String, Vec<f32>>,
}

impl ExactIndex {
    pub fn new(distance: Distance) -> Self {
        Self {
            distance,
            vectors: HashMap::new(),
        }
    }
}

/// Closest first; ties by id so results are deterministic.
fn by_score_desc(a: &Hit, b: &Hit) -> Ordering {
    b.score
        .partial_cmp(&a.score)
        .unwrap_or(Ordering::Equal)
        .then_with(|| a.id.cmp(&b.id))
}

impl VectorIndex for ExactIndex {
    fn upsert(&mut self, id: &str, vector: Vec<f32>) {
        self.vectors.insert(id.to_string(), vector);
    }

    fn remove(&mut self, id: &str) -> bool {
        self.vectors.remove(id).is_some()
    }

    fn len(&self) -> usize {
        self.vectors.len()
    }

    fn vector(&self, id: &str) -> Option<&[f32]> {
        self.vectors.get(id).map(Vec::as_slice)
    }

    fn search(&self, query: &[f32], top_k: usize, accept: &dyn Fn(&str) -> bool) -> Vec<Hit> {
        if top_k == 0 {
            return Vec::new();
        }
        let mut hits: Vec<Hit> = self
            .vectors
            .iter()
            .filter(|(id, _)| accept(id))
            .map(|(id, v)| Hit {
                id: id.clone(),
                score: self.distance.score(query, v),
            })
            .collect();
        if hits.len() > top_k {
            hits.select_nth_unstable_by(top_k - 1, by_score_desc);
            hits.truncate(top_k);
        }
        hits.sort_by(by_score_desc);
        hits
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index(distance: Distance) -> ExactIndex {
        let mut idx = ExactIndex::new(distance);
        idx.upsert("x", vec![1.0, 0.0]);
        idx.upsert("y", vec![0.0, 1.0]);
        idx.upsert("far-x", vec![10.0, 0.0]);
        idx.upsert("diag", vec![1.0, 1.0]);
        idx
    }

    fn ids(hits: &[Hit]) -> Vec<&str> {
        hits.iter().map(|h| h.id.as_str()).collect()
    }

    #[test]
    fn cosine_ranks_by_angle() {
        let hits = index(Distance::Cosine).search(&[1.0, 0.1], 4, &|_| true);
        assert_eq!(ids(&hits), ["far-x", "x", "diag", "y"]);
        assert!((hits[0].score - hits[1].score).abs() < 1e-6);
    }

    #[test]
    fn dot_ranks_by_product() {
        let hits = index(Distance::Dot).search(&[1.0, 0.5], 4, &|_| true);
        assert_eq!(ids(&hits), ["far-x", "diag", "x", "y"]);
        assert_eq!(hits[0].score, 10.0);
    }

    #[test]
    fn euclidean_is_negated_distance() {
        let hits = index(Distance::Euclidean).search(&[1.0, 0.0], 2, &|_| true);
        assert_eq!(ids(&hits), ["x", "diag"]);
        assert_eq!(hits[0].score, 0.0);
        assert_eq!(hits[1].score, -1.0);
    }

    #[test]
    fn top_k_and_accept_filter() {
        let idx = index(Distance::Euclidean);
        assert_eq!(idx.search(&[0.0, 0.0], 1, &|_| true).len(), 1);
        let hits = idx.search(&[1.0, 0.0], 10, &|id| id.starts_with('y'));
        assert_eq!(ids(&hits), ["y"]);
    }

    #[test]
    fn remove_and_zero_vectors() {
        let mut idx = index(Distance::Cosine);
        assert!(idx.remove("x"));
        assert!(!idx.remove("x"));
        assert_eq!(idx.len(), 3);
        assert_eq!(Distance::Cosine.score(&[0.0, 0.0], &[1.0, 0.0]), 0.0);
    }
}
