//! The gRPC transport of the cache: validates requests, maps them onto [`Cache`] and its
//! answers back onto `taskloom.v1` messages and statuses.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use taskloom_common::{error_status, invalid_argument};
use taskloom_proto::v1::cache_service_server::CacheService;
use taskloom_proto::v1::{
    BatchGetRequest, BatchGetResponse, BatchSetRequest, BatchSetResponse, CacheEntry, CacheTier,
    DeleteRequest, DeleteResponse, ErrorReason, GetRequest, GetResponse, SetRequest, SetResponse,
};
use tonic::{Code, Request, Response, Status};

use crate::cache::Cache;
use crate::metrics::CacheMetrics;
use crate::tier::{CacheKey, Entry, TierError, TierKind, MAX_TTL};

pub const MAX_NAMESPACE_BYTES: usize = 256;
pub const MAX_KEY_BYTES: usize = 1024;
pub const MAX_VALUE_BYTES: usize = 16 * 1024 * 1024;
pub const MAX_BATCH_KEYS: usize = 10_000;

pub struct CacheGrpc {
    cache: Cache,
    metrics: Arc<CacheMetrics>,
}

impl CacheGrpc {
    pub fn new(cache: Cache, metrics: Arc<CacheMetrics>) -> Self {
        Self { cache, metrics }
    }

    /// Counts a rejected request and passes its status on.
    fn invalid(&self, op: &'static str, status: Status) -> Status {
        self.metrics.record(op, "invalid");
        status
    }

    fn unavailable(&self, op: &'static str, e: TierError) -> Status {
        self.metrics.record(op, "error");
        error_status(
            Code::Unavailable,
            ErrorReason::Unavailable,
            format!(
                "The shared cache tier (Redis) did not answer, so the {op} is incomplete; \
                 retry it ({}).",
                e.message
            ),
            HashMap::from([("tier".to_string(), format!("{:?}", e.tier))]),
        )
    }
}

fn validate_namespace(namespace: &str) -> Result<(), Status> {
    if namespace.is_empty() {
        return Err(invalid_argument("namespace", "must not be empty"));
    }
    if namespace.len() > MAX_NAMESPACE_BYTES {
        return Err(invalid_argument(
            "namespace",
            format!(
                "is {} bytes, more than the {MAX_NAMESPACE_BYTES} allowed",
                namespace.len()
            ),
        ));
    }
    // `:` separates namespace and key in L2's `taskloom:cache:<namespace>:<key>`.
    if namespace.contains(':') {
        return Err(invalid_argument("namespace", "must not contain ':'"));
    }
    Ok(())
}

fn validate_key(field: &str, key: &str) -> Result<(), Status> {
    if key.is_empty() {
        return Err(invalid_argument(field, "must not be empty"));
    }
    if key.len() > MAX_KEY_BYTES {
        return Err(invalid_argument(
            field,
            format!(
                "is {} bytes, more than the {MAX_KEY_BYTES} allowed",
                key.len()
            ),
        ));
    }
    Ok(())
}

fn validate_value(field: &str, value: &[u8]) -> Result<(), Status> {
    if value.len() > MAX_VALUE_BYTES {
        return Err(invalid_argument(
            field,
            format!(
                "is {} bytes, more than the {MAX_VALUE_BYTES} allowed",
                value.len()
            ),
        ));
    }
    Ok(())
}

/// `None` (absent or zero) means the namespace's default TTL.
fn parse_ttl(field: &str, ttl: Option<prost_types::Duration>) -> Result<Option<Duration>, Status> {
    match ttl {
        None => Ok(None),
        Some(d) => match Duration::try_from(d) {
            Ok(d) if d.is_zero() => Ok(None),
            Ok(d) if d > MAX_TTL => Err(invalid_argument(
                field,
                format!(
                    "must not be longer than {}",
                    humantime::format_duration(MAX_TTL)
                ),
            )),
            Ok(d) => Ok(Some(d)),
            Err(_) => Err(invalid_argument(field, "must not be negative")),
        },
    }
}

