//! A simulated agent process: the real agent [`Core`] with the shell around it modelled
//! on `crates/agent/src/event_loop.rs` (actions carried out, checkpoints written to the
//! host's [`Disk`] before the actions after them, executor streams, process launches,
//! kills and reattachment) and `master_link.rs` (register on a new stream, a first
//! message that must be REGISTERED, reconnection after the stream ends or stays silent
//! for five ping intervals, with a random first delay up to 1 s doubling to 1 min, and
//! calls made while not connected dropped).
//!
//! A crash ends the process; the disk and the executors of frameworks that checkpoint
//! outlive it, unless the host reboots. [`World::agent_start`] recovers as `lib.rs`
//! does: it reads the disk back, hands it to [`Core::recover`], reports each container
//! to reattach as running or exited, and answers the link's registration question only
//! once the core is no longer recovering.

use crate::disk::Disk;
use crate::executor::{Proc, SIGKILL_STATUS};
use crate::net::{ConnId, Down, Msg, Peer, Up, REQUEST_TIMEOUT};
use crate::queue::Micros;
use crate::world::{Ev, World};
use mantle_agent::core::{Action, Core, CoreConfig, Input, Now};
use mantle_api::error::ApiError;
use mantle_api::executor::Event as ExecutorEvent;
use mantle_api::internal::ToAgent;
use mantle_api::{AgentId, ContainerId, ExecutorId, FrameworkId, Resources};
use rand::Rng;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::Duration;

/// What every simulated agent offers.
pub const AGENT_RESOURCES: &str = "cpus:4;mem:4096;disk:20000;ports:[31000-31009]";
/// Pings that may go missing before the link gives the master up (`master_link.rs`).
const MISSED_PINGS: f64 = 5.0;
const MAX_BACKOFF: f64 = 60.0;
/// `--executor_reregistration_timeout`, the Mesos default.
const EXECUTOR_REREGISTRATION_TIMEOUT: f64 = 2.0;
/// What executors are told as `MESOS_SUBSCRIPTION_BACKOFF_MAX`: the re-registration
/// timeout (`Core::launch_spec`).
pub const SUBSCRIPTION_BACKOFF_MAX: f64 = EXECUTOR_REREGISTRATION_TIMEOUT;
/// `--recovery_timeout`, the Mesos default: how long a checkpointing executor tries to
/// reach its agent again (`MESOS_RECOVERY_TIMEOUT`).
pub const RECOVERY_TIMEOUT: f64 = 900.0;
/// The share of agent crashes that are host reboots.
const REBOOT_CHANCE: f64 = 0.2;

/// What a registration told the master about executors: when it was built and the
/// executors it reported running.
pub struct Report {
    pub at: f64,
    pub executors: HashSet<(FrameworkId, ExecutorId)>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Link {
    /// The process is not running.
    Down,
    /// Waiting to reconnect.
    Idle,
    Registering {
        conn: ConnId,
    },
    Connected {
        conn: ConnId,
    },
    /// The master shut this agent down; the link ended for good.
    Stopped,
}

pub struct AgentNode {
    /// Bumped whenever the process starts or dies, so that its timers and local events
    /// from an earlier life are ignored.
    pub life: u64,
    pub core: Option<Core>,
    started_at: f64,
    /// When the core's next tick is due, as `event_loop.rs` arms its timer at
    /// `Core::next_timer`; an `AgentTick` for another time is one it re-armed since.
    tick_at: Option<Micros>,
    /// The host's checkpoints; they outlive the process.
    pub disk: Disk,
    /// The host's boot id: a reboot changes it.
    boot: u64,
    /// The agent id this life recovered from the disk.
    recovered_id: Option<AgentId>,
    /// The agent id the master last gave it.
    pub agent_id: Option<AgentId>,
    /// When the registration in flight was built, and the executors it reports.
    report_pending: Option<Report>,
    /// The same of the registration the master last accepted.
    pub report: Option<Report>,
    pub link: Link,
    /// The link asked what to register with while the core was still recovering
    /// (`event_loop.rs` holds the answer until recovery is settled).
    register_wanted: bool,
    attempt: u64,
    backoff: Option<f64>,
    last_heard: f64,
    silence: f64,
    /// Every executor process this host ran, in any life of the agent; dead ones keep
    /// their exit status, as the launcher's records do.
    pub procs: BTreeMap<u64, Proc>,
    pub by_container: HashMap<ContainerId, u64>,
    /// Open executor event streams and the process each belongs to.
    pub streams: HashMap<u64, u64>,
    pub next_proc: u64,
    pub next_stream: u64,
}

impl AgentNode {
    pub fn new() -> AgentNode {
        AgentNode {
            life: 0,
            core: None,
            started_at: 0.0,
            tick_at: None,
            disk: Disk::default(),
            boot: 0,
            recovered_id: None,
            agent_id: None,
            report_pending: None,
            report: None,
            link: Link::Down,
            register_wanted: false,
            attempt: 0,
            backoff: None,
            last_heard: 0.0,
            silence: 0.0,
            procs: BTreeMap::new(),
            by_container: HashMap::new(),
            streams: HashMap::new(),
            next_proc: 0,
            next_stream: 0,
        }
    }

