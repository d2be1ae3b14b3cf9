//! Request bodies, read within the body limit: an object (JSON, or Kubernetes protobuf decoded
//! into the same JSON), a DELETE's options, or a patch.

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
    let media = decodable_media_type(headers)?;
    decode(&media, &read_body(body, kube.max_body_bytes).await?)
}

/// The `DeleteOptions` a DELETE may send, as JSON; `None` for an empty body.
pub async fn delete_options<B>(
    kube: &Kube<B>,
    headers: &HeaderMap,
    body: Body,
) -> Result<Option<Value>, ApiError> {
    let bytes = read_body(body, kube.max_body_bytes).await?;
    if bytes.is_empty() {
        return Ok(None);
    }
    decode(&decodable_media_type(headers)?, &bytes).map(Some)
}

/// The media type of a body to decode: JSON or protobuf, 415 otherwise.
fn decodable_media_type(headers: &HeaderMap) -> Result<String, ApiError> {
    let media = media_type(headers);
    if media != JSON && media != PROTOBUF {
        return Err(ApiError::unsupported_media_type(
            &media,
            &format!("{JSON} or {PROTOBUF}"),
        ));
    }
    Ok(media)
}

fn decode(media: &str, bytes: &[u8]) -> Result<Value, ApiError> {
    if media == PROTOBUF {
        Ok(protobuf::decode_object(bytes)?)
    } else {
        serde_json::from_slice(bytes)
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
