//! The agent's checkpoints on disk, in the Mesos `meta/` layout (reference §7): writing
//! what the core asks for durably (DESIGN invariant 5), reading it all back after a
//! restart, and finding the containers an earlier run left.
//!
//! ```text
//! meta/boot_id
//! meta/slaves/latest -> <agent_id>
//! meta/slaves/<aid>/slave.info
//!   frameworks/<fid>/framework.info
//!     executors/<eid>/executor.info
//!       runs/latest -> <container_id>
//!       runs/<cid>/pids/forked.pid        the launcher's pid (the agent writes it)
//!       runs/<cid>/{launch.json,pid,status}   the launcher's own records
//!       runs/<cid>/tasks/<tid>/task.info
//!       runs/<cid>/tasks/<tid>/task.updates   one JSON record per line
//! ```
//!
//! Info files are replaced whole (temporary file, fsync, rename, fsync of the directory);
//! `task.updates` is appended to and synced, so a crash can at most leave its last line
//! torn, and a torn last line is dropped on reading. Every directory created is synced
//! into its parent. The file contents are ours (JSON); the layout is Mesos's.

use crate::core::{
    Checkpoint, Recovered, RecoveredExecutor, RecoveredFramework, RecoveredTask, RunKey,
    UpdateRecord,
};
use crate::error::AgentError;
use crate::sandbox;
use mantle_api::{AgentId, AgentInfo, ContainerId, ExecutorInfo, FrameworkInfo, TaskInfo};
use mantle_containerizer::launch::write_atomic;
use serde::{Deserialize, Serialize};
use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};

const BOOT_ID: &str = "boot_id";
const AGENT_INFO: &str = "slave.info";
const FRAMEWORK_INFO: &str = "framework.info";
const EXECUTOR_INFO: &str = "executor.info";
const TASK_INFO: &str = "task.info";
const TASK_UPDATES: &str = "task.updates";
const LAUNCHER_PID: &str = "pids/forked.pid";
/// Where the kernel names the current boot.
const KERNEL_BOOT_ID: &str = "/proc/sys/kernel/random/boot_id";

/// `executor.info`: the ExecutorInfo and whether the agent made it up for a command task.
#[derive(Serialize, Deserialize)]
struct StoredExecutor {
    executor_info: ExecutorInfo,
    #[serde(default)]
    command_executor: bool,
}

/// `<work_dir>/meta`.
pub fn meta_dir(work_dir: &Path) -> PathBuf {
    work_dir.join("meta")
}

fn agent_dir(work_dir: &Path, agent_id: &AgentId) -> PathBuf {
    sandbox::slaves_dir(&meta_dir(work_dir)).join(agent_id.as_str())
}

fn framework_dir(work_dir: &Path, agent_id: &AgentId, framework_id: &str) -> PathBuf {
    agent_dir(work_dir, agent_id)
        .join("frameworks")
        .join(framework_id)
}

fn runs_dir(work_dir: &Path, run: &RunKey) -> PathBuf {
    sandbox::runs_dir(
        &meta_dir(work_dir),
        &run.agent_id,
        &run.framework_id,
        &run.executor_id,
    )
}

/// The run directory of a container: the launcher's records and the task checkpoints.
pub fn run_dir(work_dir: &Path, run: &RunKey) -> PathBuf {
    runs_dir(work_dir, run).join(run.container_id.as_str())
}

fn task_dir(work_dir: &Path, run: &RunKey, task_id: &str) -> PathBuf {
    run_dir(work_dir, run).join("tasks").join(task_id)
}

/// The kernel's id of the current boot, if it has one.
pub fn current_boot_id() -> Option<String> {
    fs::read_to_string(KERNEL_BOOT_ID)
        .ok()
        .map(|id| id.trim().to_string())
        .filter(|id| !id.is_empty())
}

