//! The filesystem as the writer sees it, and as a power cut would leave it.
//!
//! Every inode carries two states: the current one, which requests read and change, and the
//! durable one, which a power cut leaves. A sync of a file copies its current contents to its
//! durable contents; a sync of a directory copies its current entries (name → inode) to its
//! durable entries. [`Volume::survivors`] walks the durable entries from the root and takes
//! each file's durable contents, as the crate documentation describes per [`Model`].
//!
//! An inode lives while anything can still reach it: a current entry, a durable entry (a power
//! cut would bring it back), the kernel's lookups or an open handle.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::ffi::{OsStr, OsString};
use std::str::FromStr;
use std::time::SystemTime;

use fuser::{Errno, FileType};

use crate::contents::{Contents, MAX_FILE_SIZE};

/// An inode number, as FUSE names inodes.
pub type Ino = u64;

/// The root directory's inode number (FUSE's).
pub const ROOT: Ino = 1;

/// What survives a power cut besides the synced state; see the crate documentation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Model {
    /// A file keeps its contents and size as of its last sync, nothing more.
    Strict,
    /// A file also keeps unsynced writes inside its last synced size, but no unsynced growth.
    OsCrash,
}

impl FromStr for Model {
    type Err = String;

    fn from_str(text: &str) -> Result<Model, String> {
        match text {
            "strict" => Ok(Model::Strict),
            "os-crash" => Ok(Model::OsCrash),
            _ => Err(format!("unknown model {text:?}: strict or os-crash")),
        }
    }
}

/// A tree of files and directories: what a volume is loaded from, and what a power cut leaves.
#[derive(Clone, Debug)]
pub enum Node {
    /// A regular file.
    File {
        /// Permission bits.
        perm: u16,
        /// Its bytes.
        contents: Contents,
    },
    /// A directory.
    Dir {
        /// Permission bits.
        perm: u16,
        /// What it holds, by name.
        entries: BTreeMap<OsString, Node>,
    },
}

/// An inode's metadata, as `getattr` reports it.
#[derive(Clone, Copy, Debug)]
pub struct Attr {
    /// The inode number.
    pub ino: Ino,
    /// A regular file or a directory.
    pub kind: FileType,
    /// The length of a file's current contents; 0 for a directory.
    pub size: u64,
    /// Permission bits.
    pub perm: u16,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Last access.
    pub atime: SystemTime,
    /// Last change of the contents.
    pub mtime: SystemTime,
    /// Last change of the contents or the metadata.
    pub ctime: SystemTime,
}

/// The metadata a `setattr` request changes; `None` leaves a field alone.
#[derive(Clone, Copy, Debug, Default)]
pub struct SetAttr {
    /// A new length (`truncate`).
    pub size: Option<u64>,
    /// New permission bits.
    pub perm: Option<u16>,
    /// A new owner.
    pub uid: Option<u32>,
    /// A new group.
    pub gid: Option<u32>,
    /// A new access time.
    pub atime: Option<SystemTime>,
    /// A new modification time.
    pub mtime: Option<SystemTime>,
}

/// Who creates an inode, or owns a loaded one.
#[derive(Clone, Copy, Debug)]
pub struct Owner {
    /// User id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
}

/// One entry of a directory listing.
#[derive(Clone, Debug)]
pub struct DirEntry {
    /// The entry's inode.
    pub ino: Ino,
    /// A regular file or a directory.
    pub kind: FileType,
    /// The entry's name.
    pub name: OsString,
}

/// The in-memory filesystem.
#[derive(Debug)]
pub struct Volume {
    model: Model,
    inodes: HashMap<Ino, Inode>,
    handles: HashMap<u64, Handle>,
    next_ino: Ino,
    next_handle: u64,
}

#[derive(Debug)]
struct Inode {
    kind: Kind,
    perm: u16,
    uid: u32,
    gid: u32,
    atime: SystemTime,
    mtime: SystemTime,
    ctime: SystemTime,
    /// The kernel's references (lookups not yet forgotten).
    lookups: u64,
    /// Open handles.
    open: u64,
    /// Whether a current directory entry names it (no hard links: at most one does).
    linked: bool,
    /// How many durable directory entries name it.
    durable_links: u64,
}

#[derive(Debug)]
enum Kind {
    File(File),
    Dir(Dir),
}

#[derive(Debug)]
struct File {
    current: Contents,
    durable: Contents,
    /// Pages of `current` that may differ from `durable`.
    unsynced: BTreeSet<usize>,
}

#[derive(Debug)]
struct Dir {
    /// For `..` in a listing.
    parent: Ino,
    current: BTreeMap<OsString, Ino>,
    durable: BTreeMap<OsString, Ino>,
}

