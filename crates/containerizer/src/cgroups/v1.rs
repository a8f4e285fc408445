//! cgroups v1: one hierarchy per controller under the mount root (Mesos's
//! `--cgroups_hierarchy`), the container's directory `<hierarchy>/<cgroups_root>/<id>` in
//! each, and the freezer for killing, as in Mesos's `LinuxLauncher`.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::files::{self, CgroupsRoot};
use super::stats;
use super::{
    clamp_shares, pids_max_value, validate_container_id, Cgroups, Controllers, Limits, Stats,
    Version,
};
use crate::ContainerError;

/// cgroups v1. The hierarchies are resolved once, when the agent starts: following the
/// symlinks (`cpu -> cpu,cpuacct` on many hosts) tells which controllers share one
/// directory, so it is created and joined once.
#[derive(Debug)]
pub struct V1 {
    mount_root: PathBuf,
    root: CgroupsRoot,
    cpu: Option<PathBuf>,
    cpuacct: Option<PathBuf>,
    memory: Option<PathBuf>,
    pids: Option<PathBuf>,
    freezer: Option<PathBuf>,
    /// `USER_HZ`, the unit of `cpuacct.stat`.
    clock_ticks: f64,
    kill_timeout: Duration,
}

impl V1 {
    pub fn new(mount_root: &Path, cgroups_root: &str) -> Self {
        let hierarchy = |name: &str| {
            fs::canonicalize(mount_root.join(name))
                .ok()
                .filter(|dir| dir.is_dir())
        };
        V1 {
            mount_root: mount_root.to_path_buf(),
            root: CgroupsRoot::new(cgroups_root),
            cpu: hierarchy("cpu"),
            cpuacct: hierarchy("cpuacct"),
            memory: hierarchy("memory"),
            pids: hierarchy("pids"),
            freezer: hierarchy("freezer"),
            clock_ticks: stats::clock_ticks(),
            kill_timeout: files::KILL_TIMEOUT,
        }
    }

    #[cfg(test)]
    pub(super) fn with_kill_timeout(mut self, timeout: Duration) -> Self {
        self.kill_timeout = timeout;
        self
    }

    /// The container's directory in one hierarchy, after checking the names.
    fn dir(&self, hierarchy: &Path, container: &str) -> Result<PathBuf, ContainerError> {
        validate_container_id(container)?;
        Ok(hierarchy.join(self.root.get()?).join(container))
    }

