//! Tests against this host's real cgroupfs: the v1 hierarchies under /sys/fs/cgroup and
//! the cgroup2 hierarchy (/sys/fs/cgroup/unified on a hybrid host, /sys/fs/cgroup on a
//! pure v2 one). They need root; outside CI they skip with a printed reason.

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{ChildStdin, ChildStdout, Command, Stdio};
use std::sync::{Mutex, MutexGuard};

use super::testutil::{skip_reason, unique_name, CgroupGuard, ChildGuard};
use super::{CfsQuota, Cgroups, Controllers, Limits, V1, V2};

const MOUNT_ROOT: &str = "/sys/fs/cgroup";
const CGROUPS_ROOT: &str = "mantle-test";
const V1_CONTROLLERS: [&str; 5] = ["cpu", "cpuacct", "memory", "pids", "freezer"];

/// The real tests share the `mantle-test` root and remove it when they end; running
/// them one at a time keeps one test from removing it under another's create.
static REAL_CGROUPS: Mutex<()> = Mutex::new(());

fn serialize() -> MutexGuard<'static, ()> {
    REAL_CGROUPS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn not_root() -> Option<String> {
    // SAFETY: geteuid takes no arguments and cannot fail.
    let euid = unsafe { libc::geteuid() };
    (euid != 0).then(|| format!("needs root to create cgroups (euid {euid})"))
}

fn v1_host() -> Result<V1, String> {
    if let Some(reason) = skip_reason(not_root().or_else(|| {
        V1_CONTROLLERS
            .iter()
            .map(|name| Path::new(MOUNT_ROOT).join(name))
            .find(|dir| !dir.join("tasks").is_file())
            .map(|dir| format!("no cgroup v1 hierarchy at {}", dir.display()))
    })) {
        return Err(reason);
    }
    Ok(V1::new(Path::new(MOUNT_ROOT), CGROUPS_ROOT))
}

fn v2_unified_dir() -> Result<PathBuf, String> {
    let candidates = [
        Path::new(MOUNT_ROOT).join("unified"),
        PathBuf::from(MOUNT_ROOT),
    ];
    let found = candidates
        .into_iter()
        .find(|dir| dir.join("cgroup.controllers").is_file());
    let missing = || format!("no cgroup2 hierarchy at {MOUNT_ROOT}/unified or {MOUNT_ROOT}");
    match skip_reason(not_root().or_else(|| found.is_none().then(missing))) {
        Some(reason) => Err(reason),
        None => found.ok_or_else(missing),
    }
}

/// Removes the test root in each hierarchy once its containers are gone. Another test
/// process may still use it; then rmdir fails with EBUSY, which is fine.
struct RootGuard(Vec<PathBuf>);

impl Drop for RootGuard {
    fn drop(&mut self) {
        for dir in &self.0 {
            let _ = fs::remove_dir(dir);
        }
    }
}

