//! Making sled's writes durable for real.
//!
//! sled 0.34.7 writes its log with `pwrite` and then calls `sync_file_range`, which flushes
//! neither the file's size nor the disk's volatile cache, and from that moment counts the data
//! as stable: it acknowledges flushes and reuses older log segments in place. A power cut
//! could then lose acknowledged writes, or leave a reused segment pointing at log data that
//! never reached the disk. revkv therefore swaps the open file description behind sled's
//! descriptor of its data file for one opened with `O_DSYNC`: every `pwrite` sled makes
//! returns only once the data, and the metadata needed to read it back, are on stable storage,
//! so whatever sled counts as stable is. The swap happens once, while the store opens, before
//! sled has acknowledged anything to revkv's callers.
//!
//! The other files of a store are created only while sled opens (`conf`, `snap.*`, `blobs/`;
//! revkv keeps every sled value small enough that sled writes no blob files), so one fsync of
//! the directory after opening makes the store's namespace durable.

use std::fs::{File, OpenOptions, TryLockError};
use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::os::unix::io::AsRawFd;
use std::path::Path;
use std::time::{Duration, Instant};

/// The name of sled's data file inside a store's directory.
const DATA_FILE: &str = "db";

/// Makes every write to the store at `dir`, which sled has just opened, durable when sled's
/// `pwrite` returns, and makes the directory's entries durable.
pub(super) fn make_durable(dir: &Path) -> io::Result<()> {
    let data_path = dir.join(DATA_FILE);
    let sled_descriptor = sled_descriptor_of(&data_path)?;
    let synchronous = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_DSYNC | libc::O_CLOEXEC)
        .open(&data_path)?;
    replace_description(&synchronous, sled_descriptor)?;
    relock(&synchronous, &data_path)?;
    // What sled wrote while opening, before the swap (zeroed free segments among it), is made
    // durable too: O_DSYNC covers each later write, not earlier dirty pages.
    synchronous.sync_all()?;
    drop(synchronous);
    sync_entries(dir)
}

/// Takes sled's lock on the data file again, on the new description, which `sled_descriptor`
/// keeps open once `synchronous` is dropped. The former description's lock goes away when its
/// last use ends: a read or write that sled's background threads had in flight keeps it for a
/// moment after the swap.
fn relock(synchronous: &File, data_path: &Path) -> io::Result<()> {
    const PATIENCE: Duration = Duration::from_secs(2);
    let started = Instant::now();
    loop {
        match synchronous.try_lock() {
            Ok(()) => return Ok(()),
            Err(TryLockError::WouldBlock) if started.elapsed() < PATIENCE => {
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(cause) => {
                return Err(io::Error::other(format!(
                    "cannot lock {} again after making it synchronous: {cause}",
                    data_path.display()
                )))
            }
        }
    }
}

/// Fsyncs the files sled creates only when it opens, and the directories holding them.
fn sync_entries(dir: &Path) -> io::Result<()> {
    let conf = dir.join("conf");
    if conf.exists() {
        File::open(&conf)?.sync_all()?;
    }
    let blobs = dir.join("blobs");
    if blobs.exists() {
        sync_directory(&blobs)?;
    }
    sync_directory(dir)?;
    // A store created just now also needs its own entry in its parent to be durable.
    match dir.canonicalize()?.parent() {
        Some(parent) => sync_directory(parent),
        None => Ok(()),
    }
}

/// Makes the entries of directory `dir` (creations, renames, removals) durable.
pub(crate) fn sync_directory(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// The one descriptor of this process open on `data_path`: sled's.
fn sled_descriptor_of(data_path: &Path) -> io::Result<i32> {
    let data = std::fs::metadata(data_path)?;
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc/self/fd")? {
        let entry = entry?;
        let Some(descriptor) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        // Descriptors that close meanwhile (the directory listing's own among them) fail to
        // stat and are not sled's, which stays open for as long as the store is.
        if let Ok(target) = std::fs::metadata(entry.path()) {
            if target.dev() == data.dev() && target.ino() == data.ino() {
                found.push(descriptor);
            }
        }
    }
    match found.as_slice() {
        [descriptor] => Ok(*descriptor),
        _ => Err(io::Error::other(format!(
            "expected sled to hold one descriptor on {}, found {}",
            data_path.display(),
            found.len()
        ))),
    }
}

/// Points `descriptor` at the open file description of `file`, atomically: `descriptor` never
/// stops being valid, so sled's reads and writes through it go on undisturbed.
#[allow(unsafe_code)]
fn replace_description(file: &File, descriptor: i32) -> io::Result<()> {
    // SAFETY: dup3 takes two descriptor numbers and touches no memory of ours. `descriptor` is
    // owned by sled's open `File`, which outlives this call; dup3 replaces the description it
    // refers to in one step (no moment where the number is closed or reusable), and both
    // descriptions name the same file, which sled only accesses with positional reads and
    // writes, so sled's `File` stays valid and keeps its meaning.
    let outcome = unsafe { libc::dup3(file.as_raw_fd(), descriptor, libc::O_CLOEXEC) };
    if outcome < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The flags of the description behind `descriptor`, as /proc reports them (octal).
    fn open_flags(descriptor: i32) -> u32 {
        let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{descriptor}")).unwrap();
        let flags = info
            .lines()
            .find_map(|line| line.strip_prefix("flags:"))
            .expect("fdinfo has a flags line");
        u32::from_str_radix(flags.trim(), 8).unwrap()
    }

    #[test]
    fn sled_writes_through_a_synchronous_description_after_open() -> crate::Result<()> {
        let dir = tempfile::tempdir().unwrap();
        let db = crate::Db::open(dir.path())?;
        let descriptor = sled_descriptor_of(&dir.path().join(DATA_FILE)).unwrap();
        assert_ne!(
            open_flags(descriptor) & libc::O_DSYNC as u32,
            0,
            "sled's data file is written with O_DSYNC"
        );
        db.put("k", "v")?;
        assert_eq!(db.get("k")?.unwrap().value, b"v");
        Ok(())
    }

    #[test]
    fn the_data_file_stays_locked_against_a_second_open() -> crate::Result<()> {
        let dir = tempfile::tempdir().unwrap();
        let _db = crate::Db::open(dir.path())?;
        let competitor = File::open(dir.path().join(DATA_FILE)).unwrap();
        assert!(
            competitor.try_lock().is_err(),
            "the lock moved to the new description"
        );
        Ok(())
    }
}
