//! `watch=1`: a stream of `{"type","object"}` lines, each ended by `\n` (the Python client
//! splits on newlines), from a list's state or a resourceVersion on, with bookmarks and the
//! `k8s.io/initial-events-end` bookmark of `sendInitialEvents`.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use revkv::selector::{FieldSelector, LabelSelector};
use revkv::{Entry, EventKind, Notification, Revision};
use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::kinds::Kind;
use super::list::{flag, parse_revision, selectors, ListParams};
use super::splice;
use super::status::ApiError;
use super::Kube;
use crate::backend::{Backend, ListRequest, StoreError, WatchRequest};

/// How often an idle watch that allows bookmarks gets one, as the apiserver's watch cache.
const BOOKMARK_INTERVAL: Duration = Duration::from_secs(60);
/// A watch without `timeoutSeconds` ends after this long; clients then watch again.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1800);
/// Lines a watch buffers for a slow reader before it waits for it.
const LINES: usize = 64;

/// The response body: lines from the task that produces them.
struct Lines(mpsc::Receiver<Bytes>);

impl futures_core::Stream for Lines {
    type Item = Result<Bytes, Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.0.poll_recv(cx).map(|line| line.map(Ok))
    }
}

fn line(kind: &str, object: &Value) -> Bytes {
    let mut text = json!({ "type": kind, "object": object }).to_string();
    text.push('\n');
    Bytes::from(text)
}

/// An event of the object `entry` holds at `revision`: the line [`line`] writes for it, with
/// the object spliced from its stored bytes.
fn object_line(kind: &str, entry: &Entry, revision: Revision) -> Result<Bytes, ApiError> {
    let mut text = Vec::with_capacity(entry.value.len() + 64);
    text.extend_from_slice(b"{\"object\":");
    splice::write(&mut text, entry, revision)?;
    text.extend_from_slice(b",\"type\":");
    splice::encode(&mut text, kind)?;
    text.extend_from_slice(b"}\n");
    Ok(Bytes::from(text))
}

fn bookmark(kind: &Kind, revision: Revision, initial_events_end: bool) -> Bytes {
    let mut metadata = json!({ "resourceVersion": revision.to_string() });
    if initial_events_end {
        metadata["annotations"] = json!({ "k8s.io/initial-events-end": "true" });
    }
    let object = json!({
        "kind": kind.kind,
        "apiVersion": kind.api_version(),
        "metadata": metadata,
    });
    line("BOOKMARK", &object)
}

/// What the watch's filters let through; a previous entry they reject makes a put an ADDED.
struct Filter {
    labels: Option<LabelSelector>,
    fields: Option<FieldSelector>,
}

impl Filter {
    fn matches(&self, entry: &Entry) -> bool {
        self.labels
            .as_ref()
            .is_none_or(|s| s.matches(&entry.labels))
            && self
                .fields
                .as_ref()
                .is_none_or(|s| s.matches(&entry.fields))
    }
}

/// Starts a watch of `kind` in one namespace or all, and returns its streaming response.
pub async fn watch<B: Backend>(
    kube: &Kube<B>,
    kind: &Kind,
    namespace: Option<&str>,
    params: &ListParams,
) -> Result<Response, ApiError> {
    let initial_events = flag(params.send_initial_events.as_deref());
    let bookmarks = flag(params.allow_watch_bookmarks.as_deref());
    let rvm = params
        .resource_version_match
        .as_deref()
        .filter(|m| !m.is_empty());
    match (initial_events, rvm) {
        (true, Some("NotOlderThan")) | (false, None) => {}
        (true, _) => {
            return Err(ApiError::invalid(
                "sendInitialEvents requires resourceVersionMatch=NotOlderThan",
            ))
        }
        (false, Some(_)) => {
            return Err(ApiError::invalid(
                "resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided",
            ))
        }
    }
    let version = match params.resource_version.as_deref().filter(|v| !v.is_empty()) {
        Some(text) => parse_revision(text)?,
        None => 0,
    };
    let timeout = match params.timeout_seconds.as_deref() {
        Some(text) => Duration::from_secs(
            text.parse()
                .map_err(|_| ApiError::bad_request(format!("invalid timeoutSeconds: {text:?}")))?,
        ),
        None => DEFAULT_TIMEOUT,
    };
    let (labels, fields) = selectors(params)?;
    let prefix = kind.prefix(namespace);

    // Unset or "0", or sendInitialEvents: the current state as ADDED events first.
    let mut initial = Vec::new();
    let start = if initial_events || version == 0 {
        let current = kube.backend.revisions().current.get();
        if version > current {
            return Err(ApiError::too_large_resource_version(version, current));
        }
        let mut request = ListRequest {
            prefix: prefix.clone(),
            labels: labels.clone(),
            fields: fields.clone(),
            limit: kube.backend.max_page_size(),
            ..ListRequest::default()
        };
        loop {
            let page = kube.backend.list(request.clone()).await?;
            for entry in &page.items {
                initial.push(object_line("ADDED", entry, entry.mod_revision)?);
            }
            match page.continue_token {
                Some(token) => request.continue_token = Some(token),
                None => break page.revision,
            }
        }
    } else {
        Revision::new(version)
    };
    let opened = kube
        .backend
        .watch(WatchRequest {
            prefix,
            labels: labels.clone(),
            fields: fields.clone(),
            start: Some(start.next()),
            progress_interval: bookmarks.then_some(BOOKMARK_INTERVAL),
        })
        .await;
    let feed = match opened {
        Ok(feed) => Ok(feed),
        Err(StoreError::Expired { compacted, .. }) => {
            Err(ApiError::expired_watch(start.get(), compacted.get()))
        }
        Err(error) => return Err(error.into()),
    };
    let (lines, body) = mpsc::channel(LINES);
    let stream = Stream {
        kind: kind.clone(),
        filter: Filter { labels, fields },
        bookmarks,
        lines,
        stop: kube.stop.clone(),
        watchers: kube.metrics.clone(),
    };
    let initial_end = (initial_events && bookmarks).then_some(start);
    tokio::spawn(stream.run(initial, initial_end, feed, timeout));
    let mut response = (StatusCode::OK, Body::from_stream(Lines(body))).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    Ok(response)
}

