//! The container launcher: the [`LaunchConfig`] the agent writes, the `mantle-launcher`
//! program that reads it, joins the container's cgroups, enters its namespaces and execs
//! the task, and the checkpoint files it leaves for the agent. It plays the part of the
//! Mesos `Launcher` (`fork`, and what `recover` reads back).
//!
//! The agent runs on tokio and must never fork itself (DESIGN invariant 6): forking a
//! multi-threaded process leaves the child with locks held by threads that no longer
//! exist. So the agent writes the config to `<rundir>/launch.json` with [`prepare`] and
//! sends its path to `mantle-launcher --serve` ([`serve`]), a single-threaded process it
//! started once, which forks a launcher for it (`mantle-launcher CONFIG`, through
//! [`command`], runs the same launcher without the server). The launcher is single-
//! threaded too; it stays alive as the parent of the task, so the task's exit status is
//! recorded even while the agent restarts, and tasks outlive the agent and the server.
//!
//! Files in the run directory:
//!
//! | file | written by | contents |
//! |---|---|---|
//! | `launch.json` | the agent, through [`prepare`] | the [`LaunchConfig`] as JSON |
//! | `pid` | the launcher, right after the fork | the task's pid in the launcher's pid namespace |
//! | `status` | the launcher, after the task exited | the raw wait status, decimal, newline |
//!
//! A run directory with `launch.json` but no `pid` means the launcher failed before it
//! started the task (it exits with [`EXIT_LAUNCH_FAILED`] and says why on its own stderr
//! and, once it has opened it, in the task's stderr file). `pid` without `status` means the
//! task is running, or the launcher was killed. A `status` of `127 << 8` with a
//! `mantle-launcher:` line in the task's stderr file means the task's process was created
//! but could not exec the program (see [`EXIT_NOT_STARTED`]).

mod child;
mod launcher;
mod server;

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use crate::ContainerError;

pub use launcher::{run_launcher, run_launcher_with, Builtin};
pub use server::{serve, start_time, stat_start_time};

/// The config file's name inside the run directory.
pub const CONFIG_FILE: &str = "launch.json";
/// The checkpoint holding the task's pid.
pub const PID_FILE: &str = "pid";
/// The checkpoint holding the task's raw wait status.
pub const STATUS_FILE: &str = "status";

/// The launcher's exit code when it could not start the task at all (bad config, a
/// cgroup it cannot join, a failed fork). No `pid` file is written in that case, which is
/// how the agent tells this apart from a task that itself exited with 125.
pub const EXIT_LAUNCH_FAILED: i32 = 125;

/// The task's exit code when its process was created but never ran the program: an
/// unknown user, a failed mount or a failed exec. Like a shell's "command not found", so
/// operators recognise it; the reason is written to the task's stderr file.
pub const EXIT_NOT_STARTED: i32 = 127;

/// Everything the launcher needs to start one task. The agent fills it in; the launcher
/// trusts nothing in it and validates it again (see [`LaunchConfig::validate`]).
///
/// Unknown fields are rejected: a misspelled `pid_namespace` must fail loudly rather than
/// start a container without the isolation the agent asked for.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LaunchConfig {
    /// The task's argument vector; `argv[0]` is also the program unless `program` is set.
    pub argv: Vec<String>,
    /// The program to execute, looked up on the task's `PATH` when it has no slash.
    pub program: Option<String>,
    /// The task's whole environment; nothing of the agent's or the launcher's leaks in.
    pub env: Vec<(String, String)>,
    /// The task's current directory (the sandbox), an absolute path.
    pub working_dir: PathBuf,
    /// The file the task's stdout is appended to, created if missing.
    pub stdout: PathBuf,
    /// The file the task's stderr (and the launcher's own complaints) are appended to.
    pub stderr: PathBuf,
    /// `cgroup.procs` files the launcher writes its own pid into before it forks, so the
    /// task and every descendant start inside the container's cgroups.
    pub cgroup_procs: Vec<PathBuf>,
    /// Start the task as pid 1 of a new pid namespace; its descendants die with it.
    pub pid_namespace: bool,
    /// Give the task its own mount namespace. Implied by `pid_namespace` (a new `/proc`
    /// must be mounted) and by `sandbox_mount` (the bind mount must not leak to the host).
    pub mount_namespace: bool,
    /// Where to bind-mount `working_dir` inside the container (the Mesos
    /// `/mnt/mesos/sandbox` mapping); created if missing.
    pub sandbox_mount: Option<PathBuf>,
    /// The user to run the task as; `None` keeps the launcher's user.
    pub user: Option<String>,
    /// The name of a program built into the launcher that is the same code `argv` names
    /// (`executor`: `mantle executor`). A launcher that has it runs it in the forked
    /// task process, after the same set-up, instead of executing `program`: that saves
    /// loading a second large binary for every container. A launcher without it executes
    /// `argv` as usual, so the field never changes what runs, only how it is loaded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub builtin: Option<String>,
}