/// Writes one checkpoint durably.
pub fn write(work_dir: &Path, checkpoint: &Checkpoint) -> Result<(), AgentError> {
    match checkpoint {
        Checkpoint::Agent(info) => {
            let Some(agent_id) = &info.id else {
                return Ok(());
            };
            let dir = agent_dir(work_dir, agent_id);
            ensure_dir(&dir)?;
            write_json(&dir.join(AGENT_INFO), info)?;
            if let Some(boot_id) = current_boot_id() {
                write_file(&meta_dir(work_dir).join(BOOT_ID), boot_id.as_bytes())?;
            }
            link_latest(&sandbox::slaves_dir(&meta_dir(work_dir)), agent_id.as_str())
        }
        Checkpoint::Framework { agent_id, info } => {
            let Some(framework_id) = &info.id else {
                return Ok(());
            };
            let dir = framework_dir(work_dir, agent_id, framework_id.as_str());
            ensure_dir(&dir)?;
            write_json(&dir.join(FRAMEWORK_INFO), info)
        }
        Checkpoint::Executor {
            run,
            info,
            command_executor,
        } => {
            ensure_dir(&run_dir(work_dir, run))?;
            let stored = StoredExecutor {
                executor_info: info.clone(),
                command_executor: *command_executor,
            };
            let runs = runs_dir(work_dir, run);
            write_json(&runs.with_file_name(EXECUTOR_INFO), &stored)?;
            link_latest(&runs, run.container_id.as_str())
        }
        Checkpoint::Task { run, info } => {
            let dir = task_dir(work_dir, run, info.task_id.as_str());
            ensure_dir(&dir)?;
            write_json(&dir.join(TASK_INFO), info)
        }
        Checkpoint::Record {
            run,
            task_id,
            record,
        } => {
            let dir = task_dir(work_dir, run, task_id.as_str());
            ensure_dir(&dir)?;
            let mut line = serde_json::to_vec(record)
                .map_err(|e| AgentError::io("cannot encode", &dir, std::io::Error::other(e)))?;
            line.push(b'\n');
            append_synced(&dir.join(TASK_UPDATES), &line)
        }
        Checkpoint::Forget { run } => {
            let executor_dir = runs_dir(work_dir, run)
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_default();
            remove_dir(&executor_dir)?;
            // The framework's checkpoints go with its last executor.
            let framework_dir = framework_dir(work_dir, &run.agent_id, run.framework_id.as_str());
            let executors = framework_dir.join("executors");
            let empty = fs::read_dir(&executors).map_or(true, |mut d| d.next().is_none());
            if empty {
                remove_dir(&framework_dir)?;
            }
            Ok(())
        }
    }
}

/// Records the pid and start time of a container's launcher, so that a restarted agent
/// finds it.
pub fn write_launcher_pid(rundir: &Path, pid: u32, start_time: u64) -> Result<(), AgentError> {
    let path = rundir.join(LAUNCHER_PID);
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(|e| AgentError::io("cannot create", parent, e))?;
    }
    // No fsync: a machine crash ends the launcher this names.
    mantle_containerizer::launch::write_replace(&path, format!("{pid} {start_time}\n").as_bytes())
        .map_err(|e| AgentError::Container(e.to_string()))
}

/// The pid of a container's launcher and its start time, as recorded. An older agent
/// recorded the pid alone; a start time of 0 means the launcher's server could not read it.
pub fn read_launcher_pid(rundir: &Path) -> Option<(u32, Option<u64>)> {
    let text = fs::read_to_string(rundir.join(LAUNCHER_PID)).ok()?;
    let mut fields = text.split_whitespace();
    let pid = fields.next()?.parse().ok()?;
    let start_time = match fields.next() {
        Some(field) => Some(field.parse().ok()?).filter(|start| *start != 0),
        None => None,
    };
    Some((pid, start_time))
}

/// Reads back everything checkpointed. With `strict`, a checkpoint that cannot be read
/// is an error naming its path; without, it is skipped with a warning.
pub fn read(work_dir: &Path, strict: bool) -> Result<Recovered, AgentError> {
    read_counting(work_dir, strict).map(|(recovered, _)| recovered)
}

/// Like [`read`], also counting the checkpoints skipped (`slave/recovery_errors`).
pub fn read_counting(work_dir: &Path, strict: bool) -> Result<(Recovered, u64), AgentError> {
    let meta = meta_dir(work_dir);
    let latest = sandbox::slaves_dir(&meta).join("latest");
    let agent_id = match fs::read_link(&latest) {
        Ok(target) => AgentId::new(target.to_string_lossy()),
        Err(err) if err.kind() == ErrorKind::NotFound => return Ok((Recovered::default(), 0)),
        Err(err) => return Err(AgentError::io("cannot read", &latest, err)),
    };
    let dir = agent_dir(work_dir, &agent_id);
    let agent: AgentInfo = read_json(&dir.join(AGENT_INFO))?;
    let checkpointed_boot = fs::read_to_string(meta.join(BOOT_ID)).ok();
    let rebooted = match (checkpointed_boot, current_boot_id()) {
        (Some(then), Some(now)) => then.trim() != now,
        _ => false,
    };
    let mut reader = Reader { strict, skipped: 0 };
    let mut frameworks = Vec::new();
    for framework_dir in subdirs(&dir.join("frameworks"))? {
        let info_path = framework_dir.join(FRAMEWORK_INFO);
        if !info_path.exists() {
            // A framework that does not checkpoint: only its launchers' records are here.
            continue;
        }
        let Some(info) = reader.ok(read_json::<FrameworkInfo>(&info_path))? else {
            continue;
        };
        let mut executors = Vec::new();
        for executor_dir in subdirs(&framework_dir.join("executors"))? {
            if let Some(executor) = reader.ok(read_executor(&executor_dir))?.flatten() {
                executors.push(executor);
            }
        }
        frameworks.push(RecoveredFramework { info, executors });
    }
    let recovered = Recovered {
        agent: Some(agent),
        rebooted,
        frameworks,
    };
    Ok((recovered, reader.skipped))
}

