//! A seeded simulation of a whole Mantle cluster in one process and in simulated time
//! (the "simulation" row of DESIGN's test table): the real master core and agent cores,
//! driven the way their event loops drive them, with simulated executors, schedulers
//! and network, and faults chosen by the seed. There is no clock, thread or unseeded
//! randomness: one seed always replays the same run.
//!
//! # What is modelled
//!
//! - **Master** (`master.rs`): [`mantle_master::core::Master`] handling registrations,
//!   agent calls, subscriptions and scheduler calls as they arrive, ticking every second
//!   with an allocation, allocating again shortly after calls, executing its actions on
//!   the open streams. Its registry is what the store holds; a crashed master closes
//!   every stream and a restarted one recovers the stored registry.
//! - **Agents** (`agent.rs`): [`mantle_agent::core::Core`] with the shell of
//!   `event_loop.rs` (actions, executor streams, launches, kills) and of
//!   `master_link.rs` (a new stream per registration whose first message must be
//!   REGISTERED, reconnection after the stream ends or stays silent for five ping
//!   intervals with the link's backoff, calls dropped while not connected).
//! - **Checkpoints and recovery** (`disk.rs`, `agent.rs`): each host keeps a disk to
//!   which the core's `Checkpoint` actions are applied as `checkpoint.rs` writes them
//!   (the same `meta/` structure; a write is done before the actions after it, so a
//!   crash keeps exactly what was applied). A restarted agent reads it back into a
//!   `Recovered` as `checkpoint::read` does, calls `Core::recover`, answers each
//!   `Reattach` with `Launched` (the executor lives) or `Exited` (with the status its
//!   launcher recorded), and registers, with the recovered agent id, only once
//!   `Core::recovering()` is false. A fifth of agent crashes are host reboots: the boot
//!   id changes and every executor dies with the host.
//! - **Executors** (`executor.rs`): command and custom executors that subscribe, answer
//!   LAUNCH with STARTING/RUNNING, end tasks after a planned time with FINISHED or
//!   FAILED, answer KILL and SHUTDOWN, keep updates until ACKNOWLEDGED and resend them
//!   on a new SUBSCRIBE; some fail to launch or never subscribe. Those of frameworks
//!   that checkpoint outlive an agent crash and subscribe again, with their
//!   unacknowledged tasks and updates, after random delays up to
//!   `MESOS_SUBSCRIPTION_BACKOFF_MAX` (for at most `MESOS_RECOVERY_TIMEOUT`); some die
//!   or hang while the agent is down, so that the restarted agent also finds exited
//!   executors and runs into `--executor_reregistration_timeout`. Executors of other
//!   frameworks, and those not started yet, die with the agent.
//! - **Schedulers** (`scheduler.rs`): subscribe and resubscribe with their framework id,
//!   keep a number of tasks alive from offers, decline, suppress and revive, acknowledge
//!   every update with a uuid, kill tasks, reconcile after subscribing and every 30 s.
//!   Half of them are partition-aware, some do not checkpoint, their
//!   `failover_timeout` is 0, 15, 60 or 600 s.
//! - **Network** (`net.rs`): ordered streams and calls with seeded delays; partitions
//!   hold traffic as a silent TCP link does and deliver it on healing, except requests
//!   the client has given up on; a peer that drops a stream is seen by the other side.
//! - **Faults** (`faults.rs`): partitions of one or several agents (short, long enough
//!   to reconnect, long enough to become unreachable), agent crashes and host reboots
//!   (mostly of agents that run executors, so that recovery has work), dropped agent
//!   connections, executor crashes, scheduler crashes restarting within or beyond the
//!   failover timeout, scheduler failovers to a new instance, dropped scheduler
//!   connections, and up to two master crashes.
//!
//! A run has a chaos phase (faults, new tasks) and a settle phase: every fault healed,
//! every process up, schedulers kill what they believe runs, and the run ends once the
//! cluster is quiet (or fails after `settle_secs`). The master's ping interval (10 s x 3)
//! and agent re-registration timeout (30 s) are shortened so that failure detection
//! happens within a run.
//!
//! # Invariants
//!
//! Checked on every update a scheduler receives (`truth.rs`):
//!
//! 1. **Uuids.** A master-generated update (SOURCE_MASTER) carries no uuid; an update
//!    from an agent or executor carries one (reference §5.3).
//! 2. **Nothing made up.** STARTING, RUNNING or KILLING is reported only if the task's
//!    executor sent that state.
//! 3. **Not dead while running.** FINISHED, FAILED, KILLED, ERROR, DROPPED, GONE and
//!    GONE_BY_OPERATOR are never reported while the task runs on its executor. Nor is
//!    LOST when the framework checkpoints: its tasks outlive an agent crash and
//!    restart unless their executor really dies (the master reports LOST at once for a
//!    framework that does not checkpoint when the agent disconnects, reference §5.1).
//!    Exceptions: a reconciliation answer about a task the master does not know (any
//!    more), which the master gives without waiting for the kill it sent (invariant 7
//!    then checks that the task does end), and LOST from the master because the agent
//!    became unreachable or in a reconciliation answer (the task may come back, see 4).
//! 4. **Terminal states are final.** After a final terminal state only the same state
//!    follows. Exceptions: (a) LOST, UNREACHABLE or UNKNOWN from the master because the
//!    agent became unreachable or in a reconciliation answer are not final (the Mesos
//!    1.5 rule: the task may come back), (b) reconciliation answers about unknown tasks
//!    may follow anything, (c) when the final state came from the master (reconciliation
//!    or re-registration, which report the agent's latest state), older non-terminal
//!    updates of the task's own stream may still arrive, (d) after the master's LOST
//!    for a framework that does not checkpoint, given when the agent disconnected, the
//!    task's real end may follow: the master kills the task when the agent comes back,
//!    and a master that failed over in between learns that end from the agent.
//! 5. **Coming back is announced.** A task reported UNREACHABLE or LOST because its agent
//!    became unreachable is next reported alive only with REASON_AGENT_REREGISTERED (or
//!    in a reconciliation answer). Exception: the scheduler subscribed again since, so
//!    it may have missed that notice (master-generated updates are not retried).
//!
//! Checked after every allocation (`master.rs`):
//!
//! 6. **No resource is offered twice.** On every agent with a new offer, outstanding
//!    offers plus the live tasks and executors the master knows fit in the agent's
//!    total, and no port is held twice.
//!
//! Checked once every fault is healed and the cluster settled (`truth.rs`):
//!
//! 7. **Everything ends, once.** The master, every agent and every scheduler are back
//!    and connected; every task a scheduler launched ends for it in a terminal state or
//!    UNKNOWN; no executor runs anything; and the master counts no executor (holding
//!    its resources) that its agent does not run. Exception to the last: an executor
//!    that ended after its agent built the registration report the master last took
//!    (or that report still listed it), whose EXECUTOR_EXITED may have been lost: that
//!    call is not retried, so the master learns of it at the next re-registration.
//! 8. **No update is lost.** Every update an executor sent reaches a scheduler of its
//!    framework, unless the master removed the framework, the framework does not
//!    checkpoint (its update streams die with the agent, and the master gives its tasks
//!    up when the agent disconnects), or the executor died before the agent
//!    acknowledged the update (with its host on a reboot, say). An acknowledged update
//!    has no excuse left: it was on disk before the acknowledgement, so it survives
//!    agent crashes and reboots alike.
//!
//! Checked whenever an agent registers (`agent.rs`):
//!
//! 9. **Agents keep their id.** An agent that recovered an agent id from its disk
//!    registers with that id.
//!
//! # Not modelled
//!
//! Task groups, health checks, offer operations other than LAUNCH, roles, quota and
//! reservations, operator calls (maintenance, MARK_AGENT_GONE), `--offer_timeout`, the
//! removal rate limit, scheduler heartbeat timeouts (a scheduler learns of a dead
//! stream at once), partitions between schedulers and the master, messages lost inside
//! a healthy stream, and the JSON and HTTP layers (the cores exchange the typed
//! messages directly). Of recovery: the encoding of checkpoint files and torn last
//! records (the disk keeps typed values; `checkpoint.rs` has its own tests),
//! unreadable checkpoints and `--strict`, `--recover=cleanup`, a crash between
//! launching an executor and recording its launcher's pid (executors not started yet
//! die with the agent), reused pids, container limitations, and the command
//! executor's exponential backoff (modelled as random delays up to its cap).

mod agent;
mod disk;
mod executor;
mod faults;
mod master;
mod net;
mod queue;
mod scheduler;
mod truth;
mod world;

pub use world::{Config, Failure, Recovery, Report};

/// Runs one seed.
pub fn run(seed: u64, config: &Config) -> Result<Report, Failure> {
    world::World::new(seed, config.clone()).run()
}
