//! The sandbox directory with its `stdout` and `stderr` files and `latest` links
//! (reference §7), and killing process groups.

use crate::core::LaunchSpec;
use crate::error::AgentError;
use crate::sandbox;
use std::fs::File;
use std::path::Path;

/// Creates the sandbox, its empty `stdout` and `stderr` files (the launcher appends the
/// executor's output to them), and points `runs/latest` and `slaves/latest` at this run.
pub fn prepare_sandbox(work_dir: &Path, spec: &LaunchSpec) -> Result<(), AgentError> {
    let directory = &spec.directory;
    std::fs::create_dir_all(directory)
        .map_err(|e| AgentError::io("cannot create sandbox", directory, e))?;
    for name in ["stdout", "stderr"] {
        let path = directory.join(name);
        File::create(&path).map_err(|e| AgentError::io("cannot create", &path, e))?;
    }
    let runs = sandbox::runs_dir(
        work_dir,
        &spec.agent_id,
        &spec.framework_id,
        &spec.executor_id,
    );
    link_latest(&runs, spec.container_id.as_str())?;
    link_latest(&sandbox::slaves_dir(work_dir), spec.agent_id.as_str())
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

    #[test]
    fn prepares_the_sandbox_and_its_latest_links() {
        let dir = tempfile::tempdir().unwrap();
        let work_dir = dir.path().to_path_buf();
        let directory = sandbox::sandbox_dir(
            &work_dir,
            &"a1".into(),
            &"f1".into(),
            &"e1".into(),
            &"c1".into(),
        );
        let spec = LaunchSpec {
            framework_id: "f1".into(),
            executor_id: "e1".into(),
            container_id: "c1".into(),
            agent_id: "a1".into(),
            directory: directory.clone(),
            command: CommandInfo::shell("true"),
            env: Vec::new(),
            limits: Default::default(),
            user: None,
            container: None,
            checkpoint: false,
        };
        prepare_sandbox(&work_dir, &spec).unwrap();
        assert!(directory.join("stdout").is_file());
        assert!(directory.join("stderr").is_file());
        let runs = directory.parent().unwrap();
        assert_eq!(
            std::fs::read_link(runs.join("latest")).unwrap(),
            Path::new("c1")
        );
        assert_eq!(
            std::fs::read_link(dir.path().join("slaves/latest")).unwrap(),
            Path::new("a1")
        );
        // A second run of the same executor moves the link.
        let mut again = spec.clone();
        again.container_id = "c2".into();
        again.directory = runs.join("c2");
        prepare_sandbox(&work_dir, &again).unwrap();
        assert_eq!(
            std::fs::read_link(runs.join("latest")).unwrap(),
            Path::new("c2")
        );
    }

    #[test]
    fn never_signals_our_own_group() {
        kill_group(0);
        kill_group(1);
    }
}
