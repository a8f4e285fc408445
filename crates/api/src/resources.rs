//! The Mesos `Resource` message and the resources algebra: scalars in fixed point with
//! three decimals, ranges kept coalesced, sets; parsing of the agent's `--resources` flag
//! in its text (`cpus(role):4;ports:[31000-32000]`) and JSON forms; and the flattened
//! shape of the legacy JSON endpoints.

use crate::json::{lenient_f64, lenient_u64};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;
use std::sync::Arc;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ValueType {
    #[serde(rename = "SCALAR")]
    Scalar,
    #[serde(rename = "RANGES")]
    Ranges,
    #[serde(rename = "SET")]
    Set,
    #[serde(rename = "TEXT")]
    Text,
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Scalar {
    #[serde(deserialize_with = "lenient_f64")]
    pub value: f64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Range {
    #[serde(deserialize_with = "lenient_u64")]
    pub begin: u64,
    #[serde(deserialize_with = "lenient_u64")]
    pub end: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ranges {
    #[serde(default)]
    pub range: Vec<Range>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValueSet {
    #[serde(default)]
    pub item: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AllocationInfo {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
}

/// The v1 `Resource` message as it appears on the wire.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Resource {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: ValueType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scalar: Option<Scalar>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ranges: Option<Ranges>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub set: Option<ValueSet>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allocation_info: Option<AllocationInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reservation: Option<Value>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reservations: Vec<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revocable: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shared: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_id: Option<Value>,
}

impl Resource {
    pub fn scalar(name: &str, value: f64) -> Self {
        Self::bare(name, ValueType::Scalar, Some(Scalar { value }), None, None)
    }

    pub fn ranges(name: &str, ranges: &[(u64, u64)]) -> Self {
        let range = ranges
            .iter()
            .map(|&(begin, end)| Range { begin, end })
            .collect();
        Self::bare(name, ValueType::Ranges, None, Some(Ranges { range }), None)
    }

    fn bare(
        name: &str,
        kind: ValueType,
        scalar: Option<Scalar>,
        ranges: Option<Ranges>,
        set: Option<ValueSet>,
    ) -> Self {
        Resource {
            name: name.to_string(),
            kind,
            scalar,
            ranges,
            set,
            role: None,
            allocation_info: None,
            reservation: None,
            reservations: Vec::new(),
            disk: None,
            revocable: None,
            shared: None,
            provider_id: None,
        }
    }
}

/// Scalars are compared and summed in thousandths, as Mesos does.
const SCALE: f64 = 1000.0;

fn to_fixed(value: f64) -> i64 {
    (value * SCALE).round() as i64
}

fn from_fixed(value: i64) -> f64 {
    value as f64 / SCALE
}

/// What tells two resources of the same name apart: their role (`*` when unreserved)
/// and any reservation, disk, revocable, shared or provider metadata (canonical JSON,
/// empty when there is none).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ResourceKey {
    pub name: String,
    pub role: String,
    pub meta: String,
}

/// One resource's amount. Scalars are in thousandths; ranges are sorted and coalesced.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Quantity {
    Scalar(i64),
    Ranges(Vec<(u64, u64)>),
    Set(BTreeSet<String>),
}

impl Quantity {
    pub fn is_zero(&self) -> bool {
        match self {
            Quantity::Scalar(v) => *v <= 0,
            Quantity::Ranges(r) => r.is_empty(),
            Quantity::Set(s) => s.is_empty(),
        }
    }

    /// Adds `other` of the same kind; a different kind is ignored (validation rejects
    /// mixed kinds under one name before they get here).
    pub fn add(&mut self, other: &Quantity) {
        match (self, other) {
            (Quantity::Scalar(have), Quantity::Scalar(add)) => *have += add,
            (Quantity::Ranges(have), Quantity::Ranges(add)) => *have = ranges_add(have, add),
            (Quantity::Set(have), Quantity::Set(add)) => have.extend(add.iter().cloned()),
            _ => {}
        }
    }

    /// Removes `other`; never goes below zero.
    pub fn subtract(&mut self, other: &Quantity) {
        match (self, other) {
            (Quantity::Scalar(h), Quantity::Scalar(t)) => *h = (*h - t).max(0),
            (Quantity::Ranges(h), Quantity::Ranges(t)) => *h = ranges_subtract(h, t),
            (Quantity::Set(h), Quantity::Set(t)) => h.retain(|item| !t.contains(item)),
            _ => {}
        }
    }

    /// True when all of `other` fits in `self`.
    pub fn contains(&self, other: &Quantity) -> bool {
        match (self, other) {
            (Quantity::Scalar(h), Quantity::Scalar(w)) => h >= w,
            (Quantity::Ranges(h), Quantity::Ranges(w)) => ranges_contain(h, w),
            (Quantity::Set(h), Quantity::Set(w)) => w.is_subset(h),
            _ => false,
        }
    }
}

/// A bag of resources with exact arithmetic. Entries never hold zero quantities.
///
/// The entries are shared: a clone is a reference count, and a change copies them only
/// while another clone still holds them. Many tasks hold equal resources (a framework
/// launches the same shape again and again), and after a master failover hundreds of
/// thousands of them come back at once; with [`ResourcesCache`] they share one value.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Resources {
    entries: Arc<BTreeMap<ResourceKey, Quantity>>,
}

/// See [`Resources::legacy`].
pub struct LegacyJson<'a>(&'a Resources);

