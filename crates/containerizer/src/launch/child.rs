//! What the task's process does between the fork and the exec: new session, mount
//! namespace and mounts, stdio, working directory, user, environment, exec.
//!
//! Everything here runs in the child of the single-threaded launcher, so it may allocate;
//! still, every C string is prepared before the fork by [`ChildPlan::new`], which keeps
//! the child short and leaves it nothing to validate.

use std::ffi::{CStr, CString};
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::os::raw::c_char;

use super::launcher::path_cstring;
use super::{LaunchConfig, EXIT_NOT_STARTED};
use crate::ContainerError;

extern "C" {
    /// The C library's environment, which execvp both searches for `PATH` and hands to the
    /// new program. Pointing it at the task's environment makes both exactly `env`.
    static mut environ: *const *const c_char;
}

/// The mounts made in the task's new mount namespace.
pub(super) struct MountPlan {
    /// Mount a fresh proc on /proc, so the pid namespace's /proc shows its own processes.
    pub remount_proc: bool,
    /// Bind-mount the first path (the working directory) onto the second.
    pub sandbox: Option<(CString, CString)>,
}

/// The user the task runs as, looked up before the fork.
pub(super) enum UserPlan {
    Found {
        name: CString,
        uid: libc::uid_t,
        gid: libc::gid_t,
    },
    /// No such user: the child reports it in the task's stderr file and exits.
    Missing(String),
}

/// Everything the child needs, in the form the system calls take.
pub(super) struct ChildPlan {
    /// Owns the strings `argv_ptrs` points to; only read through those pointers.
    _argv: Vec<CString>,
    /// Pointers into `_argv`'s heap buffers, null-terminated. They stay valid because the
    /// plan is never mutated and owns `_argv`; moving a CString does not move its bytes.
    argv_ptrs: Vec<*const c_char>,
    program: CString,
    /// Owns the `NAME=value` strings `envp_ptrs` points to.
    _envp: Vec<CString>,
    /// Pointers into `_envp`, null-terminated, kept valid the same way as `argv_ptrs`.
    envp_ptrs: Vec<*const c_char>,
    working_dir: CString,
    stdin: RawFd,
    stdout: RawFd,
    stderr: RawFd,
    mounts: Option<MountPlan>,
    user: Option<UserPlan>,
    /// Run this in place of the exec (see [`LaunchConfig::builtin`]).
    builtin: Option<fn() -> i32>,
}

impl ChildPlan {
    /// The files must stay open until the fork; the plan only borrows their descriptors.
    pub(super) fn new(
        config: &LaunchConfig,
        stdin: &File,
        stdout: &File,
        stderr: &File,
        mounts: Option<MountPlan>,
        user: Option<UserPlan>,
        builtin: Option<fn() -> i32>,
    ) -> Result<ChildPlan, ContainerError> {
        let argv = config
            .argv
            .iter()
            .enumerate()
            .map(|(i, arg)| cstring(&format!("argv[{i}]"), arg.clone()))
            .collect::<Result<Vec<_>, _>>()?;
        let program = match &config.program {
            Some(program) => cstring("program", program.clone())?,
            None => argv
                .first()
                .cloned()
                .ok_or_else(|| ContainerError::invalid("argv", "must not be empty"))?,
        };
        let envp = config
            .env
            .iter()
            .enumerate()
            .map(|(i, (name, value))| cstring(&format!("env[{i}]"), format!("{name}={value}")))
            .collect::<Result<Vec<_>, _>>()?;
        let argv_ptrs = null_terminated(&argv);
        let envp_ptrs = null_terminated(&envp);
        Ok(ChildPlan {
            _argv: argv,
            argv_ptrs,
            program,
            _envp: envp,
            envp_ptrs,
            working_dir: path_cstring("working_dir", &config.working_dir)?,
            stdin: stdin.as_raw_fd(),
            stdout: stdout.as_raw_fd(),
            stderr: stderr.as_raw_fd(),
            mounts,
            user,
            builtin,
        })
    }
}

fn cstring(field: &str, text: String) -> Result<CString, ContainerError> {
    CString::new(text).map_err(|_| ContainerError::invalid(field, "must not contain a NUL byte"))
}