    pub fn up(&self) -> bool {
        self.core.is_some()
    }
}

impl World {
    fn agent_config(&mut self, agent: usize) -> CoreConfig {
        CoreConfig {
            hostname: format!("agent{agent}"),
            ip: Ipv4Addr::new(10, 0, (agent / 250) as u8, (agent % 250) as u8 + 1),
            port: 5051,
            resources: Resources::parse_flag(AGENT_RESOURCES, "*").expect("valid resources"),
            attributes: Vec::new(),
            work_dir: PathBuf::from(format!("/sim/agent{agent}")),
            launcher: PathBuf::from("/sim/mantle"),
            executor_registration_timeout: Duration::from_secs(20),
            executor_shutdown_grace_period: Duration::from_secs(3),
            executor_reregistration_timeout: Duration::from_secs_f64(
                EXECUTOR_REREGISTRATION_TIMEOUT,
            ),
            recovery_timeout: Duration::from_secs_f64(RECOVERY_TIMEOUT),
            docker_socket: None,
            flags: BTreeMap::new(),
            start_time: self.unix(),
            seed: self.rng.random(),
        }
    }

    fn agent_now(&self, agent: usize) -> Now {
        let elapsed = (self.secs() - self.agents[agent].started_at).max(0.0);
        Now {
            mono: Duration::from_secs_f64(elapsed),
            unix: self.unix(),
        }
    }

    /// Starts an agent process and recovers what the disk holds, as `lib.rs` does:
    /// `checkpoint::read`, then `Core::recover`, whose reattachments are answered from
    /// the launchers' records; registration waits until recovery is settled.
    pub fn agent_start(&mut self, agent: usize) {
        if self.agents[agent].up() {
            return;
        }
        let config = self.agent_config(agent);
        let now = self.secs();
        let node = &mut self.agents[agent];
        let recovered = match node.disk.read(node.boot) {
            Ok(recovered) => recovered,
            Err(err) => {
                self.fail(format!("agent {agent} cannot start: {err}"));
                return;
            }
        };
        node.life += 1;
        node.core = Some(Core::new(config));
        node.started_at = now;
        node.tick_at = None;
        node.link = Link::Idle;
        node.backoff = None;
        node.register_wanted = false;
        node.streams.clear();
        node.recovered_id = recovered.agent.as_ref().and_then(|a| a.id.clone());
        let life = node.life;
        let rebooted = recovered.rebooted;
        if node.recovered_id.is_some() {
            self.recovery.restarts += 1;
            self.recovery.reboots += usize::from(rebooted);
        }
        self.note(|| format!("agent {agent} starts (life {life}, rebooted: {rebooted})"));
        let now = self.agent_now(agent);
        if let Some(core) = self.agents[agent].core.as_mut() {
            let actions = core.recover(now, recovered);
            for action in actions {
                self.agent_act(agent, action);
            }
        }
        self.agent_arm(agent);
        self.agent_connect(agent);
    }

    /// The agent process dies; on a reboot its host goes down with it. The disk stays;
    /// executors live on or die as [`World::exec_agent_gone`] says.
    pub fn agent_crash(&mut self, agent: usize, restart_after: f64) {
        if !self.agents[agent].up() {
            return;
        }
        let reboot = self.chance(REBOOT_CHANCE);
        let life = self.agents[agent].life;
        self.note(|| {
            let what = if reboot { "reboots" } else { "crashes" };
            format!("agent {agent} {what} (life {life}), restarts in {restart_after:.1}s")
        });
        let procs: Vec<u64> = self.agents[agent]
            .procs
            .iter()
            .filter(|(_, p)| p.alive)
            .map(|(id, _)| *id)
            .collect();
        for proc in procs {
            self.exec_agent_gone(agent, proc, reboot, restart_after);
        }
        self.agent_drop_conn(agent);
        let node = &mut self.agents[agent];
        node.core = None;
        node.link = Link::Down;
        node.life += 1;
        node.streams.clear();
        if reboot {
            node.boot += 1;
        }
        self.at(restart_after, Ev::AgentStart { agent });
    }