fn to_proto_duration(d: Duration) -> prost_types::Duration {
    prost_types::Duration::try_from(d).unwrap_or(prost_types::Duration {
        seconds: i64::MAX,
        nanos: 0,
    })
}

fn to_proto_tier(tier: TierKind) -> CacheTier {
    match tier {
        TierKind::L1 => CacheTier::L1,
        TierKind::L2 => CacheTier::L2,
    }
}

#[tonic::async_trait]
impl CacheService for CacheGrpc {
    async fn get(&self, request: Request<GetRequest>) -> Result<Response<GetResponse>, Status> {
        let req = request.into_inner();
        validate_namespace(&req.namespace)
            .and_then(|()| validate_key("key", &req.key))
            .map_err(|s| self.invalid("get", s))?;
        let key = CacheKey::new(req.namespace, req.key);
        let found = self.cache.get(&key).await;
        Ok(Response::new(match found {
            Some((entry, tier)) => {
                self.metrics.record_hit("get", tier);
                GetResponse {
                    found: true,
                    value: entry.value.to_vec(),
                    tier: to_proto_tier(tier).into(),
                }
            }
            None => {
                self.metrics.record("get", "miss");
                GetResponse::default()
            }
        }))
    }

    async fn set(&self, request: Request<SetRequest>) -> Result<Response<SetResponse>, Status> {
        let req = request.into_inner();
        let ttl = validate_namespace(&req.namespace)
            .and_then(|()| validate_key("key", &req.key))
            .and_then(|()| validate_value("value", &req.value))
            .and_then(|()| parse_ttl("ttl", req.ttl))
            .map_err(|s| self.invalid("set", s))?;
        self.cache
            .set(CacheKey::new(req.namespace, req.key), req.value, ttl)
            .await;
        self.metrics.record("set", "ok");
        Ok(Response::new(SetResponse {}))
    }

    async fn delete(
        &self,
        request: Request<DeleteRequest>,
    ) -> Result<Response<DeleteResponse>, Status> {
        let req = request.into_inner();
        validate_namespace(&req.namespace)
            .and_then(|()| validate_key("key", &req.key))
            .map_err(|s| self.invalid("delete", s))?;
        // An L2 failure fails the delete (after removing the L1 entry): a delete that left
        // the shared copy would bring the value back once Redis returns.
        let deleted = self
            .cache
            .delete(&CacheKey::new(req.namespace, req.key))
            .await
            .map_err(|e| self.unavailable("delete", e))?;
        self.metrics
            .record("delete", if deleted { "hit" } else { "miss" });
        Ok(Response::new(DeleteResponse { deleted }))
    }

    async fn batch_get(
        &self,
        request: Request<BatchGetRequest>,
    ) -> Result<Response<BatchGetResponse>, Status> {
        let req = request.into_inner();
        validate_namespace(&req.namespace)
            .and_then(|()| validate_batch_len("keys", req.keys.len()))
            .and_then(|()| {
                req.keys
                    .iter()
                    .enumerate()
                    .try_for_each(|(i, k)| validate_key(&format!("keys[{i}]"), k))
            })
            .map_err(|s| self.invalid("batch_get", s))?;
        let keys: Vec<CacheKey> = req
            .keys
            .into_iter()
            .map(|k| CacheKey::new(req.namespace.clone(), k))
            .collect();
        let found = self.cache.get_many(keys.clone()).await;
        let (mut l1_hits, mut l2_hits, mut misses) = (0, 0, 0);
        let entries = keys
            .into_iter()
            .zip(found)
            .map(|(key, found)| match found {
                Some((entry, tier)) => {
                    match tier {
                        TierKind::L1 => l1_hits += 1,
                        TierKind::L2 => l2_hits += 1,
                    }
                    CacheEntry {
                        key: key.key,
                        found: true,
                        value: entry.value.to_vec(),
                        ttl: Some(to_proto_duration(entry.remaining_ttl())),
                    }
                }
                None => {
                    misses += 1;
                    CacheEntry {
                        key: key.key,
                        ..CacheEntry::default()
                    }
                }
            })
            .collect();
        self.metrics.record_n("batch_get", "hit", "l1", l1_hits);
        self.metrics.record_n("batch_get", "hit", "l2", l2_hits);
        self.metrics.record_n("batch_get", "miss", "none", misses);
        Ok(Response::new(BatchGetResponse { entries }))
    }

