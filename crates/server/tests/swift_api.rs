//! The Swift-style API over raw HTTP: TempAuth, listing parameters and formats, Swift's
//! empty-page rules, exact counts, ETags and the object size limit.

mod common;

use common::{Response, Server};
use revkv_server::{Config, SwiftAccount};
use serde_json::Value;

fn config() -> Config {
    Config {
        swift_accounts: vec![SwiftAccount {
            account: "test".to_owned(),
            user: "tester".to_owned(),
            key: "testing".to_owned(),
        }],
        ..Config::default()
    }
}

/// A logged-in client of account `test`.
struct Client<'a> {
    server: &'a Server,
    token: String,
}

impl<'a> Client<'a> {
    fn login(server: &'a Server) -> Client<'a> {
        let headers = [("x-auth-user", "test:tester"), ("x-auth-key", "testing")];
        let response = server.request("GET", "/auth/v1.0", &headers, b"");
        assert_eq!(response.status, 200);
        let url = response.header("x-storage-url").expect("storage url");
        assert_eq!(url, format!("{}/v1/AUTH_test", server.url("http")));
        let token = response.header("x-auth-token").expect("token").to_owned();
        assert_eq!(response.header("x-storage-token"), Some(token.as_str()));
        Client { server, token }
    }

    fn call(&self, method: &str, path: &str, body: &[u8]) -> Response {
        let path = format!("/v1/AUTH_test{path}");
        let headers = [("x-auth-token", self.token.as_str())];
        self.server.request(method, &path, &headers, body)
    }

    fn json(&self, query: &str) -> Vec<String> {
        let response = self.call("GET", &format!("/c?format=json{query}"), b"");
        assert_eq!(response.status, 200, "{query}");
        let rows: Vec<Value> = serde_json::from_slice(&response.body).expect("JSON listing");
        rows.iter()
            .map(|row| {
                row.get("name")
                    .or_else(|| row.get("subdir"))
                    .and_then(Value::as_str)
                    .expect("name or subdir")
                    .to_owned()
            })
            .collect()
    }
}

#[test]
fn tempauth_refuses_wrong_keys_and_foreign_tokens() {
    let server = Server::start(config());
    let wrong = [("x-auth-user", "test:tester"), ("x-auth-key", "nope")];
    assert_eq!(server.request("GET", "/auth/v1.0", &wrong, b"").status, 401);
    assert_eq!(
        server.request("GET", "/v1/AUTH_test/c", &[], b"").status,
        401
    );
    let forged = [("x-auth-token", "AUTH_tk00")];
    assert_eq!(
        server.request("GET", "/v1/AUTH_test", &forged, b"").status,
        401
    );
    let client = Client::login(&server);
    let other = [("x-auth-token", client.token.as_str())];
    assert_eq!(
        server.request("GET", "/v1/AUTH_other", &other, b"").status,
        401
    );
    assert_eq!(
        Client::login(&server).token,
        client.token,
        "a live token is reused"
    );
}

#[test]
fn listings_interleave_subdirs_and_follow_swift_markers() {
    let server = Server::start(config());
    let client = Client::login(&server);
    assert_eq!(client.call("PUT", "/c", b"").status, 201);
    assert_eq!(client.call("PUT", "/c", b"").status, 202);
    for name in ["a", "b/1", "b/2", "c", "d/x/1", "e"] {
        assert_eq!(
            client
                .call("PUT", &format!("/c/{name}"), name.as_bytes())
                .status,
            201
        );
    }
    assert_eq!(client.json("&delimiter=/"), ["a", "b/", "c", "d/", "e"]);
    assert_eq!(client.json("&delimiter=/&marker=b/"), ["c", "d/", "e"]);
    assert_eq!(
        client.json("&delimiter=/&reverse=on"),
        ["e", "d/", "c", "b/", "a"]
    );
    assert_eq!(client.json("&prefix=d/&delimiter=/"), ["d/x/"]);
    assert_eq!(client.json("&marker=a&end_marker=c"), ["b/1", "b/2"]);
    assert_eq!(
        client.json("&marker=c&end_marker=a&reverse=true"),
        ["b/2", "b/1"]
    );
    assert_eq!(client.json("&marker=c&end_marker=a"), Vec::<String>::new());
    assert_eq!(client.json("&limit=2&marker=b/1"), ["b/2", "c"]);
    assert_eq!(
        client.json("&limit=abc").len(),
        6,
        "a bad limit is the default"
    );

    let plain = client.call("GET", "/c?delimiter=/", b"");
    assert_eq!(String::from_utf8_lossy(&plain.body), "a\nb/\nc\nd/\ne\n");
    assert!(plain.header("vary").is_some());
    let empty_plain = client.call("GET", "/c?marker=z", b"");
    assert_eq!(empty_plain.status, 204);
    let empty_json = client.call("GET", "/c?marker=z&format=json", b"");
    assert_eq!(
        (empty_json.status, empty_json.body.as_slice()),
        (200, &b"[]"[..])
    );
    assert_eq!(client.call("GET", "/c?limit=10001", b"").status, 412);
    assert_eq!(client.call("GET", "/missing?format=json", b"").status, 404);
    assert_eq!(
        client.call("PUT", "/c%2Fb", b"").status,
        400,
        "no container inside another"
    );
}

#[test]
fn counts_are_exact_and_objects_carry_their_etag_and_limits() {
    let server = Server::start(config());
    let client = Client::login(&server);
    client.call("PUT", "/c", b"");
    assert_eq!(client.call("PUT", "/c/x", b"hello").status, 201);
    assert_eq!(client.call("PUT", "/c/x", b"hello world").status, 201);
    assert_eq!(client.call("PUT", "/c/y", b"1234").status, 201);
    let listing = client.call("GET", "/c?format=json", b"");
    assert_eq!(listing.header("x-container-object-count"), Some("2"));
    assert_eq!(listing.header("x-container-bytes-used"), Some("15"));
    let rows: Value = serde_json::from_slice(&listing.body).expect("JSON");
    assert_eq!(rows[0]["hash"], "5eb63bbbe01eeed093cb22bb8f5acdc3");
    assert_eq!(rows[0]["bytes"], 11);
    assert!(rows[0]["last_modified"]
        .as_str()
        .is_some_and(|t| t.contains('T')));

    let object = client.call("GET", "/c/x", b"");
    assert_eq!(object.body, b"hello world");
    assert_eq!(
        object.header("etag"),
        Some("5eb63bbbe01eeed093cb22bb8f5acdc3")
    );
    assert!(object
        .header("last-modified")
        .is_some_and(|t| t.ends_with("GMT")));
    let head = client.call("HEAD", "/c/x", b"");
    assert_eq!(head.header("content-length"), Some("11"));

    let too_big = vec![0u8; 1_000_001];
    assert_eq!(client.call("PUT", "/c/big", &too_big).status, 413);
    assert_eq!(client.call("DELETE", "/c", b"").status, 409);
    assert_eq!(client.call("DELETE", "/c/x", b"").status, 204);
    assert_eq!(client.call("DELETE", "/c/x", b"").status, 404);
    let head = client.call("HEAD", "/c", b"");
    assert_eq!(head.header("x-container-object-count"), Some("1"));
    assert_eq!(head.header("x-container-bytes-used"), Some("4"));
    client.call("DELETE", "/c/y", b"");
    assert_eq!(client.call("DELETE", "/c", b"").status, 204);
}
