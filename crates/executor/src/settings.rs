//! The executor's settings beyond [`ExecutorEnv`](mantle_sdk::executor::ExecutorEnv):
//! how long and how fast it tries to reach the agent (`MESOS_RECOVERY_TIMEOUT`,
//! `MESOS_SUBSCRIPTION_BACKOFF_MAX`, reference §2), how long it waits for the last
//! acknowledgement, and whether the agent runs the Docker containerizer
//! (`MANTLE_DOCKER_SOCKET`, `MANTLE_DOCKER_NAME`, `MANTLE_DOCKER_LABEL_AGENT`).

use mantle_sdk::executor::parse_duration;
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

/// The agent runs the Docker containerizer: tasks that ask for Docker run in a
/// container on this engine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DockerSettings {
    /// The engine's unix socket (`MANTLE_DOCKER_SOCKET`, the agent's `--docker_socket`).
    pub socket: PathBuf,
    /// The container's name (`MANTLE_DOCKER_NAME`; `mesos-<MESOS_CONTAINER_ID>` when
    /// unset), which the agent removes once the executor is gone.
    pub container_name: String,
    /// The `mantle.agent` label (`MANTLE_DOCKER_LABEL_AGENT`: the agent's work_dir), by
    /// which a restarted agent finds its leftover containers.
    pub agent_label: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    /// How long a checkpointing executor keeps resubscribing after losing the agent
    /// (`MESOS_RECOVERY_TIMEOUT`, default 15 min).
    pub recovery_timeout: Duration,
    /// The longest delay between subscription attempts (`MESOS_SUBSCRIPTION_BACKOFF_MAX`,
    /// default 2 s).
    pub subscription_backoff_max: Duration,
    /// How long the first subscription may take before the executor gives up; the agent
    /// destroys an executor that has not subscribed within its registration timeout (1 min).
    pub registration_timeout: Duration,
    /// How long to wait for the terminal update's ACKNOWLEDGED before exiting anyway.
    pub ack_timeout: Duration,
    /// Treat SIGTERM to the executor as a SHUTDOWN, so the task (in its own process
    /// group) does not outlive it. Off in tests that run the executor in-process.
    pub handle_sigterm: bool,
    /// The Docker containerizer, when the agent runs it.
    pub docker: Option<DockerSettings>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            recovery_timeout: Duration::from_secs(15 * 60),
            subscription_backoff_max: Duration::from_secs(2),
            registration_timeout: Duration::from_secs(60),
            ack_timeout: Duration::from_secs(60),
            handle_sigterm: true,
            docker: None,
        }
    }
}

impl Settings {
    /// Reads the settings from this process's environment.
    pub fn from_env() -> Result<Settings, String> {
        let vars: HashMap<String, String> = std::env::vars().collect();
        Self::from_vars(&vars)
    }

    /// Reads the settings from a map of variables; errors name the variable.
    pub fn from_vars(vars: &HashMap<String, String>) -> Result<Settings, String> {
        let duration = |name: &str, default: Duration| -> Result<Duration, String> {
            match vars.get(name).map(|v| v.trim()).filter(|v| !v.is_empty()) {
                None => Ok(default),
                Some(text) => {
                    parse_duration(text).map_err(|e| format!("environment variable {name}: {e}"))
                }
            }
        };
        let text = |name: &str| {
            vars.get(name)
                .map(|v| v.trim())
                .filter(|v| !v.is_empty())
                .map(str::to_string)
        };
        // An empty socket means no Docker: the agent sets it empty when docker is off,
        // so that a value the executor would inherit from the agent's own environment
        // cannot turn it on.
        let docker = match text("MANTLE_DOCKER_SOCKET") {
            None => None,
            Some(socket) => {
                let container_name = text("MANTLE_DOCKER_NAME")
                    .or_else(|| text("MESOS_CONTAINER_ID").map(|id| format!("mesos-{id}")))
                    .ok_or("environment variable MANTLE_DOCKER_NAME is not set")?;
                Some(DockerSettings {
                    socket: PathBuf::from(socket),
                    container_name,
                    agent_label: text("MANTLE_DOCKER_LABEL_AGENT"),
                })
            }
        };
        let defaults = Settings::default();
        Ok(Settings {
            docker,
            recovery_timeout: duration("MESOS_RECOVERY_TIMEOUT", defaults.recovery_timeout)?,
            subscription_backoff_max: duration(
                "MESOS_SUBSCRIPTION_BACKOFF_MAX",
                defaults.subscription_backoff_max,
            )?,
            ..defaults
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(vars: &[(&str, &str)], expected: Result<Settings, &str>) {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        match (Settings::from_vars(&map), expected) {
            (Ok(actual), Ok(expected)) => assert_eq!(actual, expected, "{vars:?}"),
            (Err(err), Err(fragment)) => assert!(
                err.contains(fragment),
                "{vars:?}: {err:?} lacks {fragment:?}"
            ),
            (actual, expected) => panic!("{vars:?}: got {actual:?}, expected {expected:?}"),
        }
    }

    #[test]
    fn from_variables() {
        check(&[], Ok(Settings::default()));
        check(&[("MESOS_RECOVERY_TIMEOUT", "")], Ok(Settings::default()));
        check(
            &[
                ("MESOS_RECOVERY_TIMEOUT", "1mins"),
                ("MESOS_SUBSCRIPTION_BACKOFF_MAX", "500ms"),
            ],
            Ok(Settings {
                recovery_timeout: Duration::from_secs(60),
                subscription_backoff_max: Duration::from_millis(500),
                ..Settings::default()
            }),
        );
        check(
            &[("MESOS_RECOVERY_TIMEOUT", "15m")],
            Err("environment variable MESOS_RECOVERY_TIMEOUT: '15m' needs a unit"),
        );
        check(
            &[("MESOS_SUBSCRIPTION_BACKOFF_MAX", "x")],
            Err("MESOS_SUBSCRIPTION_BACKOFF_MAX"),
        );
    }

    #[test]
    fn docker_variables() {
        let docker = |name: &str, label: Option<&str>| Settings {
            docker: Some(DockerSettings {
                socket: PathBuf::from("/run/docker.sock"),
                container_name: name.into(),
                agent_label: label.map(Into::into),
            }),
            ..Settings::default()
        };
        check(&[("MANTLE_DOCKER_SOCKET", "")], Ok(Settings::default()));
        check(
            &[("MANTLE_DOCKER_NAME", "mesos-c1")],
            Ok(Settings::default()),
        );
        check(
            &[
                ("MANTLE_DOCKER_SOCKET", "/run/docker.sock"),
                ("MANTLE_DOCKER_NAME", "mesos-c1"),
                ("MANTLE_DOCKER_LABEL_AGENT", "/var/lib/mantle"),
            ],
            Ok(docker("mesos-c1", Some("/var/lib/mantle"))),
        );
        check(
            &[
                ("MANTLE_DOCKER_SOCKET", "/run/docker.sock"),
                ("MESOS_CONTAINER_ID", "c2"),
            ],
            Ok(docker("mesos-c2", None)),
        );
        check(
            &[("MANTLE_DOCKER_SOCKET", "/run/docker.sock")],
            Err("environment variable MANTLE_DOCKER_NAME is not set"),
        );
    }
}
