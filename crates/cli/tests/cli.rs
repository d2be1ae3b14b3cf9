//! The `revkv` binary, run as a user or a script would: arguments in, JSON or text out.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::{json, Value};

fn revkv(data: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_revkv"))
        .arg("--data")
        .arg(data)
        .args(args)
        .output()
        .expect("the binary runs")
}

/// The JSON a successful command printed.
fn json_of(output: &Output) -> Value {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "the command failed: {stderr}");
    serde_json::from_slice(&output.stdout).expect("stdout is one JSON value")
}

fn run_json(data: &Path, args: &[&str]) -> Value {
    json_of(&revkv(data, args))
}

fn keys_of(page: &Value) -> Vec<String> {
    let items = page["items"].as_array().expect("items is an array");
    items
        .iter()
        .map(|item| item["key"].as_str().expect("keys are text").to_owned())
        .collect()
}

#[test]
fn put_get_and_delete_print_their_results_as_json() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    assert_eq!(
        run_json(data, &["put", "a", "one"]),
        json!({ "revision": 1 })
    );
    assert_eq!(
        run_json(data, &["put", "a", "two"]),
        json!({ "revision": 2 })
    );
    assert_eq!(
        run_json(data, &["get", "a"]),
        json!({ "key": "a", "value": "two", "create_revision": 1, "mod_revision": 2, "version": 2 })
    );
    assert_eq!(
        run_json(data, &["get", "a", "--revision", "1"])["value"],
        "one"
    );
    assert_eq!(
        run_json(data, &["delete", "a"]),
        json!({ "revision": 3, "deleted": true })
    );
    assert_eq!(
        run_json(data, &["delete", "a"]),
        json!({ "revision": 3, "deleted": false })
    );
}

#[test]
fn getting_a_missing_key_exits_with_status_1_and_one_line_on_stderr() {
    let dir = tempfile::tempdir().unwrap();
    run_json(dir.path(), &["put", "present", "v"]);
    let output = revkv(dir.path(), &["get", "absent"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(output.stdout.is_empty());
    assert_eq!(
        String::from_utf8_lossy(&output.stderr),
        "error: key \"absent\" not found at revision 1\n"
    );
}

#[test]
fn continue_tokens_page_through_every_item_of_the_first_chunks_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    run_json(
        data,
        &[
            "load",
            "--count",
            "7",
            "--prefix",
            "p/",
            "--value-size",
            "4",
        ],
    );
    run_json(data, &["put", "q", "outside the prefix"]);
    let request = ["list", "--prefix", "p/", "--limit", "3", "--json"];
    let mut page = run_json(data, &request);
    let revision = page["revision"].clone();
    let mut keys = keys_of(&page);
    let mut remaining = vec![page["remaining"].clone()];
    while let Some(token) = page["continue"].as_str().map(str::to_owned) {
        // Written between chunks, so invisible to this list.
        run_json(data, &["put", "p/00000003+", "new"]);
        page = run_json(data, &[&request[..], &["--continue", &token]].concat());
        assert_eq!(page["revision"], revision);
        keys.extend(keys_of(&page));
        remaining.push(page["remaining"].clone());
    }
    let expected: Vec<String> = (0..7).map(|index| format!("p/{index:08}")).collect();
    assert_eq!(keys, expected);
    assert_eq!(remaining, [json!(4), json!(1), json!(0)]);
    assert_eq!(page["continue"], Value::Null);
}

#[test]
fn a_garbage_continue_token_fails_with_a_json_error_naming_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let output = revkv(dir.path(), &["list", "--json", "--continue", "not a token"]);
    assert!(!output.status.success());
    assert!(output.stdout.is_empty());
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    let error: Value = serde_json::from_str(&stderr).expect("stderr is JSON");
    assert_eq!(error["error"]["reason"], "InvalidContinueToken");
    assert!(error["error"]["message"]
        .as_str()
        .unwrap()
        .starts_with("invalid continue token"));
}

#[test]
fn errors_of_commands_without_json_are_one_plain_line() {
    let dir = tempfile::tempdir().unwrap();
    let output = revkv(dir.path(), &["list", "--limit", "0"]);
    assert!(!output.status.success());
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(
        stderr,
        "error: invalid request: limit 0 is outside 1..=10000\n"
    );
}

#[test]
fn a_list_without_json_prints_a_table_and_a_footer() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    run_json(data, &["load", "--count", "3", "--prefix", "t/"]);
    let output = revkv(data, &["list", "--from", "t/00000001", "--limit", "1"]);
    let text = String::from_utf8(output.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    assert!(
        lines[0].starts_with("KEY") && lines[0].ends_with("CREATE  MOD  VER"),
        "{text}"
    );
    assert!(lines[1].starts_with("t/00000001  "), "{text}");
    assert!(lines[1].contains('…'), "a 256-byte value is cut: {text}");
    assert_eq!(lines[2], "revision 1 · 1 item · 1 remaining");
    assert!(lines[3].starts_with("continue: "), "{text}");
}

