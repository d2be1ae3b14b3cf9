//! Clients that hold the server: slow headers are cut off, and connections beyond the limit
//! are closed at once, while well-behaved requests go on being served.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::Server;
use revkv_server::{Config, Limits};

fn config(limits: Limits) -> Config {
    Config {
        limits,
        ..Config::default()
    }
}

/// Reads until the server closes the connection; returns what it sent.
fn read_until_closed(mut stream: TcpStream) -> Vec<u8> {
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("read timeout");
    let mut received = Vec::new();
    let _ = stream.read_to_end(&mut received);
    received
}

#[test]
fn a_client_that_never_finishes_its_headers_is_dropped() {
    let server = Server::start(config(Limits {
        header_timeout_seconds: 1,
        ..Limits::default()
    }));
    let mut slow = TcpStream::connect(server.addr).expect("connect");
    slow.write_all(b"GET /api HTTP/1.1\r\nHost: x\r\n")
        .expect("partial headers");
    let started = Instant::now();
    read_until_closed(slow);
    let waited = started.elapsed();
    assert!(
        waited < Duration::from_secs(5),
        "a slow client held its connection for {waited:?}"
    );
    assert_eq!(server.request("GET", "/api", &[], b"").status, 200);
}

#[test]
fn connections_beyond_the_limit_are_closed_and_the_rest_are_served() {
    let server = Server::start(config(Limits {
        max_connections: 2,
        ..Limits::default()
    }));
    let held: Vec<TcpStream> = (0..2)
        .map(|_| TcpStream::connect(server.addr).expect("connect"))
        .collect();
    // Accepted by the kernel, then closed by the server without an answer.
    let refused = TcpStream::connect(server.addr).expect("connect");
    assert!(read_until_closed(refused).is_empty());
    drop(held);
    // The held connections' slots come back once the server sees them close.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut stream = TcpStream::connect(server.addr).expect("connect");
        let _ = stream.write_all(b"GET /version HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        if read_until_closed(stream).starts_with(b"HTTP/1.1 200") {
            break;
        }
        assert!(Instant::now() < deadline, "the server never served again");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_body_that_never_arrives_times_out_with_a_status() {
    let server = Server::start(config(Limits {
        request_timeout_seconds: 1,
        ..Limits::default()
    }));
    let mut slow = TcpStream::connect(server.addr).expect("connect");
    slow.write_all(
        b"POST /api/v1/namespaces/a/configmaps HTTP/1.1\r\nHost: x\r\n\
          Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"kind\":",
    )
    .expect("partial body");
    let started = Instant::now();
    let answer = String::from_utf8(read_until_closed(slow)).expect("text");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(answer.starts_with("HTTP/1.1 504"), "{answer}");
    assert!(answer.contains("\"reason\":\"Timeout\""), "{answer}");
}

#[test]
fn shutdown_ends_open_watches_and_returns() {
    let server = Server::start(Config::default());
    let addr = server.addr;
    let watcher = std::thread::spawn(move || {
        common::request(addr, "GET", "/api/v1/configmaps?watch=1", &[], b"")
    });
    // Until the watch is registered, shutting down would not exercise it.
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.db.watchers() == 0 {
        assert!(Instant::now() < deadline, "the watch never opened");
        std::thread::sleep(Duration::from_millis(20));
    }
    let started = Instant::now();
    drop(server);
    let waited = started.elapsed();
    assert!(waited < Duration::from_secs(10), "shutdown took {waited:?}");
    let response = watcher.join().expect("watcher");
    assert_eq!(response.status, 200);
    assert!(response.body.is_empty(), "no event was due");
}