/// A shell in its own session that waits on stdin until it is in the container, then
/// starts a daemon (reparented away from it) and a loop that keeps forking, burns some
/// CPU, allocates memory through a pipeline, and says "ready".
struct Workload {
    child: ChildGuard,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

const SCRIPT: &str = "read _go
(sleep 30 &)
(while :; do sleep 1 & sleep 0.05; done &)
i=0; while [ $i -lt 100000 ]; do i=$((i+1)); done
x=$(head -c 2000000 /dev/zero | tr '\\0' a)
echo ready
exec sleep 30";

impl Workload {
    fn spawn() -> Self {
        let mut command = Command::new("sh");
        command
            .args(["-c", SCRIPT])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped());
        // SAFETY: the closure runs between fork and exec, where only async-signal-safe
        // calls are allowed; setsid is one and touches no memory of ours.
        unsafe {
            command.pre_exec(|| {
                if libc::setsid() == -1 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = command.spawn().expect("spawn sh");
        let stdin = child.stdin.take().expect("piped stdin");
        let stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        Workload {
            child: ChildGuard(child),
            stdin,
            stdout,
        }
    }

    /// Moves the shell into the container, lets it go and waits until it is ready.
    fn start_in(&mut self, procs: &[PathBuf]) {
        for path in procs {
            fs::write(path, self.child.pid().to_string())
                .unwrap_or_else(|err| panic!("join {}: {err}", path.display()));
        }
        self.stdin.write_all(b"go\n").unwrap();
        let mut line = String::new();
        self.stdout.read_line(&mut line).unwrap();
        assert_eq!(line, "ready\n");
    }
}

/// Whether a process has exited (gone, or a zombie waiting for its parent).
fn is_dead(pid: i32) -> bool {
    let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return true;
    };
    let state = stat.rsplit_once(')').map(|(_, rest)| rest.trim_start());
    matches!(state.and_then(|rest| rest.chars().next()), Some('Z' | 'X'))
}

fn parent_of(pid: i32) -> Option<i32> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// Runs the workload in a fresh container, checks that `pids` sees it (daemon
/// included), kills it and checks that nothing survived; returns after destroy.
fn check_kill(cgroups: &dyn Cgroups, container: &str, controllers: &Controllers) {
    let procs = cgroups.create(container, controllers).unwrap();
    assert_eq!(cgroups.create(container, controllers).unwrap(), procs);
    let mut workload = Workload::spawn();
    workload.start_in(&procs);

    let shell = workload.child.pid();
    let before = cgroups.pids(container).unwrap();
    assert!(
        before.contains(&shell),
        "{before:?} lacks the shell {shell}"
    );
    assert!(
        before
            .iter()
            .any(|&pid| pid != shell && parent_of(pid) != Some(shell)),
        "no daemonized process among {before:?}"
    );
    assert!(cgroups.list().unwrap().contains(&container.to_string()));

    cgroups.kill_all(container).unwrap();
    assert_eq!(cgroups.pids(container).unwrap(), Vec::<i32>::new());
    let alive: Vec<i32> = before
        .iter()
        .copied()
        .filter(|&pid| !is_dead(pid))
        .collect();
    assert_eq!(alive, Vec::<i32>::new(), "survived kill_all");
    let status = workload.child.0.wait().unwrap();
    assert_eq!(status.signal(), Some(libc::SIGKILL));

    cgroups.destroy(container).unwrap();
    for path in &procs {
        let dir = path.parent().unwrap();
        assert!(!dir.exists(), "{} is left", dir.display());
    }
    assert!(!cgroups.list().unwrap().contains(&container.to_string()));
}

#[test]
fn v1_limits_stats_and_kill_on_the_real_hierarchies() {
    let _serial = serialize();
    let Ok(v1) = v1_host() else { return };
    let _roots = RootGuard(
        V1_CONTROLLERS
            .iter()
            .map(|name| Path::new(MOUNT_ROOT).join(name).join(CGROUPS_ROOT))
            .collect(),
    );
    let container = unique_name("v1");
    let _cleanup = CgroupGuard {
        cgroups: &v1,
        container: container.clone(),
    };
    let all = Controllers {
        cpu: true,
        memory: true,
        pids: true,
    };
    let procs = v1.create(&container, &all).unwrap();
    let expected: Vec<PathBuf> = ["freezer", "cpu", "cpuacct", "memory", "pids"]
        .iter()
        .map(|name| {
            Path::new(MOUNT_ROOT)
                .join(name)
                .join(CGROUPS_ROOT)
                .join(&container)
                .join("cgroup.procs")
        })
        .collect();
    assert_eq!(procs, expected);

    let limits = Limits {
        cpu_shares: Some(256),
        cfs_quota: Some(CfsQuota {
            quota_us: Some(50_000),
            period_us: 100_000,
        }),
        memory_limit_bytes: Some(64 << 20),
        pids_max: Some(100),
    };
    v1.apply(&container, &limits).unwrap();
    let read = |controller: &str, file: &str| {
        let path = Path::new(MOUNT_ROOT)
            .join(controller)
            .join(CGROUPS_ROOT)
            .join(&container)
            .join(file);
        fs::read_to_string(&path).unwrap().trim().to_string()
    };
    assert_eq!(read("cpu", "cpu.shares"), "256");
    assert_eq!(read("cpu", "cpu.cfs_period_us"), "100000");
    assert_eq!(read("cpu", "cpu.cfs_quota_us"), "50000");
    assert_eq!(read("memory", "memory.limit_in_bytes"), "67108864");
    assert_eq!(read("pids", "pids.max"), "100");

    let mut workload = Workload::spawn();
    workload.start_in(&procs);
    let stats = v1.stats(&container).unwrap();
    assert!(
        stats.cpus_user_time_secs + stats.cpus_system_time_secs > 0.0,
        "{stats:?}"
    );
    assert!(stats.mem_total_bytes > 0, "{stats:?}");
    assert!(
        stats.mem_max_bytes.unwrap_or(0) >= stats.mem_total_bytes,
        "{stats:?}"
    );
    assert_eq!(stats.mem_limit_bytes, Some(64 << 20));
    assert!(stats.cpus_nr_periods > 0, "{stats:?}");
    assert!(stats.pids_current.unwrap_or(0) >= 2, "{stats:?}");
    v1.destroy(&container).unwrap();
    assert!(workload.child.0.wait().unwrap().signal() == Some(libc::SIGKILL));

    check_kill(&v1, &container, &Controllers::default());
}

fn check_v2(test: &str, tune: impl FnOnce(V2) -> V2) {
    let _serial = serialize();
    let Ok(unified) = v2_unified_dir() else {
        return;
    };
    let _roots = RootGuard(vec![unified.join(CGROUPS_ROOT)]);
    let v2 = tune(V2::new(&unified, CGROUPS_ROOT));
    let container = unique_name(test);
    let _cleanup = CgroupGuard {
        cgroups: &v2,
        container: container.clone(),
    };
    // This host's cgroup2 hierarchy may delegate no controller at all, so the test asks
    // for none: the unified hierarchy still tracks and kills the processes.
    let none = Controllers::default();
    let procs = v2.create(&container, &none).unwrap();
    assert_eq!(
        procs,
        [unified
            .join(CGROUPS_ROOT)
            .join(&container)
            .join("cgroup.procs")]
    );
    let mut workload = Workload::spawn();
    workload.start_in(&procs);
    // cpu.stat has the usage keys even without the cpu controller.
    let stats = v2.stats(&container).unwrap();
    assert!(
        stats.cpus_user_time_secs + stats.cpus_system_time_secs > 0.0,
        "{stats:?}"
    );
    v2.destroy(&container).unwrap();
    assert!(workload.child.0.wait().unwrap().signal() == Some(libc::SIGKILL));

    check_kill(&v2, &container, &none);
}

#[test]
fn v2_tracks_and_kills_with_cgroup_kill_on_the_real_hierarchy() {
    check_v2("v2-kill", |v2| v2);
}

#[test]
fn v2_kills_through_the_freezer_on_the_real_hierarchy() {
    check_v2("v2-freeze", V2::without_kill_file);
}
