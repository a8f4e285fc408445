//! The agent's containerizer (reference §7): every executor starts through
//! `mantle-launcher` (DESIGN invariant 6), inside a cgroup of its own when the host has
//! cgroups, with the isolators `--isolation` names. The calls here block on the file
//! system and on process creation; the event loop runs them on blocking threads.

use crate::core::{ContainerLimits, LaunchSpec, Limitation};
use crate::error::AgentError;
use crate::launcher::{kill_group, prepare_sandbox};
use crate::launcher_server::{LauncherServer, Started};
use crate::sandbox;
use mantle_api::{ContainerId, Reason};
use mantle_containerizer::cgroups::{self, CfsQuota, Cgroups, Controllers, Limits, Stats};
use mantle_containerizer::launch::{self, LaunchConfig};
use mantle_containerizer::{cpu_shares, memory_limit_bytes, SANDBOX_MOUNT};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The CFS period Mesos uses.
const CFS_PERIOD_US: u64 = 100_000;
const MIN_CFS_QUOTA_US: u64 = 1_000;

/// The isolators `--isolation` turns on.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Isolation {
    pub cgroups_cpu: bool,
    pub cgroups_mem: bool,
    pub cgroups_pids: bool,
    pub pid_namespace: bool,
    pub filesystem_linux: bool,
    pub disk_du: bool,
}

impl Isolation {
    /// Parses `--isolation`, a comma-separated list of Mesos isolator names.
    pub fn parse(text: &str) -> Result<Isolation, AgentError> {
        let mut isolation = Isolation::default();
        for name in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            match name {
                // Usage only: every container reports its usage anyway.
                "posix/cpu" | "posix/mem" | "posix/disk" => {
                    isolation.disk_du |= name == "posix/disk";
                }
                "cgroups/cpu" => isolation.cgroups_cpu = true,
                "cgroups/mem" => isolation.cgroups_mem = true,
                "cgroups/pids" => isolation.cgroups_pids = true,
                "cgroups/all" => {
                    isolation.cgroups_cpu = true;
                    isolation.cgroups_mem = true;
                    isolation.cgroups_pids = true;
                }
                "namespaces/pid" => isolation.pid_namespace = true,
                "filesystem/linux" => isolation.filesystem_linux = true,
                "filesystem/posix" => {}
                "disk/du" => isolation.disk_du = true,
                other => {
                    return Err(AgentError::flag(
                        "isolation",
                        format!(
                            "unknown isolator '{other}' (known: posix/cpu, posix/mem, \
                             posix/disk, cgroups/cpu, cgroups/mem, cgroups/pids, cgroups/all, \
                             namespaces/pid, filesystem/linux, filesystem/posix, disk/du)"
                        ),
                    ))
                }
            }
        }
        Ok(isolation)
    }

    fn uses_cgroup_controllers(&self) -> bool {
        self.cgroups_cpu || self.cgroups_mem || self.cgroups_pids
    }
}

/// The containerizer's flags.
#[derive(Clone, Debug)]
pub struct ContainerConfig {
    pub isolation: Isolation,
    /// `mantle-launcher`.
    pub launcher: PathBuf,
    /// The binary whose `executor` verb is the built-in executor (`mantle`). An executor
    /// command that is exactly `<it> executor` runs in the task process the launcher
    /// forked, through the launcher's own copy of that code, without a second exec.
    pub builtin_executor: PathBuf,
    /// Where cgroup hierarchies are mounted (`/sys/fs/cgroup`).
    pub cgroups_hierarchy: PathBuf,
    /// The cgroup under which containers live (`--cgroups_root`).
    pub cgroups_root: String,
    pub cgroups_enable_cfs: bool,
    pub enforce_container_disk_quota: bool,
    /// How often `disk/du` measures a sandbox.
    pub disk_watch_interval: Duration,
    /// Run tasks as their framework's or command's user.
    pub switch_user: bool,
}

/// Starts, limits, watches and kills containers.
#[derive(Debug)]
pub struct Containerizer {
    config: ContainerConfig,
    /// `None` when the host has no usable cgroups (then only posix isolation works).
    cgroups: Option<Box<dyn Cgroups>>,
    /// Forks the launchers (`mantle-launcher --serve`).
    server: LauncherServer,
}

/// A container's usage, for `/monitor/statistics` and GET_CONTAINERS.
#[derive(Clone, Debug, Default)]
pub struct Usage {
    pub stats: Stats,
    pub disk_used_bytes: Option<u64>,
}