fn null_terminated(strings: &[CString]) -> Vec<*const c_char> {
    strings
        .iter()
        .map(|s| s.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect()
}

/// The child's whole life: set up and exec, or say why not in the task's stderr file and
/// exit with [`EXIT_NOT_STARTED`]. `_exit` rather than `exit`, so nothing of the launcher's
/// (atexit handlers, buffered output) runs twice.
pub(super) fn run(plan: &ChildPlan) -> ! {
    let Err(reason) = setup_and_exec(plan);
    let line = format!("mantle-launcher: {reason}\n");
    write_all(plan.stderr, line.as_bytes());
    // SAFETY: _exit ends this process immediately; it takes no pointers.
    unsafe { libc::_exit(EXIT_NOT_STARTED) }
}

/// Returns only on failure, with the reason.
fn setup_and_exec(plan: &ChildPlan) -> Result<std::convert::Infallible, String> {
    reset_signals();
    // SAFETY: setsid takes no arguments. The child is not a process group leader (its pid
    // is new), so it succeeds; a new session detaches the task from the agent's terminal.
    check(unsafe { libc::setsid() }, "setsid")?;

    if let Some(mounts) = &plan.mounts {
        enter_mount_namespace(mounts)?;
    }

    for (from, to, name) in [
        (plan.stdin, 0, "stdin"),
        (plan.stdout, 1, "stdout"),
        (plan.stderr, 2, "stderr"),
    ] {
        // SAFETY: dup2 takes no pointers; `from` is open (the launcher's File is alive).
        check(unsafe { libc::dup2(from, to) }, name)?;
    }
    // The working directory is entered before giving up root, so a root-owned sandbox
    // path the task's user cannot traverse still works, as in Mesos.
    // SAFETY: `working_dir` is a NUL-terminated string owned by the plan.
    if unsafe { libc::chdir(plan.working_dir.as_ptr()) } != 0 {
        return Err(format!(
            "chdir {}: {}",
            plan.working_dir.to_string_lossy(),
            io::Error::last_os_error()
        ));
    }

    match &plan.user {
        None => {}
        Some(UserPlan::Missing(name)) => return Err(format!("user '{name}' does not exist")),
        Some(UserPlan::Found { name, uid, gid }) => {
            let user = name.to_string_lossy();
            // SAFETY: `name` is a NUL-terminated string owned by the plan; the other calls
            // take plain integers. The order matters: groups and gid need root, so uid last.
            unsafe {
                check(libc::initgroups(name.as_ptr(), *gid), "initgroups")
                    .map_err(|e| format!("user '{user}': {e}"))?;
                check(libc::setgid(*gid), "setgid").map_err(|e| format!("user '{user}': {e}"))?;
                check(libc::setuid(*uid), "setuid").map_err(|e| format!("user '{user}': {e}"))?;
            }
        }
    }

    // Descriptors the agent leaked into the launcher without O_CLOEXEC must not reach the
    // task. Marking rather than closing keeps the plan's descriptors usable for the error
    // message below; an old kernel without close_range just skips this.
    // SAFETY: close_range takes no pointers and only sets flags on descriptors.
    unsafe {
        libc::syscall(
            libc::SYS_close_range,
            3u32,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };

    if let Some(main) = plan.builtin {
        run_builtin(plan, main);
    }

    // SAFETY: the child is single-threaded, so nothing else reads `environ` while it is
    // replaced; `envp_ptrs` is a null-terminated array of NUL-terminated strings owned by
    // the plan, which outlives the call. execvp only returns on failure.
    unsafe {
        environ = plan.envp_ptrs.as_ptr();
        libc::execvp(plan.program.as_ptr(), plan.argv_ptrs.as_ptr());
    }
    Err(format!(
        "cannot run '{}': {}",
        plan.program.to_string_lossy(),
        io::Error::last_os_error()
    ))
}

/// Runs a built-in program in this process as an exec of it would have started: the
/// task's environment only, no descriptor of the launcher's beyond stdio, SIGPIPE
/// ignored as the Rust runtime does before `main`. Never returns.
fn run_builtin(plan: &ChildPlan, main: fn() -> i32) -> ! {
    // SAFETY: as for the exec below: the child is single-threaded and the plan, which
    // owns the strings, lives until `_exit`. close_range, prctl and signal take no
    // pointers that outlive the calls; the name is a NUL-terminated literal.
    let code = unsafe {
        environ = plan.envp_ptrs.as_ptr();
        libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32);
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
        // What `ps` and `top` show, so the executor is not taken for its launcher.
        libc::prctl(libc::PR_SET_NAME, c"mantle-executor".as_ptr());
        main()
    };
    // SAFETY: _exit takes no pointers; nothing of the launcher's may run again here.
    unsafe { libc::_exit(code) }
}

/// Puts every signal back to its default disposition and unblocks them all. The launcher
/// blocks the forwarded signals, its Rust runtime ignores SIGPIPE, and whoever started it
/// may have ignored others; ignored dispositions and the mask survive exec, and a task
/// that ignores SIGPIPE without asking for it misbehaves in pipelines.
fn reset_signals() {
    // The raw system call rather than signal(3), because glibc refuses to touch the two
    // signals it reserves (32 and 33), and those can arrive ignored too. An all-zero
    // kernel sigaction is SIG_DFL with no flags and an empty mask on every architecture,
    // whatever the field order; 32 bytes cover the largest layout.
    let default_action = [0u64; 4];
    // Linux numbers signals 1 to 64.
    for sig in 1..=64 {
        // SAFETY: `default_action` is a readable buffer at least as large as the kernel's
        // struct sigaction; the old-action pointer may be null; 8 is the kernel's sigset
        // size. Failures (SIGKILL, SIGSTOP) change nothing.
        unsafe {
            libc::syscall(
                libc::SYS_rt_sigaction,
                sig,
                default_action.as_ptr(),
                std::ptr::null_mut::<libc::c_void>(),
                8usize,
            )
        };
    }
    // SAFETY: sigset_t is plain data and sigemptyset initialises it; the old-set pointer
    // may be null.
    unsafe {
        let mut empty: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut empty);
        libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
    }
}