#[derive(Debug)]
enum Handle {
    /// An open file and the flags it was opened with.
    File { ino: Ino, flags: i32 },
    /// An open directory and its listing as of `opendir`, so that entries added or removed
    /// while a process reads it are neither repeated nor skipped.
    Dir { ino: Ino, entries: Vec<DirEntry> },
}

impl Volume {
    /// A volume holding `root` (a directory), all of it durable, owned by `owner`.
    ///
    /// # Panics
    ///
    /// When `root` is not a directory.
    pub fn new(model: Model, root: Node, owner: Owner) -> Volume {
        let mut volume = Volume {
            model,
            inodes: HashMap::new(),
            handles: HashMap::new(),
            next_ino: ROOT,
            next_handle: 1,
        };
        assert!(matches!(root, Node::Dir { .. }), "the root is a directory");
        volume.load(root, ROOT, owner);
        volume
    }

    /// Adds `node` and what it holds as durable inodes; returns its inode number.
    fn load(&mut self, node: Node, parent: Ino, owner: Owner) -> Ino {
        let ino = self.next_ino;
        self.next_ino += 1;
        let (kind, perm) = match node {
            Node::File { perm, contents } => (
                Kind::File(File {
                    durable: contents.clone(),
                    current: contents,
                    unsynced: BTreeSet::new(),
                }),
                perm,
            ),
            Node::Dir { perm, entries } => {
                let mut names = BTreeMap::new();
                for (name, child) in entries {
                    names.insert(name, self.load(child, ino, owner));
                }
                (
                    Kind::Dir(Dir {
                        parent,
                        durable: names.clone(),
                        current: names,
                    }),
                    perm,
                )
            }
        };
        let mut inode = Inode::new(kind, perm, owner);
        inode.linked = true;
        inode.durable_links = u64::from(ino != ROOT);
        self.inodes.insert(ino, inode);
        ino
    }

    /// The metadata of `ino`.
    pub fn attr(&self, ino: Ino) -> Result<Attr, Errno> {
        Ok(self.inode(ino)?.attr(ino))
    }

    /// Finds `name` in directory `parent`; the kernel then holds one more reference to it.
    pub fn lookup(&mut self, parent: Ino, name: &OsStr) -> Result<Attr, Errno> {
        let ino = *self.dir(parent)?.current.get(name).ok_or(Errno::ENOENT)?;
        let inode = self.inode_mut(ino)?;
        inode.lookups += 1;
        Ok(inode.attr(ino))
    }

    /// The kernel dropped `count` references to `ino`.
    pub fn forget(&mut self, ino: Ino, count: u64) {
        if let Some(inode) = self.inodes.get_mut(&ino) {
            inode.lookups = inode.lookups.saturating_sub(count);
            self.release_if_unused(ino);
        }
    }

    /// Changes the metadata of `ino`, truncating or extending a file when `size` is set.
    pub fn set_attr(&mut self, ino: Ino, change: SetAttr) -> Result<Attr, Errno> {
        let inode = self.inode_mut(ino)?;
        let now = SystemTime::now();
        if let Some(size) = change.size {
            let Kind::File(file) = &mut inode.kind else {
                return Err(Errno::EISDIR);
            };
            if size > MAX_FILE_SIZE {
                return Err(Errno::EFBIG);
            }
            file.unsynced.extend(file.current.set_len(size));
            inode.mtime = now;
        }
        if let Some(perm) = change.perm {
            inode.perm = perm;
        }
        if let Some(uid) = change.uid {
            inode.uid = uid;
        }
        if let Some(gid) = change.gid {
            inode.gid = gid;
        }
        if let Some(atime) = change.atime {
            inode.atime = atime;
        }
        if let Some(mtime) = change.mtime {
            inode.mtime = mtime;
        }
        inode.ctime = now;
        Ok(inode.attr(ino))
    }

    /// Makes directory `name` in `parent`; the kernel holds a reference to it.
    pub fn mkdir(
        &mut self,
        parent: Ino,
        name: &OsStr,
        perm: u16,
        owner: Owner,
    ) -> Result<Attr, Errno> {
        let kind = Kind::Dir(Dir {
            parent,
            current: BTreeMap::new(),
            durable: BTreeMap::new(),
        });
        self.add_entry(parent, name, Inode::new(kind, perm, owner))
    }

    /// Creates file `name` in `parent` and opens it with `flags`; the kernel holds a reference
    /// to it. Returns its metadata and the handle.
    pub fn create(
        &mut self,
        parent: Ino,
        name: &OsStr,
        perm: u16,
        owner: Owner,
        flags: i32,
    ) -> Result<(Attr, u64), Errno> {
        let kind = Kind::File(File {
            current: Contents::default(),
            durable: Contents::default(),
            unsynced: BTreeSet::new(),
        });
        let attr = self.add_entry(parent, name, Inode::new(kind, perm, owner))?;
        let handle = self.open(attr.ino, flags)?;
        Ok((attr, handle))
    }

