//! cgroups v2: the container's directory `<unified>/<cgroups_root>/<id>` in the unified
//! hierarchy, controllers delegated to it through `cgroup.subtree_control`, and
//! `cgroup.kill` (Linux 5.14) or the v2 freezer for killing.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::files::{self, CgroupsRoot};
use super::stats;
use super::{
    clamp_shares, pids_max_value, validate_container_id, Cgroups, Controllers, Limits, Stats,
    Version, MAX_SHARES, MIN_SHARES,
};
use crate::ContainerError;

/// The range of `cpu.weight`.
const MAX_WEIGHT: u64 = 10_000;

/// Converts v1 shares to a v2 weight with the formula runc, crun and systemd use, so a
/// container gets the same relative CPU on either interface: 2..=262144 maps linearly
/// onto 1..=10000 (1024 shares, one Mesos cpu, become 39).
pub(super) fn shares_to_weight(shares: u64) -> u64 {
    let shares = clamp_shares(shares);
    let weight = 1 + ((shares - MIN_SHARES) * (MAX_WEIGHT - 1)) / (MAX_SHARES - MIN_SHARES);
    weight.clamp(1, MAX_WEIGHT)
}

/// cgroups v2 on the unified hierarchy mounted at `unified_dir`.
#[derive(Debug)]
pub struct V2 {
    unified: PathBuf,
    root: CgroupsRoot,
    kill_timeout: Duration,
    /// Tests turn this off to cover the freezer path on kernels that have `cgroup.kill`.
    use_kill_file: bool,
}

impl V2 {
    pub fn new(unified_dir: &Path, cgroups_root: &str) -> Self {
        V2 {
            unified: unified_dir.to_path_buf(),
            root: CgroupsRoot::new(cgroups_root),
            kill_timeout: files::KILL_TIMEOUT,
            use_kill_file: true,
        }
    }

    #[cfg(test)]
    pub(super) fn with_kill_timeout(mut self, timeout: Duration) -> Self {
        self.kill_timeout = timeout;
        self
    }

    #[cfg(test)]
    pub(super) fn without_kill_file(mut self) -> Self {
        self.use_kill_file = false;
        self
    }

    fn dir(&self, container: &str) -> Result<PathBuf, ContainerError> {
        validate_container_id(container)?;
        Ok(self.unified.join(self.root.get()?).join(container))
    }

    /// Turns on `wanted` in one cgroup's `cgroup.subtree_control`, writing only what is
    /// missing: reading is cheaper than a write, which takes the kernel's cgroup lock.
    fn enable(&self, cgroup: &Path, wanted: &[&str]) -> Result<(), ContainerError> {
        let path = cgroup.join("cgroup.subtree_control");
        let enabled = files::read_optional(&path)?.unwrap_or_default();
        let missing: Vec<String> = wanted
            .iter()
            .filter(|name| {
                !enabled
                    .split_whitespace()
                    .any(|on| on.trim_start_matches('+') == **name)
            })
            .map(|name| format!("+{name}"))
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        files::write(&path, &missing.join(" "))
    }

    /// Freezes the container, SIGKILLs every process in it and thaws it again whatever
    /// happened; for kernels without `cgroup.kill`. Kernels before 5.2 have no v2
    /// freezer either; there a fork can race the kill, and `kill_all` simply repeats.
    fn freeze_and_kill(&self, dir: &Path) -> Result<(), ContainerError> {
        let freeze = dir.join("cgroup.freeze");
        if !files::write_if_present(&freeze, "1")? {
            let victims = files::collect_pids(dir, "cgroup.procs")?.unwrap_or_default();
            return files::kill(&victims, dir);
        }
        let killed = self.kill_frozen(dir);
        let thawed = files::write(&freeze, "0");
        killed.and(thawed)
    }

    fn kill_frozen(&self, dir: &Path) -> Result<(), ContainerError> {
        let events = dir.join("cgroup.events");
        let frozen = files::wait_until(Instant::now() + files::FREEZE_TIMEOUT, || {
            // Without cgroup.events (a fake cgroupfs) there is nothing to wait for.
            let Some(text) = files::read_optional(&events)? else {
                return Ok(true);
            };
            Ok(text.lines().any(|line| line.trim() == "frozen 1"))
        })?;
        if !frozen {
            tracing::warn!(cgroup = %dir.display(), "cgroup did not freeze; killing anyway");
        }
        let victims = files::collect_pids(dir, "cgroup.procs")?.unwrap_or_default();
        files::kill(&victims, dir)
    }
}

impl Cgroups for V2 {
    fn version(&self) -> Version {
        Version::V2
    }