    async fn batch_set(
        &self,
        request: Request<BatchSetRequest>,
    ) -> Result<Response<BatchSetResponse>, Status> {
        let req = request.into_inner();
        // Validate the whole batch first: bad input changes nothing.
        let ttls = validate_namespace(&req.namespace)
            .and_then(|()| validate_batch_len("entries", req.entries.len()))
            .and_then(|()| {
                req.entries
                    .iter()
                    .enumerate()
                    .map(|(i, e)| {
                        validate_key(&format!("entries[{i}].key"), &e.key)?;
                        validate_value(&format!("entries[{i}].value"), &e.value)?;
                        parse_ttl(&format!("entries[{i}].ttl"), e.ttl)
                    })
                    .collect::<Result<Vec<_>, Status>>()
            })
            .map_err(|s| self.invalid("batch_set", s))?;
        let n = req.entries.len() as u64;
        let entries = req
            .entries
            .into_iter()
            .zip(ttls)
            .map(|(entry, ttl)| {
                let key = CacheKey::new(req.namespace.clone(), entry.key);
                let ttl = self.cache.ttl_or_default(&key.namespace, ttl);
                (key, Entry::new(entry.value, ttl))
            })
            .collect();
        self.cache.set_many(entries).await;
        self.metrics.record_n("batch_set", "ok", "none", n);
        Ok(Response::new(BatchSetResponse {}))
    }
}

