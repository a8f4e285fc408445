//! The executor lifecycle of the core (reference §7): launching executors for RunTask and
//! RunTaskGroup (synthesising the command executor), queueing tasks until SUBSCRIBE,
//! the executor API calls, kills, shutdowns with their grace period, the registration
//! timeout, and the failures reported when an executor's process exits.

use super::recovery::{self, Checkpoint};
use super::{
    Action, ContainerLimits, Core, Executor, ExecutorState, Framework, Limitation, Now, Out,
    Pending, StreamId, Task, LAUNCH_FAILED_WAIT_STATUS, MAX_COMPLETED_EXECUTORS_PER_FRAMEWORK,
    MAX_COMPLETED_FRAMEWORKS, MAX_COMPLETED_TASKS_PER_EXECUTOR,
};
use mantle_api::error::ApiError;
use mantle_api::executor::{
    Acknowledged, Event, KillEvent, LaunchEvent, LaunchGroupEvent, Subscribe, Subscribed,
};
use mantle_api::internal::{AgentCall, ExecutorExited, ExecutorMessage};
use mantle_api::{
    validate_id, CommandInfo, ContainerId, ExecutorId, ExecutorInfo, FrameworkId, FrameworkInfo,
    KillPolicy, Reason, Source, TaskGroupInfo, TaskId, TaskInfo, TaskState, TaskStatus,
};
use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

/// The command executor's name, as Mesos builds it: the command cut at 15 characters.
pub(crate) fn command_executor_name(task_id: &TaskId, command: &str) -> String {
    let mut short: String = command.chars().take(15).collect();
    if command.chars().count() > 15 {
        short.push_str("...");
    }
    format!("Command Executor (Task: {task_id}) (Command: sh -c '{short}')")
}

impl Core {
    pub(super) fn run_task(
        &mut self,
        now: Now,
        out: &mut Out,
        framework_info: FrameworkInfo,
        task: TaskInfo,
    ) {
        let Some(framework_id) = framework_info.id.clone() else {
            tracing::warn!(task_id = %task.task_id, "dropping a task whose framework_info has no id");
            return;
        };
        let executor = match (&task.executor, &task.command) {
            (Some(executor), _) => {
                let mut executor = ExecutorInfo::clone(executor);
                executor.framework_id = Some(framework_id.clone());
                executor
            }
            (None, Some(command)) => {
                let value = command.value.clone().unwrap_or_default();
                ExecutorInfo {
                    kind: None,
                    executor_id: ExecutorId::new(task.task_id.value.clone()),
                    framework_id: Some(framework_id.clone()),
                    command: Some(command_executor_command(
                        self.builtin_executor_command(),
                        command,
                    )),
                    container: task.container.as_deref().cloned(),
                    resources: Vec::new(),
                    name: Some(command_executor_name(&task.task_id, &value)),
                    source: Some(task.task_id.value.to_string()),
                    data: None,
                    discovery: None,
                    shutdown_grace_period: None,
                    labels: None,
                }
            }
            (None, None) => {
                let executor_id = ExecutorId::new(task.task_id.value.clone());
                self.agent_update(
                    now,
                    out,
                    &framework_id,
                    &executor_id,
                    &task.task_id,
                    TaskState::Error,
                    Reason::TaskInvalid,
                    "task has neither 'executor' nor 'command'".to_string(),
                );
                return;
            }
        };
        let command_executor = task.executor.is_none();
        self.launch_tasks(
            now,
            out,
            framework_info,
            executor,
            vec![task],
            false,
            command_executor,
        );
    }

    pub(super) fn run_task_group(
        &mut self,
        now: Now,
        out: &mut Out,
        framework_info: FrameworkInfo,
        mut executor: ExecutorInfo,
        tasks: Vec<TaskInfo>,
    ) {
        let Some(framework_id) = framework_info.id.clone() else {
            tracing::warn!(executor_id = %executor.executor_id, "dropping a task group whose framework_info has no id");
            return;
        };
        if tasks.is_empty() {
            tracing::warn!(executor_id = %executor.executor_id, "dropping an empty task group");
            return;
        }
        executor.framework_id = Some(framework_id);
        self.launch_tasks(now, out, framework_info, executor, tasks, true, false);
    }

