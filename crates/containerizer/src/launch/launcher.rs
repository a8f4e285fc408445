//! The `mantle-launcher` program's body: read and validate the config, prepare everything
//! that can fail while errors still have somewhere to go, join the cgroups, fork the task,
//! checkpoint its pid, forward signals to it and record its exit status.

use std::ffi::CString;
use std::fmt::Display;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use super::child::{self, ChildPlan, MountPlan, UserPlan};
use super::{exit_code, write_replace, LaunchConfig, EXIT_LAUNCH_FAILED, PID_FILE, STATUS_FILE};
use crate::ContainerError;

/// The signals the launcher passes on to the task. They are the ones an operator, a
/// terminal or the agent sends to ask a process to stop or reload; without forwarding
/// they would kill the launcher and leave the task running unwatched.
const FORWARDED: [libc::c_int; 6] = [
    libc::SIGTERM,
    libc::SIGINT,
    libc::SIGHUP,
    libc::SIGQUIT,
    libc::SIGUSR1,
    libc::SIGUSR2,
];

/// A program built into the launcher binary: its name (what [`LaunchConfig::builtin`]
/// says) and its `main`, which runs in the forked task process in place of an exec and
/// returns the process's exit code.
pub type Builtin = (&'static str, fn() -> i32);

/// Runs the launcher on the config at `config_path` and returns the exit code for `main`:
/// the task's exit code (128 plus the signal number if a signal killed it), or
/// [`EXIT_LAUNCH_FAILED`] if the task could not be started.
///
/// The run directory is the directory holding the config; `pid` and `status` go there.
pub fn run_launcher(config_path: &Path) -> i32 {
    run_launcher_with(config_path, &[])
}

/// [`run_launcher`] with programs built into this binary, which configs may ask to run
/// in-process (see [`LaunchConfig::builtin`]).
pub fn run_launcher_with(config_path: &Path, builtins: &[Builtin]) -> i32 {
    let mut reporter = Reporter { task_stderr: None };
    match launch(config_path, builtins, &mut reporter) {
        Ok(code) => code,
        Err(err) => {
            reporter.report(&err);
            EXIT_LAUNCH_FAILED
        }
    }
}

/// Where the launcher's own complaints go: its stderr (which the agent may discard) and,
/// once it is open, the task's stderr file, where an operator looking at a failed task
/// will look first.
struct Reporter {
    task_stderr: Option<File>,
}

impl Reporter {
    fn report(&mut self, message: &dyn Display) {
        let line = format!("mantle-launcher: {message}\n");
        // Nothing sensible is left to do if reporting a failure fails.
        let _ = io::stderr().write_all(line.as_bytes());
        if let Some(file) = &mut self.task_stderr {
            let _ = file.write_all(line.as_bytes());
        }
    }
}

fn launch(
    config_path: &Path,
    builtins: &[Builtin],
    reporter: &mut Reporter,
) -> Result<i32, ContainerError> {
    let config = load_config(config_path)?;
    let builtin = config.builtin.as_deref().and_then(|wanted| {
        builtins
            .iter()
            .find(|(name, _)| *name == wanted)
            .map(|(_, main)| *main)
    });
    let rundir = match config_path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };

    let stderr = open_append(&config.stderr)?;
    reporter.task_stderr = stderr.try_clone().ok();
    let stdout = open_append(&config.stdout)?;
    let stdin = File::open("/dev/null")
        .map_err(|err| ContainerError::io("open stdin", "/dev/null", err))?;

    let user = match &config.user {
        Some(name) => Some(lookup_user(name)?),
        None => None,
    };
    if let Some(target) = &config.sandbox_mount {
        fs::create_dir_all(target)
            .map_err(|err| ContainerError::io("create sandbox mount point", target, err))?;
    }
    let plan = ChildPlan::new(
        &config,
        &stdin,
        &stdout,
        &stderr,
        mount_plan(&config)?,
        user,
        builtin,
    )?;

    join_cgroups(&config)?;
    let mask = block_signals()?;
    if config.pid_namespace {
        // SAFETY: unshare takes no pointers. CLONE_NEWPID only changes the namespace the
        // next fork's child is born into; the launcher itself stays where it is.
        if unsafe { libc::unshare(libc::CLONE_NEWPID) } != 0 {
            return Err(os_error("unshare pid namespace", "/proc/self/ns/pid"));
        }
    }

    // SAFETY: the launcher is single-threaded (main never spawns a thread), so the child
    // is a complete copy of it and may run any code, including allocation, until it
    // execs. The child never returns from `child::run`.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(os_error("fork", config_path));
    }
    if pid == 0 {
        child::run(&plan);
    }

    if let Err(err) = write_replace(&rundir.join(PID_FILE), format!("{pid}\n").as_bytes()) {
        // Without its pid on disk the agent could not find the task again after a
        // restart, so the task must not run unrecorded.
        reporter.report(&err);
        // SAFETY: kill takes no pointers; `pid` is our own unreaped child.
        unsafe { libc::kill(pid, libc::SIGKILL) };
        let _ = supervise(pid, &mask, config.pid_namespace);
        return Ok(EXIT_LAUNCH_FAILED);
    }

    let status = supervise(pid, &mask, config.pid_namespace)?;
    if let Err(err) = write_replace(&rundir.join(STATUS_FILE), format!("{status}\n").as_bytes()) {
        // The agent, if it is our parent, still learns the exit code from ours.
        reporter.report(&err);
    }
    Ok(exit_code(status))
}

