//! List requests: query parameters, the apiserver's resourceVersion rules, and the list (or
//! Table) that answers them.

use axum::response::{IntoResponse, Response};
use axum::Json;
use revkv::selector::{FieldSelector, LabelSelector};
use revkv::{Entry, Revision};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::kinds::Kind;
use super::object::stored_object;
use super::representation::Representation;
use super::splice::{self, JsonBody};
use super::status::ApiError;
use super::Kube;
use crate::backend::{Backend, ListRequest};

/// The query parameters a list understands; others are ignored, as the apiserver does.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListParams {
    limit: Option<String>,
    #[serde(rename = "continue")]
    continue_token: Option<String>,
    label_selector: Option<String>,
    field_selector: Option<String>,
    pub(super) resource_version: Option<String>,
    pub(super) resource_version_match: Option<String>,
    pub(super) watch: Option<String>,
    pub(super) send_initial_events: Option<String>,
    pub(super) allow_watch_bookmarks: Option<String>,
    pub(super) timeout_seconds: Option<String>,
}

/// Query booleans as apimachinery reads them: absent, `0` and `false` are false, anything
/// else (the empty string, `True`) is true.
pub(super) fn flag(value: Option<&str>) -> bool {
    value.is_some_and(|text| text != "0" && !text.eq_ignore_ascii_case("false"))
}

/// Which revision a list reads, from `resourceVersion`, `resourceVersionMatch`, `limit` and
/// `continue`, as the table of the apiserver's "Semantics for get and list" defines it.
#[derive(Debug, PartialEq, Eq)]
enum ReadAt {
    /// The newest revision, which must have reached `at_least`.
    Newest { at_least: Option<u64> },
    /// Exactly this revision.
    Exact(u64),
    /// The revision the continue token names.
    Continued,
}

pub(super) fn parse_revision(text: &str) -> Result<u64, ApiError> {
    text.parse()
        .map_err(|_| ApiError::bad_request(format!("invalid resource version: {text:?}")))
}

fn read_at(params: &ListParams, limited: bool) -> Result<ReadAt, ApiError> {
    let version = params
        .resource_version
        .as_deref()
        .filter(|rv| !rv.is_empty());
    let continued = params
        .continue_token
        .as_deref()
        .is_some_and(|t| !t.is_empty());
    if let Some(rvm) = params
        .resource_version_match
        .as_deref()
        .filter(|m| !m.is_empty())
    {
        if version.is_none() {
            return Err(ApiError::invalid(
                "resourceVersionMatch is forbidden unless resourceVersion is provided",
            ));
        }
        if continued {
            return Err(ApiError::invalid(
                "resourceVersionMatch is forbidden when continue is provided",
            ));
        }
        let revision = parse_revision(version.unwrap_or_default())?;
        return match rvm {
            "Exact" if revision == 0 => Err(ApiError::invalid(
                "resourceVersionMatch \"Exact\" is forbidden for resourceVersion \"0\"",
            )),
            "Exact" => Ok(ReadAt::Exact(revision)),
            "NotOlderThan" => Ok(ReadAt::Newest {
                at_least: (revision > 0).then_some(revision),
            }),
            other => Err(ApiError::invalid(format!(
                "resourceVersionMatch: Unsupported value: {other:?}: supported values: \
                 \"Exact\", \"NotOlderThan\""
            ))),
        };
    }
    if continued {
        return match version {
            None | Some("0") => Ok(ReadAt::Continued),
            Some(_) => Err(ApiError::bad_request(
                "specifying resource version is not allowed when using continue",
            )),
        };
    }
    Ok(match version.map(parse_revision).transpose()? {
        None | Some(0) => ReadAt::Newest { at_least: None },
        Some(revision) if limited => ReadAt::Exact(revision),
        Some(revision) => ReadAt::Newest {
            at_least: Some(revision),
        },
    })
}

/// The label and field selectors of a list or watch; a malformed one is 400.
pub(super) fn selectors(
    params: &ListParams,
) -> Result<(Option<LabelSelector>, Option<FieldSelector>), ApiError> {
    let labels = match params.label_selector.as_deref().filter(|s| !s.is_empty()) {
        Some(text) => Some(text.parse().map_err(|error| {
            ApiError::bad_request(format!("unable to parse requirement: {error}"))
        })?),
        None => None,
    };
    let fields =
        match params.field_selector.as_deref().filter(|s| !s.is_empty()) {
            Some(text) => Some(text.parse().map_err(|error| {
                ApiError::bad_request(format!("invalid field selector: {error}"))
            })?),
            None => None,
        };
    Ok((labels, fields))
}

/// One page of a list as the backend returned it, ready to be rendered.
struct Listed {
    items: Vec<Entry>,
    revision: Revision,
    continue_token: Option<String>,
    remaining: Option<u64>,
}

