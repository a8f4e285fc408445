//! cgroups v1 and v2 behind one trait: creating a container's cgroups, applying the
//! limits of Mesos's `cgroups/cpu`, `cgroups/mem` and `cgroups/pids` isolators, reading
//! the usage `/monitor/statistics` reports, and killing and destroying a container the
//! way Mesos's cgroups launcher does (freeze, kill, thaw, wait).
//!
//! Both implementations talk to cgroupfs with plain file reads and writes under a root
//! path the caller chooses, so the same code runs against the kernel and against a fake
//! cgroupfs built in a temp directory (DESIGN invariant 8).

mod files;
mod stats;
mod v1;
mod v2;

#[cfg(test)]
mod real_tests;
#[cfg(test)]
mod testutil;

use std::path::{Path, PathBuf};

use crate::ContainerError;

pub use v1::V1;
pub use v2::V2;

/// Which cgroup interface a host offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// One hierarchy per controller (`/sys/fs/cgroup/memory`, `/sys/fs/cgroup/freezer`, ...).
    V1,
    /// The unified hierarchy (`cgroup2`).
    V2,
}

/// A CFS bandwidth limit: the container may run `quota_us` of CPU time per `period_us`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CfsQuota {
    /// CPU time per period in microseconds; `None` removes the limit (v1 `-1`, v2 `max`),
    /// which an update needs when a container stops being capped.
    pub quota_us: Option<u64>,
    /// Length of the period in microseconds (the kernel accepts 1 ms to 1 s).
    pub period_us: u64,
}

/// What a container's cgroup enforces. `None` leaves the file untouched, so a fresh
/// cgroup keeps the kernel default and an update changes only what it names.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    /// Relative CPU weight in v1 shares (Mesos: 1024 per cpu); v2 converts to `cpu.weight`.
    pub cpu_shares: Option<u64>,
    pub cfs_quota: Option<CfsQuota>,
    pub memory_limit_bytes: Option<u64>,
    pub pids_max: Option<u64>,
}

/// Usage in the shape Mesos's `/monitor/statistics` needs (`ResourceStatistics`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Stats {
    pub cpus_user_time_secs: f64,
    pub cpus_system_time_secs: f64,
    pub cpus_nr_periods: u64,
    pub cpus_nr_throttled: u64,
    pub cpus_throttled_time_secs: f64,
    /// Anonymous memory (v1 `total_rss`, v2 `anon`).
    pub mem_rss_bytes: u64,
    /// Page cache (v1 `total_cache`, v2 `file`).
    pub mem_cache_bytes: u64,
    /// Everything charged to the cgroup (v1 `memory.usage_in_bytes`, v2 `memory.current`).
    pub mem_total_bytes: u64,
    /// Peak usage, when the kernel keeps it (v2 `memory.peak` appeared in Linux 5.19).
    pub mem_max_bytes: Option<u64>,
    /// The enforced limit; `None` when unlimited or when memory is not controlled.
    pub mem_limit_bytes: Option<u64>,
    pub oom_kills: u64,
    /// Processes and threads in the cgroup, when the pids controller is on.
    pub pids_current: Option<u64>,
}

impl Limits {
    /// Rejects values the kernel would refuse or that would make the container
    /// unusable, before anything is written, so a bad update changes nothing.
    fn validate(&self) -> Result<(), ContainerError> {
        if let Some(quota) = &self.cfs_quota {
            if !(MIN_CFS_US..=MAX_CFS_PERIOD_US).contains(&quota.period_us) {
                return Err(ContainerError::invalid(
                    "cfs_quota.period_us",
                    format!(
                        "{} is outside {MIN_CFS_US}..={MAX_CFS_PERIOD_US} microseconds",
                        quota.period_us
                    ),
                ));
            }
            if let Some(quota_us) = quota.quota_us.filter(|&quota_us| quota_us < MIN_CFS_US) {
                return Err(ContainerError::invalid(
                    "cfs_quota.quota_us",
                    format!(
                        "{quota_us} is below the kernel's minimum of {MIN_CFS_US} microseconds"
                    ),
                ));
            }
        }
        if self.memory_limit_bytes == Some(0) {
            return Err(ContainerError::invalid(
                "memory_limit_bytes",
                "must be positive",
            ));
        }
        Ok(())
    }
}

/// The kernel's CFS bounds: a period of 1 ms to 1 s and a quota of at least 1 ms.
const MIN_CFS_US: u64 = 1_000;
const MAX_CFS_PERIOD_US: u64 = 1_000_000;

