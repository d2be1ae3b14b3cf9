//! The official Python `kubernetes` client and python-swiftclient against a server started
//! here.
//!
//! Needs the virtualenv `scripts/python-clients.sh` creates (scripts/test.sh creates it before
//! it runs the tests); `REVKV_PYTHON` names another interpreter that has both packages. A
//! missing environment fails the tests with a message saying how to make one.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::Server;
use revkv_server::{Config, SwiftAccount};
use serde_json::{json, Value};

const TOKEN: &str = "python-test-token";

fn python() -> PathBuf {
    if let Some(path) = std::env::var_os("REVKV_PYTHON") {
        return PathBuf::from(path);
    }
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/python-clients");
    let python = venv.join("bin/python");
    assert!(
        python.exists(),
        "no Python clients at {}: run scripts/python-clients.sh (scripts/test.sh does)",
        venv.display()
    );
    python
}

/// Runs a Python program with `args` as JSON in `sys.argv[1]`; returns what it prints as JSON.
fn run_python(program: &str, args: &Value) -> Value {
    let output = Command::new(python())
        .arg("-c")
        .arg(program)
        .arg(args.to_string())
        .output()
        .expect("run python");
    assert!(
        output.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap_or_else(|error| {
        panic!(
            "python printed no JSON ({error}): {}",
            String::from_utf8_lossy(&output.stdout)
        )
    })
}

fn config() -> Config {
    Config {
        tokens: vec![TOKEN.to_owned()],
        swift_accounts: vec![SwiftAccount {
            account: "test".to_owned(),
            user: "tester".to_owned(),
            key: "testing".to_owned(),
        }],
        ..Config::default()
    }
}

/// What every program that uses the `kubernetes` client starts with: `api` on the server.
const KUBERNETES_CLIENT: &str = r#"
import json, sys
from kubernetes import client, watch
args = json.loads(sys.argv[1])
configuration = client.Configuration()
configuration.host = args["url"]
configuration.api_key = {"authorization": "Bearer " + args["token"]}
api = client.CoreV1Api(client.ApiClient(configuration))
"#;

const KUBERNETES_PAGES: &str = r#"
for i in range(args["count"]):
    body = client.V1ConfigMap(metadata=client.V1ObjectMeta(name="cm-%04d" % i), data={"i": str(i)})
    api.create_namespaced_config_map("default", body)
pages, names, token = [], [], None
while True:
    page = api.list_namespaced_config_map("default", limit=args["limit"], _continue=token)
    pages.append({"items": len(page.items), "remaining": page.metadata.remaining_item_count,
                  "rv": page.metadata.resource_version})
    names += [item.metadata.name for item in page.items]
    token = page.metadata._continue
    if not token:
        break
expired = None
try:
    api.list_namespaced_config_map("default", limit=1, _continue="not-a-token")
except client.exceptions.ApiException as error:
    expired = {"status": error.status, "reason": json.loads(error.body)["reason"]}
print(json.dumps({"pages": pages, "names": names, "bad_token": expired}))
"#;

#[test]
fn the_kubernetes_client_pages_with_limit_and_continue() {
    let server = Server::start(config());
    let result = run_python(
        &[KUBERNETES_CLIENT, KUBERNETES_PAGES].concat(),
        &json!({"url": server.url("http"), "token": TOKEN, "count": 25, "limit": 10}),
    );
    let expected: Vec<String> = (0..25).map(|i| format!("cm-{i:04}")).collect();
    assert_eq!(result["names"], json!(expected));
    let pages = result["pages"].as_array().expect("pages");
    assert_eq!(pages.len(), 3);
    assert_eq!(pages[0]["remaining"], 15);
    assert_eq!(pages[1]["remaining"], 5);
    assert_eq!(
        pages[2]["remaining"],
        Value::Null,
        "the last page has no count"
    );
    assert!(pages.iter().all(|page| page["rv"] == pages[0]["rv"]));
    assert_eq!(
        result["bad_token"],
        json!({"status": 400, "reason": "BadRequest"})
    );
}

const SWIFT_MODEL: &str = r#"
import json, sys
from swiftclient import client
args = json.loads(sys.argv[1])
url, token = client.get_auth(args["auth"], "test:tester", "testing")
client.put_container(url, token, "c")
for name in args["names"]:
    client.put_object(url, token, "c", name, contents=name.encode(), content_type="text/plain")
def names(rows):
    return [row.get("name", row.get("subdir")) for row in rows]
headers, flat = client.get_container(url, token, "c", full_listing=True, limit=args["limit"])
_, nested = client.get_container(url, token, "c", full_listing=True, limit=args["limit"], delimiter="/")
print(json.dumps({
    "flat": names(flat), "nested": names(nested),
    "count": headers["x-container-object-count"], "bytes": headers["x-container-bytes-used"],
}))
"#;

/// What Swift lists: every name, or with a delimiter each name up to its first `/` once.
fn model(names: &[String], delimiter: bool) -> Vec<String> {
    let mut rows: Vec<String> = names
        .iter()
        .map(|name| match name.find('/') {
            Some(at) if delimiter => name[..=at].to_owned(),
            _ => name.clone(),
        })
        .collect();
    rows.sort();
    rows.dedup();
    rows
}

#[test]
fn swiftclient_full_listings_match_a_model() {
    let server = Server::start(config());
    let names: Vec<String> = (0..230)
        .map(|i| match i % 3 {
            0 => format!("top-{i:03}"),
            1 => format!("dir-{:02}/file-{i:03}", i % 7),
            _ => format!("deep/{:02}/file-{i:03}", i % 5),
        })
        .collect();
    let result = run_python(
        SWIFT_MODEL,
        &json!({"auth": format!("{}/auth/v1.0", server.url("http")), "names": names, "limit": 17}),
    );
    assert_eq!(result["flat"], json!(model(&names, false)));
    assert_eq!(result["nested"], json!(model(&names, true)));
    assert_eq!(result["count"], "230");
    let bytes: usize = names.iter().map(String::len).sum();
    assert_eq!(result["bytes"], bytes.to_string());
}

#[test]
fn the_swift_command_uploads_lists_by_prefix_and_delimiter_and_downloads() {
    let server = Server::start(config());
    let dir = tempfile::tempdir().expect("temporary directory");
    let upload = dir.path().join("up");
    for (path, content) in [
        ("notes.txt", "notes"),
        ("photos/a.jpg", "a"),
        ("photos/2024/b.jpg", "bb"),
        ("photos/2024/c.jpg", "ccc"),
    ] {
        let file = upload.join(path);
        std::fs::create_dir_all(file.parent().expect("parent")).expect("mkdir");
        std::fs::write(file, content).expect("write");
    }
    let swift_bin = python().with_file_name("swift");
    let auth = format!("{}/auth/v1.0", server.url("http"));
    let swift = |args: &[&str], cwd: &std::path::Path| {
        let output = Command::new(&swift_bin)
            .args(["-A", &auth, "-U", "test:tester", "-K", "testing"])
            .args(args)
            .current_dir(cwd)
            .output()
            .expect("run swift");
        assert!(
            output.status.success(),
            "swift {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).expect("utf-8")
    };
    swift(&["upload", "box", "notes.txt", "photos"], &upload);
    assert_eq!(
        swift(
            &["list", "box", "--prefix", "photos/", "--delimiter", "/"],
            &upload
        ),
        "photos/2024/\nphotos/a.jpg\n"
    );
    assert_eq!(
        swift(&["list", "box", "--prefix", "photos/2024/"], &upload),
        "photos/2024/b.jpg\nphotos/2024/c.jpg\n"
    );
    let download = dir.path().join("down");
    std::fs::create_dir_all(&download).expect("mkdir");
    swift(&["download", "box"], &download);
    for (path, content) in [("notes.txt", "notes"), ("photos/2024/c.jpg", "ccc")] {
        assert_eq!(
            std::fs::read_to_string(download.join(path)).expect("downloaded"),
            content
        );
    }
}

const KUBERNETES_WATCH: &str = r#"
first = api.create_namespaced_config_map("default", client.V1ConfigMap(metadata=client.V1ObjectMeta(name="first")))
start = first.metadata.resource_version
api.create_namespaced_config_map("default", client.V1ConfigMap(metadata=client.V1ObjectMeta(name="second")))
api.delete_namespaced_config_map("first", "default")
seen = []
stream = watch.Watch()
for event in stream.stream(api.list_namespaced_config_map, "default", resource_version=start, timeout_seconds=2):
    seen.append([event["type"], event["object"].metadata.name])
    if len(seen) == 2:
        stream.stop()
print(json.dumps({"seen": seen}))
"#;

const KUBERNETES_EXPIRED_WATCH: &str = r#"
outcome = None
try:
    for event in watch.Watch().stream(api.list_namespaced_config_map, "default", resource_version="1"):
        outcome = {"event": event["type"]}
        break
except client.exceptions.ApiException as error:
    outcome = {"status": error.status, "reason": error.reason}
print(json.dumps(outcome))
"#;

#[test]
fn the_kubernetes_watch_streams_changes_and_fails_across_an_expiry() {
    let server = Server::start(config());
    let args = json!({"url": server.url("http"), "token": TOKEN});
    let result = run_python(&[KUBERNETES_CLIENT, KUBERNETES_WATCH].concat(), &args);
    assert_eq!(
        result["seen"],
        json!([["ADDED", "second"], ["DELETED", "first"]])
    );

    server
        .db
        .compact(server.db.current_revision())
        .expect("compact");
    // The client retries an expired watch once, from the same revision, then gives up.
    let expired = run_python(
        &[KUBERNETES_CLIENT, KUBERNETES_EXPIRED_WATCH].concat(),
        &args,
    );
    assert_eq!(expired["status"], 410, "{expired}");
    assert!(
        expired["reason"]
            .as_str()
            .is_some_and(|r| r.starts_with("Expired")),
        "{expired}"
    );
}