impl Containerizer {
    /// Checks the flags against the host: cgroup isolators need a cgroup hierarchy, and
    /// the launcher must exist.
    pub fn new(config: ContainerConfig) -> Result<Containerizer, AgentError> {
        if !config.launcher.is_file() {
            return Err(AgentError::flag(
                "launcher_dir",
                format!("{} does not exist", config.launcher.display()),
            ));
        }
        // SAFETY: geteuid only reads the process's credentials.
        let root = unsafe { libc::geteuid() } == 0;
        let cgroups = if root {
            cgroups::detect(&config.cgroups_hierarchy, &config.cgroups_root).ok()
        } else {
            None
        };
        if cgroups.is_none() && config.isolation.uses_cgroup_controllers() {
            return Err(AgentError::flag(
                "isolation",
                format!(
                    "cgroup isolators need root and cgroups mounted under {}",
                    config.cgroups_hierarchy.display()
                ),
            ));
        }
        if !root && (config.isolation.pid_namespace || config.isolation.filesystem_linux) {
            return Err(AgentError::flag(
                "isolation",
                "namespaces/pid and filesystem/linux need root",
            ));
        }
        let server = LauncherServer::new(config.launcher.clone());
        Ok(Containerizer {
            config,
            cgroups,
            server,
        })
    }

    /// A containerizer that starts nothing, for simulated agents: their executors are
    /// timers inside the agent, so the launcher need not exist and no cgroup is made.
    pub fn simulated() -> Containerizer {
        Containerizer {
            config: ContainerConfig {
                isolation: Isolation::default(),
                launcher: PathBuf::new(),
                builtin_executor: PathBuf::new(),
                cgroups_hierarchy: PathBuf::new(),
                cgroups_root: String::new(),
                cgroups_enable_cfs: false,
                enforce_container_disk_quota: false,
                disk_watch_interval: Duration::from_secs(15),
                switch_user: false,
            },
            cgroups: None,
            server: LauncherServer::new(PathBuf::new()),
        }
    }

    /// Whether containers get a cgroup of their own (always, as root with cgroups: the
    /// freezer is how a whole container is killed).
    pub fn has_cgroups(&self) -> bool {
        self.cgroups.is_some()
    }

    /// Creates the sandbox and the cgroup, applies the limits and starts the launcher,
    /// which starts the executor. Blocks.
    pub fn start(&self, work_dir: &Path, spec: &LaunchSpec) -> Result<Started, AgentError> {
        prepare_sandbox(work_dir, spec)?;
        let container = spec.container_id.as_str();
        let mut cgroup_procs = Vec::new();
        if let Some(cgroups) = &self.cgroups {
            let isolation = &self.config.isolation;
            let controllers = Controllers {
                cpu: isolation.cgroups_cpu,
                memory: isolation.cgroups_mem,
                pids: isolation.cgroups_pids,
            };
            cgroup_procs = cgroups
                .create(container, &controllers)
                .map_err(container_error)?;
            cgroups
                .apply(container, &self.limits(&spec.limits))
                .map_err(container_error)?;
        }
        // With --switch_user off, tasks run as the agent's user.
        let user = spec.user.clone().filter(|_| self.config.switch_user);
        if let Some(user) = &user {
            chown_sandbox(&spec.directory, user)?;
        }
        let info = &spec.command;
        let value = info
            .value
            .clone()
            .filter(|v| !v.is_empty())
            .ok_or_else(|| AgentError::flag("command", "the executor's command has no value"))?;
        // A missing executor binary is a launch failure the framework should see as
        // one, not as an executor that started and exited.
        if !info.shell && value.contains('/') && !Path::new(&value).exists() {
            return Err(AgentError::Spawn {
                program: value,
                source: std::io::Error::from(std::io::ErrorKind::NotFound),
            });
        }
        let builtin = builtin_program(info, &self.config.builtin_executor);
        let (argv, program) = if info.shell {
            (
                vec!["sh".into(), "-c".into(), value],
                Some("/bin/sh".to_string()),
            )
        } else if info.arguments.is_empty() {
            (vec![value.clone()], Some(value))
        } else {
            (info.arguments.clone(), Some(value))
        };
        let isolation = &self.config.isolation;
        let sandbox_mount = isolation
            .filesystem_linux
            .then(|| PathBuf::from(SANDBOX_MOUNT));
        let mut overrides = spec.env.clone();
        if sandbox_mount.is_some() {
            overrides.push(("MESOS_SANDBOX".into(), SANDBOX_MOUNT.into()));
        }
        let env = merge_env(std::env::vars().collect(), overrides);
        let config = LaunchConfig {
            argv,
            program,
            env,
            working_dir: spec.directory.clone(),
            stdout: spec.directory.join("stdout"),
            stderr: spec.directory.join("stderr"),
            cgroup_procs,
            pid_namespace: isolation.pid_namespace,
            mount_namespace: isolation.pid_namespace || isolation.filesystem_linux,
            sandbox_mount,
            user,
            builtin,
        };
        // `launch::prepare` creates the run directory.
        let rundir = run_dir(work_dir, spec);
        let config_path = launch::prepare(&rundir, &config).map_err(container_error)?;
        self.server.launch(&config_path)
    }

