//! The gRPC transport of the vector service: maps `taskloom.v1` messages onto the store
//! (protobuf `Struct` payloads to JSON and back) and store errors onto statuses.

use std::collections::HashMap;
use std::sync::Arc;

use prost_types::value::Kind as ProtoKind;
use serde_json::Value as Json;
use taskloom_common::errors::invalid_argument_with_reason;
use taskloom_common::{error_status, invalid_argument};
use taskloom_proto::v1::vector_service_server::VectorService;
use taskloom_proto::v1::{
    Collection as ProtoCollection, CreateCollectionRequest, CreateCollectionResponse,
    DeleteCollectionRequest, DeleteCollectionResponse, DeletePointsRequest, DeletePointsResponse,
    Distance as ProtoDistance, ErrorReason, GetCollectionRequest, GetCollectionResponse,
    ListCollectionsRequest, ListCollectionsResponse, SearchRequest, SearchResponse, UpsertRequest,
    UpsertResponse,
};
use tonic::{Code, Request, Response, Status};

use crate::collection::{CollectionInfo, Payload, Point, ScoredPoint, VectorError};
use crate::index::Distance;
use crate::metrics::VectorMetrics;
use crate::store::Store;

pub const DEFAULT_TOP_K: usize = 10;
pub const MAX_TOP_K: usize = 1000;
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
        VectorError::Storage(_) => internal(message),
    }
}

fn distance_from_proto(d: ProtoDistance) -> Distance {
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

fn collection_to_proto(c: CollectionInfo) -> ProtoCollection {
    ProtoCollection {
        name: c.name,
        dimension: c.dimension as u32,
        distance: distance_to_proto(c.distance).into(),
        points: c.points as u64,
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

fn struct_to_json(s: prost_types::Struct) -> Payload {
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

fn json_to_struct(p: Payload) -> prost_types::Struct {
    prost_types::Struct {
        fields: p.into_iter().map(|(k, v)| (k, json_to_value(v))).collect(),
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
        let info = self
            .run("create_collection", move |s| {
                s.create(&req.name, req.dimension as usize, distance)
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
            (true, Some(last)) => last.name.clone(),
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
        let deleted = self
            .run("delete_points", move |s| {
                s.delete_points(&req.collection, &req.ids)
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
        let req = request.into_inner();
        let top_k = match req.top_k as usize {
            0 => DEFAULT_TOP_K,
            n if n > MAX_TOP_K => {
                return Err(self.reject(
                    "search",
                    invalid_argument("top_k", format!("must be at most {MAX_TOP_K}")),
                ))
            }
            n => n,
        };
        let filter = req.filter.into_iter().collect();
        let (name, vector, with_payload) = (req.collection, req.vector, req.with_payload);
        let hits = self
            .run("search", move |s| {
                s.search(&name, &vector, top_k, &filter, with_payload)
            })
            .await?;
        Ok(Response::new(SearchResponse {
            hits: hits
                .into_iter()
                .map(
                    |ScoredPoint { id, score, payload }| taskloom_proto::v1::ScoredPoint {
                        id,
                        score,
                        payload: payload.map(json_to_struct),
                    },
                )
                .collect(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::registry::Registry;
    use taskloom_proto::v1::Point as ProtoPoint;
    use tonic_types::StatusExt;

    fn service(dir: &std::path::Path) -> VectorGrpc {
        let store = Arc::new(Store::open(dir).expect("open"));
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
        assert_eq!(crate::collection::filter_form(&json["page"]), "3");
        assert_eq!(json_to_struct(json), payload);
    }
}
