//! etcd's watch latency, beside revkv's in the watch bench (`benches/watch.rs`): watch streams
//! of one prefix through the JSON gateway's streaming `/v3/watch`, each a connection with a
//! thread reading it line by line (what a gateway client needs), while one writer puts.

use std::io::{BufRead, BufReader};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{int64, Etcd, Header, NAME};
use crate::engine::Error;
use crate::peers::prefix_end;
use crate::watch::WatchFigures;
use crate::workload::WRITES_PREFIX;

/// One line of a watch stream: a response, or the error that ended the stream.
#[derive(Deserialize)]
struct WatchLine {
    result: Option<WatchResponse>,
    error: Option<Value>,
}

#[derive(Deserialize)]
struct WatchResponse {
    #[serde(default)]
    created: bool,
    #[serde(default)]
    events: Vec<WatchEvent>,
}

#[derive(Deserialize)]
struct WatchEvent {
    kv: WatchedKeyValue,
}

#[derive(Deserialize)]
struct WatchedKeyValue {
    key: String,
    #[serde(deserialize_with = "int64")]
    mod_revision: i64,
}

#[derive(Deserialize)]
struct PutResponse {
    header: Header,
}

/// An open watch stream.
struct Stream {
    lines: BufReader<ureq::BodyReader<'static>>,
    line: String,
}

/// Runs one writer putting into a prefix for `duration` while `watchers` watch streams of that
/// prefix (none: the baseline) drain it, on the etcd at `endpoint`, and empties the prefix
/// afterwards.
///
/// # Errors
///
/// When etcd cannot be reached, answers unexpectedly, or holds keys under the prefixes the
/// bench writes to.
pub fn etcd_watch(
    endpoint: &str,
    watchers: usize,
    duration: Duration,
) -> Result<WatchFigures, Error> {
    let etcd = Etcd::connect(endpoint, 1)?;
    let figures = run(&etcd, watchers, duration);
    // Emptied even after a failure, so that the next run finds the prefixes empty.
    let cleared = etcd.clear();
    let figures = figures?;
    cleared?;
    Ok(figures)
}

fn run(etcd: &Etcd, watchers: usize, duration: Duration) -> Result<WatchFigures, Error> {
    let prefix = format!("{WRITES_PREFIX}watch/");
    let end = format!("{prefix}end");
    // Each put's return time, in ns since `epoch`, by revision.
    let epoch = Instant::now();
    let returned: Vec<AtomicU64> = (0..1u64 << 20).map(|_| AtomicU64::new(0)).collect();
    let streams = (0..watchers)
        .map(|_| etcd.watch(&prefix))
        .collect::<Result<Vec<_>, _>>()?;
    let end_key = STANDARD.encode(&end);
    let (puts, elapsed, latencies) = std::thread::scope(|scope| {
        let readers: Vec<_> = streams
            .into_iter()
            .map(|stream| {
                let (returned, end_key) = (&returned, &end_key);
                scope.spawn(move || stream.latencies(epoch, returned, end_key))
            })
            .collect();
        let started = Instant::now();
        let mut puts = 0u64;
        let written = (|| {
            while started.elapsed() < duration {
                let revision = etcd.put_revision(&format!("{prefix}{puts:08}"))?;
                let at = revision as usize % returned.len();
                returned[at].store(epoch.elapsed().as_nanos() as u64, Ordering::Release);
                puts += 1;
            }
            Ok(())
        })();
        let elapsed = started.elapsed();
        // Ends every stream, whatever happened before.
        let ended = etcd.put_revision(&end);
        let mut latencies = Vec::new();
        for reader in readers {
            let read = reader
                .join()
                .map_err(|_| Error::failed(NAME, "a watch stream reader panicked"))?;
            latencies.extend(read?);
        }
        written.and(ended).map(|_| (puts, elapsed, latencies))
    })?;
    let mut latencies = latencies;
    latencies.sort_unstable();
    let elapsed = elapsed.as_secs_f64();
    Ok(WatchFigures {
        puts_per_sec: puts as f64 / elapsed,
        events_per_sec: latencies.len() as f64 / elapsed,
        latencies,
    })
}

impl Etcd {
    /// Puts a key and returns the revision of the put.
    fn put_revision(&self, key: &str) -> Result<i64, Error> {
        let put: PutResponse = self.post(
            "/v3/kv/put",
            &json!({"key": STANDARD.encode(key), "value": STANDARD.encode("v")}),
        )?;
        Ok(put.header.revision)
    }

    /// Opens a watch stream of `prefix` from the next revision, once etcd has created it.
    fn watch(&self, prefix: &str) -> Result<Stream, Error> {
        let failed =
            |error: ureq::Error| Error::failed(NAME, format!("{}: {error}", self.endpoint));
        let response = self
            .agent
            .post(format!("{}/v3/watch", self.endpoint))
            .send_json(json!({"create_request": {
                "key": STANDARD.encode(prefix),
                "range_end": STANDARD.encode(prefix_end(prefix)),
            }}))
            .map_err(failed)?;
        let mut stream = Stream {
            lines: BufReader::new(response.into_body().into_with_config().reader()),
            line: String::new(),
        };
        match stream.next()? {
            Some(response) if response.created => Ok(stream),
            _ => Err(Error::failed(NAME, "the watch stream was not created")),
        }
    }
}

impl Stream {
    /// The next response; `None` when the stream ended.
    fn next(&mut self) -> Result<Option<WatchResponse>, Error> {
        self.line.clear();
        let read = self
            .lines
            .read_line(&mut self.line)
            .map_err(|error| Error::failed(NAME, format!("watch stream: {error}")))?;
        if read == 0 {
            return Ok(None);
        }
        let line: WatchLine = serde_json::from_str(&self.line)
            .map_err(|error| Error::failed(NAME, format!("unexpected watch answer: {error}")))?;
        match (line.result, line.error) {
            (Some(response), None) => Ok(Some(response)),
            (_, error) => Err(Error::failed(NAME, format!("watch stream: {error:?}"))),
        }
    }

    /// Reads events until the put of `end_key`, and returns, for each, the time from its put's
    /// return (in `returned`, by revision, ns since `epoch`) to its arrival; 0 when it arrived
    /// first.
    fn latencies(
        mut self,
        epoch: Instant,
        returned: &[AtomicU64],
        end_key: &str,
    ) -> Result<Vec<Duration>, Error> {
        let mut latencies = Vec::new();
        while let Some(response) = self.next()? {
            let now = epoch.elapsed();
            for event in response.events {
                if event.kv.key == end_key {
                    return Ok(latencies);
                }
                let at = event.kv.mod_revision as usize % returned.len();
                latencies.push(match returned[at].load(Ordering::Acquire) {
                    0 => Duration::ZERO,
                    ns => now.saturating_sub(Duration::from_nanos(ns)),
                });
            }
        }
        Err(Error::failed(NAME, "the watch stream ended early"))
    }
}
