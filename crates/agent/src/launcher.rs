//! Starting and killing executor processes: the sandbox directory with its `stdout` and
//! `stderr` files and `latest` links (reference §7), and the process itself, started
//! with `std::process::Command` in its own process group so that no code of ours runs
//! between fork and exec (DESIGN invariant 6) and so that an executor killing its
//! process group (pymesos does `killpg(0, SIGKILL)`) cannot kill the agent.

use crate::core::LaunchSpec;
use crate::error::AgentError;
use crate::sandbox;
use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};

/// Creates the sandbox, its `stdout` and `stderr` files, and points `runs/latest` and
/// `slaves/latest` at this run. Returns the two files.
pub fn prepare_sandbox(work_dir: &Path, spec: &LaunchSpec) -> Result<(File, File), AgentError> {
    let directory = &spec.directory;
    std::fs::create_dir_all(directory)
        .map_err(|e| AgentError::io("cannot create sandbox", directory, e))?;
    let stdout_path = directory.join("stdout");
    let stderr_path = directory.join("stderr");
    let stdout =
        File::create(&stdout_path).map_err(|e| AgentError::io("cannot create", &stdout_path, e))?;
    let stderr =
        File::create(&stderr_path).map_err(|e| AgentError::io("cannot create", &stderr_path, e))?;
    let runs = sandbox::runs_dir(
        work_dir,
        &spec.agent_id,
        &spec.framework_id,
        &spec.executor_id,
    );
    link_latest(&runs, spec.container_id.as_str())?;
    link_latest(&sandbox::slaves_dir(work_dir), spec.agent_id.as_str())?;
    Ok((stdout, stderr))
}

/// Points `<dir>/latest` at `target` (relative), replacing any older link atomically.
fn link_latest(dir: &Path, target: &str) -> Result<(), AgentError> {
    // Launches run concurrently, so every attempt needs a temporary name of its own.
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let latest = dir.join("latest");
    if std::fs::read_link(&latest).is_ok_and(|current| current == Path::new(target)) {
        return Ok(());
    }
    let unique = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let temporary = dir.join(format!(".latest.{}.{unique}", std::process::id()));
    let _ = std::fs::remove_file(&temporary);
    std::os::unix::fs::symlink(target, &temporary)
        .map_err(|e| AgentError::io("cannot create link", &temporary, e))?;
    std::fs::rename(&temporary, &latest)
        .map_err(|e| AgentError::io("cannot replace link", &latest, e))
}

