//! The status update manager (reference §5.3): one ordered stream of updates per task, of
//! which only the head is in flight to the master. The head is resent after 10 s, then
//! after twice as long each time up to 10 min, until the master relays the framework's
//! acknowledgement for its uuid; then the next update goes out.

use mantle_api::internal::StatusUpdate;
use mantle_api::{FrameworkId, TaskId, TaskStatus};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet, VecDeque};
use std::time::Duration;

/// The first retry interval of an unacknowledged update.
pub const STATUS_UPDATE_RETRY_INTERVAL_MIN: Duration = Duration::from_secs(10);
/// The retry interval stops doubling here.
pub const STATUS_UPDATE_RETRY_INTERVAL_MAX: Duration = Duration::from_secs(600);

/// Why an update or an acknowledgement was not taken.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum UpdateError {
    #[error("status update has no uuid")]
    MissingUuid,
    #[error("duplicate status update {uuid} for task {task_id}")]
    Duplicate { task_id: TaskId, uuid: String },
    #[error("no status update stream for task {task_id} of framework {framework_id}")]
    UnknownStream {
        framework_id: FrameworkId,
        task_id: TaskId,
    },
    #[error(
        "acknowledgement {uuid} for task {task_id} does not match the pending update {expected}"
    )]
    UnexpectedAck {
        task_id: TaskId,
        uuid: String,
        expected: String,
    },
}

/// One line of a task's checkpointed update stream (`task.updates`): an update the agent
/// took, or the master's acknowledgement of one.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UpdateRecord {
    Update(Box<TaskStatus>),
    Ack(String),
}

#[derive(Debug, Default)]
struct Stream {
    /// The updates not yet acknowledged; the front one is the head.
    pending: VecDeque<TaskStatus>,
    /// Every uuid this stream has taken, to recognise an executor's retries.
    received: HashSet<String>,
    /// When the head was sent and will be resent; `None` while it has not been sent.
    retry: Option<Retry>,
}

#[derive(Clone, Copy, Debug, PartialEq)]
struct Retry {
    deadline: Duration,
    interval: Duration,
}

/// What an acknowledgement completed.
#[derive(Debug, PartialEq)]
pub struct Acked {
    /// The update that was acknowledged.
    pub status: TaskStatus,
    /// The next update, when it should go to the master now.
    pub next: Option<StatusUpdate>,
}

/// All status update streams of the agent. Time is the agent's monotonic clock.
#[derive(Debug, Default)]
pub struct StatusUpdateManager {
    streams: BTreeMap<(FrameworkId, TaskId), Stream>,
}

impl StatusUpdateManager {
    /// Appends an update (its `uuid` must be set) to its task's stream. Returns the update
    /// to forward now when it became the head and the master is reachable.
    pub fn update(
        &mut self,
        framework_id: &FrameworkId,
        status: TaskStatus,
        now: Duration,
        connected: bool,
    ) -> Result<Option<StatusUpdate>, UpdateError> {
        let Some(uuid) = status.uuid.clone() else {
            return Err(UpdateError::MissingUuid);
        };
        let key = (framework_id.clone(), status.task_id.clone());
        let stream = self.streams.entry(key).or_default();
        if !stream.received.insert(uuid.clone()) {
            return Err(UpdateError::Duplicate {
                task_id: status.task_id,
                uuid,
            });
        }
        stream.pending.push_back(status);
        if stream.pending.len() > 1 || !connected {
            return Ok(None);
        }
        Ok(send_head(framework_id, stream, now))
    }

