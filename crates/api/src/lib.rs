//! Mesos v1 wire types, IDs, the resources algebra, RecordIO framing and the error kinds
//! shared by every Mantle crate.
//!
//! The JSON shapes follow the Mesos protobuf-to-JSON mapper (enum names as strings,
//! snake_case field names, defaults emitted); see `docs/ARCHITECTURE.md`.

pub mod body;
pub mod duration;
pub mod error;
pub mod executor;
pub mod ids;
pub mod internal;
pub mod json;
pub mod logging;
pub mod maintenance;
pub mod messages;
pub mod operator;
pub mod recordio;
pub mod resources;
pub mod routing;
pub mod scheduler;
pub mod validation;

pub use error::{ApiError, ErrorKind};
pub use ids::*;
pub use messages::*;
pub use resources::{Quantity, Resource, ResourceKey, Resources, ResourcesCache};

/// The version every endpoint reports. Clients such as pymesos parse it as dotted
/// integers, so it must stay purely numeric.
pub const MESOS_VERSION: &str = "1.11.0";
