//! `powercut-fs` through the kernel: plain file operations on the mount, a cut, and the image
//! must hold exactly what the model keeps. This checks the harness the power-cut test relies
//! on: that unsynced data is really lost and synced data really kept.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;

use crate::common::{check_fuse_is_available, Filesystem};

mod common;

/// Every file and directory under `dir`, as `path → contents` (directories end in `/`).
fn tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(dir: &Path, prefix: &str, out: &mut BTreeMap<String, Vec<u8>>) {
        for entry in fs::read_dir(dir).expect("the image reads") {
            let entry = entry.expect("an entry");
            let name = format!("{prefix}{}", entry.file_name().to_string_lossy());
            if entry.file_type().expect("a type").is_dir() {
                out.insert(format!("{name}/"), Vec::new());
                walk(&entry.path(), &format!("{name}/"), out);
            } else {
                out.insert(name, fs::read(entry.path()).expect("a file reads"));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, "", &mut out);
    out
}

fn expected(entries: &[(&str, &[u8])]) -> BTreeMap<String, Vec<u8>> {
    entries
        .iter()
        .map(|&(path, bytes)| (path.to_owned(), bytes.to_vec()))
        .collect()
}

fn write_synced(path: &Path, bytes: &[u8]) {
    let mut file = File::create(path).expect("a file is created");
    file.write_all(bytes).expect("a file is written");
    file.sync_all().expect("a file is synced");
}

fn sync_dir(path: &Path) {
    File::open(path)
        .and_then(|dir| dir.sync_all())
        .expect("a directory is synced");
}

#[test]
fn strict_keeps_exactly_what_was_synced() {
    check_fuse_is_available();
    let image = tempfile::tempdir().expect("an image directory");
    fs::write(image.path().join("loaded"), b"loaded").expect("the image is written");
    let mount = tempfile::tempdir().expect("a mount point");
    let mut filesystem = Filesystem::mount(image.path(), mount.path(), "strict");
    let on = |name: &str| mount.path().join(name);

    // Several megabytes written at scattered offsets in pieces the kernel splits, then synced.
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    let file = File::create(on("big")).expect("big is created");
    for (start, end) in [
        (2_000_000, 3_000_000),
        (0, 1_500_000),
        (1_500_000, 2_000_000),
    ] {
        file.write_all_at(&big[start..end], start as u64)
            .expect("big is written");
    }
    file.sync_data().expect("big is synced");
    file.write_all_at(b"unsynced", 10).expect("big is written");
    drop(file);

    fs::write(on("unsynced"), b"lost").expect("unsynced is written");
    fs::write(on("loaded"), b"LOADED").expect("loaded is overwritten");
    let mut dsync = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .custom_flags(libc::O_DSYNC)
        .open(on("dsync"))
        .expect("dsync opens");
    dsync
        .write_all(b"durable at once")
        .expect("dsync is written");
    fs::create_dir(on("dir")).expect("dir is made");
    write_synced(&on("dir/inside"), b"its directory is never synced");
    write_synced(&on("removed"), b"back after the cut");
    write_synced(&on("renamed"), b"under its old name");
    sync_dir(mount.path());
    fs::remove_file(on("removed")).expect("removed is removed");
    fs::rename(on("renamed"), on("moved")).expect("renamed is renamed");
    filesystem.cut();

    let survivors = tree(image.path());
    assert_eq!(
        survivors["big"], big,
        "the synced contents, not the later write"
    );
    let mut rest = survivors;
    rest.remove("big");
    assert_eq!(
        rest,
        expected(&[
            ("dir/", b""),
            ("dsync", b"durable at once"),
            ("loaded", b"loaded"),
            ("removed", b"back after the cut"),
            ("renamed", b"under its old name"),
            ("unsynced", b""),
        ])
    );
}

#[test]
fn os_crash_keeps_overwrites_inside_the_synced_size() {
    check_fuse_is_available();
    let image = tempfile::tempdir().expect("an image directory");
    fs::write(image.path().join("loaded"), b"0123456789").expect("the image is written");
    let mount = tempfile::tempdir().expect("a mount point");
    let mut filesystem = Filesystem::mount(image.path(), mount.path(), "os-crash");
    let on = |name: &str| mount.path().join(name);

    let file = OpenOptions::new()
        .write(true)
        .open(on("loaded"))
        .expect("loaded opens");
    file.write_all_at(b"ab", 2).expect("an overwrite");
    file.write_all_at(b"XYZ", 10).expect("growth");
    drop(file);
    fs::write(on("new"), b"growth of a new file").expect("new is written");
    sync_dir(mount.path());
    filesystem.cut();

    assert_eq!(
        tree(image.path()),
        expected(&[("loaded", b"01ab456789"), ("new", b"")])
    );
}
