//! `mantle execute`: what `mesos-execute` did. It registers a framework through the Rust
//! SDK, launches `--instances` copies of one command task on the offers it gets, waits
//! for every task to end, tears the framework down and reports. The exit status is
//! nonzero when a task did not finish (TASK_FINISHED), as with `mesos-execute`.
//!
//! The planning (which tasks fit an offer, what the updates mean) is [`Run`], a plain
//! state machine the tests drive without a master; [`execute`] is the shell around it.

use super::progress::Progress;
use super::table::{state_name, Table};
use anyhow::{anyhow, bail, Context};
use mantle_api::scheduler::Event;
use mantle_api::{Filters, FrameworkInfo, Offer, Resources, TaskInfo, TaskState, TaskStatus};
use mantle_sdk::scheduler::{Scheduler, SchedulerEvent, SubscribeOptions};
use serde_json::{json, Value};
use std::collections::{BTreeMap, VecDeque};
use std::process::ExitCode;
use std::time::Duration;

/// How long `execute` keeps trying to reach the master before it gives up.
const SUBSCRIBE_FOR: Duration = Duration::from_secs(15);

/// How long an agent whose offer could not hold another task is filtered: short, since
/// its resources free up as tasks end.
const REFUSE_WHILE_WAITING: f64 = 1.0;

/// Above this many tasks, the report lists only those that did not finish.
const LIST_ALL_UP_TO: usize = 20;

/// What `execute` launches.
pub struct Spec {
    pub name: String,
    pub command: String,
    pub resources: Resources,
    pub docker_image: Option<String>,
    pub instances: u32,
}

/// One task's last known state.
#[derive(Clone, Debug, Default)]
pub struct Outcome {
    pub state: Option<TaskState>,
    pub agent_id: String,
    pub hostname: String,
    pub message: String,
    pub reason: String,
}

/// The tasks of one `execute`, from waiting for an offer to their ends.
pub struct Run {
    spec: Spec,
    /// Tasks not launched yet, in order.
    pending: VecDeque<String>,
    pub tasks: BTreeMap<String, Outcome>,
    /// The order tasks were named in, for the report.
    order: Vec<String>,
}

/// How many tasks are where.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub total: usize,
    pub waiting: usize,
    pub running: usize,
    pub finished: usize,
    pub failed: usize,
}

impl Run {
    /// Task ids are the name for one instance, `<name>-<i>` (from 0) for several.
    pub fn new(spec: Spec) -> Run {
        let order: Vec<String> = if spec.instances == 1 {
            vec![spec.name.clone()]
        } else {
            (0..spec.instances)
                .map(|i| format!("{}-{i}", spec.name))
                .collect()
        };
        let tasks = order
            .iter()
            .map(|id| (id.clone(), Outcome::default()))
            .collect();
        Run {
            spec,
            pending: order.iter().cloned().collect(),
            tasks,
            order,
        }
    }

    /// The tasks that fit `offer`, taken from the pending ones in order.
    pub fn tasks_for(&mut self, offer: &Offer) -> anyhow::Result<Vec<TaskInfo>> {
        let mut free = Resources::from_wire("offer.resources", &offer.resources)
            .map_err(|e| anyhow!("offer {}: {e}", offer.id.value))?;
        let mut launch = Vec::new();
        while !self.pending.is_empty() && free.contains(&self.spec.resources) {
            let Some(id) = self.pending.pop_front() else {
                break;
            };
            free.subtract(&self.spec.resources);
            launch.push(self.task_info(&id, offer)?);
            if let Some(outcome) = self.tasks.get_mut(&id) {
                outcome.state = Some(TaskState::Staging);
                outcome.agent_id = offer.agent_id.value.to_string();
                outcome.hostname = offer.hostname.clone();
            }
        }
        Ok(launch)
    }

