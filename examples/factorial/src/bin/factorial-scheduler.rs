//! `factorial-scheduler`: the classic Mesos example framework. It computes n! for each
//! number on the command line, one task per number, and checks every answer.
//!
//! ```text
//! factorial-scheduler [--master HOST:PORT] [--cpus 1] [--mem 10] [--executor PATH]
//!                     [--timeout 120] [--json] [N ...]
//! ```
//!
//! It subscribes to the master (`--master`, else `$MANTLE_MASTER`, else
//! `127.0.0.1:5050`) as the framework `factorial`, launches `factorial-<n>` tasks into
//! the offers it gets (each asks `--cpus` and `--mem`) on the custom executor
//! `factorial-executor` (by default the binary of that name next to this one; every task
//! on an agent shares one executor), and verifies the digits each task returns. The
//! numbers default to `5 7 10 70 30`.
//!
//! Progress goes to stdout, or to stderr with `--json`, which prints one JSON object per
//! verified result on stdout instead. Exit status: 0 when every number is verified; 1
//! when a task fails, is lost or returns a wrong answer, the master ends the
//! subscription, or `--timeout` seconds pass. The framework is torn down in every case.

use anyhow::{anyhow, bail, Context};
use clap::Parser;
use factorial::{Framework, OfferAction, Progress, TaskSpec, MAX_N};
use mantle_api::scheduler::Event;
use mantle_api::{FrameworkInfo, TaskStatus};
use mantle_sdk::scheduler::{Scheduler, SchedulerEvent, SchedulerEvents};
use mantle_sdk::ClientError;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

#[derive(Parser, Debug)]
#[command(
    name = "factorial-scheduler",
    version,
    about = "Computes factorials on a Mantle (or Mesos) cluster"
)]
struct Args {
    /// The master's HOST:PORT.
    #[arg(long, env = "MANTLE_MASTER", default_value = "127.0.0.1:5050")]
    master: String,
    /// CPUs per task.
    #[arg(long, default_value_t = 1.0, value_parser = positive)]
    cpus: f64,
    /// Memory per task, in MB.
    #[arg(long, default_value_t = 10.0, value_parser = positive)]
    mem: f64,
    /// The executor binary, as a path valid on the agents [default: factorial-executor
    /// next to this program].
    #[arg(long)]
    executor: Option<PathBuf>,
    /// Print one JSON object per verified result on stdout, with the keys `n`,
    /// `factorial` (the digits), `digits` (their count), `task_id`, `agent_id`, `verified`
    /// and `elapsed_seconds`; progress goes to stderr.
    #[arg(long)]
    json: bool,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 120)]
    timeout: u64,
    /// The numbers whose factorials to compute.
    #[arg(value_name = "N", default_values_t = [5u32, 7, 10, 70, 30],
          value_parser = clap::value_parser!(u32).range(0..=i64::from(MAX_N)))]
    numbers: Vec<u32>,
}

fn positive(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(value) if value.is_finite() && value > 0.0 => Ok(value),
        _ => Err(format!("{text:?} is not a positive number")),
    }
}

/// Where the lines for people and for machines go.
struct Output {
    json: bool,
    started: Instant,
}

impl Output {
    /// A line for people: stdout, or stderr when stdout is for JSON.
    fn say(&self, line: &str) {
        if self.json {
            eprintln!("{line}");
        } else {
            println!("{line}");
        }
    }

