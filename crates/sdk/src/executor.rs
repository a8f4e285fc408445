//! The executor client: reads the `MESOS_*` environment an agent gives its executors,
//! subscribes to `POST /api/v1/executor` and sends status updates and framework messages,
//! as the Mesos v1 executor library does (reference §2).
//!
//! The client keeps what Mesos asks an executor to keep: the status updates it sent that
//! the agent has not ACKNOWLEDGED yet, and the tasks it was given for which no update was
//! acknowledged. Both go into the next SUBSCRIBE, so that an agent restarting under a
//! checkpointing framework learns of updates it lost.

use crate::http::{ClientError, HttpClient};
use base64::Engine;
use hyper::StatusCode;
use mantle_api::executor::{Call, Event, MessageCall, Subscribe, UpdateCall};
use mantle_api::json::to_ascii_json;
use mantle_api::{new_status_uuid, ExecutorId, FrameworkId, Source, TaskId, TaskInfo, TaskStatus};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The shutdown grace period when `MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD` is unset: the
/// Mesos agent's default `--executor_shutdown_grace_period`.
pub const DEFAULT_SHUTDOWN_GRACE_PERIOD: Duration = Duration::from_secs(5);

/// How long a call (not the event stream) may take, as in pymesos.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// What the agent tells an executor through its environment.
#[derive(Clone, Debug, PartialEq)]
pub struct ExecutorEnv {
    /// `MESOS_AGENT_ENDPOINT`: the agent's `ip:port`.
    pub agent_endpoint: String,
    /// `MESOS_FRAMEWORK_ID`.
    pub framework_id: FrameworkId,
    /// `MESOS_EXECUTOR_ID`.
    pub executor_id: ExecutorId,
    /// `MESOS_DIRECTORY`: the sandbox path on the host.
    pub directory: Option<PathBuf>,
    /// `MESOS_SANDBOX`: the sandbox path as the executor sees it.
    pub sandbox: Option<PathBuf>,
    /// `MESOS_CHECKPOINT` is `1` (or `true`): the executor should survive an agent
    /// restart by resubscribing.
    pub checkpoint: bool,
    /// `MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD`, or [`DEFAULT_SHUTDOWN_GRACE_PERIOD`].
    pub shutdown_grace_period: Duration,
}

impl ExecutorEnv {
    /// Reads the executor environment of this process.
    pub fn from_env() -> Result<ExecutorEnv, ClientError> {
        let vars: HashMap<String, String> = std::env::vars().collect();
        Self::from_vars(&vars)
    }

    /// Reads the executor environment from a map of variables; errors name the variable.
    pub fn from_vars(vars: &HashMap<String, String>) -> Result<ExecutorEnv, ClientError> {
        let required = |name: &str| -> Result<String, ClientError> {
            match vars.get(name).map(|v| v.trim()) {
                Some(value) if !value.is_empty() => Ok(value.to_string()),
                _ => Err(ClientError::Request(format!(
                    "environment variable {name} is not set"
                ))),
            }
        };
        let optional = |name: &str| vars.get(name).map(|v| v.trim()).filter(|v| !v.is_empty());

        let endpoint = required("MESOS_AGENT_ENDPOINT")?;
        let agent_endpoint = endpoint
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_string();
        if agent_endpoint.is_empty() || agent_endpoint.contains('/') {
            return Err(ClientError::Request(format!(
                "environment variable MESOS_AGENT_ENDPOINT is not an ip:port: {endpoint:?}"
            )));
        }
        let shutdown_grace_period = match optional("MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD") {
            None => DEFAULT_SHUTDOWN_GRACE_PERIOD,
            Some(text) => parse_duration(text).map_err(|e| {
                ClientError::Request(format!(
                    "environment variable MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD: {e}"
                ))
            })?,
        };
        Ok(ExecutorEnv {
            agent_endpoint,
            framework_id: FrameworkId::new(required("MESOS_FRAMEWORK_ID")?),
            executor_id: ExecutorId::new(required("MESOS_EXECUTOR_ID")?),
            directory: optional("MESOS_DIRECTORY").map(PathBuf::from),
            sandbox: optional("MESOS_SANDBOX").map(PathBuf::from),
            checkpoint: matches!(optional("MESOS_CHECKPOINT"), Some("1" | "true")),
            shutdown_grace_period,
        })
    }
}