    /// The link drops its stream: the master sees it close.
    fn agent_drop_conn(&mut self, agent: usize) {
        if let Link::Registering { conn } | Link::Connected { conn } = self.agents[agent].link {
            let sent = self.secs();
            self.send(Msg::Master {
                from: Peer::Agent(agent),
                sent,
                up: Up::Closed { conn },
            });
        }
    }

    /// The TCP connection to the master resets: both sides see it end.
    pub fn agent_reset_conn(&mut self, agent: usize) {
        let link = self.agents[agent].link;
        if let Link::Registering { .. } | Link::Connected { .. } = link {
            self.note(|| format!("agent {agent} connection resets"));
            self.agent_drop_conn(agent);
            self.agent_link_lost(agent, matches!(link, Link::Connected { .. }));
        }
    }

    fn agent_connect(&mut self, agent: usize) {
        let node = &mut self.agents[agent];
        let Some(core) = node.core.as_ref() else {
            return;
        };
        if core.recovering() {
            node.register_wanted = true;
            return;
        }
        let register = core.register_call();
        let conn = self.net.new_conn();
        let sent = self.secs();
        let node = &mut self.agents[agent];
        let executors = register
            .executors
            .iter()
            .filter_map(|e| Some((e.framework_id.clone()?, e.executor_id.clone())))
            .collect();
        node.report_pending = Some(Report {
            at: sent,
            executors,
        });
        node.attempt += 1;
        node.link = Link::Registering { conn };
        let (life, attempt) = (node.life, node.attempt);
        self.send(Msg::Master {
            from: Peer::Agent(agent),
            sent,
            up: Up::Register {
                conn,
                register: Box::new(register),
            },
        });
        self.at(
            REQUEST_TIMEOUT,
            Ev::AgentRegisterTimeout {
                agent,
                life,
                attempt,
            },
        );
    }

    /// The session ended; reconnect after the backoff. A session that had registered
    /// tells the core it is disconnected and starts the backoff afresh.
    fn agent_link_lost(&mut self, agent: usize, was_connected: bool) {
        if was_connected {
            self.agents[agent].backoff = None;
            let _ = self.agent_handle(agent, Input::Disconnected);
        }
        let delay = match self.agents[agent].backoff {
            None => self.delay(0.0, 1.0),
            Some(previous) => (previous * 2.0).clamp(0.1, MAX_BACKOFF),
        };
        let node = &mut self.agents[agent];
        node.backoff = Some(delay);
        node.link = Link::Idle;
        let (life, attempt) = (node.life, node.attempt);
        self.at(
            delay,
            Ev::AgentReconnect {
                agent,
                life,
                attempt,
            },
        );
    }

    pub fn agent_reconnect(&mut self, agent: usize, life: u64, attempt: u64) {
        let node = &self.agents[agent];
        if node.life == life && node.attempt == attempt && node.link == Link::Idle {
            self.agent_connect(agent);
        }
    }

    pub fn agent_register_timeout(&mut self, agent: usize, life: u64, attempt: u64) {
        let node = &self.agents[agent];
        if node.life != life || node.attempt != attempt {
            return;
        }
        if let Link::Registering { .. } = node.link {
            self.note(|| format!("agent {agent} registration timed out"));
            self.agent_drop_conn(agent);
            self.agent_link_lost(agent, false);
        }
    }

    pub fn agent_silence(&mut self, agent: usize, life: u64, conn: ConnId) {
        let node = &self.agents[agent];
        if node.life != life || node.link != (Link::Connected { conn }) {
            return;
        }
        let quiet_until = node.last_heard + node.silence;
        if self.secs() + 1e-6 < quiet_until {
            let wait = quiet_until - self.secs();
            self.at(wait, Ev::AgentSilence { agent, life, conn });
            return;
        }
        self.note(|| format!("agent {agent} hears nothing from the master; reconnecting"));
        self.agent_drop_conn(agent);
        self.agent_link_lost(agent, true);
    }

