//! kubectl against a server started here, on an ephemeral port, through a temporary
//! kubeconfig with a bearer token. kubectl sends a token only over TLS, so the server kubectl
//! talks to has a self-signed certificate; a second, plain-HTTP server over the same store
//! takes the test's own requests.
//!
//! Needs `kubectl` (1.32) on PATH; scripts/test.sh runs this with the rest of the workspace's
//! tests. A missing kubectl fails the test with a message saying so: it is never skipped.

mod common;

use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use common::{versions, SelfSigned, Server};
use revkv_server::{Config, KindConfig};
use serde_json::{json, Value};

const TOKEN: &str = "kubectl-test-token";

/// A kubeconfig and a discovery cache of its own, so runs never share kubectl's caches.
struct Kubectl {
    dir: tempfile::TempDir,
    /// The HTTPS server kubectl talks to, and its certificate.
    _server: Server,
    _certificate: SelfSigned,
}

impl Kubectl {
    /// kubectl with `token`, against an HTTPS server over `plain`'s store.
    fn new(plain: &Server, token: &str) -> Kubectl {
        let certificate = SelfSigned::generate();
        let config = Config {
            tls: Some(certificate.tls.clone()),
            ..config()
        };
        let server = Server::over(plain.db.clone(), config);
        let dir = tempfile::tempdir().expect("temporary directory");
        let kubeconfig = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: revkv\n  cluster:\n    server: {}\n    \
             certificate-authority: {}\nusers:\n- name: tester\n  user:\n    token: {token}\ncontexts:\n- name: revkv\n  \
             context:\n    cluster: revkv\n    user: tester\n    namespace: default\n\
             current-context: revkv\n",
            server.url("https"),
            certificate.ca_file.display()
        );
        std::fs::write(dir.path().join("kubeconfig"), kubeconfig).expect("write kubeconfig");
        Kubectl {
            dir,
            _server: server,
            _certificate: certificate,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn run(&self, args: &[&str]) -> Output {
        self.run_with_editor(args, "vi")
    }

    /// Runs kubectl with `editor` as the editor of `kubectl edit`.
    fn run_with_editor(&self, args: &[&str], editor: &str) -> Output {
        let output = Command::new("kubectl")
            .env("KUBE_EDITOR", editor)
            .arg("--kubeconfig")
            .arg(self.path("kubeconfig"))
            .arg("--cache-dir")
            .arg(self.path("cache"))
            .args(args)
            .output();
        match output {
            Ok(output) => output,
            Err(error) => panic!(
                "cannot run kubectl ({error}): these tests need kubectl 1.32 on PATH, as \
                 every machine that runs scripts/test.sh has"
            ),
        }
    }

    /// Runs kubectl and returns its stdout; panics with its stderr if it fails.
    fn ok(&self, args: &[&str]) -> String {
        let output = self.run(args);
        assert!(
            output.status.success(),
            "kubectl {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).expect("utf-8 output")
    }

    /// Writes `object` to a file and runs `kubectl <verb> -f` on it.
    fn with_file(&self, verb: &str, object: &Value) -> Output {
        let file = self.path("object.json");
        std::fs::write(&file, object.to_string()).expect("write object");
        self.run(&[verb, "-f", file.to_str().expect("utf-8 path")])
    }
}

fn config() -> Config {
    Config {
        tokens: vec![TOKEN.to_owned()],
        kinds: vec![KindConfig {
            group: "revkv.io".to_owned(),
            version: "v1".to_owned(),
            kind: "Widget".to_owned(),
            plural: "widgets".to_owned(),
            singular: None,
            namespaced: true,
            short_names: vec!["wd".to_owned()],
            selectable_fields: vec!["spec.color".to_owned()],
        }],
        ..Config::default()
    }
}

fn config_map(namespace: &str, name: &str, labels: Value) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "data": {"name": name},
    })
}