/// The task that writes one watch's lines.
struct Stream {
    kind: Kind,
    filter: Filter,
    bookmarks: bool,
    lines: mpsc::Sender<Bytes>,
    stop: tokio::sync::watch::Receiver<bool>,
    watchers: std::sync::Arc<crate::metrics::Metrics>,
}

impl Stream {
    async fn run(
        mut self,
        initial: Vec<Bytes>,
        initial_end: Option<Revision>,
        feed: Result<mpsc::Receiver<Result<Notification, StoreError>>, ApiError>,
        timeout: Duration,
    ) {
        let _watching = self.watchers.watching();
        for text in initial {
            if self.lines.send(text).await.is_err() {
                return;
            }
        }
        if let Some(revision) = initial_end {
            if self
                .lines
                .send(bookmark(&self.kind, revision, true))
                .await
                .is_err()
            {
                return;
            }
        }
        let mut feed = match feed {
            Ok(feed) => feed,
            Err(error) => {
                let _ = self.lines.send(line("ERROR", &error.status())).await;
                return;
            }
        };
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        loop {
            let notification = tokio::select! {
                notification = feed.recv() => notification,
                () = &mut deadline => return,
                _ = self.stop.changed() => return,
                () = self.lines.closed() => return,
            };
            let lines = match notification {
                None => return,
                Some(Ok(notification)) => self.lines_of(notification),
                Some(Err(StoreError::Expired {
                    requested,
                    compacted,
                    ..
                })) => {
                    let error = ApiError::expired_watch(requested.get(), compacted.get());
                    vec![line("ERROR", &error.status())]
                }
                Some(Err(error)) => vec![line("ERROR", &ApiError::from(error).status())],
            };
            for text in lines {
                if self.lines.send(text).await.is_err() {
                    return;
                }
            }
        }
    }

    /// A notification as watch events: a put is ADDED, or MODIFIED when the watcher saw the
    /// object before; a delete (or a put that leaves the selectors) is DELETED with the
    /// object's last state at the delete's revision.
    fn lines_of(&self, notification: Notification) -> Vec<Bytes> {
        match notification {
            Notification::Changes { events, .. } => events
                .iter()
                .filter_map(|event| {
                    let seen_before = event.prev.as_ref().is_some_and(|p| self.filter.matches(p));
                    let (kind, entry, revision) = match (event.kind, &event.entry, &event.prev) {
                        (EventKind::Put, Some(entry), _) => {
                            let kind = if seen_before { "MODIFIED" } else { "ADDED" };
                            (kind, entry, entry.mod_revision)
                        }
                        (EventKind::Delete, _, Some(prev)) => ("DELETED", prev, event.revision),
                        _ => return None,
                    };
                    let text = object_line(kind, entry, revision)
                        .unwrap_or_else(|error| line(kind, &error.status()));
                    Some(text)
                })
                .collect(),
            Notification::Progress { revision } if self.bookmarks => {
                vec![bookmark(&self.kind, revision, false)]
            }
            _ => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_line_is_the_bytes_of_encoding_it_as_a_value() {
        let object = json!({"kind": "ConfigMap", "metadata": {"name": "a", "uid": "ü\""}});
        let entry = splice::tests::entry(serde_json::to_vec(&object).expect("JSON"));
        let revision = Revision::new(12);
        let reencoded = splice::tests::reencoded(&entry.value, revision);
        let value: Value = serde_json::from_slice(&reencoded).expect("JSON");
        for kind in ["ADDED", "MODIFIED", "DELETED"] {
            let spliced = object_line(kind, &entry, revision).expect("splices");
            assert_eq!(spliced, line(kind, &value));
        }
    }
}
