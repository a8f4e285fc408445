//! A task's `ContainerInfo` of type DOCKER turned into the container to run, the way
//! Mesos's Docker containerizer builds its `docker run` (reference §1.5 ContainerInfo,
//! §7 "Docker containerizer"): the image, network, port mappings, privileged mode and
//! parameters of `container.docker`, the host volumes of `container.volumes`, the
//! sandbox mounted at `/mnt/mesos/sandbox` as the working directory, the task's command
//! and environment, and CPU shares and a memory limit from its resources.
//!
//! Pure: it reads the task and what the agent told the executor, and says which field
//! is wrong when the task cannot run, so that the framework learns why from the
//! TASK_FAILED message.

use crate::command::task_environment;
use mantle_api::{CommandInfo, TaskId, TaskInfo};
use mantle_containerizer::docker::{create_body, ContainerSpec, Network, PortMapping, Volume};
use mantle_containerizer::ContainerError;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

pub use mantle_containerizer::docker::{AGENT_LABEL, TASK_LABEL};
pub use mantle_containerizer::SANDBOX_MOUNT;
use mantle_containerizer::{cpu_shares, memory_limit_bytes};

/// What the agent told the executor about the Docker containerizer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DockerContext {
    /// The container's name, `mesos-<container_id>`: the agent removes it by that name
    /// once the executor is gone.
    pub container_name: String,
    /// The value of the [`AGENT_LABEL`] label, when the agent gave one.
    pub agent_label: Option<String>,
    /// The sandbox as the host, and so the engine, sees it (`MESOS_DIRECTORY`).
    pub sandbox: PathBuf,
}

/// A task to run in a Docker container.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DockerTask {
    pub task_id: TaskId,
    /// The container's name.
    pub name: String,
    pub spec: ContainerSpec,
    /// Pull the image even when the engine has it (`force_pull_image`).
    pub force_pull: bool,
}

/// Whether the task asks for a Docker container: its `container.type` is DOCKER (1).
/// Other container types run as plain processes, as before.
pub fn wants_docker(info: &TaskInfo) -> bool {
    let Some(container) = &info.container else {
        return false;
    };
    match &container["type"] {
        Value::String(kind) => kind == "DOCKER",
        Value::Number(kind) => kind.as_u64() == Some(1),
        _ => false,
    }
}

/// The Docker container for a task that [`wants_docker`], or what is wrong with it,
/// starting with the name of the field (`container.docker.network: ...`).
pub fn docker_task(info: &TaskInfo, context: &DockerContext) -> Result<DockerTask, String> {
    let Some(container) = &info.container else {
        return Err("container: missing".to_string());
    };
    let docker = match &container["docker"] {
        Value::Object(_) => &container["docker"],
        Value::Null => return Err("container.docker: required when the type is DOCKER".into()),
        other => return Err(format!("container.docker: {other} is not an object")),
    };
    let image = string(&docker["image"], "container.docker.image")?
        .filter(|image| !image.is_empty())
        .ok_or("container.docker.image: required")?;
    let network = network(&docker["network"], container)?;
    let hostname = string(&container["hostname"], "container.hostname")?;
    if hostname.is_some() && network == Network::Host {
        // The engine refuses it too; Mesos says so before trying.
        return Err("container.hostname: cannot be set with network HOST".into());
    }
    let Some(command) = &info.command else {
        return Err("command: required".into());
    };
    let command_line = command_line(command)?;
    let labels = [(TASK_LABEL.to_string(), info.task_id.to_string())]
        .into_iter()
        .chain(
            context
                .agent_label
                .clone()
                .map(|label| (AGENT_LABEL.to_string(), label)),
        )
        .collect::<BTreeMap<_, _>>();
    let (cpus, mem_mb) = scalars(info);
    let spec = ContainerSpec {
        image,
        command: command_line.cmd,
        entrypoint: command_line.entrypoint,
        env: environment(command, &context.container_name),
        working_dir: Some(SANDBOX_MOUNT.to_string()),
        network,
        port_mappings: port_mappings(&docker["port_mappings"])?,
        volumes: volumes(&container["volumes"], &context.sandbox)?,
        memory_bytes: mem_mb.map(memory_limit_bytes),
        cpu_shares: cpus.map(cpu_shares),
        labels,
        parameters: parameters(&docker["parameters"])?,
        privileged: boolean(&docker["privileged"], "container.docker.privileged")?.unwrap_or(false),
        user: None,
        hostname,
    };
    // The engine's create body is built here once, so that everything it would refuse
    // is refused now, before TASK_STARTING, with the task's field named.
    create_body(&spec).map_err(task_field)?;
    Ok(DockerTask {
        task_id: info.task_id.clone(),
        name: context.container_name.clone(),
        spec,
        force_pull: boolean(
            &docker["force_pull_image"],
            "container.docker.force_pull_image",
        )?
        .unwrap_or(false),
    })
}