pub use mantle_api::duration::parse_duration;

/// What the client remembers between subscriptions.
#[derive(Default)]
struct Unacknowledged {
    /// Updates sent but not yet ACKNOWLEDGED, in the order they were sent.
    updates: Vec<TaskStatus>,
    /// Tasks launched on this executor for which no update was acknowledged yet.
    tasks: Vec<TaskInfo>,
}

struct Inner {
    env: ExecutorEnv,
    url: String,
    http: HttpClient,
    state: Mutex<Unacknowledged>,
}

/// A client of the agent's executor API. Cheap to clone; clones share the set of
/// unacknowledged updates and tasks.
#[derive(Clone)]
pub struct Executor {
    inner: Arc<Inner>,
}

impl Executor {
    pub fn new(env: ExecutorEnv) -> Executor {
        let url = format!("http://{}/api/v1/executor", env.agent_endpoint);
        Executor {
            inner: Arc::new(Inner {
                env,
                url,
                http: HttpClient::new(CALL_TIMEOUT),
                state: Mutex::new(Unacknowledged::default()),
            }),
        }
    }

    pub fn env(&self) -> &ExecutorEnv {
        &self.inner.env
    }

    /// The number of status updates sent and not yet ACKNOWLEDGED by the agent.
    pub fn unacknowledged(&self) -> usize {
        self.state().updates.len()
    }

    fn state(&self) -> MutexGuard<'_, Unacknowledged> {
        // The state is a pair of lists that every holder leaves consistent, so a
        // panicked holder does not make it unusable.
        self.inner
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn call(&self, kind: &str) -> Call {
        Call::new(
            self.inner.env.framework_id.clone(),
            self.inner.env.executor_id.clone(),
            kind,
        )
    }

    /// Subscribes (or resubscribes) and returns the event stream. The SUBSCRIBE call
    /// carries the unacknowledged updates and tasks.
    pub async fn subscribe(&self) -> Result<ExecutorEvents, ClientError> {
        let mut call = self.call("SUBSCRIBE");
        {
            let state = self.state();
            call.subscribe = Some(Subscribe {
                unacknowledged_tasks: state.tasks.clone(),
                unacknowledged_updates: state
                    .updates
                    .iter()
                    .map(|status| UpdateCall {
                        status: status.clone(),
                    })
                    .collect(),
            });
        }
        let (_headers, stream) = self
            .inner
            .http
            .stream(&self.inner.url, to_ascii_json(&call), &[])
            .await?;
        tracing::debug!(url = %self.inner.url, "subscribed to the agent");
        Ok(ExecutorEvents {
            stream,
            executor: self.clone(),
        })
    }

    /// Sends a status update. Fills in a fresh `uuid` (unless one is set),
    /// `source: SOURCE_EXECUTOR`, the `timestamp` and the `executor_id` when absent, and
    /// returns the uuid. The update counts as unacknowledged until the agent's
    /// ACKNOWLEDGED arrives on the event stream. If the agent cannot be reached, the
    /// update stays remembered and goes out again with the next SUBSCRIBE, so callers
    /// should not resend it; an update the agent rejected as invalid (400) is forgotten.
    pub async fn send_status(&self, mut status: TaskStatus) -> Result<String, ClientError> {
        let uuid = status.uuid.clone().unwrap_or_else(new_status_uuid);
        status.uuid = Some(uuid.clone());
        status.source = Some(Source::Executor);
        if status.timestamp.is_none() {
            status.timestamp = Some(now_secs());
        }
        if status.executor_id.is_none() {
            status.executor_id = Some(self.inner.env.executor_id.clone());
        }
        let mut call = self.call("UPDATE");
        call.update = Some(UpdateCall {
            status: status.clone(),
        });
        {
            let mut state = self.state();
            state
                .updates
                .retain(|s| s.uuid.as_deref() != Some(uuid.as_str()));
            state.updates.push(status);
        }
        match self
            .inner
            .http
            .post(&self.inner.url, to_ascii_json(&call), &[])
            .await
        {
            Ok(_) => Ok(uuid),
            Err(err) => {
                // A 400 means the agent found the update itself invalid, so it would be
                // refused again; anything else (no connection, 403 before a
                // resubscription, 503 while the agent recovers) is worth another try.
                if matches!(&err, ClientError::Status { status, .. } if *status == StatusCode::BAD_REQUEST)
                {
                    self.state()
                        .updates
                        .retain(|s| s.uuid.as_deref() != Some(uuid.as_str()));
                }
                Err(err)
            }
        }
    }

