//! The master's embedded store under `--work_dir`: the operator's policy (weights,
//! quota, dynamic reservations) in `policy.json`, the registry (agents, unreachable,
//! deactivated, draining and gone agents, the maintenance schedule and DOWN machines) in
//! `registry.json` continued by `registry.log`, and the frameworks with their failover
//! deadlines in `frameworks.json`, apart so that a framework's subscription does not
//! rewrite every agent. Each `.json` file is replaced atomically (write a temp file,
//! fsync, rename, fsync the directory) so a crash leaves the old or the new one.
//!
//! The registry is written whole only now and then: a whole write of 100,000 agents is
//! 51 MB, and writing it for every batch of agents made registering a cluster cost the
//! square of its size. In between, each batch of changes is one line appended to
//! `registry.log` and synced. The log's first line names the generation of the whole
//! registry it continues, a random number stored in that registry; a whole write starts
//! a new generation and a new log, so a crash between the two leaves a log that the
//! registry does not name, and that is ignored. A line cut short by a crash is the end
//! of the log: its append never returned, so nothing it held was acknowledged.

use crate::core::{Policy, Registry, RegistryChanges, StoredFramework};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

const POLICY: &str = "policy.json";
const REGISTRY: &str = "registry.json";
const REGISTRY_LOG: &str = "registry.log";
const FRAMEWORKS: &str = "frameworks.json";
/// The least a change log may grow to before the next save is whole ([`LogBudget`]).
const MIN_LOG_BYTES: u64 = 1 << 20;

/// How far the registry's changes may grow (here and in `leadership::ZkStore`) before
/// the next save is whole: as large as the last whole write, and at least
/// [`MIN_LOG_BYTES`]. So the appends cost at most as much again as the whole writes, and
/// a restart reads at most twice the registry.
#[derive(Clone, Copy, Debug)]
pub(crate) struct LogBudget {
    appended: u64,
    limit: u64,
}

impl LogBudget {
    /// The budget after a whole write of `whole` bytes.
    pub(crate) fn after_whole(whole: u64) -> LogBudget {
        LogBudget {
            appended: 0,
            limit: whole.max(MIN_LOG_BYTES),
        }
    }

    /// Whether the next save is to be whole.
    pub(crate) fn spent(&self) -> bool {
        self.appended >= self.limit
    }

    pub(crate) fn appended(&mut self, bytes: usize) {
        self.appended += bytes as u64;
    }
}