    /// A controller's hierarchy, which must be mounted for a container to use it.
    fn required<'a>(
        &self,
        hierarchy: &'a Option<PathBuf>,
        controller: &str,
    ) -> Result<&'a Path, ContainerError> {
        hierarchy.as_deref().ok_or_else(|| {
            ContainerError::invalid(
                "controllers",
                format!(
                    "the {controller} hierarchy is not mounted at {}",
                    self.mount_root.join(controller).display()
                ),
            )
        })
    }

    /// The container's directory in a controller's hierarchy, which must be mounted.
    fn controller_dir(
        &self,
        hierarchy: &Option<PathBuf>,
        controller: &str,
        container: &str,
    ) -> Result<PathBuf, ContainerError> {
        self.dir(self.required(hierarchy, controller)?, container)
    }

    /// The container's directory in a hierarchy if that is mounted, for reading stats.
    fn optional_dir(
        &self,
        hierarchy: &Option<PathBuf>,
        container: &str,
    ) -> Result<Option<PathBuf>, ContainerError> {
        hierarchy
            .as_deref()
            .map(|hierarchy| self.dir(hierarchy, container))
            .transpose()
    }

    /// Every mounted hierarchy once, the freezer last: `destroy` removes it last, so a
    /// destroy that fails halfway can still kill through it when it is retried.
    fn mounted(&self) -> Vec<&Path> {
        let mut all: Vec<&Path> = Vec::new();
        let candidates = [
            &self.cpu,
            &self.cpuacct,
            &self.memory,
            &self.pids,
            &self.freezer,
        ];
        for hierarchy in candidates.into_iter().flatten() {
            if !all.contains(&hierarchy.as_path()) {
                all.push(hierarchy);
            }
        }
        all
    }

    /// The hierarchies a container with these controllers lives in: the freezer first,
    /// and `cpuacct` with `cpu` because it holds the CPU times.
    fn hierarchies(&self, controllers: &Controllers) -> Result<Vec<&Path>, ContainerError> {
        let mut wanted = vec![self.required(&self.freezer, "freezer")?];
        if controllers.cpu {
            wanted.push(self.required(&self.cpu, "cpu")?);
            wanted.extend(self.cpuacct.as_deref());
        }
        if controllers.memory {
            wanted.push(self.required(&self.memory, "memory")?);
        }
        if controllers.pids {
            wanted.push(self.required(&self.pids, "pids")?);
        }
        let mut unique = Vec::with_capacity(wanted.len());
        for dir in wanted {
            if !unique.contains(&dir) {
                unique.push(dir);
            }
        }
        Ok(unique)
    }

    /// Freezes the container, SIGKILLs every process and thread in it, and thaws it
    /// again whatever happened, because a frozen cgroup can be neither emptied nor removed.
    fn freeze_and_kill(&self, dir: &Path) -> Result<(), ContainerError> {
        let state = dir.join("freezer.state");
        files::write(&state, "FROZEN")?;
        let killed = self.kill_frozen(dir, &state);
        let thawed = files::write(&state, "THAWED");
        killed.and(thawed)
    }

    fn kill_frozen(&self, dir: &Path, state: &Path) -> Result<(), ContainerError> {
        // A process in an uninterruptible sleep can keep the cgroup FREEZING; the kill
        // below is queued all the same and takes effect at the thaw.
        let frozen = files::wait_until(Instant::now() + files::FREEZE_TIMEOUT, || {
            Ok(files::read(state)?.trim() == "FROZEN")
        })?;
        if !frozen {
            tracing::warn!(cgroup = %dir.display(), "cgroup did not freeze; killing anyway");
        }
        // Once frozen nothing can fork, so these lists are complete. `tasks` also names
        // threads whose thread-group leader lives in another cgroup.
        let mut victims = files::collect_pids(dir, "cgroup.procs")?.unwrap_or_default();
        victims.extend(files::collect_pids(dir, "tasks")?.unwrap_or_default());
        victims.sort_unstable();
        victims.dedup();
        files::kill(&victims, dir)
    }
}

impl Cgroups for V1 {
    fn version(&self) -> Version {
        Version::V1
    }

    fn create(
        &self,
        container: &str,
        controllers: &Controllers,
    ) -> Result<Vec<PathBuf>, ContainerError> {
        validate_container_id(container)?;
        let mut procs = Vec::new();
        for hierarchy in self.hierarchies(controllers)? {
            let dir = self.dir(hierarchy, container)?;
            fs::create_dir_all(&dir)
                .map_err(|err| ContainerError::io("create cgroup", &dir, err))?;
            procs.push(dir.join("cgroup.procs"));
        }
        tracing::debug!(container_id = container, "cgroups v1 created");
        Ok(procs)
    }

    fn apply(&self, container: &str, limits: &Limits) -> Result<(), ContainerError> {
        validate_container_id(container)?;
        limits.validate()?;
        if let Some(shares) = limits.cpu_shares {
            let dir = self.controller_dir(&self.cpu, "cpu", container)?;
            files::write(&dir.join("cpu.shares"), &clamp_shares(shares).to_string())?;
        }
        if let Some(quota) = limits.cfs_quota {
            let dir = self.controller_dir(&self.cpu, "cpu", container)?;
            // The period first, as Mesos does: the kernel checks the quota against it.
            files::write(&dir.join("cpu.cfs_period_us"), &quota.period_us.to_string())?;
            let quota_us = quota.quota_us.map_or("-1".to_string(), |q| q.to_string());
            files::write(&dir.join("cpu.cfs_quota_us"), &quota_us)?;
        }
        if let Some(bytes) = limits.memory_limit_bytes {
            // Swap (memory.memsw.*) is left alone, as with Mesos's default
            // --cgroups_limit_swap=false.
            let dir = self.controller_dir(&self.memory, "memory", container)?;
            files::write(&dir.join("memory.limit_in_bytes"), &bytes.to_string())?;
        }
        if let Some(max) = limits.pids_max {
            let dir = self.controller_dir(&self.pids, "pids", container)?;
            files::write(&dir.join("pids.max"), &pids_max_value(max))?;
        }
        Ok(())
    }