    fn result(&self, n: u32, digits: &str, status: &TaskStatus) {
        if self.json {
            let line = serde_json::json!({
                "n": n,
                "task_id": status.task_id.as_str(),
                "agent_id": status.agent_id.as_ref().map(|a| a.as_str()),
                "factorial": digits,
                "digits": digits.len(),
                "verified": true,
                "elapsed_seconds": self.started.elapsed().as_secs_f64(),
            });
            println!("{line}");
        } else {
            println!("factorial({n}) = {digits}");
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let args = Args::parse();
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("factorial-scheduler: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// The executor path to send to the agents: absolute, and present here (the usual case
/// of a local or shared-filesystem cluster), so a typo fails now rather than as a
/// TASK_FAILED later.
fn executor_path(given: Option<PathBuf>) -> anyhow::Result<String> {
    let path = match given {
        Some(path) => {
            std::path::absolute(&path).with_context(|| format!("resolving {}", path.display()))?
        }
        None => std::env::current_exe()
            .context("finding this program's path")?
            .with_file_name("factorial-executor"),
    };
    if !path.is_file() {
        bail!(
            "the executor {} does not exist; build it (cargo build -p factorial) or pass --executor PATH",
            path.display()
        );
    }
    path.into_os_string()
        .into_string()
        .map_err(|path| anyhow!("the executor path {path:?} is not UTF-8"))
}

async fn run(args: Args) -> anyhow::Result<()> {
    let output = Output {
        json: args.json,
        started: Instant::now(),
    };
    let spec = TaskSpec {
        cpus: args.cpus,
        mem: args.mem,
        executor_path: executor_path(args.executor)?,
    };
    let mut framework = Framework::new(&args.numbers, spec).map_err(|e| anyhow!(e))?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(args.timeout);
    let timed_out = |framework: &Framework| {
        let waiting: Vec<String> = framework.outstanding().iter().map(u32::to_string).collect();
        anyhow!(
            "timed out after {}s with {} of {} results (still waiting for {})",
            args.timeout,
            framework.verified().len(),
            framework.total(),
            waiting.join(", ")
        )
    };

    let user = std::env::var("USER")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| "root".into());
    let info: FrameworkInfo = serde_json::from_value(serde_json::json!({
        "user": user, "name": "factorial", "failover_timeout": 0.0,
    }))?;
    let subscribing = Scheduler::subscribe(&args.master, info);
    let (scheduler, mut events) = match tokio::time::timeout_at(deadline, subscribing).await {
        Err(_) => bail!(
            "could not subscribe to master {} within {}s",
            args.master,
            args.timeout
        ),
        Ok(result) => result.with_context(|| format!("subscribing to master {}", args.master))?,
    };

    let outcome = match tokio::time::timeout_at(
        deadline,
        drive(&scheduler, &mut events, &mut framework, &output),
    )
    .await
    {
        Ok(outcome) => outcome,
        Err(_) => Err(timed_out(&framework)),
    };
    // Remove the framework whatever happened, so no task outlives the run. It may be
    // gone already (the master sent ERROR), which only deserves a note.
    match tokio::time::timeout(Duration::from_secs(10), scheduler.teardown()).await {
        Ok(Ok(())) => {}
        Ok(Err(error)) => tracing::warn!(error = %error, "tearing down the framework failed"),
        Err(_) => tracing::warn!("tearing down the framework timed out"),
    }
    outcome?;
    let largest = framework
        .verified()
        .iter()
        .next_back()
        .map(|(n, digits)| (*n, digits.len()));
    let mut summary = format!(
        "all {} factorials verified in {:.1}s",
        framework.total(),
        output.started.elapsed().as_secs_f64()
    );
    if let Some((n, digits)) = largest {
        summary.push_str(&format!(
            "; the largest, factorial({n}), has {digits} digits"
        ));
    }
    output.say(&summary);
    Ok(())
}

/// Reacts to events until every number is verified or the run fails.
async fn drive(
    scheduler: &Scheduler,
    events: &mut SchedulerEvents,
    framework: &mut Framework,
    output: &Output,
) -> anyhow::Result<()> {
    let mut last_disconnect = None;
    loop {
        let Some(event) = events.next().await else {
            let why = last_disconnect.unwrap_or_else(|| "no reason given".to_string());
            bail!("the subscription ended ({why})");
        };
        let event = match event {
            SchedulerEvent::Connected {
                framework_id,
                master,
            } => {
                output.say(&format!(
                    "subscribed to master {master} as framework {framework_id}"
                ));
                continue;
            }
            SchedulerEvent::Disconnected { reason } => {
                output.say(&format!("disconnected: {reason}"));
                last_disconnect = Some(reason);
                continue;
            }
            SchedulerEvent::Event(event) => event,
        };
        match event {
            Event::Offers(offers) => {
                let actions = framework.offers(&offers.offers, scheduler.framework_id().as_ref());
                for action in actions {
                    act(scheduler, framework, output, action).await?;
                }
            }
            Event::Update(update) => {
                let status = update.status;
                if let Err(error) = scheduler.acknowledge(&status).await {
                    tracing::warn!(task_id = %status.task_id, error = %error, "acknowledging failed");
                }
                match framework.update(&status) {
                    Progress::State { n, state } => {
                        let agent = status
                            .agent_id
                            .as_ref()
                            .map(|a| format!(" on agent {a}"))
                            .unwrap_or_default();
                        output.say(&format!("factorial({n}): {state}{agent}"));
                    }
                    Progress::Verified { n, digits } => {
                        output.result(n, &digits, &status);
                        if framework.done() {
                            return Ok(());
                        }
                    }
                    Progress::Failed { message, .. } => bail!(message),
                    Progress::Ignored => {}
                }
            }
            Event::Failure(failure) => {
                let agent = failure
                    .agent_id
                    .map(|a| a.to_string())
                    .unwrap_or_else(|| "?".into());
                let what = match (&failure.executor_id, failure.status) {
                    (Some(executor), Some(status)) => {
                        format!("executor {executor} exited with status {status}")
                    }
                    (Some(executor), None) => format!("executor {executor} exited"),
                    _ => "the agent was lost".to_string(),
                };
                output.say(&format!("agent {agent}: {what}"));
            }
            Event::Error(error) => bail!("the master ended the subscription: {}", error.message),
            Event::Subscribed(_)
            | Event::Heartbeat
            | Event::Rescind(_)
            | Event::InverseOffers(_)
            | Event::RescindInverseOffer(_)
            | Event::Message(_)
            | Event::Other(_) => {}
        }
    }
}

/// Sends the call for one offer action. A launch the master refused outright puts its
/// numbers back in the queue; one whose fate is unknown (the connection broke) ends the
/// run, since launching the same task twice would fail anyway.
async fn act(
    scheduler: &Scheduler,
    framework: &mut Framework,
    output: &Output,
    action: OfferAction,
) -> anyhow::Result<()> {
    match action {
        OfferAction::Launch {
            offer_id,
            tasks,
            filters,
        } => {
            let names: Vec<&str> = tasks.iter().map(|t| t.name.as_str()).collect();
            let agent = tasks[0].agent_id.clone();
            output.say(&format!("launching {} on agent {agent}", names.join(", ")));
            match scheduler.launch(offer_id, tasks.clone(), filters).await {
                Ok(()) => Ok(()),
                Err(error @ (ClientError::Status { .. } | ClientError::Redirect { .. })) => {
                    tracing::warn!(error = %error, "the master refused a launch; retrying with another offer");
                    framework.relaunch(&tasks);
                    Ok(())
                }
                Err(error) => Err(error).context("launching tasks"),
            }
        }
        OfferAction::Decline { offer_ids, filters } => {
            // A failed decline only delays the offer's return to the pool.
            if let Err(error) = scheduler.decline(offer_ids, filters).await {
                tracing::warn!(error = %error, "declining offers failed");
            }
            Ok(())
        }
    }
}
