// TEMPORARY naive placeholder with the same API; replaced by the persistent B+tree.
use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Arc;
pub(crate) type Key = Arc<[u8]>;
#[derive(Clone)]
pub(crate) struct Tree<V> { map: Arc<BTreeMap<Key, V>> }
fn conv(b: Bound<&[u8]>) -> Bound<&[u8]> { b }
impl<V: Clone> Tree<V> {
    pub(crate) fn new() -> Self { Tree { map: Arc::new(BTreeMap::new()) } }
    pub(crate) fn from_sorted<I: IntoIterator<Item = (Key, V)>>(items: I) -> Self { Tree { map: Arc::new(items.into_iter().collect()) } }
    pub(crate) fn len(&self) -> usize { self.map.len() }
    pub(crate) fn is_empty(&self) -> bool { self.map.is_empty() }
    pub(crate) fn get(&self, key: &[u8]) -> Option<&V> { self.map.get(key) }
    pub(crate) fn insert(&mut self, key: Key, value: V) -> Option<V> { Arc::make_mut(&mut self.map).insert(key, value) }
    pub(crate) fn remove(&mut self, key: &[u8]) -> Option<V> { Arc::make_mut(&mut self.map).remove(key) }
    fn ok(lower: Bound<&[u8]>, upper: Bound<&[u8]>) -> bool {
        match (lower, upper) { (Bound::Included(a), Bound::Included(b)) => a <= b, (Bound::Included(a)|Bound::Excluded(a), Bound::Excluded(b)|Bound::Included(b)) => a < b, _ => true }
    }
    pub(crate) fn count(&self, lower: Bound<&[u8]>, upper: Bound<&[u8]>) -> usize { self.range(lower, upper).count() }
    pub(crate) fn range(&self, lower: Bound<&[u8]>, upper: Bound<&[u8]>) -> Box<dyn Iterator<Item=(&Key,&V)> + '_> {
        if !Self::ok(lower, upper) { return Box::new(std::iter::empty()) }
        Box::new(self.map.range::<[u8], _>((conv(lower), conv(upper))))
    }
    pub(crate) fn range_rev(&self, lower: Bound<&[u8]>, upper: Bound<&[u8]>) -> Box<dyn Iterator<Item=(&Key,&V)> + '_> {
        if !Self::ok(lower, upper) { return Box::new(std::iter::empty()) }
        Box::new(self.map.range::<[u8], _>((conv(lower), conv(upper))).rev())
    }
}