/// Answers a list of `kind`, in one namespace or all of them.
pub async fn list<B: Backend>(
    kube: &Kube<B>,
    kind: &Kind,
    namespace: Option<&str>,
    params: &ListParams,
    representation: Representation,
) -> Result<Response, ApiError> {
    if flag(params.send_initial_events.as_deref()) {
        return Err(ApiError::invalid("sendInitialEvents is forbidden for list"));
    }
    let limit = match params.limit.as_deref().filter(|text| !text.is_empty()) {
        None => 0,
        Some(text) => text
            .parse::<u64>()
            .map_err(|_| ApiError::bad_request(format!("invalid limit: {text:?}")))?,
    };
    let read = read_at(params, limit > 0)?;
    let mut request = ListRequest {
        prefix: kind.prefix(namespace),
        limit: usize::try_from(limit).unwrap_or(usize::MAX),
        ..ListRequest::default()
    };
    (request.labels, request.fields) = selectors(params)?;
    match read {
        ReadAt::Newest { at_least } => {
            let current = kube.backend.revisions().current.get();
            if let Some(requested) = at_least.filter(|requested| *requested > current) {
                return Err(ApiError::too_large_resource_version(requested, current));
            }
        }
        ReadAt::Exact(revision) => request.revision = Some(Revision::new(revision)),
        ReadAt::Continued => request.continue_token = params.continue_token.clone(),
    }
    let listed = if limit == 0 {
        list_whole(kube, request).await?
    } else {
        let page = kube.backend.list(request).await?;
        kube.metrics.record_chunk("kubernetes", page.items.len());
        Listed {
            items: page.items,
            revision: page.revision,
            continue_token: page.continue_token,
            remaining: page.remaining,
        }
    };
    render(kind, listed, representation)
}

/// An unlimited list: every chunk at the first one's revision, as one list.
async fn list_whole<B: Backend>(kube: &Kube<B>, request: ListRequest) -> Result<Listed, ApiError> {
    let mut request = ListRequest {
        limit: kube.backend.max_page_size(),
        ..request
    };
    let mut items = Vec::new();
    loop {
        let page = kube.backend.list(request.clone()).await?;
        kube.metrics.record_chunk("kubernetes", page.items.len());
        items.extend(page.items);
        match page.continue_token {
            Some(token) => request.continue_token = Some(token),
            None => {
                return Ok(Listed {
                    items,
                    revision: page.revision,
                    continue_token: None,
                    remaining: None,
                })
            }
        }
    }
}

fn render(
    kind: &Kind,
    listed: Listed,
    representation: Representation,
) -> Result<Response, ApiError> {
    let metadata = list_metadata(&listed);
    Ok(match representation {
        Representation::Json => {
            JsonBody(json_list(kind, &metadata, &listed.items)?).into_response()
        }
        Representation::Table(version) => {
            let objects = listed
                .items
                .iter()
                .map(stored_object)
                .collect::<Result<Vec<_>, _>>()?;
            let table = super::representation::table(version, Value::Object(metadata), &objects);
            Json(table).into_response()
        }
    })
}

fn list_metadata(listed: &Listed) -> Map<String, Value> {
    let mut metadata = Map::new();
    metadata.insert("resourceVersion".into(), listed.revision.to_string().into());
    if let Some(token) = &listed.continue_token {
        metadata.insert("continue".into(), token.as_str().into());
        // Only a page with more after it says how many: the last page omits the count.
        if let Some(remaining) = listed.remaining {
            metadata.insert("remainingItemCount".into(), remaining.into());
        }
    }
    metadata
}

