//! One integration test binary: each module covers one area.

mod common;

mod blocks;
mod compaction;
mod corruption;
mod crash;
mod group_commit;
mod identity;
mod large_values;
mod limits;
mod list_continue;
mod listing;
mod model;
mod pager;
mod read_paths;
mod recovery;
mod revisions;
mod selector_kubernetes;
mod tokens;
mod verify;
mod watch;
