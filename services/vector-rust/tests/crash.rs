//! Kills the real `taskloom-vector` binary with SIGKILL while writers stream upserts and
//! deletes at it, restarts it on the same data directory, and checks that every
//! acknowledged upsert is there with its exact vector and every acknowledged delete
//! stayed deleted. Run with a small snapshot threshold so snapshots and the log both
//! take part in recovery.

use std::collections::HashMap;
use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use taskloom_proto::v1::vector_service_client::VectorServiceClient;
use taskloom_proto::v1::{
    CreateCollectionRequest, DeletePointsRequest, Distance, GetCollectionRequest, Point,
    SearchBatchRequest, SearchRequest, UpsertRequest,
};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tonic::transport::Channel;

const WRITERS: usize = 4;
const ACKS_BEFORE_KILL: usize = 400;

/// Starts the binary on system-chosen ports; returns it and its gRPC URL, read from its
/// "serving" log line.
async fn start(data_dir: &Path) -> anyhow::Result<(Child, String)> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_taskloom-vector"))
        .args(["--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0"])
        .arg("--data-dir")
        .arg(data_dir)
        .args(["--snapshot-wal-bytes", "20000"])
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let stderr = child
        .stderr
        .take()
        .ok_or_else(|| anyhow::anyhow!("no stderr"))?;
    let mut lines = BufReader::new(stderr).lines();
    while let Some(line) = lines.next_line().await? {
        let log: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
        if log["msg"] == "serving" {
            let addr = log["grpc_addr"].as_str().unwrap_or_default().to_string();
            // Keep draining the log so the child never blocks on a full pipe.
            tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
            return Ok((child, format!("http://{addr}")));
        }
    }
    anyhow::bail!("taskloom-vector exited before serving")
}

fn vector_of(writer: usize, i: usize) -> Vec<f32> {
    vec![writer as f32, i as f32, (i % 7) as f32, 1.0]
}

fn point(writer: usize, i: usize) -> Point {
    let id = format!("w{writer}-{i}");
    let payload = prost_types::Struct {
        fields: [(
            "id".to_string(),
            prost_types::Value {
                kind: Some(prost_types::value::Kind::StringValue(id.clone())),
            },
        )]
        .into_iter()
        .collect(),
    };
    Point {
        id,
        vector: vector_of(writer, i),
        payload: Some(payload),
    }
}

#[derive(Default)]
struct Acked {
    /// id -> vector of every acknowledged upsert.
    upserts: HashMap<String, Vec<f32>>,
    deletes: Vec<String>,
    /// Deletes sent, acknowledged or not: one in flight at the kill may have landed.
    sent_deletes: Vec<String>,
}

/// Writes until `stop`: an upsert of two new points per call, and every third call a
/// delete of a point acknowledged earlier.
async fn writer(
    mut client: VectorServiceClient<Channel>,
    w: usize,
    acked: Arc<Mutex<Acked>>,
    count: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
) {
    let mut i = 0;
    while !stop.load(Ordering::Relaxed) {
        let points = vec![point(w, i), point(w, i + 1)];
        let request = UpsertRequest {
            collection: "mem".into(),
            points: points.clone(),
        };
        if client.upsert(request).await.is_err() {
            return;
        }
        {
            let mut acked = acked.lock().expect("lock");
            for p in points {
                acked.upserts.insert(p.id, p.vector);
            }
        }
        count.fetch_add(1, Ordering::Relaxed);
        if i % 6 == 4 {
            let victim = format!("w{w}-{}", i / 2);
            acked
                .lock()
                .expect("lock")
                .sent_deletes
                .push(victim.clone());
            let request = DeletePointsRequest {
                collection: "mem".into(),
                ids: vec![victim.clone()],
                ..Default::default()
            };
            if client.delete_points(request).await.is_err() {
                return;
            }
            acked.lock().expect("lock").deletes.push(victim);
        }
        i += 2;
    }
}

#[tokio::test]
async fn every_acknowledged_write_survives_kill_9() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (mut child, url) = start(dir.path()).await?;
    let mut client = VectorServiceClient::connect(url.clone()).await?;
    client
        .create_collection(CreateCollectionRequest {
            name: "mem".into(),
            dimension: 4,
            distance: Distance::Euclidean.into(),
            ..Default::default()
        })
        .await?;
    let acked = Arc::new(Mutex::new(Acked::default()));
    let count = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            tokio::spawn(writer(
                client.clone(),
                w,
                acked.clone(),
                count.clone(),
                stop.clone(),
            ))
        })
        .collect();
    while count.load(Ordering::Relaxed) < ACKS_BEFORE_KILL {
        tokio::task::yield_now().await;
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    // SIGKILL mid-stream: writes are in flight.
    child.start_kill()?;
    child.wait().await?;
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.await?;
    }

    let (_child, url) = start(dir.path()).await?;
    let mut client = VectorServiceClient::connect(url).await?;
    let acked = std::mem::take(&mut *acked.lock().expect("lock"));
    let live: Vec<(&String, &Vec<f32>)> = acked
        .upserts
        .iter()
        .filter(|(id, _)| !acked.sent_deletes.contains(id))
        .collect();
    assert!(
        live.len() >= ACKS_BEFORE_KILL,
        "{} acknowledged",
        live.len()
    );
    let info = client
        .get_collection(GetCollectionRequest { name: "mem".into() })
        .await?
        .into_inner()
        .collection
        .expect("collection");
    assert!(info.points as usize >= live.len());
    // One exact search per id, filtered to that id: present ones must come back with
    // their exact vector (score 0), deleted ones not at all.
    let lookup = |id: &str, vector: Vec<f32>| SearchRequest {
        collection: "mem".into(),
        vector,
        top_k: 1,
        exact: true,
        filter: [("id".to_string(), id.to_string())].into_iter().collect(),
        ..Default::default()
    };
    for chunk in live.chunks(500) {
        let searches = chunk
            .iter()
            .map(|(id, v)| lookup(id, (*v).clone()))
            .collect();
        let results = client
            .search_batch(SearchBatchRequest { searches })
            .await?
            .into_inner()
            .results;
        for ((id, _), result) in chunk.iter().zip(results) {
            assert_eq!(result.hits.len(), 1, "acknowledged upsert {id} lost");
            assert_eq!(
                (result.hits[0].id.as_str(), result.hits[0].score),
                (id.as_str(), 0.0)
            );
        }
    }
    for chunk in acked.deletes.chunks(500) {
        let searches = chunk.iter().map(|id| lookup(id, vec![0.0; 4])).collect();
        let results = client
            .search_batch(SearchBatchRequest { searches })
            .await?
            .into_inner()
            .results;
        for (id, result) in chunk.iter().zip(results) {
            assert!(result.hits.is_empty(), "acknowledged delete of {id} undone");
        }
    }
    Ok(())
}
