//! Helpers for the cgroups tests: a fake cgroupfs in a temp directory, child processes
//! that are killed whatever the test does, and cleanup guards for real cgroups.

use std::fs;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use super::Cgroups;

/// Writes `(relative path, content)` files under `root`, creating directories: the
/// files the kernel would provide.
pub(super) fn put(root: &Path, files: &[(&str, &str)]) {
    for (relative, content) in files {
        let path = root.join(relative);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, content).unwrap();
    }
}

/// The content of a file under `root`, or `None` when it was never written.
pub(super) fn get(root: &Path, relative: &str) -> Option<String> {
    fs::read_to_string(root.join(relative)).ok()
}

/// A child process that is SIGKILLed and reaped when the guard goes, so a failing test
/// leaves no `sleep` behind.
pub(super) struct ChildGuard(pub(super) Child);

impl ChildGuard {
    pub(super) fn sleep() -> Self {
        let child = Command::new("sleep")
            .arg("30")
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn sleep");
        ChildGuard(child)
    }

    pub(super) fn pid(&self) -> i32 {
        i32::try_from(self.0.id()).unwrap()
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Destroys a real container's cgroups when the test ends, passing or failing.
pub(super) struct CgroupGuard<'a> {
    pub(super) cgroups: &'a dyn Cgroups,
    pub(super) container: String,
}

impl Drop for CgroupGuard<'_> {
    fn drop(&mut self) {
        if let Err(err) = self.cgroups.destroy(&self.container) {
            eprintln!("cleanup of cgroup {} failed: {err}", self.container);
        }
    }
}

/// Whether we run in CI, where a test that cannot run must fail instead of skipping.
fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|value| !value.is_empty() && value != "false" && value != "0")
}

/// Returns `None` when the test can run, else prints why it skips; in CI it panics,
/// because there a missing prerequisite is a broken test machine.
pub(super) fn skip_reason(reason: Option<String>) -> Option<String> {
    let reason = reason?;
    assert!(!in_ci(), "CI is set and this test cannot run: {reason}");
    eprintln!("skipping: {reason}");
    Some(reason)
}

/// A container name no other test run uses.
pub(super) fn unique_name(test: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.subsec_nanos())
        .unwrap_or(0);
    format!("{test}-{}-{nanos}", std::process::id())
}
