//! Command-line flags. Names follow Mesos (reference §8), and every flag can also be set
//! in the environment as `MANTLE_<FLAG>` (for example `MANTLE_WORK_DIR`).

use anyhow::{anyhow, Context};
use clap::{Args, Parser, Subcommand};
use mantle_allocator::{AllocatorConfig, MinAllocatable};
use mantle_api::duration::parse_duration;
use mantle_api::validation::validate_role;
use mantle_master::core::{MasterConfig, RemovalRate};
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Parser, Debug)]
#[command(
    name = "mantle",
    version,
    about = "Mantle: a datacenter kernel that speaks Mesos"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run a master: it pools the agents' resources and offers them to frameworks.
    Master(MasterFlags),
    /// Run an agent: it registers with the master and runs tasks.
    Agent(AgentFlags),
    /// Run a master and N agents in one process (what mesos-local did).
    Local(LocalFlags),
    /// The built-in command executor (launched by agents, not by people).
    #[command(hide = true)]
    Executor,
    #[command(flatten)]
    Cli(crate::cli::Verb),
}

fn duration_flag(name: &str, text: &str) -> anyhow::Result<Duration> {
    parse_duration(text).map_err(|e| anyhow!("--{name}: {e}"))
}

#[derive(Args, Debug, Clone)]
pub struct MasterFlags {
    /// IP address to listen on and advertise.
    #[arg(long, env = "MANTLE_IP", default_value = "127.0.0.1")]
    pub ip: Ipv4Addr,
    /// Port to listen on.
    #[arg(long, env = "MANTLE_PORT", default_value_t = 5050)]
    pub port: u16,
    /// Hostname to advertise (default: the IP address).
    #[arg(long, env = "MANTLE_HOSTNAME")]
    pub hostname: Option<String>,
    /// Directory for the master's durable state.
    #[arg(
        long = "work_dir",
        env = "MANTLE_WORK_DIR",
        default_value = "/var/lib/mantle/master"
    )]
    pub work_dir: PathBuf,
    /// ZooKeeper URL (zk://host1:2181,host2:2181/path): masters elect a leader there and
    /// keep the registry there; without it this master is the only one.
    #[arg(long, env = "MANTLE_ZK")]
    pub zk: Option<String>,
    /// Number of masters that make a quorum of the replicated registry. With --zk the
    /// registry lives in ZooKeeper, whose own quorum keeps it; accepted for Mesos
    /// compatibility and checked to be positive.
    #[arg(long, env = "MANTLE_QUORUM", default_value_t = 1)]
    pub quorum: u32,
    /// ZooKeeper session timeout: how long a leader cut off from ZooKeeper keeps leading.
    #[arg(
        long = "zk_session_timeout",
        env = "MANTLE_ZK_SESSION_TIMEOUT",
        default_value = "10secs"
    )]
    pub zk_session_timeout: String,
    #[command(flatten)]
    pub common: MasterTuning,
    /// Log level: error, warn, info, debug or trace.
    #[arg(
        long = "logging_level",
        env = "MANTLE_LOGGING_LEVEL",
        default_value = "info"
    )]
    pub logging_level: String,
}