/// Creates an object through the API, as any client would.
fn post(server: &Server, path: &str, object: &Value) -> u16 {
    let auth = format!("Bearer {TOKEN}");
    let body = object.to_string();
    let headers = [
        ("content-type", "application/json"),
        ("authorization", auth.as_str()),
    ];
    server
        .request("POST", path, &headers, body.as_bytes())
        .status
}

fn delete(server: &Server, path: &str) -> u16 {
    let auth = format!("Bearer {TOKEN}");
    server
        .request("DELETE", path, &[("authorization", auth.as_str())], b"")
        .status
}

#[test]
fn a_chunked_list_across_namespaces_under_writes_is_one_snapshot() {
    let server = Arc::new(Server::start(config()));
    let namespaces = ["alpha", "beta", "gamma"];
    std::thread::scope(|scope| {
        for (n, namespace) in namespaces.iter().enumerate() {
            let server = &server;
            scope.spawn(move || {
                for i in 0..1000 {
                    let object = config_map(
                        namespace,
                        &format!("cm-{i:04}"),
                        json!({"n": n.to_string()}),
                    );
                    let path = format!("/api/v1/namespaces/{namespace}/configmaps");
                    assert_eq!(post(server, &path, &object), 201);
                }
            });
        }
    });
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (server, stop) = (server.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut written = 0u64;
            while !stop.load(Ordering::Relaxed) {
                // A new object in the middle of the key space, and an old one gone.
                let name = format!("cm-{written:04}-new");
                let object = config_map("beta", &name, json!({}));
                assert_eq!(
                    post(&server, "/api/v1/namespaces/beta/configmaps", &object),
                    201
                );
                let old = format!("/api/v1/namespaces/alpha/configmaps/cm-{written:04}");
                assert_eq!(delete(&server, &old), 200);
                written += 1;
            }
            written
        })
    };
    let kubectl = Kubectl::new(&server, TOKEN);
    let output = kubectl.run(&[
        "get",
        "configmaps",
        "-A",
        "--chunk-size=250",
        "-o",
        "json",
        "-v=6",
    ]);
    stop.store(true, Ordering::Relaxed);
    let written = writer.join().expect("writer");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let listed: Value = serde_json::from_slice(&output.stdout).expect("kubectl prints JSON");
    let listed = versions(&listed);
    let log = String::from_utf8_lossy(&output.stderr);
    let pages = log.matches("continue=").count();
    assert!(pages >= 11, "kubectl paged {pages} times:\n{log}");
    assert!(written > 0, "the writer never wrote during the list");

    // The snapshot: the list read exactly at some revision at or after the newest item.
    let newest = listed
        .values()
        .map(|rv| rv.parse::<u64>().expect("numeric rv"))
        .max()
        .expect("items");
    let current = server.db.current_revision().get();
    let snapshot = (newest..=current).find(|revision| {
        let path =
            format!("/api/v1/configmaps?resourceVersion={revision}&resourceVersionMatch=Exact");
        let auth = format!("Bearer {TOKEN}");
        let page = server.request("GET", &path, &[("authorization", auth.as_str())], b"");
        versions(&page.json()) == listed
    });
    assert!(
        snapshot.is_some(),
        "the {} items kubectl listed are the state at no revision in {newest}..={current}",
        listed.len()
    );
    assert!(
        current > snapshot.unwrap_or(0),
        "no write landed after the list started"
    );
}