    pub fn agent_receive(&mut self, agent: usize, conn: ConnId, down: Down<ToAgent>) {
        let node = &self.agents[agent];
        if !node.up() {
            return;
        }
        match (node.link, down) {
            (Link::Registering { conn: c }, Down::Msg(ToAgent::Registered(registered)))
                if c == conn =>
            {
                let life = node.life;
                if let Some(id) = self.agents[agent].recovered_id.take() {
                    if id != registered.agent_id {
                        let new = &registered.agent_id;
                        self.fail(format!(
                            "agent {agent} recovered agent id {id} but registered as {new}"
                        ));
                    }
                }
                let silence = registered.ping_interval_seconds * MISSED_PINGS;
                let now = self.secs();
                let node = &mut self.agents[agent];
                node.agent_id = Some(registered.agent_id.clone());
                node.report = node.report_pending.take();
                node.link = Link::Connected { conn };
                node.last_heard = now;
                node.silence = silence;
                self.note(|| format!("agent {agent} registered as {}", registered.agent_id));
                self.at(silence, Ev::AgentSilence { agent, life, conn });
                let _ = self.agent_handle(
                    agent,
                    Input::Registered {
                        agent_id: registered.agent_id,
                        master_info: registered.master_info,
                    },
                );
            }
            (Link::Registering { conn: c }, Down::Msg(other)) if c == conn => {
                // master_link.rs: anything but REGISTERED first fails the attempt.
                let kind = message_kind(&other);
                self.note(|| format!("agent {agent} got {kind} before REGISTERED"));
                self.agent_drop_conn(agent);
                self.agent_link_lost(agent, false);
            }
            (Link::Registering { conn: c }, Down::End | Down::Refused) if c == conn => {
                self.agent_link_lost(agent, false);
            }
            (Link::Connected { conn: c }, Down::Msg(ToAgent::Shutdown(shutdown))) if c == conn => {
                self.note(|| format!("agent {agent} shut down by the master"));
                let input = Input::Master(Box::new(ToAgent::Shutdown(shutdown)));
                let _ = self.agent_handle(agent, input);
                self.agent_drop_conn(agent);
                self.agents[agent].link = Link::Stopped;
            }
            (Link::Connected { conn: c }, Down::Msg(message)) if c == conn => {
                self.agents[agent].last_heard = self.secs();
                if self.config.trace > 0 {
                    let kind = match &message {
                        ToAgent::RunTask(run) => format!("RUN_TASK {}", run.task.task_id),
                        ToAgent::KillTask(kill) => format!("KILL_TASK {}", kill.task_id),
                        other => message_kind(other).to_string(),
                    };
                    self.note(|| format!("agent {agent} <- {kind}"));
                }
                let _ = self.agent_handle(agent, Input::Master(Box::new(message)));
            }
            (Link::Connected { conn: c }, Down::End | Down::Refused) if c == conn => {
                self.note(|| format!("agent {agent} stream ended"));
                self.agent_link_lost(agent, true);
            }
            _ => {}
        }
    }

    pub fn agent_tick(&mut self, agent: usize, life: u64, at: Micros) {
        let node = &mut self.agents[agent];
        if node.life != life || !node.up() || node.tick_at != Some(at) {
            return;
        }
        node.tick_at = None;
        let _ = self.agent_handle(agent, Input::Tick);
    }

    /// Arms the agent's tick at its core's next deadline, unless one is armed sooner.
    fn agent_arm(&mut self, agent: usize) {
        let node = &self.agents[agent];
        let Some(next) = node.core.as_ref().and_then(Core::next_timer) else {
            return;
        };
        // A microsecond late, so that the tick's clock is past the deadline.
        let at = ((node.started_at + next.as_secs_f64()) * 1e6).ceil() as Micros + 1;
        let at = at.max(self.now_us);
        if node.tick_at.is_some_and(|armed| armed <= at) {
            return;
        }
        let life = node.life;
        self.agents[agent].tick_at = Some(at);
        self.at_us(at, Ev::AgentTick { agent, life, at });
    }

    /// Feeds a local input to the agent after `delay`, if it still lives the same life.
    pub fn agent_input_in(&mut self, delay: f64, agent: usize, life: u64, input: Input) {
        let input = Box::new(input);
        self.at(delay, Ev::AgentInput { agent, life, input });
    }

    /// A local input (an executor's call or a process event) for the current life.
    pub fn agent_local_input(&mut self, agent: usize, life: u64, input: Input) {
        if self.agents[agent].life == life {
            let _ = self.agent_handle(agent, input);
        }
    }

