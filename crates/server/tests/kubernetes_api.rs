//! The Kubernetes-style API over raw HTTP: list semantics, Status errors and limits, which
//! kubectl and the Python client rely on but cannot provoke on demand.

mod common;

use common::Server;
use revkv_server::Config;
use serde_json::{json, Value};

const JSON: (&str, &str) = ("content-type", "application/json");

fn config_map(name: &str, labels: Value) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "labels": labels},
        "data": {"k": name},
    }))
    .expect("encode")
}

fn create(server: &Server, namespace: &str, name: &str) -> Value {
    let path = format!("/api/v1/namespaces/{namespace}/configmaps");
    let response = server.request("POST", &path, &[JSON], &config_map(name, json!({})));
    assert_eq!(
        response.status,
        201,
        "{}",
        String::from_utf8_lossy(&response.body)
    );
    response.json()
}

fn get(server: &Server, path: &str) -> (u16, Value) {
    let response = server.request("GET", path, &[], b"");
    (response.status, response.json())
}

fn assert_status(value: &Value, code: u16, reason: &str) {
    assert_eq!(value["kind"], "Status", "{value}");
    assert_eq!(value["apiVersion"], "v1", "{value}");
    assert_eq!(value["status"], "Failure", "{value}");
    assert_eq!(value["code"], code, "{value}");
    assert_eq!(value["reason"], reason, "{value}");
}

/// Compacts all history, then lists all config maps with `query`, which must expire.
fn expired_after_compaction(server: &Server, query: &str) -> Value {
    server
        .db
        .compact(server.db.current_revision())
        .expect("compact");
    let (code, expired) = get(server, &format!("/api/v1/configmaps?{query}"));
    assert_eq!(code, 410);
    assert_status(&expired, 410, "Expired");
    expired
}

#[test]
fn pages_carry_one_revision_and_an_exact_remaining_count_omitted_on_the_last() {
    let server = Server::start(Config::default());
    for i in 0..5 {
        create(&server, "a", &format!("cm-{i}"));
    }
    let (code, first) = get(&server, "/api/v1/namespaces/a/configmaps?limit=2");
    assert_eq!(code, 200);
    assert_eq!(first["kind"], "ConfigMapList");
    assert_eq!(first["metadata"]["remainingItemCount"], 3);
    create(&server, "a", "cm-late");
    let token = first["metadata"]["continue"].as_str().expect("token");
    let mut names = Vec::new();
    let mut page = first.clone();
    loop {
        assert_eq!(
            page["metadata"]["resourceVersion"],
            first["metadata"]["resourceVersion"]
        );
        names.extend(page["items"].as_array().expect("items").iter().map(|item| {
            assert_eq!(item["kind"], "ConfigMap");
            item["metadata"]["name"].as_str().expect("name").to_owned()
        }));
        let Some(token) = page["metadata"]["continue"].as_str() else {
            assert!(page["metadata"].get("remainingItemCount").is_none());
            break;
        };
        let path = format!("/api/v1/namespaces/a/configmaps?limit=2&continue={token}");
        page = get(&server, &path).1;
    }
    assert_eq!(names, ["cm-0", "cm-1", "cm-2", "cm-3", "cm-4"]);
    assert!(!token.is_empty());
}