impl Serialize for LegacyJson<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        /// One name's value: entries of every role and reservation together.
        enum Flat<'a> {
            Scalar(i64),
            Ranges(Vec<(u64, u64)>),
            Set(BTreeSet<&'a str>),
        }
        let entries = &*self.0.entries;
        // The four names always present, in name order as the map of `legacy_json`
        // holds them; a name with ranges or a set shows those, as that map does.
        let mut flat: Vec<(&str, Flat)> = Vec::with_capacity(entries.len() + 4);
        flat.extend(["cpus", "disk", "gpus", "mem"].map(|name| (name, Flat::Scalar(0))));
        for (key, quantity) in entries {
            let at = match flat.iter().position(|(name, _)| *name == key.name) {
                Some(at) => at,
                None => {
                    flat.push((&key.name, Flat::Scalar(0)));
                    flat.len() - 1
                }
            };
            let value = &mut flat[at].1;
            match (value, quantity) {
                (Flat::Scalar(sum), Quantity::Scalar(add)) => *sum += add,
                (Flat::Set(_), Quantity::Scalar(_) | Quantity::Ranges(_)) => {}
                (Flat::Ranges(have), Quantity::Ranges(add)) => have.extend(add),
                (value @ Flat::Scalar(_), Quantity::Ranges(add)) => {
                    *value = Flat::Ranges(add.clone())
                }
                (Flat::Ranges(_), Quantity::Scalar(_)) => {}
                (Flat::Set(have), Quantity::Set(add)) => {
                    have.extend(add.iter().map(String::as_str))
                }
                (value, Quantity::Set(add)) => {
                    *value = Flat::Set(add.iter().map(String::as_str).collect())
                }
            }
        }
        flat.sort_unstable_by(|a, b| a.0.cmp(b.0));
        let mut map = serializer.serialize_map(Some(flat.len()))?;
        for (name, value) in flat {
            match value {
                Flat::Scalar(value) => map.serialize_entry(name, &from_fixed(value))?,
                Flat::Ranges(list) => {
                    let mut text = String::from("[");
                    for (i, (begin, end)) in coalesce(list).into_iter().enumerate() {
                        let comma = if i > 0 { ", " } else { "" };
                        let _ = write!(text, "{comma}{begin}-{end}");
                    }
                    text.push(']');
                    map.serialize_entry(name, &text)?;
                }
                Flat::Set(items) => {
                    let items: Vec<&str> = items.into_iter().collect();
                    map.serialize_entry(name, &format!("{{{}}}", items.join(", ")))?;
                }
            }
        }
        map.end()
    }
}

fn coalesce(mut ranges: Vec<(u64, u64)>) -> Vec<(u64, u64)> {
    ranges.sort_unstable();
    let mut out: Vec<(u64, u64)> = Vec::with_capacity(ranges.len());
    for (begin, end) in ranges {
        match out.last_mut() {
            Some(last) if begin <= last.1.saturating_add(1) => last.1 = last.1.max(end),
            _ => out.push((begin, end)),
        }
    }
    out
}

