//! What v1 and v2 share: reading and parsing cgroupfs files, writing values, collecting
//! the pids of a cgroup and its nested cgroups, SIGKILL, bounded polling, and removing
//! cgroup directories.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::ContainerError;

/// How long `kill_all` keeps trying before it reports the processes it could not kill.
pub(super) const KILL_TIMEOUT: Duration = Duration::from_secs(5);

/// How long freezing may take before we kill anyway: a process stuck in an
/// uninterruptible sleep can hold a cgroup in FREEZING, and the SIGKILL we queue still
/// takes effect once the cgroup thaws.
pub(super) const FREEZE_TIMEOUT: Duration = Duration::from_secs(1);

/// How long `destroy` retries `rmdir` while the kernel still reports the cgroup busy.
pub(super) const REMOVE_TIMEOUT: Duration = Duration::from_secs(1);

/// The sub-directory of every hierarchy that holds our containers (`--cgroups_root`).
/// The constructors of `V1` and `V2` cannot fail, so a bad root is kept and reported by
/// every operation instead.
#[derive(Debug, Clone)]
pub(super) struct CgroupsRoot {
    path: PathBuf,
    problem: Option<String>,
}

impl CgroupsRoot {
    pub(super) fn new(root: &str) -> Self {
        let trimmed = root.trim_matches('/');
        let problem = if trimmed.is_empty() {
            Some(format!("{root:?} must name a sub-directory"))
        } else if trimmed.contains('\0') {
            Some(format!("{root:?} must not contain a NUL byte"))
        } else if trimmed
            .split('/')
            .any(|part| part.is_empty() || part == "." || part == "..")
        {
            Some(format!(
                "{root:?} must be a relative path without '.', '..' or empty components"
            ))
        } else {
            None
        };
        CgroupsRoot {
            path: PathBuf::from(trimmed),
            problem,
        }
    }

    pub(super) fn get(&self) -> Result<&Path, ContainerError> {
        match &self.problem {
            None => Ok(&self.path),
            Some(problem) => Err(ContainerError::invalid("cgroups_root", problem.clone())),
        }
    }
}

/// Reads a whole cgroup file.
pub(super) fn read(path: &Path) -> Result<String, ContainerError> {
    fs::read_to_string(path).map_err(|err| ContainerError::io("read cgroup file", path, err))
}

/// Reads a cgroup file that only some kernels or controllers provide.
pub(super) fn read_optional(path: &Path) -> Result<Option<String>, ContainerError> {
    match fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(ContainerError::io("read cgroup file", path, err)),
    }
}

/// Writes a value with one `write(2)`, which is how cgroupfs expects it.
pub(super) fn write(path: &Path, value: &str) -> Result<(), ContainerError> {
    fs::write(path, value).map_err(|err| ContainerError::io("write cgroup file", path, err))
}

/// Writes a value into a file only when the kernel provides it; returns whether it did.
pub(super) fn write_if_present(path: &Path, value: &str) -> Result<bool, ContainerError> {
    let mut file = match fs::OpenOptions::new().write(true).open(path) {
        Ok(file) => file,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(err) => return Err(ContainerError::io("write cgroup file", path, err)),
    };
    file.write_all(value.as_bytes())
        .map_err(|err| ContainerError::io("write cgroup file", path, err))?;
    Ok(true)
}

pub(super) fn parse_error(path: &Path, message: String) -> ContainerError {
    ContainerError::io(
        "parse cgroup file",
        path,
        io::Error::new(io::ErrorKind::InvalidData, message),
    )
}

/// Parses a file holding one unsigned integer, such as `memory.usage_in_bytes`.
pub(super) fn parse_u64(path: &Path, text: &str) -> Result<u64, ContainerError> {
    let value = text.trim();
    value
        .parse()
        .map_err(|_| parse_error(path, format!("{value:?} is not an unsigned integer")))
}