/// Turns an error into a skip when not strict.
struct Reader {
    strict: bool,
    skipped: u64,
}

impl Reader {
    fn ok<T>(&mut self, result: Result<T, AgentError>) -> Result<Option<T>, AgentError> {
        match result {
            Ok(value) => Ok(Some(value)),
            Err(err) if !self.strict => {
                self.skipped += 1;
                tracing::warn!(error = %err, "skipping a checkpoint that cannot be read");
                Ok(None)
            }
            Err(err) => Err(err),
        }
    }
}

fn read_executor(executor_dir: &Path) -> Result<Option<RecoveredExecutor>, AgentError> {
    let info_path = executor_dir.join(EXECUTOR_INFO);
    if !info_path.exists() {
        return Ok(None);
    }
    let stored: StoredExecutor = read_json(&info_path)?;
    let runs = executor_dir.join("runs");
    let container_id = match fs::read_link(runs.join("latest")) {
        Ok(target) => ContainerId::new(target.to_string_lossy()),
        // The agent stopped between writing executor.info and the link.
        Err(err) if err.kind() == ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(AgentError::io("cannot read", runs.join("latest"), err)),
    };
    let mut tasks = Vec::new();
    for task_dir in subdirs(&runs.join(container_id.as_str()).join("tasks"))? {
        let info_path = task_dir.join(TASK_INFO);
        if !info_path.exists() {
            continue;
        }
        let info: TaskInfo = read_json(&info_path)?;
        let records = read_records(&task_dir.join(TASK_UPDATES))?;
        tasks.push(RecoveredTask { info, records });
    }
    Ok(Some(RecoveredExecutor {
        info: stored.executor_info,
        command_executor: stored.command_executor,
        container_id,
        tasks,
    }))
}

/// The records of a `task.updates` file; a torn last line (a crash mid-append) is
/// dropped, any other unreadable line is an error.
fn read_records(path: &Path) -> Result<Vec<UpdateRecord>, AgentError> {
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(err) if err.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
        Err(err) => return Err(AgentError::io("cannot read", path, err)),
    };
    let complete = text.ends_with('\n');
    let lines: Vec<&str> = text.lines().collect();
    let mut records = Vec::with_capacity(lines.len());
    for (i, line) in lines.iter().enumerate() {
        match serde_json::from_str(line) {
            Ok(record) => records.push(record),
            Err(_) if i + 1 == lines.len() && !complete => {
                tracing::warn!(path = %path.display(), "dropping a torn last status update record");
            }
            Err(err) => {
                return Err(AgentError::io(
                    "cannot decode",
                    path,
                    std::io::Error::other(format!("line {}: {err}", i + 1)),
                ))
            }
        }
    }
    Ok(records)
}

/// Every container run recorded under `meta/` (checkpointed or not), with its run
/// directory: what an earlier run of the agent may have left running.
pub fn recorded_runs(work_dir: &Path) -> Vec<(ContainerId, PathBuf)> {
    let mut runs = Vec::new();
    let slaves = sandbox::slaves_dir(&meta_dir(work_dir));
    let levels = |dir: &Path, child: &str| -> Vec<PathBuf> {
        subdirs(dir)
            .unwrap_or_default()
            .into_iter()
            .map(|d| d.join(child))
            .collect()
    };
    for agent in subdirs(&slaves).unwrap_or_default() {
        for frameworks in levels(&agent.join("frameworks"), "executors") {
            for executors in subdirs(&frameworks).unwrap_or_default() {
                for run in subdirs(&executors.join("runs")).unwrap_or_default() {
                    if let Some(name) = run.file_name() {
                        runs.push((ContainerId::new(name.to_string_lossy()), run.clone()));
                    }
                }
            }
        }
    }
    runs
}

/// Removes every agent's checkpoints (`--recover=cleanup`); the boot id stays.
pub fn forget_all(work_dir: &Path) -> Result<(), AgentError> {
    remove_dir(&sandbox::slaves_dir(&meta_dir(work_dir)))
}

