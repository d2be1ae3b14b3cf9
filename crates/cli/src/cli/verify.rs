//! `revkv verify`: the report of [`Db::verify`], as text or JSON, and an exit status for scripts.

use std::io::{self, Write};

use revkv::{Db, VerifyReport};
use serde::Serialize;

use super::{output, Failure};

#[derive(Serialize)]
struct ReportJson<'a> {
    clean: bool,
    #[serde(flatten)]
    report: &'a VerifyReport,
}

/// Verifies `db` and prints the report; fails when it has findings, so the exit status says.
pub(super) fn run(db: &Db, json: bool) -> Result<(), Failure> {
    let report = db.verify()?;
    if json {
        output::print_json(&ReportJson {
            clean: report.is_clean(),
            report: &report,
        })?;
    } else {
        writeln!(io::stdout().lock(), "{report}")?;
    }
    match report.finding_count() {
        0 => Ok(()),
        findings => Err(Failure::Unverified { findings }),
    }
}
