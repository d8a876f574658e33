//! The store's durability (log, snapshot, both), validation, listing and limits.

use super::*;
use serde_json::json;

fn point(id: &str, vector: &[f32]) -> Point {
    Point {
        id: id.into(),
        vector: vector.to_vec(),
        payload: json!({"tag": id}).as_object().cloned().unwrap_or_default(),
    }
}

fn options(snapshot_wal_bytes: u64) -> StoreOptions {
    StoreOptions {
        snapshot_wal_bytes,
        threads: 2,
        ..StoreOptions::default()
    }
}

fn query(vector: &[f32], top_k: usize) -> SearchQuery {
    SearchQuery {
        vector: vector.to_vec(),
        top_k,
        with_payload: true,
        ..SearchQuery::default()
    }
}

/// Writes 300 points in batches (with replacements and deletes), reopens, and checks
/// that exactly the acknowledged state came back.
fn survives_reopening(snapshot_wal_bytes: u64) {
    let dir = tempfile::tempdir().expect("tempdir");
    let params = HnswParams {
        m: 8,
        ..HnswParams::default()
    };
    {
        let store = Store::open(dir.path(), options(snapshot_wal_bytes)).expect("open");
        store
            .create("docs", 2, Distance::Euclidean, params)
            .expect("create");
        store
            .create("gone", 2, Distance::Dot, HnswParams::default())
            .expect("create");
        for batch in 0..3 {
            let points = (0..100)
                .map(|i| {
                    point(
                        &format!("p{}", batch * 100 + i),
                        &[(batch * 100 + i) as f32, 0.0],
                    )
                })
                .collect();
            assert_eq!(store.upsert("docs", points).expect("upsert"), 100);
        }
        store
            .upsert("docs", vec![point("p5", &[1000.0, 0.0])])
            .expect("replace");
        let ids: Vec<String> = (100..200).map(|i| format!("p{i}")).collect();
        assert_eq!(store.delete_points("docs", &ids, &[]).expect("delete"), 100);
        assert_eq!(store.delete_points("docs", &ids, &[]).expect("again"), 0);
        store.delete("gone").expect("delete");
    }
    let store = Store::open(dir.path(), options(snapshot_wal_bytes)).expect("reopen");
    let (page, more) = store.list("", 10);
    assert!(!more);
    assert_eq!(page.len(), 1);
    assert_eq!(
        (
            page[0].config.name.as_str(),
            page[0].config.dimension,
            page[0].config.distance,
            page[0].config.hnsw,
            page[0].points
        ),
        ("docs", 2, Distance::Euclidean, params, 200)
    );
    let hits = store
        .search("docs", &query(&[999.0, 0.0], 1))
        .expect("search");
    assert_eq!(hits[0].id, "p5");
    assert_eq!(hits[0].payload.as_ref().expect("payload")["tag"], "p5");
    let exact = SearchQuery {
        exact: true,
        ..query(&[150.0, 0.0], 2)
    };
    let ids: Vec<String> = store
        .search("docs", &exact)
        .expect("search")
        .into_iter()
        .map(|h| h.id)
        .collect();
    assert_eq!(ids, ["p200", "p99"], "deleted points stay deleted");
}

#[test]
fn data_survives_reopening_from_the_log_alone() {
    survives_reopening(u64::MAX);
}

#[test]
fn data_survives_reopening_from_snapshots_and_the_log() {
    survives_reopening(2_000);
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path(), options(1)).expect("open");
    store
        .create("s", 1, Distance::Dot, HnswParams::default())
        .expect("create");
    store.upsert("s", vec![point("a", &[1.0])]).expect("upsert");
    assert!(dir.path().join("s").join(SNAPSHOT_FILE).exists());
    assert_eq!(
        std::fs::metadata(dir.path().join("s").join(WAL_FILE))
            .expect("wal")
            .len(),
        0
    );
}

#[test]
fn create_validates_and_refuses_duplicates() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path(), options(u64::MAX)).expect("open");
    let invalid_field = |r: Result<CollectionInfo, VectorError>| match r {
        Err(VectorError::InvalidArgument { field, .. }) => field,
        other => panic!("expected invalid argument, got {other:?}"),
    };
    let d = HnswParams::default();
    assert_eq!(
        invalid_field(store.create("bad name", 2, Distance::Cosine, d)),
        "name"
    );
    assert_eq!(
        invalid_field(store.create(&"a".repeat(65), 2, Distance::Cosine, d)),
        "name"
    );
    assert_eq!(
        invalid_field(store.create("c", 0, Distance::Cosine, d)),
        "dimension"
    );
    assert_eq!(
        invalid_field(store.create("c", 4097, Distance::Cosine, d)),
        "dimension"
    );
    let bad_m = HnswParams { m: 1, ..d };
    assert_eq!(
        invalid_field(store.create("c", 2, Distance::Cosine, bad_m)),
        "hnsw.m"
    );
    let bad_ef = HnswParams {
        ef_search: 5000,
        ..d
    };
    assert_eq!(
        invalid_field(store.create("c", 2, Distance::Cosine, bad_ef)),
        "hnsw.ef_search"
    );
    assert!(store.list("", 10).0.is_empty(), "nothing was created");
    store
        .create("c", 4096, Distance::Cosine, d)
        .expect("create");
    assert_eq!(
        store.create("c", 3, Distance::Cosine, d),
        Err(VectorError::CollectionExists("c".into()))
    );
    assert_eq!(
        store.info("nope"),
        Err(VectorError::CollectionNotFound("nope".into()))
    );
}

