//! How results reach the user: JSON for scripts, aligned text for people, one line per error.

use std::collections::BTreeMap;
use std::io::{self, Write};

use base64::prelude::{Engine, BASE64_STANDARD};
use revkv::{Entry, Event, EventKind, ListPage, Revision, Stat};
use serde::Serialize;

use super::Failure;

/// Values longer than this many characters are cut in tables, which are for skimming.
const VALUE_WIDTH: usize = 40;

/// An entry as JSON. Keys and values are bytes: they print as strings when they are UTF-8, and
/// under `key_base64` / `value_base64` otherwise, so that no byte is lost or mangled.
#[derive(Serialize)]
struct EntryJson<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    key: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    key_base64: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    value: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    value_base64: Option<String>,
    create_revision: Revision,
    mod_revision: Revision,
    version: u64,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    labels: &'a BTreeMap<String, String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    fields: &'a BTreeMap<String, String>,
}

impl<'a> EntryJson<'a> {
    fn new(entry: &'a Entry) -> Self {
        let (key, key_base64) = text_or_base64(&entry.key);
        let (value, value_base64) = text_or_base64(&entry.value);
        EntryJson {
            key,
            key_base64,
            value,
            value_base64,
            create_revision: entry.create_revision,
            mod_revision: entry.mod_revision,
            version: entry.version,
            labels: &entry.labels,
            fields: &entry.fields,
        }
    }
}

fn text_or_base64(bytes: &[u8]) -> (Option<&str>, Option<String>) {
    match std::str::from_utf8(bytes) {
        Ok(text) => (Some(text), None),
        Err(_) => (None, Some(BASE64_STANDARD.encode(bytes))),
    }
}

/// A common prefix a delimiter rolled up, named as Swift names it.
#[derive(Serialize)]
struct PrefixJson<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    subdir: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    subdir_base64: Option<String>,
}

impl<'a> PrefixJson<'a> {
    fn new(prefix: &'a [u8]) -> Self {
        let (subdir, subdir_base64) = text_or_base64(prefix);
        PrefixJson {
            subdir,
            subdir_base64,
        }
    }
}

#[derive(Serialize)]
struct PageJson<'a> {
    revision: Revision,
    items: Vec<EntryJson<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    prefixes: Vec<PrefixJson<'a>>,
    #[serde(rename = "continue")]
    continue_token: Option<&'a str>,
    remaining: Option<u64>,
}

/// What `put` prints.
#[derive(Serialize)]
pub(super) struct Put {
    pub revision: Revision,
}

/// What `delete` prints.
#[derive(Serialize)]
pub(super) struct Deleted {
    pub revision: Revision,
    pub deleted: bool,
}

/// What `compact` prints when the retention window already holds all history.
#[derive(Serialize)]
pub(super) struct NothingToCompact {
    /// Already at or above the retention boundary, so the window holds everything there is.
    pub compacted: Revision,
}

#[derive(Serialize)]
pub(super) struct Loaded {
    pub revision: Revision,
    pub loaded: u64,
}

#[derive(Serialize)]
struct ErrorJson<'a> {
    error: ErrorBody<'a>,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    reason: &'a str,
    message: String,
    #[serde(rename = "continue", skip_serializing_if = "Option::is_none")]
    continue_token: Option<&'a str>,
}

/// One change as `history --json` prints it.
#[derive(Serialize)]
struct EventJson<'a> {
    revision: Revision,
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    key: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    key_base64: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    entry: Option<EntryJson<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    prev: Option<EntryJson<'a>>,
}

fn kind_name(kind: EventKind) -> &'static str {
    match kind {
        EventKind::Put => "PUT",
        EventKind::Delete => "DELETE",
    }
}

/// Prints one change per line: `REVISION PUT KEY VALUE` or `REVISION DELETE KEY`, followed by
/// `(prev VALUE)` when the previous entry was asked for and existed; or one JSON object.
pub(super) fn print_event(event: &Event, json: bool) -> Result<(), Failure> {
    if json {
        let (key, key_base64) = text_or_base64(&event.key);
        return print_json(&EventJson {
            revision: event.revision,
            kind: kind_name(event.kind),
            key,
            key_base64,
            entry: event.entry.as_deref().map(EntryJson::new),
            prev: event.prev.as_deref().map(EntryJson::new),
        });
    }
    let mut line = format!(
        "{} {} {}",
        event.revision,
        kind_name(event.kind),
        printable(&event.key)
    );
    if let Some(entry) = &event.entry {
        line = format!("{line} {}", truncate(printable(&entry.value), VALUE_WIDTH));
    }
    if let Some(prev) = &event.prev {
        line = format!(
            "{line} (prev {})",
            truncate(printable(&prev.value), VALUE_WIDTH)
        );
    }
    writeln!(io::stdout().lock(), "{line}")?;
    Ok(())
}

/// Prints `value` as one line of JSON.
pub(super) fn print_json(value: &impl Serialize) -> Result<(), Failure> {
    let mut out = io::stdout().lock();
    serde_json::to_writer(&mut out, value).map_err(io::Error::from)?;
    writeln!(out)?;
    Ok(())
}

pub(super) fn print_entry(entry: &Entry) -> Result<(), Failure> {
    print_json(&EntryJson::new(entry))
}

