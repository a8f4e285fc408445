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

type Leaf<K, V> = Vec<(K, Arc<V>)>;

/// The leaves, and each one's first key at the same index.
#[derive(Clone)]
struct Top<K, V> {
    /// Non-empty leaves in key order; each leaf sorted.
    leaves: Vec<Arc<Leaf<K, V>>>,
    firsts: Vec<K>,
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
            .flat_map(|l| l.iter().map(|(k, v)| (k, v)));
        f.debug_map().entries(entries).finish()
    }
}

impl<K: Ord + Clone, V: Clone> SharedMap<K, V> {
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
        Q: Ord + ?Sized,
    {
        if self.top.leaves.is_empty() {
            return None;
        }
        let after = self
            .top
            .firsts
            .partition_point(|first| first.borrow() <= key);
        let leaf = after.saturating_sub(1);
        let at = self.top.leaves[leaf].binary_search_by(|(k, _)| k.borrow().cmp(key));
        Some((leaf, at))
    }

    pub fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        match self.locate(key)? {
            (leaf, Ok(at)) => Some(&self.top.leaves[leaf][at].1),
            _ => None,
        }
    }

    pub fn contains_key<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        self.get(key).is_some()
    }

    /// A mutable reference, copying what a snapshot still shares.
    pub fn get_mut<Q>(&mut self, key: &Q) -> Option<&mut V>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        let (leaf, Ok(at)) = self.locate(key)? else {
            return None;
        };
        let top = Arc::make_mut(&mut self.top);
        let entries = Arc::make_mut(&mut top.leaves[leaf]);
        Some(Arc::make_mut(&mut entries[at].1))
    }

    /// Inserts or replaces; returns the value replaced.
    pub fn insert(&mut self, key: K, value: V) -> Option<V> {
        let Some((leaf, at)) = self.locate(&key) else {
            let top = Arc::make_mut(&mut self.top);
            top.firsts.push(key.clone());
            top.leaves.push(Arc::new(vec![(key, Arc::new(value))]));
            self.len = 1;
            return None;
        };
        let top = Arc::make_mut(&mut self.top);
        let entries = Arc::make_mut(&mut top.leaves[leaf]);
        match at {
            Ok(at) => {
                let old = std::mem::replace(&mut entries[at].1, Arc::new(value));
                Some(Arc::unwrap_or_clone(old))
            }
            Err(at) => {
                if at == 0 {
                    // Only the first leaf takes a key before its first.
                    top.firsts[leaf] = key.clone();
                }
                entries.insert(at, (key, Arc::new(value)));
                self.len += 1;
                if entries.len() > MAX_LEAF {
                    let upper = entries.split_off(entries.len() / 2);
                    top.firsts.insert(leaf + 1, upper[0].0.clone());
                    top.leaves.insert(leaf + 1, Arc::new(upper));
                }
                None
            }
        }
    }

    pub fn remove<Q>(&mut self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        let (leaf, Ok(at)) = self.locate(key)? else {
            return None;
        };
        let top = Arc::make_mut(&mut self.top);
        let entries = Arc::make_mut(&mut top.leaves[leaf]);
        let (_, value) = entries.remove(at);
        if entries.is_empty() {
            top.leaves.remove(leaf);
            top.firsts.remove(leaf);
        } else if at == 0 {
            top.firsts[leaf] = entries[0].0.clone();
        }
        self.len -= 1;
        Some(Arc::unwrap_or_clone(value))
    }

    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (&K, &V)> + Clone {
        self.top
            .leaves
            .iter()
            .flat_map(|leaf| leaf.iter().map(|(k, v)| (k, &**v)))
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
                    .map(|(k, v)| (&*k, Arc::make_mut(v)))
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
            .map(|(_, v)| Arc::unwrap_or_clone(v))
    }

    pub fn into_entries(self) -> impl Iterator<Item = (K, V)> {
        Arc::unwrap_or_clone(self.top)
            .leaves
            .into_iter()
            .flat_map(|leaf| Arc::unwrap_or_clone(leaf).into_iter())
            .map(|(k, v)| (k, Arc::unwrap_or_clone(v)))
    }

    /// The value for `key`, inserted from `make` when absent.
    pub fn get_or_insert_with(&mut self, key: K, make: impl FnOnce() -> V) -> &mut V {
        if !self.contains_key(&key) {
            self.insert(key.clone(), make());
        }
        self.get_mut(&key).expect("inserted above")
    }
}

impl<K: Ord + Clone, V: Clone> FromIterator<(K, V)> for SharedMap<K, V> {
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
    K: Ord + Clone + Borrow<Q>,
    V: Clone,
    Q: Ord + ?Sized,
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
                    .flat_map(|l| l.iter().map(|(k, _)| k)),
            )
            .finish()
    }
}

impl<K: Ord + Clone> SharedSet<K> {
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
        Q: Ord + ?Sized,
    {
        self.map.remove(key).is_some()
    }

    pub fn contains<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
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

impl<'a, K: Ord + Clone> IntoIterator for &'a SharedSet<K> {
    type Item = &'a K;
    type IntoIter = Box<dyn Iterator<Item = &'a K> + 'a>;
    fn into_iter(self) -> Self::IntoIter {
        Box::new(self.iter())
    }
}

impl<'a, K: Ord + Clone, V: Clone> IntoIterator for &'a SharedMap<K, V> {
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

    /// Applies `(key, Some(value))` inserts and `(key, None)` removals to a SharedMap and a
    /// BTreeMap, checking they agree after each, and that a clone taken midway keeps its
    /// contents.
    fn check(ops: &[(u32, Option<u32>)]) {
        let mut map = SharedMap::new();
        let mut model = BTreeMap::new();
        let mut frozen: Option<(SharedMap<u32, u32>, BTreeMap<u32, u32>)> = None;
        for (i, (key, value)) in ops.iter().enumerate() {
            match value {
                Some(v) => assert_eq!(map.insert(*key, *v), model.insert(*key, *v)),
                None => assert_eq!(map.remove(key), model.remove(key)),
            }
            assert_eq!(map.len(), model.len());
            let firsts: Vec<u32> = map.top.leaves.iter().map(|leaf| leaf[0].0).collect();
            assert_eq!(map.top.firsts, firsts, "the first keys follow the leaves");
            if i == ops.len() / 2 {
                frozen = Some((map.clone(), model.clone()));
            }
        }
        let got: Vec<(u32, u32)> = map.iter().map(|(k, v)| (*k, *v)).collect();
        let want: Vec<(u32, u32)> = model.iter().map(|(k, v)| (*k, *v)).collect();
        assert_eq!(got, want);
        for key in 0..1000 {
            assert_eq!(map.get(&key), model.get(&key));
        }
        if let Some((old, old_model)) = frozen {
            let got: Vec<(u32, u32)> = old.iter().map(|(k, v)| (*k, *v)).collect();
            let want: Vec<(u32, u32)> = old_model.into_iter().collect();
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
    }

    #[test]
    fn changes_after_a_clone_leave_the_clone_alone() {
        let mut map: SharedMap<u32, Vec<u32>> = (0..200).map(|k| (k, vec![k])).collect();
        let snapshot = map.clone();
        map.get_mut(&5).unwrap().push(99);
        map.remove(&6);
        for v in map.values_mut() {
            v.push(1);
        }
        assert_eq!(snapshot.get(&5), Some(&vec![5]));
        assert_eq!(snapshot.get(&6), Some(&vec![6]));
        assert_eq!(map.get(&5), Some(&vec![5, 99, 1]));
        assert_eq!(snapshot.len(), 200);
        assert_eq!(map.len(), 199);
    }
}
