//! Containers for the agent: a small launcher process that joins the container's
//! cgroups, enters its namespaces and execs the task (DESIGN invariant 6); cgroups v1 and
//! v2 behind one trait; and a client for the Docker engine API on its unix socket.

pub mod cgroups;
pub mod docker;
mod error;
pub mod launch;

pub use error::ContainerError;
