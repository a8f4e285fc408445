//! Containers for the agent: a small launcher process that joins the container's
//! cgroups, enters its namespaces and execs the task (DESIGN invariant 6); cgroups v1 and
//! v2 behind one trait; and a client for the Docker engine API on its unix socket.

pub mod cgroups;
pub mod docker;
mod error;
pub mod launch;

pub use error::ContainerError;

/// Where a container sees its sandbox (Mesos's mapping, also `MESOS_SANDBOX` inside).
pub const SANDBOX_MOUNT: &str = "/mnt/mesos/sandbox";

/// Mesos's `cpu.shares` for `cpus`: 1024 per cpu, at least the kernel's minimum of 2.
pub fn cpu_shares(cpus: f64) -> u64 {
    // `as` saturates, and reads NaN as 0; the minimum covers both.
    ((cpus * 1024.0) as u64).max(2)
}

/// The memory limit for `mem_mb` megabytes: Mesos gives a container at least 32 MB.
pub fn memory_limit_bytes(mem_mb: f64) -> u64 {
    ((mem_mb * 1048576.0) as u64).max(32 << 20)
}