    fn add_entry(&mut self, parent: Ino, name: &OsStr, mut inode: Inode) -> Result<Attr, Errno> {
        if self.dir(parent)?.current.contains_key(name) {
            return Err(Errno::EEXIST);
        }
        let ino = self.next_ino;
        self.next_ino += 1;
        inode.lookups = 1;
        inode.linked = true;
        let attr = inode.attr(ino);
        self.inodes.insert(ino, inode);
        self.dir_mut(parent)?.current.insert(name.to_owned(), ino);
        self.touch(parent);
        Ok(attr)
    }

    /// Opens file `ino`; a write through the handle is durable at once when `flags` hold
    /// `O_DSYNC` (which `O_SYNC` includes).
    pub fn open(&mut self, ino: Ino, flags: i32) -> Result<u64, Errno> {
        if matches!(self.inode(ino)?.kind, Kind::Dir(_)) {
            return Err(Errno::EISDIR);
        }
        Ok(self.add_handle(ino, Handle::File { ino, flags }))
    }

    /// Closes a handle of [`Volume::open`], [`Volume::create`] or [`Volume::opendir`].
    pub fn release(&mut self, handle: u64) {
        if let Some(Handle::File { ino, .. } | Handle::Dir { ino, .. }) =
            self.handles.remove(&handle)
        {
            if let Some(inode) = self.inodes.get_mut(&ino) {
                inode.open -= 1;
                self.release_if_unused(ino);
            }
        }
    }

    /// Up to `size` bytes of file `ino` from `offset`.
    pub fn read(&self, ino: Ino, offset: u64, size: usize) -> Result<Vec<u8>, Errno> {
        Ok(self.file(ino)?.current.read(offset, size))
    }

    /// Writes `data` at `offset` of file `ino` through `handle`. The write is durable at once
    /// when the handle was opened with `O_DSYNC` or `write_flags` (the file flags the kernel
    /// sends with every write, `RWF_DSYNC` included) hold it.
    pub fn write(
        &mut self,
        ino: Ino,
        handle: u64,
        offset: u64,
        data: &[u8],
        write_flags: i32,
    ) -> Result<usize, Errno> {
        let Some(&Handle::File { flags, .. }) = self.handles.get(&handle) else {
            return Err(Errno::EBADF);
        };
        if offset.saturating_add(data.len() as u64) > MAX_FILE_SIZE {
            return Err(Errno::EFBIG);
        }
        let inode = self.inode_mut(ino)?;
        let Kind::File(file) = &mut inode.kind else {
            return Err(Errno::EISDIR);
        };
        file.unsynced.extend(file.current.write(offset, data));
        if (flags | write_flags) & libc::O_DSYNC != 0 {
            // Only this write becomes durable, not the file's other unsynced writes.
            file.durable.write(offset, data);
        }
        let now = SystemTime::now();
        inode.mtime = now;
        inode.ctime = now;
        Ok(data.len())
    }

    /// `fsync`, `fdatasync` or a directory's `fsync`: makes the current state of `ino` durable,
    /// for a file its contents, for a directory its entries.
    pub fn sync(&mut self, ino: Ino) -> Result<(), Errno> {
        let removed = match &mut self.inode_mut(ino)?.kind {
            Kind::File(file) => {
                let unsynced = std::mem::take(&mut file.unsynced);
                file.durable.update_from(&file.current, unsynced);
                return Ok(());
            }
            Kind::Dir(dir) => std::mem::replace(&mut dir.durable, dir.current.clone()),
        };
        let added: Vec<Ino> = self.dir(ino)?.durable.values().copied().collect();
        // Count the new links before dropping the old ones, so that an entry in both stays alive.
        for child in added {
            self.inode_mut(child)?.durable_links += 1;
        }
        for child in removed.into_values() {
            self.inode_mut(child)?.durable_links -= 1;
            self.release_if_unused(child);
        }
        Ok(())
    }

    /// Opens directory `ino` for listing.
    pub fn opendir(&mut self, ino: Ino) -> Result<u64, Errno> {
        let dir = self.dir(ino)?;
        let mut entries = vec![
            DirEntry {
                ino,
                kind: FileType::Directory,
                name: ".".into(),
            },
            DirEntry {
                ino: dir.parent,
                kind: FileType::Directory,
                name: "..".into(),
            },
        ];
        for (name, &child) in &dir.current {
            entries.push(DirEntry {
                ino: child,
                kind: self.inode(child)?.file_type(),
                name: name.clone(),
            });
        }
        Ok(self.add_handle(ino, Handle::Dir { ino, entries }))
    }