    /// Takes the master's acknowledgement of the head of a stream. The stream ends when
    /// its terminal update is acknowledged, dropping anything queued behind it, as Mesos
    /// does.
    pub fn acknowledge(
        &mut self,
        framework_id: &FrameworkId,
        task_id: &TaskId,
        uuid: &str,
        now: Duration,
        connected: bool,
    ) -> Result<Acked, UpdateError> {
        let key = (framework_id.clone(), task_id.clone());
        let Some(stream) = self.streams.get_mut(&key) else {
            return Err(UpdateError::UnknownStream {
                framework_id: framework_id.clone(),
                task_id: task_id.clone(),
            });
        };
        let expected = stream
            .pending
            .front()
            .and_then(|s| s.uuid.clone())
            .unwrap_or_default();
        if expected != uuid {
            return Err(UpdateError::UnexpectedAck {
                task_id: task_id.clone(),
                uuid: uuid.to_string(),
                expected,
            });
        }
        let Some(status) = stream.pending.pop_front() else {
            return Err(UpdateError::UnknownStream {
                framework_id: framework_id.clone(),
                task_id: task_id.clone(),
            });
        };
        stream.retry = None;
        if status.state.is_terminal() {
            if !stream.pending.is_empty() {
                tracing::warn!(
                    task_id = %task_id,
                    dropped = stream.pending.len(),
                    "terminal status update acknowledged while later updates are pending"
                );
            }
            self.streams.remove(&key);
            return Ok(Acked { status, next: None });
        }
        let next = if connected {
            send_head(framework_id, stream, now)
        } else {
            None
        };
        Ok(Acked { status, next })
    }

    /// The heads whose retry time has come; their retry interval doubles.
    pub fn due(&mut self, now: Duration) -> Vec<StatusUpdate> {
        let mut out = Vec::new();
        for ((framework_id, _), stream) in &mut self.streams {
            let Some(retry) = stream.retry else { continue };
            if retry.deadline > now {
                continue;
            }
            let interval = (retry.interval * 2).min(STATUS_UPDATE_RETRY_INTERVAL_MAX);
            stream.retry = Some(Retry {
                deadline: now + interval,
                interval,
            });
            if let Some(head) = stream.pending.front() {
                out.push(StatusUpdate {
                    framework_id: framework_id.clone(),
                    status: head.clone(),
                });
            }
        }
        out
    }

    /// When the next head is due to be resent, if any was sent and waits for its
    /// acknowledgement.
    pub fn next_retry(&self) -> Option<Duration> {
        self.streams
            .values()
            .filter(|s| !s.pending.is_empty())
            .filter_map(|s| s.retry.map(|r| r.deadline))
            .min()
    }

    /// Every head, sent afresh after the agent (re)registered.
    pub fn resend_all(&mut self, now: Duration) -> Vec<StatusUpdate> {
        let mut out = Vec::new();
        for ((framework_id, _), stream) in &mut self.streams {
            out.extend(send_head(framework_id, stream, now));
        }
        out
    }

    /// Forgets the retry times while the master is unreachable, so that nothing is sent
    /// until [`StatusUpdateManager::resend_all`].
    pub fn pause(&mut self) {
        for stream in self.streams.values_mut() {
            stream.retry = None;
        }
    }

    /// Drops every stream of a framework that is gone.
    pub fn cleanup_framework(&mut self, framework_id: &FrameworkId) {
        self.streams.retain(|(f, _), _| f != framework_id);
    }

    /// Rebuilds a task's stream from its checkpointed records after a restart: every
    /// update taken, in order, and every acknowledgement the master passed back. Returns
    /// the updates taken (oldest first) and whether the stream had ended, its terminal
    /// update acknowledged. Nothing is in flight until [`StatusUpdateManager::resend_all`].
    pub fn recover(
        &mut self,
        framework_id: &FrameworkId,
        task_id: &TaskId,
        records: &[UpdateRecord],
    ) -> (Vec<TaskStatus>, bool) {
        let mut stream = Stream::default();
        let mut taken = Vec::new();
        let mut ended = false;
        for record in records {
            match record {
                UpdateRecord::Update(status) => {
                    let Some(uuid) = status.uuid.clone() else {
                        continue;
                    };
                    if stream.received.insert(uuid) {
                        stream.pending.push_back(TaskStatus::clone(status));
                        taken.push(TaskStatus::clone(status));
                    }
                }
                UpdateRecord::Ack(uuid) => {
                    let head = stream.pending.front().and_then(|s| s.uuid.as_deref());
                    if head != Some(uuid.as_str()) {
                        continue;
                    }
                    if let Some(acked) = stream.pending.pop_front() {
                        ended |= acked.state.is_terminal();
                    }
                }
            }
        }
        if !ended {
            self.streams
                .insert((framework_id.clone(), task_id.clone()), stream);
        }
        (taken, ended)
    }