#[test]
fn kubectl_creates_selects_replaces_and_deletes() {
    let server = Server::start(config());
    let kubectl = Kubectl::new(&server, TOKEN);
    for (name, app) in [("web-1", "web"), ("web-2", "web"), ("db-1", "db")] {
        let output = kubectl.with_file("create", &config_map("default", name, json!({"app": app})));
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    for (name, phase) in [("p-run", "Running"), ("p-wait", "Pending")] {
        let pod = json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]},
            "status": {"phase": phase},
        });
        let output = kubectl.with_file("create", &pod);
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    assert_eq!(
        kubectl.ok(&["get", "configmaps", "-l", "app=web", "-o", "name"]),
        "configmap/web-1\nconfigmap/web-2\n"
    );
    assert_eq!(
        kubectl.ok(&[
            "get",
            "pods",
            "--field-selector",
            "status.phase=Running",
            "-o",
            "name"
        ]),
        "pod/p-run\n"
    );
    // Human output is the server's Table, with kubectl's namespace column across namespaces.
    let table = kubectl.ok(&["get", "cm", "-A"]);
    assert!(table.starts_with("NAMESPACE"), "{table}");
    assert!(table.contains("default     web-2"), "{table}");

    let page = kubectl.ok(&[
        "get",
        "--raw",
        "/api/v1/namespaces/default/configmaps?limit=2",
    ]);
    let page: Value = serde_json::from_str(&page).expect("raw JSON");
    assert_eq!(page["kind"], "ConfigMapList");
    assert_eq!(page["items"].as_array().map(Vec::len), Some(2));
    assert_eq!(page["metadata"]["remainingItemCount"], 1);
    assert!(page["metadata"]["continue"]
        .as_str()
        .is_some_and(|t| !t.is_empty()));

    let stored: Value =
        serde_json::from_str(&kubectl.ok(&["get", "cm", "web-1", "-o", "json"])).expect("JSON");
    assert!(stored["metadata"]["uid"].as_str().is_some());
    assert!(stored["metadata"]["creationTimestamp"].as_str().is_some());
    let fresh = kubectl.with_file("replace", &stored);
    assert!(
        fresh.status.success(),
        "{}",
        String::from_utf8_lossy(&fresh.stderr)
    );
    let stale = kubectl.with_file("replace", &stored);
    assert!(!stale.status.success());
    let message = String::from_utf8_lossy(&stale.stderr);
    assert!(message.contains("Conflict"), "{message}");

    assert_eq!(
        kubectl.ok(&["delete", "configmap", "web-1"]),
        "configmap \"web-1\" deleted\n"
    );
    let gone = kubectl.run(&["get", "configmap", "web-1"]);
    assert!(!gone.status.success());
    assert!(String::from_utf8_lossy(&gone.stderr).contains("NotFound"));
}

