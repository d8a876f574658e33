//! The gRPC transport of the vector service: maps `taskloom.v1` messages onto the store
//! (through `convert`) and store errors onto statuses with `google.rpc` details.

use std::collections::HashMap;
use std::sync::Arc;

use taskloom_common::errors::invalid_argument_with_reason;
use taskloom_common::{error_status, invalid_argument};
use taskloom_proto::v1::vector_service_server::VectorService;
use taskloom_proto::v1::{
    CreateCollectionRequest, CreateCollectionResponse, DeleteCollectionRequest,
    DeleteCollectionResponse, DeletePointsRequest, DeletePointsResponse, ErrorReason,
    GetCollectionRequest, GetCollectionResponse, ListCollectionsRequest, ListCollectionsResponse,
    SearchBatchRequest, SearchBatchResponse, SearchRequest, SearchResponse, UpsertRequest,
    UpsertResponse,
};
use tonic::{Code, Request, Response, Status};

use crate::collection::{Point, VectorError};
use crate::convert::{
    below_from_proto, collection_to_proto, distance_from_proto, hit_to_proto, hnsw_from_proto,
    search_from_proto, struct_to_json,
};
use crate::metrics::VectorMetrics;
use crate::store::Store;

/// Most searches in one `SearchBatch` call (vector.proto).
pub const MAX_BATCH_SEARCHES: usize = 1024;
pub const DEFAULT_PAGE_SIZE: usize = 100;
pub const MAX_PAGE_SIZE: usize = 1000;

pub struct VectorGrpc {
    store: Arc<Store>,
    metrics: Arc<VectorMetrics>,
}

impl VectorGrpc {
    pub fn new(store: Arc<Store>, metrics: Arc<VectorMetrics>) -> Self {
        Self { store, metrics }
    }

    /// Runs a store call off the async threads (writes touch the disk), recording its outcome.
    async fn run<T: Send + 'static>(
        &self,
        op: &'static str,
        f: impl FnOnce(&Store) -> Result<T, VectorError> + Send + 'static,
    ) -> Result<T, Status> {
        let store = Arc::clone(&self.store);
        let result = tokio::task::spawn_blocking(move || f(&store))
            .await
            .map_err(|e| internal(format!("store task failed: {e}")))
            .and_then(|r| r.map_err(to_status));
        self.metrics.record(op, result.is_ok());
        result
    }

    fn reject(&self, op: &'static str, status: Status) -> Status {
        self.metrics.record(op, false);
        status
    }
}

fn internal(message: String) -> Status {
    error_status(
        Code::Internal,
        ErrorReason::Internal,
        message,
        HashMap::new(),
    )
}

fn to_status(e: VectorError) -> Status {
    let message = e.to_string();
    match e {
        VectorError::CollectionNotFound(_) => error_status(
            Code::NotFound,
            ErrorReason::CollectionNotFound,
            message,
            HashMap::new(),
        ),
        VectorError::CollectionExists(_) => error_status(
            Code::AlreadyExists,
            ErrorReason::CollectionExists,
            message,
            HashMap::new(),
        ),
        VectorError::InvalidArgument { field, message } => invalid_argument(&field, message),
        VectorError::DimensionMismatch {
            field,
            expected,
            got,
        } => invalid_argument_with_reason(
            ErrorReason::DimensionMismatch,
            &field,
            format!("has dimension {got}, the collection's is {expected}"),
        ),
        VectorError::CapacityExceeded { limit, .. } => error_status(
            Code::ResourceExhausted,
            ErrorReason::CapacityExceeded,
            message,
            HashMap::from([("limit".to_string(), limit.to_string())]),
        ),
        VectorError::Storage(_) => internal(message),
    }
}

#[tonic::async_trait]
impl VectorService for VectorGrpc {
    async fn create_collection(
        &self,
        request: Request<CreateCollectionRequest>,
    ) -> Result<Response<CreateCollectionResponse>, Status> {
        let req = request.into_inner();
        let distance = distance_from_proto(req.distance());
        let hnsw = hnsw_from_proto(req.hnsw);
        let info = self
            .run("create_collection", move |s| {
                s.create(&req.name, req.dimension as usize, distance, hnsw)
            })
            .await?;
        Ok(Response::new(CreateCollectionResponse {
            collection: Some(collection_to_proto(info)),
        }))
    }

    async fn get_collection(
        &self,
        request: Request<GetCollectionRequest>,
    ) -> Result<Response<GetCollectionResponse>, Status> {
        let name = request.into_inner().name;
        let info = self.run("get_collection", move |s| s.info(&name)).await?;
        Ok(Response::new(GetCollectionResponse {
            collection: Some(collection_to_proto(info)),
        }))
    }

