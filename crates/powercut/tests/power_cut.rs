//! Acknowledged writes survive a power cut.
//!
//! Each test runs cycles against one durable image, which persists across its cycles so that
//! the store accumulates history. One cycle:
//!
//! 1. `powercut-fs` loads the image and mounts it at a fresh mount point;
//! 2. a writer (this test binary again, with `REVKV_POWER_CUT_CHILD` naming the store and
//!    `--exact` naming the test, as in revkv's kill -9 tests) opens the store with
//!    `Durability::Immediate` and puts and deletes from four threads, printing each write once
//!    it is acknowledged;
//! 3. 200–1500 ms after the writer is ready it is stopped (SIGSTOP), the power is cut, and once
//!    the filesystem has written what survived back to the image, the writer is killed;
//! 4. the store is opened from the image on the real disk: it must open and verify clean, hold
//!    every acknowledged put at its revision with its value, not hold any acknowledged delete,
//!    and be at or past the newest acknowledged revision.
//!
//! The four tests combine two value mixes (small values; a quarter of them 200 KiB–1 MiB) with
//! the two models of `powercut-fs` (strict, os-crash). `REVKV_POWER_CUT_CYCLES` sets the cycles
//! of each (20 by default). A cycle that fails is reported and the test goes on, to count how
//! many fail; a store that does not open or verify is then started afresh, since every later
//! cycle would only repeat that finding. A store lives through at most 20 cycles, so that long
//! runs stay bounded in time and memory. The tests need `/dev/fuse` and `fusermount3` (Debian's
//! `fuse3`; `scripts/test.sh` installs it), and fail when either is missing.

use std::fmt::Write as _;
use std::io::Read;
use std::panic::AssertUnwindSafe;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use revkv::{Db, Durability, Retention, Revision};

use crate::common::{check_fuse_is_available, read_lines, Filesystem};

mod common;

/// Set in the writer: the directory of its store.
const CHILD: &str = "REVKV_POWER_CUT_CHILD";
/// Set in the writer: `small` or `large`, the value mix.
const CHILD_VALUES: &str = "REVKV_POWER_CUT_VALUES";
/// Set in the writer: what seeds its choices.
const CHILD_SEED: &str = "REVKV_POWER_CUT_SEED";
/// Set in the writer: the number of its threads' first new key, so that each cycle adds keys.
const CHILD_FIRST_KEY: &str = "REVKV_POWER_CUT_FIRST_KEY";
/// What marks the writer's lines among libtest's own output (which may precede one on the same
/// line).
const TAG: &str = "powercut ";
/// Threads of the writer.
const WRITERS: u64 = 4;
/// How many cycles one store lives through before the next cycle starts a new one.
const HISTORY_CYCLES: u64 = 20;
/// How many lost writes a failed cycle lists.
const SHOWN: usize = 5;

#[test]
fn strict_small_values() {
    power_cut_test("strict_small_values", "strict", Values::Small);
}

#[test]
fn strict_large_values() {
    power_cut_test("strict_large_values", "strict", Values::Large);
}

#[test]
fn os_crash_small_values() {
    power_cut_test("os_crash_small_values", "os-crash", Values::Small);
}

#[test]
fn os_crash_large_values() {
    power_cut_test("os_crash_large_values", "os-crash", Values::Large);
}

/// The sizes of the values a writer puts.
#[derive(Clone, Copy, Debug)]
enum Values {
    /// 64 B–2 KiB.
    Small,
    /// A quarter 200 KiB–1 MiB, the rest 64 B–2 KiB.
    Large,
}

impl Values {
    fn name(self) -> &'static str {
        match self {
            Values::Small => "small",
            Values::Large => "large",
        }
    }

    fn parse(name: &str) -> Values {
        match name {
            "small" => Values::Small,
            "large" => Values::Large,
            _ => panic!("{CHILD_VALUES} is small or large, not {name:?}"),
        }
    }

    fn length(self, rng: &mut Rng) -> usize {
        match self {
            Values::Large if rng.below(4) == 0 => rng.between(200 << 10, revkv::MAX_VALUE_LEN),
            _ => rng.between(64, 2 << 10),
        }
    }
}

