//! Request bodies, read within the body limit: an object (JSON, or Kubernetes protobuf decoded
//! into the same JSON), or a patch.

use axum::body::Body;
use axum::http::{header, HeaderMap};
use serde_json::Value;

use super::kinds::Kind;
use super::patch::Patch;
use super::protobuf;
use super::status::ApiError;
use super::Kube;
use crate::http::read_body;

const JSON: &str = "application/json";
const PROTOBUF: &str = "application/vnd.kubernetes.protobuf";

/// The media type of a request's `Content-Type`, without parameters, in lower case; JSON
/// when the header is missing.
fn media_type(headers: &HeaderMap) -> String {
    headers
        .get(header::CONTENT_TYPE)
        .map_or(JSON, |value| value.to_str().unwrap_or_default())
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

/// The object a create or replace sends, as JSON.
pub async fn object<B>(kube: &Kube<B>, headers: &HeaderMap, body: Body) -> Result<Value, ApiError> {
    let media = media_type(headers);
    if media != JSON && media != PROTOBUF {
        return Err(ApiError::unsupported_media_type(
            &media,
            &format!("{JSON} or {PROTOBUF}"),
        ));
    }
    let bytes = read_body(body, kube.max_body_bytes).await?;
    if media == PROTOBUF {
        Ok(protobuf::decode_object(&bytes)?)
    } else {
        serde_json::from_slice(&bytes)
            .map_err(|error| ApiError::bad_request(format!("the body is not valid JSON: {error}")))
    }
}

/// The patch a PATCH of an object of `kind` sends.
pub async fn patch<B>(
    kube: &Kube<B>,
    headers: &HeaderMap,
    body: Body,
    kind: &Kind,
) -> Result<Patch, ApiError> {
    let bytes = read_body(body, kube.max_body_bytes).await?;
    Patch::parse(&media_type(headers), &bytes, kind)
}