fn validate_batch_len(field: &str, len: usize) -> Result<(), Status> {
    if len > MAX_BATCH_KEYS {
        return Err(invalid_argument(
            field,
            format!("has {len} items, more than the {MAX_BATCH_KEYS} allowed"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::l1::{L1Config, L1};
    use prometheus_client::registry::Registry;
    use tonic_types::StatusExt;

    fn service() -> CacheGrpc {
        let l1 = L1::new(L1Config {
            max_bytes: 1 << 20,
            default_ttl: Duration::from_secs(3600),
            namespace_ttls: HashMap::new(),
        });
        let metrics = Arc::new(CacheMetrics::register(&mut Registry::default(), l1.clone()));
        CacheGrpc::new(Cache::new(l1, None, metrics.clone()), metrics)
    }

    fn assert_invalid(status: &Status, field: &str) {
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        let details = status.get_error_details();
        assert_eq!(
            details.error_info().expect("error info").reason,
            "INVALID_ARGUMENT"
        );
        assert_eq!(
            details.bad_request().expect("bad request").field_violations[0].field,
            field
        );
    }

    fn set_req(ns: &str, key: &str, value: &[u8]) -> Request<SetRequest> {
        Request::new(SetRequest {
            namespace: ns.into(),
            key: key.into(),
            value: value.to_vec(),
            ttl: None,
        })
    }

    #[tokio::test]
    async fn set_then_get_reports_l1() {
        let svc = service();
        svc.set(set_req("ns", "k", b"v")).await.expect("set");
        let got = svc
            .get(Request::new(GetRequest {
                namespace: "ns".into(),
                key: "k".into(),
            }))
            .await
            .expect("get")
            .into_inner();
        assert!(got.found);
        assert_eq!(got.value, b"v");
        assert_eq!(got.tier, CacheTier::L1 as i32);
    }

    #[tokio::test]
    async fn validation_names_the_field() {
        let svc = service();
        let e = svc.set(set_req("", "k", b"v")).await.unwrap_err();
        assert_invalid(&e, "namespace");
        let e = svc.set(set_req("ns", "", b"v")).await.unwrap_err();
        assert_invalid(&e, "key");
        let long_key = "k".repeat(MAX_KEY_BYTES + 1);
        let e = svc.set(set_req("ns", &long_key, b"v")).await.unwrap_err();
        assert_invalid(&e, "key");
        let big = vec![0u8; MAX_VALUE_BYTES + 1];
        let e = svc.set(set_req("ns", "k", &big)).await.unwrap_err();
        assert_invalid(&e, "value");
        let mut neg = set_req("ns", "k", b"v");
        neg.get_mut().ttl = Some(prost_types::Duration {
            seconds: -1,
            nanos: 0,
        });
        assert_invalid(&svc.set(neg).await.unwrap_err(), "ttl");
        let mut long = set_req("ns", "k", b"v");
        long.get_mut().ttl = Some(to_proto_duration(MAX_TTL + Duration::from_secs(1)));
        assert_invalid(&svc.set(long).await.unwrap_err(), "ttl");
        let e = svc.set(set_req("a:b", "k", b"v")).await.unwrap_err();
        assert_invalid(&e, "namespace");
        let long_ns = "n".repeat(MAX_NAMESPACE_BYTES + 1);
        let e = svc.set(set_req(&long_ns, "k", b"v")).await.unwrap_err();
        assert_invalid(&e, "namespace");
        // Bad input changed nothing.
        let got = svc
            .get(Request::new(GetRequest {
                namespace: "ns".into(),
                key: "k".into(),
            }))
            .await
            .expect("get")
            .into_inner();
        assert!(!got.found);
    }

    #[tokio::test]
    async fn batch_set_is_all_or_nothing_and_batch_get_keeps_order() {
        let svc = service();
        let entry = |k: &str, v: &[u8]| CacheEntry {
            key: k.into(),
            value: v.to_vec(),
            ..CacheEntry::default()
        };
        let bad = BatchSetRequest {
            namespace: "ns".into(),
            entries: vec![entry("a", b"1"), entry("", b"2")],
        };
        let e = svc.batch_set(Request::new(bad)).await.unwrap_err();
        assert_invalid(&e, "entries[1].key");
        let ok = BatchSetRequest {
            namespace: "ns".into(),
            entries: vec![entry("c", b"3"), entry("a", b"1")],
        };
        svc.batch_set(Request::new(ok)).await.expect("batch set");
        let got = svc
            .batch_get(Request::new(BatchGetRequest {
                namespace: "ns".into(),
                keys: vec!["a".into(), "b".into(), "c".into()],
            }))
            .await
            .expect("batch get")
            .into_inner()
            .entries;
        let summary: Vec<_> = got
            .iter()
            .map(|e| (e.key.as_str(), e.found, e.value.as_slice()))
            .collect();
        assert_eq!(
            summary,
            vec![
                ("a", true, &b"1"[..]),
                ("b", false, &b""[..]),
                ("c", true, &b"3"[..])
            ]
        );
        let ttl = got[0].ttl.expect("ttl of a hit");
        assert!(ttl.seconds > 3500 && ttl.seconds <= 3600, "{ttl:?}");
    }

    #[tokio::test]
    async fn delete_reports_whether_it_removed() {
        let svc = service();
        svc.set(set_req("ns", "k", b"v")).await.expect("set");
        let del = || {
            Request::new(DeleteRequest {
                namespace: "ns".into(),
                key: "k".into(),
            })
        };
        assert!(
            svc.delete(del())
                .await
                .expect("delete")
                .into_inner()
                .deleted
        );
        assert!(
            !svc.delete(del())
                .await
                .expect("delete")
                .into_inner()
                .deleted
        );
    }
}