/// A stored document; an absent file is the default one.
fn load_json<T: DeserializeOwned + Default>(dir: &Path, name: &str) -> anyhow::Result<T> {
    let path = dir.join(name);
    match fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map_err(|e| anyhow::anyhow!("{}: not a valid store file: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(T::default()),
        Err(e) => Err(anyhow::anyhow!("cannot read {}: {e}", path.display())),
    }
}

/// Replaces `dir/name` atomically with what `write` writes; returns the file, synced,
/// open at its end, and its length.
fn replace_file(
    dir: &Path,
    name: &str,
    write: impl FnOnce(&mut BufWriter<File>) -> std::io::Result<()>,
) -> std::io::Result<(File, u64)> {
    fs::create_dir_all(dir)?;
    let tmp = dir.join(format!("{name}.tmp"));
    // Streamed: the registry of a large cluster is tens of megabytes, written while the
    // agents it admits wait; built whole in memory first, its buffer's growth (page
    // faults, copies) was a sixth of the write. 64 KiB a write call is few calls for
    // those, and no large buffer for the small files (the policy, the frameworks).
    let mut writer = BufWriter::with_capacity(64 << 10, File::create(&tmp)?);
    write(&mut writer)?;
    let file = writer.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    let len = file.metadata()?.len();
    fs::rename(&tmp, dir.join(name))?;
    File::open(dir)?.sync_all()?;
    Ok((file, len))
}

fn save_json<T: Serialize>(dir: &Path, name: &str, value: &T) -> std::io::Result<u64> {
    replace_file(dir, name, |w| {
        serde_json::to_writer(w, value).map_err(std::io::Error::other)
    })
    .map(|(_, len)| len)
}

/// The stored policy; an absent file is an empty policy.
pub fn load(dir: &Path) -> anyhow::Result<Policy> {
    load_json(dir, POLICY)
}

pub fn save(dir: &Path, policy: &Policy) -> std::io::Result<()> {
    save_json(dir, POLICY, policy).map(drop)
}

/// The first line of `registry.log`.
#[derive(Serialize, Deserialize)]
struct LogHeader {
    generation: u64,
}

/// The stored registry with its frameworks; absent files are an empty one. Without
/// `frameworks.json` (a registry stored before the frameworks were kept apart) the
/// frameworks are those `registry.json` holds.
pub fn load_registry(dir: &Path) -> anyhow::Result<Registry> {
    let mut registry: Registry = load_json(dir, REGISTRY)?;
    if registry.generation != 0 {
        registry.apply(read_log(dir, registry.generation)?);
    }
    if dir.join(FRAMEWORKS).exists() {
        registry.frameworks = load_json(dir, FRAMEWORKS)?;
    }
    Ok(registry)
}

/// The changes in `registry.log` if it continues the registry of `generation`.
fn read_log(dir: &Path, generation: u64) -> anyhow::Result<Vec<RegistryChanges>> {
    let path = dir.join(REGISTRY_LOG);
    let bytes = match fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => anyhow::bail!("cannot read {}: {e}", path.display()),
    };
    let mut lines = bytes.split_inclusive(|b| *b == b'\n');
    let first = lines.next().unwrap_or_default();
    let header: LogHeader = serde_json::from_slice(first).map_err(|e| {
        anyhow::anyhow!(
            "{}: the first line is not a log header: {e}",
            path.display()
        )
    })?;
    if header.generation != generation {
        // Left by the whole write that crashed between the registry and its new log.
        tracing::info!(path = %path.display(), "ignoring a change log of an older registry");
        return Ok(Vec::new());
    }
    let mut changes = Vec::new();
    let mut offset = first.len();
    while let Some(line) = lines.next() {
        let parsed = line
            .strip_suffix(b"\n")
            .and_then(|l| serde_json::from_slice::<RegistryChanges>(l).ok());
        match parsed {
            Some(change) => changes.push(change),
            // An append cut short by a crash is the last thing in the log. Anything
            // whole after a bad line means the log is damaged, not cut short.
            None if lines.any(|l| serde_json::from_slice::<RegistryChanges>(l).is_ok()) => {
                anyhow::bail!(
                    "{}: the line at byte {offset} is not a registry change",
                    path.display()
                );
            }
            None => {
                tracing::warn!(path = %path.display(), bytes = bytes.len() - offset, "ignoring an append cut short at the end of the registry log");
                break;
            }
        }
        offset += line.len();
    }
    Ok(changes)
}

/// Where the leader keeps its policy and registry: files under `--work_dir`, or
/// ZooKeeper with `--zk` (`leadership::ZkStore`). A save is durable when it returns.
pub trait Store: Send {
    fn save_policy(&mut self, policy: &Policy) -> std::io::Result<()>;
    /// The whole registry without its frameworks.
    fn save_registry(&mut self, registry: Registry) -> std::io::Result<()>;
    /// Whether the next save may be the registry's changes rather than all of it: false
    /// for a store that keeps whole registries only, or that wants a whole one now (none
    /// written by this process yet, or its changes have grown as large as one).
    fn takes_changes(&self) -> bool {
        false
    }
    /// Stores the registry's changes since the last save, when it `takes_changes`.
    /// `Ok(false)`: it did not (they were too large for it), and the caller saves the
    /// whole registry instead.
    fn append_registry(&mut self, _changes: &RegistryChanges) -> std::io::Result<bool> {
        Ok(false)
    }
    fn save_frameworks(&mut self, frameworks: &[StoredFramework]) -> std::io::Result<()>;
}

/// `policy.json`, `registry.json` with `registry.log`, and `frameworks.json` in a
/// directory.
pub struct FileStore {
    dir: PathBuf,
    /// The log continuing the registry this store last wrote whole; none before the
    /// first whole write (a log left by an earlier process may end in a cut append) and
    /// after a failed append.
    log: Option<ChangeLog>,
}

struct ChangeLog {
    file: File,
    budget: LogBudget,
}

impl FileStore {
    pub fn new(dir: PathBuf) -> FileStore {
        FileStore { dir, log: None }
    }
}

impl Store for FileStore {
    fn save_policy(&mut self, policy: &Policy) -> std::io::Result<()> {
        save(&self.dir, policy)
    }

    fn save_registry(&mut self, mut registry: Registry) -> std::io::Result<()> {
        self.log = None;
        registry.generation = rand::random::<u64>().max(1);
        let whole = save_json(&self.dir, REGISTRY, &registry)?;
        let header = LogHeader {
            generation: registry.generation,
        };
        let (file, _) = replace_file(&self.dir, REGISTRY_LOG, |w| {
            serde_json::to_writer(&mut *w, &header).map_err(std::io::Error::other)?;
            w.write_all(b"\n")
        })?;
        self.log = Some(ChangeLog {
            file,
            budget: LogBudget::after_whole(whole),
        });
        Ok(())
    }

