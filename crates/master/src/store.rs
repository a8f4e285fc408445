//! The master's embedded store: the operator's policy (weights, quota, dynamic
//! reservations) as one JSON file under `--work_dir`, replaced atomically (write a temp
//! file, fsync, rename, fsync the directory) so a crash leaves the old or the new one.

use crate::core::Policy;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

const FILE: &str = "policy.json";

fn path(dir: &Path) -> PathBuf {
    dir.join(FILE)
}

/// The stored policy; an absent file is an empty policy.
pub fn load(dir: &Path) -> anyhow::Result<Policy> {
    let path = path(dir);
    match fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map_err(|e| anyhow::anyhow!("{}: not a valid policy file: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Policy::default()),
        Err(e) => Err(anyhow::anyhow!("cannot read {}: {e}", path.display())),
    }
}

pub fn save(dir: &Path, policy: &Policy) -> std::io::Result<()> {
    fs::create_dir_all(dir)?;
    let tmp = dir.join(format!("{FILE}.tmp"));
    {
        let mut file = File::create(&tmp)?;
        file.write_all(&serde_json::to_vec_pretty(policy).map_err(std::io::Error::other)?)?;
        file.sync_all()?;
    }
    fs::rename(&tmp, path(dir))?;
    File::open(dir)?.sync_all()
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
        fs::write(path(dir.path()), b"{not json").unwrap();
        assert!(load(dir.path())
            .unwrap_err()
            .to_string()
            .contains("not a valid policy file"));
    }
}
