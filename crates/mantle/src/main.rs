//! `mantle`: the one binary. `master`, `agent` and `local` run the daemons; `executor` is
//! the built-in command executor that agents launch for command tasks; the other verbs
//! (`agents`, `tasks`, `execute`, `top`, ...) are the CLI of `cli/`.

mod cli;
mod flags;

use clap::Parser;
use flags::{Cli, Command};

// mimalloc instead of glibc's malloc: the master's work is mostly making and dropping
// small objects (decoded calls, tasks, events), where glibc's allocator took about a
// third of the time in every profile (bench/RESULTS.md, failover).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

extern "C" {
    /// mimalloc's setter of its options (`mi_option_set`).
    fn mi_option_set(option: std::ffi::c_int, value: std::ffi::c_long);
}

/// mimalloc's `mi_option_purge_delay` (the same in its versions 2 and 3).
const MI_OPTION_PURGE_DELAY: std::ffi::c_int = 15;

/// mimalloc gives memory that became free back to the system after a delay (1 s, 10 s
/// for whole arenas), and only when the thread that freed it next allocates. A daemon
/// that went quiet after a burst kept the burst's pages: a master idle after 10,000
/// agents registered held 8 to 28 MB more than after an immediate purge, so its memory
/// per agent read anywhere from 4.2 to 10 KB. Purging at once cost no measurable launch
/// throughput (bench/RESULTS.md, memory).
fn purge_freed_memory_at_once() {
    // SAFETY: mi_option_set takes no pointers and may be called at any time; the global
    // allocator is mimalloc, so the symbol is linked in.
    unsafe { mi_option_set(MI_OPTION_PURGE_DELAY, 0) };
}

/// Raises the master's soft limit of open files to its hard limit. Every real agent
/// holds one connection to the master, and a soft limit of 1,024 (a common default)
/// would refuse the agents past it; the hard limit is what the operator allows. Only
/// the master does this: an agent's tasks would inherit a raised limit.
fn raise_open_files_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct they are given.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 || limit.rlim_cur >= limit.rlim_max
        {
            return;
        }
        let from = limit.rlim_cur;
        limit.rlim_cur = limit.rlim_max;
        if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) == 0 {
            tracing::info!(from, to = limit.rlim_max, "raised the limit of open files");
        }
    }
}

fn main() -> std::process::ExitCode {
    purge_freed_memory_at_once();
    // The built-in executor starts once per task: skip building the whole command line
    // parser (every verb and flag) for the one argument it takes.
    let mut args = std::env::args_os().skip(1);
    if let (Some(verb), None) = (args.next(), args.next()) {
        if verb == "executor" {
            let code = mantle_executor::main();
            return std::process::ExitCode::from(u8::try_from(code).unwrap_or(1));
        }
    }
    let cli = Cli::parse();
    let level = match &cli.command {
        Command::Master(f) => f.logging_level.clone(),
        Command::Agent(f) => f.logging_level.clone(),
        Command::Local(f) => f.logging_level.clone(),
        Command::Executor => {
            std::env::var("MANTLE_LOGGING_LEVEL").unwrap_or_else(|_| "info".into())
        }
        // The CLI reports its own errors; library logs would only clutter its output.
        Command::Cli(_) => std::env::var("MANTLE_LOGGING_LEVEL").unwrap_or_else(|_| "off".into()),
    };
    init_logging(&level);
    // The command executor runs as one small process per task, and a CLI verb is one
    // short conversation with the master: a single-threaded runtime starts faster and
    // costs less than a pool of workers.
    let mut builder = match cli.command {
        Command::Executor | Command::Cli(_) => tokio::runtime::Builder::new_current_thread(),
        _ => tokio::runtime::Builder::new_multi_thread(),
    };
    let runtime = match builder.enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("mantle: cannot start the async runtime: {err}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        let daemon = match cli.command {
            Command::Master(flags) => {
                raise_open_files_limit();
                run_master(flags).await
            }
            Command::Agent(flags) => run_agent(flags).await,
            Command::Local(flags) => run_local(flags).await,
            Command::Executor => mantle_executor::run().await,
            Command::Cli(verb) => return cli::run(verb).await,
        };
        daemon.map(|()| std::process::ExitCode::SUCCESS)
    });
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("mantle: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn init_logging(level: &str) {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let base = level.to_ascii_lowercase();
    let filter = |directive: &str| {
        tracing_subscriber::EnvFilter::try_new(directive)
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"))
    };
    let (layer, reload) = tracing_subscriber::reload::Layer::new(filter(&base));
    tracing_subscriber::registry()
        .with(layer)
        .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
        .init();
    // SET_LOGGING_LEVEL's glog verbosity: 0 is the level given at start, 1 debug, 2+ trace.
    mantle_api::logging::install(move |verbosity| {
        let directive = match verbosity {
            0 => base.as_str(),
            1 => "debug",
            _ => "trace",
        };
        let _ = reload.reload(filter(directive));
    });
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
    }
}

async fn run_master(flags: flags::MasterFlags) -> anyhow::Result<()> {
    let (config, interval) = flags.to_config()?;
    let ha = flags.ha_config()?;
    let master = mantle_master::start_ha(config, interval, ha).await?;
    eprintln!("mantle master listening on http://{}", master.address());
    shutdown_signal().await;
    master.shutdown().await;
    Ok(())
}

async fn run_agent(flags: flags::AgentFlags) -> anyhow::Result<()> {
    let config = flags.to_config()?;
    if config.recover == mantle_agent::config::Recover::Cleanup {
        let killed = mantle_agent::cleanup(&config)?;
        eprintln!("mantle agent: --recover=cleanup killed {killed} recorded container(s) and removed the checkpoints");
        return Ok(());
    }
    let agent = mantle_agent::start(config).await?;
    eprintln!("mantle agent listening on http://{}", agent.address());
    shutdown_signal().await;
    agent.shutdown().await;
    Ok(())
}

async fn run_local(flags: flags::LocalFlags) -> anyhow::Result<()> {
    let (master_config, interval) = flags.master_config()?;
    std::fs::create_dir_all(&flags.work_dir).map_err(|e| {
        anyhow::anyhow!(
            "--work_dir: cannot create {}: {e}",
            flags.work_dir.display()
        )
    })?;
    let master = mantle_master::start(master_config, interval).await?;
    let master_address = master.address();
    let mut agents = Vec::new();
    for index in 0..flags.num_agents {
        let config = flags.agent_config(index, &master_address.to_string())?;
        let agent = mantle_agent::start(config).await?;
        agents.push(agent);
    }
    eprintln!(
        "mantle local: master on http://{master_address} with {} agent(s) on {}",
        agents.len(),
        agents
            .iter()
            .map(|a| a.address().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    shutdown_signal().await;
    // One command started the whole cluster; stopping it leaves nothing running, even
    // the containers of checkpointing frameworks.
    for agent in agents {
        agent.shutdown_all().await;
    }
    master.shutdown().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    extern "C" {
        fn mi_option_get(option: std::ffi::c_int) -> std::ffi::c_long;
    }

    /// Option 15 of the linked mimalloc still holds its purge delay's default (1000 ms in
    /// version 3, 10 in version 2; this test process has not run `main`), so a new
    /// mimalloc that numbered its options anew would fail here rather than have `main`
    /// set some other option.
    #[test]
    fn option_15_is_mimallocs_purge_delay() {
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
            return;
        }
        // SAFETY: mi_option_get takes no pointers and may be called at any time.
        let value = unsafe { mi_option_get(MI_OPTION_PURGE_DELAY) };
        assert!(value == 1000 || value == 10, "option 15 is {value}");
    }
}
