//! Conversions between `taskloom.v1` vector messages and the domain types, with the
//! request checks that need no collection: protobuf `Struct` payloads to JSON and back,
//! search requests to queries, HNSW parameters with their defaults.

use prost_types::value::Kind as ProtoKind;
use serde_json::Value as Json;
use taskloom_proto::v1::{
    Collection as ProtoCollection, DeletePointsRequest, Distance as ProtoDistance, HnswConfig,
    ScoredPoint as ProtoScoredPoint, SearchRequest,
};

use crate::collection::{CollectionInfo, ScoredPoint, SearchQuery, VectorError};
use crate::distance::Distance;
use crate::filter::{Condition, Filter, Payload, PayloadBelow, MAX_ANY_OF, MAX_CONDITIONS};
use crate::hnsw::{HnswParams, EF_RANGE};

/// Search defaults and limits, as `vector.proto` documents them.
pub const DEFAULT_TOP_K: usize = 10;
pub const MAX_TOP_K: usize = 1000;

/// A delete's bounds (`where_below`), checked: keys not empty, bounds finite, at most
/// [`MAX_CONDITIONS`].
pub fn below_from_proto(req: &DeletePointsRequest) -> Result<Vec<PayloadBelow>, VectorError> {
    if req.where_below.len() > MAX_CONDITIONS {
        return Err(VectorError::invalid(
            "where_below",
            format!("at most {MAX_CONDITIONS} bounds"),
        ));
    }
    req.where_below
        .iter()
        .enumerate()
        .map(|(i, b)| {
            if b.key.is_empty() {
                return Err(VectorError::invalid(
                    format!("where_below[{i}].key"),
                    "must not be empty",
                ));
            }
            if !b.less_than.is_finite() {
                return Err(VectorError::invalid(
                    format!("where_below[{i}].less_than"),
                    "must be a finite number",
                ));
            }
            Ok(PayloadBelow {
                key: b.key.clone(),
                less_than: b.less_than,
            })
        })
        .collect()
}

pub fn distance_from_proto(d: ProtoDistance) -> Distance {
    match d {
        ProtoDistance::Unspecified | ProtoDistance::Cosine => Distance::Cosine,
        ProtoDistance::Dot => Distance::Dot,
        ProtoDistance::Euclidean => Distance::Euclidean,
    }
}

fn distance_to_proto(d: Distance) -> ProtoDistance {
    match d {
        Distance::Cosine => ProtoDistance::Cosine,
        Distance::Dot => ProtoDistance::Dot,
        Distance::Euclidean => ProtoDistance::Euclidean,
    }
}

pub fn collection_to_proto(c: CollectionInfo) -> ProtoCollection {
    let hnsw = c.config.hnsw;
    ProtoCollection {
        name: c.config.name,
        dimension: c.config.dimension as u32,
        distance: distance_to_proto(c.config.distance).into(),
        points: c.points as u64,
        hnsw: Some(HnswConfig {
            m: hnsw.m as u32,
            ef_construction: hnsw.ef_construction as u32,
            ef_search: hnsw.ef_search as u32,
        }),
        tombstones: c.tombstones as u64,
    }
}

/// The request's HNSW parameters, zeros (or none) meaning the defaults; range checks are
/// the store's.
pub fn hnsw_from_proto(config: Option<HnswConfig>) -> HnswParams {
    let defaults = HnswParams::default();
    let config = config.unwrap_or_default();
    let or_default = |value: u32, default: usize| if value == 0 { default } else { value as usize };
    HnswParams {
        m: or_default(config.m, defaults.m),
        ef_construction: or_default(config.ef_construction, defaults.ef_construction),
        ef_search: or_default(config.ef_search, defaults.ef_search),
    }
}

/// A search request as the store takes it, with every field but the vector checked
/// (the vector needs the collection's dimension). Fields are named after `prefix`.
pub fn search_from_proto(
    req: SearchRequest,
    prefix: &str,
) -> Result<(String, SearchQuery), VectorError> {
    let field = |name: &str| format!("{prefix}{name}");
    let top_k = match req.top_k as usize {
        0 => DEFAULT_TOP_K,
        n if n > MAX_TOP_K => {
            return Err(VectorError::invalid(
                field("top_k"),
                format!("must be at most {MAX_TOP_K}"),
            ))
        }
        n => n,
    };
    let ef = match req.ef as usize {
        0 => None,
        n if !EF_RANGE.contains(&n) => {
            return Err(VectorError::invalid(
                field("ef"),
                format!(
                    "must be 0 (the collection's ef_search) or 1 to {}",
                    EF_RANGE.end()
                ),
            ))
        }
        n => Some(n),
    };
    let mut conditions: Vec<Condition> = Vec::new();
    let mut pairs: Vec<(String, String)> = req.filter.into_iter().collect();
    pairs.sort();
    for (key, value) in pairs {
        if key.is_empty() {
            return Err(VectorError::invalid(
                field("filter"),
                "keys must not be empty",
            ));
        }
        conditions.push(Condition {
            key,
            any_of: vec![value],
        });
    }
    for (i, c) in req.conditions.into_iter().enumerate() {
        let at = |name: &str| field(&format!("conditions[{i}].{name}"));
        if c.key.is_empty() {
            return Err(VectorError::invalid(at("key"), "must not be empty"));
        }
        if c.any_of.is_empty() || c.any_of.len() > MAX_ANY_OF {
            return Err(VectorError::invalid(
                at("any_of"),
                format!("must hold 1 to {MAX_ANY_OF} values"),
            ));
        }
        conditions.push(Condition {
            key: c.key,
            any_of: c.any_of,
        });
    }
    if conditions.len() > MAX_CONDITIONS {
        return Err(VectorError::invalid(
            field("conditions"),
            format!("at most {MAX_CONDITIONS} conditions, filter entries included"),
        ));
    }
    Ok((
        req.collection,
        SearchQuery {
            vector: req.vector,
            top_k,
            ef,
            exact: req.exact,
            filter: Filter { conditions },
            with_payload: req.with_payload,
        },
    ))
}