/// Master settings shared by `master` and `local`.
#[derive(Args, Debug, Clone)]
pub struct MasterTuning {
    /// Time between allocation runs (allocation also runs on every relevant event).
    #[arg(
        long = "allocation_interval",
        env = "MANTLE_ALLOCATION_INTERVAL",
        default_value = "1secs"
    )]
    pub allocation_interval: String,
    /// Smallest bundle worth offering: alternatives separated by '|'.
    #[arg(
        long = "min_allocatable_resources",
        env = "MANTLE_MIN_ALLOCATABLE_RESOURCES",
        default_value = "cpus:0.01|mem:32"
    )]
    pub min_allocatable_resources: String,
    /// Deprecated role whitelist: comma-separated roles frameworks may use.
    #[arg(long = "roles", env = "MANTLE_ROLES")]
    pub roles: Option<String>,
    /// Initial role weights, `role=weight` separated by commas (deprecated in Mesos in
    /// favour of UPDATE_WEIGHTS, which overrides it).
    #[arg(long = "weights", env = "MANTLE_WEIGHTS")]
    pub weights: Option<String>,
    /// Resource kinds left out of dominant-share computations, comma-separated.
    #[arg(
        long = "fair_sharing_excluded_resource_names",
        env = "MANTLE_FAIR_SHARING_EXCLUDED_RESOURCE_NAMES"
    )]
    pub fair_sharing_excluded_resource_names: Option<String>,
    /// Offer agents with GPUs only to frameworks with the GPU_RESOURCES capability.
    #[arg(
        long = "filter_gpu_resources",
        env = "MANTLE_FILTER_GPU_RESOURCES",
        default_value_t = true,
        action = clap::ArgAction::Set
    )]
    pub filter_gpu_resources: bool,
    /// How long an offer stays valid before it is rescinded (unlimited when unset).
    #[arg(long = "offer_timeout", env = "MANTLE_OFFER_TIMEOUT")]
    pub offer_timeout: Option<String>,
    /// Time between pings the master sends each agent.
    #[arg(
        long = "agent_ping_timeout",
        env = "MANTLE_AGENT_PING_TIMEOUT",
        default_value = "15secs"
    )]
    pub agent_ping_timeout: String,
    /// Pings an agent may leave unanswered before it is marked unreachable.
    #[arg(
        long = "max_agent_ping_timeouts",
        env = "MANTLE_MAX_AGENT_PING_TIMEOUTS",
        default_value_t = 5,
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    pub max_agent_ping_timeouts: u32,
    /// At most this many agents marked unreachable per period, e.g. 1/10mins
    /// (unlimited when unset).
    #[arg(
        long = "agent_removal_rate_limit",
        env = "MANTLE_AGENT_REMOVAL_RATE_LIMIT"
    )]
    pub agent_removal_rate_limit: Option<String>,
    /// How long a disconnected agent may take to come back before it is unreachable.
    #[arg(
        long = "agent_reregister_timeout",
        env = "MANTLE_AGENT_REREGISTER_TIMEOUT",
        default_value = "10mins"
    )]
    pub agent_reregister_timeout: String,
    /// Completed frameworks kept for the state endpoints.
    #[arg(
        long = "max_completed_frameworks",
        env = "MANTLE_MAX_COMPLETED_FRAMEWORKS",
        default_value_t = 50
    )]
    pub max_completed_frameworks: usize,
    /// Completed tasks kept per framework for the state endpoints.
    #[arg(
        long = "max_completed_tasks_per_framework",
        env = "MANTLE_MAX_COMPLETED_TASKS_PER_FRAMEWORK",
        default_value_t = 1000
    )]
    pub max_completed_tasks_per_framework: usize,
}