#[test]
fn load_writes_batches_that_stat_then_counts() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let loaded = run_json(
        data,
        &[
            "load",
            "--count",
            "2500",
            "--prefix",
            "k/",
            "--value-size",
            "10",
        ],
    );
    assert_eq!(
        loaded,
        json!({ "revision": 3, "loaded": 2500 }),
        "batches of 1000 puts"
    );
    let last = run_json(data, &["get", "k/00002499"]);
    assert_eq!(last["value"].as_str().unwrap().len(), 10);
    let stat = run_json(data, &["stat", "--json"]);
    assert_eq!(stat["revision"], 3);
    assert_eq!(stat["compacted_revision"], 0);
    assert_eq!(stat["live_keys"], 2500);
    assert_eq!(stat["stored_records"], 2500);
    let text = String::from_utf8(revkv(data, &["stat"]).stdout).unwrap();
    assert!(
        text.lines()
            .any(|line| line.starts_with("live keys") && line.ends_with(" 2500")),
        "{text}"
    );
}

#[test]
fn compact_reports_what_it_removed_and_an_expired_list_offers_a_token() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    for value in ["1", "2", "3"] {
        for key in ["k/a", "k/b", "k/c"] {
            run_json(data, &["put", key, value]);
        }
    }
    let first = run_json(data, &["list", "--prefix", "k/", "--limit", "1", "--json"]);
    let token = first["continue"]
        .as_str()
        .expect("more items follow")
        .to_owned();
    run_json(data, &["put", "k/d", "new"]);
    let report = run_json(data, &["compact", "--revision", "10"]);
    assert_eq!(report["revision"], 10);
    assert_eq!(report["previous"], 0);
    assert_eq!(report["removed_records"], 6);
    assert!(report["elapsed_ms"].is_number());
    let again = run_json(data, &["compact", "--revision", "4"]);
    assert_eq!(again["already_compacted"], true);

    let expired = revkv(
        data,
        &["list", "--prefix", "k/", "--continue", &token, "--json"],
    );
    assert!(!expired.status.success());
    let line: Value = serde_json::from_slice(&expired.stderr).expect("one JSON error line");
    assert_eq!(line["error"]["reason"], "Expired");
    let newest = line["error"]["continue"]
        .as_str()
        .expect("a token at the newest revision");
    let rest = run_json(
        data,
        &["list", "--prefix", "k/", "--continue", newest, "--json"],
    );
    assert_eq!(rest["revision"], 10);
    assert_eq!(keys_of(&rest), ["k/b", "k/c", "k/d"]);
}

#[test]
fn compact_without_a_revision_uses_the_retention_window() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    for value in ["1", "2", "3", "4"] {
        run_json(data, &["put", "k", value]);
    }
    let report = run_json(data, &["--retention", "1rev", "compact"]);
    assert_eq!(report["revision"], 3);
    let manual = run_json(data, &["--retention", "manual", "compact"]);
    assert_eq!(manual, json!({ "compacted": 3 }));
    let bad = revkv(data, &["--retention", "soon", "stat"]);
    assert!(!bad.status.success());
}

#[test]
fn list_filters_by_selectors_and_rolls_up_at_a_delimiter() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    run_json(data, &["put", "photos/a.jpg", "x", "--label", "kind=jpeg"]);
    run_json(
        data,
        &[
            "put",
            "photos/2024/b.jpg",
            "x",
            "--label",
            "kind=jpeg",
            "--field",
            "size=big",
        ],
    );
    run_json(data, &["put", "photos/c.png", "x", "--label", "kind=png"]);
    let rolled = run_json(
        data,
        &["list", "--prefix", "photos/", "--delimiter", "/", "--json"],
    );
    assert_eq!(keys_of(&rolled), ["photos/a.jpg", "photos/c.png"]);
    assert_eq!(rolled["prefixes"], json!([{ "subdir": "photos/2024/" }]));
    assert_eq!(rolled["remaining"], Value::Null);
    let jpegs = run_json(
        data,
        &[
            "list",
            "--prefix",
            "photos/",
            "--selector",
            "kind=jpeg",
            "--json",
        ],
    );
    assert_eq!(keys_of(&jpegs), ["photos/2024/b.jpg", "photos/a.jpg"]);
    let big = run_json(data, &["list", "--field-selector", "size=big", "--json"]);
    assert_eq!(keys_of(&big), ["photos/2024/b.jpg"]);
    let window = run_json(
        data,
        &[
            "list",
            "--prefix",
            "photos/",
            "--marker",
            "photos/2024/b.jpg",
            "--end-marker",
            "photos/c.png",
            "--json",
        ],
    );
    assert_eq!(keys_of(&window), ["photos/a.jpg"]);
    let bad = revkv(data, &["list", "--selector", "kind in (jpeg", "--json"]);
    let line: Value = serde_json::from_slice(&bad.stderr).expect("one JSON error line");
    assert_eq!(line["error"]["reason"], "InvalidSelector");
    let bad_label = revkv(data, &["put", "k", "v", "--label", "bad key=1"]);
    assert!(!bad_label.status.success());
}

