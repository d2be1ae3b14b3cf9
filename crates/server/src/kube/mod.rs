//! The Kubernetes-style API: discovery under `/api` and `/apis`, and objects of the served
//! kinds, per namespace or across namespaces.

mod body;
mod discovery;
mod dry_run;
mod kinds;
mod list;
mod object;
mod openapi;
mod patch;
mod protobuf;
mod representation;
mod splice;
mod status;
mod watch;

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::{Json, Router};
use serde_json::Value;

pub use status::ApiError;

use crate::backend::{Backend, Condition, Write};
use crate::config::Config;
use crate::metrics::Metrics;
use kinds::Kinds;
use list::ListParams;
use object::Target;
use representation::Representation;
use splice::JsonBody;

/// What every Kubernetes handler shares.
pub struct Kube<B> {
    backend: B,
    kinds: Kinds,
    tokens: Vec<String>,
    max_body_bytes: usize,
    metrics: Arc<Metrics>,
    /// Turns true when the server shuts down: open watches end then.
    stop: tokio::sync::watch::Receiver<bool>,
}

type Shared<B> = Arc<Kube<B>>;

/// The writes a POST to a collection makes, made without a request: for loading many objects in
/// batches (`revkv bench http`) exactly as the API would store them.
pub struct Creator {
    kinds: Kinds,
}

impl Creator {
    pub fn new(config: &Config) -> Self {
        Creator {
            kinds: Kinds::new(&config.kinds),
        }
    }

    /// What a POST of the JSON `body` to the collection of `plural` in `group`/`version` (the
    /// core group is `""`), in `namespace`, commits: the condition that its key is absent, and
    /// the write of the completed object with its labels and fields.
    pub fn create(
        &self,
        (group, version, plural): (&str, &str, &str),
        namespace: Option<&str>,
        body: Value,
    ) -> Result<(Condition, Write), ApiError> {
        let kind = self
            .kinds
            .find(group, version, plural)
            .ok_or_else(|| ApiError::no_route(plural))?;
        let creation = object::creation(kind, namespace, body)?;
        Ok((Condition::Absent(creation.key), creation.write))
    }
}

pub fn routes<B: Backend>(
    backend: B,
    config: &Config,
    metrics: Arc<Metrics>,
    stop: tokio::sync::watch::Receiver<bool>,
) -> Router {
    let kube = Arc::new(Kube {
        backend,
        kinds: Kinds::new(&config.kinds),
        tokens: config.tokens.clone(),
        max_body_bytes: config.limits.max_body_bytes,
        metrics,
        stop,
    });
    // `/version` is public, as on an apiserver: kubectl's version dispatcher asks for it
    // before it reads any credentials.
    let public = Router::new().route("/version", get(|| async { Json(discovery::version()) }));
    Router::new()
        .route("/api", get(|| async { Json(discovery::api_versions()) }))
        .route("/apis", get(api_groups::<B>))
        .route("/api/v1", get(core_resources::<B>))
        .route("/apis/{group}/{version}", get(group_resources::<B>))
        .route("/openapi/v3", get(openapi_root::<B>))
        .route("/openapi/v3/{*path}", get(openapi_group_version::<B>))
        .route("/api/v1/{*path}", any(objects::<B>))
        .route("/apis/{group}/{version}/{*path}", any(objects::<B>))
        .layer(middleware::from_fn_with_state(
            kube.clone(),
            authenticate::<B>,
        ))
        .with_state(kube)
        .merge(public)
}

/// Refuses a request without one of the configured bearer tokens (when any are configured).
async fn authenticate<B: Backend>(
    State(kube): State<Shared<B>>,
    request: Request,
    next: Next,
) -> Response {
    if kube.tokens.is_empty() {
        return next.run(request).await;
    }
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .map(str::trim);
    let known = presented.is_some_and(|presented| {
        kube.tokens
            .iter()
            .any(|token| crate::http::constant_time_eq(token.as_bytes(), presented.as_bytes()))
    });
    if known {
        next.run(request).await
    } else {
        ApiError::unauthorized().into_response()
    }
}

async fn api_groups<B: Backend>(State(kube): State<Shared<B>>) -> Json<Value> {
    Json(discovery::api_groups(&kube.kinds))
}

async fn core_resources<B: Backend>(State(kube): State<Shared<B>>) -> Response {
    resources(&kube, "", "v1")
}

async fn group_resources<B: Backend>(
    State(kube): State<Shared<B>>,
    Path((group, version)): Path<(String, String)>,
) -> Response {
    resources(&kube, &group, &version)
}

fn resources<B>(kube: &Kube<B>, group: &str, version: &str) -> Response {
    match discovery::api_resources(&kube.kinds, group, version) {
        Some(list) => Json(list).into_response(),
        None => ApiError::no_route(&kinds::group_version(group, version)).into_response(),
    }
}

async fn openapi_root<B: Backend>(State(kube): State<Shared<B>>) -> Json<Value> {
    Json(openapi::root(&kube.kinds))
}

async fn openapi_group_version<B: Backend>(
    State(kube): State<Shared<B>>,
    Path(path): Path<String>,
) -> Response {
    match openapi::group_version(&kube.kinds, &path) {
        Some(document) => Json(document).into_response(),
        None => ApiError::no_route(&path).into_response(),
    }
}

/// What a request names after `/api/v1` or `/apis/G/V`.
struct ObjectRequest<'a> {
    group: &'a str,
    version: &'a str,
    path: &'a str,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
}

