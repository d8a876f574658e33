//! Starts the real vector server on loopback, drives it with the generated client, and
//! restarts it on the same data directory to check that collections persist.

use std::collections::HashMap;

use taskloom_common::config::parse_config_from;
use taskloom_common::testing::{http_get, TestServer};
use taskloom_proto::v1::vector_service_client::VectorServiceClient;
use taskloom_proto::v1::{
    CreateCollectionRequest, Distance, ListCollectionsRequest, Point, SearchRequest, UpsertRequest,
};
use taskloom_vector::{config::Settings, service_spec};

fn payload(tag: &str) -> prost_types::Struct {
    prost_types::Struct {
        fields: [(
            "tag".to_string(),
            prost_types::Value {
                kind: Some(prost_types::value::Kind::StringValue(tag.into())),
            },
        )]
        .into_iter()
        .collect(),
    }
}

async fn start(data_dir: &std::path::Path) -> anyhow::Result<TestServer> {
    let dir = data_dir.to_string_lossy().to_string();
    let settings: Settings = parse_config_from(
        ["taskloom-vector", "--data-dir", dir.as_str()],
        "127.0.0.1:0",
        "127.0.0.1:0",
    )?;
    TestServer::start(service_spec(&settings)?).await
}

#[tokio::test]
async fn upsert_search_and_survive_restart() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let server = start(dir.path()).await?;
    let mut client = VectorServiceClient::connect(server.grpc_url()).await?;
    client
        .create_collection(CreateCollectionRequest {
            name: "memories".into(),
            dimension: 3,
            distance: Distance::Euclidean.into(),
            ..Default::default()
        })
        .await?;
    let points = [
        ("a", [0.0, 0.0, 0.0], "x"),
        ("b", [1.0, 1.0, 1.0], "y"),
        ("c", [2.0, 2.0, 2.0], "x"),
    ]
    .into_iter()
    .map(|(id, v, tag)| Point {
        id: id.into(),
        vector: v.to_vec(),
        payload: Some(payload(tag)),
    })
    .collect();
    let upserted = client
        .upsert(UpsertRequest {
            collection: "memories".into(),
            points,
        })
        .await?
        .into_inner()
        .upserted;
    assert_eq!(upserted, 3);
    let (status, _) = http_get(server.http_addr, "/readyz").await?;
    assert_eq!(status, 200);
    server.shutdown().await?;

    let server = start(dir.path()).await?;
    let mut client = VectorServiceClient::connect(server.grpc_url()).await?;
    let listed = client
        .list_collections(ListCollectionsRequest::default())
        .await?
        .into_inner();
    assert_eq!(listed.collections.len(), 1);
    assert_eq!(listed.collections[0].points, 3);
    let hits = client
        .search(SearchRequest {
            collection: "memories".into(),
            vector: vec![1.9, 1.9, 1.9],
            top_k: 5,
            filter: HashMap::from([("tag".to_string(), "x".to_string())]),
            with_payload: true,
            ..Default::default()
        })
        .await?
        .into_inner()
        .hits;
    let ids: Vec<_> = hits.iter().map(|h| h.id.as_str()).collect();
    assert_eq!(ids, ["c", "a"]);
    assert!(hits[0].score > hits[1].score);
    assert_eq!(hits[0].payload, Some(payload("x")));
    let (status, metrics) = http_get(server.http_addr, "/metrics").await?;
    assert_eq!(status, 200);
    assert!(metrics.contains("taskloom_vector_points 3"), "{metrics}");
    server.shutdown().await
}