/// kubectl's typed `create` commands send protobuf (`run` sends JSON). What the server stores
/// is what the same command prints with `--dry-run=client -o json`, plus the fields the server
/// fills in.
#[test]
fn kubectl_typed_commands_send_protobuf_and_store_what_json_would_carry() {
    let server = Server::start(config());
    let kubectl = Kubectl::new(&server, TOKEN);
    let protobuf = "application/vnd.kubernetes.protobuf";
    let commands: [(&[&str], &str, &str); 5] = [
        (
            &["create", "configmap", "x", "--from-literal=a=b"],
            "configmap/x",
            protobuf,
        ),
        (&["create", "namespace", "foo"], "namespace/foo", protobuf),
        (
            &["create", "secret", "generic", "s", "--from-literal=k=v"],
            "secret/s",
            protobuf,
        ),
        (
            &["create", "service", "clusterip", "svc", "--tcp=80:8080"],
            "service/svc",
            protobuf,
        ),
        (
            &[
                "run",
                "nginx",
                "--image=nginx",
                "--labels=app=web",
                "--port=80",
            ],
            "pod/nginx",
            "application/json",
        ),
    ];
    for (command, object, content_type) in commands {
        let mut expected: Value = serde_json::from_str(
            &kubectl.ok(&[command, &["--dry-run=client", "-o", "json"]].concat()),
        )
        .expect("kubectl prints JSON");
        let created = kubectl.run(&[command, &["-v=8"]].concat());
        let log = String::from_utf8_lossy(&created.stderr);
        assert!(created.status.success(), "{command:?}: {log}");
        assert!(
            log.contains(&format!("Content-Type: {content_type}")),
            "{command:?} did not send {content_type}: {log}"
        );
        let mut stored: Value =
            serde_json::from_str(&kubectl.ok(&["get", object, "-o", "json"])).expect("JSON");
        let metadata = stored["metadata"].as_object_mut().expect("metadata");
        for filled_in in ["uid", "creationTimestamp", "resourceVersion"] {
            assert!(
                metadata.remove(filled_in).is_some(),
                "{object}: no {filled_in}"
            );
        }
        let expected_metadata = expected["metadata"].as_object_mut().expect("metadata");
        expected_metadata.remove("creationTimestamp");
        // The dry run leaves the namespace to the URL, which the server records.
        if object != "namespace/foo" {
            expected_metadata.insert("namespace".into(), "default".into());
        }
        assert_eq!(stored, expected, "{command:?}");
    }
    // The comparison above is only as good as the dry runs: spot-check that they hold the data.
    let get = |object: &str| -> Value {
        serde_json::from_str(&kubectl.ok(&["get", object, "-o", "json"])).expect("JSON")
    };
    assert_eq!(get("configmap/x")["data"], json!({"a": "b"}));
    assert_eq!(get("secret/s")["data"], json!({"k": "dg=="}));
    let service = get("service/svc");
    assert_eq!(service["spec"]["ports"][0]["targetPort"], 8080);
    assert_eq!(service["spec"]["selector"], json!({"app": "svc"}));
    let pod = get("pod/nginx");
    assert_eq!(pod["spec"]["containers"][0]["image"], "nginx");
    assert_eq!(
        pod["spec"]["containers"][0]["ports"][0]["containerPort"],
        80
    );
    assert_eq!(
        kubectl.ok(&["get", "pods", "-l", "app=web", "-o", "name"]),
        "pod/nginx\n"
    );
}