#[test]
fn an_expired_continue_is_410_with_a_token_that_finishes_the_list() {
    let server = Server::start(Config::default());
    for i in 0..4 {
        create(&server, "a", &format!("cm-{i}"));
    }
    let (_, first) = get(&server, "/api/v1/configmaps?limit=2");
    let token = first["metadata"]["continue"]
        .as_str()
        .expect("token")
        .to_owned();
    create(&server, "a", "cm-9");
    let expired = expired_after_compaction(&server, &format!("limit=2&continue={token}"));
    let inconsistent = expired["metadata"]["continue"]
        .as_str()
        .expect("inconsistent token");
    let (code, rest) = get(
        &server,
        &format!("/api/v1/configmaps?limit=10&continue={inconsistent}"),
    );
    assert_eq!(code, 200, "{rest}");
    let names: Vec<&str> = rest["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|item| item["metadata"]["name"].as_str())
        .collect();
    assert_eq!(names, ["cm-2", "cm-3", "cm-9"]);
}

#[test]
fn bad_tokens_selectors_and_revisions_are_typed_status_errors() {
    let server = Server::start(Config::default());
    create(&server, "a", "one");
    let cases = [
        (
            "/api/v1/configmaps?limit=1&continue=garbage",
            400,
            "BadRequest",
        ),
        (
            "/api/v1/configmaps?labelSelector=a%20in%20(",
            400,
            "BadRequest",
        ),
        (
            "/api/v1/configmaps?fieldSelector=metadata.name",
            400,
            "BadRequest",
        ),
        ("/api/v1/configmaps?resourceVersion=abc", 400, "BadRequest"),
        (
            "/api/v1/configmaps?resourceVersion=1&continue=x",
            400,
            "BadRequest",
        ),
        (
            "/api/v1/configmaps?resourceVersionMatch=Exact",
            422,
            "Invalid",
        ),
        (
            "/api/v1/configmaps?resourceVersion=0&resourceVersionMatch=Exact",
            422,
            "Invalid",
        ),
        ("/api/v1/configmaps?resourceVersion=999", 504, "Timeout"),
        (
            "/api/v1/configmaps?resourceVersion=999&resourceVersionMatch=Exact",
            504,
            "Timeout",
        ),
        (
            "/api/v1/configmaps?watch=1&sendInitialEvents=true",
            422,
            "Invalid",
        ),
        (
            "/api/v1/configmaps?watch=1&resourceVersionMatch=NotOlderThan",
            422,
            "Invalid",
        ),
        ("/api/v1/namespaces/a/configmaps/missing", 404, "NotFound"),
        ("/api/v1/widgets", 404, "NotFound"),
    ];
    for (path, code, reason) in cases {
        let response = server.request("GET", path, &[], b"");
        assert_eq!(response.status, code, "{path}");
        assert!(response
            .header("content-type")
            .is_some_and(|value| value.starts_with("application/json")));
        assert_status(&response.json(), code, reason);
    }
    let too_new = server.request("GET", "/api/v1/configmaps?resourceVersion=999", &[], b"");
    assert_eq!(too_new.header("retry-after"), Some("1"));
    assert_eq!(
        too_new.json()["details"]["causes"][0]["reason"],
        "ResourceVersionTooLarge"
    );
}

#[test]
fn exact_reads_see_the_past_and_compacted_ones_expire() {
    let server = Server::start(Config::default());
    let first = create(&server, "a", "one");
    create(&server, "a", "two");
    let rv = first["metadata"]["resourceVersion"].as_str().expect("rv");
    let (code, past) = get(
        &server,
        &format!("/api/v1/configmaps?resourceVersion={rv}&resourceVersionMatch=Exact"),
    );
    assert_eq!(code, 200);
    assert_eq!(past["items"].as_array().map(Vec::len), Some(1));
    assert_eq!(past["metadata"]["resourceVersion"], rv);
    expired_after_compaction(&server, &format!("resourceVersion={rv}&limit=5"));
}

#[test]
fn hostile_bodies_get_413_400_and_415() {
    let server = Server::start(Config::default());
    let path = "/api/v1/namespaces/a/configmaps";
    let huge = vec![b'x'; 2 * 1024 * 1024];
    let response = server.request("POST", path, &[JSON], &huge);
    assert_eq!(response.status, 413);
    assert_status(&response.json(), 413, "RequestEntityTooLarge");
    let response = server.request("POST", path, &[JSON], b"{\"metadata\": [");
    assert_status(&response.json(), 400, "BadRequest");
    let response = server.request("POST", path, &[JSON], b"[1, 2]");
    assert_status(&response.json(), 400, "BadRequest");
    let response = server.request(
        "POST",
        path,
        &[("content-type", "application/yaml")],
        b"a: b",
    );
    assert_status(&response.json(), 415, "UnsupportedMediaType");
    let protobuf = ("content-type", "application/vnd.kubernetes.protobuf");
    // A runtime.Unknown of a kind the server does not decode: apps/v1 Deployment.
    let deployment = b"k8s\0\x0a\x15\x0a\x07apps/v1\x12\x0aDeployment";
    let response = server.request("POST", path, &[protobuf], deployment);
    let status = response.json();
    assert_status(&status, 415, "UnsupportedMediaType");
    assert!(status["message"]
        .as_str()
        .is_some_and(|m| m.contains("apps/v1/Deployment")));
    // A length prefix of 2^35 bytes in a body of eleven.
    let forged = b"k8s\0\x12\x80\x80\x80\x80\x80\x01x";
    let response = server.request("POST", path, &[protobuf], forged);
    assert_status(&response.json(), 400, "BadRequest");
    let bad_label = config_map("x", json!({"a b": "c"}));
    let response = server.request("POST", path, &[JSON], &bad_label);
    assert_status(&response.json(), 422, "Invalid");
    let bad_name = config_map("Not/A/Name", json!({}));
    let response = server.request("POST", path, &[JSON], &bad_name);
    assert_status(&response.json(), 422, "Invalid");
}

/// Patches race on one object: each commits on the revision it read and is re-applied when
/// another landed first, so no patch is lost; a patch naming a stale resourceVersion is a
/// conflict, and the patched object is re-indexed.
#[test]
fn concurrent_patches_all_land_and_a_stale_precondition_conflicts() {
    let server = Server::start(Config::default());
    let created = create(&server, "a", "shared");
    let path = "/api/v1/namespaces/a/configmaps/shared";
    let merge = ("content-type", "application/merge-patch+json");
    std::thread::scope(|scope| {
        for writer in 0..4 {
            let server = &server;
            scope.spawn(move || {
                for i in 0..10 {
                    let patch = json!({"metadata": {"labels": {format!("w{writer}-{i}"): "x"}}});
                    // Under heavy contention the server's retries may run out: 409, try again.
                    loop {
                        let response =
                            server.request("PATCH", path, &[merge], patch.to_string().as_bytes());
                        match response.status {
                            200 => break,
                            409 => continue,
                            other => panic!("{other}: {}", String::from_utf8_lossy(&response.body)),
                        }
                    }
                }
            });
        }
    });
    let (_, stored) = get(&server, path);
    let labels = stored["metadata"]["labels"].as_object().expect("labels");
    assert_eq!(labels.len(), 40, "{labels:?}");
    assert_eq!(stored["metadata"]["uid"], created["metadata"]["uid"]);
    let (_, selected) = get(&server, "/api/v1/configmaps?labelSelector=w3-9%3Dx");
    assert_eq!(selected["items"].as_array().map(Vec::len), Some(1));

    let stale = json!({"metadata": {"resourceVersion": created["metadata"]["resourceVersion"]}});
    let response = server.request("PATCH", path, &[merge], stale.to_string().as_bytes());
    assert_status(&response.json(), 409, "Conflict");
    let response = server.request("PATCH", path, &[("content-type", "text/plain")], b"{}");
    assert_status(&response.json(), 415, "UnsupportedMediaType");
    let apply = ("content-type", "application/apply-patch+yaml");
    let response = server.request("PATCH", path, &[apply], b"data: {}");
    assert_status(&response.json(), 415, "UnsupportedMediaType");
    let json_patch = ("content-type", "application/json-patch+json");
    let response = server.request("PATCH", path, &[json_patch], b"{\"op\": \"add\"}");
    assert_status(&response.json(), 400, "BadRequest");
    let missing = "/api/v1/namespaces/a/configmaps/missing";
    let response = server.request("PATCH", missing, &[merge], b"{}");
    assert_status(&response.json(), 404, "NotFound");
}

#[test]
fn tokens_guard_the_kubernetes_endpoints() {
    let config = Config {
        tokens: vec!["s3cret".to_owned()],
        ..Config::default()
    };
    let server = Server::start(config);
    for headers in [&[][..], &[("authorization", "Bearer s3cres")][..]] {
        let response = server.request("GET", "/api/v1/configmaps", headers, b"");
        assert_status(&response.json(), 401, "Unauthorized");
    }
    let response = server.request(
        "GET",
        "/api/v1/configmaps",
        &[("authorization", "Bearer s3cret")],
        b"",
    );
    assert_eq!(response.status, 200);
}

#[test]
fn metrics_count_requests_and_chunks_and_show_revisions() {
    let server = Server::start(Config::default());
    create(&server, "a", "one");
    get(&server, "/api/v1/configmaps?limit=1");
    let response = server.request("GET", "/metrics", &[], b"");
    let text = String::from_utf8(response.body).expect("text");
    assert!(
        text.contains(
            "revkv_http_requests_total{api=\"kubernetes\",method=\"POST\",code=\"201\"} 1"
        ),
        "{text}"
    );
    assert!(
        text.contains("revkv_list_chunk_items_count{api=\"kubernetes\"} 1"),
        "{text}"
    );
    assert!(text.contains("revkv_revision 1"), "{text}");
    assert!(text.contains("revkv_compacted_revision 0"), "{text}");
}

/// The lines of a watch that ends after `seconds`, each one event.
fn watch_lines(server: &Server, query: &str) -> Vec<Value> {
    let path = format!("/api/v1/namespaces/a/configmaps?watch=True&{query}");
    let response = server.request("GET", &path, &[], b"");
    assert_eq!(response.status, 200);
    assert_eq!(response.header("content-type"), Some("application/json"));
    let text = String::from_utf8(response.body).expect("text");
    assert!(text.is_empty() || text.ends_with('\n'), "{text:?}");
    text.lines()
        .map(|line| serde_json::from_str(line).expect("one JSON event per line"))
        .collect()
}

fn event_names(events: &[Value]) -> Vec<(String, String)> {
    events
        .iter()
        .map(|event| {
            let name = event["object"]["metadata"]["name"]
                .as_str()
                .unwrap_or("")
                .to_owned();
            (event["type"].as_str().expect("type").to_owned(), name)
        })
        .collect()
}

#[test]
fn a_watch_from_a_resource_version_streams_the_changes_after_it() {
    let server = Server::start(Config::default());
    let first = create(&server, "a", "one");
    let rv = first["metadata"]["resourceVersion"]
        .as_str()
        .expect("rv")
        .to_owned();
    let watcher = {
        let addr = server.addr;
        std::thread::spawn(move || {
            let path = format!(
                "/api/v1/namespaces/a/configmaps?watch=1&resourceVersion={rv}&timeoutSeconds=2"
            );
            common::request(addr, "GET", &path, &[], b"")
        })
    };
    create(&server, "a", "two");
    create(&server, "b", "elsewhere");
    let replaced = server.request("DELETE", "/api/v1/namespaces/a/configmaps/one", &[], b"");
    assert_eq!(replaced.status, 200);
    let response = watcher.join().expect("watcher");
    let text = String::from_utf8(response.body).expect("text");
    let events: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON"))
        .collect();
    assert_eq!(
        event_names(&events),
        [
            ("ADDED".to_owned(), "two".to_owned()),
            ("DELETED".to_owned(), "one".to_owned())
        ]
    );
    assert_eq!(events[1]["object"]["kind"], "ConfigMap");
}

#[test]
fn send_initial_events_ends_its_state_with_the_initial_events_end_bookmark() {
    let server = Server::start(Config::default());
    create(&server, "a", "one");
    create(&server, "a", "two");
    let events = watch_lines(
        &server,
        "sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true&timeoutSeconds=1",
    );
    assert_eq!(
        event_names(&events[..2]),
        [
            ("ADDED".to_owned(), "one".to_owned()),
            ("ADDED".to_owned(), "two".to_owned())
        ]
    );
    let end = &events[2];
    assert_eq!(end["type"], "BOOKMARK");
    assert_eq!(end["object"]["kind"], "ConfigMap");
    assert_eq!(
        end["object"]["metadata"]["annotations"]["k8s.io/initial-events-end"],
        "true"
    );
    assert_eq!(end["object"]["metadata"]["resourceVersion"], "2");
}

#[test]
fn a_watch_from_a_compacted_revision_is_one_expired_error_event() {
    let server = Server::start(Config::default());
    create(&server, "a", "one");
    create(&server, "a", "two");
    server
        .db
        .compact(server.db.current_revision())
        .expect("compact");
    let events = watch_lines(&server, "resourceVersion=1&timeoutSeconds=1");
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["type"], "ERROR");
    assert_status(&events[0]["object"], 410, "Expired");
    assert!(events[0]["object"]["message"].as_str().is_some());
}