    fn create(
        &self,
        container: &str,
        controllers: &Controllers,
    ) -> Result<Vec<PathBuf>, ContainerError> {
        let dir = self.dir(container)?;
        let wanted: Vec<&str> = controllers.names().collect();
        if !wanted.is_empty() {
            let available_path = self.unified.join("cgroup.controllers");
            let available = files::read(&available_path)?;
            if let Some(name) = wanted
                .iter()
                .find(|name| !available.split_whitespace().any(|on| on == **name))
            {
                return Err(ContainerError::invalid(
                    "controllers",
                    format!(
                        "the {name} controller is not available in {} (it offers {:?})",
                        available_path.display(),
                        available.trim()
                    ),
                ));
            }
            // Each cgroup from the unified root down to ours must pass the controllers
            // on; our root holds no processes, so v2's no-internal-process rule holds.
            let mut level = self.unified.clone();
            self.enable(&level, &wanted)?;
            for part in self.root.get()?.components() {
                level.push(part);
                match fs::create_dir(&level) {
                    Ok(()) => {}
                    Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {}
                    Err(err) => return Err(ContainerError::io("create cgroup", &level, err)),
                }
                self.enable(&level, &wanted)?;
            }
        }
        fs::create_dir_all(&dir).map_err(|err| ContainerError::io("create cgroup", &dir, err))?;
        tracing::debug!(container_id = container, "cgroup v2 created");
        Ok(vec![dir.join("cgroup.procs")])
    }

    fn apply(&self, container: &str, limits: &Limits) -> Result<(), ContainerError> {
        let dir = self.dir(container)?;
        limits.validate()?;
        if let Some(shares) = limits.cpu_shares {
            files::write(
                &dir.join("cpu.weight"),
                &shares_to_weight(shares).to_string(),
            )?;
        }
        if let Some(quota) = limits.cfs_quota {
            let quota_us = quota.quota_us.map_or("max".to_string(), |q| q.to_string());
            files::write(
                &dir.join("cpu.max"),
                &format!("{quota_us} {}", quota.period_us),
            )?;
        }
        if let Some(bytes) = limits.memory_limit_bytes {
            files::write(&dir.join("memory.max"), &bytes.to_string())?;
        }
        if let Some(max) = limits.pids_max {
            files::write(&dir.join("pids.max"), &pids_max_value(max))?;
        }
        Ok(())
    }

    fn stats(&self, container: &str) -> Result<Stats, ContainerError> {
        let dir = self.dir(container)?;
        if !dir.is_dir() {
            return Err(ContainerError::io(
                "read stats of cgroup",
                &dir,
                std::io::ErrorKind::NotFound.into(),
            ));
        }
        stats::read_v2(&dir)
    }

    fn pids(&self, container: &str) -> Result<Vec<i32>, ContainerError> {
        let dir = self.dir(container)?;
        files::collect_pids(&dir, "cgroup.procs")?.ok_or_else(|| {
            ContainerError::io(
                "read pids of cgroup",
                &dir,
                std::io::ErrorKind::NotFound.into(),
            )
        })
    }