/// kubectl's patching commands: `label` and `annotate` (merge patches), `patch` of every type,
/// and client-side `apply` (a create, then a strategic merge patch).
#[test]
fn kubectl_label_annotate_patch_and_apply_change_objects_in_place() {
    let server = Server::start(config());
    let kubectl = Kubectl::new(&server, TOKEN);
    let created = kubectl.with_file(
        "create",
        &config_map("default", "cm", json!({"app": "web"})),
    );
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let get = |object: &str| -> Value {
        serde_json::from_str(&kubectl.ok(&["get", object, "-o", "json"])).expect("JSON")
    };
    let revision = |object: &Value| -> u64 {
        object["metadata"]["resourceVersion"]
            .as_str()
            .and_then(|rv| rv.parse().ok())
            .expect("rv")
    };
    let before = get("configmap/cm");

    kubectl.ok(&["label", "configmap", "cm", "tier=front", "app-"]);
    kubectl.ok(&["annotate", "configmap", "cm", "note=hello"]);
    kubectl.ok(&[
        "patch",
        "configmap",
        "cm",
        "--type=merge",
        "-p",
        r#"{"data":{"merged":"1"}}"#,
    ]);
    kubectl.ok(&[
        "patch",
        "configmap",
        "cm",
        "--type=json",
        "-p",
        r#"[{"op":"replace","path":"/data/name","value":"renamed"},{"op":"add","path":"/data/json","value":"2"}]"#,
    ]);
    kubectl.ok(&[
        "patch",
        "configmap",
        "cm",
        "-p",
        r#"{"data":{"strategic":"3"}}"#,
    ]);
    let after = get("configmap/cm");
    assert_eq!(after["metadata"]["labels"], json!({"tier": "front"}));
    assert_eq!(after["metadata"]["annotations"]["note"], "hello");
    assert_eq!(
        after["data"],
        json!({"name": "renamed", "merged": "1", "json": "2", "strategic": "3"})
    );
    assert_eq!(after["metadata"]["uid"], before["metadata"]["uid"]);
    assert!(revision(&after) > revision(&before));
    // The label index follows the patches.
    assert_eq!(
        kubectl.ok(&["get", "cm", "-l", "tier=front", "-o", "name"]),
        "configmap/cm\n"
    );
    assert_eq!(
        kubectl.ok(&["get", "cm", "-l", "app=web", "-o", "name"]),
        ""
    );

    // kubectl edit, with an editor that rewrites one value.
    let edited = kubectl.run_with_editor(
        &["edit", "configmap", "cm"],
        "sed -i s/strategic:.*/strategic:\\ edited/",
    );
    assert!(
        edited.status.success(),
        "{}",
        String::from_utf8_lossy(&edited.stderr)
    );
    let after = get("configmap/cm");
    assert_eq!(after["data"]["strategic"], "edited");

    // A failing JSON patch test changes nothing.
    let failed = kubectl.run(&[
        "patch",
        "configmap",
        "cm",
        "--type=json",
        "-p",
        r#"[{"op":"add","path":"/data/x","value":"y"},{"op":"test","path":"/data/name","value":"no"}]"#,
    ]);
    assert!(!failed.status.success());
    assert_eq!(revision(&get("configmap/cm")), revision(&after));

    // A strategic merge patch merges a pod's containers by name.
    let pod = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "a", "image": "a:1"}, {"name": "b", "image": "b:1"}]},
    });
    let created = kubectl.with_file("create", &pod);
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    kubectl.ok(&[
        "patch",
        "pod",
        "p",
        "-p",
        r#"{"spec":{"containers":[{"name":"b","image":"b:2"}]}}"#,
    ]);
    assert_eq!(
        get("pod/p")["spec"]["containers"],
        json!([{"name": "a", "image": "a:1"}, {"name": "b", "image": "b:2"}])
    );

    // apply creates, then patches what changed since the last apply.
    let applied = config_map("default", "applied", json!({"v": "1"}));
    let first = kubectl.with_file("apply", &applied);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let mut changed = applied.clone();
    changed["metadata"]["labels"] = json!({"v": "2"});
    changed["data"] = json!({"other": "x"});
    let second = kubectl.with_file("apply", &changed);
    assert!(
        second.status.success(),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&second.stdout),
        "configmap/applied configured\n"
    );
    let stored = get("configmap/applied");
    assert_eq!(stored["metadata"]["labels"], json!({"v": "2"}));
    assert_eq!(stored["data"], json!({"other": "x"}));
    assert!(
        stored["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
            .as_str()
            .is_some_and(|applied| applied.contains("other"))
    );
}

/// kubectl apply of a changed pod sends `$setElementOrder` for the lists it merges: the
/// stored pod gets the new container and port, in the order of the applied file.
#[test]
fn kubectl_apply_of_a_changed_pod_merges_and_orders_its_lists() {
    let server = Server::start(config());
    let kubectl = Kubectl::new(&server, TOKEN);
    let mut pod = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "applied"},
        "spec": {"containers": [
            {"name": "web", "image": "web:1", "ports": [{"containerPort": 80}]},
        ]},
    });
    let first = kubectl.with_file("apply", &pod);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    // The new container goes first, so the order directive is what puts it there.
    pod["spec"]["containers"] = json!([
        {"name": "sidecar", "image": "sidecar:1"},
        {"name": "web", "image": "web:2", "ports": [{"containerPort": 80}, {"containerPort": 443}]},
    ]);
    let file = kubectl.path("object.json");
    std::fs::write(&file, pod.to_string()).expect("write object");
    let second = kubectl.run(&["apply", "-f", file.to_str().expect("utf-8 path"), "-v=8"]);
    let log = String::from_utf8_lossy(&second.stderr);
    assert!(second.status.success(), "{log}");
    assert!(log.contains("$setElementOrder/containers"), "{log}");
    assert_eq!(
        String::from_utf8_lossy(&second.stdout),
        "pod/applied configured\n"
    );
    let stored: Value =
        serde_json::from_str(&kubectl.ok(&["get", "pod", "applied", "-o", "json"])).expect("JSON");
    assert_eq!(stored["spec"]["containers"], pod["spec"]["containers"]);
}

