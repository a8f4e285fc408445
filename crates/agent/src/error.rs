//! The agent's error type.

use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// A flag has a value the agent cannot use; `flag` is its name without dashes.
    #[error("--{flag}: {message}")]
    Flag { flag: &'static str, message: String },
    #[error("cannot listen on {address}: {source}")]
    Bind {
        address: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The containerizer could not prepare or start a container.
    #[error("container: {0}")]
    Container(String),
    #[error("cannot start {program}: {source}")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
}

impl AgentError {
    pub(crate) fn flag(flag: &'static str, message: impl Into<String>) -> AgentError {
        AgentError::Flag {
            flag,
            message: message.into(),
        }
    }

    pub(crate) fn io(
        what: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> AgentError {
        AgentError::Io {
            what,
            path: path.into(),
            source,
        }
    }
}
