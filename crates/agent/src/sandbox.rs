//! Pure facts about an executor run: the Mesos work_dir layout of sandboxes
//! (`slaves/<aid>/frameworks/<fid>/executors/<eid>/runs/<cid>/`, reference §7) and the
//! environment an executor is given (reference §2).

use mantle_api::{AgentId, CommandInfo, ContainerId, ExecutorId, FrameworkId};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// `<work_dir>/slaves`, which holds the `latest` link to the current agent id.
pub fn slaves_dir(work_dir: &Path) -> PathBuf {
    work_dir.join("slaves")
}

/// `<work_dir>/slaves/<aid>/frameworks/<fid>/executors/<eid>/runs`, which holds the
/// `latest` link to the current run.
pub fn runs_dir(
    work_dir: &Path,
    agent_id: &AgentId,
    framework_id: &FrameworkId,
    executor_id: &ExecutorId,
) -> PathBuf {
    slaves_dir(work_dir)
        .join(agent_id.as_str())
        .join("frameworks")
        .join(framework_id.as_str())
        .join("executors")
        .join(executor_id.as_str())
        .join("runs")
}

/// The sandbox of one executor run.
pub fn sandbox_dir(
    work_dir: &Path,
    agent_id: &AgentId,
    framework_id: &FrameworkId,
    executor_id: &ExecutorId,
    container_id: &ContainerId,
) -> PathBuf {
    runs_dir(work_dir, agent_id, framework_id, executor_id).join(container_id.as_str())
}

pub use mantle_api::duration::format_duration;

/// What an executor's environment is made of.
pub struct EnvInputs<'a> {
    pub framework_id: &'a FrameworkId,
    pub executor_id: &'a ExecutorId,
    pub agent_id: &'a AgentId,
    pub container_id: &'a ContainerId,
    pub directory: &'a Path,
    /// `ip:port` of the agent's HTTP server.
    pub agent_endpoint: &'a str,
    pub checkpoint: bool,
    pub shutdown_grace_period: Duration,
    /// How long a checkpointing executor tries to reach a restarting agent.
    pub recovery_timeout: Duration,
    /// The longest pause between its attempts.
    pub subscription_backoff_max: Duration,
    pub command: &'a CommandInfo,
}

/// The variables set on top of the agent's own environment, in the order they apply:
/// the `MESOS_*` variables first, then the command's own variables, which win, as in the
/// Mesos containerizer.
pub fn executor_env(inputs: &EnvInputs<'_>) -> Vec<(String, String)> {
    let directory = inputs.directory.to_string_lossy().into_owned();
    let mut env: Vec<(String, String)> = [
        ("MESOS_FRAMEWORK_ID", inputs.framework_id.to_string()),
        ("MESOS_EXECUTOR_ID", inputs.executor_id.to_string()),
        ("MESOS_DIRECTORY", directory.clone()),
        ("MESOS_SANDBOX", directory),
        ("MESOS_AGENT_ENDPOINT", inputs.agent_endpoint.to_string()),
        ("MESOS_SLAVE_ID", inputs.agent_id.to_string()),
        (
            "MESOS_SLAVE_PID",
            format!("slave(1)@{}", inputs.agent_endpoint),
        ),
        (
            "MESOS_CHECKPOINT",
            if inputs.checkpoint { "1" } else { "0" }.to_string(),
        ),
        ("MESOS_HTTP_COMMAND_EXECUTOR", "1".to_string()),
        (
            "MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD",
            format_duration(inputs.shutdown_grace_period),
        ),
        ("MESOS_CONTAINER_ID", inputs.container_id.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    if inputs.checkpoint {
        env.push((
            "MESOS_RECOVERY_TIMEOUT".to_string(),
            format_duration(inputs.recovery_timeout),
        ));
        env.push((
            "MESOS_SUBSCRIPTION_BACKOFF_MAX".to_string(),
            format_duration(inputs.subscription_backoff_max),
        ));
    }
    if let Some(environment) = &inputs.command.environment {
        for variable in &environment.variables {
            // Secrets need a secret resolver, which Mantle does not have; only plain
            // values are passed on.
            let plain = variable.kind.as_deref().is_none_or(|k| k == "VALUE");
            match (&variable.value, plain) {
                (Some(value), true) => env.push((variable.name.clone(), value.clone())),
                _ => {
                    tracing::warn!(variable = %variable.name, "skipping an environment variable that is not a plain value")
                }
            }
        }
    }
    env
}

#[cfg(test)]
mod tests {
    use super::*;
    use mantle_api::{Environment, Variable};

    #[test]
    fn sandbox_layout() {
        let path = sandbox_dir(
            Path::new("/var/lib/mantle"),
            &AgentId::new("m-S0"),
            &FrameworkId::new("m-0001"),
            &ExecutorId::new("e1"),
            &ContainerId::new("c1"),
        );
        assert_eq!(
            path,
            Path::new("/var/lib/mantle/slaves/m-S0/frameworks/m-0001/executors/e1/runs/c1")
        );
        assert_eq!(slaves_dir(Path::new("/w")), Path::new("/w/slaves"));
        assert_eq!(
            path.parent(),
            Some(
                runs_dir(
                    Path::new("/var/lib/mantle"),
                    &"m-S0".into(),
                    &"m-0001".into(),
                    &"e1".into()
                )
                .as_path()
            )
        );
    }

    #[test]
    fn environment() {
        let mut command = CommandInfo::shell("true");
        command.environment = Some(Environment {
            variables: vec![
                Variable {
                    name: "A".into(),
                    kind: None,
                    value: Some("1".into()),
                    secret: None,
                },
                Variable {
                    name: "MESOS_SANDBOX".into(),
                    kind: Some("VALUE".into()),
                    value: Some("/x".into()),
                    secret: None,
                },
                Variable {
                    name: "S".into(),
                    kind: Some("SECRET".into()),
                    value: None,
                    secret: None,
                },
            ],
        });
        let env = executor_env(&EnvInputs {
            framework_id: &"f".into(),
            executor_id: &"e".into(),
            agent_id: &"a".into(),
            container_id: &"c".into(),
            directory: Path::new("/w/s"),
            agent_endpoint: "10.0.0.1:5051",
            checkpoint: false,
            shutdown_grace_period: Duration::from_secs(5),
            recovery_timeout: Duration::from_secs(900),
            subscription_backoff_max: Duration::from_secs(2),
            command: &command,
        });
        let get = |name: &str| {
            env.iter()
                .rev()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(get("MESOS_FRAMEWORK_ID"), Some("f"));
        assert_eq!(get("MESOS_EXECUTOR_ID"), Some("e"));
        assert_eq!(get("MESOS_DIRECTORY"), Some("/w/s"));
        assert_eq!(get("MESOS_SLAVE_PID"), Some("slave(1)@10.0.0.1:5051"));
        assert_eq!(get("MESOS_CHECKPOINT"), Some("0"));
        assert_eq!(get("MESOS_RECOVERY_TIMEOUT"), None);
        assert_eq!(get("MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD"), Some("5secs"));
        assert_eq!(get("A"), Some("1"));
        // The command's own variables win.
        assert_eq!(get("MESOS_SANDBOX"), Some("/x"));
        assert_eq!(get("S"), None);
    }
}
