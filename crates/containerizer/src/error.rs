//! The containerizer's error type.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ContainerError {
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A value the containerizer cannot use; `field` names it.
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
    /// The Docker engine answered with an error status.
    #[error("docker engine: {status} {message}")]
    Docker { status: u16, message: String },
    /// The Docker engine could not be reached or its answer could not be read.
    #[error("docker engine: {0}")]
    DockerTransport(String),
}

impl ContainerError {
    pub fn io(what: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        ContainerError::Io {
            what,
            path: path.into(),
            source,
        }
    }

    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        ContainerError::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }
}