    fn takes_changes(&self) -> bool {
        self.log.as_ref().is_some_and(|log| !log.budget.spent())
    }

    fn append_registry(&mut self, changes: &RegistryChanges) -> std::io::Result<bool> {
        let Some(log) = &mut self.log else {
            return Ok(false);
        };
        if changes.is_empty() {
            return Ok(true);
        }
        let mut line = serde_json::to_vec(changes).map_err(std::io::Error::other)?;
        line.push(b'\n');
        if let Err(err) = log
            .file
            .write_all(&line)
            .and_then(|()| log.file.sync_data())
        {
            // What the file holds now is unknown: the next save is whole.
            self.log = None;
            return Err(err);
        }
        log.budget.appended(line.len());
        Ok(true)
    }

    fn save_frameworks(&mut self, frameworks: &[StoredFramework]) -> std::io::Result<()> {
        save_json(&self.dir, FRAMEWORKS, &frameworks).map(drop)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::core::{AgentEntry, RegistryRest};

    #[test]
    fn round_trip_and_absent_file() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(load(dir.path()).unwrap(), Policy::default());
        let mut policy = Policy::default();
        policy.weights.insert("eng".into(), 3.0);
        save(dir.path(), &policy).unwrap();
        assert_eq!(load(dir.path()).unwrap(), policy);
        fs::write(dir.path().join(POLICY), b"{not json").unwrap();
        assert!(load(dir.path())
            .unwrap_err()
            .to_string()
            .contains("not a valid store file"));
        assert_eq!(load_registry(dir.path()).unwrap(), Registry::default());
    }

    fn stored_framework(name: &str, deadline: Option<f64>) -> StoredFramework {
        let info = serde_json::from_value(serde_json::json!({
            "user": "root", "name": name, "id": {"value": name},
        }))
        .unwrap();
        StoredFramework {
            info,
            failover_deadline: deadline,
        }
    }

    #[test]
    fn frameworks_are_stored_apart_and_an_older_registry_still_reads() {
        let dir = tempfile::tempdir().unwrap();
        // Written before the frameworks were kept apart: registry.json holds them.
        let older = Registry {
            frameworks: vec![stored_framework("old", Some(5.0))],
            ..Registry::default()
        };
        save_json(dir.path(), REGISTRY, &older).unwrap();
        assert_eq!(load_registry(dir.path()).unwrap(), older);

        let mut store = FileStore::new(dir.path().to_path_buf());
        let frameworks = vec![stored_framework("new", None)];
        store.save_frameworks(&frameworks).unwrap();
        store.save_registry(Registry::default()).unwrap();
        let loaded = load_registry(dir.path()).unwrap();
        assert_eq!(loaded.frameworks, frameworks);
        let agents_part = fs::read_to_string(dir.path().join(REGISTRY)).unwrap();
        assert!(!agents_part.contains("frameworks"), "{agents_part}");
        // No frameworks left is an empty list, not the registry's old ones.
        store.save_frameworks(&[]).unwrap();
        save_json(dir.path(), REGISTRY, &older).unwrap();
        assert!(load_registry(dir.path()).unwrap().frameworks.is_empty());
    }

    /// An agent of the registry, `M-S<n>` on `host<n>`.
    pub(crate) fn agent(n: usize) -> mantle_api::AgentInfo {
        serde_json::from_value(serde_json::json!({
            "hostname": format!("host{n}"), "port": 5051,
            "id": {"value": format!("M-S{n}")},
        }))
        .unwrap()
    }

    fn admitted(range: std::ops::Range<usize>) -> RegistryChanges {
        RegistryChanges {
            agents: range.map(|n| AgentEntry::Admitted(agent(n))).collect(),
            rest: None,
        }
    }

    /// The registry as loaded, in the order `Registry::apply` leaves it.
    fn sorted(mut registry: Registry) -> Registry {
        registry.apply([]);
        registry.generation = 0;
        registry
    }

    /// A registry written whole with agents 0 and 1, then three appends.
    fn logged(dir: &Path) -> (FileStore, Registry) {
        let mut store = FileStore::new(dir.to_path_buf());
        assert!(!store.takes_changes(), "whole first");
        let whole = Registry {
            agents: vec![agent(0), agent(1)],
            ..Registry::default()
        };
        store.save_registry(whole.clone()).unwrap();
        let mut expected = whole;
        let changes = [
            admitted(2..4),
            RegistryChanges {
                agents: vec![
                    AgentEntry::Unreachable(agent(0), 7.5),
                    AgentEntry::Removed(agent(2).id.unwrap()),
                ],
                rest: Some(RegistryRest {
                    deactivated: vec![agent(1).id.unwrap()],
                    ..RegistryRest::default()
                }),
            },
            RegistryChanges::default(),
        ];
        for change in changes {
            assert!(store.append_registry(&change).unwrap());
            expected.apply([change]);
        }
        (store, sorted(expected))
    }