/// Prints a chunk; in the table, rolled-up prefixes sit among the entries in list order.
pub(super) fn print_page(page: &ListPage, json: bool, reverse: bool) -> Result<(), Failure> {
    if json {
        return print_json(&PageJson {
            revision: page.revision,
            items: page.items.iter().map(EntryJson::new).collect(),
            prefixes: page.prefixes.iter().map(|p| PrefixJson::new(p)).collect(),
            continue_token: page.continue_token.as_deref(),
            remaining: page.remaining,
        });
    }
    let header = ["KEY", "VALUE", "CREATE", "MOD", "VER"].map(String::from);
    let entries = page.items.iter().map(|entry| {
        let row = [
            printable(&entry.key),
            truncate(printable(&entry.value), VALUE_WIDTH),
            entry.create_revision.to_string(),
            entry.mod_revision.to_string(),
            entry.version.to_string(),
        ];
        (entry.key.as_slice(), row)
    });
    let prefixes = page.prefixes.iter().map(|prefix| {
        let row = [
            printable(prefix),
            "(common prefix)".into(),
            String::new(),
            String::new(),
            String::new(),
        ];
        (prefix.as_slice(), row)
    });
    let mut keyed: Vec<_> = entries.chain(prefixes).collect();
    keyed.sort_by(|(a, _), (b, _)| if reverse { b.cmp(a) } else { a.cmp(b) });
    let rows: Vec<[String; 5]> = keyed.into_iter().map(|(_, row)| row).collect();
    let mut widths = [0; 5];
    for row in std::iter::once(&header).chain(&rows) {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let [key_w, value_w, create_w, mod_w, version_w] = widths;
    let mut out = io::stdout().lock();
    for [key, value, create, modified, version] in std::iter::once(&header).chain(&rows) {
        writeln!(
            out,
            "{key:<key_w$}  {value:<value_w$}  {create:>create_w$}  {modified:>mod_w$}  {version:>version_w$}"
        )?;
    }
    let count = page.items.len();
    let noun = if count == 1 { "item" } else { "items" };
    write!(out, "revision {} · {count} {noun}", page.revision)?;
    if !page.prefixes.is_empty() {
        write!(out, " · {} common prefixes", page.prefixes.len())?;
    }
    if let Some(remaining) = page.remaining {
        write!(out, " · {remaining} remaining")?;
    }
    writeln!(out)?;
    if let Some(token) = &page.continue_token {
        writeln!(out, "continue: {token}")?;
    }
    Ok(())
}

/// Bytes as table text: verbatim when they are UTF-8 without control characters (which would
/// break the table's lines), escaped otherwise.
fn printable(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(text) if !text.chars().any(char::is_control) => text.to_owned(),
        _ => bytes.escape_ascii().to_string(),
    }
}

fn truncate(text: String, max_chars: usize) -> String {
    if text.chars().count() <= max_chars {
        return text;
    }
    text.chars().take(max_chars - 1).chain(['…']).collect()
}

pub(super) fn print_stat(stat: &Stat, json: bool) -> Result<(), Failure> {
    if json {
        return print_json(stat);
    }
    let mebibytes = stat.disk_bytes as f64 / f64::from(1 << 20);
    let swept = if stat.swept_revision < stat.compacted_revision {
        format!(
            "{} (sweeping up to {})",
            stat.swept_revision, stat.compacted_revision
        )
    } else {
        stat.swept_revision.to_string()
    };
    let mut lines = vec![
        ("revision", stat.revision.to_string()),
        ("compacted revision", stat.compacted_revision.to_string()),
        ("swept revision", swept),
        ("live keys", stat.live_keys.to_string()),
        ("stored records", stat.stored_records.to_string()),
        (
            "disk bytes",
            format!("{} ({mebibytes:.1} MiB)", stat.disk_bytes),
        ),
        (
            "pinned snapshots",
            format!("{} ({} bytes)", stat.pinned_snapshots, stat.pinned_bytes),
        ),
    ];
    if stat.damaged_pointers > 0 {
        let damaged = format!(
            "{} latest pointers (keys read from the revision log; see verify)",
            stat.damaged_pointers
        );
        lines.push(("damaged", damaged));
    }
    if stat.compaction_skipped_records > 0 {
        let skipped = format!(
            "{} records that do not decode",
            stat.compaction_skipped_records
        );
        lines.push(("compaction skipped", skipped));
    }
    if let Some(error) = &stat.last_compaction_error {
        let when = format!("{} ms since the epoch", error.at_unix_ms);
        lines.push(("compaction error", format!("{} ({when})", error.message)));
    }
    let mut out = io::stdout().lock();
    for (label, value) in lines {
        writeln!(out, "{label:<20}{value}")?;
    }
    Ok(())
}

/// The one line a failed command prints on stderr: JSON when the command was asked for JSON,
/// so that a script parsing stdout can parse its errors too.
pub fn error_line(failure: &Failure, json: bool) -> String {
    let token = failure.continue_token();
    if json {
        let error = ErrorBody {
            reason: failure.reason(),
            message: failure.to_string(),
            continue_token: token,
        };
        return serde_json::to_string(&ErrorJson { error }).expect("strings and numbers serialize");
    }
    match token {
        // The message refers to "the continue token this error carries": show it.
        Some(token) => format!("error: {failure}: {token}"),
        None => format!("error: {failure}"),
    }
}
