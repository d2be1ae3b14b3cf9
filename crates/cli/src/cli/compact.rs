//! `revkv compact`: a compaction with a progress bar.

use indicatif::{ProgressBar, ProgressStyle};
use revkv::{CompactionReport, Db, Revision};

use super::Failure;

/// Compacts `db` at `target`, drawing progress over the revisions being compacted.
pub(super) fn compact(db: &Db, target: Revision) -> Result<CompactionReport, Failure> {
    let from = db.compacted_revision();
    let progress = ProgressBar::new(target.get().saturating_sub(from.get())).with_style(
        ProgressStyle::with_template("compacting [{bar:40}] {pos}/{len} revisions ({elapsed})")
            .expect("the template is valid")
            .progress_chars("=> "),
    );
    let report = db.compact_with_progress(target, |reached| {
        progress.set_position(reached.get().saturating_sub(from.get()));
    })?;
    progress.finish_and_clear();
    Ok(report)
}