    /// The number of updates not yet acknowledged for one task.
    pub fn pending(&self, framework_id: &FrameworkId, task_id: &TaskId) -> usize {
        self.streams
            .get(&(framework_id.clone(), task_id.clone()))
            .map_or(0, |s| s.pending.len())
    }

    /// Whether a framework has any unacknowledged update.
    pub fn has_pending(&self, framework_id: &FrameworkId) -> bool {
        self.streams
            .iter()
            .any(|((f, _), s)| f == framework_id && !s.pending.is_empty())
    }
}

/// Sends the head of a stream, if it has one, and starts its retry timer.
fn send_head(
    framework_id: &FrameworkId,
    stream: &mut Stream,
    now: Duration,
) -> Option<StatusUpdate> {
    let status = stream.pending.front().cloned()?;
    let interval = STATUS_UPDATE_RETRY_INTERVAL_MIN;
    stream.retry = Some(Retry {
        deadline: now + interval,
        interval,
    });
    Some(StatusUpdate {
        framework_id: framework_id.clone(),
        status,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use mantle_api::TaskState;

    fn status(task: &str, state: TaskState, uuid: &str) -> TaskStatus {
        let mut s = TaskStatus::new(TaskId::new(task), state);
        s.uuid = Some(uuid.to_string());
        s
    }

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    /// Applies a step and renders what it sent as `task:uuid` strings, or the error.
    enum Step {
        Update(&'static str, TaskState, &'static str),
        Ack(&'static str, &'static str),
        Due,
        Pause,
        Resend,
    }

    fn check(connected: bool, steps: &[(u64, Step, &str)]) {
        let f = FrameworkId::new("f");
        let mut m = StatusUpdateManager::default();
        let mut connected = connected;
        for (i, (at, step, expected)) in steps.iter().enumerate() {
            let now = secs(*at);
            let render = |updates: Vec<StatusUpdate>| -> String {
                updates
                    .iter()
                    .map(|u| {
                        format!(
                            "{}:{}",
                            u.status.task_id,
                            u.status.uuid.clone().unwrap_or_default()
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(",")
            };
            let got = match step {
                Step::Update(task, state, uuid) => {
                    match m.update(&f, status(task, *state, uuid), now, connected) {
                        Ok(sent) => render(sent.into_iter().collect()),
                        Err(e) => format!("error: {e}"),
                    }
                }
                Step::Ack(task, uuid) => {
                    match m.acknowledge(&f, &TaskId::new(*task), uuid, now, connected) {
                        Ok(acked) => format!(
                            "acked {} next [{}]",
                            acked.status.uuid.unwrap_or_default(),
                            render(acked.next.into_iter().collect())
                        ),
                        Err(e) => format!("error: {e}"),
                    }
                }
                Step::Due => render(m.due(now)),
                Step::Pause => {
                    connected = false;
                    m.pause();
                    String::new()
                }
                Step::Resend => {
                    connected = true;
                    render(m.resend_all(now))
                }
            };
            assert_eq!(got, *expected, "step {i}");
        }
    }

    use Step::*;
    use TaskState::*;

    #[test]
    fn only_the_head_is_in_flight() {
        check(
            true,
            &[
                (0, Update("t", Running, "u1"), "t:u1"),
                (1, Update("t", Finished, "u2"), ""),
                (2, Update("x", Running, "v1"), "x:v1"),
                (3, Ack("t", "u1"), "acked u1 next [t:u2]"),
                (4, Ack("t", "u2"), "acked u2 next []"),
                (
                    5,
                    Ack("t", "u2"),
                    "error: no status update stream for task t of framework f",
                ),
            ],
        );
    }

    #[test]
    fn retries_double_up_to_the_cap() {
        check(
            true,
            &[
                (0, Update("t", Running, "u1"), "t:u1"),
                (9, Due, ""),
                (10, Due, "t:u1"),
                (29, Due, ""),
                (30, Due, "t:u1"),
                (70, Due, "t:u1"),
                (150, Due, "t:u1"),
                (310, Due, "t:u1"),
                (630, Due, "t:u1"),
                (1229, Due, ""),
                (1230, Due, "t:u1"),
                (1830, Due, "t:u1"),
                (1831, Ack("t", "u1"), "acked u1 next []"),
                (5000, Due, ""),
            ],
        );
    }

    #[test]
    fn duplicates_and_wrong_acks_are_refused() {
        check(
            true,
            &[
                (0, Update("t", Running, "u1"), "t:u1"),
                (
                    0,
                    Update("t", Running, "u1"),
                    "error: duplicate status update u1 for task t",
                ),
                (0, Update("t", Killed, "u2"), ""),
                (
                    1,
                    Ack("t", "u2"),
                    "error: acknowledgement u2 for task t does not match the pending update u1",
                ),
            ],
        );
    }

    #[test]
    fn nothing_is_sent_while_disconnected() {
        check(
            false,
            &[
                (0, Update("t", Running, "u1"), ""),
                (60, Due, ""),
                (61, Resend, "t:u1"),
                (62, Pause, ""),
                (100, Due, ""),
                (100, Update("t", Failed, "u2"), ""),
                (101, Resend, "t:u1"),
                (102, Ack("t", "u1"), "acked u1 next [t:u2]"),
                (112, Due, "t:u2"),
            ],
        );
    }

    #[test]
    fn recovery_replays_updates_and_acknowledgements() {
        let f = FrameworkId::new("f");
        let t = TaskId::new("t");
        let records = [
            UpdateRecord::Update(Box::new(status("t", Starting, "u1"))),
            UpdateRecord::Ack("u1".into()),
            UpdateRecord::Update(Box::new(status("t", Running, "u2"))),
            // An executor's retry of an update already taken is not taken twice.
            UpdateRecord::Update(Box::new(status("t", Running, "u2"))),
            UpdateRecord::Ack("other".into()),
            UpdateRecord::Update(Box::new(status("t", Finished, "u3"))),
        ];
        let mut m = StatusUpdateManager::default();
        let (taken, ended) = m.recover(&f, &t, &records);
        assert_eq!(taken.len(), 3);
        assert!(!ended);
        assert_eq!(m.pending(&f, &t), 2);
        let sent: Vec<String> = m
            .resend_all(secs(0))
            .into_iter()
            .map(|u| u.status.uuid.unwrap_or_default())
            .collect();
        assert_eq!(sent, ["u2"]);
        assert!(matches!(
            m.update(&f, status("t", Finished, "u3"), secs(1), true),
            Err(UpdateError::Duplicate { .. })
        ));

        let mut done = records.to_vec();
        done.extend([
            UpdateRecord::Ack("u2".into()),
            UpdateRecord::Ack("u3".into()),
        ]);
        let mut m = StatusUpdateManager::default();
        assert!(m.recover(&f, &t, &done).1);
        assert_eq!(m.pending(&f, &t), 0);
    }

    #[test]
    fn terminal_ack_ends_the_stream() {
        check(
            true,
            &[
                (0, Update("t", Failed, "u1"), "t:u1"),
                (0, Update("t", Running, "u2"), ""),
                (1, Ack("t", "u1"), "acked u1 next []"),
                (30, Due, ""),
            ],
        );
    }
}