    /// The entries of an open directory from position `offset` on (the position after an
    /// entry is its index plus one).
    pub fn readdir(&self, handle: u64, offset: u64) -> Result<&[DirEntry], Errno> {
        let Some(Handle::Dir { entries, .. }) = self.handles.get(&handle) else {
            return Err(Errno::EBADF);
        };
        Ok(entries
            .get(usize::try_from(offset).unwrap_or(usize::MAX)..)
            .unwrap_or_default())
    }

    /// Renames `name` in `parent` to `new_name` in `new_parent`, replacing what is there
    /// unless `no_replace`, as `rename(2)` and `renameat2(RENAME_NOREPLACE)` do.
    pub fn rename(
        &mut self,
        parent: Ino,
        name: &OsStr,
        new_parent: Ino,
        new_name: &OsStr,
        no_replace: bool,
    ) -> Result<(), Errno> {
        let ino = *self.dir(parent)?.current.get(name).ok_or(Errno::ENOENT)?;
        let moves_dir = matches!(self.inode(ino)?.kind, Kind::Dir(_));
        let replaced = self.dir(new_parent)?.current.get(new_name).copied();
        if replaced == Some(ino) {
            return Ok(());
        }
        if moves_dir && self.is_within(new_parent, ino)? {
            return Err(Errno::EINVAL);
        }
        if let Some(target) = replaced {
            if no_replace {
                return Err(Errno::EEXIST);
            }
            match (&self.inode(target)?.kind, moves_dir) {
                (Kind::Dir(dir), true) if !dir.current.is_empty() => return Err(Errno::ENOTEMPTY),
                (Kind::Dir(_), false) => return Err(Errno::EISDIR),
                (Kind::File(_), true) => return Err(Errno::ENOTDIR),
                _ => {}
            }
        }
        self.dir_mut(parent)?.current.remove(name);
        self.dir_mut(new_parent)?
            .current
            .insert(new_name.to_owned(), ino);
        if let Kind::Dir(dir) = &mut self.inode_mut(ino)?.kind {
            dir.parent = new_parent;
        }
        self.touch(parent);
        self.touch(new_parent);
        if let Some(target) = replaced {
            self.unlinked(target);
        }
        Ok(())
    }

    /// Removes file `name` from `parent`.
    pub fn unlink(&mut self, parent: Ino, name: &OsStr) -> Result<(), Errno> {
        let ino = *self.dir(parent)?.current.get(name).ok_or(Errno::ENOENT)?;
        if matches!(self.inode(ino)?.kind, Kind::Dir(_)) {
            return Err(Errno::EISDIR);
        }
        self.remove_entry(parent, name, ino)
    }

    /// Removes the empty directory `name` from `parent`.
    pub fn rmdir(&mut self, parent: Ino, name: &OsStr) -> Result<(), Errno> {
        let ino = *self.dir(parent)?.current.get(name).ok_or(Errno::ENOENT)?;
        match &self.inode(ino)?.kind {
            Kind::File(_) => return Err(Errno::ENOTDIR),
            Kind::Dir(dir) if !dir.current.is_empty() => return Err(Errno::ENOTEMPTY),
            Kind::Dir(_) => {}
        }
        self.remove_entry(parent, name, ino)
    }

    fn remove_entry(&mut self, parent: Ino, name: &OsStr, ino: Ino) -> Result<(), Errno> {
        self.dir_mut(parent)?.current.remove(name);
        self.touch(parent);
        self.unlinked(ino);
        Ok(())
    }

    /// The bytes the current contents of all files take.
    pub fn used_bytes(&self) -> u64 {
        self.inodes
            .values()
            .map(|inode| match &inode.kind {
                Kind::File(file) => file.current.len(),
                Kind::Dir(_) => 0,
            })
            .sum()
    }

    /// What a power cut at this moment leaves: the root directory with, recursively, every
    /// directory's durable entries, and each file's contents as the model keeps them.
    pub fn survivors(&self) -> Node {
        let mut visited = HashSet::new();
        self.surviving(ROOT, &mut visited)
            .expect("the root directory survives")
    }

