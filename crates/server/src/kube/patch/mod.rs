//! PATCH bodies: JSON merge patch (RFC 7386), JSON patch (RFC 6902) and Kubernetes' strategic
//! merge patch, as kubectl's `label`, `annotate`, `patch`, `edit` and client-side `apply` send
//! them. A patch is applied to the stored object and the result is committed as an update,
//! so it is atomic on the object's mod revision and re-applied after a concurrent write.

mod json_patch;
mod merge;
mod strategic;

use serde_json::Value;

use super::kinds::Kind;
use super::status::ApiError;

const MERGE_PATCH: &str = "application/merge-patch+json";
const JSON_PATCH: &str = "application/json-patch+json";
const STRATEGIC_MERGE_PATCH: &str = "application/strategic-merge-patch+json";
const APPLY_PATCH: &str = "application/apply-patch+yaml";

/// A parsed PATCH body.
pub enum Patch {
    Merge(Value),
    Json(Vec<json_patch::Operation>),
    Strategic(Value, &'static strategic::Lists),
}

impl Patch {
    /// Parses `body`, of the media type `media`, as a patch of an object of `kind`.
    pub fn parse(media: &str, body: &[u8], kind: &Kind) -> Result<Patch, ApiError> {
        let document = || {
            serde_json::from_slice::<Value>(body).map_err(|error| {
                ApiError::bad_request(format!("the patch is not valid JSON: {error}"))
            })
        };
        match media {
            MERGE_PATCH => Ok(Patch::Merge(document()?)),
            JSON_PATCH => Ok(Patch::Json(json_patch::parse(document()?)?)),
            STRATEGIC_MERGE_PATCH => {
                // As on the apiserver: configured kinds have no Go struct to take list merge
                // keys from.
                let lists = strategic::lists(kind).ok_or_else(|| {
                    ApiError::undecodable(format!(
                        "strategic merge patch is not supported for {}; send \
                         {MERGE_PATCH} or {JSON_PATCH}",
                        kind.plural
                    ))
                })?;
                Ok(Patch::Strategic(document()?, lists))
            }
            APPLY_PATCH => Err(ApiError::undecodable(
                "server-side apply is not supported; use client-side kubectl apply",
            )),
            other => Err(ApiError::unsupported_media_type(
                other,
                &format!("{MERGE_PATCH}, {JSON_PATCH} or {STRATEGIC_MERGE_PATCH}"),
            )),
        }
    }

    /// The object this patch makes of `object`; no result is larger than `limit` bytes of
    /// JSON, however a JSON patch copies.
    pub fn apply(&self, object: Value, limit: usize) -> Result<Value, ApiError> {
        match self {
            Patch::Merge(patch) => merge::merge_patch(object, patch),
            Patch::Json(operations) => json_patch::apply(object, operations, limit),
            Patch::Strategic(patch, lists) => strategic::apply(object, patch, lists),
        }
    }
}
