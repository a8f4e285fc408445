//! Compact resources for the allocation loop. Resource keys (name, role, metadata) are
//! interned once into small integers, so the hot loop adds, subtracts and compares short
//! sorted vectors of `(key, quantity)` instead of string-keyed maps.

use mantle_api::{Quantity, ResourceKey, Resources};
use std::collections::HashMap;
use std::sync::Arc;

/// What the catalog knows about one interned key.
#[derive(Debug)]
pub(crate) struct KeyInfo {
    pub key: Arc<ResourceKey>,
    /// Index into [`Catalog::kinds`] when the key is a scalar.
    pub kind: Option<usize>,
    /// The role the resource is reserved to, `None` when unreserved.
    pub reserved_to: Option<String>,
}

/// Interns resource keys and scalar kinds (`cpus`, `mem`, ...).
#[derive(Debug, Default)]
pub(crate) struct Catalog {
    pub keys: Vec<KeyInfo>,
    index: HashMap<ResourceKey, u32>,
    pub kinds: Vec<String>,
}

impl Catalog {
    fn intern(&mut self, key: &ResourceKey, quantity: &Quantity) -> u32 {
        if let Some(id) = self.index.get(key) {
            return *id;
        }
        let kind = matches!(quantity, Quantity::Scalar(_)).then(|| {
            match self.kinds.iter().position(|k| *k == key.name) {
                Some(i) => i,
                None => {
                    self.kinds.push(key.name.clone());
                    self.kinds.len() - 1
                }
            }
        });
        let id = self.keys.len() as u32;
        self.keys.push(KeyInfo {
            key: Arc::new(key.clone()),
            kind,
            reserved_to: (key.role != "*").then(|| key.role.clone()),
        });
        self.index.insert(key.clone(), id);
        id
    }

    pub fn bundle(&mut self, resources: &Resources) -> Bundle {
        let mut items: Vec<(u32, Quantity)> = resources
            .entries()
            .map(|(key, q)| (self.intern(key, q), q.clone()))
            .collect();
        items.sort_by_key(|(id, _)| *id);
        Bundle(items)
    }

    pub fn kind(&self, id: u32) -> Option<usize> {
        self.keys[id as usize].kind
    }

    pub fn kind_index(&self, name: &str) -> Option<usize> {
        self.kinds.iter().position(|k| k == name)
    }

    pub fn offered(&self, bundle: &Bundle) -> Offered {
        Offered(
            bundle
                .0
                .iter()
                .map(|(id, q)| (self.keys[*id as usize].key.clone(), q.clone()))
                .collect(),
        )
    }
}

/// Resources as interned keys, sorted by key. Never holds a zero quantity.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Bundle(pub Vec<(u32, Quantity)>);

impl Bundle {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Starts loading the entries into the cache (see [`crate::slab::prefetch_bytes`]).
    pub fn prefetch(&self) {
        crate::slab::prefetch_bytes(
            self.0.as_ptr() as *const u8,
            std::mem::size_of_val(self.0.as_slice()),
        );
    }

    pub fn add(&mut self, other: &Bundle) {
        if other.is_empty() {
            return;
        }
        let mut out = Vec::with_capacity(self.0.len().max(other.0.len()));
        let mut mine = std::mem::take(&mut self.0).into_iter().peekable();
        let mut theirs = other.0.iter().peekable();
        loop {
            match (mine.peek(), theirs.peek()) {
                (Some((a, _)), Some((b, _))) if a == b => {
                    let (id, mut q) = mine.next().expect("peeked");
                    q.add(&theirs.next().expect("peeked").1);
                    out.push((id, q));
                }
                (Some((a, _)), Some((b, _))) if a > b => {
                    out.push(theirs.next().expect("peeked").clone());
                }
                (Some(_), _) => out.push(mine.next().expect("peeked")),
                (None, Some(_)) => out.push(theirs.next().expect("peeked").clone()),
                (None, None) => break,
            }
        }
        self.0 = out;
    }

    pub fn subtract(&mut self, other: &Bundle) {
        let mut j = 0;
        for (id, q) in &mut self.0 {
            while j < other.0.len() && other.0[j].0 < *id {
                j += 1;
            }
            if j < other.0.len() && other.0[j].0 == *id {
                q.subtract(&other.0[j].1);
            }
        }
        self.0.retain(|(_, q)| !q.is_zero());
    }

    pub fn minus(&self, other: &Bundle) -> Bundle {
        let mut out = self.clone();
        out.subtract(other);
        out
    }

    /// True when every quantity of `other` fits in `self`.
    pub fn contains(&self, other: &Bundle) -> bool {
        let mut i = 0;
        for (id, want) in &other.0 {
            while i < self.0.len() && self.0[i].0 < *id {
                i += 1;
            }
            if i == self.0.len() || self.0[i].0 != *id || !self.0[i].1.contains(want) {
                return false;
            }
        }
        true
    }

    pub fn has_reserved(&self, catalog: &Catalog) -> bool {
        self.0
            .iter()
            .any(|(id, _)| catalog.keys[*id as usize].reserved_to.is_some())
    }

    /// Adds (`sign` 1) or removes (`sign` -1) this bundle's scalars, per kind, into
    /// `sums`, optionally only the unreserved ones.
    pub fn add_scalars(
        &self,
        catalog: &Catalog,
        sums: &mut Vec<i64>,
        sign: i64,
        only_unreserved: bool,
    ) {
        for (id, q) in &self.0 {
            let info = &catalog.keys[*id as usize];
            if only_unreserved && info.reserved_to.is_some() {
                continue;
            }
            if let (Some(kind), Quantity::Scalar(v)) = (info.kind, q) {
                if sums.len() <= kind {
                    sums.resize(kind + 1, 0);
                }
                sums[kind] += sign * v;
            }
        }
    }
}

/// One allocation's resources, cheap to produce inside the cycle; the master turns it
/// into [`Resources`] when it builds the offer.
#[derive(Clone, Debug, PartialEq)]
pub struct Offered(Vec<(Arc<ResourceKey>, Quantity)>);

impl Offered {
    /// Adds `other`'s quantities (a grant topped up later in the same cycle).
    pub(crate) fn merge(&mut self, other: Offered) {
        for (key, q) in other.0 {
            match self.0.iter_mut().find(|(k, _)| *k == key) {
                Some((_, have)) => have.add(&q),
                None => self.0.push((key, q)),
            }
        }
    }

    pub fn to_resources(&self) -> Resources {
        let mut out = Resources::new();
        for (key, q) in &self.0 {
            out.insert(ResourceKey::clone(key), q.clone());
        }
        out
    }
}

/// A scalar vector's value for `kind`, zero when the vector is shorter.
pub(crate) fn at(v: &[i64], kind: usize) -> i64 {
    v.get(kind).copied().unwrap_or(0)
}