    /// Queues tasks on their executor, launching the executor when it does not run.
    #[allow(clippy::too_many_arguments)]
    fn launch_tasks(
        &mut self,
        now: Now,
        out: &mut Out,
        framework_info: FrameworkInfo,
        executor_info: ExecutorInfo,
        tasks: Vec<TaskInfo>,
        group: bool,
        command_executor: bool,
    ) {
        let Some(framework_id) = framework_info.id.clone() else {
            return;
        };
        let executor_id = executor_info.executor_id.clone();
        let Some(agent_id) = self.agent_id.clone() else {
            tracing::warn!(framework_id = %framework_id, "dropping tasks that arrived before registration");
            return;
        };
        // IDs become path components of the sandbox: refuse any that could escape it.
        let invalid = validate_id("framework_id", framework_id.as_str())
            .and_then(|()| validate_id("executor_id", executor_id.as_str()))
            .and_then(|()| {
                tasks
                    .iter()
                    .try_for_each(|t| validate_id("task_id", t.task_id.as_str()))
            })
            .err();
        let duplicate = self.frameworks.get(&framework_id).and_then(|framework| {
            tasks
                .iter()
                .find(|t| framework.executor_of(&t.task_id).is_some())
                .map(|t| t.task_id.clone())
        });
        if let Some(task_id) = duplicate {
            tracing::warn!(task_id = %task_id, framework_id = %framework_id, "dropping a task whose id is already in use");
            return;
        }
        let refusal = match (&invalid, self.frameworks.get(&framework_id)) {
            (Some(err), _) => Some((TaskState::Error, Reason::TaskInvalid, err.clone())),
            (None, Some(f)) if f.terminating => {
                tracing::warn!(framework_id = %framework_id, "dropping tasks of a framework that is shutting down");
                return;
            }
            (None, Some(f)) => match f.executors.get(&executor_id).map(|e| e.state) {
                Some(ExecutorState::Terminating | ExecutorState::Terminated) => Some((
                    lost_state(&f.info),
                    Reason::ExecutorTerminated,
                    format!("executor '{executor_id}' is terminating"),
                )),
                _ => None,
            },
            (None, None) => None,
        };
        if let Some((state, reason, message)) = refusal {
            for task in &tasks {
                self.agent_update(
                    now,
                    out,
                    &framework_id,
                    &executor_id,
                    &task.task_id,
                    state,
                    reason,
                    message.clone(),
                );
            }
            self.exited_again(out, &framework_id, &executor_id);
            return;
        }

        let role = framework_role(&framework_info);
        let changed = self
            .frameworks
            .get(&framework_id)
            .is_none_or(|f| f.info != framework_info);
        let framework = self
            .frameworks
            .entry(framework_id.clone())
            .or_insert_with(|| Framework {
                id: framework_id.clone(),
                info: framework_info.clone(),
                terminating: false,
                executors: BTreeMap::new(),
                completed_executors: VecDeque::new(),
            });
        framework.info = framework_info.clone();
        if changed && framework_info.checkpoint {
            let checkpoint = Checkpoint::Framework {
                agent_id: agent_id.clone(),
                info: framework_info.clone(),
            };
            recovery::checkpoint(out, checkpoint);
        }

        let mut launch = None;
        if !framework.executors.contains_key(&executor_id) {
            let container_id = self.new_container_id();
            let spec = self.launch_spec(&framework_info, &executor_info, &container_id, &agent_id);
            tracing::info!(
                framework_id = %framework_id,
                executor_id = %executor_id,
                container_id = %container_id,
                directory = %spec.directory.display(),
                "launching executor"
            );
            let checkpointed_info = framework_info.checkpoint.then(|| executor_info.clone());
            let executor = Executor {
                info: executor_info,
                container_id: container_id.clone(),
                directory: spec.directory.clone(),
                command_executor,
                state: ExecutorState::Registering,
                stream: None,
                pid: None,
                registration_deadline: Some(now.mono + self.config.executor_registration_timeout),
                kill_deadline: None,
                kill_sent: false,
                exit_status: None,
                recovering: false,
                queue: Vec::new(),
                tasks: BTreeMap::new(),
                completed_tasks: VecDeque::new(),
            };
            self.containers
                .insert(container_id, (framework_id.clone(), executor_id.clone()));
            if let Some(framework) = self.frameworks.get_mut(&framework_id) {
                framework.executors.insert(executor_id.clone(), executor);
            }
            if let (Some(run), Some(info)) =
                (self.run_key(&framework_id, &executor_id), checkpointed_info)
            {
                let checkpoint = Checkpoint::Executor {
                    run,
                    info,
                    command_executor,
                };
                recovery::checkpoint(out, checkpoint);
            }
            launch = Some(spec);
        }
        if let Some(run) = self.run_key(&framework_id, &executor_id) {
            for info in &tasks {
                let checkpoint = Checkpoint::Task {
                    run: run.clone(),
                    info: info.clone(),
                };
                recovery::checkpoint(out, checkpoint);
            }
        }

        let Some(executor) = self
            .frameworks
            .get_mut(&framework_id)
            .and_then(|f| f.executors.get_mut(&executor_id))
        else {
            return;
        };
        let ids: Vec<TaskId> = tasks.iter().map(|t| t.task_id.clone()).collect();
        for info in tasks {
            tracing::info!(task_id = %info.task_id, executor_id = %executor_id, "queueing task");
            let task_role = task_role(&role, &info);
            executor.tasks.insert(
                info.task_id.clone(),
                Task {
                    info,
                    framework_id: framework_id.clone(),
                    executor_id: executor_id.clone(),
                    state: TaskState::Staging,
                    statuses: Vec::new(),
                    queued: true,
                    kill_requested: false,
                    role: task_role,
                },
            );
        }
        executor.queue.push(Pending { tasks: ids, group });
        let limits = container_limits(executor);
        match launch {
            Some(mut spec) => {
                spec.limits = limits;
                out.push(Action::Launch(Box::new(spec)));
            }
            None => out.push(Action::Update {
                container_id: executor.container_id.clone(),
                limits,
            }),
        }
        if let Some(stream) = executor.subscribed() {
            deliver_queued(executor, stream, out);
        }
    }