fn load_config(path: &Path) -> Result<LaunchConfig, ContainerError> {
    let bytes =
        fs::read(path).map_err(|err| ContainerError::io("read launch config", path, err))?;
    let config: LaunchConfig = serde_json::from_slice(&bytes).map_err(|err| {
        ContainerError::invalid(path.display().to_string(), format!("invalid json: {err}"))
    })?;
    config
        .validate()
        .map_err(|err| ContainerError::invalid(path.display().to_string(), err.to_string()))?;
    Ok(config)
}

fn open_append(path: &Path) -> Result<File, ContainerError> {
    // std opens with O_CLOEXEC; the child dup2s these onto 1 and 2, which clears the flag
    // on the copies only. O_NOFOLLOW because the launcher runs as root and the sandbox
    // belongs to the task: a task that replaced its stdout with a symlink must not get
    // the next launch to append to whatever the link points at.
    OpenOptions::new()
        .append(true)
        .create(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(|err| ContainerError::io("open output file", path, err))
}

fn mount_plan(config: &LaunchConfig) -> Result<Option<MountPlan>, ContainerError> {
    if !config.uses_mount_namespace() {
        return Ok(None);
    }
    let sandbox = match &config.sandbox_mount {
        Some(target) => Some((
            path_cstring("working_dir", &config.working_dir)?,
            path_cstring("sandbox_mount", target)?,
        )),
        None => None,
    };
    Ok(Some(MountPlan {
        remount_proc: config.pid_namespace,
        sandbox,
    }))
}

pub(super) fn path_cstring(field: &str, path: &Path) -> Result<CString, ContainerError> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| ContainerError::invalid(field, "must not contain a NUL byte"))
}

/// Looks the user up before the fork, so the child has nothing left to do but switch.
/// A missing user is not an error here: the task's process reports it and exits with
/// [`super::EXIT_NOT_STARTED`], like any other reason the program could not run.
fn lookup_user(name: &str) -> Result<UserPlan, ContainerError> {
    let c_name = CString::new(name)
        .map_err(|_| ContainerError::invalid("user", "must not contain a NUL byte"))?;
    let mut buf = vec![0u8; 1024];
    loop {
        // SAFETY: passwd is a plain C struct of integers and pointers; all zeroes is a
        // valid value and getpwnam_r overwrites it.
        let mut entry: libc::passwd = unsafe { std::mem::zeroed() };
        let mut found: *mut libc::passwd = std::ptr::null_mut();
        // SAFETY: every pointer is valid for the call: the name is NUL-terminated, `entry`
        // and `found` are live locals, and `buf` is writable for `buf.len()` bytes. The
        // strings getpwnam_r stores in `entry` point into `buf`; only the integers are
        // read below.
        let rc = unsafe {
            libc::getpwnam_r(
                c_name.as_ptr(),
                &mut entry,
                buf.as_mut_ptr().cast(),
                buf.len(),
                &mut found,
            )
        };
        if rc == libc::ERANGE && buf.len() < (1 << 20) {
            let doubled = buf.len() * 2;
            buf.resize(doubled, 0);
            continue;
        }
        // getpwnam_r(3) lists these as other ways of saying "no such user".
        let not_found = matches!(rc, libc::ENOENT | libc::ESRCH | libc::EBADF | libc::EPERM);
        if rc != 0 && !not_found {
            return Err(ContainerError::invalid(
                "user",
                format!(
                    "cannot look up '{name}': {}",
                    io::Error::from_raw_os_error(rc)
                ),
            ));
        }
        if rc != 0 || found.is_null() {
            return Ok(UserPlan::Missing(name.to_string()));
        }
        return Ok(UserPlan::Found {
            name: c_name,
            uid: entry.pw_uid,
            gid: entry.pw_gid,
        });
    }
}

