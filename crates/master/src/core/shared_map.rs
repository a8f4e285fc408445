//! `SharedMap`: an ordered map whose clone is O(1), so the event loop can publish the
//! core's frameworks, agents, offers and tasks as an immutable snapshot without copying
//! them (DESIGN invariant 3), and readers render `/master/state` from it on their own
//! threads.
//!
//! It is a two-level copy-on-write tree: a shared vector of shared leaves, each a short
//! sorted vector of keys and shared values. Changing an entry after a clone copies the
//! leaf vector's pointers (and the leaves' first keys) once, the touched leaf (at most
//! [`MAX_LEAF`] keys) and the value; nothing else. Without a clone alive, changes are
//! made in place.
//!
//! The leaves' first keys are kept side by side as well: finding the leaf then reads
//! one vector instead of following two pointers per step, which at 10,000 agents or
//! 100,000 tasks were each a cache miss (a sixth of the master's time in the
//! throughput benchmark went to finding entries).

use std::borrow::Borrow;
use std::fmt;
use std::sync::Arc;

/// A leaf splits in two when it grows past this many entries.
const MAX_LEAF: usize = 64;

/// A key whose order is the order of its bytes (the IDs, strings).
pub trait KeyText {
    fn key_text(&self) -> &[u8];
}

impl KeyText for str {
    fn key_text(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl KeyText for String {
    fn key_text(&self) -> &[u8] {
        self.as_bytes()
    }
}

macro_rules! key_text_of_ids {
    ($($id:ty),*) => {$(
        impl KeyText for $id {
            fn key_text(&self) -> &[u8] {
                self.value.as_bytes()
            }
        }
    )*};
}

key_text_of_ids!(
    mantle_api::AgentId,
    mantle_api::FrameworkId,
    mantle_api::OfferId,
    mantle_api::TaskId
);

/// Up to eight bytes of `text` after the first `skip`, as a number that orders like
/// them (missing bytes count as zero): of two keys that share their first `skip` bytes,
/// the one with the smaller hint is the smaller key, and only equal hints need the
/// keys themselves compared.
fn hint_at(text: &[u8], skip: usize) -> u64 {
    let rest = &text[skip.min(text.len())..];
    let mut bytes = [0u8; 8];
    let n = rest.len().min(8);
    bytes[..n].copy_from_slice(&rest[..n]);
    u64::from_be_bytes(bytes)
}

#[derive(Clone)]
struct Entry<K, V> {
    hint: u64,
    key: K,
    value: Arc<V>,
}

type Leaf<K, V> = Vec<Entry<K, V>>;

/// The leaves, each one's first key and its hint at the same index, and the prefix all
/// keys share.
///
/// A search compares hints, which sit side by side in the vectors it reads, and
/// follows a key's pointer to its text only where two hints are equal. The master's
/// IDs share long prefixes (`<master id>-S<n>`): compared whole, each step of a search
/// read a key's text from another cache line (at 20,000 agents, searches and their
/// comparisons were 9% of the master's samples).
#[derive(Clone)]
struct Top<K, V> {
    /// Non-empty leaves in key order; each leaf sorted.
    leaves: Vec<Arc<Leaf<K, V>>>,
    firsts: Vec<K>,
    hints: Vec<u64>,
    /// A key whose first `skip` bytes every key shares.
    prefix: Option<K>,
    skip: usize,
}

impl<K: KeyText + Clone, V: Clone> Top<K, V> {
    /// The hint of a key that starts with the common prefix.
    fn hint<Q: KeyText + ?Sized>(&self, key: &Q) -> Option<u64> {
        let prefix = &self.prefix.as_ref()?.key_text()[..self.skip];
        let text = key.key_text();
        (text.get(..self.skip)? == prefix).then(|| hint_at(text, self.skip))
    }

    /// Shortens the common prefix to what `key` shares with it, recomputing every
    /// hint. Keys of one kind soon agree on their prefix, so this is rare.
    fn admit(&mut self, key: &K) {
        let Some(prefix) = &self.prefix else {
            self.prefix = Some(key.clone());
            self.skip = key.key_text().len();
            return;
        };
        let (a, b) = (prefix.key_text(), key.key_text());
        self.skip = (a.iter().zip(b).take(self.skip))
            .take_while(|(x, y)| x == y)
            .count();
        let skip = self.skip;
        for leaf in &mut self.leaves {
            for entry in Arc::make_mut(leaf) {
                entry.hint = hint_at(entry.key.key_text(), skip);
            }
        }
        self.hints = (self.firsts.iter())
            .map(|k| hint_at(k.key_text(), skip))
            .collect();
    }
}

pub struct SharedMap<K, V> {
    top: Arc<Top<K, V>>,
    len: usize,
}

impl<K, V> Clone for SharedMap<K, V> {
    fn clone(&self) -> Self {
        SharedMap {
            top: Arc::clone(&self.top),
            len: self.len,
        }
    }
}

impl<K, V> Default for SharedMap<K, V> {
    fn default() -> Self {
        SharedMap {
            top: Arc::new(Top {
                leaves: Vec::new(),
                firsts: Vec::new(),
                hints: Vec::new(),
                prefix: None,
                skip: 0,
            }),
            len: 0,
        }
    }
}

impl<K: fmt::Debug, V: fmt::Debug> fmt::Debug for SharedMap<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let entries = self
            .top
            .leaves
            .iter()
            .flat_map(|l| l.iter().map(|e| (&e.key, &e.value)));
        f.debug_map().entries(entries).finish()
    }
}

