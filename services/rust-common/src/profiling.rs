//! Opt-in profiling endpoints on a service's HTTP port, for `go tool pprof` and friends:
//! `GET /debug/pprof/profile?seconds=N` (CPU, sampled with pprof-rs) and
//! `GET /debug/pprof/heap` (live allocations, sampled by jemalloc), both as pprof protobuf.
//!
//! Off by default (`--profiling`); a profile shows code paths and their data sizes, so the
//! endpoints answer only loopback peers unless `--profiling-allow-remote` says otherwise, and
//! a service that listens on a non-loopback address refuses to start with profiling on
//! without it.

use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::{ConnectInfo, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::Deserialize;

/// The longest CPU profile one request may ask for.
pub const MAX_PROFILE_SECONDS: u64 = 60;
const DEFAULT_PROFILE_SECONDS: u64 = 10;
/// Samples per second: a prime, so sampling does not lock step with periodic work.
const SAMPLES_PER_SECOND: i32 = 99;

/// jemalloc's options, read at start: heap profiling compiled in and ready (`prof:true`)
/// but not sampling (`prof_active:false`) until `--profiling` turns it on; one sample per
/// 512 KiB allocated on average (`lg_prof_sample:19`).
#[allow(non_upper_case_globals)]
#[export_name = "_rjem_malloc_conf"]
pub static malloc_conf: &[u8] = b"prof:true,prof_active:false,lg_prof_sample:19\0";

/// Who may fetch profiles.
#[derive(Debug, Clone, Copy)]
pub struct ProfilingAccess {
    pub allow_remote: bool,
}

/// Why profiling may not be switched on for `http_addr`.
pub fn check_address(http_addr: SocketAddr, allow_remote: bool) -> Result<(), String> {
    if http_addr.ip().is_loopback() || allow_remote {
        Ok(())
    } else {
        Err(format!(
            "profiling: the HTTP address {http_addr} is not loopback; profiles would be open to \
             the network (set profiling_allow_remote to allow it)"
        ))
    }
}

/// Starts heap sampling and returns the `/debug/pprof/*` routes.
pub async fn routes(access: ProfilingAccess) -> Router {
    if let Some(ctl) = jemalloc_pprof::PROF_CTL.as_ref() {
        if let Err(e) = ctl.lock().await.activate() {
            tracing::warn!(error = %e, "cannot start heap sampling; /debug/pprof/heap will fail");
        }
    }
    tracing::warn!(
        allow_remote = access.allow_remote,
        "profiling endpoints on /debug/pprof (heap sampling on)"
    );
    Router::new()
        .route("/debug/pprof/profile", get(cpu_profile))
        .route("/debug/pprof/heap", get(heap_profile))
        .with_state(access)
}

#[derive(Debug, Deserialize)]
struct ProfileQuery {
    seconds: Option<u64>,
}

fn problem(status: StatusCode, detail: impl Into<String>) -> Response {
    let body = serde_json::json!({
        "type": "about:blank",
        "title": status.canonical_reason().unwrap_or("error"),
        "status": status.as_u16(),
        "detail": detail.into(),
    });
    (
        status,
        [(header::CONTENT_TYPE, "application/problem+json")],
        body.to_string(),
    )
        .into_response()
}

fn refused(access: ProfilingAccess, peer: SocketAddr) -> Option<Response> {
    (!access.allow_remote && !peer.ip().is_loopback()).then(|| {
        problem(
            StatusCode::FORBIDDEN,
            "profiles are served to loopback clients only",
        )
    })
}

fn pprof_response(bytes: Vec<u8>) -> Response {
    ([(header::CONTENT_TYPE, "application/octet-stream")], bytes).into_response()
}

async fn cpu_profile(
    State(access): State<ProfilingAccess>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    query: Result<Query<ProfileQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    if let Some(refusal) = refused(access, peer) {
        return refusal;
    }
    let seconds = match query {
        Ok(Query(q)) => q.seconds.unwrap_or(DEFAULT_PROFILE_SECONDS),
        Err(e) => return problem(StatusCode::BAD_REQUEST, format!("seconds: {e}")),
    };
    if !(1..=MAX_PROFILE_SECONDS).contains(&seconds) {
        return problem(
            StatusCode::BAD_REQUEST,
            format!("seconds: must be from 1 to {MAX_PROFILE_SECONDS}, got {seconds}"),
        );
    }
    // The profiler's guard is not Send and the sampling is a blocking wait: its own thread.
    let profile = tokio::task::spawn_blocking(move || sample_cpu(Duration::from_secs(seconds)));
    match profile.await {
        Ok(Ok(bytes)) => pprof_response(bytes),
        // pprof-rs allows one profile at a time in a process.
        Ok(Err(e)) => problem(StatusCode::CONFLICT, format!("cannot profile: {e}")),
        Err(e) => problem(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

fn sample_cpu(duration: Duration) -> anyhow::Result<Vec<u8>> {
    use pprof::protos::Message;
    let guard = pprof::ProfilerGuardBuilder::default()
        .frequency(SAMPLES_PER_SECOND)
        .blocklist(&["libc", "libgcc", "pthread", "vdso"])
        .build()?;
    std::thread::sleep(duration);
    let profile = guard.report().build()?.pprof()?;
    Ok(profile.encode_to_vec())
}

async fn heap_profile(
    State(access): State<ProfilingAccess>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
) -> Response {
    if let Some(refusal) = refused(access, peer) {
        return refusal;
    }
    let Some(ctl) = jemalloc_pprof::PROF_CTL.as_ref() else {
        return problem(
            StatusCode::NOT_IMPLEMENTED,
            "jemalloc heap profiling is not available in this build",
        );
    };
    let mut ctl = ctl.lock().await;
    if !ctl.activated() {
        return problem(StatusCode::CONFLICT, "heap sampling is not active");
    }
    match ctl.dump_pprof() {
        Ok(bytes) => pprof_response(bytes),
        Err(e) => problem(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{bare_spec, http_get, http_get_bytes, TestServer};
    use pprof::protos::Message;

    #[tokio::test]
    async fn cpu_and_heap_profiles_are_pprof_and_bad_durations_are_refused() -> anyhow::Result<()> {
        let access = ProfilingAccess {
            allow_remote: false,
        };
        let server = TestServer::start_with_profiling(bare_spec(), Some(access)).await?;
        let (status, body) =
            http_get_bytes(server.http_addr, "/debug/pprof/profile?seconds=1").await?;
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        let profile = pprof::protos::Profile::decode(body.as_slice())?;
        assert!(!profile.sample_type.is_empty(), "{profile:?}");

        let (status, body) = http_get_bytes(server.http_addr, "/debug/pprof/heap").await?;
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        assert_eq!(&body[..2], &[0x1f, 0x8b], "a gzipped pprof profile");

        for bad in ["seconds=0", "seconds=61", "seconds=abc"] {
            let (status, body) =
                http_get(server.http_addr, &format!("/debug/pprof/profile?{bad}")).await?;
            assert_eq!(status, 400, "{bad}: {body}");
            assert!(body.contains("seconds"), "{bad}: {body}");
        }
        server.shutdown().await
    }

    #[tokio::test]
    async fn profiles_are_not_served_unless_asked_for() -> anyhow::Result<()> {
        let server = TestServer::start(bare_spec()).await?;
        assert_eq!(
            http_get(server.http_addr, "/debug/pprof/heap").await?.0,
            404
        );
        server.shutdown().await
    }

    #[test]
    fn remote_peers_and_addresses_are_refused_unless_allowed() {
        let remote: SocketAddr = "192.0.2.7:40000".parse().expect("addr");
        let local: SocketAddr = "127.0.0.1:40000".parse().expect("addr");
        let strict = ProfilingAccess {
            allow_remote: false,
        };
        let open = ProfilingAccess { allow_remote: true };
        assert_eq!(
            refused(strict, remote).map(|r| r.status()),
            Some(StatusCode::FORBIDDEN)
        );
        assert!(refused(strict, local).is_none());
        assert!(refused(open, remote).is_none());
        assert!(check_address("0.0.0.0:9102".parse().expect("addr"), false).is_err());
        assert!(check_address("0.0.0.0:9102".parse().expect("addr"), true).is_ok());
        assert!(check_address("[::1]:9102".parse().expect("addr"), false).is_ok());
    }
}
