//! Shared helpers: temporary stores and a plain reference model of a revisioned store.

use std::collections::BTreeMap;

use revkv::{Db, Entry, ListOptions, Revision};

/// A temporary store that keeps up to `pins` list snapshots in memory.
pub fn temp_store(pins: usize) -> Db {
    Db::options()
        .pinned_snapshots(pins)
        .temporary()
        .expect("temporary store opens")
}

/// Pages through `options` chunk by chunk, calling `between` after every chunk (to write while
/// the list is in progress), and checks every chunk's `remaining` against what follows it.
/// Returns the keys read and the revision of the list.
pub fn page_through(
    db: &Db,
    options: ListOptions,
    mut between: impl FnMut(usize),
) -> (Vec<Entry>, Revision) {
    let mut pages = Vec::new();
    let mut next = options.clone();
    loop {
        let page = db.list(&next).expect("chunk reads");
        between(pages.len());
        let done = page.continue_token.is_none();
        if let Some(token) = &page.continue_token {
            next = options.clone().continue_token(token.clone());
        }
        pages.push(page);
        if done {
            break;
        }
    }
    let revision = pages[0].revision;
    let mut items = Vec::new();
    let total: usize = pages.iter().map(|p| p.items.len()).sum();
    for page in pages {
        assert_eq!(
            page.revision, revision,
            "every chunk reads the first chunk's revision"
        );
        items.extend(page.items);
        let remaining = page.remaining.expect("unfiltered lists count what remains");
        assert_eq!(
            remaining as usize,
            total - items.len(),
            "remaining after {} items",
            items.len()
        );
    }
    (items, revision)
}

/// The reference: every revision's full contents, computed the obvious way.
#[derive(Default)]
pub struct Model {
    /// Contents after each revision; index 0 is the empty store.
    states: Vec<BTreeMap<Vec<u8>, Entry>>,
}

impl Model {
    pub fn new() -> Self {
        Model {
            states: vec![BTreeMap::new()],
        }
    }

    pub fn revision(&self) -> Revision {
        Revision::new(self.states.len() as u64 - 1)
    }

    pub fn at(&self, revision: Revision) -> &BTreeMap<Vec<u8>, Entry> {
        &self.states[revision.get() as usize]
    }

    /// Applies one revision's changes: `Some(value)` puts, `None` deletes. Returns false (and
    /// adds no revision) when nothing changes, as the store does.
    pub fn apply(&mut self, changes: &[(Vec<u8>, Option<Vec<u8>>)]) -> bool {
        let mut next = self.at(self.revision()).clone();
        let revision = Revision::new(self.states.len() as u64);
        let mut changed = false;
        for (key, value) in changes {
            match value {
                Some(value) => {
                    let (create_revision, version) = match next.get(key) {
                        Some(old) => (old.create_revision, old.version + 1),
                        None => (revision, 1),
                    };
                    next.insert(
                        key.clone(),
                        Entry {
                            key: key.clone(),
                            value: value.clone(),
                            create_revision,
                            mod_revision: revision,
                            version,
                            labels: BTreeMap::new(),
                            fields: BTreeMap::new(),
                        },
                    );
                    changed = true;
                }
                None => changed |= next.remove(key).is_some(),
            }
        }
        if changed {
            self.states.push(next);
        }
        changed
    }
}
