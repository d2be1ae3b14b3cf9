//! `powercut-fs`: an in-memory FUSE filesystem that simulates a power cut, to test that what a
//! program acknowledged as durable survives one.
//!
//! ```text
//! powercut-fs --image DIR --mount MNT --model strict|os-crash
//! ```
//!
//! It loads the files and directories under `DIR` (the *durable image*, on the real disk) into
//! memory, mounts a filesystem holding them at `MNT` and prints `ready` on stdout. Every request
//! reaches it: it asks for no kernel writeback cache, so each `write(2)` arrives as it is made.
//! `flock` and POSIX locks stay with the kernel.
//!
//! On stdin it takes one command, `cut`: from that moment every request fails with EIO; it
//! computes what survives, replaces the contents of `DIR` with exactly that, unmounts `MNT`
//! (lazily, since the writer may still hold files open), prints `cut done` and exits 0.
//!
//! Standard input closing without a `cut` means whoever drove it is gone: it unmounts, leaves
//! `DIR` as it was and exits 1. Bad arguments, an image it cannot load and a mount that fails
//! exit 2 with a message on stderr; mounting needs `/dev/fuse`, and as non-root `fusermount3`
//! (Debian's `fuse3` package), which unmounting uses in any case.
//!
//! # What survives a cut
//!
//! The loaded image is fully durable at mount. After that:
//!
//! - **File data, `strict`.** A file keeps its contents and size as of its last `fsync` or
//!   `fdatasync` (FUSE_FSYNC, either flag). A write through a handle opened with `O_SYNC` or
//!   `O_DSYNC`, or made with `RWF_DSYNC` (the kernel sends the flags with each write), is durable
//!   when it returns: that write, not the file's other unsynced ones. Everything else is lost.
//! - **File data, `os-crash`.** As `strict`, and unsynced writes at offsets inside the file's
//!   last synced size survive too; growth past it is lost. The file is cut back to the smaller of
//!   its current and its last synced length, and keeps its current bytes below that.
//! - **Names, both models.** Creates, mkdirs, renames, unlinks and rmdirs are durable only once
//!   their directory is synced (FUSE_FSYNCDIR): every directory comes back with its entries
//!   (name → inode) as of its last sync. A file created and synced in a directory never synced
//!   does not exist after the cut; an unlink not followed by a sync of its directory is undone;
//!   a rename between two directories is complete once both were synced, and until then the
//!   file may be in both or in neither. A directory comes back once, at the first path that
//!   reaches it. Permissions come back as they are at the cut; times and owners are not kept.
//!
//! The model is in [`Volume`]; [`PowerCutFs`] serves it over FUSE.

mod contents;
mod fuse;
mod image;
mod volume;

pub use contents::{Contents, MAX_FILE_SIZE, PAGE_SIZE};
pub use fuse::{PowerCutFs, PowerSwitch};
pub use image::{load, save};
pub use volume::{Attr, DirEntry, Ino, Model, Node, Owner, SetAttr, Volume, ROOT};
