//! A server on an ephemeral loopback port, over a temporary store, and a tiny HTTP/1.1 client
//! for what the real clients do not cover.

#![allow(
    dead_code,
    reason = "each test binary uses its own part of the helpers"
)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::thread::JoinHandle;

use revkv::{Db, Durability};
use revkv_server::{Config, TlsConfig};
use tokio::sync::oneshot;

/// A running server; dropping it shuts the server down and waits for it.
pub struct Server {
    pub addr: SocketAddr,
    pub db: Db,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    /// Starts a server with `config` over a fresh store. Writes are buffered (not fsynced one
    /// by one) so that tests can load thousands of objects quickly.
    pub fn start(config: Config) -> Server {
        let db = Db::options()
            .durability(Durability::Buffered)
            .temporary()
            .expect("temporary store");
        Server::over(db, config)
    }

    /// Starts a server with `config` over `db`, which another server may serve too.
    pub fn over(db: Db, config: Config) -> Server {
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (stop, stopped) = oneshot::channel::<()>();
        let served = db.clone();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Runtime::new().expect("runtime");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                    .await
                    .expect("bind an ephemeral port");
                ready_tx
                    .send(listener.local_addr().expect("address"))
                    .expect("test waits");
                let shutdown = async {
                    let _ = stopped.await;
                };
                revkv_server::serve(listener, served, &config, shutdown)
                    .await
                    .expect("server stops cleanly");
            });
        });
        let addr = ready_rx.recv().expect("server starts");
        Server {
            addr,
            db,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    pub fn url(&self, scheme: &str) -> String {
        format!("{scheme}://{}", self.addr)
    }

    /// One request on a fresh connection; returns the status, the headers (names in lower
    /// case) and the body.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Response {
        request(self.addr, method, path, headers, body)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A self-signed certificate for 127.0.0.1, in PEM files the server and clients read.
pub struct SelfSigned {
    pub dir: tempfile::TempDir,
    pub tls: TlsConfig,
    /// The certificate, which clients trust as its own authority.
    pub ca_file: PathBuf,
}

impl SelfSigned {
    pub fn generate() -> SelfSigned {
        let names = vec!["127.0.0.1".to_owned(), "localhost".to_owned()];
        let certified = rcgen::generate_simple_self_signed(names).expect("self-signed cert");
        let dir = tempfile::tempdir().expect("temporary directory");
        let cert_file = dir.path().join("cert.pem");
        let key_file = dir.path().join("key.pem");
        std::fs::write(&cert_file, certified.cert.pem()).expect("write cert");
        std::fs::write(&key_file, certified.signing_key.serialize_pem()).expect("write key");
        SelfSigned {
            ca_file: cert_file.clone(),
            tls: TlsConfig {
                cert_file,
                key_file,
            },
            dir,
        }
    }
}

/// `namespace/name → resourceVersion` of every item of a Kubernetes list.
pub fn versions(list: &serde_json::Value) -> std::collections::BTreeMap<String, String> {
    list["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|item| {
            let meta = &item["metadata"];
            let namespace = meta["namespace"].as_str().unwrap_or("");
            let name = meta["name"].as_str().expect("name");
            let rv = meta["resourceVersion"].as_str().expect("rv");
            (format!("{namespace}/{name}"), rv.to_owned())
        })
        .collect()
}

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|error| {
            panic!(
                "body is not JSON ({error}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }
}

pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response {
    let mut reader = send(addr, method, path, headers, body);
    let (status, headers) = read_head(&mut reader);
    let chunked = is_chunked(&headers);
    let mut body = Vec::new();
    if chunked {
        while let Some(chunk) = read_chunk(&mut reader) {
            body.extend_from_slice(&chunk);
        }
    } else {
        reader.read_to_end(&mut body).expect("body");
    }
    Response {
        status,
        headers,
        body,
    }
}

/// Sends one request on a fresh connection, which the server closes after answering.
fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> BufReader<TcpStream> {
    let mut stream = TcpStream::connect(addr).expect("connect");
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).expect("send head");
    // A server may answer (413) before the whole body is sent, and close.
    let _ = stream.write_all(body);
    BufReader::new(stream)
}

/// The status and the headers (names in lower case) of a response.
fn read_head(reader: &mut BufReader<TcpStream>) -> (u16, Vec<(String, String)>) {
    let mut status_line = String::new();
    reader.read_line(&mut status_line).expect("status line");
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).expect("header line");
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
        }
    }
    (status, headers)
}

fn is_chunked(headers: &[(String, String)]) -> bool {
    headers
        .iter()
        .any(|(name, value)| name == "transfer-encoding" && value.contains("chunked"))
}

/// The next chunk of a chunked body; `None` after the last.
fn read_chunk(reader: &mut BufReader<TcpStream>) -> Option<Vec<u8>> {
    let mut size = String::new();
    reader.read_line(&mut size).expect("chunk size");
    let size = usize::from_str_radix(size.trim(), 16).expect("hex chunk size");
    let mut chunk = vec![0; size + 2];
    reader.read_exact(&mut chunk).expect("chunk");
    chunk.truncate(size);
    (size > 0).then_some(chunk)
}

/// How long a watch may stay silent before its reader gives up.
const WATCH_SILENCE: std::time::Duration = std::time::Duration::from_secs(120);

/// A watch's event stream, read as it arrives: one JSON event per line.
pub struct Watch {
    reader: BufReader<TcpStream>,
    /// Bytes of a line whose end has not arrived yet.
    pending: Vec<u8>,
}

impl Watch {
    /// Opens a watch at `path`; panics unless the server accepts it.
    pub fn open(addr: SocketAddr, path: &str) -> Watch {
        let mut reader = send(addr, "GET", path, &[], b"");
        // An event that never comes fails the test instead of hanging it.
        reader
            .get_ref()
            .set_read_timeout(Some(WATCH_SILENCE))
            .expect("a read timeout");
        let (status, headers) = read_head(&mut reader);
        assert_eq!(status, 200, "watch {path}");
        assert!(is_chunked(&headers), "a watch streams chunks");
        Watch {
            reader,
            pending: Vec::new(),
        }
    }

    /// The next event; `None` when the stream ends.
    pub fn next_event(&mut self) -> Option<serde_json::Value> {
        loop {
            if let Some(end) = self.pending.iter().position(|&byte| byte == b'\n') {
                let line: Vec<u8> = self.pending.drain(..=end).collect();
                return Some(serde_json::from_slice(&line).expect("an event is JSON"));
            }
            self.pending.extend(read_chunk(&mut self.reader)?);
        }
    }
}