impl MasterTuning {
    fn to_config(
        &self,
        ip: Ipv4Addr,
        port: u16,
        hostname: Option<String>,
        work_dir: &std::path::Path,
        logging_level: &str,
    ) -> anyhow::Result<(MasterConfig, Duration)> {
        let interval = duration_flag("allocation_interval", &self.allocation_interval)?;
        if interval.is_zero() {
            return Err(anyhow!("--allocation_interval: must be greater than zero"));
        }
        let ping = duration_flag("agent_ping_timeout", &self.agent_ping_timeout)?;
        let reregister = duration_flag("agent_reregister_timeout", &self.agent_reregister_timeout)?;
        let removal_rate = self
            .agent_removal_rate_limit
            .as_deref()
            .map(RemovalRate::parse)
            .transpose()
            .map_err(|e| anyhow!(e))?;
        let min_allocatable =
            MinAllocatable::parse(&self.min_allocatable_resources).map_err(|e| anyhow!(e))?;
        let roles = match &self.roles {
            Some(text) => {
                let mut roles = Vec::new();
                for role in text.split(',').map(str::trim).filter(|r| !r.is_empty()) {
                    validate_role("--roles", role).map_err(|e| anyhow!(e))?;
                    roles.push(role.to_string());
                }
                Some(roles)
            }
            None => None,
        };
        let weights = parse_weights(self.weights.as_deref().unwrap_or(""))?;
        let offer_timeout = match &self.offer_timeout {
            Some(text) => Some(duration_flag("offer_timeout", text)?.as_secs_f64()),
            None => None,
        };
        let fair_sharing_excluded = self
            .fair_sharing_excluded_resource_names
            .as_deref()
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect();
        let hostname = hostname.unwrap_or_else(|| ip.to_string());
        let mut flags = BTreeMap::new();
        for (name, value) in [
            ("ip", ip.to_string()),
            ("port", port.to_string()),
            ("hostname", hostname.clone()),
            ("work_dir", work_dir.display().to_string()),
            ("allocation_interval", self.allocation_interval.clone()),
            (
                "min_allocatable_resources",
                self.min_allocatable_resources.clone(),
            ),
            ("agent_ping_timeout", self.agent_ping_timeout.clone()),
            (
                "max_agent_ping_timeouts",
                self.max_agent_ping_timeouts.to_string(),
            ),
            (
                "agent_reregister_timeout",
                self.agent_reregister_timeout.clone(),
            ),
            (
                "max_completed_frameworks",
                self.max_completed_frameworks.to_string(),
            ),
            (
                "max_completed_tasks_per_framework",
                self.max_completed_tasks_per_framework.to_string(),
            ),
            ("logging_level", logging_level.to_string()),
            (
                "filter_gpu_resources",
                self.filter_gpu_resources.to_string(),
            ),
        ] {
            flags.insert(name.to_string(), value);
        }
        for (name, value) in [
            ("roles", &self.roles),
            ("weights", &self.weights),
            (
                "fair_sharing_excluded_resource_names",
                &self.fair_sharing_excluded_resource_names,
            ),
            ("offer_timeout", &self.offer_timeout),
            ("agent_removal_rate_limit", &self.agent_removal_rate_limit),
        ] {
            if let Some(value) = value {
                flags.insert(name.to_string(), value.clone());
            }
        }
        let config = MasterConfig {
            ip,
            port,
            hostname,
            heartbeat_interval: 15.0,
            agent_ping_interval: ping.as_secs_f64().max(0.1),
            max_agent_ping_timeouts: self.max_agent_ping_timeouts,
            agent_reregister_timeout: reregister.as_secs_f64(),
            agent_removal_rate_limit: removal_rate,
            allocator: AllocatorConfig {
                min_allocatable,
                fair_sharing_excluded,
                filter_gpu_resources: self.filter_gpu_resources,
                seed: rand_seed(),
            },
            roles,
            weights,
            offer_timeout,
            work_dir: Some(work_dir.to_path_buf()),
            max_completed_frameworks: self.max_completed_frameworks,
            max_completed_tasks_per_framework: self.max_completed_tasks_per_framework,
            flags,
        };
        Ok((config, interval))
    }
}

/// `--weights`: `role=weight` pairs separated by commas.
fn parse_weights(text: &str) -> anyhow::Result<Vec<(String, f64)>> {
    let mut out = Vec::new();
    for pair in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((role, weight)) = pair.split_once('=') else {
            return Err(anyhow!(
                "--weights: '{pair}' is not of the form role=weight"
            ));
        };
        validate_role("--weights", role).map_err(|e| anyhow!(e))?;
        match weight.parse::<f64>() {
            Ok(w) if w.is_finite() && w > 0.0 => out.push((role.to_string(), w)),
            _ => {
                return Err(anyhow!(
                    "--weights: weight '{weight}' of role '{role}' must be a positive number"
                ))
            }
        }
    }
    Ok(out)
}