    fn task_info(&self, id: &str, offer: &Offer) -> anyhow::Result<TaskInfo> {
        let mut task = json!({
            "name": self.spec.name,
            "task_id": {"value": id},
            "agent_id": {"value": offer.agent_id.value},
            "resources": self.spec.resources.to_wire(),
            "command": {"value": self.spec.command, "shell": true},
        });
        if let Some(image) = &self.spec.docker_image {
            task["container"] = json!({
                "type": "DOCKER",
                "docker": {"image": image, "network": "HOST"},
            });
        }
        serde_json::from_value(task).with_context(|| format!("building task {id}"))
    }

    /// Whether tasks still wait for an offer.
    pub fn waiting(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Records an update; true when it is the task's end (the first terminal update).
    pub fn update(&mut self, status: &TaskStatus) -> bool {
        let Some(outcome) = self.tasks.get_mut(status.task_id.as_str()) else {
            return false;
        };
        if outcome.state.is_some_and(TaskState::is_terminal) {
            return false;
        }
        outcome.state = Some(status.state);
        if let Some(agent) = &status.agent_id {
            outcome.agent_id = agent.value.to_string();
        }
        outcome.message = status.message.clone().unwrap_or_default();
        outcome.reason = status
            .reason
            .map(|r| r.as_str().to_string())
            .unwrap_or_default();
        status.state.is_terminal()
    }

    pub fn counts(&self) -> Counts {
        let mut counts = Counts {
            total: self.tasks.len(),
            ..Counts::default()
        };
        for outcome in self.tasks.values() {
            match outcome.state {
                None => counts.waiting += 1,
                Some(TaskState::Finished) => counts.finished += 1,
                Some(state) if state.is_terminal() => counts.failed += 1,
                Some(_) => counts.running += 1,
            }
        }
        counts
    }

    pub fn done(&self) -> bool {
        let counts = self.counts();
        counts.finished + counts.failed == counts.total
    }

    /// The report for machines: one document.
    pub fn report_json(&self, framework_id: &str) -> Value {
        let counts = self.counts();
        let tasks: Vec<Value> = self
            .order
            .iter()
            .map(|id| {
                let outcome = &self.tasks[id];
                json!({
                    "task_id": id,
                    "state": outcome.state.map(TaskState::as_str),
                    "agent_id": outcome.agent_id,
                    "hostname": outcome.hostname,
                    "message": outcome.message,
                    "reason": outcome.reason,
                })
            })
            .collect();
        json!({
            "framework_id": framework_id,
            "tasks": tasks,
            "total": counts.total,
            "finished": counts.finished,
            "failed": counts.failed,
        })
    }

    /// The report for people: the tasks (only those that did not finish when there are
    /// many) and a summary line.
    pub fn report_text(&self) -> String {
        let mut table = Table::new(&["TASK", "STATE", "AGENT", "MESSAGE"]);
        let many = self.order.len() > LIST_ALL_UP_TO;
        for id in &self.order {
            let outcome = &self.tasks[id];
            if many && outcome.state == Some(TaskState::Finished) {
                continue;
            }
            let state = outcome
                .state
                .map_or("NOT LAUNCHED", |s| state_name(s.as_str()));
            let mut message = outcome.message.clone();
            if !outcome.reason.is_empty() {
                message = format!("{message} ({})", outcome.reason).trim().to_string();
            }
            table.row(vec![
                id.clone(),
                state.to_string(),
                outcome.hostname.clone(),
                message,
            ]);
        }
        let counts = self.counts();
        let mut out = if table.is_empty() {
            String::new()
        } else {
            table.render()
        };
        out.push_str(&format!(
            "{} task(s): {} finished, {} failed\n",
            counts.total,
            counts.finished,
            counts.total - counts.finished
        ));
        out
    }
}

/// The user tasks run as: `--user`, else whoever runs `mantle execute`.
pub fn default_user() -> String {
    // SAFETY: getuid has no preconditions; getpwuid_r writes only into the buffers it is
    // given, and the name is read before they go out of scope.
    unsafe {
        let uid = libc::getuid();
        let mut pwd: libc::passwd = std::mem::zeroed();
        let mut buf = vec![0 as libc::c_char; 4096];
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        let rc = libc::getpwuid_r(uid, &mut pwd, buf.as_mut_ptr(), buf.len(), &mut result);
        if rc == 0 && !result.is_null() && !pwd.pw_name.is_null() {
            return std::ffi::CStr::from_ptr(pwd.pw_name)
                .to_string_lossy()
                .into_owned();
        }
    }
    std::env::var("USER").unwrap_or_else(|_| "root".into())
}

/// Runs the tasks of `spec` through the master at `master` until they all ended.
pub async fn execute(
    master: &str,
    framework: FrameworkInfo,
    spec: Spec,
    as_json: bool,
) -> anyhow::Result<ExitCode> {
    let mut run = Run::new(spec);
    let options = SubscribeOptions {
        give_up_after: SUBSCRIBE_FOR,
        ..SubscribeOptions::default()
    };
    let (scheduler, mut events) = Scheduler::subscribe_with(master, framework, options)
        .await
        .map_err(|e| anyhow!("cannot subscribe to master {master}: {e}"))?;
    let framework_id = scheduler
        .framework_id()
        .map(|id| id.value)
        .unwrap_or_default();
    eprintln!("subscribed as framework {framework_id}");
    let mut progress = Progress::new(run.counts().total);
    let interrupted = crate::shutdown_signal();
    tokio::pin!(interrupted);
    let ended = loop {
        let event = tokio::select! {
            _ = &mut interrupted => break Err(anyhow!("interrupted")),
            event = events.next() => event,
        };
        let event = match event {
            None => break Err(anyhow!("the master ended the subscription")),
            Some(SchedulerEvent::Disconnected { reason }) => {
                progress.note(&format!("disconnected from the master: {reason}"));
                continue;
            }
            Some(SchedulerEvent::Connected { .. }) => continue,
            Some(SchedulerEvent::Event(event)) => event,
        };
        match event {
            Event::Offers(offers) => {
                if let Err(error) = use_offers(&scheduler, &mut run, offers.offers).await {
                    break Err(error);
                }
            }
            Event::Update(update) => {
                let status = update.status;
                if let Err(error) = scheduler.acknowledge(&status).await {
                    progress.note(&format!(
                        "acknowledging the update of task {}: {error}",
                        status.task_id.value
                    ));
                }
                run.update(&status);
                progress.update(&status, run.counts());
                if run.done() {
                    break Ok(());
                }
            }
            Event::Error(error) => break Err(anyhow!("the master sent ERROR: {}", error.message)),
            _ => {}
        }
    };
    progress.finish();
    if let Err(error) = scheduler.teardown().await {
        eprintln!("mantle: tearing down framework {framework_id}: {error}");
    }
    if as_json {
        println!("{}", run.report_json(&framework_id));
    } else {
        print!("{}", run.report_text());
    }
    ended?;
    let counts = run.counts();
    Ok(if counts.finished == counts.total {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Launches what fits each offer and declines the rest; stops offers once every task is
/// launched.
async fn use_offers(
    scheduler: &Scheduler,
    run: &mut Run,
    offers: Vec<Offer>,
) -> anyhow::Result<()> {
    for offer in offers {
        let tasks = run.tasks_for(&offer)?;
        let filters = Some(Filters {
            refuse_seconds: REFUSE_WHILE_WAITING,
        });
        let result = if tasks.is_empty() {
            scheduler.decline(vec![offer.id.clone()], filters).await
        } else {
            scheduler.launch(offer.id.clone(), tasks, filters).await
        };
        if let Err(error) = result {
            bail!("answering offer {}: {error}", offer.id.value);
        }
    }
    if !run.waiting() {
        scheduler
            .suppress(Vec::new())
            .await
            .map_err(|e| anyhow!("suppressing offers: {e}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(instances: u32) -> Spec {
        Spec {
            name: "job".into(),
            command: "true".into(),
            resources: Resources::parse_text("cpus:1;mem:128", "*").unwrap(),
            docker_image: None,
            instances,
        }
    }

    fn offer(id: &str, resources: &str) -> Offer {
        serde_json::from_value(json!({
            "id": {"value": id},
            "framework_id": {"value": "f"},
            "agent_id": {"value": format!("agent-{id}")},
            "hostname": format!("host-{id}"),
            "resources": Resources::parse_text(resources, "*").unwrap().to_wire(),
        }))
        .unwrap()
    }

    fn status(task: &str, state: TaskState) -> TaskStatus {
        TaskStatus::new(mantle_api::TaskId::new(task), state)
    }

    #[test]
    fn one_instance_is_named_after_the_job() {
        let mut run = Run::new(spec(1));
        let tasks = run.tasks_for(&offer("o1", "cpus:4;mem:1024")).unwrap();
        assert_eq!(tasks.len(), 1);
        assert_eq!(tasks[0].task_id.as_str(), "job");
        assert_eq!(tasks[0].agent_id.as_str(), "agent-o1");
        assert_eq!(
            tasks[0].command.as_ref().unwrap().value.as_deref(),
            Some("true")
        );
        assert!(tasks[0].container.is_none());
        assert!(!run.waiting());
    }

    #[test]
    fn offers_are_packed_in_order() {
        let mut run = Run::new(spec(5));
        let first = run.tasks_for(&offer("o1", "cpus:2.5;mem:1024")).unwrap();
        let ids: Vec<&str> = first.iter().map(|t| t.task_id.as_str()).collect();
        assert_eq!(ids, ["job-0", "job-1"]);
        assert!(run
            .tasks_for(&offer("o2", "cpus:4;mem:100"))
            .unwrap()
            .is_empty());
        let second = run.tasks_for(&offer("o3", "cpus:8;mem:8192")).unwrap();
        let ids: Vec<&str> = second.iter().map(|t| t.task_id.as_str()).collect();
        assert_eq!(ids, ["job-2", "job-3", "job-4"]);
        assert!(!run.waiting());
        assert_eq!(
            run.counts(),
            Counts {
                total: 5,
                waiting: 0,
                running: 5,
                finished: 0,
                failed: 0
            }
        );
    }

    #[test]
    fn docker_images_make_docker_containers() {
        let mut spec = spec(1);
        spec.docker_image = Some("alpine:3".into());
        let mut run = Run::new(spec);
        let tasks = run.tasks_for(&offer("o1", "cpus:1;mem:128")).unwrap();
        assert_eq!(
            tasks[0].container,
            Some(Box::new(
                json!({"type": "DOCKER", "docker": {"image": "alpine:3", "network": "HOST"}})
            ))
        );
    }

    #[test]
    fn updates_end_tasks_once() {
        let mut run = Run::new(spec(2));
        run.tasks_for(&offer("o1", "cpus:2;mem:256")).unwrap();
        assert!(!run.update(&status("job-0", TaskState::Running)));
        assert!(run.update(&status("job-0", TaskState::Finished)));
        // A later update of an ended task (a retried one) changes nothing.
        assert!(!run.update(&status("job-0", TaskState::Failed)));
        assert!(!run.update(&status("other", TaskState::Failed)));
        assert!(!run.done());
        let mut failed = status("job-1", TaskState::Failed);
        failed.message = Some("Command exited with status 3".into());
        assert!(run.update(&failed));
        assert!(run.done());
        assert_eq!(
            run.counts(),
            Counts {
                total: 2,
                waiting: 0,
                running: 0,
                finished: 1,
                failed: 1
            }
        );
        let report = run.report_json("fw");
        assert_eq!(report["finished"], 1);
        assert_eq!(report["failed"], 1);
        assert_eq!(report["tasks"][0]["state"], "TASK_FINISHED");
        assert_eq!(
            report["tasks"][1]["message"],
            "Command exited with status 3"
        );
        assert_eq!(report["tasks"][1]["hostname"], "host-o1");
        let text = run.report_text();
        assert!(
            text.ends_with("2 task(s): 1 finished, 1 failed\n"),
            "{text}"
        );
        assert!(
            text.contains("job-1  FAILED    host-o1  Command exited with status 3"),
            "{text}"
        );
    }
}