/// A container's `Entrypoint` and `Cmd`; `None` keeps the image's.
struct CommandLine {
    entrypoint: Option<Vec<String>>,
    cmd: Option<Vec<String>>,
}

/// Mesos's command line for a Docker task: with `shell` (the default) the entrypoint
/// becomes `/bin/sh` with `-c <value>` as its arguments, whatever the image's entrypoint
/// is; without, the image's entrypoint stays and `value` (if any) and `arguments` are
/// its arguments.
fn command_line(command: &CommandInfo) -> Result<CommandLine, String> {
    let value = command.value.clone().filter(|v| !v.is_empty());
    if command.shell {
        let value = value.ok_or("command.value: required when shell is true")?;
        return Ok(CommandLine {
            entrypoint: Some(vec!["/bin/sh".to_string()]),
            cmd: Some(vec!["-c".to_string(), value]),
        });
    }
    let arguments: Vec<String> = value
        .into_iter()
        .chain(command.arguments.iter().cloned())
        .collect();
    Ok(CommandLine {
        entrypoint: None,
        cmd: (!arguments.is_empty()).then_some(arguments),
    })
}

/// The command's variables, then `MESOS_SANDBOX` and `MESOS_CONTAINER_NAME`, which win
/// as they do in Mesos.
fn environment(command: &CommandInfo, container_name: &str) -> Vec<(String, String)> {
    let ours = [
        ("MESOS_SANDBOX", SANDBOX_MOUNT.to_string()),
        ("MESOS_CONTAINER_NAME", container_name.to_string()),
    ];
    let mut env: Vec<(String, String)> = task_environment(command)
        .into_iter()
        .filter(|(name, _)| !ours.iter().any(|(own, _)| own == name))
        .collect();
    env.extend(ours.map(|(name, value)| (name.to_string(), value)));
    env
}

/// `DockerInfo.network`: a name or its enum number; HOST when unset. USER takes the
/// network's name from the one `container.network_infos` entry.
fn network(value: &Value, container: &Value) -> Result<Network, String> {
    let field = "container.docker.network";
    let name = match value {
        Value::Null => return Ok(Network::Host),
        Value::String(name) => name.as_str(),
        Value::Number(number) => match number.as_u64() {
            Some(1) => "HOST",
            Some(2) => "BRIDGE",
            Some(3) => "NONE",
            Some(4) => "USER",
            _ => return Err(format!("{field}: unknown network {number}")),
        },
        other => return Err(format!("{field}: {other} is not a network name")),
    };
    match name {
        "HOST" => Ok(Network::Host),
        "BRIDGE" => Ok(Network::Bridge),
        "NONE" => Ok(Network::None),
        "USER" => {
            let infos = match &container["network_infos"] {
                Value::Array(infos) => infos.as_slice(),
                Value::Null => &[],
                _ => return Err("container.network_infos: not an array".into()),
            };
            let [info] = infos else {
                return Err(format!(
                    "container.network_infos: network USER needs exactly one entry, found {}",
                    infos.len()
                ));
            };
            string(&info["name"], "container.network_infos[0].name")?
                .filter(|name| !name.is_empty())
                .map(Network::User)
                .ok_or_else(|| "container.network_infos[0].name: required".to_string())
        }
        other => Err(format!(
            "{field}: unknown network {other:?} (expected HOST, BRIDGE, NONE or USER)"
        )),
    }
}