/// The union of two range lists. Both are normally sorted and coalesced already (every
/// constructor coalesces), so a linear merge does; anything else is sorted first.
fn ranges_add(have: &[(u64, u64)], add: &[(u64, u64)]) -> Vec<(u64, u64)> {
    if add.is_empty() {
        return have.to_vec();
    }
    if !have.is_sorted() || !add.is_sorted() {
        return coalesce(have.iter().chain(add).copied().collect());
    }
    let mut out: Vec<(u64, u64)> = Vec::with_capacity(have.len() + add.len());
    let (mut i, mut j) = (0, 0);
    while i < have.len() || j < add.len() {
        let next = if j == add.len() || (i < have.len() && have[i] <= add[j]) {
            i += 1;
            have[i - 1]
        } else {
            j += 1;
            add[j - 1]
        };
        match out.last_mut() {
            Some(last) if next.0 <= last.1.saturating_add(1) => last.1 = last.1.max(next.1),
            _ => out.push(next),
        }
    }
    out
}

fn ranges_subtract(have: &[(u64, u64)], take: &[(u64, u64)]) -> Vec<(u64, u64)> {
    if take.is_empty() {
        return have.to_vec();
    }
    let mut out = Vec::with_capacity(have.len() + 1);
    for &(mut begin, end) in have {
        let mut alive = true;
        for &(tb, te) in take {
            if te < begin || tb > end {
                continue;
            }
            if tb > begin {
                out.push((begin, tb - 1));
            }
            if te >= end {
                alive = false;
                break;
            }
            begin = te + 1;
        }
        if alive {
            out.push((begin, end));
        }
    }
    // Cutting sorted, coalesced ranges leaves them sorted and coalesced.
    if out.is_sorted() {
        out
    } else {
        coalesce(out)
    }
}

fn ranges_contain(have: &[(u64, u64)], want: &[(u64, u64)]) -> bool {
    want.iter()
        .all(|&(b, e)| have.iter().any(|&(hb, he)| hb <= b && e <= he))
}

fn meta_of(r: &Resource) -> String {
    let mut meta = serde_json::Map::new();
    let fields = [
        ("reservation", r.reservation.clone()),
        ("disk", r.disk.clone()),
        ("revocable", r.revocable.clone()),
        ("shared", r.shared.clone()),
        ("provider_id", r.provider_id.clone()),
    ];
    for (name, value) in fields {
        if let Some(v) = value {
            meta.insert(name.to_string(), v);
        }
    }
    if !r.reservations.is_empty() {
        meta.insert("reservations".into(), Value::Array(r.reservations.clone()));
    }
    if meta.is_empty() {
        String::new()
    } else {
        Value::Object(meta).to_string()
    }
}

/// `field[i]`, the name of one entry of a resource list in an error message.
struct At<'a>(&'a str, usize);

impl std::fmt::Display for At<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}[{}]", self.0, self.1)
    }
}

/// Remembers the last few distinct resource lists converted by
/// [`Resources::from_wire`] with their result, so equal lists (the tasks of one shape,
/// reported by thousands of agents after a master failover) are validated and converted
/// once and then share one value.
#[derive(Debug, Default)]
pub struct ResourcesCache {
    /// Most recently used first; at most [`ResourcesCache::CAPACITY`] entries.
    entries: Vec<(Vec<Resource>, Resources)>,
}

impl ResourcesCache {
    const CAPACITY: usize = 8;

    pub fn new() -> Self {
        Self::default()
    }

    /// [`Resources::from_wire`], answered from the cache when an equal list was
    /// converted before. Errors are not remembered.
    pub fn from_wire(&mut self, field: &str, wire: &[Resource]) -> Result<Resources, String> {
        if wire.is_empty() {
            return Ok(Resources::new());
        }
        if let Some(at) = self.entries.iter().position(|(seen, _)| seen == wire) {
            if at > 0 {
                self.entries[..=at].rotate_right(1);
            }
            return Ok(self.entries[0].1.clone());
        }
        let resources = Resources::from_wire(field, wire)?;
        self.entries.truncate(Self::CAPACITY - 1);
        self.entries.insert(0, (wire.to_vec(), resources.clone()));
        Ok(resources)
    }
}

impl Resources {
    pub fn new() -> Self {
        Self::default()
    }