/// The range of v1 `cpu.shares`; the kernel silently clamps to it, and clamping here
/// too keeps a fake cgroupfs and v2's conversion in step with the kernel.
const MIN_SHARES: u64 = 2;
const MAX_SHARES: u64 = 262_144;

fn clamp_shares(shares: u64) -> u64 {
    shares.clamp(MIN_SHARES, MAX_SHARES)
}

/// The kernel refuses a `pids.max` above `PID_MAX_LIMIT`; such a limit cannot bind
/// anyway, so it is written as "max".
const PID_MAX_LIMIT: u64 = 4_194_304;

fn pids_max_value(max: u64) -> String {
    if max > PID_MAX_LIMIT {
        "max".to_string()
    } else {
        max.to_string()
    }
}

/// The controllers a container asks for. The hierarchy used for killing (v1 freezer, v2
/// the unified one) is always created, whatever is asked here.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Controllers {
    pub cpu: bool,
    pub memory: bool,
    pub pids: bool,
}

impl Controllers {
    /// The names the kernel uses, in a fixed order.
    fn names(&self) -> impl Iterator<Item = &'static str> {
        [
            ("cpu", self.cpu),
            ("memory", self.memory),
            ("pids", self.pids),
        ]
        .into_iter()
        .filter_map(|(name, on)| on.then_some(name))
    }
}

/// A container's cgroups. One implementation per kernel interface; the agent holds a
/// `Box<dyn Cgroups>` picked by [`detect`].
pub trait Cgroups: Send + Sync + std::fmt::Debug {
    fn version(&self) -> Version;

    /// Creates the container's cgroup(s) (idempotent) and returns the `cgroup.procs` files
    /// a launcher writes its pid into so that it and all its descendants are in the
    /// container. Always includes the hierarchy used for killing (v1: freezer) even when
    /// no other controller is asked for.
    fn create(
        &self,
        container: &str,
        controllers: &Controllers,
    ) -> Result<Vec<PathBuf>, ContainerError>;

    /// Writes the limits that are `Some`; the controllers must have been asked for in
    /// [`Cgroups::create`], otherwise the write fails with an Io error naming the file.
    fn apply(&self, container: &str, limits: &Limits) -> Result<(), ContainerError>;

    /// Reads usage; files of controllers the container does not use read as zero or `None`.
    fn stats(&self, container: &str) -> Result<Stats, ContainerError>;

    /// Pids of the processes in the container (nested cgroups included), sorted.
    fn pids(&self, container: &str) -> Result<Vec<i32>, ContainerError>;

    /// Kills every process in the container, forked daemons included, and returns once
    /// none is left (bounded: gives up with an error after about 5 s). A container
    /// without cgroups has nothing to kill, which is not an error.
    fn kill_all(&self, container: &str) -> Result<(), ContainerError>;

    /// `kill_all`, then removes the cgroup directories (bounded retries on EBUSY).
    /// Destroying a container that is already gone succeeds.
    fn destroy(&self, container: &str) -> Result<(), ContainerError>;

    /// Names of the containers that currently have a cgroup under our root (for recovery
    /// after an agent restart), sorted.
    fn list(&self) -> Result<Vec<String>, ContainerError>;
}

/// Picks the implementation for this host: v1 when per-controller hierarchies are
/// mounted under `mount_root` (we need the freezer, because it is what lets a kill reach
/// every forked process), else v2 when `mount_root/cgroup.controllers` exists.
/// `cgroups_root` is the sub-directory all containers live under (Mesos's
/// `--cgroups_root`; ours defaults to "mantle").
pub fn detect(mount_root: &Path, cgroups_root: &str) -> Result<Box<dyn Cgroups>, ContainerError> {
    files::CgroupsRoot::new(cgroups_root).get()?;
    // Only a v1 hierarchy has a `tasks` file in its root.
    if mount_root.join("freezer").join("tasks").is_file() {
        return Ok(Box::new(V1::new(mount_root, cgroups_root)));
    }
    if mount_root.join("cgroup.controllers").is_file() {
        return Ok(Box::new(V2::new(mount_root, cgroups_root)));
    }
    Err(ContainerError::invalid(
        "cgroups_hierarchy",
        format!(
            "{} has neither a cgroup v1 freezer hierarchy nor a cgroup v2 cgroup.controllers file",
            mount_root.display()
        ),
    ))
}

