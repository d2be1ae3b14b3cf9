//! `dryRun`, as `kubectl create|replace|patch|apply|delete --dry-run=server` sends it: the
//! request is checked and computed as a real one, and answered with what it would store, but
//! nothing is written. The parameter is a list whose only allowed value is `All`; like the
//! apiserver, anything else is refused as an invalid value of the request's options.

use axum::extract::Query;
use axum::http::Uri;
use serde_json::Value;

use super::status::ApiError;

const ALL: &str = "All";

/// Whether a write request is stored or only computed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Store,
    DryRun,
}

/// The mode the `dryRun` query parameters of `uri` ask for. `options` is the kind the
/// apiserver decodes them into (`CreateOptions`, `UpdateOptions`, ...), which its error names.
pub fn from_query(uri: &Uri, options: &str) -> Result<Mode, ApiError> {
    let Query(parameters) = Query::<Vec<(String, String)>>::try_from_uri(uri)
        .map_err(|error| ApiError::bad_request(error.body_text()))?;
    let values: Vec<String> = parameters
        .into_iter()
        .filter(|(name, _)| name == "dryRun")
        .map(|(_, value)| value)
        .collect();
    mode(&values, options)
}

/// The mode a `DeleteOptions` body asks for with its `dryRun` list.
pub fn from_delete_options(body: &Value) -> Result<Mode, ApiError> {
    let values = match body.get("dryRun") {
        None | Some(Value::Null) => Vec::new(),
        Some(values) => values
            .as_array()
            .and_then(|values| {
                values
                    .iter()
                    .map(|value| value.as_str().map(str::to_owned))
                    .collect()
            })
            .ok_or_else(|| {
                ApiError::bad_request("DeleteOptions.dryRun must be a list of strings")
            })?,
    };
    mode(&values, "DeleteOptions")
}

fn mode(values: &[String], options: &str) -> Result<Mode, ApiError> {
    if values.iter().any(|value| value != ALL) {
        return Err(ApiError::unsupported_option(
            options,
            "dryRun",
            &Value::from(values.to_vec()).to_string(),
            &format!("{ALL:?}"),
        ));
    }
    Ok(if values.is_empty() {
        Mode::Store
    } else {
        Mode::DryRun
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn query(uri: &str) -> Result<Mode, ApiError> {
        from_query(&uri.parse().expect("a URI"), "CreateOptions")
    }

    #[test]
    fn all_is_a_dry_run_and_no_parameter_stores() {
        assert_eq!(query("/api/v1/pods").ok(), Some(Mode::Store));
        assert_eq!(query("/api/v1/pods?dryRun=All").ok(), Some(Mode::DryRun));
        assert_eq!(
            query("/api/v1/pods?fieldManager=x&dryRun=All&dryRun=All").ok(),
            Some(Mode::DryRun)
        );
        assert_eq!(
            from_delete_options(&json!({"kind": "DeleteOptions", "dryRun": ["All"]})).ok(),
            Some(Mode::DryRun)
        );
        assert_eq!(
            from_delete_options(&json!({"propagationPolicy": "Background"})).ok(),
            Some(Mode::Store)
        );
    }

    #[test]
    fn other_values_are_invalid_options_as_on_the_apiserver() {
        for (uri, shown) in [
            ("/api/v1/pods?dryRun=true", r#"["true"]"#),
            ("/api/v1/pods?dryRun=All&dryRun=all", r#"["All","all"]"#),
            ("/api/v1/pods?dryRun=", r#"[""]"#),
        ] {
            let status = query(uri).expect_err("refused").status();
            assert_eq!(status["code"], 422, "{uri}");
            assert_eq!(status["reason"], "Invalid");
            assert_eq!(
                status["message"],
                format!(
                    "CreateOptions.meta.k8s.io \"\" is invalid: dryRun: Unsupported value: \
                     {shown}: supported values: \"All\""
                )
            );
            assert_eq!(status["details"]["causes"][0]["field"], "dryRun");
        }
        let status = from_delete_options(&json!({"dryRun": "All"}))
            .expect_err("not a list")
            .status();
        assert_eq!(status["code"], 400);
    }
}