/// A seed for the allocator's agent shuffle; the allocator itself stays deterministic.
fn rand_seed() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64)
        | 1
}

impl MasterFlags {
    pub fn to_config(&self) -> anyhow::Result<(MasterConfig, Duration)> {
        let (mut config, interval) = self.common.to_config(
            self.ip,
            self.port,
            self.hostname.clone(),
            &self.work_dir,
            &self.logging_level,
        )?;
        if let Some(zk) = &self.zk {
            config.flags.insert("zk".into(), zk.clone());
        }
        config
            .flags
            .insert("quorum".into(), self.quorum.to_string());
        config
            .flags
            .insert("zk_session_timeout".into(), self.zk_session_timeout.clone());
        Ok((config, interval))
    }

    /// `--zk` with its session timeout, when given.
    pub fn ha_config(&self) -> anyhow::Result<Option<mantle_master::HaConfig>> {
        if self.quorum == 0 {
            anyhow::bail!("--quorum: must be positive");
        }
        let Some(zk) = &self.zk else {
            return Ok(None);
        };
        let zk = zk.parse().map_err(|e| anyhow!("--zk: {e}"))?;
        let session_timeout = duration_flag("zk_session_timeout", &self.zk_session_timeout)?;
        Ok(Some(mantle_master::HaConfig {
            zk,
            session_timeout,
        }))
    }
}

