//! revkv's HTTP server: a Kubernetes-style API (`/api`, `/apis`) and a Swift-style API
//! (`/auth/v1.0`, `/v1/AUTH_<account>`) whose lists kubectl, the Python `kubernetes` client and
//! python-swiftclient page through unmodified, with every page read from one snapshot and an
//! exact remaining count.
//!
//! The APIs talk to storage only through [`Backend`], which [`revkv::Db`] implements;
//! [`serve`] runs them with limits and a graceful shutdown.

#![deny(unsafe_code)]

mod backend;
mod config;
mod http;
mod kube;
mod metrics;
mod swift;
mod time;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;

pub use backend::{Backend, Condition, ListRequest, Revisions, StoreError, WatchRequest, Write};
pub use config::{Config, ConfigError, KindConfig, Limits, SwiftAccount, TlsConfig};
pub use kube::{ApiError, Creator};

use metrics::Metrics;

/// How long a shutdown waits for requests in flight.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// Every route of the server over `backend`, with admission (timeout, bounded concurrency),
/// access logs and metrics on each; watches end when `stop` turns true.
fn router<B: Backend>(
    backend: B,
    config: &Config,
    stop: tokio::sync::watch::Receiver<bool>,
) -> Router {
    let metrics = Arc::new(Metrics::default());
    let admission = Arc::new(http::Admission::new(&config.limits, !config.quiet));
    let scrape = {
        let backend = backend.clone();
        let metrics = metrics.clone();
        move |State(()): State<()>| async move {
            (
                [(
                    header::CONTENT_TYPE,
                    "text/plain; version=0.0.4; charset=utf-8",
                )],
                metrics.render(backend.revisions()),
            )
                .into_response()
        }
    };
    Router::new()
        .route("/metrics", get(scrape))
        .merge(kube::routes(backend.clone(), config, metrics.clone(), stop))
        .merge(swift::routes(backend, config))
        .layer(axum::middleware::from_fn_with_state(
            (admission, metrics),
            http::admit,
        ))
}

/// Lower-case hexadecimal, for tokens, uids and ETags.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// Serves both APIs and `/metrics` over `backend` on `listener` until `shutdown` completes,
/// then ends open watches, lets requests in flight finish and returns. Connections must send
/// their headers in time, and beyond the configured number are closed at once.
///
/// # Errors
///
/// When the TLS certificate or key cannot be loaded, or requests are still in flight
/// [`SHUTDOWN_GRACE`] after `shutdown`.
pub async fn serve<B: Backend>(
    listener: TcpListener,
    backend: B,
    config: &Config,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let tls = match &config.tls {
        Some(tls) => Some(tls.acceptor().map_err(std::io::Error::other)?),
        None => None,
    };
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let app = router(backend, config, stopped);
    // Watches stream until they time out, so they are ended first: graceful shutdown then
    // waits only for ordinary requests.
    let shutdown = async move {
        shutdown.await;
        let _ = stop.send(true);
    };
    http::serve(listener, app, tls, &config.limits, shutdown, SHUTDOWN_GRACE).await
}