    /// Feeds the core one input and carries out its actions, as the event loop does.
    pub fn agent_handle(&mut self, agent: usize, input: Input) -> Result<(), ApiError> {
        let now = self.agent_now(agent);
        let Some(core) = self.agents[agent].core.as_mut() else {
            return Err(ApiError::unavailable("the agent is down"));
        };
        let output = core.handle(now, input);
        for action in output.actions {
            self.agent_act(agent, action);
        }
        self.agent_arm(agent);
        // event_loop.rs answers a held registration question after every input.
        let node = &mut self.agents[agent];
        if node.register_wanted && node.core.as_ref().is_some_and(|c| !c.recovering()) {
            node.register_wanted = false;
            self.agent_connect(agent);
        }
        output.reply
    }

    fn agent_act(&mut self, agent: usize, action: Action) {
        let life = self.agents[agent].life;
        match action {
            Action::ToMaster(call) => {
                // Calls made while not connected are dropped (master_link.rs).
                if let Link::Connected { conn } = self.agents[agent].link {
                    let sent = self.secs();
                    self.send(Msg::Master {
                        from: Peer::Agent(agent),
                        sent,
                        up: Up::AgentCall { conn, call },
                    });
                }
            }
            Action::ToExecutor { stream, event } => {
                if let ExecutorEvent::Acknowledged(ack) = &event {
                    self.truth.taken(&ack.uuid, life);
                }
                let delay = self.delay(0.0001, 0.002);
                if self.agents[agent].streams.contains_key(&stream) {
                    let event = Box::new(event);
                    self.at(
                        delay,
                        Ev::ExecEvent {
                            agent,
                            stream,
                            event,
                        },
                    );
                } else {
                    // Writing to a stream whose executor is gone fails; the event loop
                    // tells the core.
                    let input = Input::StreamClosed { stream };
                    self.agent_input_in(delay, agent, life, input);
                }
            }
            Action::CloseStream { stream } => {
                if let Some(proc) = self.agents[agent].streams.remove(&stream) {
                    self.exec_stream_ended(agent, proc, stream);
                }
            }
            Action::Launch(spec) => self.exec_launch(agent, *spec),
            Action::Kill { container_id } => {
                if let Some(&proc) = self.agents[agent].by_container.get(&container_id) {
                    self.exec_kill(agent, proc);
                }
            }
            Action::Checkpoint(checkpoint) => {
                let node = &mut self.agents[agent];
                node.disk.write(node.boot, &checkpoint);
            }
            Action::Reattach(spec) => self.agent_reattach(agent, &spec.container_id),
            Action::Update { .. } => {}
        }
    }

    /// Finds a recovered container's executor as `event_loop.rs` does from the
    /// launcher's records: still running, or exited with the status the launcher
    /// recorded (SIGKILL when it recorded none).
    fn agent_reattach(&mut self, agent: usize, container_id: &ContainerId) {
        let node = &self.agents[agent];
        let life = node.life;
        let found = node
            .by_container
            .get(container_id)
            .and_then(|proc| Some((*proc, node.procs.get(proc)?)));
        let input = match found {
            Some((proc, p)) if p.alive => Input::Launched {
                container_id: container_id.clone(),
                pid: proc as u32 + 1000,
            },
            found => {
                self.recovery.found_dead += 1;
                Input::Exited {
                    container_id: container_id.clone(),
                    status: found
                        .and_then(|(_, p)| p.exit_status)
                        .unwrap_or(SIGKILL_STATUS),
                }
            }
        };
        let delay = self.delay(0.001, 0.01);
        self.agent_input_in(delay, agent, life, input);
    }
}

fn message_kind(message: &ToAgent) -> &'static str {
    match message {
        ToAgent::Registered(_) => "REGISTERED",
        ToAgent::RunTask(_) => "RUN_TASK",
        ToAgent::RunTaskGroup(_) => "RUN_TASK_GROUP",
        ToAgent::KillTask(_) => "KILL_TASK",
        ToAgent::ShutdownExecutor(_) => "SHUTDOWN_EXECUTOR",
        ToAgent::ShutdownFramework(_) => "SHUTDOWN_FRAMEWORK",
        ToAgent::StatusUpdateAck(_) => "STATUS_UPDATE_ACK",
        ToAgent::FrameworkMessage(_) => "FRAMEWORK_MESSAGE",
        ToAgent::Ping => "PING",
        ToAgent::Shutdown(_) => "SHUTDOWN",
    }
}
