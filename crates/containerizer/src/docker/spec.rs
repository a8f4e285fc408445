//! What a Docker container should look like, and the pure translation of it into the body
//! of `POST /containers/create`: Mesos's `ContainerInfo.docker` (image, network, port
//! mappings, privileged, parameters) plus the task's command, environment, volumes and
//! resource limits, which Mesos's Docker containerizer passes as `docker run` flags.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use crate::ContainerError;

/// The network a container joins (Mesos `DockerInfo.Network`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Network {
    /// The host's network stack; Mesos's default for Docker containers.
    #[default]
    Host,
    /// Docker's default bridge; the only built-in mode where port mappings make sense.
    Bridge,
    /// A loopback interface only.
    None,
    /// A user-defined Docker network, by name.
    User(String),
}

/// One published port (Mesos `DockerInfo.PortMapping`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortMapping {
    pub host_port: u16,
    pub container_port: u16,
    /// `tcp` or `udp`; empty means `tcp`, as it does for Mesos.
    pub protocol: String,
}

/// A bind mount from the host into the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Volume {
    /// An absolute path on the host; the agent resolves sandbox-relative paths before
    /// they get here, because the engine would read a relative one as a named volume.
    pub host_path: String,
    pub container_path: String,
    pub read_only: bool,
}

/// Everything the agent decides about a Docker container before creating it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerSpec {
    pub image: String,
    /// The container's `Cmd`; `None` keeps the image's.
    pub command: Option<Vec<String>>,
    /// The container's `Entrypoint`; `None` keeps the image's.
    pub entrypoint: Option<Vec<String>>,
    pub env: Vec<(String, String)>,
    pub working_dir: Option<String>,
    pub network: Network,
    pub port_mappings: Vec<PortMapping>,
    pub volumes: Vec<Volume>,
    pub memory_bytes: Option<u64>,
    pub cpu_shares: Option<u64>,
    pub labels: BTreeMap<String, String>,
    /// Mesos `DockerInfo.parameters`: `docker run` flag names without the dashes and their
    /// values, applied after the fields above so that they win, as they do on the command
    /// line Mesos builds. [`SUPPORTED_PARAMETERS`] lists the keys that are understood.
    pub parameters: Vec<(String, String)>,
    pub privileged: bool,
    pub user: Option<String>,
    pub hostname: Option<String>,
}

impl ContainerSpec {
    /// A spec that runs `image` with its own command on the host network.
    pub fn new(image: impl Into<String>) -> ContainerSpec {
        ContainerSpec {
            image: image.into(),
            ..ContainerSpec::default()
        }
    }
}

/// The `DockerInfo.parameters` keys [`create_body`] maps into the create body. Anything
/// else is refused rather than dropped, so that a task never runs without a flag its
/// framework asked for.
pub const SUPPORTED_PARAMETERS: &[&str] = &[
    "add-host",
    "cap-add",
    "cap-drop",
    "cpu-period",
    "cpu-quota",
    "cpus",
    "device",
    "dns",
    "dns-option",
    "dns-search",
    "e",
    "env",
    "group-add",
    "h",
    "hostname",
    "init",
    "ipc",
    "l",
    "label",
    "log-driver",
    "log-opt",
    "memory-reservation",
    "memory-swap",
    "oom-kill-disable",
    "pid",
    "pids-limit",
    "privileged",
    "read-only",
    "security-opt",
    "shm-size",
    "stop-signal",
    "stop-timeout",
    "sysctl",
    "t",
    "tmpfs",
    "tty",
    "u",
    "ulimit",
    "user",
    "uts",
    "v",
    "volume",
    "w",
    "workdir",
];