/// The one test body: the writer when run as the child, else the cycles.
fn power_cut_test(test: &str, model: &str, values: Values) {
    if let Some(store) = std::env::var_os(CHILD) {
        let variable = |name: &str| std::env::var(name).unwrap_or_else(|_| panic!("{name} is set"));
        let number = |name: &str| variable(name).parse().expect("a number");
        write_until_stopped(
            Path::new(&store),
            Values::parse(&variable(CHILD_VALUES)),
            number(CHILD_SEED),
            number(CHILD_FIRST_KEY),
        );
        return;
    }
    check_fuse_is_available();
    let cycles: u64 = std::env::var("REVKV_POWER_CUT_CYCLES")
        .ok()
        .map_or(20, |text| {
            text.parse().expect("REVKV_POWER_CUT_CYCLES is a number")
        });
    let combination = format!("{model}/{}", values.name());
    let image = tempfile::tempdir().expect("a temporary directory for the image");
    let mut rng = Rng::new(fnv(test.as_bytes()));
    let mut failures = Vec::new();
    let mut acknowledged = 0;
    let started = Instant::now();
    for cycle in 0..cycles {
        // A store keeps the history of a bounded number of cycles, so that long runs check
        // each cycle in bounded time (and the image of large values fits in memory).
        if cycle > 0 && cycle % HISTORY_CYCLES == 0 {
            reset(image.path());
        }
        let delay = Duration::from_millis(rng.between(200, 1500) as u64);
        let cycle_started = Instant::now();
        match run_cycle(test, model, values, image.path(), cycle, rng.next(), delay) {
            Ok(survived) => {
                acknowledged += survived.writes;
                eprintln!(
                    "{combination} cycle {cycle}: {} acknowledged writes survived (cut {} ms \
                     after ready; the cycle took {:.1} s, checking the store {:.1} s)",
                    survived.writes,
                    delay.as_millis(),
                    cycle_started.elapsed().as_secs_f64(),
                    survived.checking.as_secs_f64()
                );
            }
            Err(failure) => {
                acknowledged += failure.acknowledged;
                eprintln!("{combination} cycle {cycle}: FAILED: {}", failure.message);
                if failure.start_afresh {
                    reset(image.path());
                }
                failures.push(format!("cycle {cycle}: {}", failure.message));
            }
        }
    }
    eprintln!(
        "{combination}: {} of {cycles} cycles failed, {acknowledged} acknowledged writes, {:.1} s",
        failures.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(
        failures.is_empty(),
        "{combination}: {} of {cycles} cycles lost acknowledged writes or could not open:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(
        acknowledged > 0,
        "{combination}: the writer acknowledged no write in {cycles} cycles, so nothing was tested"
    );
}

/// A cycle whose acknowledged writes all survived.
struct Survived {
    writes: u64,
    /// How long opening, verifying and reading the store took.
    checking: Duration,
}

/// Why a cycle failed.
struct Failure {
    message: String,
    /// Writes the writer acknowledged in the cycle.
    acknowledged: u64,
    /// The store is unusable: the next cycle starts from an empty image.
    start_afresh: bool,
}

impl Failure {
    fn unusable(message: String, acknowledged: u64) -> Failure {
        Failure {
            message,
            acknowledged,
            start_afresh: true,
        }
    }
}

/// One cycle: mount, write, cut, check. Panics when the harness itself fails (the filesystem
/// does not mount or does not cut).
fn run_cycle(
    test: &str,
    model: &str,
    values: Values,
    image: &Path,
    cycle: u64,
    seed: u64,
    delay: Duration,
) -> Result<Survived, Failure> {
    let mount_dir = tempfile::tempdir().expect("a temporary directory for the mount point");
    let mut filesystem = Filesystem::mount(image, mount_dir.path(), model);
    let mut writer = Writer::start(test, &mount_dir.path().join("store"), values, seed, cycle);
    if let Err(message) = writer.wait_until_ready() {
        filesystem.cut();
        let output = writer.kill();
        return Err(Failure::unusable(
            format!(
                "the writer did not get ready: {message}{}",
                output.describe()
            ),
            0,
        ));
    }
    std::thread::sleep(delay);
    writer.stop();
    filesystem.cut();
    let output = writer.kill();
    let acknowledged = output.writes.len() as u64;
    if let Some(status) = output.exited_by_itself {
        return Err(Failure::unusable(
            format!(
                "the writer died before the cut ({status}){}",
                output.describe()
            ),
            acknowledged,
        ));
    }
    let store = image.join("store");
    let checking = Instant::now();
    // sled panics on some damaged stores rather than returning an error.
    let checked =
        std::panic::catch_unwind(AssertUnwindSafe(|| check_store(&store, &output.writes)))
            .unwrap_or_else(|panic| {
                let reason = panic
                    .downcast_ref::<String>()
                    .map(String::as_str)
                    .or_else(|| panic.downcast_ref::<&str>().copied())
                    .unwrap_or("a panic");
                Err(Damage::Unusable(format!(
                    "opening or checking the store panics: {reason}"
                )))
            });
    let checking = checking.elapsed();
    wait_until_closed(&store);
    match checked {
        Ok(()) => Ok(Survived {
            writes: acknowledged,
            checking,
        }),
        Err(Damage::Unusable(message)) => Err(Failure::unusable(message, acknowledged)),
        Err(Damage::LostWrites(message)) => Err(Failure {
            message,
            acknowledged,
            start_afresh: false,
        }),
    }
}

/// What is wrong with the store that survived a cut.
enum Damage {
    /// It does not open or does not verify clean.
    Unusable(String),
    /// It opens and verifies clean, but lost acknowledged writes.
    LostWrites(String),
}

/// Opens the store that survived and checks every acknowledged write.
fn check_store(store: &Path, writes: &[Acknowledged]) -> Result<(), Damage> {
    let db = open(store)
        .map_err(|error| Damage::Unusable(format!("the store does not open: {error}")))?;
    let report = db
        .verify()
        .map_err(|error| Damage::Unusable(format!("verify fails: {error}")))?;
    if !report.is_clean() {
        return Err(Damage::Unusable(format!("verify finds: {report}")));
    }
    let current = db.current_revision().get();
    let newest = writes.iter().map(|write| write.revision).max().unwrap_or(0);
    let mut lost = Vec::new();
    for write in writes {
        if let Err(problem) = check_write(&db, write) {
            lost.push((write.revision, format!("{}: {problem}", write.key)));
        }
    }
    // The oldest losses first: they say most about where durability broke.
    lost.sort();
    if lost.is_empty() && current >= newest {
        return Ok(());
    }
    let mut message = format!(
        "{} of {} acknowledged writes lost; the store is at revision {current}, the newest \
         acknowledged write at {newest}",
        lost.len(),
        writes.len()
    );
    for (revision, problem) in lost.iter().take(SHOWN) {
        write!(message, "\n    revision {revision}, {problem}").expect("writing to a string");
    }
    Err(Damage::LostWrites(message))
}

fn check_write(db: &Db, write: &Acknowledged) -> Result<(), String> {
    let found = db
        .get_at(&write.key, Revision::new(write.revision))
        .map_err(|error| format!("get_at fails: {error}"))?;
    match (&write.change, found) {
        (Change::Delete, None) => Ok(()),
        (Change::Delete, Some(entry)) => Err(format!(
            "deleted, but holds the put of revision {}",
            entry.mod_revision
        )),
        (Change::Put { .. }, None) => Err("missing".to_owned()),
        (Change::Put { len, seed }, Some(entry)) => {
            if entry.mod_revision.get() != write.revision {
                Err(format!("holds the put of revision {}", entry.mod_revision))
            } else if entry.value != value(&write.key, *seed, *len) {
                Err(format!("a wrong value of {} bytes", entry.value.len()))
            } else {
                Ok(())
            }
        }
    }
}

fn open(store: &Path) -> revkv::Result<Db> {
    Db::options()
        .durability(Durability::Immediate)
        .retention(Retention::Manual)
        .open(store)
}

/// Waits until sled's threads, which outlive the store's last handle for a moment, have let go
/// of its files, so that the next cycle loads the image as they left it.
fn wait_until_closed(store: &Path) {
    let Ok(file) = std::fs::File::open(store.join("db")) else {
        return;
    };
    let started = Instant::now();
    loop {
        match file.try_lock() {
            Ok(()) => return,
            Err(_) if started.elapsed() < Duration::from_secs(30) => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(error) => panic!("the closed store stays locked: {error}"),
        }
    }
}

/// Empties the image, so that the next cycle creates a new store.
fn reset(image: &Path) {
    let store = image.join("store");
    if store.exists() {
        std::fs::remove_dir_all(&store).expect("the old store is removed");
    }
}

/// One acknowledged write, as the writer reported it.
#[derive(Debug)]
struct Acknowledged {
    key: String,
    revision: u64,
    change: Change,
}

#[derive(Debug)]
enum Change {
    /// A put of `value(key, seed, len)`.
    Put { len: usize, seed: u64 },
    /// A delete of a key that existed.
    Delete,
}

impl Acknowledged {
    /// The write a line of the writer reports, if it reports one.
    fn parse(line: &str) -> Option<Acknowledged> {
        let (_, report) = line.split_once(TAG)?;
        let words: Vec<&str> = report.split_whitespace().collect();
        let number = |word: &str| {
            word.parse()
                .unwrap_or_else(|_| panic!("a bad line {line:?}"))
        };
        match words[..] {
            ["ack", key, revision, len, seed] => Some(Acknowledged {
                key: key.to_owned(),
                revision: number(revision),
                change: Change::Put {
                    len: number(len) as usize,
                    seed: number(seed),
                },
            }),
            ["del", key, revision] => Some(Acknowledged {
                key: key.to_owned(),
                revision: number(revision),
                change: Change::Delete,
            }),
            ["ready", _] => None,
            _ => panic!("an unknown line from the writer: {line:?}"),
        }
    }
}

/// A running writer. Dropping it kills it.
struct Writer {
    process: Child,
    lines: Receiver<String>,
    /// Reads the writer's stderr until EOF; taken when the writer is killed.
    stderr: Option<JoinHandle<String>>,
    /// Lines read while waiting for `ready`.
    early: Vec<String>,
}

/// What a writer printed until it was killed.
struct WriterOutput {
    writes: Vec<Acknowledged>,
    /// Its exit status when it exited before it was killed.
    exited_by_itself: Option<ExitStatus>,
    stderr: String,
}

impl WriterOutput {
    /// The end of the writer's stderr, to show with a failure.
    fn describe(&self) -> String {
        let tail: String = {
            let lines: Vec<&str> = self.stderr.lines().collect();
            lines[lines.len().saturating_sub(20)..].join("\n    ")
        };
        if tail.is_empty() {
            String::new()
        } else {
            format!("; its stderr ends:\n    {tail}")
        }
    }
}

impl Writer {
    fn start(test: &str, store: &Path, values: Values, seed: u64, cycle: u64) -> Writer {
        let mut process = Command::new(std::env::current_exe().expect("the test binary's path"))
            .args(["--exact", test, "--nocapture", "--test-threads=1"])
            .env(CHILD, store)
            .env(CHILD_VALUES, values.name())
            .env(CHILD_SEED, seed.to_string())
            .env(CHILD_FIRST_KEY, (cycle * 1_000_000).to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the test binary runs again as the writer");
        let lines = read_lines(process.stdout.take().expect("stdout is piped"));
        let mut stderr = process.stderr.take().expect("stderr is piped");
        let stderr = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text);
            text
        });
        Writer {
            process,
            lines,
            stderr: Some(stderr),
            early: Vec::new(),
        }
    }

    fn wait_until_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(&format!("{TAG}ready")) => return Ok(()),
                Ok(line) => self.early.push(line),
                Err(RecvTimeoutError::Timeout) => return Err("no ready within 120 s".to_owned()),
                Err(RecvTimeoutError::Disconnected) => return Err("it exited".to_owned()),
            }
        }
    }

    /// Freezes the writer (SIGSTOP), so that it neither writes nor reacts to the cut.
    fn stop(&self) {
        let pid = libc::pid_t::try_from(self.process.id()).expect("a pid fits pid_t");
        // SAFETY: kill(2) touches no memory; the pid is our unreaped child's, so it names no
        // other process.
        let stopped = unsafe { libc::kill(pid, libc::SIGSTOP) };
        assert_eq!(
            stopped,
            0,
            "SIGSTOP is delivered: {}",
            std::io::Error::last_os_error()
        );
    }

    /// Kills the writer (SIGKILL, which ends a stopped process too) and collects its output.
    fn kill(mut self) -> WriterOutput {
        let exited_by_itself = self.process.try_wait().expect("the writer's status");
        if exited_by_itself.is_none() {
            self.process.kill().expect("SIGKILL is delivered");
        }
        self.process.wait().expect("the writer is reaped");
        let lines: Vec<String> = std::mem::take(&mut self.early)
            .into_iter()
            .chain(self.lines.iter())
            .collect();
        let stderr = self.stderr.take().expect("the writer is killed once");
        WriterOutput {
            writes: lines
                .iter()
                .filter_map(|line| Acknowledged::parse(line))
                .collect(),
            exited_by_itself,
            stderr: stderr.join().expect("the stderr reader ends at EOF"),
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

/// The writer: opens the store and writes from `WRITERS` threads until it is stopped and
/// killed, printing each write once it is acknowledged.
fn write_until_stopped(store: &Path, values: Values, seed: u64, first_key: u64) {
    let db = open(store).expect("the writer opens the store on the mounted filesystem");
    println!("{TAG}ready {}", db.current_revision());
    std::thread::scope(|scope| {
        for thread in 0..WRITERS {
            let db = &db;
            scope.spawn(move || {
                let mut rng = Rng::new(seed ^ fnv(&thread.to_be_bytes()));
                let mut next = first_key;
                loop {
                    let roll = rng.below(100);
                    let written = next - first_key;
                    if roll < 10 && written > 0 {
                        let key = key(thread, first_key + rng.below(written));
                        let (revision, deleted) = db.delete(key.as_str()).expect("a delete");
                        if deleted {
                            println!("{TAG}del {key} {revision}");
                        }
                        continue;
                    }
                    let n = if roll < 25 && written > 0 {
                        first_key + rng.below(written)
                    } else {
                        next += 1;
                        next - 1
                    };
                    let key = key(thread, n);
                    let len = values.length(&mut rng);
                    let value_seed = rng.next();
                    let revision = db
                        .put(key.as_str(), value(&key, value_seed, len))
                        .expect("a put");
                    println!("{TAG}ack {key} {revision} {len} {value_seed}");
                }
            });
        }
    });
}

fn key(thread: u64, n: u64) -> String {
    format!("t{thread}/{n:08}")
}

/// The value a put of `key` with `seed` writes: `len` bytes the checker can compute again.
fn value(key: &str, seed: u64, len: usize) -> Vec<u8> {
    let mut rng = Rng::new(seed ^ fnv(key.as_bytes()));
    let mut bytes = Vec::with_capacity(len + 8);
    while bytes.len() < len {
        bytes.extend_from_slice(&rng.next().to_le_bytes());
    }
    bytes.truncate(len);
    bytes
}

/// FNV-1a, to seed from a name.
fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// SplitMix64: small, and good enough for choosing keys, sizes and delays.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..bound`.
    fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound
    }

    /// Uniform in `low..=high`.
    fn between(&mut self, low: usize, high: usize) -> usize {
        low + self.below((high - low + 1) as u64) as usize
    }
}