/// Agent settings shared by `agent` and `local`.
#[derive(Args, Debug, Clone)]
pub struct AgentTuning {
    /// Resources to offer, as text (cpus:4;mem:4096;ports:[31000-32000]) or a JSON array
    /// of Resource objects. Kinds not given are detected.
    #[arg(long, env = "MANTLE_RESOURCES")]
    pub resources: Option<String>,
    /// Attributes, e.g. rack:r1;zone:2.
    #[arg(long, env = "MANTLE_ATTRIBUTES")]
    pub attributes: Option<String>,
    /// Role for resources given without one.
    #[arg(
        long = "default_role",
        env = "MANTLE_DEFAULT_ROLE",
        default_value = "*"
    )]
    pub default_role: String,
    /// How long an executor may take to subscribe before it is destroyed.
    #[arg(
        long = "executor_registration_timeout",
        env = "MANTLE_EXECUTOR_REGISTRATION_TIMEOUT",
        default_value = "1mins"
    )]
    pub executor_registration_timeout: String,
    /// Time between SHUTDOWN and SIGKILL for executors.
    #[arg(
        long = "executor_shutdown_grace_period",
        env = "MANTLE_EXECUTOR_SHUTDOWN_GRACE_PERIOD",
        default_value = "5secs"
    )]
    pub executor_shutdown_grace_period: String,
    /// Isolators, comma-separated: posix/cpu, posix/mem, cgroups/cpu, cgroups/mem,
    /// cgroups/pids, cgroups/all, namespaces/pid, filesystem/linux, disk/du.
    #[arg(long, env = "MANTLE_ISOLATION", default_value = "posix/cpu,posix/mem")]
    pub isolation: String,
    /// Directory holding mantle-launcher (default: the directory of this binary).
    #[arg(long = "launcher_dir", env = "MANTLE_LAUNCHER_DIR")]
    pub launcher_dir: Option<PathBuf>,
    /// Where the cgroup hierarchies are mounted.
    #[arg(
        long = "cgroups_hierarchy",
        env = "MANTLE_CGROUPS_HIERARCHY",
        default_value = "/sys/fs/cgroup"
    )]
    pub cgroups_hierarchy: PathBuf,
    /// The cgroup under which this agent's containers live.
    #[arg(
        long = "cgroups_root",
        env = "MANTLE_CGROUPS_ROOT",
        default_value = "mantle"
    )]
    pub cgroups_root: String,
    /// Cap each container's CPU time with a CFS quota (cgroups/cpu), not only its share.
    #[arg(
        long = "cgroups_enable_cfs",
        env = "MANTLE_CGROUPS_ENABLE_CFS",
        default_value_t = false,
        action = clap::ArgAction::Set,
        num_args = 0..=1,
        default_missing_value = "true"
    )]
    pub cgroups_enable_cfs: bool,
    /// End a container whose sandbox outgrows its disk resource (with disk/du).
    #[arg(
        long = "enforce_container_disk_quota",
        env = "MANTLE_ENFORCE_CONTAINER_DISK_QUOTA",
        default_value_t = false,
        action = clap::ArgAction::Set,
        num_args = 0..=1,
        default_missing_value = "true"
    )]
    pub enforce_container_disk_quota: bool,
    /// How often disk/du measures each sandbox.
    #[arg(
        long = "container_disk_watch_interval",
        env = "MANTLE_CONTAINER_DISK_WATCH_INTERVAL",
        default_value = "15secs"
    )]
    pub container_disk_watch_interval: String,
    /// Run tasks as their command's or framework's user (false: as the agent's user).
    #[arg(
        long = "switch_user",
        env = "MANTLE_SWITCH_USER",
        default_value_t = true,
        action = clap::ArgAction::Set,
        num_args = 0..=1,
        default_missing_value = "true"
    )]
    pub switch_user: bool,
    /// Containerizers, comma-separated: mantle (mesos is its Mesos name) runs every
    /// executor; docker also runs tasks whose ContainerInfo has type DOCKER in Docker;
    /// simulated (alone) runs every task as a timer inside the agent, with no process.
    #[arg(long, env = "MANTLE_CONTAINERIZERS", default_value = "mantle")]
    pub containerizers: String,
    /// With --containerizers=simulated: how long a task runs whose command does not
    /// sleep and whose labels do not say.
    #[arg(
        long = "simulated_task_duration",
        env = "MANTLE_SIMULATED_TASK_DURATION",
        default_value = "0secs"
    )]
    pub simulated_task_duration: String,
    /// The Docker engine's unix socket (with --containerizers docker).
    #[arg(
        long = "docker_socket",
        env = "MANTLE_DOCKER_SOCKET",
        default_value = "/var/run/docker.sock"
    )]
    pub docker_socket: PathBuf,
    /// What a restarted agent does with the executors of checkpointing frameworks:
    /// reconnect (reattach to those still running) or cleanup (kill them all, forget
    /// the checkpoints and exit).
    #[arg(long, env = "MANTLE_RECOVER", default_value = "reconnect")]
    pub recover: String,
    /// How long recovered executors have to subscribe again (at most 15secs).
    #[arg(
        long = "executor_reregistration_timeout",
        env = "MANTLE_EXECUTOR_REREGISTRATION_TIMEOUT",
        default_value = "2secs"
    )]
    pub executor_reregistration_timeout: String,
    /// How long checkpointing executors keep trying to reach a restarting agent.
    #[arg(
        long = "recovery_timeout",
        env = "MANTLE_RECOVERY_TIMEOUT",
        default_value = "15mins"
    )]
    pub recovery_timeout: String,
    /// Stop when a checkpoint cannot be read (false: skip it and go on).
    #[arg(
        long,
        env = "MANTLE_STRICT",
        default_value_t = true,
        action = clap::ArgAction::Set,
        num_args = 0..=1,
        default_missing_value = "true"
    )]
    pub strict: bool,
}