impl<K: Ord + Clone + KeyText, V: Clone> SharedMap<K, V> {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The leaf that holds `key` if it is present (or would hold it), and the position
    /// in that leaf: `Ok` when found, `Err` where it would be inserted.
    fn locate<Q>(&self, key: &Q) -> Option<(usize, Result<usize, usize>)>
    where
        K: Borrow<Q>,
        Q: Ord + KeyText + ?Sized,
    {
        let top = &*self.top;
        let last = top.leaves.len().checked_sub(1)?;
        match top.hint(key) {
            Some(hint) => Some(self.locate_hinted(key, hint)),
            // Absent, since every key has the prefix. (`insert` shortens the prefix
            // first, so the position is never used.)
            None => Some((last, Err(top.leaves[last].len()))),
        }
    }

    /// [`Self::locate`] in a non-empty map, for a key with the common prefix and `hint`.
    fn locate_hinted<Q>(&self, key: &Q, hint: u64) -> (usize, Result<usize, usize>)
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        let top = &*self.top;
        // The last leaf whose first key is not after `key`.
        let lo = top.hints.partition_point(|&h| h < hint);
        let equal = top.hints[lo..].partition_point(|&h| h == hint);
        let after = lo + top.firsts[lo..lo + equal].partition_point(|first| first.borrow() <= key);
        let leaf = after.saturating_sub(1);
        let entries = &top.leaves[leaf];
        let lo = entries.partition_point(|e| e.hint < hint);
        let equal = entries[lo..].partition_point(|e| e.hint == hint);
        let at = match entries[lo..lo + equal].binary_search_by(|e| e.key.borrow().cmp(key)) {
            Ok(i) => Ok(lo + i),
            Err(i) => Err(lo + i),
        };
        (leaf, at)
    }

    pub fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Ord + KeyText + ?Sized,
    {
        match self.locate(key)? {
            (leaf, Ok(at)) => Some(&self.top.leaves[leaf][at].value),
            _ => None,
        }
    }

    pub fn contains_key<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Ord + KeyText + ?Sized,
    {
        self.get(key).is_some()
    }

    /// A mutable reference, copying what a snapshot still shares.
    pub fn get_mut<Q>(&mut self, key: &Q) -> Option<&mut V>
    where
        K: Borrow<Q>,
        Q: Ord + KeyText + ?Sized,
    {
        let (leaf, Ok(at)) = self.locate(key)? else {
            return None;
        };
        let top = Arc::make_mut(&mut self.top);
        let entries = Arc::make_mut(&mut top.leaves[leaf]);
        Some(Arc::make_mut(&mut entries[at].value))
    }

    /// Inserts or replaces; returns the value replaced.
    pub fn insert(&mut self, key: K, value: V) -> Option<V> {
        let hint = match self.top.hint(&key) {
            Some(hint) => hint,
            None => {
                Arc::make_mut(&mut self.top).admit(&key);
                self.top.hint(&key).expect("the prefix admits the key")
            }
        };
        let entry = Entry {
            hint,
            key,
            value: Arc::new(value),
        };
        if self.top.leaves.is_empty() {
            let top = Arc::make_mut(&mut self.top);
            top.firsts.push(entry.key.clone());
            top.hints.push(hint);
            top.leaves.push(Arc::new(vec![entry]));
            self.len = 1;
            return None;
        }
        let (leaf, at) = self.locate_hinted(&entry.key, hint);
        let top = Arc::make_mut(&mut self.top);
        let entries = Arc::make_mut(&mut top.leaves[leaf]);
        match at {
            Ok(at) => {
                let old = std::mem::replace(&mut entries[at].value, entry.value);
                Some(Arc::unwrap_or_clone(old))
            }
            Err(at) => {
                if at == 0 {
                    // Only the first leaf takes a key before its first.
                    top.firsts[leaf] = entry.key.clone();
                    top.hints[leaf] = hint;
                }
                entries.insert(at, entry);
                self.len += 1;
                if entries.len() > MAX_LEAF {
                    let upper = entries.split_off(entries.len() / 2);
                    top.firsts.insert(leaf + 1, upper[0].key.clone());
                    top.hints.insert(leaf + 1, upper[0].hint);
                    top.leaves.insert(leaf + 1, Arc::new(upper));
                }
                None
            }
        }
    }

    pub fn remove<Q>(&mut self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Ord + KeyText + ?Sized,
    {
        let (leaf, Ok(at)) = self.locate(key)? else {
            return None;
        };
        let top = Arc::make_mut(&mut self.top);
        let entries = Arc::make_mut(&mut top.leaves[leaf]);
        let removed = entries.remove(at);
        if entries.is_empty() {
            top.leaves.remove(leaf);
            top.firsts.remove(leaf);
            top.hints.remove(leaf);
            if top.leaves.is_empty() {
                top.prefix = None;
            }
        } else if at == 0 {
            top.firsts[leaf] = entries[0].key.clone();
            top.hints[leaf] = entries[0].hint;
        }
        self.len -= 1;
        Some(Arc::unwrap_or_clone(removed.value))
    }

    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (&K, &V)> + Clone {
        self.top
            .leaves
            .iter()
            .flat_map(|leaf| leaf.iter().map(|e| (&e.key, &*e.value)))
    }

    pub fn keys(&self) -> impl DoubleEndedIterator<Item = &K> + Clone {
        self.iter().map(|(k, _)| k)
    }

    pub fn values(&self) -> impl DoubleEndedIterator<Item = &V> + Clone {
        self.iter().map(|(_, v)| v)
    }

    /// Every value mutably: copies everything a snapshot shares, so the event loop uses
    /// it only where every entry may change anyway.
    pub fn values_mut(&mut self) -> impl Iterator<Item = &mut V> {
        self.iter_mut().map(|(_, v)| v)
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = (&K, &mut V)> {
        Arc::make_mut(&mut self.top)
            .leaves
            .iter_mut()
            .flat_map(|leaf| {
                Arc::make_mut(leaf)
                    .iter_mut()
                    .map(|e| (&e.key, Arc::make_mut(&mut e.value)))
            })
    }

    /// Keeps the entries for which `keep` holds.
    pub fn retain(&mut self, mut keep: impl FnMut(&K, &V) -> bool) {
        let gone: Vec<K> = self
            .iter()
            .filter(|(k, v)| !keep(k, v))
            .map(|(k, _)| k.clone())
            .collect();
        for key in gone {
            self.remove(&key);
        }
    }

    pub fn into_values(self) -> impl Iterator<Item = V> {
        Arc::unwrap_or_clone(self.top)
            .leaves
            .into_iter()
            .flat_map(|leaf| Arc::unwrap_or_clone(leaf).into_iter())
            .map(|e| Arc::unwrap_or_clone(e.value))
    }

    pub fn into_entries(self) -> impl Iterator<Item = (K, V)> {
        Arc::unwrap_or_clone(self.top)
            .leaves
            .into_iter()
            .flat_map(|leaf| Arc::unwrap_or_clone(leaf).into_iter())
            .map(|e| (e.key, Arc::unwrap_or_clone(e.value)))
    }

    /// The value for `key`, inserted from `make` when absent.
    pub fn get_or_insert_with(&mut self, key: K, make: impl FnOnce() -> V) -> &mut V {
        if !self.contains_key(&key) {
            self.insert(key.clone(), make());
        }
        self.get_mut(&key).expect("inserted above")
    }
}

impl<K: Ord + Clone + KeyText, V: Clone> FromIterator<(K, V)> for SharedMap<K, V> {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(items: I) -> Self {
        let mut map = SharedMap::new();
        for (k, v) in items {
            map.insert(k, v);
        }
        map
    }
}

impl<K, V, Q> std::ops::Index<&Q> for SharedMap<K, V>
where
    K: Ord + Clone + KeyText + Borrow<Q>,
    V: Clone,
    Q: Ord + KeyText + ?Sized,
{
    type Output = V;
    fn index(&self, key: &Q) -> &V {
        self.get(key).expect("key present in SharedMap")
    }
}

/// A set on [`SharedMap`], for sets that snapshots share (a framework's offers).
#[derive(Clone, Default)]
pub struct SharedSet<K> {
    map: SharedMap<K, ()>,
}

impl<K: fmt::Debug> fmt::Debug for SharedSet<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set()
            .entries(
                self.map
                    .top
                    .leaves
                    .iter()
                    .flat_map(|l| l.iter().map(|e| &e.key)),
            )
            .finish()
    }
}