/// Objects of the core group (`/api/v1/...`, no `group` or `version` in the route) or of a
/// named one (`/apis/{group}/{version}/...`).
async fn objects<B: Backend>(
    State(kube): State<Shared<B>>,
    Path(route): Path<HashMap<String, String>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let field = |name: &str, default: &'static str| route.get(name).map_or(default, String::as_str);
    let request = ObjectRequest {
        group: field("group", ""),
        version: field("version", "v1"),
        path: field("path", ""),
        method,
        uri,
        headers,
        body,
    };
    dispatch(&kube, request)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

/// Splits the path into a kind, an optional namespace and an optional name, and runs the
/// method on them: `<plural>[/<name>]` or `namespaces/<ns>/<plural>[/<name>]`.
async fn dispatch<B: Backend>(
    kube: &Kube<B>,
    request: ObjectRequest<'_>,
) -> Result<Response, ApiError> {
    let segments: Vec<&str> = request.path.split('/').collect();
    let (namespace, plural, name) = match segments.as_slice() {
        [plural] => (None, *plural, None),
        ["namespaces", namespace, plural] => (Some(*namespace), *plural, None),
        ["namespaces", namespace, plural, name] => (Some(*namespace), *plural, Some(*name)),
        [plural, name] => (None, *plural, Some(*name)),
        _ => return Err(ApiError::no_route(request.uri.path())),
    };
    let kind = kube
        .kinds
        .find(request.group, request.version, plural)
        .ok_or_else(|| ApiError::no_route(request.uri.path()))?;
    if let Some(namespace) = namespace {
        object::check_name(namespace, 63)?;
    }
    // A namespaced kind without a namespace is the list across namespaces; a cluster-scoped
    // kind under a namespace does not exist.
    if namespace.is_some() && !kind.namespaced {
        return Err(ApiError::no_route(request.uri.path()));
    }
    let representation = representation::negotiate(&request.headers)?;
    let json = |code: StatusCode, value: Value| (code, Json(value)).into_response();
    let single = |object: Value| match representation {
        Representation::Json => object,
        Representation::Table(version) => {
            // A dry-run create's object has no resourceVersion for the Table to carry.
            let metadata = match object["metadata"].get("resourceVersion") {
                Some(revision) => serde_json::json!({"resourceVersion": revision}),
                None => serde_json::json!({}),
            };
            representation::table(version, metadata, &[object])
        }
    };
    match (request.method, name) {
        (Method::GET, None) => {
            let params: ListParams = axum::extract::Query::try_from_uri(&request.uri)
                .map_err(|error| ApiError::bad_request(error.body_text()))?
                .0;
            if list::flag(params.watch.as_deref()) {
                return watch::watch(kube, kind, namespace, &params).await;
            }
            list::list(kube, kind, namespace, &params, representation).await
        }
        (Method::POST, None) => {
            if kind.namespaced && namespace.is_none() {
                return Err(ApiError::method_not_allowed(
                    "create namespaced objects under namespaces/<namespace>/",
                ));
            }
            let body = body::object(kube, &request.headers, request.body).await?;
            let mode = dry_run::from_query(&request.uri, "CreateOptions")?;
            let created = object::create(kube, kind, namespace, body, mode).await?;
            Ok(json(StatusCode::CREATED, single(created)))
        }
        (method, Some(name)) => {
            if kind.namespaced && namespace.is_none() {
                return Err(ApiError::no_route(request.uri.path()));
            }
            let target = Target {
                kind,
                namespace,
                name,
            };
            match method {
                Method::GET => {
                    let entry = object::get(kube, &target).await?;
                    Ok(match representation {
                        Representation::Json => {
                            JsonBody(splice::object(&entry, entry.mod_revision)?).into_response()
                        }
                        Representation::Table(_) => {
                            json(StatusCode::OK, single(object::stored_object(&entry)?))
                        }
                    })
                }
                Method::PUT => {
                    let body = body::object(kube, &request.headers, request.body).await?;
                    let mode = dry_run::from_query(&request.uri, "UpdateOptions")?;
                    let replaced = object::replace(kube, &target, body, mode).await?;
                    Ok(json(StatusCode::OK, single(replaced)))
                }
                Method::PATCH => {
                    let patch = body::patch(kube, &request.headers, request.body, kind).await?;
                    let mode = dry_run::from_query(&request.uri, "PatchOptions")?;
                    let limit = kube.max_body_bytes;
                    let patched =
                        object::update(kube, &target, mode, |stored| patch.apply(stored, limit))
                            .await?;
                    Ok(json(StatusCode::OK, single(patched)))
                }
                Method::DELETE => {
                    // As on the apiserver: the options are the body's, or without a body the
                    // query's.
                    let options =
                        body::delete_options(kube, &request.headers, request.body).await?;
                    let mode = match options {
                        Some(options) => dry_run::from_delete_options(&options)?,
                        None => dry_run::from_query(&request.uri, "DeleteOptions")?,
                    };
                    Ok(JsonBody(object::delete(kube, &target, mode).await?).into_response())
                }
                other => Err(ApiError::method_not_allowed(format!(
                    "{other} is not supported on an object"
                ))),
            }
        }
        (other, None) => Err(ApiError::method_not_allowed(format!(
            "{other} is not supported on a collection"
        ))),
    }
}