/// Reads a single-integer file the container may not have (its controller is off).
pub(super) fn read_u64_optional(path: &Path) -> Result<Option<u64>, ContainerError> {
    read_optional(path)?
        .map(|text| parse_u64(path, &text))
        .transpose()
}

/// A flat keyed file (`key value` per line) such as `memory.stat` or `cpu.stat`. A
/// missing file reads as empty, so every key in it is absent.
pub(super) struct Keyed {
    path: PathBuf,
    text: String,
}

impl Keyed {
    pub(super) fn read(path: PathBuf) -> Result<Self, ContainerError> {
        let text = read_optional(&path)?.unwrap_or_default();
        Ok(Keyed { path, text })
    }

    /// The value of `key`; a line for it that does not hold an integer is an error.
    pub(super) fn get(&self, key: &str) -> Result<Option<u64>, ContainerError> {
        for line in self.text.lines() {
            let Some((name, value)) = line.split_once(' ') else {
                continue;
            };
            if name == key {
                let value = value.trim();
                return value.parse().map(Some).map_err(|_| {
                    parse_error(
                        &self.path,
                        format!("{key} {value:?} is not an unsigned integer"),
                    )
                });
            }
        }
        Ok(None)
    }

    pub(super) fn get_or_zero(&self, key: &str) -> Result<u64, ContainerError> {
        Ok(self.get(key)?.unwrap_or(0))
    }

    /// The value of the first of `keys` present: kernels renamed some keys over time.
    pub(super) fn first_or_zero(&self, keys: &[&str]) -> Result<u64, ContainerError> {
        for key in keys {
            if let Some(value) = self.get(key)? {
                return Ok(value);
            }
        }
        Ok(0)
    }
}

/// The sub-directories of `dir` (nested cgroups, or containers under our root); a
/// missing `dir` has none.
pub(super) fn subdirs(dir: &Path) -> Result<Vec<PathBuf>, ContainerError> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(err) => return Err(ContainerError::io("list cgroup directory", dir, err)),
    };
    let mut dirs = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|err| ContainerError::io("list cgroup directory", dir, err))?;
        let file_type = entry
            .file_type()
            .map_err(|err| ContainerError::io("list cgroup directory", dir, err))?;
        if file_type.is_dir() {
            dirs.push(entry.path());
        }
    }
    Ok(dirs)
}

/// The container name of a directory under our root, when it is one we could have made.
pub(super) fn container_name(dir: &Path) -> Option<String> {
    let name = dir.file_name()?.to_str()?;
    if super::validate_container_id(name).is_err() {
        tracing::warn!(cgroup = %dir.display(), "ignoring a cgroup whose name is not a container id");
        return None;
    }
    Some(name.to_string())
}

/// Parses `cgroup.procs` or `tasks`. Anything but a positive pid is refused, because
/// `kill(0)` or `kill(-1)` would signal our own process group or every process.
fn parse_pids(path: &Path, text: &str, out: &mut Vec<i32>) -> Result<(), ContainerError> {
    for line in text.lines().map(str::trim).filter(|line| !line.is_empty()) {
        match line.parse::<i32>() {
            Ok(pid) if pid > 0 => out.push(pid),
            _ => return Err(parse_error(path, format!("{line:?} is not a pid"))),
        }
    }
    Ok(())
}

/// Collects the pids listed in `file` (`cgroup.procs` or `tasks`) of `dir` and of every
/// cgroup nested below it, because a task may create its own sub-cgroups and v1 lists
/// only a cgroup's own members. Returns `None` when `dir` does not exist.
pub(super) fn collect_pids(dir: &Path, file: &str) -> Result<Option<Vec<i32>>, ContainerError> {
    let path = dir.join(file);
    let Some(text) = read_optional(&path)? else {
        return Ok(None);
    };
    let mut pids = Vec::new();
    parse_pids(&path, &text, &mut pids)?;
    for sub in subdirs(dir)? {
        // A nested cgroup removed while we walk simply has no pids left.
        if let Some(nested) = collect_pids(&sub, file)? {
            pids.extend(nested);
        }
    }
    pids.sort_unstable();
    pids.dedup();
    Ok(Some(pids))
}