/// The JSON list, written as serde_json writes a map of `kind`, `apiVersion`, `metadata` and
/// `items` (in its order: sorted), with each item spliced from its stored bytes.
fn json_list(
    kind: &Kind,
    metadata: &Map<String, Value>,
    items: &[Entry],
) -> Result<Vec<u8>, ApiError> {
    let size: usize = items.iter().map(|entry| entry.value.len() + 32).sum();
    let mut body = Vec::with_capacity(size + 256);
    body.extend_from_slice(b"{\"apiVersion\":");
    splice::encode(&mut body, &kind.api_version())?;
    body.extend_from_slice(b",\"items\":[");
    for (index, entry) in items.iter().enumerate() {
        if index > 0 {
            body.push(b',');
        }
        splice::write(&mut body, entry, entry.mod_revision)?;
    }
    body.extend_from_slice(b"],\"kind\":");
    splice::encode(&mut body, &kind.list_kind())?;
    body.extend_from_slice(b",\"metadata\":");
    splice::encode(&mut body, metadata)?;
    body.push(b'}');
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_json_list_is_the_bytes_of_encoding_it_as_a_value() {
        let kind = Kind {
            group: "apps.example.com".to_owned(),
            version: "v1beta1".to_owned(),
            kind: "Widget".to_owned(),
            plural: "widgets".to_owned(),
            singular: "widget".to_owned(),
            namespaced: true,
            short_names: Vec::new(),
            selectable_fields: Vec::new(),
        };
        let stored = [
            json!({"apiVersion": "apps.example.com/v1beta1", "kind": "Widget",
                   "metadata": {"name": "a", "namespace": "n", "labels": {"x": "é\"\n"}},
                   "spec": {"size": 3}}),
            json!({"kind": "Widget", "metadata": {"name": "b", "resourceVersion": "4"}}),
            json!({"kind": "Widget"}),
        ];
        let items: Vec<Entry> = stored
            .iter()
            .enumerate()
            .map(|(index, object)| {
                let mut entry = splice::tests::entry(serde_json::to_vec(object).expect("JSON"));
                entry.mod_revision = Revision::new(10 + index as u64);
                entry
            })
            .collect();
        for (items, continue_token, remaining) in [
            (&items[..], None, None),
            (&items[..], Some("tok\"en"), Some(42)),
            (&items[..1], Some("t"), None),
            (&[][..], None, None),
        ] {
            let listed = Listed {
                items: items.to_vec(),
                revision: Revision::new(20),
                continue_token: continue_token.map(str::to_owned),
                remaining,
            };
            let metadata = list_metadata(&listed);
            let reencoded: Vec<Value> = items
                .iter()
                .map(|entry| {
                    let bytes = splice::tests::reencoded(&entry.value, entry.mod_revision);
                    serde_json::from_slice(&bytes).expect("JSON")
                })
                .collect();
            let before = json!({
                "kind": kind.list_kind(),
                "apiVersion": kind.api_version(),
                "metadata": metadata,
                "items": reencoded,
            });
            let body = json_list(&kind, &metadata, &listed.items).expect("renders");
            assert_eq!(
                String::from_utf8(body).expect("UTF-8"),
                serde_json::to_string(&before).expect("encodes")
            );
        }
    }

    fn params(rv: Option<&str>, rvm: Option<&str>, continued: bool) -> ListParams {
        ListParams {
            resource_version: rv.map(str::to_owned),
            resource_version_match: rvm.map(str::to_owned),
            continue_token: continued.then(|| "token".to_owned()),
            ..ListParams::default()
        }
    }

    #[test]
    fn resource_versions_read_as_the_apiserver_table_says() {
        let newest = ReadAt::Newest { at_least: None };
        let not_older = ReadAt::Newest { at_least: Some(7) };
        let cases = [
            (params(None, None, false), false, newest),
            (
                params(Some("0"), None, false),
                true,
                ReadAt::Newest { at_least: None },
            ),
            (params(Some("7"), None, false), false, not_older),
            (params(Some("7"), None, false), true, ReadAt::Exact(7)),
            (params(None, None, true), true, ReadAt::Continued),
            (params(Some("0"), None, true), true, ReadAt::Continued),
            (
                params(Some("7"), Some("Exact"), false),
                false,
                ReadAt::Exact(7),
            ),
            (
                params(Some("7"), Some("NotOlderThan"), false),
                true,
                ReadAt::Newest { at_least: Some(7) },
            ),
            (
                params(Some("0"), Some("NotOlderThan"), false),
                true,
                ReadAt::Newest { at_least: None },
            ),
        ];
        for (params, limited, expected) in cases {
            assert_eq!(read_at(&params, limited).ok(), Some(expected), "{params:?}");
        }
    }

    #[test]
    fn contradictory_resource_versions_are_refused_with_the_apiserver_codes() {
        let cases = [
            (params(Some("7"), None, true), 400),
            (params(Some("x"), None, false), 400),
            (params(None, Some("Exact"), false), 422),
            (params(Some("0"), Some("Exact"), false), 422),
            (params(Some("7"), Some("Exact"), true), 422),
            (params(Some("7"), Some("Newest"), false), 422),
        ];
        for (params, code) in cases {
            let error = read_at(&params, true).expect_err("refused");
            assert_eq!(
                axum::response::IntoResponse::into_response(error)
                    .status()
                    .as_u16(),
                code,
                "{params:?}"
            );
        }
    }

    #[test]
    fn query_booleans_are_true_unless_absent_zero_or_false() {
        for (value, expected) in [
            (None, false),
            (Some("0"), false),
            (Some("False"), false),
            (Some(""), true),
            (Some("True"), true),
            (Some("1"), true),
        ] {
            assert_eq!(flag(value), expected, "{value:?}");
        }
    }
}