fn port_mappings(value: &Value) -> Result<Vec<PortMapping>, String> {
    let mut mappings = Vec::new();
    for (index, mapping) in array(value, "container.docker.port_mappings")?
        .iter()
        .enumerate()
    {
        let field = format!("container.docker.port_mappings[{index}]");
        let port = |name: &str| -> Result<u16, String> {
            let value = &mapping[name];
            value
                .as_u64()
                .and_then(|port| u16::try_from(port).ok())
                .ok_or_else(|| format!("{field}.{name}: {value} is not a port number"))
        };
        mappings.push(PortMapping {
            host_port: port("host_port")?,
            container_port: port("container_port")?,
            protocol: string(&mapping["protocol"], &format!("{field}.protocol"))?
                .unwrap_or_default(),
        });
    }
    Ok(mappings)
}

fn parameters(value: &Value) -> Result<Vec<(String, String)>, String> {
    let mut parameters = Vec::new();
    for (index, parameter) in array(value, "container.docker.parameters")?
        .iter()
        .enumerate()
    {
        let field = format!("container.docker.parameters[{index}]");
        let key = string(&parameter["key"], &format!("{field}.key"))?
            .filter(|key| !key.is_empty())
            .ok_or_else(|| format!("{field}.key: required"))?;
        let value = string(&parameter["value"], &format!("{field}.value"))?.unwrap_or_default();
        parameters.push((key, value));
    }
    Ok(parameters)
}

/// The sandbox, then `container.volumes`: a relative `container_path` is inside the
/// mounted sandbox and a relative `host_path` inside the sandbox on the host, as in
/// Mesos. Volumes from a source (a volume driver, an image, a secret) are not supported.
fn volumes(value: &Value, sandbox: &Path) -> Result<Vec<Volume>, String> {
    let mut volumes = vec![Volume {
        host_path: sandbox.to_string_lossy().into_owned(),
        container_path: SANDBOX_MOUNT.to_string(),
        read_only: false,
    }];
    for (index, volume) in array(value, "container.volumes")?.iter().enumerate() {
        let field = format!("container.volumes[{index}]");
        let container_path = string(
            &volume["container_path"],
            &format!("{field}.container_path"),
        )?
        .filter(|path| !path.is_empty())
        .ok_or_else(|| format!("{field}.container_path: required"))?;
        let container_path = match container_path.starts_with('/') {
            true => container_path,
            false => format!("{SANDBOX_MOUNT}/{container_path}"),
        };
        for unsupported in ["source", "image"] {
            if !volume[unsupported].is_null() {
                return Err(format!(
                    "{field}.{unsupported}: not supported by the docker containerizer (give a host_path)"
                ));
            }
        }
        let host_path = string(&volume["host_path"], &format!("{field}.host_path"))?
            .filter(|path| !path.is_empty())
            .ok_or_else(|| format!("{field}.host_path: required"))?;
        let host_path = if host_path.starts_with('/') {
            host_path
        } else {
            let relative = Path::new(&host_path);
            if relative
                .components()
                .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
            {
                return Err(format!(
                    "{field}.host_path: {host_path:?} must stay inside the sandbox"
                ));
            }
            sandbox.join(relative).to_string_lossy().into_owned()
        };
        let read_only = match &volume["mode"] {
            Value::Null => false,
            Value::String(mode) if mode == "RW" => false,
            Value::String(mode) if mode == "RO" => true,
            Value::Number(mode) if mode.as_u64() == Some(1) => false,
            Value::Number(mode) if mode.as_u64() == Some(2) => true,
            other => return Err(format!("{field}.mode: {other} is neither RW nor RO")),
        };
        volumes.push(Volume {
            host_path,
            container_path,
            read_only,
        });
    }
    Ok(volumes)
}

