//! The CLI verbs of `mantle` for people and scripts, in the spirit of the Mesos CLI and
//! `mesos-execute` (reference clients §7): `agents`, `frameworks`, `tasks`, `task log`,
//! `task kill`, `framework teardown`, `execute` and `top`. Each reads the leading
//! master's legacy JSON or sends it operator calls; tables are for people, `--json`
//! prints one JSON document for machines. Errors name what was not found and end with
//! a nonzero exit status.

mod client;
mod execute;
mod lists;
mod progress;
mod table;
mod task;
mod top;

use anyhow::anyhow;
use clap::{Args, Subcommand};
use client::Master;
use mantle_api::{FrameworkInfo, Resources};
use std::process::ExitCode;

/// The verbs, flattened into `mantle`'s own subcommands.
#[derive(Subcommand, Debug)]
pub enum Verb {
    /// List the agents: address, state, tasks and resources used of total.
    Agents(ListArgs),
    /// List the frameworks (with --all, the completed ones too).
    Frameworks(FrameworksArgs),
    /// List the tasks the master knows, active and completed.
    Tasks(TasksArgs),
    /// Read a task's log or kill a task.
    #[command(subcommand)]
    Task(TaskVerb),
    /// Tear a framework down.
    #[command(subcommand)]
    Framework(FrameworkVerb),
    /// Run a command as one or more tasks and wait for them to end (what mesos-execute
    /// did); the exit status is nonzero when a task did not finish.
    Execute(ExecuteArgs),
    /// A live view of the cluster: resources, agents, frameworks and tasks by state.
    Top(TopArgs),
}

#[derive(Subcommand, Debug)]
pub enum TaskVerb {
    /// Print a task's stdout (or stderr) from its sandbox.
    Log(LogArgs),
    /// Kill a task.
    Kill(KillArgs),
}

#[derive(Subcommand, Debug)]
pub enum FrameworkVerb {
    /// Remove a framework and kill all its tasks.
    Teardown(TeardownArgs),
}

/// Where the master is.
#[derive(Args, Debug)]
pub struct MasterArg {
    /// The master, as host:port, or a zk://host:2181/path URL to find the leader; a
    /// standby master's redirect to the leader is followed.
    #[arg(long, env = "MANTLE_MASTER", default_value = "127.0.0.1:5050")]
    pub master: String,
}

#[derive(Args, Debug)]
pub struct ListArgs {
    #[command(flatten)]
    pub master: MasterArg,
    /// Print the master's objects as one JSON array instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct FrameworksArgs {
    #[command(flatten)]
    pub list: ListArgs,
    /// Include completed frameworks.
    #[arg(long)]
    pub all: bool,
}

#[derive(Args, Debug)]
pub struct TasksArgs {
    #[command(flatten)]
    pub list: ListArgs,
    /// Only tasks in this state (running, TASK_RUNNING, finished, ...).
    #[arg(long)]
    pub state: Option<String>,
    /// Only tasks of this framework (its id or short id).
    #[arg(long)]
    pub framework: Option<String>,
}

/// A task named by its id, and its framework when the id alone is ambiguous.
#[derive(Args, Debug)]
pub struct TaskRef {
    #[command(flatten)]
    pub master: MasterArg,
    /// The task's id.
    pub task: String,
    /// The task's framework, when several frameworks used the same task id.
    #[arg(long)]
    pub framework: Option<String>,
}

#[derive(Args, Debug)]
pub struct LogArgs {
    #[command(flatten)]
    pub task: TaskRef,
    /// Print stderr instead of stdout.
    #[arg(long)]
    pub stderr: bool,
    /// Keep printing what the task writes until it ends.
    #[arg(long, short = 'f')]
    pub follow: bool,
}