    /// Validates and converts wire resources. `field` prefixes error messages.
    pub fn from_wire(field: &str, wire: &[Resource]) -> Result<Self, String> {
        let mut out = Resources::new();
        for (i, r) in wire.iter().enumerate() {
            // Only an error names the entry: valid resources cost no formatting.
            let at = At(field, i);
            if r.name.is_empty() {
                return Err(format!("{at}.name must not be empty"));
            }
            let quantity = match r.kind {
                ValueType::Scalar => {
                    let Some(s) = r.scalar else {
                        return Err(format!(
                            "{at}: SCALAR resource '{}' has no 'scalar'",
                            r.name
                        ));
                    };
                    if !s.value.is_finite() || s.value < 0.0 {
                        return Err(format!(
                            "{at}: resource '{}' has invalid value {}",
                            r.name, s.value
                        ));
                    }
                    Quantity::Scalar(to_fixed(s.value))
                }
                ValueType::Ranges => {
                    let Some(ranges) = &r.ranges else {
                        return Err(format!(
                            "{at}: RANGES resource '{}' has no 'ranges'",
                            r.name
                        ));
                    };
                    let mut list = Vec::new();
                    for range in &ranges.range {
                        if range.begin > range.end {
                            return Err(format!(
                                "{at}: resource '{}' has range {}-{} with begin after end",
                                r.name, range.begin, range.end
                            ));
                        }
                        list.push((range.begin, range.end));
                    }
                    Quantity::Ranges(coalesce(list))
                }
                ValueType::Set => {
                    let Some(set) = &r.set else {
                        return Err(format!("{at}: SET resource '{}' has no 'set'", r.name));
                    };
                    Quantity::Set(set.item.iter().cloned().collect())
                }
                ValueType::Text => {
                    return Err(format!(
                        "{at}: resource '{}' may not be of type TEXT",
                        r.name
                    ))
                }
            };
            // The refined format names the role only in the last reservation.
            let role = r.role.clone().or_else(|| {
                r.reservations
                    .last()
                    .and_then(|last| last.get("role")?.as_str().map(String::from))
            });
            let key = ResourceKey {
                name: r.name.clone(),
                role: role.unwrap_or_else(|| "*".to_string()),
                meta: meta_of(r),
            };
            out.insert(key, quantity);
        }
        Ok(out)
    }

    /// The wire form, with `role` always set (the pre-refinement format).
    pub fn to_wire(&self) -> Vec<Resource> {
        self.entries
            .iter()
            .map(|(key, quantity)| {
                let mut r = match quantity {
                    Quantity::Scalar(v) => Resource::scalar(&key.name, from_fixed(*v)),
                    Quantity::Ranges(list) => Resource::ranges(&key.name, list),
                    Quantity::Set(items) => Resource::bare(
                        &key.name,
                        ValueType::Set,
                        None,
                        None,
                        Some(ValueSet {
                            item: items.iter().cloned().collect(),
                        }),
                    ),
                };
                r.role = Some(key.role.clone());
                if !key.meta.is_empty() {
                    if let Ok(Value::Object(meta)) = serde_json::from_str::<Value>(&key.meta) {
                        for (k, v) in meta {
                            match k.as_str() {
                                "reservation" => r.reservation = Some(v),
                                "reservations" => {
                                    r.reservations = v.as_array().cloned().unwrap_or_default()
                                }
                                "disk" => r.disk = Some(v),
                                "revocable" => r.revocable = Some(v),
                                "shared" => r.shared = Some(v),
                                "provider_id" => r.provider_id = Some(v),
                                _ => {}
                            }
                        }
                    }
                }
                r
            })
            .collect()
    }

    /// Adds one entry by reference: the key is copied only when it is new.
    pub fn add_entry(&mut self, key: &ResourceKey, quantity: &Quantity) {
        match Arc::make_mut(&mut self.entries).get_mut(key) {
            Some(have) => have.add(quantity),
            None => self.insert(key.clone(), quantity.clone()),
        }
    }

    /// Adds one entry (zero quantities are dropped).
    pub fn insert(&mut self, key: ResourceKey, quantity: Quantity) {
        let entries = Arc::make_mut(&mut self.entries);
        match entries.get_mut(&key) {
            None => {
                if !quantity.is_zero() {
                    entries.insert(key, quantity);
                }
            }
            Some(have) => have.add(&quantity),
        }
    }

    /// True when both share their entries (one came from the other by `clone`, or both
    /// from a [`ResourcesCache`]): then they are equal, without comparing.
    pub fn shares_entries(&self, other: &Resources) -> bool {
        Arc::ptr_eq(&self.entries, &other.entries)
    }