#[test]
fn history_prints_every_change_since_a_revision_and_refuses_a_compacted_one() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let data = dir.path().join("store");
    run_json(&data, &["put", "pods/a", "1", "--label", "app=web"]);
    run_json(&data, &["put", "pods/a", "2", "--label", "app=db"]);
    run_json(&data, &["put", "other", "x"]);
    run_json(&data, &["delete", "pods/a"]);
    let text = revkv(
        &data,
        &["history", "--prefix", "pods/", "--since", "1", "--prev"],
    );
    assert_eq!(
        String::from_utf8_lossy(&text.stdout),
        "1 PUT pods/a 1\n2 PUT pods/a 2 (prev 1)\n4 DELETE pods/a (prev 2)\n"
    );
    let json = revkv(
        &data,
        &["history", "--since", "2", "--selector", "app=web", "--json"],
    );
    let lines: Vec<Value> = String::from_utf8_lossy(&json.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).expect("a JSON line"))
        .collect();
    assert_eq!(
        lines,
        [json!({"revision": 2, "type": "DELETE", "key": "pods/a"})]
    );
    run_json(&data, &["compact", "--revision", "3"]);
    let refused = revkv(&data, &["history", "--since", "3", "--json"]);
    assert!(!refused.status.success());
    let error: Value = serde_json::from_slice(&refused.stderr).expect("a JSON error");
    assert_eq!(error["error"]["reason"], "Expired");
}

#[test]
fn serve_answers_on_its_port_and_stops_cleanly_on_sigterm() {
    use std::io::{BufRead, BufReader, Read, Write};

    let dir = tempfile::tempdir().unwrap();
    let mut server = Command::new(env!("CARGO_BIN_EXE_revkv"))
        .arg("--data")
        .arg(dir.path())
        .args(["serve", "--listen", "127.0.0.1:0"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("the binary runs");
    let mut line = String::new();
    let stdout = server.stdout.take().expect("stdout");
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("the listening line");
    let address = line
        .trim()
        .strip_prefix("listening on http://")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
    let mut stream = std::net::TcpStream::connect(address).expect("connect");
    stream
        .write_all(b"GET /api/v1/configmaps HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .expect("request");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("answer");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("\"kind\":\"ConfigMapList\""), "{answer}");
    let killed = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(killed.success());
    let status = server.wait().expect("the server exits");
    assert!(status.success(), "serve exited with {status}");
}

#[test]
fn the_http_bench_checks_every_chunk_and_reports_each_figure() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let out = dir.path().join("report");
    let output = revkv(
        &dir.path().join("unused"),
        &[
            "bench",
            "http",
            "--objects",
            "1000,2000",
            "--limit",
            "50",
            "--clients",
            "3",
            "--samples",
            "5",
            "--seconds",
            "0",
            "--out",
            out.to_str().expect("a UTF-8 path"),
        ],
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the bench failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("chunk of 50, 2k objects, last"), "{stdout}");
    assert!(stdout.contains("3 clients paging, 2k objects"), "{stdout}");
    let report: Value = serde_json::from_slice(
        &std::fs::read(out.join("http-report.json")).expect("the report is written"),
    )
    .expect("the report is JSON");
    let runs = report["runs"].as_array().expect("runs");
    let collections: Vec<(&str, u64)> = (runs.iter())
        .map(|run| {
            let settings = &run["settings"];
            (
                settings["workload"].as_str().expect("a workload"),
                settings["object_size"].as_u64().expect("an object size"),
            )
        })
        .collect();
    assert_eq!(
        collections,
        [
            ("interleaved", 500),
            ("interleaved", 4096),
            ("random", 500),
            ("random", 4096)
        ],
        "the default workloads and object sizes, each a run"
    );
    for run in runs {
        let engines = run["engines"].as_array().expect("engines");
        assert_eq!(engines.len(), 1, "no peer was asked for");
        let sizes = engines[0]["sizes"].as_array().expect("sizes");
        let objects: Vec<u64> = sizes.iter().filter_map(|s| s["objects"].as_u64()).collect();
        assert_eq!(objects, [1000, 2000]);
        for size in sizes {
            let live = size["live"].as_u64().expect("live");
            assert!(
                live < size["objects"].as_u64().expect("objects"),
                "the churn deletes"
            );
            for position in ["first", "middle", "last"] {
                assert!(size["chunk"][position]["samples"].as_u64() >= Some(5));
            }
            // Each of 3 clients lists the whole collection at least once.
            assert!(size["lists"]["count"].as_u64() >= Some(3 * live), "{size}");
        }
    }
}
