//! The server side of the control socket: accepts local connections, reads
//! one request each, and hands it to the service's run loop.

use std::io;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot};
use tokio::task::{JoinHandle, JoinSet};

use super::protocol::{MAX_REQUEST, Request, Response};
use crate::supervise::Watch;

/// Connections served at once; more wait in the listen backlog.
const MAX_CONNECTIONS: usize = 16;

/// How long a client may take to send its request.
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// How long the service may take to answer (a reload opens zone files, a
/// status probes the upstreams).
const ANSWER_TIMEOUT: Duration = Duration::from_secs(60);

/// A request and where its answer goes.
pub(crate) type Call = (Request, oneshot::Sender<Response>);

/// The listening control socket. Dropping it stops it and removes the file.
#[derive(Debug)]
pub(crate) struct ControlServer {
    path: PathBuf,
    task: JoinHandle<()>,
    ended: Watch,
}

impl ControlServer {
    /// Listens on `path` (mode 0600; a stale socket left by a crash is
    /// replaced) and sends every request to `calls`. `debug` requests are
    /// refused unless `test_hooks`.
    pub(crate) fn bind(
        path: &Path,
        calls: mpsc::Sender<Call>,
        test_hooks: bool,
    ) -> io::Result<Self> {
        match std::fs::symlink_metadata(path) {
            Ok(meta) if meta.file_type().is_socket() => {
                tracing::debug!(path = %path.display(), "replacing a stale control socket");
                std::fs::remove_file(path)?;
            }
            Ok(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!("{} exists and is not a socket", path.display()),
                ));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        // Bound under a temporary name, restricted, then renamed: the final
        // name never exists with wider permissions.
        let staging = path.with_extension(format!("{}.tmp", std::process::id()));
        let _ = std::fs::remove_file(&staging);
        let listener = UnixListener::bind(&staging)?;
        let placed = std::fs::set_permissions(&staging, std::fs::Permissions::from_mode(0o600))
            .and_then(|()| std::fs::rename(&staging, path));
        if let Err(error) = placed {
            let _ = std::fs::remove_file(&staging);
            return Err(error);
        }
        tracing::info!(path = %path.display(), "control socket listening");
        let ended = Watch::new();
        let task = tokio::spawn(ended.watched(serve(listener, calls, test_hooks)));
        Ok(Self {
            path: path.to_owned(),
            task,
            ended,
        })
    }

    /// Completes once the accept task has ended.
    pub(crate) fn ended(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        self.ended.ended()
    }
}

impl Drop for ControlServer {
    fn drop(&mut self) {
        self.task.abort();
        if let Err(error) = std::fs::remove_file(&self.path)
            && error.kind() != io::ErrorKind::NotFound
        {
            tracing::warn!(path = %self.path.display(), %error, "cannot remove the control socket");
        }
    }
}

async fn serve(listener: UnixListener, calls: mpsc::Sender<Call>, test_hooks: bool) {
    let mut connections = JoinSet::new();
    loop {
        while connections.try_join_next().is_some() {}
        if connections.len() >= MAX_CONNECTIONS {
            connections.join_next().await;
            continue;
        }
        match listener.accept().await {
            Ok((stream, _)) => {
                connections.spawn(answer(stream, calls.clone(), test_hooks));
            }
            Err(error) => {
                tracing::warn!(%error, "control socket: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn answer(stream: UnixStream, calls: mpsc::Sender<Call>, test_hooks: bool) {
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    let mut reader = BufReader::new(read.take(MAX_REQUEST as u64));
    let response = match tokio::time::timeout(READ_TIMEOUT, reader.read_line(&mut line)).await {
        Err(_) => Response::error("no request within 5 s"),
        Ok(Err(error)) => Response::error(format!("cannot read the request: {error}")),
        Ok(Ok(_)) if !line.ends_with('\n') => Response::error(format!(
            "a request is one JSON line of at most {MAX_REQUEST} bytes"
        )),
        Ok(Ok(_)) => match serde_json::from_str::<Request>(&line) {
            Err(error) => Response::error(format!("bad request: {error}")),
            Ok(Request::Debug { .. }) if !test_hooks => {
                Response::error("debug commands need KADNS_TEST_HOOKS=1 in the node's environment")
            }
            Ok(request) => call(&calls, request).await,
        },
    };
    let mut bytes = serde_json::to_vec(&response).unwrap_or_else(|_| b"{\"ok\":false}".to_vec());
    bytes.push(b'\n');
    let _ = tokio::time::timeout(READ_TIMEOUT, write.write_all(&bytes)).await;
}

async fn call(calls: &mpsc::Sender<Call>, request: Request) -> Response {
    let (reply, answer) = oneshot::channel();
    if calls.send((request, reply)).await.is_err() {
        return Response::error("the node is shutting down");
    }
    match tokio::time::timeout(ANSWER_TIMEOUT, answer).await {
        Ok(Ok(response)) => response,
        Ok(Err(_)) => Response::error("the node is shutting down"),
        Err(_) => Response::error("the node did not answer within 60 s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::client::request;

    #[tokio::test]
    async fn a_stale_socket_is_replaced_mode_0600_and_removed_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("control");
        // A crashed node's socket: a socket file nobody listens on.
        drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
        let (calls, mut requests) = mpsc::channel::<Call>(4);
        let server = ControlServer::bind(&path, calls, false).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        tokio::spawn(async move {
            while let Some((request, reply)) = requests.recv().await {
                let _ = reply.send(Response::ok(format!("{request:?}")));
            }
        });
        let p = path.clone();
        let (status, debug) = tokio::task::spawn_blocking(move || {
            let t = Duration::from_secs(10);
            (
                request(&p, &Request::Status, t).unwrap(),
                request(
                    &p,
                    &Request::Debug {
                        action: "kill-event-loop".into(),
                    },
                    t,
                )
                .unwrap(),
            )
        })
        .await
        .unwrap();
        assert!(status.ok, "{status:?}");
        assert_eq!(status.result, Some(serde_json::json!("Status")));
        assert!(!debug.ok, "debug refused without the opt-in");
        assert!(debug.error.unwrap().contains("KADNS_TEST_HOOKS"));
        drop(server);
        assert!(!path.exists(), "removed at shutdown");
    }
}
