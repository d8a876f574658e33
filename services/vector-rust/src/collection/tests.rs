//! A collection's validation, upserts, deletes, filters and its choice of search path.

use super::*;
use crate::filter::Condition;
use serde_json::{json, Value};

fn config(dimension: usize, distance: Distance) -> CollectionConfig {
    CollectionConfig {
        name: "c".into(),
        dimension,
        distance,
        hnsw: HnswParams::default(),
    }
}

fn point(id: &str, vector: &[f32], payload: Value) -> Point {
    Point {
        id: id.into(),
        vector: vector.to_vec(),
        payload: payload.as_object().cloned().unwrap_or_default(),
    }
}

fn upsert(c: &mut Collection, points: Vec<Point>) -> Result<usize, VectorError> {
    let points = c.validate_upsert(points)?;
    Ok(c.apply_upsert(points, None))
}

fn query(vector: &[f32], top_k: usize) -> SearchQuery {
    SearchQuery {
        vector: vector.to_vec(),
        top_k,
        ..SearchQuery::default()
    }
}

fn ids(hits: &[ScoredPoint]) -> Vec<&str> {
    hits.iter().map(|h| h.id.as_str()).collect()
}

fn filter(pairs: &[(&str, &[&str])]) -> Filter {
    Filter {
        conditions: pairs
            .iter()
            .map(|(k, vs)| Condition {
                key: k.to_string(),
                any_of: vs.iter().map(|v| v.to_string()).collect(),
            })
            .collect(),
    }
}

#[test]
fn bad_vectors_name_the_point_and_change_nothing() {
    let mut c = Collection::new(config(2, Distance::Cosine));
    let err = upsert(
        &mut c,
        vec![
            point("a", &[1.0, 0.0], json!({})),
            point("b", &[1.0, 0.0, 0.0], json!({})),
        ],
    )
    .unwrap_err();
    assert_eq!(
        err,
        VectorError::DimensionMismatch {
            field: "points[1].vector".into(),
            expected: 2,
            got: 3
        }
    );
    let err = upsert(&mut c, vec![point("a", &[f32::NAN, 0.0], json!({}))]).unwrap_err();
    assert!(
        matches!(err, VectorError::InvalidArgument { ref field, .. } if field == "points[0].vector")
    );
    let err = upsert(&mut c, vec![point("", &[1.0, 0.0], json!({}))]).unwrap_err();
    assert!(
        matches!(err, VectorError::InvalidArgument { ref field, .. } if field == "points[0].id")
    );
    assert_eq!(c.info().points, 0);
    assert!(matches!(
        c.search(&query(&[1.0], 10), SearchTuning::default()),
        Err(VectorError::DimensionMismatch { .. })
    ));
    assert!(matches!(
        c.search(&query(&[f32::INFINITY, 1.0], 10), SearchTuning::default()),
        Err(VectorError::InvalidArgument { .. })
    ));
}

#[test]
fn each_distance_ranks_and_scores_as_documented() {
    let points = || {
        vec![
            point("x", &[1.0, 0.0], json!({})),
            point("y", &[0.0, 1.0], json!({})),
            point("far-x", &[10.0, 0.0], json!({})),
            point("diag", &[1.0, 1.0], json!({})),
        ]
    };
    let run = |distance, q: &[f32]| {
        let mut c = Collection::new(config(2, distance));
        upsert(&mut c, points()).expect("upsert");
        c.search(&query(q, 4), SearchTuning::default())
            .expect("search")
    };
    let cosine = run(Distance::Cosine, &[1.0, 0.1]);
    assert_eq!(ids(&cosine)[2..], ["diag", "y"]);
    assert!((cosine[0].score - cosine[1].score).abs() < 1e-6);
    let dot = run(Distance::Dot, &[1.0, 0.5]);
    assert_eq!(ids(&dot), ["far-x", "diag", "x", "y"]);
    assert_eq!(dot[0].score, 10.0);
    let l2 = run(Distance::Euclidean, &[1.0, 0.0]);
    assert_eq!(ids(&l2)[..2], ["x", "diag"]);
    assert_eq!((l2[0].score, l2[1].score), (0.0, -1.0));
}

