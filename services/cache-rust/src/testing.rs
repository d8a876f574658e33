//! Test support: a throwaway `redis-server` on a free loopback port, in a temp dir, with
//! persistence off. Used by the unit tests and the black-box tests in `tests/`.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use taskloom_common::testing::skip_unless_required;
use tempfile::TempDir;

/// Set (to 1) where Redis must be there: `make test` and CI. Then a missing `redis-server`
/// fails the tests that need it instead of skipping them.
pub const REQUIRE_REDIS_ENV: &str = "TASKLOOM_REQUIRE_REDIS";

const START_ATTEMPTS: usize = 3;
const READY_WITHIN: Duration = Duration::from_secs(10);

/// A running `redis-server`, killed on drop.
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    _dir: TempDir,
}

impl RedisServer {
    /// Starts one for `test`. `Ok(None)` (after printing "skipped") when `redis-server` is
    /// not on PATH and [`REQUIRE_REDIS_ENV`] is not set, so callers can skip; an error when it
    /// is, and on any other failure.
    pub async fn start(test: &str) -> anyhow::Result<Option<Self>> {
        let mut last_error = None;
        for _ in 0..START_ATTEMPTS {
            match Self::start_once().await {
                Ok(server) => return Ok(Some(server)),
                Err(StartError::NotInstalled) => {
                    skip_unless_required(test, "redis-server", REQUIRE_REDIS_ENV)?;
                    return Ok(None);
                }
                // Most likely another process took the port between probe and bind.
                Err(StartError::Failed(e)) => last_error = Some(e),
            }
        }
        Err(last_error.unwrap_or_else(|| anyhow::anyhow!("redis-server did not start")))
    }

    async fn start_once() -> Result<Self, StartError> {
        let dir = tempfile::tempdir().context("temp dir")?;
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .context("probe a free port")?
            .port();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let child = match child {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(StartError::NotInstalled)
            }
            Err(e) => return Err(anyhow::Error::new(e).context("spawn redis-server").into()),
        };
        let mut server = Self {
            child: Some(child),
            port,
            _dir: dir,
        };
        server.wait_ready().await?;
        Ok(server)
    }

    async fn wait_ready(&mut self) -> anyhow::Result<()> {
        let client = redis::Client::open(self.url())?;
        let deadline = Instant::now() + READY_WITHIN;
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Some(status) = child.try_wait()? {
                    anyhow::bail!("redis-server exited early: {status}");
                }
            }
            if let Ok(mut conn) = client.get_multiplexed_async_connection().await {
                let pong: redis::RedisResult<String> =
                    redis::cmd("PING").query_async(&mut conn).await;
                if pong.is_ok() {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                anyhow::bail!("redis-server not answering PING within {READY_WITHIN:?}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// A plain connection for looking behind the cache's back.
    pub async fn connection(&self) -> anyhow::Result<redis::aio::MultiplexedConnection> {
        Ok(redis::Client::open(self.url())?
            .get_multiplexed_async_connection()
            .await?)
    }

    /// Kills the server (the "Redis is down" case); the port stays unused.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

enum StartError {
    NotInstalled,
    Failed(anyhow::Error),
}

impl From<anyhow::Error> for StartError {
    fn from(e: anyhow::Error) -> Self {
        Self::Failed(e)
    }
}

/// A loopback URL where no Redis listens (a free port, probed and released).
pub fn unused_redis_url() -> anyhow::Result<String> {
    let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    Ok(format!("redis://127.0.0.1:{port}/0"))
}