    /// Sends a framework message (the bytes go out base64 encoded).
    pub async fn send_message(&self, data: &[u8]) -> Result<(), ClientError> {
        let mut call = self.call("MESSAGE");
        call.message = Some(MessageCall {
            data: base64::engine::general_purpose::STANDARD.encode(data),
        });
        self.inner
            .http
            .post(&self.inner.url, to_ascii_json(&call), &[])
            .await?;
        Ok(())
    }

    /// Records what an event tells the client about its unacknowledged state.
    fn observe(&self, event: &Event) {
        let mut state = self.state();
        match event {
            Event::Launch(launch) => remember_task(&mut state.tasks, &launch.task),
            Event::LaunchGroup(group) => {
                for task in &group.task_group.tasks {
                    remember_task(&mut state.tasks, task);
                }
            }
            Event::Acknowledged(ack) => {
                state
                    .updates
                    .retain(|s| s.uuid.as_deref() != Some(ack.uuid.as_str()));
                state.tasks.retain(|t| t.task_id != ack.task_id);
            }
            _ => {}
        }
    }
}

fn remember_task(tasks: &mut Vec<TaskInfo>, task: &TaskInfo) {
    let known = |id: &TaskId| tasks.iter().any(|t| &t.task_id == id);
    if !known(&task.task_id) {
        tasks.push(task.clone());
    }
}

fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or_default()
}

/// The events of one subscription, in order.
pub struct ExecutorEvents {
    stream: crate::http::RecordStream,
    executor: Executor,
}