pub fn hit_to_proto(ScoredPoint { id, score, payload }: ScoredPoint) -> ProtoScoredPoint {
    ProtoScoredPoint {
        id,
        score,
        payload: payload.map(json_to_struct),
    }
}

/// Integral numbers become JSON integers so a filter matches `3`, not `3.0`.
fn value_to_json(v: prost_types::Value) -> Json {
    match v.kind {
        None | Some(ProtoKind::NullValue(_)) => Json::Null,
        Some(ProtoKind::BoolValue(b)) => Json::Bool(b),
        Some(ProtoKind::StringValue(s)) => Json::String(s),
        Some(ProtoKind::NumberValue(n)) => {
            if n.fract() == 0.0 && n.abs() < 9_007_199_254_740_992.0 {
                Json::from(n as i64)
            } else {
                serde_json::Number::from_f64(n).map_or(Json::Null, Json::Number)
            }
        }
        Some(ProtoKind::StructValue(s)) => Json::Object(struct_to_json(s)),
        Some(ProtoKind::ListValue(l)) => {
            Json::Array(l.values.into_iter().map(value_to_json).collect())
        }
    }
}

pub fn struct_to_json(s: prost_types::Struct) -> Payload {
    s.fields
        .into_iter()
        .map(|(k, v)| (k, value_to_json(v)))
        .collect()
}

fn json_to_value(v: Json) -> prost_types::Value {
    let kind = match v {
        Json::Null => ProtoKind::NullValue(0),
        Json::Bool(b) => ProtoKind::BoolValue(b),
        Json::Number(n) => ProtoKind::NumberValue(n.as_f64().unwrap_or(0.0)),
        Json::String(s) => ProtoKind::StringValue(s),
        Json::Array(a) => ProtoKind::ListValue(prost_types::ListValue {
            values: a.into_iter().map(json_to_value).collect(),
        }),
        Json::Object(o) => ProtoKind::StructValue(json_to_struct(o)),
    };
    prost_types::Value { kind: Some(kind) }
}

pub fn json_to_struct(p: Payload) -> prost_types::Struct {
    prost_types::Struct {
        fields: p.into_iter().map(|(k, v)| (k, json_to_value(v))).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use taskloom_proto::v1::FilterCondition;

    #[test]
    fn payload_round_trips_and_integers_stay_integral() {
        let payload = prost_types::Struct {
            fields: [
                ("page".to_string(), json_to_value(serde_json::json!(3.0))),
                (
                    "nested".to_string(),
                    json_to_value(serde_json::json!({"a": [true, null, "x", 2.5]})),
                ),
            ]
            .into_iter()
            .collect(),
        };
        let json = struct_to_json(payload.clone());
        assert_eq!(crate::filter::filter_form(&json["page"]), "3");
        assert_eq!(json_to_struct(json), payload);
    }

    fn field_of(e: VectorError) -> String {
        match e {
            VectorError::InvalidArgument { field, .. } => field,
            other => panic!("expected invalid argument, got {other:?}"),
        }
    }

    #[test]
    fn malformed_searches_name_the_field() {
        let base = || SearchRequest {
            collection: "c".into(),
            vector: vec![1.0],
            ..SearchRequest::default()
        };
        let bad =
            |req: SearchRequest| field_of(search_from_proto(req, "searches[1].").unwrap_err());
        assert_eq!(
            bad(SearchRequest {
                top_k: 1001,
                ..base()
            }),
            "searches[1].top_k"
        );
        assert_eq!(bad(SearchRequest { ef: 4097, ..base() }), "searches[1].ef");
        let empty_key = SearchRequest {
            filter: [(String::new(), "x".to_string())].into_iter().collect(),
            ..base()
        };
        assert_eq!(bad(empty_key), "searches[1].filter");
        let condition = |key: &str, any_of: &[&str]| FilterCondition {
            key: key.into(),
            any_of: any_of.iter().map(|s| s.to_string()).collect(),
        };
        let no_values = SearchRequest {
            conditions: vec![condition("k", &["v"]), condition("k", &[])],
            ..base()
        };
        assert_eq!(bad(no_values), "searches[1].conditions[1].any_of");
        let no_key = SearchRequest {
            conditions: vec![condition("", &["v"])],
            ..base()
        };
        assert_eq!(bad(no_key), "searches[1].conditions[0].key");
        let too_many = SearchRequest {
            conditions: (0..17)
                .map(|i| condition(&format!("k{i}"), &["v"]))
                .collect(),
            ..base()
        };
        assert_eq!(bad(too_many), "searches[1].conditions");
        let (_, ok) = search_from_proto(
            SearchRequest {
                filter: [("a".to_string(), "1".to_string())].into_iter().collect(),
                conditions: vec![condition("b", &["x", "y"])],
                ef: 32,
                ..base()
            },
            "",
        )
        .expect("valid");
        assert_eq!(
            (ok.top_k, ok.ef, ok.filter.conditions.len()),
            (DEFAULT_TOP_K, Some(32), 2)
        );
    }

    #[test]
    fn hnsw_zeros_mean_defaults() {
        assert_eq!(hnsw_from_proto(None), HnswParams::default());
        let set = hnsw_from_proto(Some(HnswConfig {
            m: 8,
            ef_construction: 0,
            ef_search: 20,
        }));
        assert_eq!(
            (set.m, set.ef_construction, set.ef_search),
            (8, HnswParams::default().ef_construction, 20)
        );
    }
}
