//! The bytes the master core alone (its maps, the allocator, no HTTP) holds per
//! registered agent and per running task, counted by a global allocator that tracks live
//! bytes. It drives the pure core the way the event loop does: N agents register, F
//! frameworks subscribe, accept every offer with `--tasks-per-agent` command tasks, and
//! each task reports TASK_STARTING and TASK_RUNNING, each acknowledged. It prints one JSON
//! line; `bench/run memory` measures the whole master process, of which this is the core's
//! share. Last, it times the disconnection of up to 1,000 of the agents (their tasks are
//! lost, since the frameworks do not checkpoint), and then marking them unreachable in
//! one tick. Run with `cargo run --release -p mantle-master --example core_memory [AGENTS
//! [TASKS_PER_AGENT]]`.

use mantle_api::internal::{AgentCall, Register, StatusUpdate, ToAgent};
use mantle_api::scheduler::{Accept, Acknowledge, CallBody, Event, Subscribe};
use mantle_api::*;
use mantle_master::core::{Action, Agent, Framework, KeptInfo, Master, MasterConfig, Task};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

/// The system allocator, counting the bytes it has handed out and not taken back.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every call is passed on to the system allocator unchanged; only a counter is
// updated besides.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: the caller's contract is the system allocator's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: the caller's contract is the system allocator's.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, size: usize) -> *mut u8 {
        LIVE.fetch_add(size as isize - layout.size() as isize, Ordering::Relaxed);
        // SAFETY: the caller's contract is the system allocator's.
        unsafe { System.realloc(ptr, layout, size) }
    }
}

#[global_allocator]
static COUNTING: Counting = Counting;

fn live() -> isize {
    LIVE.load(Ordering::Relaxed)
}

const FRAMEWORKS: usize = 10;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let agents: usize = args.next().map_or(Ok(10_000), |a| a.parse())?;
    let per_agent: usize = args.next().map_or(Ok(10), |a| a.parse())?;
    let mut master = Master::new(
        "2b6e4b3c-7f1a-4a53-9a8e-1e2d3c4b5a69".into(),
        MasterConfig::default(),
        0.0,
    );
    let idle = live();
    register_agents(&mut master, agents, per_agent)?;
    let with_agents = live();
    let tasks = launch_tasks(&mut master, agents * per_agent, per_agent)?;
    let with_tasks = live();
    let disconnected = agents.min(1000);
    let started = std::time::Instant::now();
    for i in 0..disconnected {
        master.agent_stream_closed(2.0, &uuid_like(i));
        master.take_actions();
    }
    let disconnect_us = started.elapsed().as_secs_f64() * 1e6 / disconnected.max(1) as f64;
    // Past the re-registration timeout, with the other agents heard from just before:
    // one tick marks the disconnected ones, and only them, unreachable.
    let reregistered_by = 2.0 + MasterConfig::default().agent_reregister_timeout;
    for i in disconnected..agents {
        master.agent_call(reregistered_by, &uuid_like(i), AgentCall::Pong)?;
    }
    master.take_actions();
    let started = std::time::Instant::now();
    master.tick(reregistered_by + 1.0);
    master.take_actions();
    let unreachable_ms = started.elapsed().as_secs_f64() * 1e3;
    anyhow::ensure!(
        master.health.unreachable.len() == disconnected,
        "{} of the {disconnected} disconnected agents were marked unreachable",
        master.health.unreachable.len()
    );
    let per = |bytes: isize, count: usize| bytes / count.max(1) as isize;
    println!(
        "{}",
        serde_json::json!({
            "bench": "memory_core",
            "agents": agents,
            "tasks": tasks,
            "core_bytes_per_agent": per(with_agents - idle, agents),
            "core_bytes_per_task": per(with_tasks - with_agents, tasks),
            "agent_disconnect_us": disconnect_us.round(),
            "disconnected_marked_unreachable_ms": (unreachable_ms * 10.0).round() / 10.0,
            "size_of": {
                "Agent": size_of::<Agent>(),
                "Framework": size_of::<Framework>(),
                "Task": size_of::<Task>(),
                "KeptInfo": size_of::<KeptInfo>(),
                "TaskStatus": size_of::<TaskStatus>(),
                "Resource": size_of::<Resource>(),
            },
        })
    );
    Ok(())
}

/// Agents as the simulated agents register: exactly `per_agent` tasks of one cpu fit.
fn register_agents(master: &mut Master, agents: usize, per_agent: usize) -> anyhow::Result<()> {
    let capabilities: Vec<Capability> =
        ["MULTI_ROLE", "HIERARCHICAL_ROLE", "RESERVATION_REFINEMENT"]
            .iter()
            .map(|kind| Capability {
                kind: kind.to_string(),
            })
            .collect();
    let n = per_agent.max(1);
    let text = format!(
        "cpus:{n};mem:{};disk:{};ports:[31000-32000]",
        64 * n,
        16 * n
    );
    let resources = Resources::parse_text(&text, "*")
        .map_err(anyhow::Error::msg)?
        .to_wire();
    for i in 0..agents {
        let register = Register {
            agent_info: AgentInfo {
                hostname: format!("sim-{i}"),
                port: 5051,
                resources: resources.clone(),
                attributes: vec![],
                id: None,
                capabilities: capabilities.clone(),
            },
            pid: format!(
                "slave(1)@127.{}.{}.{}:5051",
                i >> 16,
                (i >> 8) & 255,
                i & 255
            ),
            version: MESOS_VERSION.into(),
            frameworks: vec![],
            executors: vec![],
            tasks: vec![],
        };
        master
            .register_agent(0.0, uuid_like(i).into(), register)
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        master.take_actions();
    }
    Ok(())
}

