//! The agent's configuration (its flags, reference §8) and its validation into the
//! settings the agent runs with; errors name the flag.

use crate::containers::{ContainerConfig, Isolation};
use crate::detect::{explicit_names, fill_missing, Probe};
use crate::error::AgentError;
use crate::sandbox::format_duration;
use mantle_api::validation::validate_role;
use mantle_api::{Attribute, Resources};
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The agent's flags.
#[derive(Clone, Debug)]
pub struct AgentConfig {
    /// `host:port` of the master.
    pub master: String,
    /// The address to bind and advertise.
    pub ip: Ipv4Addr,
    /// 5051 by default; 0 picks a free port.
    pub port: u16,
    /// The advertised hostname; the ip as text by default.
    pub hostname: Option<String>,
    pub work_dir: PathBuf,
    /// `--resources`: text form or a JSON array, or `file:///path` holding either.
    pub resources: Option<String>,
    /// `--attributes`: `name:value;...`, or `file:///path`.
    pub attributes: Option<String>,
    pub default_role: String,
    pub executor_registration_timeout: Duration,
    pub executor_shutdown_grace_period: Duration,
    /// The `mantle` binary; command tasks run `<launcher> executor`.
    pub launcher: PathBuf,
    /// `--isolation`: isolators by their Mesos names, comma-separated.
    pub isolation: String,
    /// The directory holding `mantle-launcher` (Mesos's `--launcher_dir`).
    pub launcher_dir: PathBuf,
    /// Where the cgroup hierarchies are mounted.
    pub cgroups_hierarchy: PathBuf,
    /// The cgroup that holds every container of this agent.
    pub cgroups_root: String,
    /// Cap each container's CPU time with a CFS quota, not only its share.
    pub cgroups_enable_cfs: bool,
    /// End containers that write more than their `disk` (with `disk/du`).
    pub enforce_container_disk_quota: bool,
    pub container_disk_watch_interval: Duration,
    /// Run tasks as their command's or framework's user.
    pub switch_user: bool,
    /// `--containerizers`: comma-separated, of `mantle` (`mesos` is its Mesos name) and
    /// `docker`. With `docker`, tasks whose ContainerInfo has type DOCKER run in Docker.
    /// `simulated`, alone, runs every task as a timer inside the agent (`simulated/`).
    pub containerizers: String,
    /// `--simulated_task_duration`: how long a simulated task that does not say runs.
    pub simulated_task_duration: Duration,
    /// `--docker_socket`: the Docker engine's unix socket.
    pub docker_socket: PathBuf,
    /// `--recover`: what a restarted agent does with the executors it checkpointed.
    pub recover: Recover,
    /// How long recovered executors have to subscribe again (at most 15 s).
    pub executor_reregistration_timeout: Duration,
    /// How long checkpointing executors keep trying to reach a restarting agent.
    pub recovery_timeout: Duration,
    /// `--strict`: a checkpoint that cannot be read stops the agent (else it is skipped).
    pub strict: bool,
}

/// `--recover`, as in Mesos.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Recover {
    /// Reattach to the executors that still run and report the others.
    Reconnect,
    /// Kill every checkpointed executor, forget the agent's checkpoints and exit.
    Cleanup,
}