/// The subdirectories of `dir` (not links), sorted; none when it does not exist.
fn subdirs(dir: &Path) -> Result<Vec<PathBuf>, AgentError> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
        Err(err) => return Err(AgentError::io("cannot list", dir, err)),
    };
    let mut dirs: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.path())
        .collect();
    dirs.sort();
    Ok(dirs)
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, AgentError> {
    let bytes = fs::read(path).map_err(|e| AgentError::io("cannot read", path, e))?;
    serde_json::from_slice(&bytes)
        .map_err(|e| AgentError::io("cannot decode", path, std::io::Error::other(e)))
}

fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), AgentError> {
    let bytes = serde_json::to_vec(value)
        .map_err(|e| AgentError::io("cannot encode", path, std::io::Error::other(e)))?;
    write_file(path, &bytes)
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<(), AgentError> {
    write_atomic(path, bytes).map_err(|e| AgentError::Container(e.to_string()))
}

/// Appends and syncs; a file created by the append is synced into its directory.
fn append_synced(path: &Path, bytes: &[u8]) -> Result<(), AgentError> {
    let created = !path.exists();
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| AgentError::io("cannot open", path, e))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_data())
        .map_err(|e| AgentError::io("cannot write", path, e))?;
    if created {
        if let Some(dir) = path.parent() {
            sync_dir(dir)?;
        }
    }
    Ok(())
}

/// Creates `dir` and any missing parents, syncing each new entry into its parent.
fn ensure_dir(dir: &Path) -> Result<(), AgentError> {
    if dir.is_dir() {
        return Ok(());
    }
    let parent = dir.parent().filter(|p| !p.as_os_str().is_empty());
    if let Some(parent) = parent {
        ensure_dir(parent)?;
    }
    match fs::create_dir(dir) {
        Ok(()) => match parent {
            Some(parent) => sync_dir(parent),
            None => Ok(()),
        },
        Err(err) if err.kind() == ErrorKind::AlreadyExists => Ok(()),
        Err(err) => Err(AgentError::io("cannot create", dir, err)),
    }
}

fn sync_dir(dir: &Path) -> Result<(), AgentError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| AgentError::io("cannot sync", dir, e))
}

fn remove_dir(dir: &Path) -> Result<(), AgentError> {
    match fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(err) if err.kind() == ErrorKind::NotFound => Ok(()),
        Err(err) => Err(AgentError::io("cannot remove", dir, err)),
    }
}

/// Points `<dir>/latest` at `target`, atomically and durably.
fn link_latest(dir: &Path, target: &str) -> Result<(), AgentError> {
    let latest = dir.join("latest");
    if fs::read_link(&latest).is_ok_and(|current| current == Path::new(target)) {
        return Ok(());
    }
    ensure_dir(dir)?;
    let temporary = dir.join(format!(".latest.{}", std::process::id()));
    let _ = fs::remove_file(&temporary);
    std::os::unix::fs::symlink(target, &temporary)
        .map_err(|e| AgentError::io("cannot create link", &temporary, e))?;
    fs::rename(&temporary, &latest)
        .map_err(|e| AgentError::io("cannot replace link", &latest, e))?;
    sync_dir(dir)
}

#[cfg(test)]
mod tests {
    use super::*;
    use mantle_api::{CommandInfo, TaskState, TaskStatus};

    fn run() -> RunKey {
        RunKey {
            agent_id: "a1".into(),
            framework_id: "f1".into(),
            executor_id: "e1".into(),
            container_id: "c1".into(),
        }
    }

    fn agent_info() -> AgentInfo {
        AgentInfo {
            hostname: "h".into(),
            port: 5051,
            resources: Vec::new(),
            attributes: Vec::new(),
            id: Some("a1".into()),
            capabilities: Vec::new(),
        }
    }

    fn framework_info(checkpoint: bool) -> FrameworkInfo {
        let mut info: FrameworkInfo = serde_json::from_value(
            serde_json::json!({"user": "u", "name": "n", "id": {"value": "f1"}}),
        )
        .unwrap();
        info.checkpoint = checkpoint;
        info
    }

    fn task_info() -> TaskInfo {
        serde_json::from_value(serde_json::json!({
            "name": "t", "task_id": {"value": "t1"}, "agent_id": {"value": "a1"},
            "resources": [], "command": {"value": "true"}
        }))
        .unwrap()
    }

    fn status(state: TaskState, uuid: &str) -> TaskStatus {
        let mut s = TaskStatus::new("t1".into(), state);
        s.uuid = Some(uuid.into());
        s
    }