/// The task's `cpus` and `mem`, each `None` when the task has none.
fn scalars(info: &TaskInfo) -> (Option<f64>, Option<f64>) {
    let sum = |name: &str| {
        info.resources
            .iter()
            .filter(|r| r.name == name)
            .filter_map(|r| r.scalar.as_ref().map(|s| s.value))
            .fold(None, |total: Option<f64>, value| {
                Some(total.unwrap_or(0.0) + value)
            })
    };
    (sum("cpus"), sum("mem"))
}

/// A [`create_body`] error in terms of the task's fields rather than the spec's.
fn task_field(error: ContainerError) -> String {
    let ContainerError::Invalid { field, message } = error else {
        return error.to_string();
    };
    let field = match field.as_str() {
        "image" | "port_mappings" | "network" | "privileged" => {
            format!("container.docker.{field}")
        }
        "volumes" => "container.volumes".to_string(),
        "hostname" => "container.hostname".to_string(),
        "env" => "command.environment".to_string(),
        "command" | "entrypoint" => "command".to_string(),
        "cpu_shares" => "resources.cpus".to_string(),
        "memory_bytes" => "resources.mem".to_string(),
        parameter if parameter.starts_with("parameters.") => {
            format!("container.docker.{parameter}")
        }
        other => other.to_string(),
    };
    format!("{field}: {message}")
}

fn string(value: &Value, field: &str) -> Result<Option<String>, String> {
    match value {
        Value::Null => Ok(None),
        Value::String(text) => Ok(Some(text.clone())),
        other => Err(format!("{field}: {other} is not a string")),
    }
}

fn boolean(value: &Value, field: &str) -> Result<Option<bool>, String> {
    match value {
        Value::Null => Ok(None),
        Value::Bool(flag) => Ok(Some(*flag)),
        other => Err(format!("{field}: {other} is not true or false")),
    }
}