    fn limits(&self, limits: &ContainerLimits) -> Limits {
        let isolation = &self.config.isolation;
        let cpus = limits.cpus.max(0.0);
        Limits {
            cpu_shares: isolation.cgroups_cpu.then(|| cpu_shares(cpus)),
            cfs_quota: (isolation.cgroups_cpu && self.config.cgroups_enable_cfs).then(|| {
                CfsQuota {
                    quota_us: Some(((cpus * CFS_PERIOD_US as f64) as u64).max(MIN_CFS_QUOTA_US)),
                    period_us: CFS_PERIOD_US,
                }
            }),
            memory_limit_bytes: isolation
                .cgroups_mem
                .then(|| memory_limit_bytes(limits.mem_mb)),
            pids_max: None,
        }
    }

    /// Applies new limits to a running container.
    pub fn update(&self, container_id: &ContainerId, limits: &ContainerLimits) {
        if let Some(cgroups) = &self.cgroups {
            if let Err(err) = cgroups.apply(container_id.as_str(), &self.limits(limits)) {
                tracing::warn!(container_id = %container_id, error = %err, "cannot update container limits");
            }
        }
    }

    /// Kills every process of the container: through its cgroup when it has one (forked
    /// daemons included), else the executor's process group. Blocks (bounded).
    pub fn kill(&self, work_dir: &Path, spec: &LaunchSpec, launcher_pid: Option<u32>) {
        if let Some(cgroups) = &self.cgroups {
            match cgroups.kill_all(spec.container_id.as_str()) {
                Ok(()) => return,
                Err(err) => {
                    tracing::warn!(container_id = %spec.container_id, error = %err, "cannot kill container through its cgroup")
                }
            }
        }
        let rundir = run_dir(work_dir, spec);
        if let Ok(Some(pid)) = launch::read_pid(&rundir) {
            kill_group(pid as u32);
        }
        if let Some(pid) = launcher_pid {
            kill_group(pid);
        }
    }

    /// The executor's raw wait status as the launcher recorded it.
    pub fn exit_status(&self, work_dir: &Path, spec: &LaunchSpec) -> Option<i32> {
        launch::read_status(&run_dir(work_dir, spec)).ok().flatten()
    }

    /// Why the launcher could not start the executor at all, when that is how it ended:
    /// it exited with [`launch::EXIT_LAUNCH_FAILED`] and recorded no pid. Its complaint
    /// is the last line of the sandbox's `stderr`.
    pub fn launch_error(&self, work_dir: &Path, spec: &LaunchSpec, raw: i32) -> Option<String> {
        let failed = libc::WIFEXITED(raw) && libc::WEXITSTATUS(raw) == launch::EXIT_LAUNCH_FAILED;
        if !failed || matches!(launch::read_pid(&run_dir(work_dir, spec)), Ok(Some(_))) {
            return None;
        }
        let stderr = std::fs::read_to_string(spec.directory.join("stderr")).unwrap_or_default();
        let reason = stderr
            .lines()
            .last()
            .unwrap_or("the launcher failed")
            .to_string();
        Some(reason)
    }

    /// Kills whatever an ended container left running and removes its cgroup: one
    /// cgroup destroy, which kills first, and the process-group kill only when there is
    /// no cgroup or destroying it failed. Blocks (bounded).
    pub fn kill_and_destroy(&self, work_dir: &Path, spec: &LaunchSpec) {
        if let Some(cgroups) = &self.cgroups {
            match cgroups.destroy(spec.container_id.as_str()) {
                Ok(()) => return,
                Err(err) => {
                    tracing::warn!(container_id = %spec.container_id, error = %err, "cannot remove container cgroup")
                }
            }
        }
        self.kill(work_dir, spec, None);
    }