fn join_cgroups(config: &LaunchConfig) -> Result<(), ContainerError> {
    let pid = format!("{}\n", std::process::id());
    for path in &config.cgroup_procs {
        // No create: a missing cgroup.procs means the cgroup was never made, and creating
        // a plain file in its place would silently leave the task unconfined. One write
        // call, because cgroupfs takes one pid per write.
        OpenOptions::new()
            .write(true)
            .open(path)
            .and_then(|mut file| file.write_all(pid.as_bytes()))
            .map_err(|err| ContainerError::io("write launcher pid into", path, err))?;
    }
    Ok(())
}

/// Blocks the forwarded signals and SIGCHLD, which the launcher then takes one at a time
/// with sigwaitinfo. Blocking them before the fork means a signal that arrives before the
/// launcher knows the child's pid waits instead of being lost, and taking them
/// synchronously keeps the forwarding logic out of a signal handler.
fn block_signals() -> Result<libc::sigset_t, ContainerError> {
    // SAFETY: sigset_t is plain data; sigemptyset initialises it before any other use.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a live, writable sigset_t for each call.
    unsafe {
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGCHLD);
        for sig in FORWARDED {
            libc::sigaddset(&mut set, sig);
        }
    }
    // A SIGCHLD ignored by whoever started us would make the kernel reap the task behind
    // our back and waitpid fail, so restore the default (which queues it while blocked).
    // SAFETY: SIG_DFL is a valid disposition for SIGCHLD; no handler code is involved.
    unsafe { libc::signal(libc::SIGCHLD, libc::SIG_DFL) };
    // SAFETY: `set` is initialised; a null old-set pointer is allowed.
    if unsafe { libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) } != 0 {
        return Err(os_error("block signals", "/proc/self/status"));
    }
    Ok(set)
}

/// Waits for the task to exit while forwarding the signals the launcher receives, and
/// returns the raw wait status.
fn supervise(
    child: libc::pid_t,
    set: &libc::sigset_t,
    pid_namespace: bool,
) -> Result<i32, ContainerError> {
    loop {
        // Reaping before every wait means a child that exited before we got here, or
        // whose SIGCHLD was merged with another, is never missed.
        if let Some(status) = try_reap(child)? {
            return Ok(status);
        }
        // SAFETY: `set` is an initialised sigset_t; a null siginfo pointer is allowed.
        let sig = unsafe { libc::sigwaitinfo(set, std::ptr::null_mut()) };
        if sig < 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(ContainerError::io(
                "wait for signals",
                "/proc/self/status",
                err,
            ));
        }
        if sig != libc::SIGCHLD {
            forward(child, sig, pid_namespace);
        }
    }
}

fn try_reap(child: libc::pid_t) -> Result<Option<i32>, ContainerError> {
    loop {
        let mut status = 0;
        // SAFETY: `status` is a live, writable int.
        let rc = unsafe { libc::waitpid(child, &mut status, libc::WNOHANG) };
        if rc == child {
            return Ok(Some(status));
        }
        if rc == 0 {
            return Ok(None);
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(ContainerError::io(
                "wait for task",
                format!("/proc/{child}"),
                err,
            ));
        }
    }
}

/// Passes `sig` on to the task.
///
/// The task is pid 1 of its pid namespace when `pid_namespace` is set, and the kernel
/// drops signals to a namespace's init that it has no handler for, SIGKILL aside. A plain
/// `sleep` would then ignore the SIGTERM that stops it anywhere else. So when the task
/// neither catches nor ignores the signal, whose default action is to terminate, the
/// launcher does what that default would have done and sends SIGKILL; the recorded status
/// then says signal 9. A task that handles the signal gets it as usual.
fn forward(child: libc::pid_t, sig: libc::c_int, pid_namespace: bool) {
    let sig = if pid_namespace && !has_disposition(child, sig) {
        libc::SIGKILL
    } else {
        sig
    };
    // SAFETY: kill takes no pointers; `child` is our own child, not reaped yet, so its pid
    // cannot have been reused. ESRCH (already exiting) needs no handling.
    unsafe { libc::kill(child, sig) };
}

/// Whether `pid` catches or ignores `sig`, from the SigCgt and SigIgn masks in
/// /proc/PID/status. If that cannot be read the task is on its way out; answering true
/// leaves it alone.
fn has_disposition(pid: libc::pid_t, sig: libc::c_int) -> bool {
    let Ok(status) = fs::read_to_string(format!("/proc/{pid}/status")) else {
        return true;
    };
    let bit = 1u64 << (sig - 1);
    status
        .lines()
        .filter_map(|line| {
            line.strip_prefix("SigCgt:")
                .or_else(|| line.strip_prefix("SigIgn:"))
        })
        .filter_map(|mask| u64::from_str_radix(mask.trim(), 16).ok())
        .any(|mask| mask & bit != 0)
}

fn os_error(what: &'static str, path: impl AsRef<Path>) -> ContainerError {
    ContainerError::io(what, path.as_ref(), io::Error::last_os_error())
}