/// Builds the JSON body of `POST /containers/create` for `spec`, or says which field of it
/// the engine could not use. Empty fields are left out so the engine applies its defaults.
pub fn create_body(spec: &ContainerSpec) -> Result<Value, ContainerError> {
    let mut body = Body::default();
    check_image(&spec.image)?;
    body.config.insert("Image".into(), json!(spec.image));
    if let Some(command) = &spec.command {
        check_strings("command", command)?;
        body.config.insert("Cmd".into(), json!(command));
    }
    if let Some(entrypoint) = &spec.entrypoint {
        check_strings("entrypoint", entrypoint)?;
        body.config.insert("Entrypoint".into(), json!(entrypoint));
    }
    for (key, value) in &spec.env {
        body.push_env("env", key, value)?;
    }
    if let Some(dir) = &spec.working_dir {
        body.set_working_dir("working_dir", dir)?;
    }
    for (key, value) in &spec.labels {
        body.insert_label("labels", key, value)?;
    }
    if let Some(user) = &spec.user {
        body.set_string("user", "User", user)?;
    }
    if let Some(hostname) = &spec.hostname {
        body.set_string("hostname", "Hostname", hostname)?;
    }
    body.network(&spec.network, &spec.port_mappings)?;
    for volume in &spec.volumes {
        body.push_bind(
            "volumes",
            &volume.host_path,
            &volume.container_path,
            volume.read_only,
        )?;
    }
    if let Some(memory) = spec.memory_bytes {
        if memory == 0 {
            return Err(ContainerError::invalid(
                "memory_bytes",
                "must be positive (leave it unset for no limit)",
            ));
        }
        body.host.insert("Memory".into(), json!(memory));
    }
    if let Some(shares) = spec.cpu_shares {
        // The kernel's minimum is 2; Docker reads 0 as "the default of 1024".
        if shares < 2 {
            return Err(ContainerError::invalid("cpu_shares", "must be at least 2"));
        }
        body.host.insert("CpuShares".into(), json!(shares));
    }
    if spec.privileged {
        body.host.insert("Privileged".into(), json!(true));
    }
    for (key, value) in &spec.parameters {
        body.parameter(key, value)?;
    }
    Ok(body.finish())
}

/// The create body under construction: the top-level container config and its HostConfig.
#[derive(Default)]
struct Body {
    config: Map<String, Value>,
    host: Map<String, Value>,
}

impl Body {
    fn finish(mut self) -> Value {
        self.config
            .insert("HostConfig".into(), Value::Object(self.host));
        Value::Object(self.config)
    }

    fn network(
        &mut self,
        network: &Network,
        mappings: &[PortMapping],
    ) -> Result<(), ContainerError> {
        let mode = match network {
            Network::Host => "host",
            Network::Bridge => "bridge",
            Network::None => "none",
            Network::User(name) => {
                if name.is_empty() || name.chars().any(|c| c.is_whitespace() || c.is_control()) {
                    return Err(ContainerError::invalid(
                        "network",
                        format!("bad user network name {name:?}"),
                    ));
                }
                name.as_str()
            }
        };
        self.host.insert("NetworkMode".into(), json!(mode));
        if mappings.is_empty() {
            return Ok(());
        }
        // Mesos refuses these too: a container on the host's stack or on no network has
        // no ports of its own to publish.
        if matches!(network, Network::Host | Network::None) {
            return Err(ContainerError::invalid(
                "port_mappings",
                format!("not allowed with network {mode}, only with bridge or a user network"),
            ));
        }
        let mut exposed = Map::new();
        let mut bindings = Map::new();
        let mut host_ports = Vec::new();
        for mapping in mappings {
            let protocol = match mapping.protocol.to_ascii_lowercase().as_str() {
                "" | "tcp" => "tcp",
                "udp" => "udp",
                other => {
                    return Err(ContainerError::invalid(
                        "port_mappings",
                        format!("protocol {other:?} is neither tcp nor udp"),
                    ))
                }
            };
            if mapping.host_port == 0 || mapping.container_port == 0 {
                return Err(ContainerError::invalid(
                    "port_mappings",
                    format!("port 0 in {}:{}", mapping.host_port, mapping.container_port),
                ));
            }
            if host_ports.contains(&(mapping.host_port, protocol)) {
                return Err(ContainerError::invalid(
                    "port_mappings",
                    format!("host port {}/{protocol} mapped twice", mapping.host_port),
                ));
            }
            host_ports.push((mapping.host_port, protocol));
            let key = format!("{}/{protocol}", mapping.container_port);
            exposed.insert(key.clone(), json!({}));
            let binding = json!({"HostIp": "", "HostPort": mapping.host_port.to_string()});
            match bindings.get_mut(&key) {
                Some(Value::Array(list)) => list.push(binding),
                _ => {
                    bindings.insert(key, json!([binding]));
                }
            }
        }
        self.config
            .insert("ExposedPorts".into(), Value::Object(exposed));
        self.host
            .insert("PortBindings".into(), Value::Object(bindings));
        Ok(())
    }

