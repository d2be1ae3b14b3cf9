//! revkv's HTTP server: a Kubernetes-style API (`/api`, `/apis`) and a Swift-style API
//! (`/auth/v1.0`, `/v1/AUTH_<account>`) whose lists kubectl, the Python `kubernetes` client and
//! python-swiftclient page through unmodified, with every page read from one snapshot and an
//! exact remaining count.
//!
//! The APIs talk to storage only through [`Backend`], which [`revkv::Db`] implements.
//! [`router`] builds the routes; [`serve`] runs them with limits and a graceful shutdown.

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

pub use backend::{Backend, Condition, ListRequest, Revisions, StoreError, Write};
pub use config::{Config, ConfigError, KindConfig, Limits, SwiftAccount, TlsConfig};

use metrics::Metrics;

/// How long a shutdown waits for requests in flight.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// Every route of the server over `backend`, with admission (timeout, bounded concurrency),
/// access logs and metrics on each.
pub fn router<B: Backend>(backend: B, config: &Config) -> Router {
    let metrics = Arc::new(Metrics::default());
    let admission = Arc::new(http::Admission::new(&config.limits));
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
        .merge(kube::routes(backend.clone(), config, metrics.clone()))
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

/// Serves [`router`] on `listener` until `shutdown` completes; see [`http::serve`] for the
/// connection limits and the graceful end.
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
    let app = router(backend, config);
    http::serve(listener, app, tls, &config.limits, shutdown, SHUTDOWN_GRACE).await
}
