//! One integration test binary: each module covers one area.

mod common;

mod compaction;
mod list_continue;
mod model;
mod recovery;
mod revisions;
mod tokens;