    /// The entries in key order.
    pub fn entries(&self) -> impl Iterator<Item = (&ResourceKey, &Quantity)> {
        self.entries.iter()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn add(&mut self, other: &Resources) {
        if other.entries.is_empty() {
            return;
        }
        if self.entries.is_empty() {
            self.entries = other.entries.clone();
            return;
        }
        let entries = Arc::make_mut(&mut self.entries);
        for (key, quantity) in other.entries.iter() {
            // Looked up first: summing many tasks' resources (the state endpoints) would
            // otherwise clone every key only to find it present.
            match entries.get_mut(key) {
                Some(have) => have.add(quantity),
                None => {
                    if !quantity.is_zero() {
                        entries.insert(key.clone(), quantity.clone());
                    }
                }
            }
        }
    }

    /// Removes `other`; quantities never go below zero.
    pub fn subtract(&mut self, other: &Resources) {
        if other.entries.is_empty() || self.entries.is_empty() {
            return;
        }
        let entries = Arc::make_mut(&mut self.entries);
        for (key, take) in other.entries.iter() {
            let Some(have) = entries.get_mut(key) else {
                continue;
            };
            have.subtract(take);
            if have.is_zero() {
                entries.remove(key);
            }
        }
    }

    pub fn plus(&self, other: &Resources) -> Resources {
        let mut out = self.clone();
        out.add(other);
        out
    }

    pub fn minus(&self, other: &Resources) -> Resources {
        let mut out = self.clone();
        out.subtract(other);
        out
    }

    /// True when every quantity of `other` is available in `self`.
    pub fn contains(&self, other: &Resources) -> bool {
        other
            .entries
            .iter()
            .all(|(key, want)| self.entries.get(key).is_some_and(|h| h.contains(want)))
    }

    /// The same quantities with every reservation removed.
    pub fn unreserved(&self) -> Resources {
        let mut out = Resources::new();
        for (key, quantity) in self.entries.iter() {
            let mut meta = String::new();
            if let Ok(Value::Object(mut fields)) = serde_json::from_str::<Value>(&key.meta) {
                fields.remove("reservation");
                fields.remove("reservations");
                if !fields.is_empty() {
                    meta = Value::Object(fields).to_string();
                }
            }
            let key = ResourceKey {
                name: key.name.clone(),
                role: "*".to_string(),
                meta,
            };
            out.insert(key, quantity.clone());
        }
        out
    }

    /// True when any entry is reserved to a role.
    pub fn is_reserved(&self) -> bool {
        self.entries.keys().any(|k| k.role != "*")
    }

    /// The sum of a scalar over all roles.
    pub fn scalar(&self, name: &str) -> f64 {
        let total: i64 = self
            .entries
            .iter()
            .filter(|(k, _)| k.name == name)
            .map(|(_, q)| if let Quantity::Scalar(v) = q { *v } else { 0 })
            .sum();
        from_fixed(total)
    }

    /// Names of the scalar resources present.
    pub fn scalar_names(&self) -> BTreeSet<&str> {
        self.entries
            .iter()
            .filter(|(_, q)| matches!(q, Quantity::Scalar(_)))
            .map(|(k, _)| k.name.as_str())
            .collect()
    }

    /// Drops every entry of the given name (for example `ephemeral_ports` from offers).
    pub fn without(&self, name: &str) -> Resources {
        let mut out = self.clone();
        if out.entries.keys().any(|k| k.name == name) {
            Arc::make_mut(&mut out.entries).retain(|k, _| k.name != name);
        }
        out
    }

    /// The flattened form of the legacy endpoints: `cpus`, `gpus`, `mem`, `disk` always
    /// present, other scalars by name, ranges as `"[a-b, c-d]"`, sets as `"{x, y}"`.
    pub fn legacy_json(&self) -> serde_json::Map<String, Value> {
        let mut out = serde_json::Map::new();
        for name in ["cpus", "gpus", "mem", "disk"] {
            out.insert(name.to_string(), Value::from(0.0));
        }
        let mut ranges: BTreeMap<&str, Vec<(u64, u64)>> = BTreeMap::new();
        let mut sets: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
        for (key, quantity) in self.entries.iter() {
            match quantity {
                Quantity::Scalar(_) => {
                    out.insert(key.name.clone(), Value::from(self.scalar(&key.name)));
                }
                Quantity::Ranges(r) => ranges.entry(&key.name).or_default().extend(r),
                Quantity::Set(s) => sets
                    .entry(&key.name)
                    .or_default()
                    .extend(s.iter().map(String::as_str)),
            }
        }
        for (name, list) in ranges {
            let text: Vec<String> = coalesce(list)
                .iter()
                .map(|(b, e)| format!("{b}-{e}"))
                .collect();
            out.insert(
                name.to_string(),
                Value::from(format!("[{}]", text.join(", "))),
            );
        }
        for (name, items) in sets {
            let text: Vec<&str> = items.into_iter().collect();
            out.insert(
                name.to_string(),
                Value::from(format!("{{{}}}", text.join(", "))),
            );
        }
        out
    }

    /// [`Resources::legacy_json`] written straight to a serializer: `/master/state`
    /// writes it for every task, and building the map each time costs more than writing.
    pub fn legacy(&self) -> LegacyJson<'_> {
        LegacyJson(self)
    }