fn array<'a>(value: &'a Value, field: &str) -> Result<&'a [Value], String> {
    match value {
        Value::Null => Ok(&[]),
        Value::Array(items) => Ok(items),
        other => Err(format!("{field}: {other} is not an array")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn context() -> DockerContext {
        DockerContext {
            container_name: "mesos-c1".into(),
            agent_label: Some("/var/lib/mantle".into()),
            sandbox: PathBuf::from("/w/sandbox"),
        }
    }

    /// A task `t1` with `sleep 1` and `cpus:0.5;mem:64`, with the fields of `extra` on
    /// top (a null removes a field).
    fn task(extra: Value) -> TaskInfo {
        let mut value = json!({
            "name": "t1", "task_id": {"value": "t1"}, "agent_id": {"value": "a1"},
            "command": {"value": "sleep 1"},
            "resources": [
                {"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.5}},
                {"name": "mem", "type": "SCALAR", "scalar": {"value": 64}}
            ],
            "container": {"type": "DOCKER", "docker": {"image": "busybox"}}
        });
        if let (Some(base), Some(extra)) = (value.as_object_mut(), extra.as_object()) {
            for (key, field) in extra {
                match field {
                    Value::Null => base.remove(key),
                    field => base.insert(key.clone(), field.clone()),
                };
            }
        }
        serde_json::from_value(value).expect("a valid task")
    }

    /// A task whose `container.docker` has the fields of `docker` on top of the image.
    fn with_docker(docker: Value) -> TaskInfo {
        let mut fields = json!({"image": "busybox"});
        if let (Some(base), Some(extra)) = (fields.as_object_mut(), docker.as_object()) {
            base.extend(extra.clone());
        }
        task(json!({"container": {"type": "DOCKER", "docker": fields}}))
    }

    /// The spec for `sleep 1` in busybox with the defaults, changed by `edit`.
    fn spec(edit: impl FnOnce(&mut ContainerSpec)) -> ContainerSpec {
        let mut spec = ContainerSpec {
            image: "busybox".into(),
            command: Some(vec!["-c".into(), "sleep 1".into()]),
            entrypoint: Some(vec!["/bin/sh".into()]),
            env: vec![
                ("MESOS_SANDBOX".into(), SANDBOX_MOUNT.into()),
                ("MESOS_CONTAINER_NAME".into(), "mesos-c1".into()),
            ],
            working_dir: Some(SANDBOX_MOUNT.into()),
            network: Network::Host,
            volumes: vec![Volume {
                host_path: "/w/sandbox".into(),
                container_path: SANDBOX_MOUNT.into(),
                read_only: false,
            }],
            memory_bytes: Some(64 << 20),
            cpu_shares: Some(512),
            labels: [
                ("mantle.agent".to_string(), "/var/lib/mantle".to_string()),
                ("mantle.task".to_string(), "t1".to_string()),
            ]
            .into(),
            ..ContainerSpec::default()
        };
        edit(&mut spec);
        spec
    }

    fn check(info: TaskInfo, expected: Result<ContainerSpec, &str>) {
        let actual = docker_task(&info, &context());
        match (actual, expected) {
            (Ok(actual), Ok(expected)) => {
                assert_eq!(actual.spec, expected, "{:?}", info.container);
                assert_eq!(actual.name, "mesos-c1");
                assert_eq!(actual.task_id, info.task_id);
            }
            (Err(actual), Err(expected)) => assert!(
                actual.starts_with(expected),
                "{actual:?} does not start with {expected:?}"
            ),
            (actual, expected) => panic!(
                "for {:?}\n got {actual:?}\nwant {expected:?}",
                info.container
            ),
        }
    }

    #[test]
    fn docker_is_asked_for_by_the_type() {
        let kinds = [
            (json!({"type": "DOCKER", "docker": {"image": "x"}}), true),
            (json!({"type": 1}), true),
            (json!({"type": "MESOS"}), false),
            (json!({"type": 2}), false),
            (json!({"docker": {"image": "x"}}), false),
            (json!("DOCKER"), false),
        ];
        for (container, expected) in kinds {
            let info = task(json!({"container": container}));
            assert_eq!(wants_docker(&info), expected, "{container}");
        }
        assert!(!wants_docker(&task(json!({"container": null}))));
    }

    #[test]
    fn container_info_to_spec() {
        check(task(json!({})), Ok(spec(|_| {})));
        check(
            with_docker(json!({"network": "BRIDGE", "privileged": true,
                "port_mappings": [{"host_port": 31000, "container_port": 80},
                                  {"host_port": 31001, "container_port": 53, "protocol": "udp"}]})),
            Ok(spec(|s| {
                s.network = Network::Bridge;
                s.privileged = true;
                s.port_mappings = vec![
                    PortMapping {
                        host_port: 31000,
                        container_port: 80,
                        protocol: String::new(),
                    },
                    PortMapping {
                        host_port: 31001,
                        container_port: 53,
                        protocol: "udp".into(),
                    },
                ];
            })),
        );
        check(
            with_docker(json!({"network": 3})),
            Ok(spec(|s| s.network = Network::None)),
        );
        check(
            with_docker(json!({"network": "NONE"})),
            Ok(spec(|s| s.network = Network::None)),
        );
        check(
            task(json!({"container": {"type": "DOCKER",
                "docker": {"image": "busybox", "network": "USER"},
                "network_infos": [{"name": "overlay1"}], "hostname": "web"}})),
            Ok(spec(|s| {
                s.network = Network::User("overlay1".into());
                s.hostname = Some("web".into());
            })),
        );
        check(
            with_docker(json!({"parameters": [{"key": "env", "value": "A=1"},
                                              {"key": "init", "value": "true"}],
                               "force_pull_image": true})),
            Ok(spec(|s| {
                s.parameters = vec![("env".into(), "A=1".into()), ("init".into(), "true".into())]
            })),
        );
        check(
            task(
                json!({"container": {"type": "DOCKER", "docker": {"image": "busybox"},
                "volumes": [
                    {"container_path": "/data", "host_path": "/srv/data", "mode": "RO"},
                    {"container_path": "cache", "host_path": "cache", "mode": "RW"},
                    {"container_path": "/etc/x", "host_path": "/etc/x"}]}}),
            ),
            Ok(spec(|s| {
                s.volumes.extend([
                    Volume {
                        host_path: "/srv/data".into(),
                        container_path: "/data".into(),
                        read_only: true,
                    },
                    Volume {
                        host_path: "/w/sandbox/cache".into(),
                        container_path: "/mnt/mesos/sandbox/cache".into(),
                        read_only: false,
                    },
                    Volume {
                        host_path: "/etc/x".into(),
                        container_path: "/etc/x".into(),
                        read_only: false,
                    },
                ])
            })),
        );
    }

    #[test]
    fn commands_environment_and_resources() {
        // shell=false keeps the image's entrypoint; value and arguments are its Cmd.
        check(
            task(
                json!({"command": {"shell": false, "value": "/bin/echo", "arguments": ["a", "b"]}}),
            ),
            Ok(spec(|s| {
                s.entrypoint = None;
                s.command = Some(vec!["/bin/echo".into(), "a".into(), "b".into()]);
            })),
        );
        check(
            task(json!({"command": {"shell": false, "arguments": ["--port", "80"]}})),
            Ok(spec(|s| {
                s.entrypoint = None;
                s.command = Some(vec!["--port".into(), "80".into()]);
            })),
        );
        check(
            task(json!({"command": {"shell": false}})),
            Ok(spec(|s| {
                s.entrypoint = None;
                s.command = None;
            })),
        );
        // The command's variables come first; the sandbox variables win over them.
        check(
            task(
                json!({"command": {"value": "env", "environment": {"variables": [
                {"name": "A", "value": "1"},
                {"name": "MESOS_SANDBOX", "value": "/elsewhere"},
                {"name": "S", "type": "SECRET", "secret": {}}]}}}),
            ),
            Ok(spec(|s| {
                s.command = Some(vec!["-c".into(), "env".into()]);
                s.env.insert(0, ("A".into(), "1".into()));
            })),
        );
        // Without resources there are no limits; tiny ones get the minimums.
        check(
            task(json!({"resources": null})),
            Ok(spec(|s| {
                s.cpu_shares = None;
                s.memory_bytes = None;
            })),
        );
        check(
            task(json!({"resources": [
                {"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.001}},
                {"name": "mem", "type": "SCALAR", "scalar": {"value": 1}},
                {"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.0}}]})),
            Ok(spec(|s| {
                s.cpu_shares = Some(2);
                s.memory_bytes = Some(32 << 20);
            })),
        );
        check(
            task(json!({"resources": [
                {"name": "cpus", "type": "SCALAR", "scalar": {"value": 1.5}},
                {"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.5}},
                {"name": "ports", "type": "RANGES", "ranges": {"range": [{"begin": 1, "end": 2}]}}]})),
            Ok(spec(|s| {
                s.cpu_shares = Some(2048);
                s.memory_bytes = None;
            })),
        );
    }

    #[test]
    fn bad_container_infos_name_the_field() {
        let rows: Vec<(TaskInfo, &str)> = vec![
            (
                with_docker(json!({"network": "OVERLAY"})),
                "container.docker.network: unknown network \"OVERLAY\"",
            ),
            (
                with_docker(json!({"network": 9})),
                "container.docker.network: unknown network 9",
            ),
            (
                with_docker(json!({"port_mappings": [{"host_port": 31000, "container_port": 80}]})),
                "container.docker.port_mappings: not allowed with network host",
            ),
            (
                with_docker(json!({"network": "BRIDGE",
                    "port_mappings": [{"host_port": 70000, "container_port": 80}]})),
                "container.docker.port_mappings[0].host_port: 70000 is not a port number",
            ),
            (
                with_docker(json!({"network": "BRIDGE",
                    "port_mappings": [{"host_port": 1, "container_port": 80, "protocol": "sctp"}]})),
                "container.docker.port_mappings: protocol \"sctp\"",
            ),
            (
                with_docker(json!({"port_mappings": {}})),
                "container.docker.port_mappings: {} is not an array",
            ),
            (
                with_docker(json!({"network": "USER"})),
                "container.network_infos: network USER needs exactly one entry, found 0",
            ),
            (
                task(
                    json!({"container": {"type": "DOCKER", "docker": {"image": "busybox"},
                    "hostname": "h"}}),
                ),
                "container.hostname: cannot be set with network HOST",
            ),
            (
                task(json!({"container": {"type": "DOCKER"}})),
                "container.docker: required",
            ),
            (
                task(json!({"container": {"type": "DOCKER", "docker": "busybox"}})),
                "container.docker: \"busybox\" is not an object",
            ),
            (
                with_docker(json!({"image": ""})),
                "container.docker.image: required",
            ),
            (
                with_docker(json!({"image": "bad image"})),
                "container.docker.image: bad image reference",
            ),
            (
                with_docker(json!({"privileged": "yes"})),
                "container.docker.privileged: \"yes\" is not true or false",
            ),
            (
                with_docker(json!({"force_pull_image": 1})),
                "container.docker.force_pull_image: 1 is not true or false",
            ),
            (
                with_docker(json!({"parameters": [{"key": "mount", "value": "x"}]})),
                "container.docker.parameters.mount: unsupported docker parameter",
            ),
            (
                with_docker(json!({"parameters": [{"value": "x"}]})),
                "container.docker.parameters[0].key: required",
            ),
            (
                task(
                    json!({"container": {"type": "DOCKER", "docker": {"image": "busybox"},
                    "volumes": [{"container_path": "/x", "mode": "RO"}]}}),
                ),
                "container.volumes[0].host_path: required",
            ),
            (
                task(
                    json!({"container": {"type": "DOCKER", "docker": {"image": "busybox"},
                    "volumes": [{"container_path": "/x", "host_path": "../../etc"}]}}),
                ),
                "container.volumes[0].host_path: \"../../etc\" must stay inside the sandbox",
            ),
            (
                task(
                    json!({"container": {"type": "DOCKER", "docker": {"image": "busybox"},
                    "volumes": [{"container_path": "/x", "host_path": "/y", "mode": "RX"}]}}),
                ),
                "container.volumes[0].mode: \"RX\" is neither RW nor RO",
            ),
            (
                task(
                    json!({"container": {"type": "DOCKER", "docker": {"image": "busybox"},
                    "volumes": [{"container_path": "/x", "source": {"type": "SECRET"}}]}}),
                ),
                "container.volumes[0].source: not supported",
            ),
            (
                task(
                    json!({"container": {"type": "DOCKER", "docker": {"image": "busybox"},
                    "volumes": [{"container_path": "/x", "host_path": "/a:b"}]}}),
                ),
                "container.volumes: \"/a:b\" must be an absolute path without ':' or ','",
            ),
            (
                task(json!({"command": {"shell": true}})),
                "command.value: required when shell is true",
            ),
            (task(json!({"command": null})), "command: required"),
        ];
        for (info, expected) in rows {
            check(info, Err(expected));
        }
    }

    #[test]
    fn no_agent_label_means_no_label() {
        let context = DockerContext {
            agent_label: None,
            ..context()
        };
        let docker = docker_task(&task(json!({})), &context).expect("a valid task");
        assert_eq!(
            docker.spec.labels,
            [("mantle.task".to_string(), "t1".to_string())].into()
        );
        assert!(!docker.force_pull);
        let forced = docker_task(&with_docker(json!({"force_pull_image": true})), &context)
            .expect("a valid task");
        assert!(forced.force_pull);
    }
}
