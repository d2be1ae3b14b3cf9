//! Container and account listings: Swift's parameters, pages filled up to the limit, common
//! prefixes (`subdir`) among the names in order, and the formats with their empty-page rules.

use axum::extract::rejection::QueryRejection;
use axum::extract::Query;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use revkv::{ListPage, Revision};
use serde::Deserialize;
use serde_json::{json, Value};

use super::error::SwiftError;
use crate::backend::{Backend, ListRequest};

/// Swift's `CONTAINER_LISTING_LIMIT`: the default and the largest `limit`.
pub const LISTING_LIMIT: usize = 10_000;

#[derive(Debug, Default, Deserialize)]
pub struct ListingParams {
    format: Option<String>,
    limit: Option<String>,
    marker: Option<String>,
    end_marker: Option<String>,
    prefix: Option<String>,
    delimiter: Option<String>,
    reverse: Option<String>,
}

/// One line of a listing: a record's name and its JSON, or a common prefix.
pub enum Row {
    Record { name: String, json: Value },
    Subdir(String),
}

impl Row {
    fn name(&self) -> &str {
        match self {
            Row::Record { name, .. } | Row::Subdir(name) => name,
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Format {
    Json,
    Plain,
}

/// A listing request, parsed and checked.
pub struct Listing {
    format: Format,
    /// Whether `format` was absent, so the answer depended on `Accept`.
    negotiated: bool,
    limit: usize,
    request: ListRequest,
    /// The markers exclude everything (in the wrong order for the direction).
    empty: bool,
}

/// Swift's `config_true_value`.
fn true_value(value: Option<&str>) -> bool {
    value.is_some_and(|text| {
        ["true", "1", "yes", "on", "t", "y"]
            .iter()
            .any(|yes| text.eq_ignore_ascii_case(yes))
    })
}

impl Listing {
    /// Parses the parameters of a listing under `base` (the keys of one container or account).
    pub fn parse(
        params: Result<Query<ListingParams>, QueryRejection>,
        headers: &HeaderMap,
        base: &[u8],
    ) -> Result<Self, SwiftError> {
        let Query(params) = params.map_err(|error| SwiftError::bad_request(error.body_text()))?;
        let (format, negotiated) = match params.format.as_deref() {
            Some("json") => (Format::Json, false),
            Some("plain") => (Format::Plain, false),
            Some(other) => {
                return Err(SwiftError::new(
                    StatusCode::NOT_ACCEPTABLE,
                    format!("format {other:?} is not served; use json or plain"),
                ))
            }
            None => {
                let accept = headers
                    .get(header::ACCEPT)
                    .and_then(|value| value.to_str().ok())
                    .unwrap_or_default();
                let json = accept.contains("application/json");
                (if json { Format::Json } else { Format::Plain }, true)
            }
        };
        // A limit that is not a number (a negative one included) is ignored, as in Swift.
        let limit = match params.limit.as_deref().map(str::parse::<usize>) {
            Some(Ok(limit)) if limit > LISTING_LIMIT => {
                return Err(SwiftError::new(
                    StatusCode::PRECONDITION_FAILED,
                    format!("Maximum limit is {LISTING_LIMIT}"),
                ))
            }
            Some(Ok(limit)) => limit,
            _ => LISTING_LIMIT,
        };
        let reverse = true_value(params.reverse.as_deref());
        let under = |name: &str| {
            let mut key = base.to_vec();
            key.extend_from_slice(name.as_bytes());
            key
        };
        let nonempty = |value: Option<String>| value.filter(|text| !text.is_empty());
        let marker = nonempty(params.marker);
        let end_marker = nonempty(params.end_marker);
        let empty = limit == 0
            || match (&marker, &end_marker) {
                (Some(marker), Some(end)) if reverse => marker <= end,
                (Some(marker), Some(end)) => marker >= end,
                _ => false,
            };
        let request = ListRequest {
            prefix: under(params.prefix.as_deref().unwrap_or_default()),
            start_after: marker.as_deref().map(under),
            end_before: end_marker.as_deref().map(under),
            delimiter: nonempty(params.delimiter).map(String::into_bytes),
            reverse,
            limit,
            ..ListRequest::default()
        };
        Ok(Listing {
            format,
            negotiated,
            limit,
            request,
            empty,
        })
    }

    /// Reads up to `limit` rows at one revision, continuing the backend's chunks when one
    /// comes back short, and turns each record into its JSON with `describe`. Returns the rows
    /// and the revision they were read at.
    pub async fn read<B: Backend>(
        &self,
        backend: &B,
        base: &[u8],
        describe: impl Fn(&str, &[u8]) -> Result<Value, SwiftError>,
    ) -> Result<(Vec<Row>, Revision), SwiftError> {
        if self.empty {
            return Ok((Vec::new(), backend.revisions().current));
        }
        let mut rows = Vec::new();
        let mut request = self.request.clone();
        loop {
            request.limit = self.limit - rows.len();
            let page = backend.list(request.clone()).await?;
            let revision = page.revision;
            let token = page.continue_token.clone();
            rows.extend(merge(page, base, self.request.reverse, &describe)?);
            match token {
                Some(token) if rows.len() < self.limit => request.continue_token = Some(token),
                _ => return Ok((rows, revision)),
            }
        }
    }

    /// The listing response: 204 for an empty plain body, `[]` for an empty JSON one.
    pub fn respond(&self, rows: &[Row], mut headers: Vec<(&'static str, String)>) -> Response {
        let (content_type, body) = match self.format {
            Format::Json => {
                let items: Vec<Value> = rows
                    .iter()
                    .map(|row| match row {
                        Row::Record { json, .. } => json.clone(),
                        Row::Subdir(name) => json!({ "subdir": name }),
                    })
                    .collect();
                (
                    "application/json; charset=utf-8",
                    Value::Array(items).to_string(),
                )
            }
            Format::Plain => {
                let body: String = rows.iter().map(|row| format!("{}\n", row.name())).collect();
                ("text/plain; charset=utf-8", body)
            }
        };
        if self.negotiated {
            headers.push(("vary", "Accept".to_owned()));
        }
        let code = if body.is_empty() {
            StatusCode::NO_CONTENT
        } else {
            StatusCode::OK
        };
        let mut response = (code, body).into_response();
        let map = response.headers_mut();
        map.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        for (name, value) in headers {
            if let Ok(value) = HeaderValue::from_str(&value) {
                map.insert(name, value);
            }
        }
        response
    }
}

/// The page's records and common prefixes as one sequence in listing order. Every key under a
/// prefix sorts after it and before the prefix's end, so merging by key is the walk's order.
fn merge(
    page: ListPage,
    base: &[u8],
    reverse: bool,
    describe: &impl Fn(&str, &[u8]) -> Result<Value, SwiftError>,
) -> Result<Vec<Row>, SwiftError> {
    let name =
        |key: &[u8]| String::from_utf8_lossy(key.strip_prefix(base).unwrap_or(key)).into_owned();
    let mut rows = Vec::with_capacity(page.items.len() + page.prefixes.len());
    let mut items = page.items.into_iter().peekable();
    let mut prefixes = page.prefixes.into_iter().peekable();
    loop {
        let take_item = match (items.peek(), prefixes.peek()) {
            (Some(item), Some(prefix)) => (item.key.as_slice() < prefix.as_slice()) != reverse,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => return Ok(rows),
        };
        if take_item {
            if let Some(item) = items.next() {
                let name = name(&item.key);
                let json = describe(&name, &item.value)?;
                rows.push(Row::Record { name, json });
            }
        } else if let Some(prefix) = prefixes.next() {
            rows.push(Row::Subdir(name(&prefix)));
        }
    }
}