    /// Parses the agent flag: a JSON array of `Resource` first, else the text form.
    pub fn parse_flag(text: &str, default_role: &str) -> Result<Resources, String> {
        let trimmed = text.trim();
        if trimmed.starts_with('[') && trimmed.contains('{') {
            if let Ok(wire) = serde_json::from_str::<Vec<Resource>>(trimmed) {
                let mut wire = wire;
                for r in &mut wire {
                    r.role.get_or_insert_with(|| default_role.to_string());
                }
                return Resources::from_wire("resources", &wire);
            }
        }
        Resources::parse_text(trimmed, default_role)
    }

    /// Parses `name(role):value;...` where a value is a scalar, `[b-e,...]` or `{a,b}`.
    pub fn parse_text(text: &str, default_role: &str) -> Result<Resources, String> {
        let mut out = Resources::new();
        let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
        for item in compact.split(';').filter(|s| !s.is_empty()) {
            let Some((name_role, value)) = item.split_once(':') else {
                return Err(format!("resources: '{item}' is not of the form name:value"));
            };
            let (name, role) = match name_role.split_once('(') {
                Some((name, rest)) => {
                    let Some(role) = rest.strip_suffix(')') else {
                        return Err(format!("resources: '{name_role}' has an unclosed role"));
                    };
                    (name, role)
                }
                None => (name_role, default_role),
            };
            if name.is_empty() {
                return Err(format!("resources: '{item}' has an empty name"));
            }
            let resource = if let Some(inner) = value.strip_prefix('[') {
                let Some(inner) = inner.strip_suffix(']') else {
                    return Err(format!(
                        "resources: '{value}' of '{name}' has no closing ']'"
                    ));
                };
                let mut list = Vec::new();
                for part in inner.split(',').filter(|s| !s.is_empty()) {
                    let (b, e) = part.split_once('-').unwrap_or((part, part));
                    let (Ok(b), Ok(e)) = (b.parse::<u64>(), e.parse::<u64>()) else {
                        return Err(format!("resources: '{part}' of '{name}' is not a range"));
                    };
                    if b > e {
                        return Err(format!("resources: range '{part}' of '{name}' is reversed"));
                    }
                    list.push((b, e));
                }
                Resource::ranges(name, &coalesce(list))
            } else if let Some(inner) = value.strip_prefix('{') {
                let Some(inner) = inner.strip_suffix('}') else {
                    return Err(format!(
                        "resources: '{value}' of '{name}' has no closing '}}'"
                    ));
                };
                let item = inner
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect();
                Resource::bare(name, ValueType::Set, None, None, Some(ValueSet { item }))
            } else {
                let Ok(v) = value.parse::<f64>() else {
                    return Err(format!("resources: '{value}' of '{name}' is not a number"));
                };
                if !v.is_finite() || v < 0.0 {
                    return Err(format!("resources: '{name}' must be a non-negative number"));
                }
                Resource::scalar(name, v)
            };
            let mut resource = resource;
            resource.role = Some(role.to_string());
            out.add(&Resources::from_wire("resources", &[resource])?);
        }
        Ok(out)
    }

