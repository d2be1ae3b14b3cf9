//! What a response is written as: plain JSON, or a `meta.k8s.io` Table when the client's
//! `Accept` prefers one (kubectl's human output asks for a Table first, then JSON).

use axum::http::{header, HeaderMap};
use serde_json::{json, Value};

use super::status::ApiError;

/// How to write an object or a list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Representation {
    Json,
    /// A Table of this `meta.k8s.io` version (`v1` or `v1beta1`).
    Table(&'static str),
}

/// The first media range of `Accept` this server can produce.
pub fn negotiate(headers: &HeaderMap) -> Result<Representation, ApiError> {
    let Some(accept) = headers.get(header::ACCEPT) else {
        return Ok(Representation::Json);
    };
    let accept = accept.to_str().unwrap_or_default();
    for range in accept.split(',') {
        let mut parts = range.split(';').map(str::trim);
        let media = parts.next().unwrap_or_default();
        let mut wants_as = None;
        let mut group = None;
        let mut version = None;
        for parameter in parts {
            match parameter.split_once('=') {
                Some(("as", value)) => wants_as = Some(value),
                Some(("g", value)) => group = Some(value),
                Some(("v", value)) => version = Some(value),
                _ => {}
            }
        }
        match (media, wants_as) {
            ("application/json", Some("Table")) if group == Some("meta.k8s.io") => match version {
                Some("v1") => return Ok(Representation::Table("v1")),
                Some("v1beta1") => return Ok(Representation::Table("v1beta1")),
                _ => {}
            },
            ("application/json" | "application/*" | "*/*", None) => {
                return Ok(Representation::Json)
            }
            _ => {}
        }
    }
    Err(ApiError::not_acceptable(accept))
}

/// The apiserver's default Table: a name and a creation time per object, the list metadata
/// (kubectl pages on the Table's `continue`), and each row's object metadata, from which
/// kubectl takes the namespace column.
pub fn table(version: &str, metadata: Value, objects: &[Value]) -> Value {
    let rows: Vec<Value> = objects
        .iter()
        .map(|object| {
            let meta = object.get("metadata").cloned().unwrap_or_else(|| json!({}));
            json!({
                "cells": [meta.get("name"), meta.get("creationTimestamp")],
                "object": {
                    "kind": "PartialObjectMetadata",
                    "apiVersion": format!("meta.k8s.io/{version}"),
                    "metadata": meta,
                },
            })
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": format!("meta.k8s.io/{version}"),
        "metadata": metadata,
        "columnDefinitions": [
            {
                "name": "Name",
                "type": "string",
                "format": "name",
                "description": "Name must be unique within a namespace.",
                "priority": 0,
            },
            {
                "name": "Created At",
                "type": "date",
                "format": "",
                "description": "The time the object was created.",
                "priority": 0,
            },
        ],
        "rows": rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn accept(value: &str) -> Result<Representation, ApiError> {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::ACCEPT,
            HeaderValue::from_str(value).expect("header"),
        );
        negotiate(&headers)
    }

    #[test]
    fn kubectl_human_output_gets_a_table_and_json_output_gets_json() {
        let kubectl = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;\
                       v=v1beta1;g=meta.k8s.io,application/json";
        assert_eq!(accept(kubectl).ok(), Some(Representation::Table("v1")));
        assert_eq!(accept("application/json").ok(), Some(Representation::Json));
        assert_eq!(accept("*/*").ok(), Some(Representation::Json));
        assert!(accept("application/vnd.kubernetes.protobuf").is_err());
    }
}