    fn kill_all(&self, container: &str) -> Result<(), ContainerError> {
        let dir = self.dir(container)?;
        let deadline = Instant::now() + self.kill_timeout;
        loop {
            let alive = files::collect_pids(&dir, "cgroup.procs")?.unwrap_or_default();
            if alive.is_empty() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(files::kill_timed_out(&dir, alive.len(), self.kill_timeout));
            }
            // cgroup.kill reaches the whole subtree in one step, forks racing it included.
            let kill_file = dir.join("cgroup.kill");
            if !(self.use_kill_file && files::write_if_present(&kill_file, "1")?) {
                self.freeze_and_kill(&dir)?;
            }
            files::wait_until(deadline, || {
                Ok(files::collect_pids(&dir, "cgroup.procs")?.is_none_or(|pids| pids.is_empty()))
            })?;
        }
    }

    fn destroy(&self, container: &str) -> Result<(), ContainerError> {
        self.kill_all(container)?;
        files::remove_cgroup(
            &self.dir(container)?,
            Instant::now() + files::REMOVE_TIMEOUT,
        )?;
        tracing::debug!(container_id = container, "cgroup v2 destroyed");
        Ok(())
    }

    fn list(&self) -> Result<Vec<String>, ContainerError> {
        let mut names: Vec<String> = files::subdirs(&self.unified.join(self.root.get()?))?
            .iter()
            .filter_map(|dir| files::container_name(dir))
            .collect();
        names.sort_unstable();
        Ok(names)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cgroups::testutil::{get, put, ChildGuard};
    use crate::cgroups::CfsQuota;

    const CONTROLLERS: &str = "cpuset cpu io memory hugetlb pids rdma misc\n";

    fn fake(cgroups_root: &str, controllers: &str) -> (tempfile::TempDir, V2) {
        let dir = tempfile::tempdir().unwrap();
        put(dir.path(), &[("cgroup.controllers", controllers)]);
        let v2 = V2::new(dir.path(), cgroups_root);
        (dir, v2)
    }

    #[test]
    fn shares_become_weights_like_runc_does() {
        let check = |shares, weight| assert_eq!(shares_to_weight(shares), weight, "{shares}");
        check(0, 1);
        check(2, 1);
        check(3, 1);
        check(256, 10);
        check(512, 20);
        check(1024, 39);
        check(2048, 79);
        check(100_000, 3815);
        check(262_144, 10_000);
        check(u64::MAX, 10_000);
    }

    /// Creates `c1` with `controllers` under `cgroups_root` and compares the
    /// `cgroup.subtree_control` files (relative path, content) with `expected`.
    fn check_create(cgroups_root: &str, controllers: Controllers, expected: &[(&str, &str)]) {
        let (dir, v2) = fake(cgroups_root, CONTROLLERS);
        let procs = v2.create("c1", &controllers).unwrap();
        let container = dir.path().join(cgroups_root).join("c1");
        assert_eq!(procs, [container.join("cgroup.procs")]);
        assert!(container.is_dir());
        let mut written = Vec::new();
        let mut level = dir.path().to_path_buf();
        for part in std::iter::once("").chain(cgroups_root.split('/')) {
            level.push(part);
            let relative = level
                .strip_prefix(dir.path())
                .unwrap()
                .join("cgroup.subtree_control");
            let relative = relative.to_str().unwrap().to_string();
            if let Some(content) = get(dir.path(), &relative) {
                written.push((relative, content));
            }
        }
        let expected: Vec<_> = expected
            .iter()
            .map(|(file, content)| (file.to_string(), content.to_string()))
            .collect();
        assert_eq!(written, expected, "{controllers:?} under {cgroups_root}");
    }

    #[test]
    fn create_delegates_the_controllers_down_to_our_root() {
        let none = Controllers::default();
        check_create("mantle", none, &[]);
        check_create(
            "mantle",
            Controllers {
                cpu: true,
                memory: true,
                ..none
            },
            &[
                ("cgroup.subtree_control", "+cpu +memory"),
                ("mantle/cgroup.subtree_control", "+cpu +memory"),
            ],
        );
        check_create(
            "agents/mantle",
            Controllers { pids: true, ..none },
            &[
                ("cgroup.subtree_control", "+pids"),
                ("agents/cgroup.subtree_control", "+pids"),
                ("agents/mantle/cgroup.subtree_control", "+pids"),
            ],
        );
    }

    #[test]
    fn create_writes_only_the_controllers_not_yet_enabled() {
        let (dir, v2) = fake("mantle", CONTROLLERS);
        // The kernel lists enabled controllers without the '+'.
        put(
            dir.path(),
            &[
                ("cgroup.subtree_control", "cpu memory\n"),
                ("mantle/cgroup.subtree_control", "cpu memory pids\n"),
            ],
        );
        let all = Controllers {
            cpu: true,
            memory: true,
            pids: true,
        };
        v2.create("c1", &all).unwrap();
        assert_eq!(get(dir.path(), "cgroup.subtree_control").unwrap(), "+pids");
        assert_eq!(
            get(dir.path(), "mantle/cgroup.subtree_control").unwrap(),
            "cpu memory pids\n"
        );
        // Once everything is on, a create writes nothing at all.
        put(
            dir.path(),
            &[("cgroup.subtree_control", "cpu memory pids\n")],
        );
        v2.create("c2", &all).unwrap();
        assert_eq!(
            get(dir.path(), "cgroup.subtree_control").unwrap(),
            "cpu memory pids\n"
        );
    }

    #[test]
    fn a_controller_the_host_does_not_offer_is_an_invalid_request() {
        let (dir, v2) = fake("mantle", "hugetlb\n");
        let err = v2
            .create(
                "c1",
                &Controllers {
                    memory: true,
                    ..Controllers::default()
                },
            )
            .unwrap_err()
            .to_string();
        let want = format!(
            "controllers: the memory controller is not available in {} (it offers \"hugetlb\")",
            dir.path().join("cgroup.controllers").display()
        );
        assert_eq!(err, want);
        assert!(!dir.path().join("mantle/c1").exists());
    }

    fn check_apply(limits: Limits, expected: &[(&str, &str)]) {
        let (dir, v2) = fake("mantle", CONTROLLERS);
        let cgroup = dir.path().join("mantle/c1");
        fs::create_dir_all(&cgroup).unwrap();
        v2.apply("c1", &limits).unwrap();
        for file in ["cpu.weight", "cpu.max", "memory.max", "pids.max"] {
            let want = expected
                .iter()
                .find(|(name, _)| *name == file)
                .map(|(_, content)| content.to_string());
            assert_eq!(get(&cgroup, file), want, "{file} for {limits:?}");
        }
    }

    #[test]
    fn apply_writes_each_limit_that_is_set() {
        let none = Limits::default();
        check_apply(none, &[]);
        check_apply(
            Limits {
                cpu_shares: Some(256),
                ..none
            },
            &[("cpu.weight", "10")],
        );
        check_apply(
            Limits {
                cpu_shares: Some(1024),
                cfs_quota: Some(CfsQuota {
                    quota_us: Some(150_000),
                    period_us: 100_000,
                }),
                ..none
            },
            &[("cpu.weight", "39"), ("cpu.max", "150000 100000")],
        );
        check_apply(
            Limits {
                cfs_quota: Some(CfsQuota {
                    quota_us: None,
                    period_us: 100_000,
                }),
                memory_limit_bytes: Some(32 << 20),
                pids_max: Some(64),
                ..none
            },
            &[
                ("cpu.max", "max 100000"),
                ("memory.max", "33554432"),
                ("pids.max", "64"),
            ],
        );
        check_apply(
            Limits {
                pids_max: Some(u64::MAX),
                ..none
            },
            &[("pids.max", "max")],
        );
    }

    #[test]
    fn containers_are_listed_and_destroyed() {
        let (dir, v2) = fake("mantle", CONTROLLERS);
        assert_eq!(v2.list().unwrap(), Vec::<String>::new());
        for container in ["b", "a"] {
            v2.create(container, &Controllers::default()).unwrap();
        }
        put(
            dir.path(),
            &[
                ("mantle/a/cgroup.procs", ""),
                ("mantle/a/nested/cgroup.procs", ""),
            ],
        );
        assert_eq!(v2.list().unwrap(), ["a", "b"]);
        assert_eq!(v2.pids("a").unwrap(), Vec::<i32>::new());
        v2.destroy("a").unwrap();
        v2.destroy("a").unwrap();
        assert_eq!(v2.list().unwrap(), ["b"]);
        let err = v2.stats("a").unwrap_err().to_string();
        assert!(err.starts_with("read stats of cgroup "), "{err}");
        let err = v2
            .create("../b", &Controllers::default())
            .unwrap_err()
            .to_string();
        assert_eq!(err, "container_id: \"../b\" must not contain '/'");
    }

    /// Runs kill_all on a fake cgroup that lists a live `sleep` and has the control
    /// files `controls`; the fake never empties, so kill_all must stop at its deadline.
    /// Returns the child and the control files' contents afterwards.
    fn kill_in_fake(controls: &[&str]) -> (ChildGuard, Vec<Option<String>>) {
        let (dir, v2) = fake("mantle", CONTROLLERS);
        let v2 = v2.with_kill_timeout(Duration::from_millis(300));
        let child = ChildGuard::sleep();
        let cgroup = dir.path().join("mantle/c1");
        put(&cgroup, &[("cgroup.procs", &format!("{}\n", child.pid()))]);
        for control in controls {
            put(&cgroup, &[(control, "")]);
        }
        let started = Instant::now();
        let err = v2.kill_all("c1").unwrap_err().to_string();
        assert!(started.elapsed() < Duration::from_secs(3));
        let want = format!(
            "kill processes in cgroup {}: 1 processes still alive after 300 ms",
            cgroup.display()
        );
        assert_eq!(err, want);
        let after = ["cgroup.kill", "cgroup.freeze"]
            .iter()
            .map(|control| get(&cgroup, control))
            .collect();
        (child, after)
    }

    fn killed_by_us(child: &mut ChildGuard) -> bool {
        let status = child.0.wait().unwrap();
        std::os::unix::process::ExitStatusExt::signal(&status) == Some(libc::SIGKILL)
    }

    #[test]
    fn kill_all_uses_cgroup_kill_when_the_kernel_has_it() {
        let (mut child, after) = kill_in_fake(&["cgroup.kill", "cgroup.freeze"]);
        assert_eq!(after, [Some("1".to_string()), Some(String::new())]);
        // The kernel does the killing there, so we sent no signal ourselves.
        assert!(child.0.try_wait().unwrap().is_none());
    }

    #[test]
    fn kill_all_freezes_and_signals_without_cgroup_kill() {
        let (mut child, after) = kill_in_fake(&["cgroup.freeze"]);
        assert_eq!(after, [None, Some("0".to_string())]);
        assert!(killed_by_us(&mut child));

        // Kernels before 5.2 have neither file: the processes are still signalled.
        let (mut child, after) = kill_in_fake(&[]);
        assert_eq!(after, [None, None]);
        assert!(killed_by_us(&mut child));
    }
}