/// A stream id as long as the event loop's (a UUID).
fn uuid_like(i: usize) -> String {
    format!("00000000-0000-4000-8000-{i:012}")
}

/// Launches `total` command tasks, `per_agent` on each offer, through the frameworks
/// and runs each to TASK_RUNNING; returns how many run.
fn launch_tasks(master: &mut Master, total: usize, per_agent: usize) -> anyhow::Result<usize> {
    let mut frameworks = Vec::new();
    for f in 0..FRAMEWORKS {
        let info: FrameworkInfo = serde_json::from_value(serde_json::json!({
            "user": "root", "name": format!("memory-{f}"), "failover_timeout": 3600.0,
        }))?;
        let subscribe = Subscribe {
            framework_info: info,
            suppressed_roles: vec![],
            offer_constraints: None,
        };
        let stream = format!("framework-{f}");
        let id = master
            .subscribe(0.0, subscribe, stream.as_str().into())
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        frameworks.push((id, stream));
    }
    master.take_actions();
    let task_resources = Resources::parse_text("cpus:1;mem:64;disk:16", "*")
        .map_err(anyhow::Error::msg)?
        .to_wire();
    let mut launched = 0;
    for _round in 0..100 {
        if launched >= total {
            break;
        }
        master.allocate(1.0);
        for action in master.take_actions() {
            let Action::Framework {
                stream,
                event: Event::Offers(offers),
            } = action
            else {
                continue;
            };
            let Some((id, _)) = frameworks.iter().find(|(_, s)| **s == *stream) else {
                continue;
            };
            for offer in offers.offers {
                let fits = total.saturating_sub(launched).min(per_agent);
                let tasks = (launched..launched + fits)
                    .map(|n| command_task(n, &offer.agent_id, &task_resources))
                    .collect::<anyhow::Result<Vec<TaskInfo>>>()?;
                launched += tasks.len();
                let accept = Accept {
                    offer_ids: vec![offer.id.clone()],
                    operations: vec![Operation::launch(tasks)],
                    filters: None,
                };
                master
                    .scheduler_call(1.0, id, Some(&stream), CallBody::Accept(accept))
                    .map_err(|e| anyhow::anyhow!("{e:?}"))?;
            }
        }
        run_launched(master, &frameworks)?;
    }
    Ok(launched)
}

fn command_task(n: usize, agent_id: &AgentId, resources: &[Resource]) -> anyhow::Result<TaskInfo> {
    Ok(serde_json::from_value(serde_json::json!({
        "name": format!("t{n}"), "task_id": {"value": format!("t{n}")}, "agent_id": agent_id,
        "resources": resources, "command": {"value": "sleep infinity"},
    }))?)
}

/// Answers every RunTask queued with TASK_STARTING then TASK_RUNNING, as an agent's
/// executor does, and acknowledges each as its framework does.
fn run_launched(master: &mut Master, frameworks: &[(FrameworkId, String)]) -> anyhow::Result<()> {
    let runs: Vec<_> = master
        .take_actions()
        .into_iter()
        .filter_map(|action| match action {
            Action::Agent {
                stream,
                message: ToAgent::RunTask(run),
            } => Some((stream, run)),
            _ => None,
        })
        .collect();
    for (stream, run) in runs {
        let Some(framework_id) = run.framework_info.id.clone() else {
            anyhow::bail!("a RunTask without its framework id");
        };
        let framework_stream = frameworks
            .iter()
            .find(|(id, _)| *id == framework_id)
            .map(|(_, s)| s.clone());
        for (n, state) in [TaskState::Starting, TaskState::Running]
            .into_iter()
            .enumerate()
        {
            let mut status = TaskStatus::new(run.task.task_id.clone(), state);
            // 16 bytes in base64, as an agent's update uuid.
            let uuid = format!("AAAAAAAAAAAAAAAAAAAA{n}A==");
            status.uuid = Some(uuid.clone());
            status.timestamp = Some(1.0);
            status.source = Some(Source::Executor);
            status.executor_id = Some(ExecutorId::new(run.task.task_id.value.clone()));
            let update = StatusUpdate {
                framework_id: framework_id.clone(),
                status,
            };
            master
                .agent_call(1.0, &stream, AgentCall::StatusUpdate(update))
                .map_err(|e| anyhow::anyhow!("{e:?}"))?;
            let acknowledge = Acknowledge {
                agent_id: run.task.agent_id.clone(),
                task_id: run.task.task_id.clone(),
                uuid,
            };
            master
                .scheduler_call(
                    1.0,
                    &framework_id,
                    framework_stream.as_deref(),
                    CallBody::Acknowledge(acknowledge),
                )
                .map_err(|e| anyhow::anyhow!("{e:?}"))?;
            master.take_actions();
        }
    }
    Ok(())
}
