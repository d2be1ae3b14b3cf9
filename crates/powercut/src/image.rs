//! The durable image on the real disk: a directory whose files and subdirectories the volume is
//! loaded from, and which a power cut replaces with what survived.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::Path;

use crate::contents::{Contents, PAGE_SIZE};
use crate::volume::Node;

/// Reads directory `dir` and everything below it. Pages of zeros are kept as holes, so a
/// sparse file costs no memory for them.
///
/// # Errors
///
/// When `dir` cannot be read, or holds anything but regular files and directories.
pub fn load(dir: &Path) -> io::Result<Node> {
    let metadata = fs::symlink_metadata(dir)?;
    if metadata.is_file() {
        let mut contents = Contents::default();
        contents.set_len(metadata.len());
        let mut file = fs::File::open(dir)?;
        let mut page = vec![0; PAGE_SIZE];
        let mut offset = 0;
        loop {
            let read = read_up_to(&mut file, &mut page)?;
            if read == 0 {
                break;
            }
            if page[..read].iter().any(|&byte| byte != 0) {
                contents.write(offset, &page[..read]);
            }
            offset += read as u64;
        }
        // The file may have changed while it was read; what was read is what counts.
        contents.set_len(offset);
        return Ok(Node::File {
            perm: permission_bits(&metadata),
            contents,
        });
    }
    if !metadata.is_dir() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "{} is neither a regular file nor a directory",
                dir.display()
            ),
        ));
    }
    let mut entries = BTreeMap::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        entries.insert(entry.file_name(), load(&entry.path())?);
    }
    Ok(Node::Dir {
        perm: permission_bits(&metadata),
        entries,
    })
}

/// Makes directory `dir` hold exactly what `root` (a directory) holds: removes everything in
/// it, then writes `root`'s entries. Holes stay holes.
///
/// # Errors
///
/// When `root` is not a directory, or the disk refuses.
pub fn save(dir: &Path, root: &Node) -> io::Result<()> {
    let Node::Dir { entries, perm } = root else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the root of an image is a directory",
        ));
    };
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            fs::remove_dir_all(entry.path())?;
        } else {
            fs::remove_file(entry.path())?;
        }
    }
    write_entries(dir, entries)?;
    fs::set_permissions(dir, fs::Permissions::from_mode(u32::from(*perm)))
}

fn write_entries(dir: &Path, entries: &BTreeMap<std::ffi::OsString, Node>) -> io::Result<()> {
    for (name, node) in entries {
        let path = dir.join(name);
        match node {
            Node::File { perm, contents } => {
                let file = fs::File::create(&path)?;
                file.set_len(contents.len())?;
                for (offset, bytes) in contents.written_pages() {
                    file.write_all_at(bytes, offset)?;
                }
                file.set_permissions(fs::Permissions::from_mode(u32::from(*perm)))?;
            }
            Node::Dir { perm, entries } => {
                fs::create_dir(&path)?;
                write_entries(&path, entries)?;
                fs::set_permissions(&path, fs::Permissions::from_mode(u32::from(*perm)))?;
            }
        }
    }
    Ok(())
}

/// Fills `buffer` unless the end of the file comes first; returns how much it read.
fn read_up_to(file: &mut fs::File, buffer: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buffer.len() {
        match file.read(&mut buffer[filled..]) {
            Ok(0) => break,
            Ok(read) => filled += read,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    Ok(filled)
}

fn permission_bits(metadata: &fs::Metadata) -> u16 {
    (metadata.permissions().mode() & 0o7777) as u16
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(bytes: &[u8]) -> Node {
        Node::File {
            perm: 0o640,
            contents: Contents::from_bytes(bytes),
        }
    }

    fn dir(entries: Vec<(&str, Node)>) -> Node {
        Node::Dir {
            perm: 0o750,
            entries: entries
                .into_iter()
                .map(|(name, node)| (name.into(), node))
                .collect(),
        }
    }

    /// The tree as comparable text: paths, permissions and bytes.
    fn describe(node: &Node, path: &str, out: &mut Vec<String>) {
        match node {
            Node::File { perm, contents } => {
                out.push(format!("{path} {perm:o} {:?}", contents.to_vec()));
            }
            Node::Dir { perm, entries } => {
                out.push(format!("{path}/ {perm:o}"));
                for (name, child) in entries {
                    describe(child, &format!("{path}/{}", name.to_string_lossy()), out);
                }
            }
        }
    }

    fn described(node: &Node) -> Vec<String> {
        let mut out = Vec::new();
        describe(node, "", &mut out);
        out
    }

    #[test]
    fn saving_replaces_the_directory_and_loading_reads_it_back() {
        let disk = tempfile::tempdir().unwrap();
        fs::write(disk.path().join("stale"), b"gone after the save").unwrap();
        fs::create_dir(disk.path().join("stale-dir")).unwrap();
        let mut sparse = Contents::default();
        sparse.write(3 * PAGE_SIZE as u64 + 7, b"tail");
        let tree = dir(vec![
            ("empty", file(b"")),
            ("small", file(b"hello")),
            (
                "sub",
                dir(vec![
                    ("deeper", dir(vec![])),
                    (
                        "sparse",
                        Node::File {
                            perm: 0o600,
                            contents: sparse,
                        },
                    ),
                ]),
            ),
        ]);
        save(disk.path(), &tree).unwrap();
        let loaded = load(disk.path()).unwrap();
        assert_eq!(described(&loaded), described(&tree));
        let Node::Dir { entries, .. } = &loaded else {
            panic!("a directory loads as one");
        };
        let Node::Dir { entries, .. } = &entries[std::ffi::OsStr::new("sub")] else {
            panic!("sub is a directory");
        };
        let Node::File { contents, .. } = &entries[std::ffi::OsStr::new("sparse")] else {
            panic!("sparse is a file");
        };
        assert_eq!(contents.written_pages().count(), 1, "holes load as holes");
    }

    #[test]
    fn a_symbolic_link_is_refused() {
        let disk = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("elsewhere", disk.path().join("link")).unwrap();
        let error = load(disk.path()).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidData);
    }
}