    async fn list_collections(
        &self,
        request: Request<ListCollectionsRequest>,
    ) -> Result<Response<ListCollectionsResponse>, Status> {
        let req = request.into_inner();
        let page_size = match req.page_size {
            0 => DEFAULT_PAGE_SIZE,
            n if n < 0 => {
                return Err(self.reject(
                    "list_collections",
                    invalid_argument("page_size", "must not be negative"),
                ))
            }
            n => (n as usize).min(MAX_PAGE_SIZE),
        };
        // The page token is the last name of the previous page.
        let after = req.page_token;
        let (page, more) = self
            .run("list_collections", move |s| Ok(s.list(&after, page_size)))
            .await?;
        let next_page_token = match (more, page.last()) {
            (true, Some(last)) => last.config.name.clone(),
            _ => String::new(),
        };
        Ok(Response::new(ListCollectionsResponse {
            collections: page.into_iter().map(collection_to_proto).collect(),
            next_page_token,
        }))
    }

    async fn delete_collection(
        &self,
        request: Request<DeleteCollectionRequest>,
    ) -> Result<Response<DeleteCollectionResponse>, Status> {
        let name = request.into_inner().name;
        self.run("delete_collection", move |s| s.delete(&name))
            .await?;
        Ok(Response::new(DeleteCollectionResponse {}))
    }

    async fn upsert(
        &self,
        request: Request<UpsertRequest>,
    ) -> Result<Response<UpsertResponse>, Status> {
        let req = request.into_inner();
        let points = req
            .points
            .into_iter()
            .map(|p| Point {
                id: p.id,
                vector: p.vector,
                payload: p.payload.map(struct_to_json).unwrap_or_default(),
            })
            .collect();
        let name = req.collection;
        let upserted = self.run("upsert", move |s| s.upsert(&name, points)).await?;
        Ok(Response::new(UpsertResponse {
            upserted: upserted as u64,
        }))
    }

    async fn delete_points(
        &self,
        request: Request<DeletePointsRequest>,
    ) -> Result<Response<DeletePointsResponse>, Status> {
        let req = request.into_inner();
        let below =
            below_from_proto(&req).map_err(|e| self.reject("delete_points", to_status(e)))?;
        let deleted = self
            .run("delete_points", move |s| {
                s.delete_points(&req.collection, &req.ids, &below)
            })
            .await?;
        Ok(Response::new(DeletePointsResponse {
            deleted: deleted as u64,
        }))
    }

    async fn search(
        &self,
        request: Request<SearchRequest>,
    ) -> Result<Response<SearchResponse>, Status> {
        let (name, query) = search_from_proto(request.into_inner(), "")
            .map_err(|e| self.reject("search", to_status(e)))?;
        let hits = self.run("search", move |s| s.search(&name, &query)).await?;
        Ok(Response::new(SearchResponse {
            hits: hits.into_iter().map(hit_to_proto).collect(),
        }))
    }