/// A new mount namespace whose mounts do not propagate back to the host, a /proc for the
/// new pid namespace, and the sandbox bind mount.
fn enter_mount_namespace(mounts: &MountPlan) -> Result<(), String> {
    // SAFETY: unshare takes no pointers.
    check(
        unsafe { libc::unshare(libc::CLONE_NEWNS) },
        "unshare mount namespace",
    )?;
    // Without this, on a host whose / is shared (systemd's default) the mounts below
    // would appear on the host too.
    mount(None, c"/", None, libc::MS_REC | libc::MS_PRIVATE)
        .map_err(|e| format!("make / private: {e}"))?;
    if mounts.remount_proc {
        mount(
            Some(c"proc"),
            c"/proc",
            Some(c"proc"),
            libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
        )
        .map_err(|e| format!("mount proc on /proc: {e}"))?;
    }
    if let Some((source, target)) = &mounts.sandbox {
        mount(Some(source), target, None, libc::MS_BIND | libc::MS_REC).map_err(|e| {
            format!(
                "bind mount {} on {}: {e}",
                source.to_string_lossy(),
                target.to_string_lossy()
            )
        })?;
    }
    Ok(())
}

fn mount(
    source: Option<&CStr>,
    target: &CStr,
    fstype: Option<&CStr>,
    flags: libc::c_ulong,
) -> io::Result<()> {
    let ptr = |s: Option<&CStr>| s.map_or(std::ptr::null(), CStr::as_ptr);
    // SAFETY: every pointer is null or a NUL-terminated string that outlives the call;
    // no filesystem here takes mount data.
    let rc = unsafe {
        libc::mount(
            ptr(source),
            target.as_ptr(),
            ptr(fstype),
            flags,
            std::ptr::null(),
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn check(rc: libc::c_int, what: &str) -> Result<(), String> {
    if rc < 0 {
        return Err(format!("{what}: {}", io::Error::last_os_error()));
    }
    Ok(())
}

fn write_all(fd: RawFd, mut bytes: &[u8]) {
    while !bytes.is_empty() {
        // SAFETY: `bytes` is a live slice; write reads at most `bytes.len()` bytes from it.
        let n = unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) };
        if n <= 0 {
            if n < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return;
        }
        bytes = &bytes[n as usize..];
    }
}