    fn push_env(&mut self, field: &str, key: &str, value: &str) -> Result<(), ContainerError> {
        if key.is_empty() || key.contains('=') || key.contains('\0') || value.contains('\0') {
            return Err(ContainerError::invalid(
                field,
                format!("bad environment variable {key:?}"),
            ));
        }
        push(&mut self.config, "Env", json!(format!("{key}={value}")));
        Ok(())
    }

    fn insert_label(&mut self, field: &str, key: &str, value: &str) -> Result<(), ContainerError> {
        if key.is_empty() || key.contains('\0') || value.contains('\0') {
            return Err(ContainerError::invalid(field, format!("bad label {key:?}")));
        }
        let labels = self
            .config
            .entry("Labels")
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(labels) = labels {
            labels.insert(key.to_string(), json!(value));
        }
        Ok(())
    }

    fn set_working_dir(&mut self, field: &str, dir: &str) -> Result<(), ContainerError> {
        // The engine refuses relative working directories only when the container starts;
        // saying so at create time names the field instead.
        if !dir.starts_with('/') || dir.contains('\0') {
            return Err(ContainerError::invalid(
                field,
                format!("{dir:?} is not an absolute path"),
            ));
        }
        self.config.insert("WorkingDir".into(), json!(dir));
        Ok(())
    }

    fn set_string(&mut self, field: &str, key: &str, value: &str) -> Result<(), ContainerError> {
        if value.is_empty() || value.contains('\0') {
            return Err(ContainerError::invalid(
                field,
                format!("bad value {value:?}"),
            ));
        }
        self.config.insert(key.into(), json!(value));
        Ok(())
    }

    fn push_bind(
        &mut self,
        field: &str,
        host: &str,
        container: &str,
        read_only: bool,
    ) -> Result<(), ContainerError> {
        // Binds are "host:container[:ro]" strings, so a path with a colon or a comma would
        // be read as options; refusing it is safer than guessing.
        for path in [host, container] {
            if !path.starts_with('/') || path.contains([':', ',', '\0']) {
                return Err(ContainerError::invalid(
                    field,
                    format!("{path:?} must be an absolute path without ':' or ','"),
                ));
            }
        }
        let bind = if read_only {
            format!("{host}:{container}:ro")
        } else {
            format!("{host}:{container}")
        };
        push(&mut self.host, "Binds", json!(bind));
        Ok(())
    }