    pub(super) fn subscribe(
        &mut self,
        now: Now,
        out: &mut Out,
        framework_id: &FrameworkId,
        executor_id: &ExecutorId,
        subscribe: Subscribe,
        stream: StreamId,
    ) -> Result<(), ApiError> {
        let executor = self.find_executor(framework_id, executor_id)?;
        if matches!(
            executor.state,
            ExecutorState::Terminating | ExecutorState::Terminated
        ) {
            return Err(ApiError::forbidden(format!(
                "executor '{executor_id}' is terminating"
            )));
        }
        let agent_info = self.agent_info();
        let Some(framework) = self.frameworks.get_mut(framework_id) else {
            return Err(ApiError::bad_request(format!(
                "framework '{framework_id}' is not known on this agent"
            )));
        };
        let framework_info = framework.info.clone();
        let Some(executor) = framework.executors.get_mut(executor_id) else {
            return Err(ApiError::bad_request(format!(
                "executor '{executor_id}' is not known on this agent"
            )));
        };
        if let Some(old) = executor.stream.replace(stream) {
            tracing::info!(executor_id = %executor_id, "executor subscribed again; closing its previous stream");
            out.push(Action::CloseStream { stream: old });
        }
        tracing::info!(framework_id = %framework_id, executor_id = %executor_id, "executor subscribed");
        let recovering = executor.recovering;
        executor.state = ExecutorState::Running;
        executor.registration_deadline = None;
        out.event(
            stream,
            Event::Subscribed(Box::new(Subscribed {
                executor_info: executor.info.clone(),
                framework_info,
                agent_info,
                container_id: Some(executor.container_id.clone()),
            })),
        );
        deliver_queued(executor, stream, out);
        // Updates the executor sent that it never saw acknowledged: taken like UPDATE
        // calls (those taken already are only acknowledged again).
        for update in subscribe.unacknowledged_updates {
            self.executor_update(now, out, framework_id, executor_id, update.status)?;
        }
        if recovering {
            let known: Vec<TaskId> = subscribe
                .unacknowledged_tasks
                .iter()
                .map(|t| t.task_id.clone())
                .collect();
            self.reconnected(now, out, framework_id, executor_id, &known);
        }
        Ok(())
    }

    pub(super) fn executor_update(
        &mut self,
        now: Now,
        out: &mut Out,
        framework_id: &FrameworkId,
        executor_id: &ExecutorId,
        mut status: TaskStatus,
    ) -> Result<(), ApiError> {
        let stream = self.subscribed_stream(framework_id, executor_id)?;
        status.executor_id = Some(executor_id.clone());
        status.source = Some(Source::Executor);
        let task_id = status.task_id.clone();
        let uuid = status.uuid.clone().unwrap_or_default();
        // A task the agent already ended (a container limitation) keeps that ending;
        // what its executor says afterwards is acknowledged and dropped.
        let ended_by_agent = self.find_task_mut(framework_id, &task_id).is_some_and(|t| {
            t.state.is_terminal()
                && t.statuses
                    .last()
                    .is_some_and(|s| s.source == Some(Source::Agent))
        });
        if !ended_by_agent {
            self.take_update(now, out, framework_id, status);
        }
        // The executor may stop resending once the update is taken; duplicates are
        // acknowledged again because the executor evidently missed the first one.
        out.event(stream, Event::Acknowledged(Acknowledged { task_id, uuid }));
        Ok(())
    }