    /// `None` for a directory already reached by another path: renames whose directories were
    /// synced at different times can leave a durable cycle, which the cut must not follow.
    fn surviving(&self, ino: Ino, visited: &mut HashSet<Ino>) -> Option<Node> {
        let inode = &self.inodes[&ino];
        match &inode.kind {
            Kind::File(file) => Some(Node::File {
                perm: inode.perm,
                contents: match self.model {
                    Model::Strict => file.durable.clone(),
                    Model::OsCrash => file.current.prefix(file.durable.len()),
                },
            }),
            Kind::Dir(dir) => {
                if !visited.insert(ino) {
                    return None;
                }
                let entries = dir
                    .durable
                    .iter()
                    .filter_map(|(name, &child)| {
                        Some((name.clone(), self.surviving(child, visited)?))
                    })
                    .collect();
                Some(Node::Dir {
                    perm: inode.perm,
                    entries,
                })
            }
        }
    }

    /// Whether `ino` is `ancestor` or lies below it in the current tree.
    fn is_within(&self, mut ino: Ino, ancestor: Ino) -> Result<bool, Errno> {
        loop {
            if ino == ancestor {
                return Ok(true);
            }
            let parent = self.dir(ino)?.parent;
            if parent == ino {
                return Ok(false);
            }
            ino = parent;
        }
    }

    fn add_handle(&mut self, ino: Ino, handle: Handle) -> u64 {
        let number = self.next_handle;
        self.next_handle += 1;
        self.handles.insert(number, handle);
        self.inodes
            .get_mut(&ino)
            .expect("a handle opens an existing inode")
            .open += 1;
        number
    }

    /// No current entry names `ino` any more.
    fn unlinked(&mut self, ino: Ino) {
        if let Some(inode) = self.inodes.get_mut(&ino) {
            inode.linked = false;
            inode.ctime = SystemTime::now();
            self.release_if_unused(ino);
        }
    }

    /// Drops `ino` once nothing can reach it, and then what only its durable entries kept.
    fn release_if_unused(&mut self, ino: Ino) {
        let mut pending = vec![ino];
        while let Some(ino) = pending.pop() {
            let unused = self.inodes.get(&ino).is_some_and(|inode| {
                ino != ROOT
                    && !inode.linked
                    && inode.durable_links == 0
                    && inode.lookups == 0
                    && inode.open == 0
            });
            if !unused {
                continue;
            }
            if let Some(Inode {
                kind: Kind::Dir(dir),
                ..
            }) = self.inodes.remove(&ino)
            {
                for child in dir.durable.into_values() {
                    if let Some(inode) = self.inodes.get_mut(&child) {
                        inode.durable_links -= 1;
                        pending.push(child);
                    }
                }
            }
        }
    }

    fn touch(&mut self, ino: Ino) {
        if let Some(inode) = self.inodes.get_mut(&ino) {
            let now = SystemTime::now();
            inode.mtime = now;
            inode.ctime = now;
        }
    }

    fn inode(&self, ino: Ino) -> Result<&Inode, Errno> {
        self.inodes.get(&ino).ok_or(Errno::ENOENT)
    }

    fn inode_mut(&mut self, ino: Ino) -> Result<&mut Inode, Errno> {
        self.inodes.get_mut(&ino).ok_or(Errno::ENOENT)
    }

    fn dir(&self, ino: Ino) -> Result<&Dir, Errno> {
        match &self.inode(ino)?.kind {
            Kind::Dir(dir) => Ok(dir),
            Kind::File(_) => Err(Errno::ENOTDIR),
        }
    }

    fn dir_mut(&mut self, ino: Ino) -> Result<&mut Dir, Errno> {
        match &mut self.inode_mut(ino)?.kind {
            Kind::Dir(dir) => Ok(dir),
            Kind::File(_) => Err(Errno::ENOTDIR),
        }
    }

    fn file(&self, ino: Ino) -> Result<&File, Errno> {
        match &self.inode(ino)?.kind {
            Kind::File(file) => Ok(file),
            Kind::Dir(_) => Err(Errno::EISDIR),
        }
    }
}

impl Inode {
    fn new(kind: Kind, perm: u16, owner: Owner) -> Inode {
        let now = SystemTime::now();
        Inode {
            kind,
            perm,
            uid: owner.uid,
            gid: owner.gid,
            atime: now,
            mtime: now,
            ctime: now,
            lookups: 0,
            open: 0,
            linked: false,
            durable_links: 0,
        }
    }

    fn file_type(&self) -> FileType {
        match self.kind {
            Kind::File(_) => FileType::RegularFile,
            Kind::Dir(_) => FileType::Directory,
        }
    }

