//! The executor's settings beyond [`ExecutorEnv`](mantle_sdk::executor::ExecutorEnv):
//! how long and how fast it tries to reach the agent (`MESOS_RECOVERY_TIMEOUT`,
//! `MESOS_SUBSCRIPTION_BACKOFF_MAX`, reference §2) and how long it waits for the last
//! acknowledgement.

use mantle_sdk::executor::parse_duration;
use std::collections::HashMap;
use std::time::Duration;

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
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            recovery_timeout: Duration::from_secs(15 * 60),
            subscription_backoff_max: Duration::from_secs(2),
            registration_timeout: Duration::from_secs(60),
            ack_timeout: Duration::from_secs(60),
            handle_sigterm: true,
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
        let defaults = Settings::default();
        Ok(Settings {
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
}
