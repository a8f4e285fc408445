//! Frameworks: SUBSCRIBE (new, resubscribe and failover), disconnection with the
//! `failover_timeout` timer, TEARDOWN and removal (reference §1.4, §5.2), and the checks
//! every other scheduler call must pass (reference §1.1).

use super::{Action, Master, SharedMap, SharedSet, StreamId, Task};
use mantle_allocator::FrameworkOptions;
use mantle_api::internal::{ShutdownFramework, ToAgent};
use mantle_api::maintenance::InverseOfferAnswer;
use mantle_api::scheduler::{CallBody, ErrorEvent, Event, Subscribe, Subscribed};
use mantle_api::validation::validate_framework_info;
use mantle_api::*;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

/// An executor a framework runs on an agent, with its resources validated once.
#[derive(Clone, Debug)]
pub struct Executor {
    /// Boxed: a framework keeps a map of executors per agent, usually of one, and an
    /// inline ExecutorInfo would make each map's node several kilobytes.
    pub info: Box<ExecutorInfo>,
    pub resources: Resources,
    /// The role its resources were allocated to.
    pub role: String,
}

#[derive(Clone, Debug)]
pub struct Framework {
    pub id: FrameworkId,
    /// With `id` set.
    pub info: FrameworkInfo,
    /// The current subscription stream; `None` while disconnected.
    pub stream: Option<StreamId>,
    pub active: bool,
    /// Known only from an agent's report, not yet re-subscribed.
    pub recovered: bool,
    pub suppressed: bool,
    pub registered_time: f64,
    pub reregistered_time: Option<f64>,
    pub unregistered_time: Option<f64>,
    pub failover_deadline: Option<f64>,
    pub tasks: SharedMap<TaskId, Task>,
    /// Tasks on unreachable agents, tracked until their agent comes back.
    pub unreachable_tasks: SharedMap<TaskId, Task>,
    pub completed_tasks: VecDeque<Arc<Task>>,
    pub offers: SharedSet<OfferId>,
    pub executors: SharedMap<AgentId, BTreeMap<ExecutorId, Executor>>,
}

impl Framework {
    pub(super) fn new(info: FrameworkInfo, stream: Option<StreamId>, now: f64) -> Framework {
        let id = info.id.clone().expect("callers set the framework id");
        Framework {
            id,
            active: stream.is_some(),
            stream,
            recovered: false,
            suppressed: false,
            registered_time: now,
            reregistered_time: None,
            unregistered_time: None,
            failover_deadline: None,
            info,
            tasks: SharedMap::new(),
            unreachable_tasks: SharedMap::new(),
            completed_tasks: VecDeque::new(),
            offers: SharedSet::new(),
            executors: SharedMap::new(),
        }
    }

    /// Whether `task_id` is among its completed (retired) tasks.
    pub fn retired(&self, task_id: &TaskId) -> bool {
        self.completed_tasks
            .iter()
            .any(|t| t.info.task_id == *task_id)
    }

    /// Records an executor on an agent, keeping the first ExecutorInfo seen for its ID;
    /// `info` makes it only when the ID is new (a launch clones the task's, an agent's
    /// report gives up its own).
    pub(super) fn add_executor(
        &mut self,
        agent_id: &AgentId,
        executor_id: ExecutorId,
        info: impl FnOnce() -> ExecutorInfo,
        resources: Resources,
        role: &str,
    ) {
        self.executors
            .get_or_insert_with(agent_id.clone(), BTreeMap::new)
            .entry(executor_id)
            .or_insert_with(|| Executor {
                info: Box::new(info()),
                resources,
                role: role.to_string(),
            });
    }

    pub fn is_partition_aware(&self) -> bool {
        self.info.has_capability("PARTITION_AWARE")
    }

    pub fn role(&self) -> String {
        self.first_role().to_string()
    }

    /// The first of [`FrameworkInfo::effective_roles`] (`*` when there is none), without
    /// building the list: it is asked for every task an agent reports.
    pub fn first_role(&self) -> &str {
        let first = match self.info.has_capability("MULTI_ROLE") {
            true => self.info.roles.first(),
            false => self.info.role.as_ref(),
        };
        first.map_or("*", String::as_str)
    }
}

/// What the allocator needs to know of a framework.
pub(super) fn allocator_options(info: &FrameworkInfo) -> FrameworkOptions {
    FrameworkOptions {
        roles: info.effective_roles(),
        gpu_resources: info.has_capability("GPU_RESOURCES"),
    }
}

