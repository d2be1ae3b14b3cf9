//! The HTTP plumbing every API shares: the accept loop, admission (timeout and concurrency),
//! access logs and request metrics, and bounded body reads.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use crate::config::Limits;
use crate::metrics::Metrics;

/// Which API a path belongs to, for metrics and for the shape of errors the plumbing returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Api {
    Kubernetes,
    Swift,
    Server,
}

impl Api {
    pub fn of(path: &str) -> Api {
        let under = |root: &str| {
            path.strip_prefix(root)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
        };
        if under("/api") || under("/apis") || under("/version") || under("/openapi") {
            Api::Kubernetes
        } else if under("/v1") || under("/auth") {
            Api::Swift
        } else {
            Api::Server
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Api::Kubernetes => "kubernetes",
            Api::Swift => "swift",
            Api::Server => "server",
        }
    }

    /// The answer to a request that ran out of time, in this API's error shape.
    fn timed_out(self) -> Response {
        match self {
            Api::Kubernetes => crate::kube::ApiError::request_timeout().into_response(),
            Api::Swift | Api::Server => (
                axum::http::StatusCode::GATEWAY_TIMEOUT,
                "the request did not complete in time\n",
            )
                .into_response(),
        }
    }
}

/// The peer of a connection, for access logs.
#[derive(Clone, Copy, Debug)]
pub struct Peer(pub SocketAddr);

/// What admission needs: the slots of concurrent requests, their time limit, and whether to log
/// each.
pub struct Admission {
    slots: Semaphore,
    timeout: Duration,
    access_log: bool,
}

impl Admission {
    pub fn new(limits: &Limits, access_log: bool) -> Self {
        Admission {
            slots: Semaphore::new(limits.max_concurrent_requests.max(1)),
            timeout: limits.request_timeout(),
            access_log,
        }
    }
}

/// Runs a request within its time limit, once a slot is free (the wait counts against the
/// limit), then logs it and counts it.
pub async fn admit(
    State((admission, metrics)): State<(Arc<Admission>, Arc<Metrics>)>,
    request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let api = Api::of(request.uri().path());
    let method = request.method().clone();
    let target = request.uri().path().to_owned();
    let peer = request
        .extensions()
        .get::<Peer>()
        .map_or_else(|| "-".to_owned(), |peer| peer.0.to_string());
    let handled = tokio::time::timeout(admission.timeout, async {
        // The semaphore is never closed, so acquiring only fails if it were.
        let _slot = admission.slots.acquire().await;
        next.run(request).await
    })
    .await;
    let response = handled.unwrap_or_else(|_| api.timed_out());
    let took = started.elapsed();
    let code = response.status().as_u16();
    metrics.record_request(api.name(), method.as_str(), code, took);
    if admission.access_log {
        eprintln!(
            "{peer} {method} {target} {code} {:.3}ms",
            took.as_secs_f64() * 1000.0
        );
    }
    response
}

/// Compares secrets without returning early, so the time taken does not reveal how much of a
/// guess was right.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |diff, (x, y)| diff | (x ^ y)) == 0
}

/// Why a request body could not be read.
#[derive(Debug)]
pub enum BodyError {
    /// It is longer than the limit.
    TooLarge { limit: usize },
    /// The connection failed while it was read.
    Failed(String),
}

/// Reads a whole body, refusing one longer than `limit` before buffering more than that.
pub async fn read_body(body: Body, limit: usize) -> Result<Bytes, BodyError> {
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error) if error.downcast_ref::<LengthLimitError>().is_some() => {
            Err(BodyError::TooLarge { limit })
        }
        Err(error) => Err(BodyError::Failed(error.to_string())),
    }
}

/// Serves `app` on `listener`, over TLS when `tls` is given, until `shutdown` completes; then
/// stops accepting, lets requests in flight finish (for up to `grace`), and returns.
///
/// A connection must finish its TLS handshake and send its headers within the header timeout
/// (so slowloris clients are dropped), and connections beyond the limit are closed at once.
///
/// # Errors
///
/// Never for a failed connection (it is logged); only if `grace` runs out with requests still
/// in flight, as [`std::io::ErrorKind::TimedOut`].
pub async fn serve(
    listener: TcpListener,
    app: Router,
    tls: Option<TlsAcceptor>,
    limits: &Limits,
    shutdown: impl Future<Output = ()>,
    grace: Duration,
) -> std::io::Result<()> {
    let graceful = GracefulShutdown::new();
    let connections = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let header_timeout = limits.header_timeout();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors, for one: back off instead of spinning.
                    eprintln!("accept failed: {error}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // A response written in more than one segment would otherwise wait, after its first,
        // for the client's delayed acknowledgement (Nagle's algorithm): tens of milliseconds.
        if let Err(error) = stream.set_nodelay(true) {
            eprintln!("{peer} cannot disable Nagle's algorithm: {error}");
        }
        let Ok(permit) = connections.clone().try_acquire_owned() else {
            eprintln!(
                "{peer} refused: {} connections open",
                limits.max_connections
            );
            continue;
        };
        let connection = Connection {
            app: app.clone(),
            peer,
            header_timeout,
            watcher: graceful.watcher(),
        };
        let tls = tls.clone();
        tokio::spawn(async move {
            let served = match tls {
                None => connection.serve(stream).await,
                Some(tls) => match tokio::time::timeout(header_timeout, tls.accept(stream)).await {
                    Ok(Ok(stream)) => connection.serve(stream).await,
                    Ok(Err(error)) => Err(format!("TLS handshake failed: {error}")),
                    Err(_) => Err("TLS handshake timed out".to_owned()),
                },
            };
            if let Err(error) = served {
                eprintln!("{peer} connection ended: {error}");
            }
            drop(permit);
        });
    }
    drop(listener);
    tokio::time::timeout(grace, graceful.shutdown())
        .await
        .map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "requests were still in flight when the shutdown grace period ended",
            )
        })
}

/// One accepted connection, before its transport (plain or TLS) is known.
struct Connection {
    app: Router,
    peer: SocketAddr,
    header_timeout: Duration,
    watcher: Watcher,
}

impl Connection {
    async fn serve<I>(self, io: I) -> Result<(), String>
    where
        I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let (app, peer) = (self.app, self.peer);
        let service = hyper::service::service_fn(move |mut request: hyper::Request<_>| {
            request.extensions_mut().insert(Peer(peer));
            app.clone().oneshot(request.map(Body::new))
        });
        let connection = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(self.header_timeout)
            .serve_connection(TokioIo::new(io), service);
        self.watcher
            .watch(connection)
            .await
            .map_err(|error| error.to_string())
    }
}