/// The command for an executor: `/bin/sh -c <value>` for shell commands, else `value`
/// with `arguments` as its argv (argv[0] included), in the sandbox, with the spec's
/// environment on top of the agent's, in a session (and so a process group) of its own.
pub fn command(spec: &LaunchSpec, stdout: File, stderr: File) -> Result<Command, AgentError> {
    let info = &spec.command;
    let Some(value) = info.value.as_deref().filter(|v| !v.is_empty()) else {
        return Err(AgentError::Spawn {
            program: String::new(),
            source: std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "the executor's command has no value",
            ),
        });
    };
    let mut command = if info.shell {
        let mut c = Command::new("/bin/sh");
        c.arg0("sh").arg("-c").arg(value);
        c
    } else {
        let mut c = Command::new(value);
        match info.arguments.split_first() {
            Some((argv0, rest)) => {
                c.arg0(argv0).args(rest);
            }
            None => {
                c.arg0(value);
            }
        }
        c
    };
    command
        .current_dir(&spec.directory)
        .envs(spec.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr);
    // Each executor leads a session of its own: pymesos executors kill their whole
    // process group on shutdown, and no terminal signal aimed at the agent reaches them.
    // SAFETY: the closure runs between fork and exec and calls only setsid(2), which is
    // async-signal-safe and touches no memory of the parent.
    unsafe {
        command.pre_exec(|| {
            if libc::setsid() == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    Ok(command)
}

/// Starts a process built by [`command`].
pub fn spawn(command: Command) -> Result<tokio::process::Child, AgentError> {
    let program = command.get_program().to_string_lossy().into_owned();
    tokio::process::Command::from(command)
        .spawn()
        .map_err(|source| AgentError::Spawn { program, source })
}

/// Prepares the sandbox and starts the executor process. It blocks on the file system
/// and the fork, and must run inside a Tokio runtime (for example in `spawn_blocking`).
pub fn start(work_dir: &Path, spec: &LaunchSpec) -> Result<tokio::process::Child, AgentError> {
    let (stdout, stderr) = prepare_sandbox(work_dir, spec)?;
    spawn(command(spec, stdout, stderr)?)
}

/// SIGKILLs a process group. Never signals our own group (0) or init's.
pub fn kill_group(pgid: u32) {
    let Ok(pgid) = libc::pid_t::try_from(pgid) else {
        return;
    };
    if pgid <= 1 {
        return;
    }
    // SAFETY: killpg takes plain integers; a group that is gone gives ESRCH.
    let rc = unsafe { libc::killpg(pgid, libc::SIGKILL) };
    if rc != 0 {
        let err = std::io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::ESRCH) {
            tracing::warn!(pgid, error = %err, "cannot kill process group");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mantle_api::CommandInfo;
    use std::os::unix::process::ExitStatusExt;

    fn spec(dir: &Path, command: CommandInfo) -> LaunchSpec {
        let work_dir = dir.to_path_buf();
        let directory = sandbox::sandbox_dir(
            &work_dir,
            &"a1".into(),
            &"f1".into(),
            &"e1".into(),
            &"c1".into(),
        );
        LaunchSpec {
            framework_id: "f1".into(),
            executor_id: "e1".into(),
            container_id: "c1".into(),
            agent_id: "a1".into(),
            directory,
            command,
            env: vec![
                ("MESOS_EXECUTOR_ID".into(), "e1".into()),
                ("X".into(), "1".into()),
                ("X".into(), "2".into()),
            ],
        }
    }

    #[tokio::test]
    async fn runs_a_shell_command_in_its_sandbox() {
        let dir = tempfile::tempdir().unwrap();
        let spec = spec(
            dir.path(),
            CommandInfo::shell("echo $MESOS_EXECUTOR_ID $X; pwd; echo oops >&2; exit 3"),
        );
        let mut child = start(dir.path(), &spec).unwrap();
        let pid = child.id().unwrap() as libc::pid_t;
        // SAFETY: getpgid and getsid only read process attributes.
        let (pgid, sid) = unsafe { (libc::getpgid(pid), libc::getsid(pid)) };
        let status = child.wait().await.unwrap();
        assert_eq!(status.code(), Some(3));
        assert_eq!(status.into_raw(), 3 << 8);
        assert_eq!(pgid, pid, "the executor leads its own process group");
        assert_eq!(sid, pid, "the executor leads its own session");
        let sandbox = spec.directory.canonicalize().unwrap();
        let stdout = std::fs::read_to_string(spec.directory.join("stdout")).unwrap();
        assert_eq!(stdout, format!("e1 2\n{}\n", sandbox.display()));
        assert_eq!(
            std::fs::read_to_string(spec.directory.join("stderr")).unwrap(),
            "oops\n"
        );
        let runs = spec.directory.parent().unwrap();
        assert_eq!(
            std::fs::read_link(runs.join("latest")).unwrap(),
            Path::new("c1")
        );
        assert_eq!(
            std::fs::read_link(dir.path().join("slaves/latest")).unwrap(),
            Path::new("a1")
        );
    }

    #[tokio::test]
    async fn runs_a_program_with_its_argv() {
        let dir = tempfile::tempdir().unwrap();
        let command = CommandInfo {
            uris: Vec::new(),
            environment: None,
            shell: false,
            value: Some("/bin/sh".into()),
            arguments: vec!["my-name".into(), "-c".into(), "echo $0".into()],
            user: None,
        };
        let spec = spec(dir.path(), command);
        let status = start(dir.path(), &spec).unwrap().wait().await.unwrap();
        assert!(status.success());
        assert_eq!(
            std::fs::read_to_string(spec.directory.join("stdout")).unwrap(),
            "my-name\n"
        );
    }

    #[test]
    fn a_missing_program_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let mut command = CommandInfo::shell("x");
        command.shell = false;
        command.value = Some("/nonexistent/executor".into());
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let err = rt.block_on(async { start(dir.path(), &spec(dir.path(), command)).unwrap_err() });
        assert!(err.to_string().contains("/nonexistent/executor"), "{err}");
    }

    #[test]
    fn never_signals_our_own_group() {
        kill_group(0);
        kill_group(1);
    }
}