    /// Removes what is left of an ended container (its cgroup). Blocks.
    pub fn destroy(&self, container_id: &ContainerId) {
        if let Some(cgroups) = &self.cgroups {
            if let Err(err) = cgroups.destroy(container_id.as_str()) {
                tracing::warn!(container_id = %container_id, error = %err, "cannot remove container cgroup");
            }
        }
    }

    /// Kills whatever still runs in the cgroup of a container an earlier run of the
    /// agent left, and removes it; a container without a cgroup is left alone. Blocks.
    pub fn destroy_orphan(&self, container_id: &ContainerId) {
        let Some(cgroups) = &self.cgroups else { return };
        if cgroups.pids(container_id.as_str()).is_err() {
            return;
        }
        if let Err(err) = cgroups.kill_all(container_id.as_str()) {
            tracing::warn!(container_id = %container_id, error = %err, "cannot kill an old container");
        }
        self.destroy(container_id);
    }

    /// The limit the container broke, if any: memory (an OOM kill in its cgroup) or,
    /// with `--enforce_container_disk_quota`, disk.
    pub fn limitation(&self, spec: &LaunchSpec, check_disk: bool) -> Option<Limitation> {
        if let (Some(cgroups), true) = (&self.cgroups, self.config.isolation.cgroups_mem) {
            if let Ok(stats) = cgroups.stats(spec.container_id.as_str()) {
                if stats.oom_kills > 0 {
                    return Some(memory_limitation(&stats));
                }
            }
        }
        if check_disk && self.config.enforce_container_disk_quota && self.config.isolation.disk_du {
            let quota = (spec.limits.disk_mb * 1048576.0) as u64;
            if quota > 0 {
                let used = disk_usage(&spec.directory);
                if used > quota {
                    return Some(disk_limitation(used, quota, spec.limits.disk_mb));
                }
            }
        }
        None
    }

    /// Whether a container can hit a limit the agent must notice (memory with
    /// `cgroups/mem`, disk with `disk/du`); without either there is nothing to watch.
    pub fn has_limits_to_watch(&self) -> bool {
        let isolation = &self.config.isolation;
        (self.cgroups.is_some() && isolation.cgroups_mem) || isolation.disk_du
    }

    /// How often a container's disk is measured (`None`: never).
    pub fn disk_watch(&self) -> Option<Duration> {
        self.config
            .isolation
            .disk_du
            .then_some(self.config.disk_watch_interval)
    }

    /// What the container uses now: from its cgroup when cgroups measure cpu or memory
    /// (`cgroups/cpu`, `cgroups/mem`), else from `/proc` (`posix/cpu`, `posix/mem`).
    pub fn usage(&self, spec: &LaunchSpec, launcher_pid: Option<u32>) -> Usage {
        let isolation = &self.config.isolation;
        let stats = match &self.cgroups {
            Some(cgroups) if isolation.cgroups_cpu || isolation.cgroups_mem => cgroups
                .stats(spec.container_id.as_str())
                .unwrap_or_default(),
            _ => launcher_pid.map(posix_stats).unwrap_or_default(),
        };
        Usage {
            stats,
            disk_used_bytes: self
                .config
                .isolation
                .disk_du
                .then(|| disk_usage(&spec.directory)),
        }
    }
}

/// The launcher's built-in program that is the same as `command`: `executor` for exactly
/// `<builtin_executor> executor`, not run through a shell.
fn builtin_program(command: &mantle_api::CommandInfo, builtin_executor: &Path) -> Option<String> {
    let value = command.value.as_deref()?;
    let builtin = !command.shell
        && !builtin_executor.as_os_str().is_empty()
        && Path::new(value) == builtin_executor
        && command.arguments == [value, "executor"];
    builtin.then(|| "executor".to_string())
}

/// The agent's environment with `overrides` applied in order: one entry per name, the
/// last value winning, in first-seen order.
fn merge_env(
    base: Vec<(String, String)>,
    overrides: Vec<(String, String)>,
) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::with_capacity(base.len() + overrides.len());
    let mut index = std::collections::HashMap::new();
    for (name, value) in base.into_iter().chain(overrides) {
        match index.get(&name) {
            Some(&i) => out[i] = (name, value),
            None => {
                index.insert(name.clone(), out.len());
                out.push((name, value));
            }
        }
    }
    out
}