    /// Maps one `docker run` flag onto the body, the way the docker CLI would.
    fn parameter(&mut self, key: &str, value: &str) -> Result<(), ContainerError> {
        let field = format!("parameters.{key}");
        let bad = |message: String| ContainerError::invalid(&field, message);
        if value.contains('\0') {
            return Err(bad("value holds a NUL byte".into()));
        }
        match key {
            "env" | "e" => {
                let (name, val) = value
                    .split_once('=')
                    .ok_or_else(|| bad(format!("{value:?} is not NAME=VALUE")))?;
                self.push_env(&field, name, val)?;
            }
            "label" | "l" => {
                let (name, val) = value.split_once('=').unwrap_or((value, ""));
                self.insert_label(&field, name, val)?;
            }
            "hostname" | "h" => self.set_string(&field, "Hostname", value)?,
            "user" | "u" => self.set_string(&field, "User", value)?,
            "workdir" | "w" => self.set_working_dir(&field, value)?,
            "stop-signal" => self.set_string(&field, "StopSignal", value)?,
            "stop-timeout" => {
                self.config
                    .insert("StopTimeout".into(), json!(int(value, &field)?));
            }
            "tty" | "t" => {
                self.config
                    .insert("Tty".into(), json!(boolean(value, &field)?));
            }
            "volume" | "v" => {
                let mut parts = value.split(':');
                let (host, container, mode) = (parts.next(), parts.next(), parts.next());
                let (Some(host), Some(container), None) = (host, container, parts.next()) else {
                    return Err(bad(format!("{value:?} is not HOST:CONTAINER[:ro|rw]")));
                };
                let read_only = match mode {
                    None | Some("rw") => false,
                    Some("ro") => true,
                    Some(other) => return Err(bad(format!("unknown volume mode {other:?}"))),
                };
                self.push_bind(&field, host, container, read_only)?;
            }
            "memory-swap" => {
                self.host
                    .insert("MemorySwap".into(), json!(bytes(value, &field, true)?));
            }
            "memory-reservation" => {
                self.host.insert(
                    "MemoryReservation".into(),
                    json!(bytes(value, &field, false)?),
                );
            }
            "shm-size" => {
                self.host
                    .insert("ShmSize".into(), json!(bytes(value, &field, false)?));
            }
            "cpu-period" | "cpu-quota" | "pids-limit" => {
                let name = match key {
                    "cpu-period" => "CpuPeriod",
                    "cpu-quota" => "CpuQuota",
                    _ => "PidsLimit",
                };
                self.host.insert(name.into(), json!(int(value, &field)?));
            }
            "cpus" => {
                let cpus: f64 = value
                    .parse()
                    .ok()
                    .filter(|c: &f64| c.is_finite() && *c > 0.0 && *c < 1e9)
                    .ok_or_else(|| bad(format!("{value:?} is not a positive number")))?;
                let nano = (cpus * 1e9).round() as i64;
                self.host.insert("NanoCpus".into(), json!(nano));
            }
            "privileged" | "init" | "read-only" | "oom-kill-disable" => {
                let name = match key {
                    "privileged" => "Privileged",
                    "init" => "Init",
                    "read-only" => "ReadonlyRootfs",
                    _ => "OomKillDisable",
                };
                self.host
                    .insert(name.into(), json!(boolean(value, &field)?));
            }
            "cap-add" | "cap-drop" | "dns" | "dns-search" | "dns-option" | "add-host"
            | "security-opt" | "group-add" => {
                let name = match key {
                    "cap-add" => "CapAdd",
                    "cap-drop" => "CapDrop",
                    "dns" => "Dns",
                    "dns-search" => "DnsSearch",
                    "dns-option" => "DnsOptions",
                    "add-host" => "ExtraHosts",
                    "security-opt" => "SecurityOpt",
                    _ => "GroupAdd",
                };
                if value.is_empty() {
                    return Err(bad("empty value".into()));
                }
                if key == "add-host" && !value.contains(':') {
                    return Err(bad(format!("{value:?} is not HOST:IP")));
                }
                push(&mut self.host, name, json!(value));
            }
            "ipc" | "pid" | "uts" => {
                let name = match key {
                    "ipc" => "IpcMode",
                    "pid" => "PidMode",
                    _ => "UTSMode",
                };
                if value.is_empty() {
                    return Err(bad("empty value".into()));
                }
                self.host.insert(name.into(), json!(value));
            }
            "ulimit" => {
                let ulimit = ulimit(value)
                    .ok_or_else(|| bad(format!("{value:?} is not NAME=SOFT[:HARD]")))?;
                push(&mut self.host, "Ulimits", ulimit);
            }
            "device" => {
                let device = device(value)
                    .ok_or_else(|| bad(format!("{value:?} is not HOST[:CONTAINER[:rwm]]")))?;
                push(&mut self.host, "Devices", device);
            }
            "sysctl" => {
                let (name, val) = value
                    .split_once('=')
                    .filter(|(name, _)| !name.is_empty())
                    .ok_or_else(|| bad(format!("{value:?} is not NAME=VALUE")))?;
                insert_into(&mut self.host, "Sysctls", name, json!(val));
            }
            "tmpfs" => {
                let (path, options) = value.split_once(':').unwrap_or((value, ""));
                if !path.starts_with('/') {
                    return Err(bad(format!("{path:?} is not an absolute path")));
                }
                insert_into(&mut self.host, "Tmpfs", path, json!(options));
            }
            "log-driver" => {
                if value.is_empty() {
                    return Err(bad("empty value".into()));
                }
                let log = self
                    .host
                    .entry("LogConfig")
                    .or_insert_with(|| json!({"Type": "", "Config": {}}));
                log["Type"] = json!(value);
            }
            "log-opt" => {
                let (name, val) = value
                    .split_once('=')
                    .filter(|(name, _)| !name.is_empty())
                    .ok_or_else(|| bad(format!("{value:?} is not NAME=VALUE")))?;
                let log = self
                    .host
                    .entry("LogConfig")
                    .or_insert_with(|| json!({"Type": "", "Config": {}}));
                log["Config"][name] = json!(val);
            }
            _ => {
                return Err(bad(format!(
                    "unsupported docker parameter (supported: {})",
                    SUPPORTED_PARAMETERS.join(", ")
                )))
            }
        }
        Ok(())
    }
}