impl ExecutorEvents {
    /// The next event; `Ok(None)` when the agent closed the stream. ACKNOWLEDGED events
    /// clear the client's unacknowledged update (and task) before they are returned.
    pub async fn next(&mut self) -> Result<Option<Event>, ClientError> {
        let Some(value) = self.stream.next_json().await? else {
            return Ok(None);
        };
        let event = Event::from_value(value).map_err(|message| ClientError::Decode {
            url: self.executor.inner.url.clone(),
            message,
        })?;
        self.executor.observe(&event);
        Ok(Some(event))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mantle_api::executor::{Acknowledged, LaunchEvent};
    use mantle_api::TaskState;

    const BASE: [(&str, &str); 3] = [
        ("MESOS_AGENT_ENDPOINT", "127.0.0.1:5051"),
        ("MESOS_FRAMEWORK_ID", "f"),
        ("MESOS_EXECUTOR_ID", "e"),
    ];

    fn minimal() -> ExecutorEnv {
        ExecutorEnv {
            agent_endpoint: "127.0.0.1:5051".into(),
            framework_id: FrameworkId::new("f"),
            executor_id: ExecutorId::new("e"),
            directory: None,
            sandbox: None,
            checkpoint: false,
            shutdown_grace_period: DEFAULT_SHUTDOWN_GRACE_PERIOD,
        }
    }

    /// BASE with some variables added or replaced.
    fn with(extra: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
        let mut vars: Vec<(&str, &str)> = BASE
            .iter()
            .filter(|(k, _)| !extra.iter().any(|(e, _)| e == k))
            .copied()
            .collect();
        vars.extend_from_slice(extra);
        vars
    }

    fn check_env(vars: &[(&str, &str)], expected: Result<ExecutorEnv, &str>) {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        match (ExecutorEnv::from_vars(&map), expected) {
            (Ok(got), Ok(want)) => assert_eq!(got, want, "{vars:?}"),
            (Err(err), Err(fragment)) => assert!(
                err.to_string().contains(fragment),
                "{vars:?}: {err} lacks {fragment:?}"
            ),
            (got, want) => panic!("{vars:?}: got {got:?}, want {want:?}"),
        }
    }

    #[test]
    fn environments() {
        check_env(&BASE, Ok(minimal()));
        check_env(
            &with(&[
                ("MESOS_DIRECTORY", "/var/lib/mantle/slaves/s/run"),
                ("MESOS_SANDBOX", "/mnt/mesos/sandbox"),
                ("MESOS_CHECKPOINT", "1"),
                ("MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD", "10secs"),
            ]),
            Ok(ExecutorEnv {
                directory: Some("/var/lib/mantle/slaves/s/run".into()),
                sandbox: Some("/mnt/mesos/sandbox".into()),
                checkpoint: true,
                shutdown_grace_period: Duration::from_secs(10),
                ..minimal()
            }),
        );
        check_env(&with(&[("MESOS_CHECKPOINT", "0")]), Ok(minimal()));
        check_env(&with(&[("MESOS_CHECKPOINT", "")]), Ok(minimal()));
        check_env(
            &with(&[("MESOS_CHECKPOINT", "true")]),
            Ok(ExecutorEnv {
                checkpoint: true,
                ..minimal()
            }),
        );
        check_env(
            &with(&[("MESOS_AGENT_ENDPOINT", "http://127.0.0.1:5051/")]),
            Ok(minimal()),
        );
        check_env(&with(&[("MESOS_DIRECTORY", "")]), Ok(minimal()));
        check_env(&BASE[1..], Err("MESOS_AGENT_ENDPOINT is not set"));
        check_env(&[BASE[0], BASE[2]], Err("MESOS_FRAMEWORK_ID is not set"));
        check_env(&BASE[..2], Err("MESOS_EXECUTOR_ID is not set"));
        check_env(
            &with(&[("MESOS_FRAMEWORK_ID", " ")]),
            Err("MESOS_FRAMEWORK_ID is not set"),
        );
        check_env(
            &with(&[("MESOS_AGENT_ENDPOINT", "host:1/path")]),
            Err("MESOS_AGENT_ENDPOINT is not an ip:port"),
        );
        check_env(
            &with(&[("MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD", "5s")]),
            Err("MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD: '5s' needs a unit"),
        );
    }

    fn task(id: &str) -> TaskInfo {
        serde_json::from_value(serde_json::json!({
            "name": id, "task_id": {"value": id}, "agent_id": {"value": "a"},
            "command": {"value": "true"}
        }))
        .unwrap()
    }

    #[test]
    fn acknowledgements_clear_the_unacknowledged_state() {
        let executor = Executor::new(minimal());
        let mut status = TaskStatus::new(TaskId::new("t1"), TaskState::Running);
        status.uuid = Some(new_status_uuid());
        let uuid = status.uuid.clone().unwrap();
        executor.state().updates.push(status);
        executor.observe(&Event::Launch(Box::new(LaunchEvent { task: task("t1") })));
        executor.observe(&Event::Launch(Box::new(LaunchEvent { task: task("t1") })));
        executor.observe(&Event::Launch(Box::new(LaunchEvent { task: task("t2") })));
        assert_eq!(executor.unacknowledged(), 1);
        assert_eq!(executor.state().tasks.len(), 2);

        let other = Acknowledged {
            task_id: TaskId::new("t1"),
            uuid: new_status_uuid(),
        };
        executor.observe(&Event::Acknowledged(other));
        assert_eq!(
            executor.unacknowledged(),
            1,
            "an unknown uuid leaves the update"
        );
        assert_eq!(
            executor.state().tasks.len(),
            1,
            "any acknowledgement for t1 clears the task"
        );

        executor.observe(&Event::Acknowledged(Acknowledged {
            task_id: TaskId::new("t1"),
            uuid,
        }));
        assert_eq!(executor.unacknowledged(), 0);
        assert_eq!(executor.state().tasks[0].task_id, TaskId::new("t2"));
    }
}
