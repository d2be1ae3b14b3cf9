//! The FUSE side: kernel requests turned into [`Volume`] operations, all behind one lock, and
//! the switch that cuts the power.

use std::ffi::OsStr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, LockOwner,
    OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyEmpty,
    ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, Request, TimeOrNow, WriteFlags,
};

use crate::volume::{Attr, Owner, SetAttr, Volume};

/// How long the kernel may cache attributes and entries. Every change comes through the kernel,
/// so its caches cannot go stale; after the cut nothing is answered but EIO anyway.
const TTL: Duration = Duration::from_secs(1);

/// The capacity `statfs` reports, in bytes.
const CAPACITY: u64 = 1 << 40;

/// The block size `statfs` and `stat` report.
const BLOCK_SIZE: u32 = 4096;

/// The filesystem that fuser serves.
#[derive(Debug)]
pub struct PowerCutFs {
    state: Arc<Mutex<State>>,
}

/// Cuts the power of a [`PowerCutFs`].
#[derive(Debug)]
pub struct PowerSwitch {
    state: Arc<Mutex<State>>,
}

#[derive(Debug)]
struct State {
    volume: Volume,
    cut: bool,
}

impl PowerCutFs {
    /// Serves `volume`; the switch cuts its power.
    pub fn new(volume: Volume) -> (PowerCutFs, PowerSwitch) {
        let state = Arc::new(Mutex::new(State { volume, cut: false }));
        let switch = PowerSwitch {
            state: Arc::clone(&state),
        };
        (PowerCutFs { state }, switch)
    }

    /// Runs `operation` on the volume unless the power is cut. The check happens under the
    /// lock that the cut takes, so an operation either completes before the cut and is part of
    /// what the cut sees, or fails with EIO.
    fn with<T>(&self, operation: impl FnOnce(&mut Volume) -> Result<T, Errno>) -> Result<T, Errno> {
        let mut state = lock(&self.state);
        if state.cut {
            return Err(Errno::EIO);
        }
        operation(&mut state.volume)
    }
}

impl PowerSwitch {
    /// Cuts the power: from now on every request fails with EIO. Returns what survives.
    pub fn cut(&self) -> crate::Node {
        let mut state = lock(&self.state);
        state.cut = true;
        state.volume.survivors()
    }
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    // A panic aborts the process (see main), so a poisoned lock cannot be observed.
    state.lock().expect("the volume's lock is never poisoned")
}

fn file_attr(attr: &Attr) -> FileAttr {
    FileAttr {
        ino: INodeNo(attr.ino),
        size: attr.size,
        blocks: attr.size.div_ceil(512),
        atime: attr.atime,
        mtime: attr.mtime,
        ctime: attr.ctime,
        crtime: attr.ctime,
        kind: attr.kind,
        perm: attr.perm,
        nlink: if attr.kind == FileType::Directory {
            2
        } else {
            1
        },
        uid: attr.uid,
        gid: attr.gid,
        rdev: 0,
        blksize: BLOCK_SIZE,
        flags: 0,
    }
}

fn owner(request: &Request) -> Owner {
    Owner {
        uid: request.uid(),
        gid: request.gid(),
    }
}

fn permission_bits(mode: u32, umask: u32) -> u16 {
    (mode & !umask & 0o7777) as u16
}

fn time(time: TimeOrNow) -> SystemTime {
    match time {
        TimeOrNow::SpecificTime(time) => time,
        TimeOrNow::Now => SystemTime::now(),
    }
}

fn reply_entry(result: Result<Attr, Errno>, reply: ReplyEntry) {
    match result {
        Ok(attr) => reply.entry(&TTL, &file_attr(&attr), Generation(0)),
        Err(errno) => reply.error(errno),
    }
}

fn reply_empty(result: Result<(), Errno>, reply: ReplyEmpty) {
    match result {
        Ok(()) => reply.ok(),
        Err(errno) => reply.error(errno),
    }
}

fn reply_open(result: Result<u64, Errno>, reply: ReplyOpen) {
    match result {
        Ok(handle) => reply.opened(FileHandle(handle), FopenFlags::empty()),
        Err(errno) => reply.error(errno),
    }
}

impl Filesystem for PowerCutFs {
    fn lookup(&self, _request: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        reply_entry(self.with(|volume| volume.lookup(parent.0, name)), reply);
    }

    fn forget(&self, _request: &Request, ino: INodeNo, count: u64) {
        // After the cut nothing is freed any more, which no longer matters.
        let _ = self.with(|volume| {
            volume.forget(ino.0, count);
            Ok(())
        });
    }