fn push(map: &mut Map<String, Value>, key: &str, value: Value) {
    match map.get_mut(key) {
        Some(Value::Array(list)) => list.push(value),
        _ => {
            map.insert(key.into(), Value::Array(vec![value]));
        }
    }
}

fn insert_into(map: &mut Map<String, Value>, key: &str, name: &str, value: Value) {
    let inner = map.entry(key).or_insert_with(|| Value::Object(Map::new()));
    if let Value::Object(inner) = inner {
        inner.insert(name.into(), value);
    }
}

fn check_image(image: &str) -> Result<(), ContainerError> {
    if image.is_empty() || image.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(ContainerError::invalid(
            "image",
            format!("bad image reference {image:?}"),
        ));
    }
    Ok(())
}

fn check_strings(field: &str, list: &[String]) -> Result<(), ContainerError> {
    if list.iter().any(|s| s.contains('\0')) {
        return Err(ContainerError::invalid(
            field,
            "an argument holds a NUL byte",
        ));
    }
    Ok(())
}

fn int(value: &str, field: &str) -> Result<i64, ContainerError> {
    value
        .trim()
        .parse()
        .map_err(|_| ContainerError::invalid(field, format!("{value:?} is not an integer")))
}

fn boolean(value: &str, field: &str) -> Result<bool, ContainerError> {
    match value.to_ascii_lowercase().as_str() {
        "" | "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(ContainerError::invalid(
            field,
            format!("{value:?} is not true or false"),
        )),
    }
}

/// A size the way the docker CLI reads one (`512m`, `1g`, `1024`): binary units, an
/// optional `b` after the unit; `-1` (unlimited) only where the flag allows it.
fn bytes(value: &str, field: &str, allow_unlimited: bool) -> Result<i64, ContainerError> {
    let bad = || ContainerError::invalid(field, format!("{value:?} is not a size like 512m"));
    let text = value.trim().to_ascii_lowercase();
    if text == "-1" {
        return if allow_unlimited { Ok(-1) } else { Err(bad()) };
    }
    let text = text.strip_suffix('b').unwrap_or(&text);
    let (digits, shift) = match text.as_bytes().last() {
        Some(b'k') => (&text[..text.len() - 1], 10),
        Some(b'm') => (&text[..text.len() - 1], 20),
        Some(b'g') => (&text[..text.len() - 1], 30),
        Some(b't') => (&text[..text.len() - 1], 40),
        _ => (text, 0),
    };
    let number: f64 = digits.parse().map_err(|_| bad())?;
    let size = number * (1u64 << shift) as f64;
    if !size.is_finite() || size <= 0.0 || size > i64::MAX as f64 {
        return Err(bad());
    }
    Ok(size as i64)
}

/// `nofile=1024:2048` (or `nofile=1024`, hard equal to soft) into the engine's shape.
fn ulimit(value: &str) -> Option<Value> {
    let (name, limits) = value.split_once('=')?;
    let (soft, hard) = limits.split_once(':').unwrap_or((limits, limits));
    let soft: i64 = soft.parse().ok()?;
    let hard: i64 = hard.parse().ok()?;
    if name.is_empty() || soft > hard {
        return None;
    }
    Some(json!({"Name": name, "Soft": soft, "Hard": hard}))
}

/// `/dev/x[:/dev/y][:rwm]` into the engine's shape.
fn device(value: &str) -> Option<Value> {
    let parts: Vec<&str> = value.split(':').collect();
    let is_permissions = |p: &str| !p.is_empty() && p.chars().all(|c| "rwm".contains(c));
    let (host, container, permissions) = match parts.as_slice() {
        [host] => (*host, *host, "rwm"),
        [host, second] if is_permissions(second) => (*host, *host, *second),
        [host, container] => (*host, *container, "rwm"),
        [host, container, permissions] if is_permissions(permissions) => {
            (*host, *container, *permissions)
        }
        _ => return None,
    };
    if !host.starts_with('/') || !container.starts_with('/') {
        return None;
    }
    Some(json!({
        "PathOnHost": host,
        "PathInContainer": container,
        "CgroupPermissions": permissions,
    }))
}