/// Sends SIGKILL to every pid. A process that exited meanwhile is not an error; finding
/// our own process in the container is, because killing it would take the agent down.
pub(super) fn kill(pids: &[i32], dir: &Path) -> Result<(), ContainerError> {
    let me = i32::try_from(std::process::id()).unwrap_or(i32::MAX);
    if pids.contains(&me) {
        return Err(ContainerError::invalid(
            "container_id",
            format!(
                "the calling process {me} is in cgroup {}; refusing to kill it",
                dir.display()
            ),
        ));
    }
    for &pid in pids.iter().filter(|&&pid| pid > 0) {
        // SAFETY: kill(2) takes two integers and touches none of our memory; pid > 0, so
        // it names one process and never a process group.
        let rc = unsafe { libc::kill(pid, libc::SIGKILL) };
        if rc != 0 {
            let err = io::Error::last_os_error();
            if err.raw_os_error() != Some(libc::ESRCH) {
                return Err(ContainerError::io("kill process in cgroup", dir, err));
            }
        }
    }
    Ok(())
}

/// Polls `done` until it holds or `deadline` passes, sleeping 100 µs at first and
/// doubling up to 10 ms: most waits (a SIGKILLed process leaving its cgroup) end within
/// a millisecond, and a container destroy should not cost more than that.
pub(super) fn wait_until(
    deadline: Instant,
    mut done: impl FnMut() -> Result<bool, ContainerError>,
) -> Result<bool, ContainerError> {
    let mut pause = Duration::from_micros(100);
    loop {
        if done()? {
            return Ok(true);
        }
        let now = Instant::now();
        if now >= deadline {
            return Ok(false);
        }
        std::thread::sleep(pause.min(deadline - now));
        pause = (pause * 2).min(Duration::from_millis(10));
    }
}

/// The error `kill_all` returns when processes survive the whole timeout.
pub(super) fn kill_timed_out(dir: &Path, alive: usize, timeout: Duration) -> ContainerError {
    ContainerError::io(
        "kill processes in cgroup",
        dir,
        io::Error::new(
            io::ErrorKind::TimedOut,
            format!(
                "{alive} processes still alive after {} ms",
                timeout.as_millis()
            ),
        ),
    )
}

/// Removes a cgroup directory and its nested cgroups, deepest first. cgroupfs lets
/// `rmdir` remove a directory full of control files but answers EBUSY for a moment
/// after the last process left, so EBUSY is retried until `deadline`. A directory that
/// is already gone is fine: destroy must be safe to repeat.
pub(super) fn remove_cgroup(dir: &Path, deadline: Instant) -> Result<(), ContainerError> {
    for sub in subdirs(dir)? {
        remove_cgroup(&sub, deadline)?;
    }
    let mut pause = Duration::from_micros(100);
    loop {
        let err = match fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(err) => err,
        };
        match err.kind() {
            io::ErrorKind::NotFound => return Ok(()),
            // Only an ordinary directory (a fake cgroupfs) refuses with ENOTEMPTY; its
            // control files are plain files we may delete.
            io::ErrorKind::DirectoryNotEmpty => remove_plain_files(dir)?,
            _ if err.raw_os_error() == Some(libc::EBUSY) && Instant::now() < deadline => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(10));
            }
            _ => return Err(ContainerError::io("remove cgroup", dir, err)),
        }
    }
}