impl AgentTuning {
    fn to_config(
        &self,
        master: String,
        ip: Ipv4Addr,
        port: u16,
        hostname: Option<String>,
        work_dir: PathBuf,
    ) -> anyhow::Result<mantle_agent::AgentConfig> {
        let launcher = std::env::current_exe()
            .context("cannot find the mantle binary for the command executor")?;
        Ok(mantle_agent::AgentConfig {
            master,
            ip,
            port,
            hostname,
            work_dir,
            resources: self.resources.clone(),
            attributes: self.attributes.clone(),
            default_role: self.default_role.clone(),
            executor_registration_timeout: duration_flag(
                "executor_registration_timeout",
                &self.executor_registration_timeout,
            )?,
            executor_shutdown_grace_period: duration_flag(
                "executor_shutdown_grace_period",
                &self.executor_shutdown_grace_period,
            )?,
            launcher_dir: match &self.launcher_dir {
                Some(dir) => dir.clone(),
                None => launcher.parent().map(Path::to_path_buf).unwrap_or_default(),
            },
            launcher,
            isolation: self.isolation.clone(),
            cgroups_hierarchy: self.cgroups_hierarchy.clone(),
            cgroups_root: self.cgroups_root.clone(),
            cgroups_enable_cfs: self.cgroups_enable_cfs,
            enforce_container_disk_quota: self.enforce_container_disk_quota,
            container_disk_watch_interval: duration_flag(
                "container_disk_watch_interval",
                &self.container_disk_watch_interval,
            )?,
            switch_user: self.switch_user,
            containerizers: self.containerizers.clone(),
            simulated_task_duration: duration_flag(
                "simulated_task_duration",
                &self.simulated_task_duration,
            )?,
            docker_socket: self.docker_socket.clone(),
            recover: mantle_agent::config::Recover::parse(&self.recover)?,
            executor_reregistration_timeout: duration_flag(
                "executor_reregistration_timeout",
                &self.executor_reregistration_timeout,
            )?,
            recovery_timeout: duration_flag("recovery_timeout", &self.recovery_timeout)?,
            strict: self.strict,
        })
    }
}

#[derive(Args, Debug, Clone)]
pub struct AgentFlags {
    /// The master, as host:port, or zk://host1:2181,host2:2181/path to follow the
    /// leading master through ZooKeeper.
    #[arg(long, env = "MANTLE_MASTER")]
    pub master: String,
    /// IP address to listen on and advertise.
    #[arg(long, env = "MANTLE_IP", default_value = "127.0.0.1")]
    pub ip: Ipv4Addr,
    /// Port to listen on.
    #[arg(long, env = "MANTLE_PORT", default_value_t = 5051)]
    pub port: u16,
    /// Hostname to advertise (default: the IP address).
    #[arg(long, env = "MANTLE_HOSTNAME")]
    pub hostname: Option<String>,
    /// Directory for sandboxes and checkpoints.
    #[arg(long = "work_dir", env = "MANTLE_WORK_DIR")]
    pub work_dir: PathBuf,
    #[command(flatten)]
    pub common: AgentTuning,
    /// Log level: error, warn, info, debug or trace.
    #[arg(
        long = "logging_level",
        env = "MANTLE_LOGGING_LEVEL",
        default_value = "info"
    )]
    pub logging_level: String,
}

impl AgentFlags {
    pub fn to_config(&self) -> anyhow::Result<mantle_agent::AgentConfig> {
        self.common.to_config(
            self.master.clone(),
            self.ip,
            self.port,
            self.hostname.clone(),
            self.work_dir.clone(),
        )
    }
}

#[derive(Args, Debug, Clone)]
pub struct LocalFlags {
    /// Number of agents to run next to the master.
    #[arg(long = "num_agents", env = "MANTLE_NUM_AGENTS", default_value_t = 1)]
    pub num_agents: u16,
    /// IP address for the master and the agents.
    #[arg(long, env = "MANTLE_IP", default_value = "127.0.0.1")]
    pub ip: Ipv4Addr,
    /// The master's port; agents listen on the ports after it.
    #[arg(long, env = "MANTLE_PORT", default_value_t = 5050)]
    pub port: u16,
    /// Directory for the master's state and the agents' sandboxes.
    #[arg(
        long = "work_dir",
        env = "MANTLE_WORK_DIR",
        default_value = "/tmp/mantle"
    )]
    pub work_dir: PathBuf,
    #[command(flatten)]
    pub master: MasterTuning,
    #[command(flatten)]
    pub agent: AgentTuning,
    /// Log level: error, warn, info, debug or trace.
    #[arg(
        long = "logging_level",
        env = "MANTLE_LOGGING_LEVEL",
        default_value = "info"
    )]
    pub logging_level: String,
}