#[test]
fn list_pages_by_name() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path(), options(u64::MAX)).expect("open");
    for name in ["c", "a", "b"] {
        store
            .create(name, 1, Distance::Dot, HnswParams::default())
            .expect("create");
    }
    let (first, more) = store.list("", 2);
    let names: Vec<_> = first.iter().map(|c| c.config.name.as_str()).collect();
    assert_eq!((names, more), (vec!["a", "b"], true));
    let (rest, more) = store.list("b", 2);
    assert_eq!(
        (rest.len(), rest[0].config.name.as_str(), more),
        (1, "c", false)
    );
}

#[test]
fn limits_refuse_writes_with_the_setting_named_and_change_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let limited = StoreOptions {
        max_points_per_collection: 3,
        ..options(u64::MAX)
    };
    let store = Store::open(dir.path(), limited).expect("open");
    store
        .create("c", 1, Distance::Dot, HnswParams::default())
        .expect("create");
    store
        .upsert("c", vec![point("a", &[1.0]), point("b", &[2.0])])
        .expect("upsert");
    let err = store
        .upsert("c", vec![point("c", &[3.0]), point("d", &[4.0])])
        .unwrap_err();
    assert!(
        matches!(
            err,
            VectorError::CapacityExceeded {
                limit: "max_points_per_collection",
                ..
            }
        ),
        "{err:?}"
    );
    // Replacing existing points adds none.
    store
        .upsert("c", vec![point("a", &[5.0]), point("c", &[3.0])])
        .expect("within limit");
    assert_eq!(store.info("c").expect("info").points, 3);

    let dir = tempfile::tempdir().expect("tempdir");
    let tiny = StoreOptions {
        max_bytes: 2_000,
        ..options(u64::MAX)
    };
    let store = Store::open(dir.path(), tiny).expect("open");
    store
        .create("c", 64, Distance::Dot, HnswParams::default())
        .expect("create");
    let err = store
        .upsert(
            "c",
            (0..10)
                .map(|i| point(&format!("p{i}"), &[1.0; 64]))
                .collect(),
        )
        .unwrap_err();
    assert!(
        matches!(
            err,
            VectorError::CapacityExceeded {
                limit: "max_bytes",
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(store.info("c").expect("info").points, 0);
    drop(store);
    let store = Store::open(dir.path(), options(u64::MAX)).expect("reopen");
    assert_eq!(
        store.info("c").expect("info").points,
        0,
        "a refused write was not logged"
    );
}

#[test]
fn collections_of_an_earlier_version_are_imported() {
    let dir = tempfile::tempdir().expect("tempdir");
    let legacy = json!({
        "name": "old", "dimension": 2, "distance": "euclidean",
        "points": [{"id": "a", "vector": [0.0, 0.0], "payload": {"k": 1}}, {"id": "b", "vector": [5.0, 5.0]}]
    });
    std::fs::write(dir.path().join("old.collection.json"), legacy.to_string()).expect("write");
    let store = Store::open(dir.path(), options(u64::MAX)).expect("open");
    assert_eq!(store.info("old").expect("info").points, 2);
    assert_eq!(
        store.search("old", &query(&[4.0, 4.0], 1)).expect("search")[0].id,
        "b"
    );
    assert!(!dir.path().join("old.collection.json").exists());
}

#[test]
fn deletes_below_a_bound_are_logged_and_survive_reopening() {
    let dir = tempfile::tempdir().expect("tempdir");
    let aged = |id: &str, age: f64, x: f32| Point {
        id: id.into(),
        vector: vec![x, 1.0],
        payload: json!({ "created_at": age, "importance": x / 10.0 })
            .as_object()
            .cloned()
            .unwrap_or_default(),
    };
    {
        let store = Store::open(dir.path(), options(u64::MAX)).expect("open");
        store
            .create("mem", 2, Distance::Euclidean, HnswParams::default())
            .expect("create");
        let mut points: Vec<Point> = (0..10)
            .map(|i| aged(&format!("f{i}"), f64::from(i), i as f32))
            .collect();
        points.push(point("untagged", &[0.0, 1.0]));
        store.upsert("mem", points).expect("upsert");
        let below = [
            PayloadBelow {
                key: "created_at".into(),
                less_than: 3.0,
            },
            PayloadBelow {
                key: "importance".into(),
                less_than: 0.15,
            },
        ];
        // f0, f1 (importance 0.1 too) and f2 by age: each once, with an id also named.
        let ids = ["f1".to_string(), "missing".to_string()];
        assert_eq!(store.delete_points("mem", &ids, &below).expect("delete"), 3);
        assert_eq!(store.delete_points("mem", &[], &below).expect("again"), 0);
    }
    let store = Store::open(dir.path(), options(u64::MAX)).expect("reopen");
    let exact = SearchQuery {
        exact: true,
        ..query(&[0.0, 1.0], 20)
    };
    let mut ids: Vec<String> = store
        .search("mem", &exact)
        .expect("search")
        .into_iter()
        .map(|h| h.id)
        .collect();
    ids.sort();
    assert_eq!(ids, ["f3", "f4", "f5", "f6", "f7", "f8", "f9", "untagged"]);
}