impl LaunchConfig {
    /// Checks everything the launcher would otherwise only find out after the fork. The
    /// error names the field, with its index for lists (`env[2]: ...`).
    pub fn validate(&self) -> Result<(), ContainerError> {
        if self.argv.is_empty() {
            return Err(ContainerError::invalid("argv", "must not be empty"));
        }
        for (i, arg) in self.argv.iter().enumerate() {
            check_no_nul(&format!("argv[{i}]"), arg.as_bytes())?;
        }
        if let Some(program) = &self.program {
            if program.is_empty() {
                return Err(ContainerError::invalid("program", "must not be empty"));
            }
            check_no_nul("program", program.as_bytes())?;
        }
        let mut names: Vec<&str> = Vec::with_capacity(self.env.len());
        for (i, (name, value)) in self.env.iter().enumerate() {
            let field = format!("env[{i}]");
            if name.is_empty() {
                return Err(ContainerError::invalid(field, "name must not be empty"));
            }
            if name.contains('=') {
                return Err(ContainerError::invalid(
                    field,
                    format!("name '{name}' must not contain '='"),
                ));
            }
            check_no_nul(&field, name.as_bytes())?;
            check_no_nul(&field, value.as_bytes())?;
            if names.contains(&name.as_str()) {
                return Err(ContainerError::invalid(
                    field,
                    format!("variable '{name}' is set twice"),
                ));
            }
            names.push(name);
        }
        check_absolute("working_dir", &self.working_dir)?;
        check_absolute("stdout", &self.stdout)?;
        check_absolute("stderr", &self.stderr)?;
        for (i, path) in self.cgroup_procs.iter().enumerate() {
            check_absolute(&format!("cgroup_procs[{i}]"), path)?;
        }
        if let Some(target) = &self.sandbox_mount {
            check_absolute("sandbox_mount", target)?;
            if target == Path::new("/") {
                return Err(ContainerError::invalid("sandbox_mount", "must not be /"));
            }
        }
        if let Some(user) = &self.user {
            if user.is_empty() {
                return Err(ContainerError::invalid("user", "must not be empty"));
            }
            check_no_nul("user", user.as_bytes())?;
        }
        if let Some(builtin) = &self.builtin {
            if builtin.is_empty() {
                return Err(ContainerError::invalid("builtin", "must not be empty"));
            }
        }
        Ok(())
    }

    /// Whether the task gets its own mount namespace: asked for, or needed by the pid
    /// namespace's `/proc` or by the sandbox bind mount.
    pub fn uses_mount_namespace(&self) -> bool {
        self.mount_namespace || self.pid_namespace || self.sandbox_mount.is_some()
    }
}

fn check_no_nul(field: &str, bytes: &[u8]) -> Result<(), ContainerError> {
    if bytes.contains(&0) {
        return Err(ContainerError::invalid(
            field,
            "must not contain a NUL byte",
        ));
    }
    Ok(())
}

/// Paths must be absolute because the launcher's current directory is whatever the
/// agent's was, which is nothing the config should depend on.
fn check_absolute(field: &str, path: &Path) -> Result<(), ContainerError> {
    if !path.is_absolute() {
        return Err(ContainerError::invalid(
            field,
            format!("must be an absolute path, found '{}'", path.display()),
        ));
    }
    check_no_nul(field, path.as_os_str().as_bytes())
}

/// Writes the config atomically into `rundir` (created if missing), removes the `pid` and
/// `status` of an earlier launch in the same directory, and returns the config's path,
/// the one argument of `mantle-launcher` (or the line to send `mantle-launcher --serve`).
pub fn prepare(rundir: &Path, config: &LaunchConfig) -> Result<PathBuf, ContainerError> {
    config.validate()?;
    let json = serde_json::to_vec(config)
        .map_err(|err| ContainerError::invalid("launch config", err.to_string()))?;
    fs::create_dir_all(rundir)
        .map_err(|err| ContainerError::io("create run directory", rundir, err))?;
    for stale in [PID_FILE, STATUS_FILE] {
        let path = rundir.join(stale);
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(err) if err.kind() == ErrorKind::NotFound => {}
            Err(err) => return Err(ContainerError::io("remove stale checkpoint", path, err)),
        }
    }
    let config_path = rundir.join(CONFIG_FILE);
    if config_path.as_os_str().as_bytes().contains(&b'\n') {
        return Err(ContainerError::invalid(
            "run directory",
            "must not contain a newline",
        ));
    }
    write_replace(&config_path, &json)?;
    Ok(config_path)
}