impl Recover {
    pub fn parse(text: &str) -> Result<Recover, AgentError> {
        match text {
            "reconnect" => Ok(Recover::Reconnect),
            "cleanup" => Ok(Recover::Cleanup),
            other => Err(AgentError::flag(
                "recover",
                format!("'{other}' is neither 'reconnect' nor 'cleanup'"),
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Recover::Reconnect => "reconnect",
            Recover::Cleanup => "cleanup",
        }
    }
}

/// Mesos's upper bound for `--executor_reregistration_timeout`.
pub const MAX_EXECUTOR_REREGISTRATION_TIMEOUT: Duration = Duration::from_secs(15);

impl AgentConfig {
    /// The Mesos defaults for everything but the two required flags.
    pub fn new(master: impl Into<String>, work_dir: impl Into<PathBuf>) -> AgentConfig {
        AgentConfig {
            master: master.into(),
            ip: Ipv4Addr::LOCALHOST,
            port: 5051,
            hostname: None,
            work_dir: work_dir.into(),
            resources: None,
            attributes: None,
            default_role: "*".to_string(),
            executor_registration_timeout: Duration::from_secs(60),
            executor_shutdown_grace_period: Duration::from_secs(5),
            launcher: std::env::current_exe().unwrap_or_else(|_| PathBuf::from("mantle")),
            isolation: "posix/cpu,posix/mem".to_string(),
            launcher_dir: std::env::current_exe()
                .ok()
                .and_then(|p| p.parent().map(Path::to_path_buf))
                .unwrap_or_default(),
            cgroups_hierarchy: PathBuf::from("/sys/fs/cgroup"),
            cgroups_root: "mantle".to_string(),
            cgroups_enable_cfs: false,
            enforce_container_disk_quota: false,
            container_disk_watch_interval: Duration::from_secs(15),
            switch_user: true,
            containerizers: "mantle".to_string(),
            simulated_task_duration: Duration::ZERO,
            docker_socket: PathBuf::from(mantle_containerizer::docker::DEFAULT_SOCKET),
            recover: Recover::Reconnect,
            executor_reregistration_timeout: Duration::from_secs(2),
            recovery_timeout: Duration::from_secs(15 * 60),
            strict: true,
        }
    }
}

/// A validated configuration.
#[derive(Clone, Debug)]
pub(crate) struct Settings {
    /// `host:port`.
    pub master: String,
    pub ip: Ipv4Addr,
    pub port: u16,
    pub hostname: String,
    /// Absolute, and created.
    pub work_dir: PathBuf,
    pub resources: Resources,
    pub attributes: Vec<Attribute>,
    pub executor_registration_timeout: Duration,
    pub executor_shutdown_grace_period: Duration,
    pub executor_reregistration_timeout: Duration,
    pub recovery_timeout: Duration,
    pub strict: bool,
    pub launcher: PathBuf,
    pub containers: ContainerConfig,
    /// `--containerizers` holds `docker`.
    pub docker_enabled: bool,
    /// `--containerizers=simulated`, with the default run time of simulated tasks.
    pub simulated: Option<Duration>,
    pub docker_socket: PathBuf,
    /// Flag values for `/state`.
    pub flags: BTreeMap<String, String>,
}

/// Reads `file:///path` values; other values are returned as they are.
fn flag_value(flag: &'static str, value: &str) -> Result<String, AgentError> {
    match value.strip_prefix("file://") {
        Some(path) => std::fs::read_to_string(path)
            .map(|text| text.trim().to_string())
            .map_err(|e| AgentError::flag(flag, format!("cannot read {path}: {e}"))),
        None => Ok(value.to_string()),
    }
}

/// `host:port` of the master, from `host:port` or `http://host:port`, or a `zk://` URL.
fn master_address(master: &str) -> Result<String, AgentError> {
    let trimmed = master.trim();
    if trimmed.starts_with("zk://") {
        // The leader is followed through ZooKeeper (`master_link`); checked here.
        trimmed
            .parse::<mantle_zk::ZkUrl>()
            .map_err(|err| AgentError::flag("master", err.to_string()))?;
        return Ok(trimmed.to_string());
    }
    let address = trimmed
        .strip_prefix("http://")
        .unwrap_or(trimmed)
        .trim_end_matches('/');
    let Some((host, port)) = address.rsplit_once(':') else {
        return Err(AgentError::flag(
            "master",
            format!("'{master}' is not of the form host:port"),
        ));
    };
    if host.is_empty() || host.contains('/') {
        return Err(AgentError::flag(
            "master",
            format!("'{master}' has no valid host"),
        ));
    }
    if port.parse::<u16>().is_err() {
        return Err(AgentError::flag(
            "master",
            format!("'{master}' has no valid port"),
        ));
    }
    Ok(address.to_string())
}

/// What `--containerizers` turns on.
#[derive(Debug, PartialEq)]
struct Containerizers {
    docker: bool,
    simulated: bool,
}

/// Reads `--containerizers`. Every executor runs through the mantle containerizer (the
/// launcher) unless it is `simulated`, which stands alone; so `mantle` (or `mesos`)
/// only needs to be known, not obeyed.
fn containerizers(containerizers: &str) -> Result<Containerizers, AgentError> {
    let mut docker = false;
    let mut simulated = false;
    let mut any = false;
    for name in containerizers
        .split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
    {
        match name {
            "mantle" | "mesos" => {}
            "docker" => docker = true,
            "simulated" => simulated = true,
            other => {
                return Err(AgentError::flag(
                    "containerizers",
                    format!(
                    "unknown containerizer '{other}' (expected mantle, mesos, docker or simulated)"
                ),
                ))
            }
        }
        if simulated && any {
            return Err(AgentError::flag(
                "containerizers",
                "'simulated' cannot be combined with other containerizers",
            ));
        }
        any = true;
    }
    if !any {
        return Err(AgentError::flag(
            "containerizers",
            "must name at least one containerizer",
        ));
    }
    Ok(Containerizers { docker, simulated })
}

pub(crate) fn validate(config: &AgentConfig) -> Result<Settings, AgentError> {
    let master = master_address(&config.master)?;
    validate_role("default_role", &config.default_role)
        .map_err(|e| AgentError::flag("default_role", e))?;
    if config.work_dir.as_os_str().is_empty() {
        return Err(AgentError::flag("work_dir", "is required"));
    }
    std::fs::create_dir_all(&config.work_dir).map_err(|e| {
        AgentError::flag(
            "work_dir",
            format!("cannot create {}: {e}", config.work_dir.display()),
        )
    })?;
    let work_dir = std::fs::canonicalize(&config.work_dir).map_err(|e| {
        AgentError::flag(
            "work_dir",
            format!("cannot resolve {}: {e}", config.work_dir.display()),
        )
    })?;
    if config.executor_registration_timeout.is_zero() {
        return Err(AgentError::flag(
            "executor_registration_timeout",
            "must be positive",
        ));
    }
    let reregistration = config.executor_reregistration_timeout;
    if reregistration.is_zero() || reregistration > MAX_EXECUTOR_REREGISTRATION_TIMEOUT {
        return Err(AgentError::flag(
            "executor_reregistration_timeout",
            format!(
                "must be positive and at most {}",
                format_duration(MAX_EXECUTOR_REREGISTRATION_TIMEOUT)
            ),
        ));
    }
    if config.recovery_timeout.is_zero() {
        return Err(AgentError::flag("recovery_timeout", "must be positive"));
    }
    let hostname = config
        .hostname
        .clone()
        .unwrap_or_else(|| config.ip.to_string());
    if hostname.trim().is_empty() {
        return Err(AgentError::flag("hostname", "must not be empty"));
    }

    let resources_text = match &config.resources {
        Some(value) => flag_value("resources", value)?,
        None => String::new(),
    };
    let given = Resources::parse_flag(&resources_text, &config.default_role).map_err(|e| {
        AgentError::flag("resources", e.trim_start_matches("resources: ").to_string())
    })?;
    let resources = fill_missing(
        &given,
        &explicit_names(&resources_text),
        &Probe::read(&work_dir),
        &config.default_role,
    )
    .map_err(|e| AgentError::flag("resources", e))?;

    let attributes = match &config.attributes {
        Some(value) => Attribute::parse_list(&flag_value("attributes", value)?).map_err(|e| {
            AgentError::flag(
                "attributes",
                e.trim_start_matches("attributes: ").to_string(),
            )
        })?,
        None => Vec::new(),
    };

    let isolation = Isolation::parse(&config.isolation)?;
    let Containerizers {
        docker: docker_enabled,
        simulated,
    } = containerizers(&config.containerizers)?;
    if docker_enabled && !config.docker_socket.is_absolute() {
        return Err(AgentError::flag(
            "docker_socket",
            format!(
                "'{}' is not an absolute path",
                config.docker_socket.display()
            ),
        ));
    }
    if config.container_disk_watch_interval.is_zero() {
        return Err(AgentError::flag(
            "container_disk_watch_interval",
            "must be positive",
        ));
    }
    if !simulated && !config.launcher.exists() {
        tracing::warn!(launcher = %config.launcher.display(), "the launcher does not exist; command tasks will fail");
    }

    let mut flags = BTreeMap::new();
    let mut flag = |name: &str, value: String| {
        flags.insert(name.to_string(), value);
    };
    flag("master", config.master.clone());
    flag("ip", config.ip.to_string());
    flag("port", config.port.to_string());
    flag("hostname", hostname.clone());
    flag("work_dir", path_text(&work_dir));
    if let Some(r) = &config.resources {
        flag("resources", r.clone());
    }
    if let Some(a) = &config.attributes {
        flag("attributes", a.clone());
    }
    flag("default_role", config.default_role.clone());
    flag(
        "executor_registration_timeout",
        format_duration(config.executor_registration_timeout),
    );
    flag(
        "executor_shutdown_grace_period",
        format_duration(config.executor_shutdown_grace_period),
    );
    flag("launcher", path_text(&config.launcher));
    flag("isolation", config.isolation.clone());
    flag("launcher_dir", path_text(&config.launcher_dir));
    flag("cgroups_hierarchy", path_text(&config.cgroups_hierarchy));
    flag("cgroups_root", config.cgroups_root.clone());
    flag("cgroups_enable_cfs", config.cgroups_enable_cfs.to_string());
    flag(
        "enforce_container_disk_quota",
        config.enforce_container_disk_quota.to_string(),
    );
    flag(
        "container_disk_watch_interval",
        format_duration(config.container_disk_watch_interval),
    );
    flag("switch_user", config.switch_user.to_string());
    flag("containerizers", config.containerizers.clone());
    if simulated {
        flag(
            "simulated_task_duration",
            format_duration(config.simulated_task_duration),
        );
    }
    flag("docker_socket", path_text(&config.docker_socket));
    flag("recover", config.recover.as_str().to_string());
    flag(
        "executor_reregistration_timeout",
        format_duration(config.executor_reregistration_timeout),
    );
    flag("recovery_timeout", format_duration(config.recovery_timeout));
    flag("strict", config.strict.to_string());

    Ok(Settings {
        master,
        ip: config.ip,
        port: config.port,
        hostname,
        work_dir,
        resources,
        attributes,
        executor_registration_timeout: config.executor_registration_timeout,
        executor_shutdown_grace_period: config.executor_shutdown_grace_period,
        executor_reregistration_timeout: config.executor_reregistration_timeout,
        recovery_timeout: config.recovery_timeout,
        strict: config.strict,
        launcher: config.launcher.clone(),
        containers: ContainerConfig {
            isolation,
            launcher: config.launcher_dir.join("mantle-launcher"),
            builtin_executor: config.launcher.clone(),
            cgroups_hierarchy: config.cgroups_hierarchy.clone(),
            cgroups_root: config.cgroups_root.clone(),
            cgroups_enable_cfs: config.cgroups_enable_cfs,
            enforce_container_disk_quota: config.enforce_container_disk_quota,
            disk_watch_interval: config.container_disk_watch_interval,
            switch_user: config.switch_user,
        },
        docker_enabled,
        simulated: simulated.then_some(config.simulated_task_duration),
        docker_socket: config.docker_socket.clone(),
        flags,
    })
}

fn path_text(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(edit: impl FnOnce(&mut AgentConfig), expected: Result<(), &str>) {
        let dir = tempfile::tempdir().unwrap();
        let mut config = AgentConfig::new("127.0.0.1:5050", dir.path().join("work"));
        edit(&mut config);
        match (validate(&config), expected) {
            (Ok(_), Ok(())) => {}
            (Err(err), Err(want)) => assert!(
                err.to_string().starts_with(want),
                "{err} does not start with {want}"
            ),
            (got, want) => panic!("got {:?}, want {want:?}", got.map(|s| s.master)),
        }
    }

    #[test]
    fn flags_are_checked() {
        check(|_| {}, Ok(()));
        check(|c| c.master = "http://m:5050/".into(), Ok(()));
        check(
            |c| c.master = "m".into(),
            Err("--master: 'm' is not of the form host:port"),
        );
        check(
            |c| c.master = "m:x".into(),
            Err("--master: 'm:x' has no valid port"),
        );
        check(|c| c.master = "zk://z:2181/mesos".into(), Ok(()));
        check(|c| c.master = "zk://z:x/mesos".into(), Err("--master: "));
        check(
            |c| c.resources = Some("cpus:x".into()),
            Err("--resources: 'x' of 'cpus' is not a number"),
        );
        check(|c| c.resources = Some("cpus:2;mem:100".into()), Ok(()));
        check(
            |c| c.attributes = Some("rack".into()),
            Err("--attributes: 'rack' is not of the form name:value"),
        );
        check(|c| c.default_role = "-x".into(), Err("--default_role:"));
        check(
            |c| c.work_dir = PathBuf::new(),
            Err("--work_dir: is required"),
        );
        check(
            |c| c.work_dir = "/proc/nope/x".into(),
            Err("--work_dir: cannot create"),
        );
        check(
            |c| c.resources = Some("file:///nonexistent/r".into()),
            Err("--resources: cannot read"),
        );
        check(
            |c| c.executor_registration_timeout = Duration::ZERO,
            Err("--executor_registration_timeout"),
        );
        check(
            |c| c.isolation = "cgroups/cpu,gpu/nvidia".into(),
            Err("--isolation: unknown isolator 'gpu/nvidia'"),
        );
        check(
            |c| c.container_disk_watch_interval = Duration::ZERO,
            Err("--container_disk_watch_interval: must be positive"),
        );
        for ok in [
            "mantle",
            "mesos",
            "docker",
            "mantle,docker",
            " docker , mesos ",
            "simulated",
        ] {
            check(|c| c.containerizers = ok.into(), Ok(()));
        }
        check(
            |c| c.containerizers = "mesos,rkt".into(),
            Err("--containerizers: unknown containerizer 'rkt' (expected mantle, mesos, docker or simulated)"),
        );
        for mixed in ["mantle,simulated", "simulated,docker"] {
            check(
                |c| c.containerizers = mixed.into(),
                Err("--containerizers: 'simulated' cannot be combined with other containerizers"),
            );
        }
        check(
            |c| c.containerizers = " , ".into(),
            Err("--containerizers: must name at least one containerizer"),
        );
        check(
            |c| {
                c.containerizers = "docker".into();
                c.docker_socket = "docker.sock".into();
            },
            Err("--docker_socket: 'docker.sock' is not an absolute path"),
        );
    }

    #[test]
    fn docker_is_turned_on_by_containerizers() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = AgentConfig::new("m:5050", dir.path());
        let settings = validate(&config).unwrap();
        assert!(!settings.docker_enabled);
        assert_eq!(settings.flags["containerizers"], "mantle");
        assert_eq!(settings.flags["docker_socket"], "/var/run/docker.sock");
        config.containerizers = "mesos,docker".into();
        config.docker_socket = "/run/d.sock".into();
        let settings = validate(&config).unwrap();
        assert!(settings.docker_enabled);
        assert_eq!(settings.docker_socket, PathBuf::from("/run/d.sock"));
        assert_eq!(settings.flags["containerizers"], "mesos,docker");
        assert_eq!(settings.simulated, None);
    }

    #[test]
    fn simulated_containerizer_carries_its_task_duration() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = AgentConfig::new("m:5050", dir.path());
        config.containerizers = "simulated".into();
        config.simulated_task_duration = Duration::from_secs(3);
        let settings = validate(&config).unwrap();
        assert_eq!(settings.simulated, Some(Duration::from_secs(3)));
        assert!(!settings.docker_enabled);
        assert_eq!(settings.flags["simulated_task_duration"], "3secs");
    }

    #[test]
    fn resources_are_completed() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = AgentConfig::new("m:5050", dir.path());
        config.resources = Some("cpus:2;mem:100".into());
        config.attributes = Some("rack:r1".into());
        let settings = validate(&config).unwrap();
        assert_eq!(settings.resources.scalar("cpus"), 2.0);
        assert_eq!(settings.resources.scalar("mem"), 100.0);
        assert!(settings.resources.scalar("disk") > 0.0);
        assert_eq!(settings.resources.legacy_json()["ports"], "[31000-32000]");
        assert_eq!(settings.attributes.len(), 1);
        assert_eq!(settings.hostname, "127.0.0.1");
        assert!(settings.work_dir.is_absolute());
        assert_eq!(settings.flags["executor_registration_timeout"], "1mins");
    }
}