/// `--dry-run=server` (`dryRun=All`) checks and computes every write as a real one, with the
/// same errors, and answers with what would be stored, but stores nothing.
#[test]
fn kubectl_server_dry_runs_answer_as_real_writes_and_store_nothing() {
    let server = Server::start(config());
    let kubectl = Kubectl::new(&server, TOKEN);
    let parse = |output: &str| -> Value { serde_json::from_str(output).expect("JSON") };
    let kept = config_map("default", "kept", json!({"app": "web"}));
    let created = kubectl.with_file("create", &kept);
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let stale = parse(&kubectl.ok(&["get", "cm", "kept", "-o", "json"]));
    kubectl.ok(&["label", "cm", "kept", "tier=front"]);
    let stored = parse(&kubectl.ok(&["get", "cm", "kept", "-o", "json"]));
    let revision = server.db.current_revision();
    let dry_run = |verb: &str, object: &Value| {
        let file = kubectl.path("dry-run.json");
        std::fs::write(&file, object.to_string()).expect("write object");
        let file = file.to_str().expect("utf-8 path");
        kubectl.run(&[verb, "-f", file, "--dry-run=server", "-o", "json"])
    };
    let succeeded = |output: &Output| -> Value {
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        parse(&String::from_utf8_lossy(&output.stdout))
    };
    let failed = |output: &Output, reason: &str| {
        assert!(!output.status.success());
        let message = String::from_utf8_lossy(&output.stderr);
        assert!(message.contains(reason), "{message}");
    };

    // A create answers with the fields the server fills in, and no resourceVersion.
    let fresh = succeeded(&dry_run(
        "create",
        &config_map("default", "fresh", json!({})),
    ));
    assert!(fresh["metadata"]["uid"].as_str().is_some(), "{fresh}");
    assert!(fresh["metadata"]["creationTimestamp"].as_str().is_some());
    assert_eq!(fresh["metadata"].get("resourceVersion"), None, "{fresh}");
    failed(&dry_run("create", &kept), "AlreadyExists");

    // A replace answers with the new object at the stored resourceVersion; a stale one is
    // the conflict it would be.
    let mut replacement = stored.clone();
    replacement["data"] = json!({"replaced": "1"});
    let replaced = succeeded(&dry_run("replace", &replacement));
    assert_eq!(replaced["data"], json!({"replaced": "1"}));
    assert_eq!(replaced["metadata"], stored["metadata"]);
    failed(&dry_run("replace", &stale), "Conflict");

    let patched = kubectl.run(&[
        "patch",
        "cm",
        "kept",
        "--dry-run=server",
        "-o",
        "json",
        "-p",
        r#"{"data":{"patched":"1"}}"#,
    ]);
    assert_eq!(succeeded(&patched)["data"]["patched"], "1");
    let missing = kubectl.run(&["patch", "cm", "missing", "--dry-run=server", "-p", "{}"]);
    failed(&missing, "NotFound");

    assert_eq!(
        kubectl.ok(&["delete", "cm", "kept", "--dry-run=server"]),
        "configmap \"kept\" deleted (server dry run)\n"
    );
    failed(
        &kubectl.run(&["delete", "cm", "missing", "--dry-run=server"]),
        "NotFound",
    );

    assert_eq!(
        parse(&kubectl.ok(&["get", "cm", "kept", "-o", "json"])),
        stored
    );
    failed(&kubectl.run(&["get", "cm", "fresh"]), "NotFound");
    assert_eq!(server.db.current_revision(), revision);
}