impl LocalFlags {
    pub fn master_config(&self) -> anyhow::Result<(MasterConfig, Duration)> {
        let work_dir = self.work_dir.join("master");
        self.master
            .to_config(self.ip, self.port, None, &work_dir, &self.logging_level)
    }

    pub fn agent_config(
        &self,
        index: u16,
        master: &str,
    ) -> anyhow::Result<mantle_agent::AgentConfig> {
        let port = if self.port == 0 {
            0
        } else {
            self.port.checked_add(1 + index).ok_or_else(|| {
                anyhow!(
                    "--port: no room for {} agent ports after it",
                    self.num_agents
                )
            })?
        };
        let work_dir = self.work_dir.join(format!("agent-{index}"));
        self.agent
            .to_config(master.to_string(), self.ip, port, None, work_dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("mantle").chain(args.iter().copied()))
    }

    #[test]
    fn master_defaults() {
        let Command::Master(flags) = parse(&["master"]).unwrap().command else {
            panic!()
        };
        let (config, interval) = flags.to_config().unwrap();
        assert_eq!(config.port, 5050);
        assert_eq!(interval, Duration::from_secs(1));
        assert_eq!(config.agent_reregister_timeout, 600.0);
    }

    #[test]
    fn bad_values_name_the_flag() {
        let Command::Master(flags) = parse(&["master", "--allocation_interval", "soon"])
            .unwrap()
            .command
        else {
            panic!()
        };
        let err = flags.to_config().unwrap_err().to_string();
        assert!(err.contains("--allocation_interval"), "{err}");
        assert!(parse(&["master", "--port", "http"]).is_err());
    }

    #[test]
    fn local_agent_ports_follow_the_master() {
        let Command::Local(flags) = parse(&[
            "local",
            "--num_agents",
            "2",
            "--port",
            "6000",
            "--work_dir",
            "/tmp/x",
        ])
        .unwrap()
        .command
        else {
            panic!()
        };
        assert_eq!(flags.agent_config(0, "127.0.0.1:6000").unwrap().port, 6001);
        assert_eq!(flags.agent_config(1, "127.0.0.1:6000").unwrap().port, 6002);
        assert_eq!(
            flags.agent_config(1, "m").unwrap().work_dir,
            PathBuf::from("/tmp/x/agent-1")
        );
    }

    #[test]
    fn containerizer_flags_reach_every_agent() {
        let Command::Local(flags) = parse(&[
            "local",
            "--containerizers",
            "mantle,docker",
            "--docker_socket",
            "/run/docker.sock",
        ])
        .unwrap()
        .command
        else {
            panic!()
        };
        let config = flags.agent_config(0, "127.0.0.1:5050").unwrap();
        assert_eq!(config.containerizers, "mantle,docker");
        assert_eq!(config.docker_socket, PathBuf::from("/run/docker.sock"));
        let Command::Agent(flags) = parse(&["agent", "--master", "m:5050", "--work_dir", "/w"])
            .unwrap()
            .command
        else {
            panic!()
        };
        let config = flags.to_config().unwrap();
        assert_eq!(config.containerizers, "mantle");
        assert_eq!(config.docker_socket, PathBuf::from("/var/run/docker.sock"));
        assert_eq!(config.simulated_task_duration, Duration::ZERO);
        let Command::Agent(flags) = parse(&[
            "agent",
            "--master",
            "m:5050",
            "--work_dir",
            "/w",
            "--containerizers=simulated",
            "--simulated_task_duration=1.5secs",
        ])
        .unwrap()
        .command
        else {
            panic!()
        };
        let config = flags.to_config().unwrap();
        assert_eq!(config.containerizers, "simulated");
        assert_eq!(config.simulated_task_duration, Duration::from_millis(1500));
    }
}