/// `<work_dir>/meta/slaves/<agent>/frameworks/<fw>/executors/<ex>/runs/<container>`:
/// where the launcher records the executor's pid and exit status (the Mesos layout).
pub fn run_dir(work_dir: &Path, spec: &LaunchSpec) -> PathBuf {
    sandbox::sandbox_dir(
        &work_dir.join("meta"),
        &spec.agent_id,
        &spec.framework_id,
        &spec.executor_id,
        &spec.container_id,
    )
}

fn container_error(err: mantle_containerizer::ContainerError) -> AgentError {
    AgentError::Container(err.to_string())
}

fn memory_limitation(stats: &Stats) -> Limitation {
    let mb = |bytes: u64| bytes / 1048576;
    let limit = stats.mem_limit_bytes.unwrap_or(0);
    let used = stats
        .mem_max_bytes
        .unwrap_or(stats.mem_total_bytes)
        .max(limit);
    Limitation {
        reason: Reason::ContainerLimitationMemory,
        message: format!(
            "Memory limit exceeded: Requested: {}MB Maximum Used: {}MB",
            mb(limit),
            mb(used)
        ),
        limitation: json!({"resources": [{
            "name": "mem", "type": "SCALAR", "scalar": {"value": mb(limit) as f64}
        }]}),
    }
}

fn disk_limitation(used: u64, quota: u64, quota_mb: f64) -> Limitation {
    Limitation {
        reason: Reason::ContainerLimitationDisk,
        message: format!(
            "Disk usage ({}) exceeds quota ({})",
            human_bytes(used),
            human_bytes(quota)
        ),
        limitation: json!({"resources": [{
            "name": "disk", "type": "SCALAR", "scalar": {"value": quota_mb}
        }]}),
    }
}

fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KB", "MB", "GB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1}{}", UNITS[unit])
}

/// Bytes used under `dir` (what `du` counts: allocated blocks, each inode once).
pub fn disk_usage(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut total = 0;
    let mut seen = std::collections::HashSet::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(path) = stack.pop() {
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if !seen.insert((meta.dev(), meta.ino())) {
            continue;
        }
        total += meta.blocks() * 512;
        if meta.is_dir() {
            if let Ok(entries) = std::fs::read_dir(&path) {
                stack.extend(entries.flatten().map(|e| e.path()));
            }
        }
    }
    total
}

/// Usage of a container without cgroups: the processes of the executor's session
/// (the launcher's child leads one), from `/proc`.
fn posix_stats(launcher_pid: u32) -> Stats {
    let ticks = clock_ticks();
    let page = page_size();
    let mut stats = Stats::default();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return stats;
    };
    let launcher = launcher_pid as i64;
    let mut session = None;
    let mut rows = Vec::new();
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i64>().ok())
        else {
            continue;
        };
        let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // Fields after the command name, which is in parentheses and may hold spaces.
        let Some(rest) = text.rsplit_once(')').map(|(_, r)| r) else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let field = |i: usize| {
            fields
                .get(i)
                .and_then(|f| f.parse::<i64>().ok())
                .unwrap_or(0)
        };
        // fields[1] = ppid, [3] = session, [11] = utime, [12] = stime, [21] = rss pages.
        if field(1) == launcher {
            session = Some(field(3));
        }
        rows.push((field(3), field(11), field(12), field(21)));
    }
    if let Some(session) = session {
        for (_, utime, stime, rss) in rows.into_iter().filter(|r| r.0 == session) {
            stats.cpus_user_time_secs += utime as f64 / ticks;
            stats.cpus_system_time_secs += stime as f64 / ticks;
            stats.mem_rss_bytes += (rss.max(0) as u64) * page;
        }
    }
    stats.mem_total_bytes = stats.mem_rss_bytes;
    stats
}

fn clock_ticks() -> f64 {
    // SAFETY: sysconf only reads a system constant.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 {
        ticks as f64
    } else {
        100.0
    }
}

fn page_size() -> u64 {
    // SAFETY: sysconf only reads a system constant.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if size > 0 {
        size as u64
    } else {
        4096
    }
}

/// Gives the sandbox to the user the task runs as, as Mesos does, so the task can write
/// its files there. Fails clearly when the user does not exist.
fn chown_sandbox(directory: &Path, user: &str) -> Result<(), AgentError> {
    let (uid, gid) = lookup_user(user).ok_or_else(|| {
        AgentError::flag(
            "user",
            format!("user '{user}' does not exist on this agent"),
        )
    })?;
    for path in [
        directory.to_path_buf(),
        directory.join("stdout"),
        directory.join("stderr"),
    ] {
        std::os::unix::fs::chown(&path, Some(uid), Some(gid))
            .map_err(|e| AgentError::io("cannot change the owner of", &path, e))?;
    }
    Ok(())
}