#[derive(Args, Debug)]
pub struct KillArgs {
    #[command(flatten)]
    pub task: TaskRef,
    /// Print what was done as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct TeardownArgs {
    #[command(flatten)]
    pub master: MasterArg,
    /// The framework's id (or the short id the tables show).
    pub id: String,
    /// Print what was done as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct ExecuteArgs {
    #[command(flatten)]
    pub master: MasterArg,
    /// The task's name; also its id (with -<i> appended when there are several).
    #[arg(long)]
    pub name: String,
    /// The shell command to run.
    #[arg(long)]
    pub command: String,
    /// Resources of each task.
    #[arg(long, default_value = "cpus:1;mem:128")]
    pub resources: String,
    /// Run the command in this Docker image (agents need --containerizers docker).
    #[arg(long = "docker_image")]
    pub docker_image: Option<String>,
    /// How many copies of the task to run.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub instances: u32,
    /// The framework's name.
    #[arg(long = "framework_name", default_value = "mantle-execute")]
    pub framework_name: String,
    /// The framework's role.
    #[arg(long, default_value = "*")]
    pub role: String,
    /// The user tasks run as (default: the user running this command).
    #[arg(long)]
    pub user: Option<String>,
    /// Ask agents to checkpoint the tasks, so they survive an agent restart.
    #[arg(long)]
    pub checkpoint: bool,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct TopArgs {
    #[command(flatten)]
    pub master: MasterArg,
    /// Print one frame and exit (also what happens when stdout is not a terminal).
    #[arg(long)]
    pub once: bool,
    /// Print one summary as JSON and exit.
    #[arg(long)]
    pub json: bool,
    /// Time between refreshes.
    #[arg(long, default_value = "2secs")]
    pub interval: String,
}

/// Prints a JSON document or a table.
fn print_list(as_json: bool, items: &[&serde_json::Value], table: table::Table) {
    if as_json {
        println!(
            "{}",
            serde_json::Value::from(items.iter().copied().cloned().collect::<Vec<_>>())
        );
    } else {
        print!("{}", table.render());
    }
}

/// Runs a verb; the exit status is the verb's verdict.
pub async fn run(verb: Verb) -> anyhow::Result<ExitCode> {
    // Rust ignores SIGPIPE, so printing into a closed pipe (`mantle tasks | head`) would
    // panic; a CLI should end quietly there, as other Unix tools do.
    // SAFETY: setting a signal's disposition to the default has no memory-safety effects.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    match verb {
        Verb::Agents(args) => {
            let state = Master::connect(&args.master.master).await?.state().await?;
            let agents: Vec<&serde_json::Value> = lists::list(&state, "slaves").iter().collect();
            print_list(args.json, &agents, lists::agents_table(&state));
        }
        Verb::Frameworks(args) => {
            let state = Master::connect(&args.list.master.master)
                .await?
                .state()
                .await?;
            let frameworks = lists::frameworks(&state, args.all);
            print_list(
                args.list.json,
                &frameworks,
                lists::frameworks_table(&frameworks),
            );
        }
        Verb::Tasks(args) => {
            let wanted = args.state.as_deref().map(lists::parse_state).transpose()?;
            let state = Master::connect(&args.list.master.master)
                .await?
                .state()
                .await?;
            let framework = match &args.framework {
                Some(typed) => Some(lists::find_framework(&state, typed)?["id"].clone()),
                None => None,
            };
            let tasks: Vec<&serde_json::Value> = lists::all_tasks(&state)
                .into_iter()
                .filter(|t| wanted.is_none_or(|s| t["state"] == s.as_str()))
                .filter(|t| framework.as_ref().is_none_or(|f| &t["framework_id"] == f))
                .collect();
            print_list(args.list.json, &tasks, lists::tasks_table(&tasks));
        }
        Verb::Task(TaskVerb::Log(args)) => {
            let (master, task) = (Master::connect(&args.task.master.master).await?, args.task);
            task::log(
                &master,
                &task.task,
                task.framework.as_deref(),
                args.stderr,
                args.follow,
            )
            .await?;
        }
        Verb::Task(TaskVerb::Kill(args)) => {
            let (master, task) = (Master::connect(&args.task.master.master).await?, args.task);
            task::kill(&master, &task.task, task.framework.as_deref(), args.json).await?;
        }
        Verb::Framework(FrameworkVerb::Teardown(args)) => {
            let master = Master::connect(&args.master.master).await?;
            task::teardown(&master, &args.id, args.json).await?;
        }
        Verb::Execute(args) => return run_execute(args).await,
        Verb::Top(args) => {
            let interval = mantle_api::duration::parse_duration(&args.interval)
                .map_err(|e| anyhow!("--interval: {e}"))?;
            if interval.is_zero() {
                return Err(anyhow!("--interval: must be greater than zero"));
            }
            let master = Master::connect(&args.master.master).await?;
            top::top(&master, args.once, args.json, interval).await?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn run_execute(args: ExecuteArgs) -> anyhow::Result<ExitCode> {
    let resources =
        Resources::parse_text(&args.resources, "*").map_err(|e| anyhow!("--resources: {e}"))?;
    if resources.is_empty() {
        return Err(anyhow!("--resources: a task needs some resources"));
    }
    mantle_api::validation::validate_role("--role", &args.role).map_err(|e| anyhow!(e))?;
    if args.name.trim().is_empty() {
        return Err(anyhow!("--name: must not be empty"));
    }
    // Reaching the master first gives a clear error when it is not there, before the
    // SDK's retries.
    let master = Master::connect(&args.master.master).await?;
    master.get_json("/version").await?;
    let user = args.user.clone().unwrap_or_else(execute::default_user);
    let framework: FrameworkInfo = serde_json::from_value(serde_json::json!({
        "user": user,
        "name": args.framework_name,
        "role": args.role,
        "checkpoint": args.checkpoint,
    }))?;
    let spec = execute::Spec {
        name: args.name,
        command: args.command,
        resources,
        docker_image: args.docker_image,
        instances: args.instances,
    };
    execute::execute(&args.master.master, framework, spec, args.json).await
}