    pub(super) fn executor_message(
        &mut self,
        out: &mut Out,
        framework_id: &FrameworkId,
        executor_id: &ExecutorId,
        data: String,
    ) -> Result<(), ApiError> {
        self.subscribed_stream(framework_id, executor_id)?;
        let message = ExecutorMessage {
            framework_id: framework_id.clone(),
            executor_id: executor_id.clone(),
            data,
        };
        self.to_master(out, AgentCall::ExecutorMessage(message));
        Ok(())
    }

    /// The stream of an executor that may send calls: 400 when unknown, 403 before it
    /// subscribed.
    fn subscribed_stream(
        &self,
        framework_id: &FrameworkId,
        executor_id: &ExecutorId,
    ) -> Result<StreamId, ApiError> {
        let executor = self.find_executor(framework_id, executor_id)?;
        executor.subscribed().ok_or_else(|| {
            ApiError::forbidden(format!("executor '{executor_id}' is not subscribed"))
        })
    }

    pub(super) fn stream_closed(&mut self, stream: StreamId) {
        for executor in self
            .frameworks
            .values_mut()
            .flat_map(|f| f.executors.values_mut())
        {
            if executor.stream == Some(stream) {
                tracing::info!(executor_id = %executor.info.executor_id, "executor event stream closed");
                executor.stream = None;
            }
        }
    }

    pub(super) fn launched(&mut self, container_id: &ContainerId, pid: u32) {
        if let Some(executor) = self.executor_by_container(container_id) {
            tracing::info!(executor_id = %executor.info.executor_id, pid, "executor process started");
            executor.pid = Some(pid);
        }
    }

    pub(super) fn launch_failed(
        &mut self,
        now: Now,
        out: &mut Out,
        container_id: &ContainerId,
        error: &str,
    ) {
        let Some((framework_id, executor_id)) = self.containers.get(container_id).cloned() else {
            return;
        };
        tracing::warn!(executor_id = %executor_id, error, "failed to launch executor");
        self.counters.container_launch_errors += 1;
        let message = format!("failed to launch executor '{executor_id}': {error}");
        self.fail_tasks(
            now,
            out,
            &framework_id,
            &executor_id,
            TaskState::Failed,
            Reason::ContainerLaunchFailed,
            &message,
        );
        self.executor_gone(
            now,
            out,
            &framework_id,
            &executor_id,
            LAUNCH_FAILED_WAIT_STATUS,
        );
    }

    /// A container hit a resource limit: every live task of its executor fails with
    /// the limitation (before the executor can report anything else), and the
    /// container is killed.
    pub(super) fn limited(
        &mut self,
        now: Now,
        out: &mut Out,
        container_id: &ContainerId,
        limitation: Limitation,
    ) {
        let Some((framework_id, executor_id)) = self.containers.get(container_id).cloned() else {
            return;
        };
        tracing::warn!(executor_id = %executor_id, message = %limitation.message, "container limitation");
        for task_id in self.live_tasks(&framework_id, &executor_id) {
            self.limitation_update(now, out, &framework_id, &executor_id, &task_id, &limitation);
        }
        out.push(Action::Kill {
            container_id: container_id.clone(),
        });
    }

    fn limitation_update(
        &mut self,
        now: Now,
        out: &mut Out,
        framework_id: &FrameworkId,
        executor_id: &ExecutorId,
        task_id: &TaskId,
        limitation: &Limitation,
    ) {
        let mut status = TaskStatus::new(task_id.clone(), TaskState::Failed);
        status.source = Some(Source::Agent);
        status.reason = Some(limitation.reason);
        status.message = Some(limitation.message.clone());
        status.limitation = Some(limitation.limitation.clone());
        status.executor_id = Some(executor_id.clone());
        status.uuid = Some(self.new_status_uuid());
        self.take_update(now, out, framework_id, status);
    }