fn lookup_user(user: &str) -> Option<(u32, u32)> {
    let name = std::ffi::CString::new(user).ok()?;
    let mut entry: libc::passwd = unsafe { std::mem::zeroed() };
    let mut buffer = vec![0 as libc::c_char; 16384];
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call: `entry` and `buffer` outlive it, and
    // `buffer.len()` is the buffer's real size; getpwnam_r writes only into them.
    let rc = unsafe {
        libc::getpwnam_r(
            name.as_ptr(),
            &mut entry,
            buffer.as_mut_ptr(),
            buffer.len(),
            &mut result,
        )
    };
    (rc == 0 && !result.is_null()).then_some((entry.pw_uid, entry.pw_gid))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str, expected: Result<Isolation, &str>) {
        match (Isolation::parse(text), expected) {
            (Ok(got), Ok(want)) => assert_eq!(got, want, "{text}"),
            (Err(got), Err(want)) => assert!(got.to_string().contains(want), "{text}: {got}"),
            (got, want) => panic!("{text}: got {got:?}, expected {want:?}"),
        }
    }

    #[test]
    fn isolation_flag() {
        check("posix/cpu,posix/mem", Ok(Isolation::default()));
        check(
            "cgroups/cpu,cgroups/mem,namespaces/pid",
            Ok(Isolation {
                cgroups_cpu: true,
                cgroups_mem: true,
                pid_namespace: true,
                ..Isolation::default()
            }),
        );
        check(
            "cgroups/all, disk/du ,filesystem/linux",
            Ok(Isolation {
                cgroups_cpu: true,
                cgroups_mem: true,
                cgroups_pids: true,
                disk_du: true,
                filesystem_linux: true,
                ..Isolation::default()
            }),
        );
        check(
            "cgroups/cpu,network/cni",
            Err("--isolation: unknown isolator 'network/cni'"),
        );
    }

    #[test]
    fn only_the_agents_own_executor_command_is_built_in() {
        let command = |shell: bool, value: &str, arguments: &[&str]| mantle_api::CommandInfo {
            shell,
            value: Some(value.into()),
            arguments: arguments.iter().map(|a| a.to_string()).collect(),
            ..mantle_api::CommandInfo::shell("")
        };
        let mantle = Path::new("/opt/mantle/bin/mantle");
        let check = |info: mantle_api::CommandInfo, builtin: &Path, expected: Option<&str>| {
            assert_eq!(
                builtin_program(&info, builtin).as_deref(),
                expected,
                "{info:?}"
            );
        };
        let own = || {
            command(
                false,
                "/opt/mantle/bin/mantle",
                &["/opt/mantle/bin/mantle", "executor"],
            )
        };
        check(own(), mantle, Some("executor"));
        check(own(), Path::new(""), None);
        check(own(), Path::new("/usr/bin/mantle"), None);
        check(
            command(true, "/opt/mantle/bin/mantle executor", &[]),
            mantle,
            None,
        );
        check(
            command(
                false,
                "/opt/mantle/bin/mantle",
                &["/opt/mantle/bin/mantle", "executor", "-v"],
            ),
            mantle,
            None,
        );
        check(
            command(false, "/opt/mantle/bin/mantle", &["mantle", "executor"]),
            mantle,
            None,
        );
    }

    #[test]
    fn later_variables_win() {
        let pair = |n: &str, v: &str| (n.to_string(), v.to_string());
        let merged = merge_env(
            vec![pair("PATH", "/bin"), pair("HOME", "/root")],
            vec![pair("X", "1"), pair("PATH", "/usr/bin"), pair("X", "2")],
        );
        assert_eq!(
            merged,
            vec![
                pair("PATH", "/usr/bin"),
                pair("HOME", "/root"),
                pair("X", "2")
            ]
        );
    }

    #[test]
    fn bytes_for_people() {
        assert_eq!(human_bytes(512), "512.0B");
        assert_eq!(human_bytes(3 * 1048576 + 524288), "3.5MB");
    }

    #[test]
    fn disk_usage_counts_allocated_blocks() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a"), vec![1u8; 200_000]).unwrap();
        std::fs::create_dir(dir.path().join("d")).unwrap();
        std::fs::write(dir.path().join("d/b"), vec![1u8; 100_000]).unwrap();
        let used = disk_usage(dir.path());
        assert!(used >= 300_000, "{used}");
    }
}
