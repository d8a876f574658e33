//! One collection: its vectors (in a [`VectorIndex`]) and their JSON payloads, with the
//! validation that keeps bad input from changing anything.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::index::{Distance, ExactIndex, Hit, VectorIndex};

pub type Payload = Map<String, Value>;

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
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Point {
    pub id: String,
    pub vector: Vec<f32>,
    #[serde(default)]
    pub payload: Payload,
}

/// A collection's description, as listed.
#[derive(Debug, Clone, PartialEq)]
pub struct CollectionInfo {
    pub name: String,
    pub dimension: usize,
    pub distance: Distance,
    pub points: usize,
}

/// A search hit with its payload when asked for.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoredPoint {
    pub id: String,
    pub score: f32,
    pub payload: Option<Payload>,
}

pub struct Collection {
    pub name: String,
    pub dimension: usize,
    pub distance: Distance,
    index: Box<dyn VectorIndex>,
    payloads: HashMap<String, Payload>,
}

/// The string form a filter compares with: strings as they are, other values as JSON.
pub fn filter_form(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

impl Collection {
    pub fn new(name: String, dimension: usize, distance: Distance) -> Self {
        Self {
            name,
            dimension,
            distance,
            index: Box::new(ExactIndex::new(distance)),
            payloads: HashMap::new(),
        }
    }

    pub fn info(&self) -> CollectionInfo {
        CollectionInfo {
            name: self.name.clone(),
            dimension: self.dimension,
            distance: self.distance,
            points: self.index.len(),
        }
    }

    pub fn check_dimension(&self, field: &str, vector: &[f32]) -> Result<(), VectorError> {
        if vector.len() != self.dimension {
            return Err(VectorError::DimensionMismatch {
                field: field.to_string(),
                expected: self.dimension,
                got: vector.len(),
            });
        }
        if vector.iter().any(|x| !x.is_finite()) {
            return Err(VectorError::invalid(field, "must hold finite numbers only"));
        }
        Ok(())
    }

    /// Validates every point first, then inserts or replaces them all.
    pub fn upsert(&mut self, points: Vec<Point>) -> Result<usize, VectorError> {
        for (i, p) in points.iter().enumerate() {
            if p.id.is_empty() {
                return Err(VectorError::invalid(
                    format!("points[{i}].id"),
                    "must not be empty",
                ));
            }
            self.check_dimension(&format!("points[{i}].vector"), &p.vector)?;
        }
        let n = points.len();
        for p in points {
            self.index.upsert(&p.id, p.vector);
            self.payloads.insert(p.id, p.payload);
        }
        Ok(n)
    }

    pub fn delete(&mut self, ids: &[String]) -> usize {
        ids.iter()
            .filter(|id| {
                self.payloads.remove(id.as_str());
                self.index.remove(id)
            })
            .count()
    }

    pub fn search(
        &self,
        query: &[f32],
        top_k: usize,
        filter: &BTreeMap<String, String>,
        with_payload: bool,
    ) -> Result<Vec<ScoredPoint>, VectorError> {
        self.check_dimension("vector", query)?;
        let accept = |id: &str| {
            filter.is_empty()
                || self.payloads.get(id).is_some_and(|payload| {
                    filter
                        .iter()
                        .all(|(k, want)| payload.get(k).is_some_and(|v| filter_form(v) == *want))
                })
        };
        let hits = self.index.search(query, top_k, &accept);
        Ok(hits
            .into_iter()
            .map(|Hit { id, score }| ScoredPoint {
                payload: with_payload.then(|| self.payloads.get(&id).cloned().unwrap_or_default()),
                id,
                score,
            })
            .collect())
    }

    /// Every point, for persistence.
    pub fn points(&self) -> Vec<Point> {
        let mut points: Vec<Point> = self
            .payloads
            .iter()
            .filter_map(|(id, payload)| {
                self.index.vector(id).map(|v| Point {
                    id: id.clone(),
                    vector: v.to_vec(),
                    payload: payload.clone(),
                })
            })
            .collect();
        points.sort_by(|a, b| a.id.cmp(&b.id));
        points
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn point(id: &str, vector: &[f32], payload: Value) -> Point {
        Point {
            id: id.into(),
            vector: vector.to_vec(),
            payload: payload.as_object().cloned().unwrap_or_default(),
        }
    }

    #[test]
    fn dimension_mismatch_names_the_point_and_changes_nothing() {
        let mut c = Collection::new("c".into(), 2, Distance::Cosine);
        let err = c
            .upsert(vec![
                point("a", &[1.0, 0.0], json!({})),
                point("b", &[1.0, 0.0, 0.0], json!({})),
            ])
            .unwrap_err();
        assert_eq!(
            err,
            VectorError::DimensionMismatch {
                field: "points[1].vector".into(),
                expected: 2,
                got: 3
            }
        );
        assert_eq!(c.info().points, 0);
        assert!(matches!(
            c.search(&[1.0], 10, &BTreeMap::new(), false),
            Err(VectorError::DimensionMismatch { .. })
        ));
    }

    #[test]
    fn filter_compares_string_forms() {
        let mut c = Collection::new("c".into(), 2, Distance::Dot);
        c.upsert(vec![
            point("a", &[1.0, 0.0], json!({"kind": "doc", "page": 3})),
            point("b", &[2.0, 0.0], json!({"kind": "note", "page": 3})),
            point("c", &[3.0, 0.0], json!({"kind": "doc", "flag": true})),
        ])
        .expect("upsert");
        let filter = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let ids = |f: &BTreeMap<String, String>| -> Vec<String> {
            c.search(&[1.0, 0.0], 10, f, false)
                .expect("search")
                .into_iter()
                .map(|p| p.id)
                .collect()
        };
        assert_eq!(ids(&filter(&[("kind", "doc")])), ["c", "a"]);
        assert_eq!(ids(&filter(&[("kind", "doc"), ("page", "3")])), ["a"]);
        assert_eq!(ids(&filter(&[("flag", "true")])), ["c"]);
        assert!(ids(&filter(&[("missing", "x")])).is_empty());
        let with = c
            .search(&[1.0, 0.0], 1, &BTreeMap::new(), true)
            .expect("search");
        assert_eq!(with[0].payload.as_ref().expect("payload")["kind"], "doc");
    }

    #[test]
    fn upsert_replaces_and_delete_counts() {
        let mut c = Collection::new("c".into(), 1, Distance::Euclidean);
        c.upsert(vec![point("a", &[1.0], json!({"v": 1}))])
            .expect("first");
        c.upsert(vec![point("a", &[2.0], json!({"v": 2}))])
            .expect("replace");
        assert_eq!(c.points(), vec![point("a", &[2.0], json!({"v": 2}))]);
        assert_eq!(c.delete(&["a".into(), "zz".into()]), 1);
        assert_eq!(c.info().points, 0);
    }
}
