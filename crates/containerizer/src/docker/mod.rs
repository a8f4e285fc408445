//! A client for the Docker engine API, for Mesos's Docker containerizer: the agent runs a
//! task's container as `mesos-<container_id>` through the engine's unix socket, copies its
//! output into the sandbox the way `mesos-docker-executor` does, and finds its own
//! containers again after a restart by that name prefix.
//!
//! The client is deliberately thin (hyper over a `UnixStream`, no Docker SDK) to keep the
//! build small; it speaks API 1.41, Docker 20.10's, or the engine's own when older.
//!
//! - `spec`: what a container should be, and the pure translation into the create body.
//! - `frames`: the engine's streamed answers (log frames, progress lines, error bodies).
//! - `client`: the calls.

mod client;
#[cfg(test)]
mod fake_tests;
mod frames;
mod spec;
#[cfg(test)]
mod spec_tests;

use std::collections::BTreeMap;

pub use client::{Docker, DEFAULT_SOCKET};

/// The label naming the agent (its work_dir) that started a container, so that an agent
/// tells its own leftovers from another agent's on the same engine.
pub const AGENT_LABEL: &str = "mantle.agent";
/// The label naming the task a container runs.
pub const TASK_LABEL: &str = "mantle.task";
pub use frames::{Demuxer, Output};
pub use spec::{create_body, ContainerSpec, Network, PortMapping, Volume, SUPPORTED_PARAMETERS};

/// What `inspect` tells about a container.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerState {
    pub id: String,
    /// Without the engine's leading `/`.
    pub name: String,
    pub running: bool,
    /// The main process's PID on the host; 0 when it is not running.
    pub pid: i64,
    pub exit_code: i64,
    /// Whether the kernel's OOM killer ended it, which Mesos reports as
    /// `REASON_CONTAINER_LIMITATION_MEMORY`.
    pub oom_killed: bool,
    /// The engine's word for the state: `created`, `running`, `exited`, ...
    pub status: String,
    pub labels: BTreeMap<String, String>,
    /// The memory limit it was created with (`HostConfig.Memory`), `None` for none.
    pub memory_bytes: Option<u64>,
}

/// One entry of `list`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerSummary {
    pub id: String,
    /// Without the engine's leading `/`.
    pub names: Vec<String>,
    pub image: String,
    /// `created`, `running`, `exited`, ...
    pub state: String,
    /// A human-readable status such as `Up 2 minutes`.
    pub status: String,
    pub labels: BTreeMap<String, String>,
}

/// A container's resource usage, named after the fields of Mesos's `ResourceStatistics`
/// that the agent fills from it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DockerStats {
    /// `cpus_user_time_secs`.
    pub cpus_user_time_secs: f64,
    /// `cpus_system_time_secs`.
    pub cpus_system_time_secs: f64,
    /// `mem_total_bytes`: all memory charged to the container, page cache included.
    pub mem_usage_bytes: u64,
    /// `mem_limit_bytes`: the cgroup's limit (the host's memory when there is none).
    pub mem_limit_bytes: u64,
    /// `mem_rss_bytes`, when the engine reports it.
    pub mem_rss_bytes: Option<u64>,
}