    async fn search_batch(
        &self,
        request: Request<SearchBatchRequest>,
    ) -> Result<Response<SearchBatchResponse>, Status> {
        let searches = request.into_inner().searches;
        if searches.len() > MAX_BATCH_SEARCHES {
            return Err(self.reject(
                "search_batch",
                invalid_argument("searches", format!("at most {MAX_BATCH_SEARCHES} searches")),
            ));
        }
        let queries = searches
            .into_iter()
            .enumerate()
            .map(|(i, req)| search_from_proto(req, &format!("searches[{i}].")))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.reject("search_batch", to_status(e)))?;
        let results = self
            .run("search_batch", move |s| {
                s.search_batch(&queries)
                    .into_iter()
                    .enumerate()
                    .map(|(i, r)| r.map_err(|e| e.within(&format!("searches[{i}]."))))
                    .collect::<Result<Vec<_>, _>>()
            })
            .await?;
        Ok(Response::new(SearchBatchResponse {
            results: results
                .into_iter()
                .map(|hits| SearchResponse {
                    hits: hits.into_iter().map(hit_to_proto).collect(),
                })
                .collect(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::registry::Registry;
    use taskloom_proto::v1::{Distance as ProtoDistance, Point as ProtoPoint};
    use tonic_types::StatusExt;

    fn service(dir: &std::path::Path) -> VectorGrpc {
        let options = crate::store::StoreOptions {
            max_points_per_collection: 2,
            ..crate::store::StoreOptions::default()
        };
        let store = Arc::new(Store::open(dir, options).expect("open"));
        let metrics = Arc::new(VectorMetrics::register(
            &mut Registry::default(),
            store.clone(),
        ));
        VectorGrpc::new(store, metrics)
    }

    fn reason(status: &Status) -> String {
        status
            .get_error_details()
            .error_info()
            .map(|i| i.reason.clone())
            .unwrap_or_default()
    }

    #[tokio::test]
    async fn errors_carry_reasons_and_fields() {
        let dir = tempfile::tempdir().expect("tempdir");
        let svc = service(dir.path());
        let create = || {
            Request::new(CreateCollectionRequest {
                name: "docs".into(),
                dimension: 2,
                distance: ProtoDistance::Unspecified.into(),
                hnsw: None,
            })
        };
        let created = svc
            .create_collection(create())
            .await
            .expect("create")
            .into_inner();
        assert_eq!(
            created.collection.expect("c").distance,
            ProtoDistance::Cosine as i32
        );
        let e = svc.create_collection(create()).await.unwrap_err();
        assert_eq!(
            (e.code(), reason(&e).as_str()),
            (Code::AlreadyExists, "COLLECTION_EXISTS")
        );
        let e = svc
            .get_collection(Request::new(GetCollectionRequest {
                name: "nope".into(),
            }))
            .await
            .unwrap_err();
        assert_eq!(
            (e.code(), reason(&e).as_str()),
            (Code::NotFound, "COLLECTION_NOT_FOUND")
        );
        let e = svc
            .upsert(Request::new(UpsertRequest {
                collection: "docs".into(),
                points: vec![ProtoPoint {
                    id: "a".into(),
                    vector: vec![1.0, 2.0, 3.0],
                    payload: None,
                }],
            }))
            .await
            .unwrap_err();
        assert_eq!(
            (e.code(), reason(&e).as_str()),
            (Code::InvalidArgument, "DIMENSION_MISMATCH")
        );
        let field = e
            .get_error_details()
            .bad_request()
            .expect("bad request")
            .field_violations[0]
            .field
            .clone();
        assert_eq!(field, "points[0].vector");
        let e = svc
            .search(Request::new(SearchRequest {
                collection: "docs".into(),
                vector: vec![1.0, 0.0],
                top_k: 1001,
                ..SearchRequest::default()
            }))
            .await
            .unwrap_err();
        assert_eq!(
            (e.code(), reason(&e).as_str()),
            (Code::InvalidArgument, "INVALID_ARGUMENT")
        );
    }

    fn violation(status: &Status) -> String {
        status
            .get_error_details()
            .bad_request()
            .map(|b| b.field_violations[0].field.clone())
            .unwrap_or_default()
    }

    fn points(collection: &str, vectors: &[(&str, Vec<f32>)]) -> Request<UpsertRequest> {
        Request::new(UpsertRequest {
            collection: collection.into(),
            points: vectors
                .iter()
                .map(|(id, v)| ProtoPoint {
                    id: id.to_string(),
                    vector: v.clone(),
                    payload: None,
                })
                .collect(),
        })
    }

    #[tokio::test]
    async fn bad_input_is_refused_with_the_field_and_changes_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let svc = service(dir.path());
        let e = svc
            .create_collection(Request::new(CreateCollectionRequest {
                name: "docs".into(),
                dimension: 2,
                hnsw: Some(taskloom_proto::v1::HnswConfig {
                    m: 500,
                    ..Default::default()
                }),
                ..Default::default()
            }))
            .await
            .unwrap_err();
        assert_eq!(
            (reason(&e).as_str(), violation(&e).as_str()),
            ("INVALID_ARGUMENT", "hnsw.m")
        );
        let listed = svc
            .list_collections(Request::new(ListCollectionsRequest::default()))
            .await
            .expect("list")
            .into_inner();
        assert!(listed.collections.is_empty());
        svc.create_collection(Request::new(CreateCollectionRequest {
            name: "docs".into(),
            dimension: 2,
            ..Default::default()
        }))
        .await
        .expect("create");
        let e = svc
            .upsert(points(
                "docs",
                &[("a", vec![1.0, 0.0]), ("b", vec![f32::NAN, 0.0])],
            ))
            .await
            .unwrap_err();
        assert_eq!(
            (reason(&e).as_str(), violation(&e).as_str()),
            ("INVALID_ARGUMENT", "points[1].vector")
        );
        let e = svc
            .upsert(points("nope", &[("a", vec![1.0, 0.0])]))
            .await
            .unwrap_err();
        assert_eq!(
            (e.code(), reason(&e).as_str()),
            (Code::NotFound, "COLLECTION_NOT_FOUND")
        );
        svc.upsert(points(
            "docs",
            &[("a", vec![1.0, 0.0]), ("b", vec![0.0, 1.0])],
        ))
        .await
        .expect("upsert");
        let e = svc
            .upsert(points("docs", &[("c", vec![1.0, 1.0])]))
            .await
            .unwrap_err();
        assert_eq!(
            (e.code(), reason(&e).as_str()),
            (Code::ResourceExhausted, "CAPACITY_EXCEEDED")
        );
        let limit = e
            .get_error_details()
            .error_info()
            .map(|i| i.metadata["limit"].clone());
        assert_eq!(limit.as_deref(), Some("max_points_per_collection"));

        let search = |vector: Vec<f32>| SearchRequest {
            collection: "docs".into(),
            vector,
            top_k: 1,
            ..SearchRequest::default()
        };
        let e = svc
            .search(Request::new(SearchRequest {
                filter: [(String::new(), "x".to_string())].into_iter().collect(),
                ..search(vec![1.0, 0.0])
            }))
            .await
            .unwrap_err();
        assert_eq!(violation(&e), "filter");
        let batch = |searches| Request::new(SearchBatchRequest { searches });
        let e = svc
            .search_batch(batch(vec![
                search(vec![1.0, 0.0]),
                search(vec![1.0, 0.0, 0.0]),
            ]))
            .await
            .unwrap_err();
        assert_eq!(
            (reason(&e).as_str(), violation(&e).as_str()),
            ("DIMENSION_MISMATCH", "searches[1].vector")
        );
        let e = svc
            .search_batch(batch(vec![SearchRequest {
                collection: "nope".into(),
                ..search(vec![1.0, 0.0])
            }]))
            .await
            .unwrap_err();
        assert_eq!(reason(&e), "COLLECTION_NOT_FOUND");
        let results = svc
            .search_batch(batch(vec![search(vec![1.0, 0.1]), search(vec![0.1, 1.0])]))
            .await
            .expect("batch")
            .into_inner()
            .results;
        let firsts: Vec<&str> = results.iter().map(|r| r.hits[0].id.as_str()).collect();
        assert_eq!(firsts, ["a", "b"]);
        let info = svc
            .get_collection(Request::new(GetCollectionRequest {
                name: "docs".into(),
            }))
            .await
            .expect("get")
            .into_inner()
            .collection
            .expect("collection");
        assert_eq!((info.points, info.hnsw.expect("hnsw").m), (2, 16));
    }

    #[tokio::test]
    async fn retention_deletes_points_below_a_bound_and_refuses_bad_bounds() {
        use crate::convert::json_to_struct;
        use taskloom_proto::v1::PayloadBelow as ProtoBelow;
        let dir = tempfile::tempdir().expect("tempdir");
        let svc = service(dir.path());
        svc.create_collection(Request::new(CreateCollectionRequest {
            name: "mem".into(),
            dimension: 2,
            ..Default::default()
        }))
        .await
        .expect("create");
        let fact = |id: &str, created_at: serde_json::Value| ProtoPoint {
            id: id.into(),
            vector: vec![1.0, 0.5],
            payload: Some(json_to_struct(
                serde_json::json!({ "created_at": created_at })
                    .as_object()
                    .cloned()
                    .unwrap_or_default(),
            )),
        };
        svc.upsert(Request::new(UpsertRequest {
            collection: "mem".into(),
            points: vec![fact("old", 10.into()), fact("new", "10".into())],
        }))
        .await
        .expect("upsert");
        let delete = |key: &str, less_than: f64| {
            Request::new(DeletePointsRequest {
                collection: "mem".into(),
                ids: vec![],
                where_below: vec![ProtoBelow {
                    key: key.into(),
                    less_than,
                }],
            })
        };
        for (request, field) in [
            (delete("", 100.0), "where_below[0].key"),
            (delete("created_at", f64::NAN), "where_below[0].less_than"),
        ] {
            let e = svc.delete_points(request).await.unwrap_err();
            assert_eq!(
                (e.code(), reason(&e).as_str(), violation(&e).as_str()),
                (Code::InvalidArgument, "INVALID_ARGUMENT", field)
            );
        }
        let points = |svc: &VectorGrpc| svc.store.info("mem").expect("info").points;
        assert_eq!(points(&svc), 2, "a refused delete changes nothing");
        let deleted = svc
            .delete_points(delete("created_at", 11.0))
            .await
            .expect("delete")
            .into_inner()
            .deleted;
        // "new" holds a string, not a number: kept.
        assert_eq!((deleted, points(&svc)), (1, 1));
        assert!(svc.store.info("nope").is_err());
        let e = svc
            .delete_points(Request::new(DeletePointsRequest {
                collection: "nope".into(),
                ..Default::default()
            }))
            .await
            .unwrap_err();
        assert_eq!(reason(&e), "COLLECTION_NOT_FOUND");
    }
}