impl<K: Ord + Clone + KeyText> SharedSet<K> {
    pub fn new() -> Self {
        SharedSet {
            map: SharedMap::new(),
        }
    }

    /// True when it was not present.
    pub fn insert(&mut self, key: K) -> bool {
        self.map.insert(key, ()).is_none()
    }

    /// True when it was present.
    pub fn remove<Q>(&mut self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Ord + KeyText + ?Sized,
    {
        self.map.remove(key).is_some()
    }

    pub fn contains<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Ord + KeyText + ?Sized,
    {
        self.map.contains_key(key)
    }

    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &K> + Clone {
        self.map.keys()
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

impl<'a, K: Ord + Clone + KeyText> IntoIterator for &'a SharedSet<K> {
    type Item = &'a K;
    type IntoIter = Box<dyn Iterator<Item = &'a K> + 'a>;
    fn into_iter(self) -> Self::IntoIter {
        Box::new(self.iter())
    }
}

impl<'a, K: Ord + Clone + KeyText, V: Clone> IntoIterator for &'a SharedMap<K, V> {
    type Item = (&'a K, &'a V);
    type IntoIter = Box<dyn Iterator<Item = (&'a K, &'a V)> + 'a>;
    fn into_iter(self) -> Self::IntoIter {
        Box::new(self.iter())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// Key `n` as text. Most share a long prefix as the master's IDs do; some are
    /// shorter than it, equal to parts of it, or leave it early, so that the common
    /// prefix shrinks while keys come and lookups fall before and after it.
    fn key(n: u32) -> String {
        const PREFIX: &str = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0-S";
        match n % 13 {
            0 => PREFIX[..(n as usize / 13) % PREFIX.len()].to_string(),
            1 => format!("{n}"),
            2 => format!("{PREFIX}{n}\u{0}x"),
            _ => format!("{PREFIX}{n}"),
        }
    }

    /// Applies `(key, Some(value))` inserts and `(key, None)` removals to a SharedMap and a
    /// BTreeMap, checking they agree after each, and that a clone taken midway keeps its
    /// contents.
    fn check(ops: &[(u32, Option<u32>)]) {
        let mut map = SharedMap::new();
        let mut model = BTreeMap::new();
        let mut frozen: Option<(SharedMap<String, u32>, BTreeMap<String, u32>)> = None;
        for (i, (n, value)) in ops.iter().enumerate() {
            let k = key(*n);
            match value {
                Some(v) => assert_eq!(map.insert(k.clone(), *v), model.insert(k, *v)),
                None => assert_eq!(map.remove(&k), model.remove(&k)),
            }
            assert_eq!(map.len(), model.len());
            let top = &map.top;
            let firsts: Vec<&String> = top.leaves.iter().map(|leaf| &leaf[0].key).collect();
            assert_eq!(
                top.firsts.iter().collect::<Vec<_>>(),
                firsts,
                "the first keys follow the leaves"
            );
            let hint = |k: &String| hint_at(k.as_bytes(), top.skip);
            assert!(top.firsts.iter().map(hint).eq(top.hints.iter().copied()));
            for entry in top.leaves.iter().flat_map(|leaf| leaf.iter()) {
                assert_eq!(entry.hint, hint(&entry.key), "{:?}", entry.key);
                assert!(entry
                    .key
                    .starts_with(&top.prefix.as_ref().unwrap()[..top.skip]));
            }
            if i == ops.len() / 2 {
                frozen = Some((map.clone(), model.clone()));
            }
        }
        let got: Vec<(String, u32)> = map.iter().map(|(k, v)| (k.clone(), *v)).collect();
        let want: Vec<(String, u32)> = model.iter().map(|(k, v)| (k.clone(), *v)).collect();
        assert_eq!(got, want);
        let probes = (0..1000).map(key).chain(
            [
                "",
                "0",
                "0f1e",
                "zz",
                "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0-T",
            ]
            .map(String::from),
        );
        for k in probes {
            assert_eq!(map.get(k.as_str()), model.get(&k), "{k:?}");
        }
        if let Some((old, old_model)) = frozen {
            let got: Vec<(String, u32)> = old.iter().map(|(k, v)| (k.clone(), *v)).collect();
            let want: Vec<(String, u32)> = old_model.into_iter().collect();
            assert_eq!(got, want, "a clone changed with the original");
        }
    }

    #[test]
    fn agrees_with_btreemap() {
        check(&[]);
        check(&[(1, Some(1)), (1, Some(2)), (1, None), (1, None)]);
        let ascending: Vec<_> = (0..500).map(|k| (k, Some(k))).collect();
        check(&ascending);
        let descending: Vec<_> = (0..500).rev().map(|k| (k, Some(k))).collect();
        check(&descending);
        // A seeded shuffle of inserts and removals.
        let mut x: u32 = 12345;
        let mut next = || {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            (x >> 8) % 997
        };
        let mixed: Vec<_> = (0..5000)
            .map(|_| {
                let key = next();
                (key, (next() % 3 != 0).then_some(key * 7))
            })
            .collect();
        check(&mixed);
        // Keys that all share the prefix, looked up with keys that do not; then others
        // coming late shorten it.
        let shared: Vec<_> = mixed.iter().copied().filter(|(k, _)| k % 13 >= 2).collect();
        check(&shared);
        let late: Vec<_> = shared.iter().chain(&mixed).copied().collect();
        check(&late);
    }

    #[test]
    fn changes_after_a_clone_leave_the_clone_alone() {
        let mut map: SharedMap<String, Vec<u32>> = (0..200).map(|k| (key(k), vec![k])).collect();
        let snapshot = map.clone();
        map.get_mut(key(5).as_str()).unwrap().push(99);
        map.remove(key(6).as_str());
        for v in map.values_mut() {
            v.push(1);
        }
        assert_eq!(snapshot.get(key(5).as_str()), Some(&vec![5]));
        assert_eq!(snapshot.get(key(6).as_str()), Some(&vec![6]));
        assert_eq!(map.get(key(5).as_str()), Some(&vec![5, 99, 1]));
        assert_eq!(snapshot.len(), 200);
        assert_eq!(map.len(), 199);
    }
}