    fn attr(&self, ino: Ino) -> Attr {
        Attr {
            ino,
            kind: self.file_type(),
            size: match &self.kind {
                Kind::File(file) => file.current.len(),
                Kind::Dir(_) => 0,
            },
            perm: self.perm,
            uid: self.uid,
            gid: self.gid,
            atime: self.atime,
            mtime: self.mtime,
            ctime: self.ctime,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OWNER: Owner = Owner { uid: 0, gid: 0 };

    fn empty(model: Model) -> Volume {
        Volume::new(
            model,
            Node::Dir {
                perm: 0o755,
                entries: BTreeMap::new(),
            },
            OWNER,
        )
    }

    /// Creates `name` in the root and opens it with `flags`; returns its inode and handle.
    fn create(volume: &mut Volume, name: &str, flags: i32) -> (Ino, u64) {
        let (attr, handle) = volume
            .create(ROOT, name.as_ref(), 0o644, OWNER, flags)
            .unwrap();
        (attr.ino, handle)
    }

    fn write(volume: &mut Volume, (ino, handle): (Ino, u64), offset: u64, data: &[u8]) {
        assert_eq!(
            volume.write(ino, handle, offset, data, 0).unwrap(),
            data.len()
        );
    }

    /// The surviving tree as `path → contents`, directories with a trailing slash.
    fn survivors(volume: &Volume) -> BTreeMap<String, Vec<u8>> {
        fn walk(node: &Node, path: String, out: &mut BTreeMap<String, Vec<u8>>) {
            match node {
                Node::File { contents, .. } => {
                    out.insert(path, contents.to_vec());
                }
                Node::Dir { entries, .. } => {
                    for (name, child) in entries {
                        let child_path = format!("{path}{}", name.to_string_lossy());
                        if matches!(child, Node::Dir { .. }) {
                            out.insert(format!("{child_path}/"), Vec::new());
                            walk(child, format!("{child_path}/"), out);
                        } else {
                            walk(child, child_path, out);
                        }
                    }
                }
            }
        }
        let mut out = BTreeMap::new();
        walk(&volume.survivors(), String::new(), &mut out);
        out
    }

    fn tree(entries: &[(&str, &[u8])]) -> BTreeMap<String, Vec<u8>> {
        entries
            .iter()
            .map(|&(path, bytes)| (path.to_owned(), bytes.to_vec()))
            .collect()
    }

    #[test]
    fn strict_loses_unsynced_writes_and_keeps_synced_ones() {
        let mut volume = empty(Model::Strict);
        let file = create(&mut volume, "f", libc::O_WRONLY);
        volume.sync(ROOT).unwrap();
        write(&mut volume, file, 0, b"synced");
        volume.sync(file.0).unwrap();
        write(&mut volume, file, 0, b"SYN");
        write(&mut volume, file, 6, b" and more");
        assert_eq!(volume.read(file.0, 0, 100).unwrap(), b"SYNced and more");
        assert_eq!(survivors(&volume), tree(&[("f", b"synced")]));
        volume.sync(file.0).unwrap();
        assert_eq!(survivors(&volume), tree(&[("f", b"SYNced and more")]));
    }

    #[test]
    fn a_sync_keeps_a_truncation_and_the_zeros_of_later_growth() {
        let mut volume = empty(Model::Strict);
        let file = create(&mut volume, "f", libc::O_RDWR);
        volume.sync(ROOT).unwrap();
        write(&mut volume, file, 0, &[7; 3 * crate::PAGE_SIZE]);
        volume.sync(file.0).unwrap();
        let grown = SetAttr {
            size: Some(2 * crate::PAGE_SIZE as u64),
            ..SetAttr::default()
        };
        volume
            .set_attr(
                file.0,
                SetAttr {
                    size: Some(10),
                    ..SetAttr::default()
                },
            )
            .unwrap();
        volume.set_attr(file.0, grown).unwrap();
        volume.sync(file.0).unwrap();
        let mut expected = vec![7; 10];
        expected.resize(2 * crate::PAGE_SIZE, 0);
        assert_eq!(survivors(&volume)["f"], expected);
    }

    #[test]
    fn a_write_through_an_o_dsync_handle_is_durable_at_once() {
        for flags in [
            libc::O_WRONLY | libc::O_DSYNC,
            libc::O_WRONLY | libc::O_SYNC,
        ] {
            let mut volume = empty(Model::Strict);
            let plain = create(&mut volume, "f", libc::O_WRONLY);
            volume.sync(ROOT).unwrap();
            let dsync = (plain.0, volume.open(plain.0, flags).unwrap());
            write(&mut volume, plain, 0, b"lost");
            write(&mut volume, dsync, 8, b"kept");
            assert_eq!(survivors(&volume)["f"], b"\0\0\0\0\0\0\0\0kept");
        }
    }

    #[test]
    fn a_write_with_rwf_dsync_is_durable_at_once() {
        let mut volume = empty(Model::Strict);
        let (ino, handle) = create(&mut volume, "f", libc::O_WRONLY);
        volume.sync(ROOT).unwrap();
        volume
            .write(ino, handle, 0, b"kept", libc::O_WRONLY | libc::O_DSYNC)
            .unwrap();
        assert_eq!(survivors(&volume)["f"], b"kept");
    }

    #[test]
    fn os_crash_keeps_overwrites_inside_the_synced_size_and_drops_growth() {
        let mut volume = empty(Model::OsCrash);
        let file = create(&mut volume, "f", libc::O_WRONLY);
        volume.sync(ROOT).unwrap();
        write(&mut volume, file, 0, b"0123456789");
        assert_eq!(survivors(&volume)["f"], b"", "growth of a new file is lost");
        volume.sync(file.0).unwrap();
        write(&mut volume, file, 2, b"ab");
        write(&mut volume, file, 8, b"cdefgh");
        assert_eq!(survivors(&volume)["f"], b"01ab4567cd");
        volume
            .set_attr(
                file.0,
                SetAttr {
                    size: Some(4),
                    ..SetAttr::default()
                },
            )
            .unwrap();
        assert_eq!(
            survivors(&volume)["f"],
            b"01ab",
            "a shorter file stays short"
        );
    }

    #[test]
    fn strict_drops_overwrites_that_os_crash_keeps() {
        let mut volume = empty(Model::Strict);
        let file = create(&mut volume, "f", libc::O_WRONLY);
        volume.sync(ROOT).unwrap();
        write(&mut volume, file, 0, b"0123456789");
        volume.sync(file.0).unwrap();
        write(&mut volume, file, 2, b"ab");
        assert_eq!(survivors(&volume)["f"], b"0123456789");
    }

    #[test]
    fn a_synced_file_in_a_directory_never_synced_does_not_exist() {
        let mut volume = empty(Model::Strict);
        let file = create(&mut volume, "f", libc::O_WRONLY);
        write(&mut volume, file, 0, b"data");
        volume.sync(file.0).unwrap();
        assert_eq!(survivors(&volume), tree(&[]));
        volume.sync(ROOT).unwrap();
        assert_eq!(survivors(&volume), tree(&[("f", b"data")]));
    }

    #[test]
    fn namespace_changes_revert_until_their_directory_is_synced() {
        let mut volume = empty(Model::Strict);
        let dir = volume.mkdir(ROOT, "d".as_ref(), 0o755, OWNER).unwrap().ino;
        let (inner, handle) = volume
            .create(dir, "inner".as_ref(), 0o644, OWNER, libc::O_WRONLY)
            .unwrap();
        write(&mut volume, (inner.ino, handle), 0, b"x");
        volume.sync(inner.ino).unwrap();
        assert_eq!(survivors(&volume), tree(&[]), "an unsynced mkdir is undone");
        volume.sync(ROOT).unwrap();
        assert_eq!(
            survivors(&volume),
            tree(&[("d/", b"")]),
            "d's own entries are not synced"
        );
        volume.sync(dir).unwrap();
        let all = tree(&[("d/", b""), ("d/inner", b"x")]);
        assert_eq!(survivors(&volume), all);

        volume.unlink(dir, "inner".as_ref()).unwrap();
        volume.release(handle);
        volume.forget(inner.ino, 1);
        assert_eq!(survivors(&volume), all, "an unsynced unlink is undone");
        volume.sync(dir).unwrap();
        assert_eq!(survivors(&volume), tree(&[("d/", b"")]));

        volume.rmdir(ROOT, "d".as_ref()).unwrap();
        volume.forget(dir, 1);
        assert_eq!(
            survivors(&volume),
            tree(&[("d/", b"")]),
            "an unsynced rmdir is undone"
        );
        volume.sync(ROOT).unwrap();
        assert_eq!(survivors(&volume), tree(&[]));
        assert_eq!(
            volume.inodes.len(),
            1,
            "nothing but the root is left in memory"
        );
    }

    #[test]
    fn a_rename_is_durable_once_both_directories_are_synced() {
        let mut volume = empty(Model::Strict);
        let dir = volume.mkdir(ROOT, "d".as_ref(), 0o755, OWNER).unwrap().ino;
        let file = create(&mut volume, "f", libc::O_WRONLY);
        write(&mut volume, file, 0, b"data");
        volume.sync(file.0).unwrap();
        volume.sync(ROOT).unwrap();
        volume.sync(dir).unwrap();
        volume
            .rename(ROOT, "f".as_ref(), dir, "g".as_ref(), false)
            .unwrap();
        assert_eq!(survivors(&volume), tree(&[("d/", b""), ("f", b"data")]));
        volume.sync(dir).unwrap();
        assert_eq!(
            survivors(&volume),
            tree(&[("d/", b""), ("d/g", b"data"), ("f", b"data")]),
            "only the new directory was synced: the file is in both"
        );
        volume.sync(ROOT).unwrap();
        assert_eq!(survivors(&volume), tree(&[("d/", b""), ("d/g", b"data")]));
    }

    #[test]
    fn a_rename_over_a_file_revives_the_old_file_until_synced() {
        let mut volume = empty(Model::Strict);
        let old = create(&mut volume, "target", libc::O_WRONLY);
        write(&mut volume, old, 0, b"old");
        volume.sync(old.0).unwrap();
        let new = create(&mut volume, "tmp", libc::O_WRONLY);
        write(&mut volume, new, 0, b"new");
        volume.sync(new.0).unwrap();
        volume.sync(ROOT).unwrap();
        volume
            .rename(ROOT, "tmp".as_ref(), ROOT, "target".as_ref(), false)
            .unwrap();
        volume.release(old.1);
        volume.forget(old.0, 1);
        assert!(
            volume.inodes.contains_key(&old.0),
            "its durable entry keeps the old file"
        );
        assert_eq!(
            survivors(&volume),
            tree(&[("target", b"old"), ("tmp", b"new")])
        );
        volume.sync(ROOT).unwrap();
        assert_eq!(survivors(&volume), tree(&[("target", b"new")]));
        assert!(!volume.inodes.contains_key(&old.0), "then nothing keeps it");
    }

    #[test]
    fn renames_refuse_what_rename_2_refuses() {
        let mut volume = empty(Model::Strict);
        let dir = volume.mkdir(ROOT, "d".as_ref(), 0o755, OWNER).unwrap().ino;
        let sub = volume.mkdir(dir, "sub".as_ref(), 0o755, OWNER).unwrap().ino;
        create(&mut volume, "f", libc::O_WRONLY);
        let rename = |volume: &mut Volume, from: (Ino, &str), to: (Ino, &str), no_replace| {
            volume.rename(from.0, from.1.as_ref(), to.0, to.1.as_ref(), no_replace)
        };
        assert_eq!(
            rename(&mut volume, (ROOT, "d"), (sub, "x"), false),
            Err(Errno::EINVAL)
        );
        assert_eq!(
            rename(&mut volume, (ROOT, "f"), (ROOT, "d"), false),
            Err(Errno::EISDIR)
        );
        assert_eq!(
            rename(&mut volume, (dir, "sub"), (ROOT, "f"), false),
            Err(Errno::ENOTDIR)
        );
        assert_eq!(
            rename(&mut volume, (ROOT, "f"), (ROOT, "d"), true),
            Err(Errno::EEXIST)
        );
        assert_eq!(
            rename(&mut volume, (ROOT, "x"), (ROOT, "y"), false),
            Err(Errno::ENOENT)
        );
        volume.mkdir(ROOT, "e".as_ref(), 0o755, OWNER).unwrap();
        assert_eq!(
            rename(&mut volume, (ROOT, "e"), (ROOT, "d"), false),
            Err(Errno::ENOTEMPTY)
        );
        assert_eq!(rename(&mut volume, (ROOT, "f"), (ROOT, "f"), false), Ok(()));
    }

    #[test]
    fn a_listing_keeps_the_entries_of_its_opendir() {
        let mut volume = empty(Model::Strict);
        create(&mut volume, "a", libc::O_WRONLY);
        let listing = volume.opendir(ROOT).unwrap();
        create(&mut volume, "b", libc::O_WRONLY);
        volume.unlink(ROOT, "a".as_ref()).unwrap();
        let names: Vec<OsString> = volume
            .readdir(listing, 0)
            .unwrap()
            .iter()
            .map(|entry| entry.name.clone())
            .collect();
        assert_eq!(names, [".", "..", "a"]);
        assert_eq!(volume.readdir(listing, 3).unwrap().len(), 0);
        assert_eq!(volume.readdir(listing, 99).unwrap().len(), 0);
    }

    #[test]
    fn a_loaded_image_is_durable() {
        let mut entries = BTreeMap::new();
        entries.insert(
            OsString::from("f"),
            Node::File {
                perm: 0o600,
                contents: Contents::from_bytes(b"loaded"),
            },
        );
        let mut volume = Volume::new(
            Model::Strict,
            Node::Dir {
                perm: 0o755,
                entries,
            },
            OWNER,
        );
        let ino = volume.lookup(ROOT, "f".as_ref()).unwrap().ino;
        let handle = volume.open(ino, libc::O_WRONLY).unwrap();
        write(&mut volume, (ino, handle), 0, b"LOADED and changed");
        volume.unlink(ROOT, "f".as_ref()).unwrap();
        assert_eq!(survivors(&volume), tree(&[("f", b"loaded")]));
    }
}