    #[test]
    fn changes_appended_to_the_log_are_read_back_after_the_whole_registry() {
        let dir = tempfile::tempdir().unwrap();
        let (_store, expected) = logged(dir.path());
        assert_eq!(expected.agents.len(), 2);
        assert_eq!(expected.unreachable.len(), 1);
        let loaded = load_registry(dir.path()).unwrap();
        assert_eq!(sorted(loaded), expected);
        // The header and two changes: the empty one wrote nothing.
        let log = fs::read_to_string(dir.path().join(REGISTRY_LOG)).unwrap();
        assert_eq!(log.lines().count(), 3, "{log}");
    }

    #[test]
    fn a_cut_append_ends_the_log_and_damage_before_its_end_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let (_store, expected) = logged(dir.path());
        let path = dir.path().join(REGISTRY_LOG);
        let whole = fs::read(&path).unwrap();
        let mut cut = whole.clone();
        cut.extend_from_slice(br#"{"agents":[{"admitted":{"hostname":"#);
        fs::write(&path, &cut).unwrap();
        assert_eq!(sorted(load_registry(dir.path()).unwrap()), expected);
        // Zeros where the cut append's blocks were never written.
        let mut zeros = whole.clone();
        zeros.extend_from_slice(&[0; 64]);
        fs::write(&path, &zeros).unwrap();
        assert_eq!(sorted(load_registry(dir.path()).unwrap()), expected);

        // A bad line with a whole one after it: damage, with where it is.
        let header_len = whole.iter().position(|b| *b == b'\n').unwrap() + 1;
        let mut damaged = whole[..header_len].to_vec();
        damaged.extend_from_slice(b"{\"agents\":[\n");
        damaged.extend_from_slice(&whole[header_len..]);
        fs::write(&path, &damaged).unwrap();
        let err = load_registry(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains(&format!(
                "the line at byte {header_len} is not a registry change"
            )),
            "{err}"
        );
    }

    #[test]
    fn a_log_the_registry_does_not_name_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let (_store, _) = logged(dir.path());
        // A whole write that crashed before its new log: the old log stays.
        let newer = Registry {
            agents: vec![agent(5)],
            generation: 42,
            ..Registry::default()
        };
        save_json(dir.path(), REGISTRY, &newer).unwrap();
        assert_eq!(load_registry(dir.path()).unwrap(), newer);
        // A registry written before there was a log ignores any log as well.
        let older = Registry {
            agents: vec![agent(6)],
            ..Registry::default()
        };
        save_json(dir.path(), REGISTRY, &older).unwrap();
        assert_eq!(load_registry(dir.path()).unwrap(), older);
    }

    #[test]
    fn the_log_is_compacted_once_as_large_as_the_whole_registry() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = FileStore::new(dir.path().to_path_buf());
        store.save_registry(Registry::default()).unwrap();
        let mut expected = Registry::default();
        let mut appends = 0;
        let mut next = 0;
        // About 80 bytes an agent: 1 MB is reached within 13,000 agents.
        while store.takes_changes() {
            assert!(store.append_registry(&admitted(next..next + 1000)).unwrap());
            expected.apply([admitted(next..next + 1000)]);
            next += 1000;
            appends += 1;
            assert!(appends < 20, "never compacted");
        }
        let log_len = fs::metadata(dir.path().join(REGISTRY_LOG)).unwrap().len();
        assert!(log_len >= MIN_LOG_BYTES, "{log_len}");
        assert_eq!(sorted(load_registry(dir.path()).unwrap()), expected);
        // The caller writes it whole: a new generation, and an empty log.
        expected.apply([admitted(next..next + 1000)]);
        store.save_registry(expected.clone()).unwrap();
        let log = fs::read_to_string(dir.path().join(REGISTRY_LOG)).unwrap();
        assert_eq!(log.lines().count(), 1, "{log}");
        assert_eq!(sorted(load_registry(dir.path()).unwrap()), sorted(expected));
        // The log's limit follows the whole registry's size.
        let whole = fs::metadata(dir.path().join(REGISTRY)).unwrap().len();
        assert_eq!(
            store.log.as_ref().unwrap().budget.limit,
            whole.max(MIN_LOG_BYTES)
        );
    }
}