fn remove_plain_files(dir: &Path) -> Result<(), ContainerError> {
    let entries = fs::read_dir(dir).map_err(|err| ContainerError::io("remove cgroup", dir, err))?;
    for entry in entries {
        let entry = entry.map_err(|err| ContainerError::io("remove cgroup", dir, err))?;
        let path = entry.path();
        if entry.file_type().is_ok_and(|kind| kind.is_file()) {
            fs::remove_file(&path)
                .map_err(|err| ContainerError::io("remove cgroup", &path, err))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_keyed(text: &str, key: &str, expected: Result<Option<u64>, &str>) {
        let keyed = Keyed {
            path: PathBuf::from("/cg/memory.stat"),
            text: text.to_string(),
        };
        match (keyed.get(key), expected) {
            (Ok(got), Ok(want)) => assert_eq!(got, want, "{key} in {text:?}"),
            (Err(err), Err(want)) => assert_eq!(err.to_string(), want),
            (got, want) => panic!("{key} in {text:?}: got {got:?}, want {want:?}"),
        }
    }

    #[test]
    fn keyed_files_are_parsed_by_exact_key() {
        let oom = "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n";
        check_keyed(oom, "oom_kill", Ok(Some(3)));
        check_keyed(oom, "oom_kill_disable", Ok(Some(0)));
        check_keyed(oom, "oom", Ok(None));
        check_keyed("", "oom_kill", Ok(None));
        check_keyed("rss 12\n\nnoise\ncache 7", "cache", Ok(Some(7)));
        check_keyed(
            "rss -1\n",
            "rss",
            Err("parse cgroup file /cg/memory.stat: rss \"-1\" is not an unsigned integer"),
        );
    }

    fn check_pids(text: &str, expected: Result<Vec<i32>, &str>) {
        let mut got = Vec::new();
        let result = parse_pids(Path::new("/cg/cgroup.procs"), text, &mut got).map(|()| got);
        match (result, expected) {
            (Ok(got), Ok(want)) => assert_eq!(got, want, "{text:?}"),
            (Err(err), Err(want)) => assert_eq!(err.to_string(), want),
            (got, want) => panic!("{text:?}: got {got:?}, want {want:?}"),
        }
    }

    #[test]
    fn pid_lists_hold_only_positive_pids() {
        check_pids("", Ok(vec![]));
        check_pids("12\n345\n", Ok(vec![12, 345]));
        check_pids(" 7 \n\n", Ok(vec![7]));
        check_pids(
            "0\n",
            Err("parse cgroup file /cg/cgroup.procs: \"0\" is not a pid"),
        );
        check_pids(
            "-1\n",
            Err("parse cgroup file /cg/cgroup.procs: \"-1\" is not a pid"),
        );
        check_pids(
            "12x\n",
            Err("parse cgroup file /cg/cgroup.procs: \"12x\" is not a pid"),
        );
    }

    #[test]
    fn cgroups_roots_are_checked() {
        assert_eq!(
            CgroupsRoot::new("/mantle/").get().unwrap(),
            Path::new("mantle")
        );
        assert_eq!(CgroupsRoot::new("a/b").get().unwrap(), Path::new("a/b"));
        for bad in ["", "/", "a/../b", "..", "a//b", "./a"] {
            let err = CgroupsRoot::new(bad).get().unwrap_err().to_string();
            assert!(err.starts_with("cgroups_root: "), "{bad:?}: {err}");
        }
    }

    #[test]
    fn nested_pids_are_collected_and_missing_dirs_are_none() {
        let dir = tempfile::tempdir().unwrap();
        let top = dir.path().join("c");
        fs::create_dir_all(top.join("nested")).unwrap();
        fs::write(top.join("cgroup.procs"), "30\n10\n").unwrap();
        fs::write(top.join("nested/cgroup.procs"), "20\n10\n").unwrap();
        assert_eq!(
            collect_pids(&top, "cgroup.procs").unwrap(),
            Some(vec![10, 20, 30])
        );
        assert_eq!(
            collect_pids(&dir.path().join("gone"), "cgroup.procs").unwrap(),
            None
        );

        // On an ordinary directory the control files are removed along with the dirs.
        remove_cgroup(&top, Instant::now() + REMOVE_TIMEOUT).unwrap();
        assert!(!top.exists());
        remove_cgroup(&top, Instant::now() + REMOVE_TIMEOUT).unwrap();
    }
}