/// [`prepare`], and the command that runs `launcher` on the config, with stdin, stdout
/// and stderr null, in a process group of its own (so a Ctrl-C or a group-wide signal
/// meant for whoever started it does not reach the container).
pub fn command(
    launcher: &Path,
    rundir: &Path,
    config: &LaunchConfig,
) -> Result<Command, ContainerError> {
    let config_path = prepare(rundir, config)?;
    let mut cmd = Command::new(launcher);
    cmd.arg(&config_path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0);
    Ok(cmd)
}

/// Reads the task's pid from `<rundir>/pid`; `None` if the launcher has not written it
/// (not started yet, or failed before the fork).
pub fn read_pid(rundir: &Path) -> Result<Option<i32>, ContainerError> {
    let path = rundir.join(PID_FILE);
    let pid = read_number(&path)?;
    if let Some(pid) = pid {
        if pid <= 0 {
            return Err(ContainerError::invalid(
                path.display().to_string(),
                format!("not a pid: {pid}"),
            ));
        }
    }
    Ok(pid)
}

/// Reads the task's raw wait status from `<rundir>/status`; `None` while the task runs.
/// [`exit_code`] turns it into a shell-style exit code.
pub fn read_status(rundir: &Path) -> Result<Option<i32>, ContainerError> {
    read_number(&rundir.join(STATUS_FILE))
}

fn read_number(path: &Path) -> Result<Option<i32>, ContainerError> {
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(err) if err.kind() == ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(ContainerError::io("read checkpoint", path, err)),
    };
    let trimmed = text.trim();
    trimmed.parse::<i32>().map(Some).map_err(|_| {
        let shown: String = trimmed.chars().take(40).collect();
        ContainerError::invalid(
            path.display().to_string(),
            format!("expected a decimal integer, found '{shown}'"),
        )
    })
}

/// The exit code a shell reports for a raw wait status: the exit status, or 128 plus the
/// number of the signal that killed the task.
pub fn exit_code(status: i32) -> i32 {
    if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else if libc::WIFSIGNALED(status) {
        128 + libc::WTERMSIG(status)
    } else {
        // Stopped or continued statuses are never recorded (the launcher waits without
        // WUNTRACED), so this only guards against a hand-edited file.
        EXIT_LAUNCH_FAILED
    }
}

/// Replaces `path` with `contents` so that a reader sees either the old file or the new
/// one, never a torn one: write a temporary file in the same directory, fsync it, rename
/// it over `path`, fsync the directory (DESIGN invariant 5).
pub fn write_atomic(path: &Path, contents: &[u8]) -> Result<(), ContainerError> {
    replace(path, contents, true)
}

/// Like [`write_atomic`] without the fsyncs, for the launcher's own records (the config,
/// the pid, the exit status). A process crash loses nothing the page cache holds, and a
/// machine crash ends every container these files describe, so the syncs would buy no
/// safety and cost about a millisecond per launch.
pub fn write_replace(path: &Path, contents: &[u8]) -> Result<(), ContainerError> {
    replace(path, contents, false)
}

fn replace(path: &Path, contents: &[u8], sync: bool) -> Result<(), ContainerError> {
    // Two writers in one process (the agent checkpointing two tasks) must not share a
    // temporary name, hence the counter next to the pid.
    static COUNTER: AtomicU64 = AtomicU64::new(0);

    let name = path.file_name().ok_or_else(|| {
        ContainerError::invalid(path.display().to_string(), "path has no file name")
    })?;
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(
        ".{}.{}.tmp",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let tmp = dir.join(tmp_name);

    let written = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .map_err(|err| ContainerError::io("create temporary file", &tmp, err))?;
        file.write_all(contents)
            .map_err(|err| ContainerError::io("write temporary file", &tmp, err))?;
        if sync {
            file.sync_all()
                .map_err(|err| ContainerError::io("sync temporary file", &tmp, err))?;
        }
        fs::rename(&tmp, path).map_err(|err| ContainerError::io("rename into", path, err))
    })();
    if let Err(err) = written {
        // Best effort: the error that matters is the one already in hand.
        let _ = fs::remove_file(&tmp);
        return Err(err);
    }
    if !sync {
        return Ok(());
    }
    File::open(dir)
        .and_then(|dir| dir.sync_all())
        .map_err(|err| ContainerError::io("sync directory", dir, err))
}

#[cfg(test)]
mod tests;