    /// A short human-readable rendering, `cpus:4;mem:1024;ports:[31000-32000]`.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        for (key, quantity) in self.entries.iter() {
            if !out.is_empty() {
                out.push(';');
            }
            out.push_str(&key.name);
            if key.role != "*" {
                let _ = write!(out, "({})", key.role);
            }
            match quantity {
                Quantity::Scalar(v) => {
                    let _ = write!(out, ":{}", from_fixed(*v));
                }
                Quantity::Ranges(r) => {
                    let parts: Vec<String> = r.iter().map(|(b, e)| format!("{b}-{e}")).collect();
                    let _ = write!(out, ":[{}]", parts.join(","));
                }
                Quantity::Set(s) => {
                    let parts: Vec<&str> = s.iter().map(String::as_str).collect();
                    let _ = write!(out, ":{{{}}}", parts.join(","));
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn r(text: &str) -> Resources {
        Resources::parse_text(text, "*").unwrap()
    }

    fn check_parse(text: &str, expected: &str) {
        assert_eq!(r(text).to_text(), expected, "{text}");
    }

    #[test]
    fn text_form() {
        check_parse("cpus:4;mem:1024", "cpus:4;mem:1024");
        check_parse(" cpus : 2.5 ; mem:10 ", "cpus:2.5;mem:10");
        check_parse(
            "ports:[31000-32000,33000-33100]",
            "ports:[31000-32000,33000-33100]",
        );
        check_parse("ports:[5-6,1-4]", "ports:[1-6]");
        check_parse("foo:{a,b}", "foo:{a,b}");
        check_parse("cpus(ads):8;cpus:2", "cpus:2;cpus(ads):8");
        check_parse("cpus:0.0004", "");
    }

    #[test]
    fn legacy_writer_matches_the_legacy_map() {
        for text in [
            "",
            "cpus:0.1;mem:32",
            "cpus(ads):8;cpus:2;mem:10;foo:3",
            "cpus:1;ports:[31000-31005,31007-31010];bar:{x,y}",
            "ports(ads):[31000-31001];ports:[31002-31003,31009-31009];disks:{b};disks(ads):{a}",
        ] {
            let resources = r(text);
            let written = serde_json::to_string(&resources.legacy()).unwrap();
            let map = serde_json::to_string(&resources.legacy_json()).unwrap();
            assert_eq!(written, map, "{text}");
        }
        let sums = serde_json::to_value(r("cpus(ads):8;cpus:2;mem:10").legacy()).unwrap();
        assert_eq!(
            sums,
            serde_json::json!({"cpus": 10.0, "disk": 0.0, "gpus": 0.0, "mem": 10.0})
        );
    }

    #[test]
    fn text_form_errors_name_the_item() {
        for (text, needle) in [
            ("cpus", "name:value"),
            ("cpus:x", "'x' of 'cpus'"),
            ("cpus:-1", "non-negative"),
            ("ports:[9-1]", "reversed"),
            ("ports:[1-2", "closing"),
            ("cpus(ads:1", "unclosed"),
        ] {
            let err = Resources::parse_text(text, "*").unwrap_err();
            assert!(err.contains(needle), "{text}: {err}");
        }
    }

    #[test]
    fn json_form() {
        let json = r#"[{"name":"cpus","type":"SCALAR","scalar":{"value":2}},
                       {"name":"ports","type":"RANGES","ranges":{"range":[{"begin":"1","end":3}]}}]"#;
        assert_eq!(
            Resources::parse_flag(json, "*").unwrap().to_text(),
            "cpus:2;ports:[1-3]"
        );
    }

    #[test]
    fn arithmetic() {
        let mut a = r("cpus:4;mem:1024;ports:[31000-32000]");
        let b = r("cpus:1.5;mem:24;ports:[31000-31000,31500-31600]");
        assert!(a.contains(&b));
        a.subtract(&b);
        assert_eq!(
            a.to_text(),
            "cpus:2.5;mem:1000;ports:[31001-31499,31601-32000]"
        );
        assert!(!a.contains(&b));
        a.add(&b);
        assert_eq!(a, r("cpus:4;mem:1024;ports:[31000-32000]"));
        assert!(!r("cpus:1").contains(&r("cpus(ads):1")));
        assert!((r("cpus:0.1;cpus:0.2").scalar("cpus") - 0.3).abs() < 1e-9);
    }

    #[test]
    fn legacy_flattening() {
        let flat = r("cpus:2;mem:10;ports:[1-2,4-5];foo:{b,a}").legacy_json();
        assert_eq!(
            Value::Object(flat),
            serde_json::json!({"cpus":2.0,"gpus":0.0,"mem":10.0,"disk":0.0,
                               "ports":"[1-2, 4-5]","foo":"{a, b}"})
        );
    }

    #[test]
    fn wire_json_shape() {
        let wire = r("cpus:1").to_wire();
        assert_eq!(
            serde_json::to_value(&wire).unwrap(),
            serde_json::json!([{"name":"cpus","type":"SCALAR","scalar":{"value":1.0},"role":"*"}])
        );
    }

    #[test]
    fn cache_shares_equal_lists() {
        let mut cache = ResourcesCache::new();
        let task = r("cpus:0.5;mem:256").to_wire();
        let executor = r("cpus:0.1;mem:32").to_wire();
        let first = cache.from_wire("task.resources", &task).unwrap();
        let other = cache.from_wire("executor.resources", &executor).unwrap();
        let again = cache.from_wire("task.resources", &task).unwrap();
        assert_eq!(first, r("cpus:0.5;mem:256"));
        assert_eq!(other, r("cpus:0.1;mem:32"));
        assert!(Arc::ptr_eq(&first.entries, &again.entries));
        // A change to one holder copies: the cached value stays as it was.
        let mut changed = again.clone();
        changed.subtract(&r("cpus:0.5"));
        assert_eq!(changed, r("mem:256"));
        assert_eq!(cache.from_wire("t", &task).unwrap(), r("cpus:0.5;mem:256"));
        // Errors name the field they were asked with and are not remembered.
        let mut bad = task.clone();
        bad[0].scalar = None;
        let err = cache.from_wire("tasks[3].resources", &bad).unwrap_err();
        assert!(err.starts_with("tasks[3].resources[0]: SCALAR"), "{err}");
        assert!(cache
            .from_wire("other", &bad)
            .unwrap_err()
            .starts_with("other[0]"));
        // Past its capacity the least recently used list is converted again, equal.
        for cpus in 1..=20 {
            let wire = r(&format!("cpus:{cpus}")).to_wire();
            assert_eq!(
                cache.from_wire("r", &wire).unwrap().scalar("cpus"),
                cpus as f64
            );
        }
        assert!(cache.entries.len() <= ResourcesCache::CAPACITY);
        assert_eq!(cache.from_wire("r", &task).unwrap(), first);
        assert_eq!(cache.from_wire("r", &[]).unwrap(), Resources::new());
    }

    fn arb_resources() -> impl Strategy<Value = Resources> {
        (
            0u32..8000,
            0u32..100000,
            prop::collection::vec((0u64..200, 0u64..20), 0..4),
        )
            .prop_map(|(cpus, mem, ranges)| {
                let mut out = Resources::new();
                let mut wire = vec![
                    Resource::scalar("cpus", cpus as f64 / 1000.0),
                    Resource::scalar("mem", mem as f64),
                ];
                let list: Vec<(u64, u64)> = ranges.iter().map(|&(b, l)| (b, b + l)).collect();
                wire.push(Resource::ranges("ports", &list));
                out.add(&Resources::from_wire("r", &wire).unwrap());
                out
            })
    }

    proptest! {
        #[test]
        fn add_then_subtract_is_identity(a in arb_resources(), b in arb_resources()) {
            let sum = a.plus(&b);
            prop_assert!(sum.contains(&a));
            prop_assert!(sum.contains(&b));
            // Ranges may overlap, so only scalars are guaranteed to come back exactly.
            let back = sum.minus(&b);
            prop_assert!((back.scalar("cpus") - a.scalar("cpus")).abs() < 1e-9);
            prop_assert!((back.scalar("mem") - a.scalar("mem")).abs() < 1e-9);
        }

        #[test]
        fn subtract_contained_then_add_restores(a in arb_resources(), b in arb_resources()) {
            let sum = a.plus(&b);
            let rest = sum.minus(&a);
            prop_assert_eq!(rest.plus(&a), sum.clone());
            prop_assert!(sum.contains(&rest));
        }

        #[test]
        fn range_arithmetic_matches_sets(
            a in prop::collection::vec((0u64..60, 0u64..8), 0..5),
            b in prop::collection::vec((0u64..60, 0u64..8), 0..5),
        ) {
            let a = coalesce(a.iter().map(|&(x, l)| (x, x + l)).collect());
            let b = coalesce(b.iter().map(|&(x, l)| (x, x + l)).collect());
            let set = |r: &[(u64, u64)]| -> BTreeSet<u64> {
                r.iter().flat_map(|&(x, y)| x..=y).collect()
            };
            let union = ranges_add(&a, &b);
            prop_assert_eq!(&union, &coalesce(union.clone()));
            prop_assert_eq!(set(&union), set(&a).union(&set(&b)).copied().collect());
            let difference = ranges_subtract(&a, &b);
            prop_assert_eq!(&difference, &coalesce(difference.clone()));
            prop_assert_eq!(set(&difference), set(&a).difference(&set(&b)).copied().collect());
        }

        #[test]
        fn wire_round_trip(a in arb_resources()) {
            prop_assert_eq!(Resources::from_wire("r", &a.to_wire()).unwrap(), a);
        }
    }
}