/// Any `dryRun` value but `All` is refused as the apiserver's option validation refuses it,
/// naming the options kind, whether it comes in the query or a `DeleteOptions` body.
#[test]
fn a_dry_run_value_other_than_all_is_an_invalid_option() {
    let server = Server::start(config());
    let auth = format!("Bearer {TOKEN}");
    let headers = [
        ("content-type", "application/json"),
        ("authorization", auth.as_str()),
    ];
    let object = config_map("default", "cm", json!({})).to_string();
    let path = "/api/v1/namespaces/default/configmaps";
    let revision = server.db.current_revision();
    let refused = server.request(
        "POST",
        &format!("{path}?dryRun=true"),
        &headers,
        object.as_bytes(),
    );
    assert_eq!(refused.status, 422);
    let status = refused.json();
    assert_eq!(status["reason"], "Invalid");
    assert_eq!(
        status["message"],
        "CreateOptions.meta.k8s.io \"\" is invalid: dryRun: Unsupported value: [\"true\"]: \
         supported values: \"All\""
    );
    assert_eq!(server.db.current_revision(), revision);

    assert_eq!(
        post(&server, path, &config_map("default", "cm", json!({}))),
        201
    );
    let refused = server.request(
        "DELETE",
        &format!("{path}/cm"),
        &headers,
        br#"{"kind":"DeleteOptions","apiVersion":"v1","dryRun":["Server"]}"#,
    );
    assert_eq!(refused.status, 422);
    assert!(refused.json()["message"]
        .as_str()
        .is_some_and(|message| message.starts_with("DeleteOptions.meta.k8s.io")));
    let kept = server.request(
        "GET",
        &format!("{path}/cm"),
        &[("authorization", auth.as_str())],
        b"",
    );
    assert_eq!(kept.status, 200);
}

#[test]
fn kubectl_finds_configured_kinds_by_name_and_short_name() {
    let server = Server::start(config());
    let kubectl = Kubectl::new(&server, TOKEN);
    let widget = json!({
        "apiVersion": "revkv.io/v1",
        "kind": "Widget",
        "metadata": {"name": "w1"},
        "spec": {"color": "blue"},
    });
    let output = kubectl.with_file("create", &widget);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        kubectl.ok(&["get", "wd", "-o", "name"]),
        "widget.revkv.io/w1\n"
    );
    assert_eq!(
        kubectl.ok(&[
            "get",
            "widgets",
            "--field-selector",
            "spec.color=red",
            "-o",
            "name"
        ]),
        ""
    );
}

#[test]
fn kubectl_with_a_wrong_token_is_unauthorized() {
    let server = Server::start(config());
    let kubectl = Kubectl::new(&server, "not-the-token");
    let output = kubectl.run(&["get", "--raw", "/api/v1/configmaps"]);
    assert!(!output.status.success());
    let message = String::from_utf8_lossy(&output.stderr);
    assert!(message.contains("Unauthorized"), "{message}");
}

#[test]
fn kubectl_get_watch_sees_a_change() {
    use std::io::{BufRead, BufReader};

    let plain = Server::start(config());
    let kubectl = Kubectl::new(&plain, TOKEN);
    let mut watching = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(kubectl.path("kubeconfig"))
        .arg("--cache-dir")
        .arg(kubectl.path("cache"))
        .args(["get", "configmaps", "-w", "-o", "name"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("kubectl runs");
    let stdout = watching.stdout.take().expect("stdout");
    let (seen, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if seen.send(line).is_err() {
                break;
            }
        }
    });
    // Until kubectl's watch is open, a change may land in its initial list instead: either way
    // it must show up.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let mut found = false;
    let mut attempt = 0;
    while !found && std::time::Instant::now() < deadline {
        let name = format!("watched-{attempt}");
        let object = config_map("default", &name, json!({}));
        assert_eq!(
            post(&plain, "/api/v1/namespaces/default/configmaps", &object),
            201
        );
        attempt += 1;
        while let Ok(line) = lines.recv_timeout(std::time::Duration::from_millis(500)) {
            if line.starts_with("configmap/watched-") {
                found = true;
                break;
            }
        }
    }
    let _ = watching.kill();
    let _ = watching.wait();
    assert!(found, "kubectl get -w printed no change");
}