    fn write_all(work_dir: &Path) {
        let executor: ExecutorInfo = serde_json::from_value(serde_json::json!({
            "executor_id": {"value": "e1"}, "command": CommandInfo::shell("x")
        }))
        .unwrap();
        for checkpoint in [
            Checkpoint::Agent(agent_info()),
            Checkpoint::Framework {
                agent_id: "a1".into(),
                info: framework_info(true),
            },
            Checkpoint::Executor {
                run: run(),
                info: executor,
                command_executor: true,
            },
            Checkpoint::Task {
                run: run(),
                info: task_info(),
            },
            Checkpoint::Record {
                run: run(),
                task_id: "t1".into(),
                record: UpdateRecord::Update(Box::new(status(TaskState::Running, "u1"))),
            },
            Checkpoint::Record {
                run: run(),
                task_id: "t1".into(),
                record: UpdateRecord::Ack("u1".into()),
            },
        ] {
            write(work_dir, &checkpoint).unwrap();
        }
    }

    #[test]
    fn what_is_written_reads_back_in_the_mesos_layout() {
        let dir = tempfile::tempdir().unwrap();
        write_all(dir.path());
        let meta = dir.path().join("meta");
        assert_eq!(
            fs::read_link(meta.join("slaves/latest")).unwrap(),
            Path::new("a1")
        );
        let executor = meta.join("slaves/a1/frameworks/f1/executors/e1");
        for file in [
            "executor.info",
            "runs/c1/tasks/t1/task.info",
            "runs/c1/tasks/t1/task.updates",
        ] {
            assert!(executor.join(file).is_file(), "{file}");
        }
        assert!(meta
            .join("slaves/a1/frameworks/f1/framework.info")
            .is_file());

        let recovered = read(dir.path(), true).unwrap();
        assert_eq!(recovered.agent, Some(agent_info()));
        assert!(!recovered.rebooted);
        let executor = &recovered.frameworks[0].executors[0];
        assert_eq!(executor.container_id, ContainerId::new("c1"));
        assert!(executor.command_executor);
        assert_eq!(
            executor.tasks[0].records,
            [
                UpdateRecord::Update(Box::new(status(TaskState::Running, "u1"))),
                UpdateRecord::Ack("u1".into())
            ]
        );
        assert_eq!(recorded_runs(dir.path()).len(), 1);

        write(dir.path(), &Checkpoint::Forget { run: run() }).unwrap();
        assert!(!meta.join("slaves/a1/frameworks/f1").exists());
        assert!(read(dir.path(), true).unwrap().frameworks.is_empty());
    }

    #[test]
    fn a_torn_last_record_is_dropped_and_other_damage_named() {
        let dir = tempfile::tempdir().unwrap();
        write_all(dir.path());
        let updates = dir
            .path()
            .join("meta/slaves/a1/frameworks/f1/executors/e1/runs/c1/tasks/t1/task.updates");
        let mut file = OpenOptions::new().append(true).open(&updates).unwrap();
        file.write_all(b"{\"update\":{\"task_id\"").unwrap();
        let recovered = read(dir.path(), true).unwrap();
        assert_eq!(
            recovered.frameworks[0].executors[0].tasks[0].records.len(),
            2
        );

        file.write_all(b"\n").unwrap();
        let err = read(dir.path(), true).unwrap_err().to_string();
        assert!(
            err.contains("task.updates") && err.contains("line 3"),
            "{err}"
        );
        // Not strict: the executor is skipped, the rest recovered.
        let recovered = read(dir.path(), false).unwrap();
        assert!(recovered.frameworks[0].executors.is_empty());
    }

    #[test]
    fn a_changed_boot_id_means_a_reboot() {
        let dir = tempfile::tempdir().unwrap();
        write_all(dir.path());
        if current_boot_id().is_none() {
            return;
        }
        fs::write(dir.path().join("meta/boot_id"), "another boot").unwrap();
        assert!(read(dir.path(), true).unwrap().rebooted);
    }

    #[test]
    fn nothing_checkpointed_is_a_fresh_start() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read(dir.path(), true).unwrap(), Recovered::default());
        // A framework that does not checkpoint leaves only launcher records.
        fs::create_dir_all(
            dir.path()
                .join("meta/slaves/a1/frameworks/f2/executors/e/runs/c"),
        )
        .unwrap();
        write(dir.path(), &Checkpoint::Agent(agent_info())).unwrap();
        let recovered = read(dir.path(), true).unwrap();
        assert!(recovered.frameworks.is_empty());
        assert_eq!(recorded_runs(dir.path()).len(), 1);
    }
}
