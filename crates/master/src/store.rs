//! The master's embedded store under `--work_dir`: the operator's policy (weights,
//! quota, dynamic reservations) in `policy.json`, the registry (agents, unreachable,
//! deactivated, draining and gone agents, the maintenance schedule and DOWN machines) in
//! `registry.json` and the frameworks with their failover deadlines in `frameworks.json`,
//! apart so that a framework's subscription does not rewrite every agent. Each file is
//! replaced atomically (write a temp file, fsync, rename, fsync the directory) so a crash
//! leaves the old or the new one.

use crate::core::{Policy, Registry, StoredFramework};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::fs::{self, File};
use std::io::BufWriter;
use std::path::Path;

const POLICY: &str = "policy.json";
const REGISTRY: &str = "registry.json";
const FRAMEWORKS: &str = "frameworks.json";

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

fn save_json<T: Serialize>(dir: &Path, name: &str, value: &T) -> std::io::Result<()> {
    fs::create_dir_all(dir)?;
    let tmp = dir.join(format!("{name}.tmp"));
    {
        // Compact and streamed: the registry of a large cluster is tens of megabytes
        // (51 MB at 100,000 agents), written while the agents it admits wait; built
        // whole in memory first, its buffer's growth (page faults, copies) was a sixth of
        // the write.
        let mut file = BufWriter::with_capacity(1 << 20, File::create(&tmp)?);
        serde_json::to_writer(&mut file, value).map_err(std::io::Error::other)?;
        file.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    }
    fs::rename(&tmp, dir.join(name))?;
    File::open(dir)?.sync_all()
}

/// The stored policy; an absent file is an empty policy.
pub fn load(dir: &Path) -> anyhow::Result<Policy> {
    load_json(dir, POLICY)
}

pub fn save(dir: &Path, policy: &Policy) -> std::io::Result<()> {
    save_json(dir, POLICY, policy)
}

/// The stored registry with its frameworks; absent files are an empty one. Without
/// `frameworks.json` (a registry stored before the frameworks were kept apart) the
/// frameworks are those `registry.json` holds.
pub fn load_registry(dir: &Path) -> anyhow::Result<Registry> {
    let mut registry: Registry = load_json(dir, REGISTRY)?;
    if dir.join(FRAMEWORKS).exists() {
        registry.frameworks = load_json(dir, FRAMEWORKS)?;
    }
    Ok(registry)
}

/// Where the leader keeps its policy and registry: files under `--work_dir`, or
/// ZooKeeper with `--zk` (`leadership::ZkStore`). A save is durable when it returns.
pub trait Store: Send {
    fn save_policy(&mut self, policy: &Policy) -> std::io::Result<()>;
    /// The registry without its frameworks.
    fn save_registry(&mut self, registry: &Registry) -> std::io::Result<()>;
    fn save_frameworks(&mut self, frameworks: &[StoredFramework]) -> std::io::Result<()>;
}

/// `policy.json`, `registry.json` and `frameworks.json` in a directory.
pub struct FileStore(pub std::path::PathBuf);

impl Store for FileStore {
    fn save_policy(&mut self, policy: &Policy) -> std::io::Result<()> {
        save(&self.0, policy)
    }

    fn save_registry(&mut self, registry: &Registry) -> std::io::Result<()> {
        save_json(&self.0, REGISTRY, registry)
    }

    fn save_frameworks(&mut self, frameworks: &[StoredFramework]) -> std::io::Result<()> {
        save_json(&self.0, FRAMEWORKS, &frameworks)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

        let mut store = FileStore(dir.path().to_path_buf());
        let frameworks = vec![stored_framework("new", None)];
        store.save_frameworks(&frameworks).unwrap();
        store.save_registry(&Registry::default()).unwrap();
        let loaded = load_registry(dir.path()).unwrap();
        assert_eq!(loaded.frameworks, frameworks);
        let agents_part = fs::read_to_string(dir.path().join(REGISTRY)).unwrap();
        assert!(!agents_part.contains("frameworks"), "{agents_part}");
        // No frameworks left is an empty list, not the registry's old ones.
        store.save_frameworks(&[]).unwrap();
        save_json(dir.path(), REGISTRY, &older).unwrap();
        assert!(load_registry(dir.path()).unwrap().frameworks.is_empty());
    }
}