    fn getattr(&self, _request: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.with(|volume| volume.attr(ino.0)) {
            Ok(attr) => reply.attr(&TTL, &file_attr(&attr)),
            Err(errno) => reply.error(errno),
        }
    }

    fn setattr(
        &self,
        _request: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let change = SetAttr {
            size,
            perm: mode.map(|mode| permission_bits(mode, 0)),
            uid,
            gid,
            atime: atime.map(time),
            mtime: mtime.map(time),
        };
        match self.with(|volume| volume.set_attr(ino.0, change)) {
            Ok(attr) => reply.attr(&TTL, &file_attr(&attr)),
            Err(errno) => reply.error(errno),
        }
    }

    fn mkdir(
        &self,
        request: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        let perm = permission_bits(mode, umask);
        let result = self.with(|volume| volume.mkdir(parent.0, name, perm, owner(request)));
        reply_entry(result, reply);
    }

    fn unlink(&self, _request: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        reply_empty(self.with(|volume| volume.unlink(parent.0, name)), reply);
    }

    fn rmdir(&self, _request: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        reply_empty(self.with(|volume| volume.rmdir(parent.0, name)), reply);
    }

    fn rename(
        &self,
        _request: &Request,
        parent: INodeNo,
        name: &OsStr,
        new_parent: INodeNo,
        new_name: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        if flags.intersects(RenameFlags::RENAME_EXCHANGE | RenameFlags::RENAME_WHITEOUT) {
            reply.error(Errno::EINVAL);
            return;
        }
        let no_replace = flags.contains(RenameFlags::RENAME_NOREPLACE);
        let result =
            self.with(|volume| volume.rename(parent.0, name, new_parent.0, new_name, no_replace));
        reply_empty(result, reply);
    }

    fn open(&self, _request: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        reply_open(self.with(|volume| volume.open(ino.0, flags.0)), reply);
    }

    fn read(
        &self,
        _request: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        match self.with(|volume| volume.read(ino.0, offset, size as usize)) {
            Ok(bytes) => reply.data(&bytes),
            Err(errno) => reply.error(errno),
        }
    }

    fn write(
        &self,
        _request: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        match self.with(|volume| volume.write(ino.0, fh.0, offset, data, flags.0)) {
            Ok(written) => reply.written(u32::try_from(written).expect("a write fits a request")),
            Err(errno) => reply.error(errno),
        }
    }

    fn flush(
        &self,
        _request: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        // close(2) makes nothing durable; it only reports the cut.
        reply_empty(self.with(|_| Ok(())), reply);
    }

    fn release(
        &self,
        _request: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        let result = self.with(|volume| {
            volume.release(fh.0);
            Ok(())
        });
        reply_empty(result, reply);
    }

    fn fsync(
        &self,
        _request: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        reply_empty(self.with(|volume| volume.sync(ino.0)), reply);
    }

    fn opendir(&self, _request: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        reply_open(self.with(|volume| volume.opendir(ino.0)), reply);
    }

    fn readdir(
        &self,
        _request: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        match self.with(|volume| Ok(volume.readdir(fh.0, offset)?.to_vec())) {
            Ok(entries) => {
                for (position, entry) in (offset + 1..).zip(&entries) {
                    if reply.add(INodeNo(entry.ino), position, entry.kind, &entry.name) {
                        break;
                    }
                }
                reply.ok();
            }
            Err(errno) => reply.error(errno),
        }
    }

    fn releasedir(
        &self,
        _request: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        let result = self.with(|volume| {
            volume.release(fh.0);
            Ok(())
        });
        reply_empty(result, reply);
    }

    fn fsyncdir(
        &self,
        _request: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        reply_empty(self.with(|volume| volume.sync(ino.0)), reply);
    }

    fn statfs(&self, _request: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        match self.with(|volume| Ok(volume.used_bytes())) {
            Ok(used) => {
                let blocks = CAPACITY / u64::from(BLOCK_SIZE);
                let free = blocks.saturating_sub(used.div_ceil(u64::from(BLOCK_SIZE)));
                reply.statfs(
                    blocks,
                    free,
                    free,
                    u64::from(u32::MAX),
                    u64::from(u32::MAX),
                    BLOCK_SIZE,
                    255,
                    BLOCK_SIZE,
                );
            }
            Err(errno) => reply.error(errno),
        }
    }

    fn create(
        &self,
        request: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let perm = permission_bits(mode, umask);
        let result = self.with(|volume| volume.create(parent.0, name, perm, owner(request), flags));
        match result {
            Ok((attr, handle)) => reply.created(
                &TTL,
                &file_attr(&attr),
                Generation(0),
                FileHandle(handle),
                FopenFlags::empty(),
            ),
            Err(errno) => reply.error(errno),
        }
    }
}