    fn stats(&self, container: &str) -> Result<Stats, ContainerError> {
        let freezer = self.controller_dir(&self.freezer, "freezer", container)?;
        if !freezer.is_dir() {
            return Err(ContainerError::io(
                "read stats of cgroup",
                &freezer,
                std::io::ErrorKind::NotFound.into(),
            ));
        }
        let dirs = stats::V1Dirs {
            cpuacct: self.optional_dir(&self.cpuacct, container)?,
            cpu: self.optional_dir(&self.cpu, container)?,
            memory: self.optional_dir(&self.memory, container)?,
            pids: self.optional_dir(&self.pids, container)?,
        };
        stats::read_v1(&dirs, self.clock_ticks)
    }

    fn pids(&self, container: &str) -> Result<Vec<i32>, ContainerError> {
        let dir = self.controller_dir(&self.freezer, "freezer", container)?;
        files::collect_pids(&dir, "cgroup.procs")?.ok_or_else(|| {
            ContainerError::io(
                "read pids of cgroup",
                &dir,
                std::io::ErrorKind::NotFound.into(),
            )
        })
    }

    fn kill_all(&self, container: &str) -> Result<(), ContainerError> {
        // Without a freezer hierarchy no container of ours can exist.
        let Some(dir) = self.optional_dir(&self.freezer, container)? else {
            return Ok(());
        };
        let deadline = Instant::now() + self.kill_timeout;
        loop {
            let alive = files::collect_pids(&dir, "cgroup.procs")?.unwrap_or_default();
            if alive.is_empty() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(files::kill_timed_out(&dir, alive.len(), self.kill_timeout));
            }
            self.freeze_and_kill(&dir)?;
            files::wait_until(deadline, || {
                Ok(files::collect_pids(&dir, "cgroup.procs")?.is_none_or(|pids| pids.is_empty()))
            })?;
        }
    }

    fn destroy(&self, container: &str) -> Result<(), ContainerError> {
        self.kill_all(container)?;
        let deadline = Instant::now() + files::REMOVE_TIMEOUT;
        for hierarchy in self.mounted() {
            files::remove_cgroup(&self.dir(hierarchy, container)?, deadline)?;
        }
        tracing::debug!(container_id = container, "cgroups v1 destroyed");
        Ok(())
    }

    fn list(&self) -> Result<Vec<String>, ContainerError> {
        let root = self.root.get()?;
        let mut names = Vec::new();
        // Every hierarchy, not only the freezer: an agent that crashed while creating a
        // container may have left it in some of them.
        for hierarchy in self.mounted() {
            for dir in files::subdirs(&hierarchy.join(root))? {
                names.extend(files::container_name(&dir));
            }
        }
        names.sort_unstable();
        names.dedup();
        Ok(names)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cgroups::testutil::{get, put, ChildGuard};
    use crate::cgroups::CfsQuota;

    const ALL: Controllers = Controllers {
        cpu: true,
        memory: true,
        pids: true,
    };

    /// A fake v1 mount root with one hierarchy per controller, each with the `tasks`
    /// file only a v1 hierarchy root has.
    fn fake() -> (tempfile::TempDir, V1) {
        let dir = tempfile::tempdir().unwrap();
        for controller in ["cpu", "cpuacct", "memory", "pids", "freezer"] {
            put(dir.path(), &[(&format!("{controller}/tasks"), "")]);
        }
        let v1 = V1::new(dir.path(), "mantle");
        (dir, v1)
    }

    fn check_create(controllers: Controllers, expected: &[&str]) {
        let (dir, v1) = fake();
        let root = fs::canonicalize(dir.path()).unwrap();
        for _ in 0..2 {
            let procs = v1.create("c1", &controllers).unwrap();
            let relative: Vec<_> = procs
                .iter()
                .map(|path| path.strip_prefix(&root).unwrap().to_str().unwrap())
                .collect();
            assert_eq!(relative, expected, "{controllers:?}");
        }
    }

    #[test]
    fn create_makes_the_container_in_each_hierarchy_it_needs() {
        let none = Controllers::default();
        check_create(none, &["freezer/mantle/c1/cgroup.procs"]);
        check_create(
            Controllers { cpu: true, ..none },
            &[
                "freezer/mantle/c1/cgroup.procs",
                "cpu/mantle/c1/cgroup.procs",
                "cpuacct/mantle/c1/cgroup.procs",
            ],
        );
        check_create(
            Controllers {
                memory: true,
                pids: true,
                ..none
            },
            &[
                "freezer/mantle/c1/cgroup.procs",
                "memory/mantle/c1/cgroup.procs",
                "pids/mantle/c1/cgroup.procs",
            ],
        );
    }

    #[test]
    fn co_mounted_controllers_are_created_and_joined_once() {
        let dir = tempfile::tempdir().unwrap();
        put(
            dir.path(),
            &[("cpu,cpuacct/tasks", ""), ("freezer/tasks", "")],
        );
        for link in ["cpu", "cpuacct"] {
            std::os::unix::fs::symlink("cpu,cpuacct", dir.path().join(link)).unwrap();
        }
        let v1 = V1::new(dir.path(), "/mantle/");
        let root = fs::canonicalize(dir.path()).unwrap();
        let procs = v1
            .create(
                "c1",
                &Controllers {
                    cpu: true,
                    ..Controllers::default()
                },
            )
            .unwrap();
        assert_eq!(
            procs,
            [
                root.join("freezer/mantle/c1/cgroup.procs"),
                root.join("cpu,cpuacct/mantle/c1/cgroup.procs"),
            ]
        );
        // Destroy visits the shared hierarchy once and removes everything.
        v1.destroy("c1").unwrap();
        assert_eq!(v1.list().unwrap(), Vec::<String>::new());
    }

    #[test]
    fn a_controller_that_is_not_mounted_is_an_invalid_request() {
        let dir = tempfile::tempdir().unwrap();
        put(dir.path(), &[("freezer/tasks", "")]);
        let v1 = V1::new(dir.path(), "mantle");
        let err = v1.create("c1", &ALL).unwrap_err().to_string();
        let want = format!(
            "controllers: the cpu hierarchy is not mounted at {}",
            dir.path().join("cpu").display()
        );
        assert_eq!(err, want);

        let bare = tempfile::tempdir().unwrap();
        let err = V1::new(bare.path(), "mantle")
            .create("c1", &Controllers::default())
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("controllers: the freezer hierarchy"),
            "{err}"
        );
    }

    /// Applies `limits` to a fresh container and compares every limit file with
    /// `expected` (`None`: not written).
    fn check_apply(limits: Limits, expected: &[(&str, Option<&str>)]) {
        let (dir, v1) = fake();
        v1.create("c1", &ALL).unwrap();
        v1.apply("c1", &limits).unwrap();
        let files = [
            "cpu/mantle/c1/cpu.shares",
            "cpu/mantle/c1/cpu.cfs_period_us",
            "cpu/mantle/c1/cpu.cfs_quota_us",
            "memory/mantle/c1/memory.limit_in_bytes",
            "pids/mantle/c1/pids.max",
        ];
        for file in files {
            let want = expected
                .iter()
                .find(|(name, _)| *name == file)
                .and_then(|(_, content)| *content);
            assert_eq!(
                get(dir.path(), file).as_deref(),
                want,
                "{file} for {limits:?}"
            );
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
            &[("cpu/mantle/c1/cpu.shares", Some("256"))],
        );
        check_apply(
            Limits {
                cpu_shares: Some(0),
                ..none
            },
            &[("cpu/mantle/c1/cpu.shares", Some("2"))],
        );
        check_apply(
            Limits {
                cpu_shares: Some(1 << 30),
                ..none
            },
            &[("cpu/mantle/c1/cpu.shares", Some("262144"))],
        );
        check_apply(
            Limits {
                cfs_quota: Some(CfsQuota {
                    quota_us: Some(25_000),
                    period_us: 100_000,
                }),
                ..none
            },
            &[
                ("cpu/mantle/c1/cpu.cfs_period_us", Some("100000")),
                ("cpu/mantle/c1/cpu.cfs_quota_us", Some("25000")),
            ],
        );
        check_apply(
            Limits {
                cfs_quota: Some(CfsQuota {
                    quota_us: None,
                    period_us: 100_000,
                }),
                ..none
            },
            &[
                ("cpu/mantle/c1/cpu.cfs_period_us", Some("100000")),
                ("cpu/mantle/c1/cpu.cfs_quota_us", Some("-1")),
            ],
        );
        check_apply(
            Limits {
                memory_limit_bytes: Some(64 << 20),
                pids_max: Some(100),
                ..none
            },
            &[
                ("memory/mantle/c1/memory.limit_in_bytes", Some("67108864")),
                ("pids/mantle/c1/pids.max", Some("100")),
            ],
        );
        check_apply(
            Limits {
                pids_max: Some(5_000_000),
                ..none
            },
            &[("pids/mantle/c1/pids.max", Some("max"))],
        );
    }

    fn check_apply_error(limits: Limits, expected: &str) {
        let (dir, v1) = fake();
        v1.create("c1", &ALL).unwrap();
        let err = v1.apply("c1", &limits).unwrap_err().to_string();
        assert_eq!(err, expected);
        // A refused update writes nothing, not even its valid parts.
        assert_eq!(get(dir.path(), "cpu/mantle/c1/cpu.shares"), None);
    }

    #[test]
    fn apply_refuses_limits_the_kernel_cannot_take() {
        let shares = Limits {
            cpu_shares: Some(512),
            ..Limits::default()
        };
        let quota = |quota_us, period_us| Limits {
            cfs_quota: Some(CfsQuota {
                quota_us,
                period_us,
            }),
            ..shares
        };
        check_apply_error(
            quota(Some(50_000), 500),
            "cfs_quota.period_us: 500 is outside 1000..=1000000 microseconds",
        );
        check_apply_error(
            quota(Some(50_000), 2_000_000),
            "cfs_quota.period_us: 2000000 is outside 1000..=1000000 microseconds",
        );
        check_apply_error(
            quota(Some(999), 100_000),
            "cfs_quota.quota_us: 999 is below the kernel's minimum of 1000 microseconds",
        );
        check_apply_error(
            Limits {
                memory_limit_bytes: Some(0),
                ..shares
            },
            "memory_limit_bytes: must be positive",
        );
    }

    #[test]
    fn containers_are_listed_and_destroyed_in_every_hierarchy() {
        let (dir, v1) = fake();
        v1.create("c2", &ALL).unwrap();
        v1.create("c1", &Controllers::default()).unwrap();
        // A crash halfway through a create can leave a container in one hierarchy only.
        put(dir.path(), &[("memory/mantle/c3/memory.stat", "")]);
        put(dir.path(), &[("memory/mantle/not-a-dir", "")]);
        put(dir.path(), &[("freezer/mantle/c2/cgroup.procs", "")]);
        assert_eq!(v1.list().unwrap(), ["c1", "c2", "c3"]);
        assert_eq!(v1.pids("c2").unwrap(), Vec::<i32>::new());
        let err = v1.pids("gone").unwrap_err().to_string();
        assert!(err.starts_with("read pids of cgroup "), "{err}");
        let err = v1.stats("gone").unwrap_err().to_string();
        assert!(err.starts_with("read stats of cgroup "), "{err}");

        for container in ["c2", "c3", "c3", "never-created"] {
            v1.destroy(container).unwrap();
        }
        assert_eq!(v1.list().unwrap(), ["c1"]);
        for controller in ["cpu", "cpuacct", "memory", "pids", "freezer"] {
            for gone in ["c2", "c3"] {
                let path = dir.path().join(controller).join("mantle").join(gone);
                assert!(!path.exists(), "{}", path.display());
            }
        }
    }

    #[test]
    fn kill_all_signals_every_listed_process_and_gives_up_in_bounded_time() {
        let (dir, v1) = fake();
        let v1 = v1.with_kill_timeout(Duration::from_millis(300));
        v1.create("c1", &Controllers::default()).unwrap();
        // Nothing to kill: no freeze, no wait.
        v1.kill_all("c1").unwrap();
        assert_eq!(get(dir.path(), "freezer/mantle/c1/freezer.state"), None);

        // A fake cgroup never empties, so kill_all must stop at its deadline; it still
        // killed the process, and it left the cgroup thawed.
        let mut child = ChildGuard::sleep();
        put(
            dir.path(),
            &[
                (
                    "freezer/mantle/c1/cgroup.procs",
                    &format!("{}\n", child.pid()),
                ),
                ("freezer/mantle/c1/freezer.state", "THAWED\n"),
            ],
        );
        let started = Instant::now();
        let err = v1.kill_all("c1").unwrap_err().to_string();
        assert!(started.elapsed() < Duration::from_secs(3));
        assert!(
            err.starts_with("kill processes in cgroup ")
                && err.ends_with(": 1 processes still alive after 300 ms"),
            "{err}"
        );
        let status = child.0.wait().unwrap();
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(libc::SIGKILL)
        );
        assert_eq!(
            get(dir.path(), "freezer/mantle/c1/freezer.state").as_deref(),
            Some("THAWED")
        );
    }
}