/// What a successful scheduler call answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallReply {
    /// 202, empty body.
    Accepted,
    /// 200, empty body (UPDATE_FRAMEWORK).
    Ok,
}

impl Master {
    /// With `--roles`, frameworks may only use the roles listed there.
    fn check_roles(&self, info: &FrameworkInfo) -> Result<(), ApiError> {
        let Some(allowed) = &self.config.roles else {
            return Ok(());
        };
        match info
            .effective_roles()
            .into_iter()
            .find(|r| !allowed.contains(r))
        {
            Some(role) => Err(ApiError::bad_request(format!(
                "framework_info.roles: role '{role}' is not present in the master's --roles"
            ))),
            None => Ok(()),
        }
    }

    /// Handles SUBSCRIBE on the new stream `stream`. The checks that need no state (a
    /// `Mesos-Stream-Id` header, top-level ID mismatch) are done by the HTTP layer.
    pub fn subscribe(
        &mut self,
        now: f64,
        subscribe: Subscribe,
        stream: StreamId,
    ) -> Result<FrameworkId, ApiError> {
        let mut info = subscribe.framework_info;
        validate_framework_info(&info).map_err(ApiError::bad_request)?;
        if let Some(id) = &info.id {
            validate_id("framework_info.id", &id.value).map_err(ApiError::bad_request)?;
            if self.completed_frameworks.iter().any(|f| &f.id == id) {
                self.actions.push(Action::Framework {
                    stream: stream.clone(),
                    event: Event::Error(ErrorEvent {
                        message: "Framework has been removed".into(),
                    }),
                });
                self.actions.push(Action::CloseFramework { stream });
                return Ok(id.clone());
            }
        }
        self.check_roles(&info)?;
        let options = allocator_options(&info);
        let suppressed = !subscribe.suppressed_roles.is_empty()
            && info
                .effective_roles()
                .iter()
                .all(|r| subscribe.suppressed_roles.contains(r));
        let id = match info.id.clone() {
            Some(id) if self.frameworks.contains_key(&id) => {
                let framework = self.frameworks.get_mut(&id).expect("checked above");
                if let Some(old) = framework.stream.replace(stream.clone()) {
                    self.actions.push(Action::Framework {
                        stream: old.clone(),
                        event: Event::Error(ErrorEvent {
                            message: "Framework failed over".into(),
                        }),
                    });
                    self.actions.push(Action::CloseFramework { stream: old });
                }
                info.id = Some(id.clone());
                framework.info = info;
                framework.active = true;
                framework.recovered = false;
                framework.failover_deadline = None;
                framework.reregistered_time = Some(now);
                framework.suppressed = suppressed;
                tracing::info!(framework_id = %id, "framework re-subscribed");
                // Offers are re-created for a returning framework.
                self.rescind_framework_offers(now, &id, false);
                self.allocator.add_framework(&id, &options, true);
                id
            }
            Some(id) => {
                // A framework the master does not know (for example after a master
                // restart) keeps the ID it asks for.
                let framework = Framework::new(info, Some(stream.clone()), now);
                self.frameworks.insert(id.clone(), framework);
                self.allocator.add_framework(&id, &options, true);
                tracing::info!(framework_id = %id, "framework subscribed with its previous id");
                id
            }
            None => {
                let id = FrameworkId::new(format!("{}-{:04}", self.info.id, self.next_framework));
                self.next_framework += 1;
                info.id = Some(id.clone());
                self.frameworks
                    .insert(id.clone(), Framework::new(info, Some(stream.clone()), now));
                self.allocator.add_framework(&id, &options, true);
                tracing::info!(framework_id = %id, "framework subscribed");
                id
            }
        };
        if !subscribe.suppressed_roles.is_empty() {
            self.allocator.suppress(&id, &subscribe.suppressed_roles);
        }
        if suppressed {
            self.frameworks.get_mut(&id).expect("inserted").suppressed = true;
        }
        let added = self.frameworks[&id].reregistered_time.is_none();
        self.framework_changed(&id, added);
        self.actions.push(Action::Framework {
            stream: stream.clone(),
            event: Event::Subscribed(Subscribed {
                framework_id: id.clone(),
                heartbeat_interval_seconds: Some(self.config.heartbeat_interval),
                master_info: Some(self.info.clone()),
            }),
        });
        self.actions.push(Action::Framework {
            stream,
            event: Event::Heartbeat,
        });
        self.frameworks_version += 1;
        self.dirty = true;
        Ok(id)
    }

