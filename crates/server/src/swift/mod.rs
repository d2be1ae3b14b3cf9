//! The Swift-style API: TempAuth at `/auth/v1.0`, then accounts, containers and objects under
//! `/v1/AUTH_<account>`, with listings whose counts are exact at their revision.

mod auth;
mod error;
mod listing;
mod store;

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::Router;
use md5::{Digest, Md5};
use serde_json::json;

use crate::backend::Backend;
use crate::config::Config;
use crate::http::read_body;
use crate::time::Instant;
use auth::Sessions;
use error::SwiftError;
use listing::{Listing, ListingParams};
use store::{Account, ObjectRecord, SwiftStore};

/// The longest object name, as Swift's `MAX_OBJECT_NAME_LENGTH`.
const MAX_OBJECT_NAME: usize = 1024;
/// The longest container name, as Swift's `MAX_CONTAINER_NAME_LENGTH`.
const MAX_CONTAINER_NAME: usize = 256;

struct Swift<B> {
    backend: B,
    sessions: Sessions,
    scheme: &'static str,
    max_object_bytes: usize,
}

type Shared<B> = Arc<Swift<B>>;

pub fn routes<B: Backend>(backend: B, config: &Config) -> Router {
    let swift = Arc::new(Swift {
        backend,
        sessions: Sessions::new(config.swift_accounts.clone()),
        scheme: if config.tls.is_some() {
            "https"
        } else {
            "http"
        },
        max_object_bytes: config.limits.max_object_bytes,
    });
    Router::new()
        .route("/auth/v1.0", get(login::<B>))
        .route("/v1/{account}", any(collection::<B>))
        .route("/v1/{account}/{container}", any(collection::<B>))
        .route("/v1/{account}/{container}/{*object}", any(object::<B>))
        .with_state(swift)
}

fn respond(result: Result<Response, SwiftError>) -> Response {
    result.unwrap_or_else(IntoResponse::into_response)
}

async fn login<B: Backend>(State(swift): State<Shared<B>>, headers: HeaderMap) -> Response {
    respond((|| {
        let login = swift.sessions.login(&headers)?;
        let host = headers
            .get(header::HOST)
            .and_then(|value| value.to_str().ok())
            .ok_or_else(|| SwiftError::bad_request("a Host header is required"))?;
        let url = format!("{}://{host}/v1/AUTH_{}", swift.scheme, login.account);
        let mut response = StatusCode::OK.into_response();
        let map = response.headers_mut();
        for (name, value) in [
            ("x-storage-url", url),
            ("x-auth-token", login.token.clone()),
            ("x-storage-token", login.token),
            (
                "x-auth-token-expires",
                login.expires_in.as_secs().to_string(),
            ),
        ] {
            let value = HeaderValue::from_str(&value)
                .map_err(|_| SwiftError::bad_request("the Host header is not a valid URL host"))?;
            map.insert(name, value);
        }
        Ok(response)
    })())
}

/// The account of `/v1/AUTH_<account>`, once the request's token is shown to be its own.
fn authorize<'a, B>(
    swift: &Swift<B>,
    headers: &HeaderMap,
    account: &'a str,
) -> Result<&'a str, SwiftError> {
    let account = account
        .strip_prefix("AUTH_")
        .ok_or_else(SwiftError::not_found)?;
    swift.sessions.authorize(headers, account)?;
    Ok(account)
}

fn check_name(name: &str, max: usize, what: &str) -> Result<(), SwiftError> {
    if name.is_empty() || name.len() > max {
        return Err(SwiftError::bad_request(format!(
            "{what} names must hold 1 to {max} bytes"
        )));
    }
    Ok(())
}

/// A container name also keeps out `/` (an encoded `%2F` included): the container's objects
/// are the keys under `<container>/`, which another container's name must not reach into.
fn check_container(name: &str) -> Result<(), SwiftError> {
    check_name(name, MAX_CONTAINER_NAME, "container")?;
    if name.contains('/') {
        return Err(SwiftError::bad_request(
            "container names cannot contain '/'",
        ));
    }
    Ok(())
}

/// An account (`/v1/{account}`: its container listing) or a container
/// (`/v1/{account}/{container}`).
async fn collection<B: Backend>(
    State(swift): State<Shared<B>>,
    Path(route): Path<HashMap<String, String>>,
    method: Method,
    headers: HeaderMap,
    params: Result<Query<ListingParams>, QueryRejection>,
) -> Response {
    respond(
        async {
            let account = route.get("account").map_or("", String::as_str);
            let account = authorize(&swift, &headers, account)?;
            let store = SwiftStore {
                backend: &swift.backend,
                account: Account(account),
            };
            match route.get("container") {
                None => list_containers(&store, method, &headers, params).await,
                Some(container) => {
                    check_container(container)?;
                    on_container(&store, container, method, &headers, params).await
                }
            }
        }
        .await,
    )
}

async fn list_containers<B: Backend>(
    store: &SwiftStore<'_, B>,
    method: Method,
    headers: &HeaderMap,
    params: Result<Query<ListingParams>, QueryRejection>,
) -> Result<Response, SwiftError> {
    if method != Method::GET && method != Method::HEAD {
        return Err(method_not_allowed());
    }
    let base = store.account.containers();
    let listing = Listing::parse(params, headers, &base)?;
    let (rows, _) = listing
        .read(store.backend, &base, |name, value| {
            let record: store::ContainerRecord = store::decode_value(value)?;
            Ok(json!({
                "name": name,
                "count": record.objects,
                "bytes": record.bytes,
                "last_modified": Instant(record.created).swift_iso(),
            }))
        })
        .await?;
    Ok(listing.respond(&rows, Vec::new()))
}

