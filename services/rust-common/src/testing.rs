//! Helpers for black-box tests: run a service on system-chosen loopback ports, talk to its
//! HTTP side without an HTTP client dependency, and read the options of its TCP sockets.

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::os::fd::{BorrowedFd, RawFd};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use socket2::SockRef;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::profiling::ProfilingAccess;
use crate::serve::{serve_on, ServiceSpec};

/// A service with no routes or metrics of its own: only what `serve_on` adds.
pub fn bare_spec() -> ServiceSpec {
    ServiceSpec {
        routes: tonic::service::Routes::default(),
        grpc_service_names: Vec::new(),
        registry: prometheus_client::registry::Registry::default(),
        readiness: crate::serve::always_ready(),
        exposition: None,
    }
}

/// A service serving on 127.0.0.1 ports chosen by the system.
pub struct TestServer {
    pub grpc_addr: SocketAddr,
    pub http_addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<anyhow::Result<()>>>,
}

impl TestServer {
    pub async fn start(spec: ServiceSpec) -> anyhow::Result<Self> {
        Self::start_with_profiling(spec, None).await
    }

    /// As [`TestServer::start`], with the profiling endpoints when `profiling` is given.
    pub async fn start_with_profiling(
        spec: ServiceSpec,
        profiling: Option<ProfilingAccess>,
    ) -> anyhow::Result<Self> {
        let grpc = TcpListener::bind("127.0.0.1:0").await?;
        let http = TcpListener::bind("127.0.0.1:0").await?;
        let (grpc_addr, http_addr) = (grpc.local_addr()?, http.local_addr()?);
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(serve_on(spec, grpc, http, profiling, None, async {
            let _ = stopped.await;
        }));
        Ok(Self {
            grpc_addr,
            http_addr,
            stop: Some(stop),
            task: Some(task),
        })
    }

    /// `http://127.0.0.1:PORT` of the gRPC server, for generated clients' `connect`.
    pub fn grpc_url(&self) -> String {
        format!("http://{}", self.grpc_addr)
    }

    /// Asks the server to shut down and waits for it, returning its result.
    pub async fn shutdown(mut self) -> anyhow::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.task.take() {
            Some(task) => task.await?,
            None => Ok(()),
        }
    }
}

/// A service binary run as a child process on loopback ports it chose, killed on drop.
pub struct ServiceProcess {
    pub grpc_addr: SocketAddr,
    pub http_addr: SocketAddr,
    child: Child,
}

impl ServiceProcess {
    /// Starts `program` on `127.0.0.1:0` with these extra arguments and environment, and
    /// returns once it serves. No `TASKLOOM_CONFIG` or `OTEL_*` variable of this process
    /// reaches it: only what `env` sets.
    pub fn start(program: &str, args: &[&str], env: &[(&str, &str)]) -> anyhow::Result<Self> {
        let mut command = Command::new(program);
        command
            .args(["--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0"])
            .args(args)
            .env_remove(crate::config::CONFIG_ENV);
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("OTEL_") {
                command.env_remove(name);
            }
        }
        let mut child = command
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()?;
        let stderr = child.stderr.take().expect("piped");
        let mut lines = BufReader::new(stderr).lines();
        // The "serving" log line names the ports the process bound.
        let serving = loop {
            let Some(line) = lines.next() else {
                let status = child.wait()?;
                anyhow::bail!("{program} exited ({status}) before serving");
            };
            let line: serde_json::Value = serde_json::from_str(&line?)?;
            if line["msg"] == "serving" {
                break line;
            }
        };
        // Keep reading, so the process never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        let addr = |name: &str| -> anyhow::Result<SocketAddr> {
            Ok(serving[name]
                .as_str()
                .ok_or_else(|| anyhow::anyhow!("no {name} in {serving}"))?
                .parse()?)
        };
        Ok(Self {
            grpc_addr: addr("grpc_addr")?,
            http_addr: addr("http_addr")?,
            child,
        })
    }

    /// `http://127.0.0.1:PORT` of the gRPC server, for generated clients' `connect`.
    pub fn grpc_url(&self) -> String {
        format!("http://{}", self.grpc_addr)
    }

    /// Sends SIGTERM and waits for the graceful shutdown to end.
    pub fn terminate(mut self) -> anyhow::Result<ExitStatus> {
        let sent = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()?;
        anyhow::ensure!(sent.success(), "kill -TERM failed: {sent}");
        Ok(self.child.wait()?)
    }
}

impl Drop for ServiceProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// GETs `path` over HTTP/1.1 and returns the status code and body.
pub async fn http_get(addr: SocketAddr, path: &str) -> anyhow::Result<(u16, String)> {
    let (status, body) = http_get_bytes(addr, path).await?;
    Ok((status, String::from_utf8(body)?))
}

