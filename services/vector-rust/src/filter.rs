//! Payload filters and the inverted index that answers them: for every payload key and
//! value (in its string form) the set of slots holding it, so a filter's matching points
//! are counted and listed without reading payloads.

use std::collections::HashMap;

use roaring::RoaringBitmap;
use serde_json::{Map, Value};

use crate::hnsw::Slot;

pub type Payload = Map<String, Value>;

/// Most conditions in one filter, and most values in one condition (vector.proto).
pub const MAX_CONDITIONS: usize = 16;
pub const MAX_ANY_OF: usize = 256;

/// All conditions must hold; a condition holds when the payload's value at `key` has one
/// of the string forms in `any_of`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filter {
    pub conditions: Vec<Condition>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    pub key: String,
    pub any_of: Vec<String>,
}

impl Filter {
    pub fn is_empty(&self) -> bool {
        self.conditions.is_empty()
    }
}

/// A point whose payload holds a number at `key` below `less_than` (retention deletes).
#[derive(Debug, Clone, PartialEq)]
pub struct PayloadBelow {
    pub key: String,
    pub less_than: f64,
}

impl PayloadBelow {
    /// Whether the payload's value at `key` is a number below the bound (absent or not a
    /// number: no).
    pub fn holds(&self, payload: &Payload) -> bool {
        payload
            .get(&self.key)
            .and_then(Value::as_f64)
            .is_some_and(|v| v < self.less_than)
    }
}

/// The string form a filter compares with: strings as they are, other values as JSON.
pub fn filter_form(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[derive(Default)]
pub struct PayloadIndex {
    by_key: HashMap<String, HashMap<String, RoaringBitmap>>,
}

impl PayloadIndex {
    pub fn add(&mut self, slot: Slot, payload: &Payload) {
        for (key, value) in payload {
            self.by_key
                .entry(key.clone())
                .or_default()
                .entry(filter_form(value))
                .or_default()
                .insert(slot);
        }
    }

    pub fn remove(&mut self, slot: Slot, payload: &Payload) {
        for (key, value) in payload {
            let Some(values) = self.by_key.get_mut(key) else {
                continue;
            };
            let form = filter_form(value);
            if let Some(slots) = values.get_mut(&form) {
                slots.remove(slot);
                if slots.is_empty() {
                    values.remove(&form);
                }
            }
            if values.is_empty() {
                self.by_key.remove(key);
            }
        }
    }

    /// The slots matching every condition of a non-empty filter.
    pub fn matching(&self, filter: &Filter) -> RoaringBitmap {
        let mut result: Option<RoaringBitmap> = None;
        for condition in &filter.conditions {
            let mut any = RoaringBitmap::new();
            if let Some(values) = self.by_key.get(&condition.key) {
                for value in &condition.any_of {
                    if let Some(slots) = values.get(value) {
                        any |= slots;
                    }
                }
            }
            result = Some(match result {
                Some(so_far) => so_far & any,
                None => any,
            });
            if result.as_ref().is_some_and(RoaringBitmap::is_empty) {
                break;
            }
        }
        result.unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn payload(v: Value) -> Payload {
        v.as_object().cloned().unwrap_or_default()
    }

    fn condition(key: &str, any_of: &[&str]) -> Condition {
        Condition {
            key: key.into(),
            any_of: any_of.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn conditions_intersect_and_values_unite() {
        let mut index = PayloadIndex::default();
        index.add(1, &payload(json!({"kind": "doc", "page": 3})));
        index.add(2, &payload(json!({"kind": "note", "page": 3})));
        index.add(3, &payload(json!({"kind": "doc", "flag": true})));
        let ids = |index: &PayloadIndex, f: Filter| index.matching(&f).iter().collect::<Vec<_>>();
        let f = |c: Vec<Condition>| Filter { conditions: c };
        assert_eq!(ids(&index, f(vec![condition("kind", &["doc"])])), [1, 3]);
        assert_eq!(
            ids(
                &index,
                f(vec![
                    condition("kind", &["doc", "note"]),
                    condition("page", &["3"])
                ])
            ),
            [1, 2]
        );
        assert_eq!(ids(&index, f(vec![condition("flag", &["true"])])), [3]);
        assert!(ids(&index, f(vec![condition("missing", &["x"])])).is_empty());
        index.remove(3, &payload(json!({"kind": "doc", "flag": true})));
        assert_eq!(ids(&index, f(vec![condition("kind", &["doc"])])), [1]);
        assert!(!index.by_key.contains_key("flag"), "empty keys are dropped");
    }
}