async fn on_container<B: Backend>(
    store: &SwiftStore<'_, B>,
    container: &str,
    method: Method,
    headers: &HeaderMap,
    params: Result<Query<ListingParams>, QueryRejection>,
) -> Result<Response, SwiftError> {
    match method {
        Method::PUT => {
            let created = store.create_container(container).await?;
            let code = if created {
                StatusCode::CREATED
            } else {
                StatusCode::ACCEPTED
            };
            Ok(code.into_response())
        }
        Method::DELETE => {
            store.delete_container(container).await?;
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        Method::HEAD => {
            let (record, _) = store
                .container(container, None)
                .await?
                .ok_or_else(SwiftError::not_found)?;
            let mut response = StatusCode::NO_CONTENT.into_response();
            set_headers(&mut response, &counts(&record));
            Ok(response)
        }
        Method::GET => {
            let base = store.account.listing(container);
            let listing = Listing::parse(params, headers, &base)?;
            let (rows, revision) = listing
                .read(store.backend, &base, |name, value| {
                    let record: ObjectRecord = store::decode_value(value)?;
                    Ok(json!({
                        "name": name,
                        "hash": record.hash,
                        "bytes": record.bytes,
                        "content_type": record.content_type,
                        "last_modified": Instant(record.modified).swift_iso(),
                    }))
                })
                .await?;
            // The counts at the revision the rows were read at: exact for this page.
            let (record, _) = store
                .container(container, Some(revision))
                .await?
                .ok_or_else(SwiftError::not_found)?;
            Ok(listing.respond(&rows, counts(&record)))
        }
        _ => Err(method_not_allowed()),
    }
}

fn method_not_allowed() -> SwiftError {
    SwiftError::new(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed")
}

fn counts(record: &store::ContainerRecord) -> Vec<(&'static str, String)> {
    vec![
        ("x-container-object-count", record.objects.to_string()),
        ("x-container-bytes-used", record.bytes.to_string()),
        ("x-timestamp", Instant(record.created).swift_timestamp()),
    ]
}

fn set_headers(response: &mut Response, headers: &[(&'static str, String)]) {
    for (name, value) in headers {
        if let Ok(value) = HeaderValue::from_str(value) {
            response.headers_mut().insert(*name, value);
        }
    }
}

async fn object<B: Backend>(
    State(swift): State<Shared<B>>,
    Path((account, container, object)): Path<(String, String, String)>,
    method: Method,
    headers: HeaderMap,
    body: Body,
) -> Response {
    respond(
        async {
            let account = authorize(&swift, &headers, &account)?;
            check_container(&container)?;
            check_name(&object, MAX_OBJECT_NAME, "object")?;
            let store = SwiftStore {
                backend: &swift.backend,
                account: Account(account),
            };
            match method {
                Method::PUT => {
                    let bytes = read_body(body, swift.max_object_bytes).await?;
                    let hash = crate::hex(&Md5::digest(&bytes));
                    let expected = headers.get(header::ETAG).and_then(|v| v.to_str().ok());
                    if expected
                        .is_some_and(|etag| !etag.trim_matches('"').eq_ignore_ascii_case(&hash))
                    {
                        return Err(SwiftError::new(
                            StatusCode::UNPROCESSABLE_ENTITY,
                            "the ETag does not match the MD5 of the body",
                        ));
                    }
                    let content_type = headers
                        .get(header::CONTENT_TYPE)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("application/octet-stream")
                        .to_owned();
                    let record = ObjectRecord {
                        bytes: bytes.len() as u64,
                        hash,
                        content_type,
                        modified: Instant::now().0,
                    };
                    let mut response = StatusCode::CREATED.into_response();
                    set_headers(&mut response, &described(&record));
                    store
                        .write_object(&container, &object, Some((record, bytes.to_vec())))
                        .await?;
                    Ok(response)
                }
                Method::DELETE => match store.write_object(&container, &object, None).await? {
                    true => Ok(StatusCode::NO_CONTENT.into_response()),
                    false => Err(SwiftError::not_found()),
                },
                Method::GET | Method::HEAD => {
                    let with_data = method == Method::GET;
                    let (record, data) = store
                        .object(&container, &object, with_data)
                        .await?
                        .ok_or_else(SwiftError::not_found)?;
                    let length = record.bytes;
                    let mut response = if with_data {
                        (StatusCode::OK, data).into_response()
                    } else {
                        StatusCode::OK.into_response()
                    };
                    set_headers(&mut response, &described(&record));
                    response
                        .headers_mut()
                        .insert(header::CONTENT_LENGTH, HeaderValue::from(length));
                    Ok(response)
                }
                _ => Err(method_not_allowed()),
            }
        }
        .await,
    )
}

/// The headers that describe a stored object.
fn described(record: &ObjectRecord) -> Vec<(&'static str, String)> {
    let modified = Instant(record.modified);
    vec![
        ("etag", record.hash.clone()),
        ("content-type", record.content_type.clone()),
        ("last-modified", modified.http_date()),
        ("x-timestamp", modified.swift_timestamp()),
        ("accept-ranges", "bytes".to_owned()),
    ]
}