    /// Handles every scheduler call but SUBSCRIBE, after the checks of reference §1.1.
    pub fn scheduler_call(
        &mut self,
        now: f64,
        framework_id: &FrameworkId,
        stream_id: Option<&str>,
        body: CallBody,
    ) -> Result<CallReply, ApiError> {
        let Some(framework) = self.frameworks.get(framework_id) else {
            return Err(ApiError::bad_request(format!(
                "Framework cannot be found: {framework_id}"
            )));
        };
        let Some(current) = framework.stream.as_deref() else {
            return Err(ApiError::forbidden(format!(
                "Framework is not subscribed: {framework_id}"
            )));
        };
        match stream_id {
            None => {
                return Err(ApiError::bad_request("All non-subscribe calls should include the 'Mesos-Stream-Id' header"))
            }
            Some(given) if given != current => {
                return Err(ApiError::bad_request(format!(
                    "The stream ID '{given}' included in this request didn't match the stream ID currently associated with framework ID {framework_id}"
                )))
            }
            Some(_) => {}
        }
        match body {
            CallBody::Subscribe(_) => {
                return Err(ApiError::bad_request(
                    "SUBSCRIBE must open a new event stream",
                ))
            }
            CallBody::Teardown => {
                tracing::info!(framework_id = %framework_id, "framework teardown");
                self.remove_framework(now, framework_id);
            }
            CallBody::Accept(accept) => self.accept(now, framework_id, accept),
            CallBody::Decline(decline) => {
                let refuse = decline
                    .filters
                    .unwrap_or_default()
                    .effective_refuse_seconds();
                for offer_id in decline.offer_ids {
                    self.remove_offer(now, framework_id, &offer_id, Some(refuse));
                }
            }
            CallBody::Revive(revive) => {
                self.allocator.revive(framework_id, &revive.roles);
                if let Some(f) = self.frameworks.get_mut(framework_id) {
                    f.suppressed = false;
                }
            }
            CallBody::Suppress(suppress) => {
                self.allocator.suppress(framework_id, &suppress.roles);
                if let Some(f) = self.frameworks.get_mut(framework_id) {
                    f.suppressed = suppress.roles.is_empty()
                        || f.info
                            .effective_roles()
                            .iter()
                            .all(|r| suppress.roles.contains(r));
                }
            }
            CallBody::Kill(kill) => self.kill_task(now, framework_id, kill),
            CallBody::Shutdown(shutdown) => {
                let message = ToAgent::ShutdownExecutor(mantle_api::internal::ShutdownExecutor {
                    framework_id: framework_id.clone(),
                    executor_id: shutdown.executor_id,
                });
                self.send_to_agent(&shutdown.agent_id, message);
            }
            CallBody::Acknowledge(ack) => self.acknowledge(now, framework_id, ack)?,
            CallBody::Reconcile(reconcile) => self.reconcile(now, framework_id, reconcile),
            CallBody::Message(message) => {
                let forward = ToAgent::FrameworkMessage(mantle_api::internal::ExecutorMessage {
                    framework_id: framework_id.clone(),
                    executor_id: message.executor_id,
                    data: message.data,
                });
                self.send_to_agent(&message.agent_id, forward);
            }
            CallBody::UpdateFramework(update) => {
                self.update_framework(framework_id, update)?;
                return Ok(CallReply::Ok);
            }
            CallBody::AcceptInverseOffers(body) => {
                self.answer_inverse_offers(now, framework_id, body, InverseOfferAnswer::Accept)
            }
            CallBody::DeclineInverseOffers(body) => {
                self.answer_inverse_offers(now, framework_id, body, InverseOfferAnswer::Decline)
            }
            CallBody::AcknowledgeOperationStatus
            | CallBody::ReconcileOperations
            | CallBody::Request => {}
        }
        self.dirty = true;
        Ok(CallReply::Accepted)
    }