/// The longest name a directory entry may have (`NAME_MAX`).
const NAME_MAX: usize = 255;

/// Checks that a container ID can be used as one directory name under our root: it
/// must not be empty, climb out of the root or nest below it.
pub fn validate_container_id(container: &str) -> Result<(), ContainerError> {
    let problem = if container.is_empty() {
        "must not be empty"
    } else if container.contains('/') {
        "must not contain '/'"
    } else if container == "." || container.contains("..") {
        "must not be '.' or contain '..'"
    } else if container.contains('\0') {
        "must not contain a NUL byte"
    } else if container.len() > NAME_MAX {
        "must be at most 255 bytes long"
    } else {
        return Ok(());
    };
    Err(ContainerError::invalid(
        "container_id",
        format!("{container:?} {problem}"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_id(container: &str, expected: Result<(), &str>) {
        match (validate_container_id(container), expected) {
            (Ok(()), Ok(())) => {}
            (Err(err), Err(want)) => assert_eq!(err.to_string(), want),
            (got, want) => panic!("{container:?}: got {got:?}, want {want:?}"),
        }
    }

    #[test]
    fn container_ids_are_validated() {
        check_id("4f6e1c2a-8e9b-4c5d-9a0b-1c2d3e4f5a6b", Ok(()));
        check_id("task.1", Ok(()));
        check_id("", Err("container_id: \"\" must not be empty"));
        check_id("a/b", Err("container_id: \"a/b\" must not contain '/'"));
        check_id(
            "..",
            Err("container_id: \"..\" must not be '.' or contain '..'"),
        );
        check_id(
            ".",
            Err("container_id: \".\" must not be '.' or contain '..'"),
        );
        check_id(
            "a..b",
            Err("container_id: \"a..b\" must not be '.' or contain '..'"),
        );
        check_id(
            "a\0b",
            Err("container_id: \"a\\0b\" must not contain a NUL byte"),
        );
        check_id(
            &"x".repeat(256),
            Err(&format!(
                "container_id: {:?} must be at most 255 bytes long",
                "x".repeat(256)
            )),
        );
    }

    #[test]
    fn detect_picks_the_interface_from_the_files_it_finds() {
        let dir = tempfile::tempdir().unwrap();
        let v1 = dir.path().join("v1");
        std::fs::create_dir_all(v1.join("freezer")).unwrap();
        std::fs::write(v1.join("freezer/tasks"), "").unwrap();
        let v2 = dir.path().join("v2");
        std::fs::create_dir_all(&v2).unwrap();
        std::fs::write(v2.join("cgroup.controllers"), "cpu memory pids\n").unwrap();

        assert_eq!(detect(&v1, "mantle").unwrap().version(), Version::V1);
        assert_eq!(detect(&v2, "mantle").unwrap().version(), Version::V2);
        let err = detect(dir.path(), "mantle").unwrap_err().to_string();
        assert!(err.starts_with("cgroups_hierarchy: "), "{err}");
        let err = detect(&v2, "../escape").unwrap_err().to_string();
        assert!(err.starts_with("cgroups_root: "), "{err}");
    }

    #[test]
    fn every_operation_checks_the_container_id_and_the_root() {
        let dir = tempfile::tempdir().unwrap();
        testutil::put(
            dir.path(),
            &[("freezer/tasks", ""), ("cgroup.controllers", "cpu\n")],
        );
        let all = Controllers {
            cpu: true,
            memory: true,
            pids: true,
        };
        let want = "container_id: \"../x\" must not contain '/'";
        let v1 = V1::new(dir.path(), "mantle");
        let v2 = V2::new(dir.path(), "mantle");
        for cgroups in [&v1 as &dyn Cgroups, &v2] {
            let results = [
                cgroups.create("../x", &all).map(drop),
                cgroups.apply("../x", &Limits::default()),
                cgroups.stats("../x").map(drop),
                cgroups.pids("../x").map(drop),
                cgroups.kill_all("../x"),
                cgroups.destroy("../x"),
            ];
            for result in results {
                let err = result.unwrap_err().to_string();
                assert_eq!(err, want, "{:?}", cgroups.version());
            }
        }
        let bad_root = [
            V1::new(dir.path(), "..").list(),
            V2::new(dir.path(), "a/../b").list(),
        ];
        for result in bad_root {
            let err = result.unwrap_err().to_string();
            assert!(err.starts_with("cgroups_root: "), "{err}");
        }
    }
}