    fn live_tasks(&self, framework_id: &FrameworkId, executor_id: &ExecutorId) -> Vec<TaskId> {
        self.frameworks
            .get(framework_id)
            .and_then(|f| f.executors.get(executor_id))
            .map(|e| {
                e.tasks
                    .values()
                    .filter(|t| !t.state.is_terminal())
                    .map(|t| t.info.task_id.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    pub(super) fn exited(
        &mut self,
        now: Now,
        out: &mut Out,
        container_id: &ContainerId,
        status: i32,
    ) {
        let Some((framework_id, executor_id)) = self.containers.get(container_id).cloned() else {
            tracing::debug!(container_id = %container_id, "exit of an unknown container");
            return;
        };
        tracing::info!(framework_id = %framework_id, executor_id = %executor_id, status, "executor exited");
        let live: Vec<(TaskId, bool)> = self
            .frameworks
            .get(&framework_id)
            .and_then(|f| f.executors.get(&executor_id))
            .map(|e| {
                e.tasks
                    .values()
                    .filter(|t| !t.state.is_terminal())
                    .map(|t| (t.info.task_id.clone(), t.kill_requested))
                    .collect()
            })
            .unwrap_or_default();
        for (task_id, killed) in live {
            let state = if killed {
                TaskState::Killed
            } else {
                TaskState::Failed
            };
            self.agent_update(
                now,
                out,
                &framework_id,
                &executor_id,
                &task_id,
                state,
                Reason::ExecutorTerminated,
                "Executor terminated".to_string(),
            );
        }
        self.executor_gone(now, out, &framework_id, &executor_id, status);
    }

    /// The executor's process is gone: report it, and forget the executor once its
    /// tasks are done.
    pub(super) fn executor_gone(
        &mut self,
        _now: Now,
        out: &mut Out,
        framework_id: &FrameworkId,
        executor_id: &ExecutorId,
        status: i32,
    ) {
        let Some(framework) = self.frameworks.get_mut(framework_id) else {
            return;
        };
        let terminating = framework.terminating;
        let Some(executor) = framework.executors.get_mut(executor_id) else {
            return;
        };
        if let Some(stream) = executor.stream.take() {
            out.push(Action::CloseStream { stream });
        }
        if executor.state != ExecutorState::Terminated {
            self.counters.executors_terminated += 1;
        }
        executor.state = ExecutorState::Terminated;
        executor.exit_status = Some(status);
        executor.registration_deadline = None;
        executor.kill_deadline = None;
        executor.queue.clear();
        if terminating {
            // The master forgot the framework and will not acknowledge its updates.
            let ids: Vec<TaskId> = executor.tasks.keys().cloned().collect();
            for task_id in ids {
                move_to_completed(executor, &task_id);
            }
        }
        let exited = ExecutorExited {
            framework_id: framework_id.clone(),
            executor_id: executor_id.clone(),
            status,
        };
        self.to_master(out, AgentCall::ExecutorExited(exited));
        self.maybe_complete_executor(out, framework_id, executor_id);
    }

    /// Tells the master again that an executor whose process is gone exited: it counts
    /// the executor anew for the tasks it just sent, and the first EXECUTOR_EXITED may
    /// never have reached it (it is not retried, and is dropped while disconnected).
    fn exited_again(&self, out: &mut Out, framework_id: &FrameworkId, executor_id: &ExecutorId) {
        let Some(executor) = self
            .frameworks
            .get(framework_id)
            .and_then(|f| f.executors.get(executor_id))
            .filter(|e| e.state == ExecutorState::Terminated)
        else {
            return;
        };
        let exited = ExecutorExited {
            framework_id: framework_id.clone(),
            executor_id: executor_id.clone(),
            status: executor.exit_status.unwrap_or_default(),
        };
        self.to_master(out, AgentCall::ExecutorExited(exited));
    }

    /// Sends an agent update in `state` for every non-terminal task of an executor.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn fail_tasks(
        &mut self,
        now: Now,
        out: &mut Out,
        framework_id: &FrameworkId,
        executor_id: &ExecutorId,
        state: TaskState,
        reason: Reason,
        message: &str,
    ) {
        for task_id in self.live_tasks(framework_id, executor_id) {
            self.agent_update(
                now,
                out,
                framework_id,
                executor_id,
                &task_id,
                state,
                reason,
                message.to_string(),
            );
        }
    }

    pub(super) fn kill_task(
        &mut self,
        now: Now,
        out: &mut Out,
        framework_id: &FrameworkId,
        task_id: &TaskId,
        kill_policy: Option<KillPolicy>,
    ) {
        let Some(framework) = self.frameworks.get_mut(framework_id) else {
            tracing::warn!(task_id = %task_id, framework_id = %framework_id, "kill for a task of an unknown framework");
            return;
        };
        let Some(executor) = framework.executor_of_mut(task_id) else {
            tracing::warn!(task_id = %task_id, framework_id = %framework_id, "kill for an unknown task");
            return;
        };
        let executor_id = executor.info.executor_id.clone();
        let Some(task) = executor.tasks.get_mut(task_id) else {
            return;
        };
        if task.state.is_terminal() {
            tracing::info!(task_id = %task_id, state = %task.state, "ignoring a kill for a terminal task");
            return;
        }
        task.kill_requested = true;
        if !task.queued {
            match executor.subscribed() {
                Some(stream) => {
                    tracing::info!(task_id = %task_id, executor_id = %executor_id, "asking the executor to kill a task");
                    out.event(
                        stream,
                        Event::Kill(KillEvent {
                            task_id: task_id.clone(),
                            kill_policy,
                        }),
                    );
                }
                None => {
                    tracing::warn!(task_id = %task_id, "cannot kill a task: its executor is disconnected")
                }
            }
            return;
        }
        // Still queued: the agent answers itself. A task group is killed as a whole.
        let group: Vec<TaskId> = executor
            .queue
            .iter()
            .find(|p| p.tasks.contains(task_id))
            .map(|p| p.tasks.clone())
            .unwrap_or_else(|| vec![task_id.clone()]);
        executor.queue.retain(|p| !p.tasks.contains(task_id));
        for id in &group {
            if let Some(t) = executor.tasks.get_mut(id) {
                t.kill_requested = true;
            }
        }
        let registering = executor.state == ExecutorState::Registering;
        for id in &group {
            self.agent_update(
                now,
                out,
                framework_id,
                &executor_id,
                id,
                TaskState::Killed,
                Reason::TaskKilledDuringLaunch,
                "Killed before delivery to the executor".to_string(),
            );
        }
        let idle = self
            .frameworks
            .get(framework_id)
            .and_then(|f| f.executors.get(&executor_id))
            .is_some_and(|e| e.tasks.values().all(|t| t.state.is_terminal()));
        if registering && idle {
            tracing::info!(executor_id = %executor_id, "shutting down an executor left without tasks");
            self.shutdown_executor(now, out, framework_id, &executor_id);
        }
    }

    pub(super) fn shutdown_executor(
        &mut self,
        now: Now,
        out: &mut Out,
        framework_id: &FrameworkId,
        executor_id: &ExecutorId,
    ) {
        let default_grace = self.config.executor_shutdown_grace_period;
        let Some(executor) = self
            .frameworks
            .get_mut(framework_id)
            .and_then(|f| f.executors.get_mut(executor_id))
        else {
            tracing::warn!(framework_id = %framework_id, executor_id = %executor_id, "shutdown of an unknown executor");
            return;
        };
        match (executor.state, executor.subscribed()) {
            (ExecutorState::Terminating | ExecutorState::Terminated, _) => {}
            (_, Some(stream)) => {
                let grace = executor
                    .info
                    .shutdown_grace_period
                    .map(|d| Duration::from_nanos(d.nanoseconds.max(0) as u64))
                    .unwrap_or(default_grace);
                tracing::info!(executor_id = %executor_id, grace_secs = grace.as_secs_f64(), "shutting down executor");
                out.event(stream, Event::Shutdown);
                executor.state = ExecutorState::Terminating;
                executor.kill_deadline = Some(now.mono + grace);
            }
            (_, None) => {
                tracing::info!(executor_id = %executor_id, "killing an executor that is not subscribed");
                executor.state = ExecutorState::Terminating;
                executor.registration_deadline = None;
                kill(executor, out);
            }
        }
    }

    pub(super) fn shutdown_framework(
        &mut self,
        now: Now,
        out: &mut Out,
        framework_id: &FrameworkId,
    ) {
        let Some(framework) = self.frameworks.get_mut(framework_id) else {
            tracing::info!(framework_id = %framework_id, "shutdown of an unknown framework");
            return;
        };
        tracing::info!(framework_id = %framework_id, "shutting down framework");
        framework.terminating = true;
        let ids: Vec<ExecutorId> = framework.executors.keys().cloned().collect();
        for executor_id in &ids {
            self.shutdown_executor(now, out, framework_id, executor_id);
            // Executors already gone wait only for acknowledgements that will not come.
            if let Some(executor) = self
                .frameworks
                .get_mut(framework_id)
                .and_then(|f| f.executors.get_mut(executor_id))
            {
                if executor.state == ExecutorState::Terminated {
                    let tasks: Vec<TaskId> = executor.tasks.keys().cloned().collect();
                    for task_id in tasks {
                        move_to_completed(executor, &task_id);
                    }
                }
            }
            self.maybe_complete_executor(out, framework_id, executor_id);
        }
        self.maybe_remove_framework(framework_id);
    }

    /// Registration timeouts and the SIGKILLs that follow a shutdown's grace period.
    pub(super) fn executor_timers(&mut self, now: Now, out: &mut Out) {
        let mut timed_out = Vec::new();
        for framework in self.frameworks.values_mut() {
            for executor in framework.executors.values_mut() {
                if executor.kill_deadline.is_some_and(|d| d <= now.mono) {
                    tracing::info!(executor_id = %executor.info.executor_id, "shutdown grace period elapsed; killing executor");
                    executor.kill_deadline = None;
                    kill(executor, out);
                }
                if executor.state == ExecutorState::Registering
                    && executor
                        .registration_deadline
                        .is_some_and(|d| d <= now.mono)
                {
                    timed_out.push((framework.id.clone(), executor.info.executor_id.clone()));
                }
            }
        }
        let timeout = self.config.executor_registration_timeout;
        for (framework_id, executor_id) in timed_out {
            let recovering = self
                .frameworks
                .get(&framework_id)
                .and_then(|f| f.executors.get(&executor_id))
                .is_some_and(|e| e.recovering);
            if recovering {
                tracing::warn!(executor_id = %executor_id, "executor did not subscribe again after the agent restarted");
                let message = format!(
                    "executor '{executor_id}' did not subscribe again within {} after the agent restarted",
                    crate::sandbox::format_duration(self.config.executor_reregistration_timeout)
                );
                self.executor_lost(
                    now,
                    out,
                    &framework_id,
                    &executor_id,
                    Reason::ExecutorReregistrationTimeout,
                    &message,
                );
                continue;
            }
            tracing::warn!(executor_id = %executor_id, "executor did not subscribe in time");
            let message = format!(
                "executor '{executor_id}' did not subscribe within {}",
                crate::sandbox::format_duration(timeout)
            );
            self.fail_tasks(
                now,
                out,
                &framework_id,
                &executor_id,
                TaskState::Failed,
                Reason::ExecutorRegistrationTimeout,
                &message,
            );
            if let Some(executor) = self
                .frameworks
                .get_mut(&framework_id)
                .and_then(|f| f.executors.get_mut(&executor_id))
            {
                executor.state = ExecutorState::Terminating;
                executor.registration_deadline = None;
                executor.queue.clear();
                kill(executor, out);
            }
        }
    }

    /// The terminal update of a task was acknowledged.
    pub(super) fn complete_task(
        &mut self,
        out: &mut Out,
        framework_id: &FrameworkId,
        task_id: &TaskId,
    ) {
        let Some(executor) = self
            .frameworks
            .get_mut(framework_id)
            .and_then(|f| f.executor_of_mut(task_id))
        else {
            return;
        };
        let executor_id = executor.info.executor_id.clone();
        move_to_completed(executor, task_id);
        self.maybe_complete_executor(out, framework_id, &executor_id);
    }

    fn maybe_complete_executor(
        &mut self,
        out: &mut Out,
        framework_id: &FrameworkId,
        executor_id: &ExecutorId,
    ) {
        let run = self.run_key(framework_id, executor_id);
        let Some(framework) = self.frameworks.get_mut(framework_id) else {
            return;
        };
        let done = framework
            .executors
            .get(executor_id)
            .is_some_and(|e| e.state == ExecutorState::Terminated && e.tasks.is_empty());
        if !done {
            return;
        }
        if let Some(run) = run {
            recovery::checkpoint(out, Checkpoint::Forget { run });
        }
        if let Some(executor) = framework.executors.remove(executor_id) {
            self.containers.remove(&executor.container_id);
            framework.completed_executors.push_back(executor);
            while framework.completed_executors.len() > MAX_COMPLETED_EXECUTORS_PER_FRAMEWORK {
                framework.completed_executors.pop_front();
            }
        }
        self.maybe_remove_framework(framework_id);
    }

    fn maybe_remove_framework(&mut self, framework_id: &FrameworkId) {
        if !self
            .frameworks
            .get(framework_id)
            .is_some_and(|f| f.executors.is_empty())
        {
            return;
        }
        if let Some(framework) = self.frameworks.remove(framework_id) {
            tracing::info!(framework_id = %framework_id, "framework has no executors left");
            self.updates.cleanup_framework(framework_id);
            self.completed_frameworks.push_back(framework);
            while self.completed_frameworks.len() > MAX_COMPLETED_FRAMEWORKS {
                self.completed_frameworks.pop_front();
            }
        }
    }

    /// The `ExecutorInfo` of the executor running in a container.
    pub fn container_executor(&self, container_id: &ContainerId) -> Option<&ExecutorInfo> {
        let (framework_id, executor_id) = self.containers.get(container_id)?;
        let framework = self.frameworks.get(framework_id)?;
        Some(&framework.executors.get(executor_id)?.info)
    }

    /// The container an executor runs in.
    pub fn container_of(
        &self,
        framework_id: &FrameworkId,
        executor_id: &ExecutorId,
    ) -> Option<ContainerId> {
        let framework = self.frameworks.get(framework_id)?;
        Some(framework.executors.get(executor_id)?.container_id.clone())
    }

    fn executor_by_container(&mut self, container_id: &ContainerId) -> Option<&mut Executor> {
        let (framework_id, executor_id) = self.containers.get(container_id)?;
        self.frameworks
            .get_mut(framework_id)?
            .executors
            .get_mut(executor_id)
    }
}

/// Hands the queued tasks to a subscribed executor, in the order they arrived.
fn deliver_queued(executor: &mut Executor, stream: StreamId, out: &mut Out) {
    for pending in std::mem::take(&mut executor.queue) {
        let mut infos = Vec::new();
        for task_id in &pending.tasks {
            if let Some(task) = executor.tasks.get_mut(task_id) {
                if task.queued && !task.state.is_terminal() {
                    task.queued = false;
                    infos.push(task.info.clone());
                }
            }
        }
        if pending.group {
            if !infos.is_empty() {
                let task_group = TaskGroupInfo { tasks: infos };
                out.event(
                    stream,
                    Event::LaunchGroup(Box::new(LaunchGroupEvent { task_group })),
                );
            }
        } else {
            for task in infos {
                out.event(stream, Event::Launch(Box::new(LaunchEvent { task })));
            }
        }
    }
}

pub(super) fn kill(executor: &mut Executor, out: &mut Out) {
    if !executor.kill_sent {
        executor.kill_sent = true;
        out.push(Action::Kill {
            container_id: executor.container_id.clone(),
        });
    }
}

fn move_to_completed(executor: &mut Executor, task_id: &TaskId) {
    if let Some(task) = executor.tasks.remove(task_id) {
        executor.completed_tasks.push_back(task);
        while executor.completed_tasks.len() > MAX_COMPLETED_TASKS_PER_EXECUTOR {
            executor.completed_tasks.pop_front();
        }
    }
}

/// TASK_LOST, or TASK_DROPPED for frameworks that understand partition-aware states.
pub(super) fn lost_state(framework: &FrameworkInfo) -> TaskState {
    if framework.has_capability("PARTITION_AWARE") {
        TaskState::Dropped
    } else {
        TaskState::Lost
    }
}

/// The role a framework's tasks run under when their resources do not say.
pub(super) fn framework_role(info: &FrameworkInfo) -> String {
    info.effective_roles()
        .into_iter()
        .next()
        .unwrap_or_else(|| "*".to_string())
}

/// The role a task runs under: the one its resources were allocated to, else its
/// framework's.
pub(super) fn task_role(framework_role: &str, info: &TaskInfo) -> String {
    info.resources
        .iter()
        .find_map(|r| r.allocation_info.as_ref().and_then(|a| a.role.clone()))
        .unwrap_or_else(|| framework_role.to_string())
}

/// `<launcher> executor`, carrying the task command's environment and user, as Mesos
/// copies them from a task to its command executor.
fn command_executor_command(mut builtin: CommandInfo, task_command: &CommandInfo) -> CommandInfo {
    builtin.environment = task_command.environment.clone();
    builtin.user = task_command.user.clone();
    builtin
}

/// What a container may use: its executor's resources plus those of its live tasks.
pub(super) fn container_limits(executor: &Executor) -> ContainerLimits {
    let mut limits = ContainerLimits::default();
    limits.add(&executor.info.resources);
    for task in executor.tasks.values().filter(|t| !t.state.is_terminal()) {
        limits.add(&task.info.resources);
    }
    limits
}