    fn update_framework(
        &mut self,
        framework_id: &FrameworkId,
        update: Subscribe,
    ) -> Result<(), ApiError> {
        let mut info = update.framework_info;
        if info.id.as_ref() != Some(framework_id) {
            return Err(ApiError::bad_request(
                "'update_framework.framework_info.id' must match 'framework_id'",
            ));
        }
        validate_framework_info(&info).map_err(ApiError::bad_request)?;
        self.check_roles(&info)?;
        let framework = self
            .frameworks
            .get_mut(framework_id)
            .expect("checked by the caller");
        if info.principal != framework.info.principal {
            return Err(ApiError::bad_request(
                "'framework_info.principal' cannot be changed",
            ));
        }
        if info.user != framework.info.user {
            return Err(ApiError::bad_request(
                "'framework_info.user' cannot be changed",
            ));
        }
        if info.checkpoint != framework.info.checkpoint {
            return Err(ApiError::bad_request(
                "'framework_info.checkpoint' cannot be changed",
            ));
        }
        info.id = Some(framework_id.clone());
        let options = allocator_options(&info);
        let active = framework.active;
        framework.info = info;
        self.allocator.add_framework(framework_id, &options, active);
        if !update.suppressed_roles.is_empty() {
            self.allocator
                .suppress(framework_id, &update.suppressed_roles);
        }
        self.framework_changed(framework_id, false);
        self.dirty = true;
        Ok(())
    }

    /// The framework's event stream went away.
    pub fn framework_stream_closed(&mut self, now: f64, stream: &str) {
        let Some(framework) = self
            .frameworks
            .values_mut()
            .find(|f| f.stream.as_deref() == Some(stream))
        else {
            return;
        };
        let id = framework.id.clone();
        framework.stream = None;
        framework.active = false;
        let timeout = framework.info.failover_timeout;
        framework.failover_deadline = Some(now + timeout);
        tracing::info!(framework_id = %id, failover_timeout = timeout, "framework disconnected");
        self.frameworks_version += 1;
        self.allocator.set_framework_active(&id, false);
        self.rescind_framework_offers(now, &id, false);
        self.framework_changed(&id, false);
        self.dirty = true;
        self.expire_frameworks(now);
    }

    pub(super) fn expire_frameworks(&mut self, now: f64) {
        let expired: Vec<FrameworkId> = self
            .frameworks
            .values()
            .filter(|f| f.failover_deadline.is_some_and(|d| d <= now))
            .map(|f| f.id.clone())
            .collect();
        for id in expired {
            tracing::info!(framework_id = %id, "framework failover timeout expired");
            self.remove_framework(now, &id);
        }
    }

    /// Removes a framework: its offers go back, its executors are shut down, its tasks
    /// are killed, and it moves to the completed frameworks (reference §5.2).
    pub fn remove_framework(&mut self, now: f64, framework_id: &FrameworkId) {
        self.rescind_framework_offers(now, framework_id, false);
        let Some(mut framework) = self.frameworks.remove(framework_id) else {
            return;
        };
        let mut agents: BTreeSet<AgentId> = framework.executors.keys().cloned().collect();
        for task in std::mem::take(&mut framework.tasks).into_values() {
            self.agent_tasks
                .remove(&task.info.agent_id, framework_id, &task.info.task_id);
            agents.insert(task.info.agent_id.clone());
            let mut task = task;
            if !task.state.is_terminal() {
                self.allocator.recover(
                    framework_id,
                    &task.role,
                    &task.info.agent_id,
                    &task.resources,
                    None,
                    now,
                );
                task.state = TaskState::Killed;
                *self
                    .counters
                    .tasks_by_terminal_state
                    .entry(TaskState::Killed)
                    .or_default() += 1;
            }
            framework.completed_tasks.push_back(Arc::new(task));
        }
        while framework.completed_tasks.len() > self.config.max_completed_tasks_per_framework {
            framework.completed_tasks.pop_front();
        }
        for (agent_id, executors) in std::mem::take(&mut framework.executors).into_entries() {
            for executor in executors.values() {
                self.allocator.recover(
                    framework_id,
                    &executor.role,
                    &agent_id,
                    &executor.resources,
                    None,
                    now,
                );
            }
        }
        for agent_id in &agents {
            self.send_to_agent(
                agent_id,
                ToAgent::ShutdownFramework(ShutdownFramework {
                    framework_id: framework_id.clone(),
                }),
            );
        }
        if let Some(stream) = framework.stream.take() {
            self.actions.push(Action::CloseFramework { stream });
        }
        self.allocator.remove_framework(framework_id);
        framework.active = false;
        framework.failover_deadline = None;
        framework.unregistered_time = Some(now);
        self.framework_removed(&framework.info);
        self.completed_frameworks.push_back(Arc::new(framework));
        self.frameworks_version += 1;
        while self.completed_frameworks.len() > self.config.max_completed_frameworks {
            self.completed_frameworks.pop_front();
        }
        // Its tasks no longer hold up the drains of their agents.
        for agent_id in &agents {
            self.check_drained(now, agent_id);
        }
        self.dirty = true;
    }
}