#[test]
fn filters_compare_string_forms_and_return_payloads() {
    let mut c = Collection::new(config(2, Distance::Dot));
    upsert(
        &mut c,
        vec![
            point("a", &[1.0, 0.0], json!({"kind": "doc", "page": 3})),
            point("b", &[2.0, 0.0], json!({"kind": "note", "page": 3})),
            point("c", &[3.0, 0.0], json!({"kind": "doc", "flag": true})),
        ],
    )
    .expect("upsert");
    let found = |f: Filter| -> Vec<String> {
        let q = SearchQuery {
            filter: f,
            ..query(&[1.0, 0.0], 10)
        };
        c.search(&q, SearchTuning::default())
            .expect("search")
            .into_iter()
            .map(|p| p.id)
            .collect()
    };
    assert_eq!(found(filter(&[("kind", &["doc"])])), ["c", "a"]);
    assert_eq!(
        found(filter(&[("kind", &["doc"]), ("page", &["3"])])),
        ["a"]
    );
    assert_eq!(
        found(filter(&[("kind", &["doc", "note"]), ("page", &["3"])])),
        ["b", "a"]
    );
    assert_eq!(found(filter(&[("flag", &["true"])])), ["c"]);
    assert!(found(filter(&[("missing", &["x"])])).is_empty());
    let with = SearchQuery {
        with_payload: true,
        ..query(&[1.0, 0.0], 1)
    };
    let hit = &c.search(&with, SearchTuning::default()).expect("search")[0];
    assert_eq!(hit.payload.as_ref().expect("payload")["kind"], "doc");
}

#[test]
fn upsert_replaces_payload_and_delete_counts() {
    let mut c = Collection::new(config(1, Distance::Euclidean));
    upsert(&mut c, vec![point("a", &[1.0], json!({"v": 1}))]).expect("first");
    // A repeated id in one request: the later point wins.
    let n = upsert(
        &mut c,
        vec![
            point("a", &[5.0], json!({"v": 2})),
            point("a", &[2.0], json!({"v": 3})),
        ],
    )
    .expect("replace");
    assert_eq!((n, c.len()), (1, 1));
    let q = SearchQuery {
        filter: filter(&[("v", &["1", "2"])]),
        ..query(&[2.0], 5)
    };
    assert!(c
        .search(&q, SearchTuning::default())
        .expect("search")
        .is_empty());
    let hit = &c
        .search(&query(&[0.0], 5), SearchTuning::default())
        .expect("search")[0];
    assert_eq!((hit.id.as_str(), hit.score), ("a", -2.0));
    assert_eq!(c.apply_delete(&["a".into(), "zz".into()], None), 1);
    assert_eq!(c.info().points, 0);
}

/// Points on a line: point i at x = i, payload bucket = i % 10.
fn line(n: usize) -> Collection {
    let mut c = Collection::new(config(2, Distance::Euclidean));
    let points = (0..n)
        .map(|i| {
            point(
                &format!("p{i}"),
                &[i as f32, 0.0],
                json!({"bucket": i % 10}),
            )
        })
        .collect();
    upsert(&mut c, points).expect("upsert");
    c
}

#[test]
fn graph_exact_and_selective_filters_agree_on_large_collections() {
    let c = line(3000);
    let graph_only = SearchTuning { exact_below: 0 };
    let top = |q: SearchQuery, tuning| {
        ids(&c.search(&q, tuning).expect("search"))
            .iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>()
    };
    let plain = query(&[1500.2, 0.0], 3);
    assert_eq!(top(plain.clone(), graph_only), ["p1500", "p1501", "p1499"]);
    let exact = SearchQuery {
        exact: true,
        ..plain.clone()
    };
    assert_eq!(top(exact, graph_only), ["p1500", "p1501", "p1499"]);
    // 10 % match: exact over the matching points.
    let filtered = SearchQuery {
        filter: filter(&[("bucket", &["3"])]),
        ..plain.clone()
    };
    assert_eq!(top(filtered, graph_only), ["p1503", "p1493", "p1513"]);
    // 50 % match: the filtered graph walk.
    let half = SearchQuery {
        filter: filter(&[("bucket", &["0", "1", "2", "3", "4"])]),
        ef: Some(10),
        ..plain
    };
    assert_eq!(top(half, graph_only), ["p1500", "p1501", "p1502"]);
}