/// As [`http_get`], for a binary body.
pub async fn http_get_bytes(addr: SocketAddr, path: &str) -> anyhow::Result<(u16, Vec<u8>)> {
    let response = http_get_with(addr, path, &[]).await?;
    Ok((response.status, response.body))
}

/// A response as [`http_get_with`] reads it.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub status: u16,
    /// The status line and headers, without the blank line.
    pub head: String,
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// The value of the first header `name` (any case), trimmed.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|line| {
            let (field, value) = line.split_once(':')?;
            field.eq_ignore_ascii_case(name).then(|| value.trim())
        })
    }
}

/// GETs `path` over HTTP/1.1 with these extra request headers. Refuses a chunked
/// response, whose body this reader would return with its framing.
pub async fn http_get_with(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> anyhow::Result<HttpResponse> {
    let mut stream = TcpStream::connect(addr).await?;
    let extra: String = headers
        .iter()
        .map(|(name, value)| format!("{name}: {value}\r\n"))
        .collect();
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n{extra}Connection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await?;
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| anyhow::anyhow!("malformed response: {response:?}"))?;
    let head = String::from_utf8_lossy(&response[..split]).into_owned();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("malformed status line: {head:?}"))?;
    let response = HttpResponse {
        status,
        body: response[split + 4..].to_vec(),
        head,
    };
    anyhow::ensure!(
        response
            .header("transfer-encoding")
            .is_none_or(|coding| !coding.eq_ignore_ascii_case("chunked")),
        "chunked responses are not supported here: {}",
        response.head
    );
    Ok(response)
}

/// A test needs `program` and it is not installed. With `require_env` set (`make test` sets
/// it, and CI does through `CI=true`) that is an error, so a missing dependency cannot pass
/// silently; otherwise it says "skipped" on the real stderr (past the test harness's output
/// capture, so it shows) and the caller skips.
pub fn skip_unless_required(test: &str, program: &str, require_env: &str) -> anyhow::Result<()> {
    let set =
        |name: &str| std::env::var(name).is_ok_and(|v| matches!(v.as_str(), "1" | "true" | "yes"));
    anyhow::ensure!(
        !set(require_env) && !set("CI"),
        "{program} is not on PATH and {require_env} or CI is set: install it (`make deps`)"
    );
    let _ = writeln!(
        std::io::stderr(),
        "skipped: {test}: {program} not found (set {require_env}=1 to make this a failure)"
    );
    Ok(())
}

/// One TCP socket of this process, with its `TCP_NODELAY` option as the kernel reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpSocket {
    pub local: SocketAddr,
    pub peer: SocketAddr,
    pub nodelay: bool,
}

/// Every connected TCP socket this process holds (Linux: read from `/proc/self/fd`), so a
/// test can check the options a server set on the sockets it accepted or opened.
pub fn connected_tcp_sockets() -> std::io::Result<Vec<TcpSocket>> {
    let mut sockets = Vec::new();
    for entry in std::fs::read_dir("/proc/self/fd")? {
        let Ok(entry) = entry else { continue };
        let is_socket = std::fs::read_link(entry.path())
            .is_ok_and(|target| target.to_string_lossy().starts_with("socket:"));
        let fd = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<RawFd>().ok());
        let (true, Some(fd)) = (is_socket, fd) else {
            continue;
        };
        // SAFETY: only getsockname/getpeername/getsockopt run on the borrowed descriptor. If
        // another thread closed it meanwhile they fail with EBADF (or read another socket's
        // addresses, which then do not match what the caller looks for); nothing is written.
        let fd = unsafe { BorrowedFd::borrow_raw(fd) };
        let socket = SockRef::from(&fd);
        let local = socket.local_addr().ok().and_then(|a| a.as_socket());
        let peer = socket.peer_addr().ok().and_then(|a| a.as_socket());
        if let (Some(local), Some(peer), Ok(nodelay)) = (local, peer, socket.tcp_nodelay()) {
            sockets.push(TcpSocket {
                local,
                peer,
                nodelay,
            });
        }
    }
    Ok(sockets)
}

/// Waits (up to 10 s, for a loaded machine) until this process holds a connected TCP socket
/// that `matches`, and returns it: the server side of a connection appears once accepted.
pub async fn wait_for_tcp_socket(
    matches: impl Fn(&TcpSocket) -> bool,
) -> anyhow::Result<TcpSocket> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(socket) = connected_tcp_sockets()?.into_iter().find(&matches) {
            return Ok(socket);
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "no such TCP socket in this process"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
