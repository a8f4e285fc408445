//! Table tests of the create body: one `check(edit, expected)` row per spec shape, and
//! the parameters and specs that must be refused with the field they name.

use serde_json::{json, Value};

use super::spec::*;
use crate::ContainerError;

/// Builds the body for a spec of image `img` changed by `edit` and compares it whole.
fn check(edit: impl FnOnce(&mut ContainerSpec), expected: Value) {
    let mut spec = ContainerSpec::new("img");
    edit(&mut spec);
    match create_body(&spec) {
        Ok(body) => assert_eq!(body, expected, "spec: {spec:?}"),
        Err(err) => panic!("spec {spec:?} was refused: {err}"),
    }
}

/// Expects the spec to be refused with an Invalid error naming `field`.
fn check_invalid(edit: impl FnOnce(&mut ContainerSpec), field: &str) {
    let mut spec = ContainerSpec::new("img");
    edit(&mut spec);
    match create_body(&spec) {
        Err(ContainerError::Invalid { field: got, .. }) => {
            assert_eq!(got, field, "spec: {spec:?}")
        }
        other => panic!("spec {spec:?}: expected Invalid({field}), got {other:?}"),
    }
}

fn param(key: &str, value: &str) -> impl FnOnce(&mut ContainerSpec) {
    let pair = (key.to_string(), value.to_string());
    move |s| s.parameters.push(pair)
}

fn host(host_config: Value) -> Value {
    let mut host = json!({"NetworkMode": "host"});
    for (k, v) in host_config.as_object().cloned().unwrap_or_default() {
        host[k] = v;
    }
    json!({"Image": "img", "HostConfig": host})
}

fn port(host_port: u16, container_port: u16, protocol: &str) -> PortMapping {
    PortMapping {
        host_port,
        container_port,
        protocol: protocol.into(),
    }
}

#[test]
fn plain_fields() {
    check(
        |_| {},
        json!({"Image": "img", "HostConfig": {"NetworkMode": "host"}}),
    );
    check(
        |s| {
            s.command = Some(vec!["sh".into(), "-c".into(), "echo hi".into()]);
            s.entrypoint = Some(vec![]);
            s.env = vec![("A".into(), "1".into()), ("B".into(), "x=y".into())];
            s.working_dir = Some("/srv".into());
            s.user = Some("nobody".into());
            s.hostname = Some("box".into());
            s.labels.insert("mesos.task".into(), "t1".into());
        },
        json!({
            "Image": "img",
            "Cmd": ["sh", "-c", "echo hi"],
            "Entrypoint": [],
            "Env": ["A=1", "B=x=y"],
            "WorkingDir": "/srv",
            "User": "nobody",
            "Hostname": "box",
            "Labels": {"mesos.task": "t1"},
            "HostConfig": {"NetworkMode": "host"},
        }),
    );
    check(
        |s| {
            s.memory_bytes = Some(64 << 20);
            s.cpu_shares = Some(512);
            s.privileged = true;
        },
        host(json!({"Memory": 67108864, "CpuShares": 512, "Privileged": true})),
    );
    check(
        |s| {
            s.volumes = vec![
                Volume {
                    host_path: "/sandbox".into(),
                    container_path: "/mnt/mesos/sandbox".into(),
                    read_only: false,
                },
                Volume {
                    host_path: "/etc/ssl".into(),
                    container_path: "/etc/ssl".into(),
                    read_only: true,
                },
            ];
        },
        host(json!({"Binds": ["/sandbox:/mnt/mesos/sandbox", "/etc/ssl:/etc/ssl:ro"]})),
    );
}

#[test]
fn networks_and_ports() {
    check(
        |s| s.network = Network::None,
        json!({"Image": "img", "HostConfig": {"NetworkMode": "none"}}),
    );
    check(
        |s| s.network = Network::User("overlay1".into()),
        json!({"Image": "img", "HostConfig": {"NetworkMode": "overlay1"}}),
    );
    check(
        |s| {
            s.network = Network::Bridge;
            s.port_mappings = vec![
                port(31000, 80, "tcp"),
                port(31001, 53, "UDP"),
                port(31002, 80, ""),
            ];
        },
        json!({
            "Image": "img",
            "ExposedPorts": {"80/tcp": {}, "53/udp": {}},
            "HostConfig": {
                "NetworkMode": "bridge",
                "PortBindings": {
                    "80/tcp": [
                        {"HostIp": "", "HostPort": "31000"},
                        {"HostIp": "", "HostPort": "31002"},
                    ],
                    "53/udp": [{"HostIp": "", "HostPort": "31001"}],
                },
            },
        }),
    );
    check(
        |s| {
            s.network = Network::User("net1".into());
            s.port_mappings = vec![port(8080, 8080, "tcp")];
        },
        json!({
            "Image": "img",
            "ExposedPorts": {"8080/tcp": {}},
            "HostConfig": {
                "NetworkMode": "net1",
                "PortBindings": {"8080/tcp": [{"HostIp": "", "HostPort": "8080"}]},
            },
        }),
    );
}

#[test]
fn invalid_specs_name_the_field() {
    check_invalid(|s| s.image = String::new(), "image");
    check_invalid(|s| s.image = "busy box".into(), "image");
    check_invalid(
        |s| s.port_mappings = vec![port(1, 2, "tcp")],
        "port_mappings",
    );
    check_invalid(
        |s| {
            s.network = Network::None;
            s.port_mappings = vec![port(1, 2, "tcp")];
        },
        "port_mappings",
    );
    check_invalid(
        |s| {
            s.network = Network::Bridge;
            s.port_mappings = vec![port(1, 2, "sctp")];
        },
        "port_mappings",
    );
    check_invalid(
        |s| {
            s.network = Network::Bridge;
            s.port_mappings = vec![port(0, 2, "tcp")];
        },
        "port_mappings",
    );
    check_invalid(
        |s| {
            s.network = Network::Bridge;
            s.port_mappings = vec![port(5, 2, "tcp"), port(5, 3, "")];
        },
        "port_mappings",
    );
    check_invalid(|s| s.network = Network::User(String::new()), "network");
    check_invalid(|s| s.env = vec![("A=B".into(), "1".into())], "env");
    check_invalid(|s| s.env = vec![(String::new(), "1".into())], "env");
    check_invalid(|s| s.working_dir = Some("srv".into()), "working_dir");
    check_invalid(|s| s.memory_bytes = Some(0), "memory_bytes");
    check_invalid(|s| s.cpu_shares = Some(1), "cpu_shares");
    check_invalid(|s| s.user = Some(String::new()), "user");
    check_invalid(|s| s.command = Some(vec!["a\0b".into()]), "command");
    check_invalid(
        |s| {
            s.labels.insert(String::new(), "x".into());
        },
        "labels",
    );
    for (host_path, container_path) in
        [("rel", "/c"), ("/h", "rel"), ("/a:b", "/c"), ("/h", "/c,d")]
    {
        check_invalid(
            |s| {
                s.volumes = vec![Volume {
                    host_path: host_path.into(),
                    container_path: container_path.into(),
                    read_only: false,
                }]
            },
            "volumes",
        );
    }
}

#[test]
fn parameters_map_onto_the_body() {
    check(
        |s| {
            s.env = vec![("A".into(), "1".into())];
            s.parameters = vec![
                ("env".into(), "B=2".into()),
                ("e".into(), "C=".into()),
                ("label".into(), "k=v".into()),
                ("label".into(), "flag".into()),
            ];
        },
        json!({
            "Image": "img",
            "Env": ["A=1", "B=2", "C="],
            "Labels": {"k": "v", "flag": ""},
            "HostConfig": {"NetworkMode": "host"},
        }),
    );
    // Parameters come after the spec's own fields and win, as on Mesos's command line.
    check(
        |s| {
            s.hostname = Some("a".into());
            s.user = Some("root".into());
            s.parameters = vec![
                ("hostname".into(), "b".into()),
                ("user".into(), "1000:1000".into()),
                ("workdir".into(), "/w".into()),
                ("tty".into(), "true".into()),
                ("stop-signal".into(), "SIGINT".into()),
                ("stop-timeout".into(), "5".into()),
            ];
        },
        json!({
            "Image": "img",
            "Hostname": "b",
            "User": "1000:1000",
            "WorkingDir": "/w",
            "Tty": true,
            "StopSignal": "SIGINT",
            "StopTimeout": 5,
            "HostConfig": {"NetworkMode": "host"},
        }),
    );
    check(
        param("memory-swap", "1g"),
        host(json!({"MemorySwap": 1073741824})),
    );
    check(param("memory-swap", "-1"), host(json!({"MemorySwap": -1})));
    check(
        param("shm-size", "64mb"),
        host(json!({"ShmSize": 67108864})),
    );
    check(param("shm-size", "1.5k"), host(json!({"ShmSize": 1536})));
    check(
        param("memory-reservation", "4096"),
        host(json!({"MemoryReservation": 4096})),
    );
    check(
        param("cpu-quota", "50000"),
        host(json!({"CpuQuota": 50000})),
    );
    check(
        param("cpu-period", "100000"),
        host(json!({"CpuPeriod": 100000})),
    );
    check(param("pids-limit", "100"), host(json!({"PidsLimit": 100})));
    check(
        param("cpus", "1.5"),
        host(json!({"NanoCpus": 1500000000i64})),
    );
    check(
        param("privileged", "true"),
        host(json!({"Privileged": true})),
    );
    check(param("init", ""), host(json!({"Init": true})));
    check(
        param("read-only", "false"),
        host(json!({"ReadonlyRootfs": false})),
    );
    check(
        param("oom-kill-disable", "1"),
        host(json!({"OomKillDisable": true})),
    );
    check(
        |s| {
            s.parameters = vec![
                ("cap-add".into(), "NET_ADMIN".into()),
                ("cap-add".into(), "SYS_PTRACE".into()),
                ("cap-drop".into(), "MKNOD".into()),
                ("dns".into(), "10.0.0.2".into()),
                ("dns-search".into(), "example.com".into()),
                ("dns-option".into(), "ndots:2".into()),
                ("add-host".into(), "db:10.0.0.3".into()),
                ("security-opt".into(), "no-new-privileges".into()),
                ("group-add".into(), "video".into()),
            ];
        },
        host(json!({
            "CapAdd": ["NET_ADMIN", "SYS_PTRACE"],
            "CapDrop": ["MKNOD"],
            "Dns": ["10.0.0.2"],
            "DnsSearch": ["example.com"],
            "DnsOptions": ["ndots:2"],
            "ExtraHosts": ["db:10.0.0.3"],
            "SecurityOpt": ["no-new-privileges"],
            "GroupAdd": ["video"],
        })),
    );
    check(
        |s| {
            s.parameters = vec![
                ("ipc".into(), "host".into()),
                ("pid".into(), "host".into()),
                ("uts".into(), "host".into()),
            ];
        },
        host(json!({"IpcMode": "host", "PidMode": "host", "UTSMode": "host"})),
    );
    check(
        |s| {
            s.parameters = vec![
                ("ulimit".into(), "nofile=1024:2048".into()),
                ("ulimit".into(), "core=0".into()),
            ];
        },
        host(json!({"Ulimits": [
            {"Name": "nofile", "Soft": 1024, "Hard": 2048},
            {"Name": "core", "Soft": 0, "Hard": 0},
        ]})),
    );
    check(
        |s| {
            s.parameters = vec![
                ("device".into(), "/dev/fuse".into()),
                ("device".into(), "/dev/sda:/dev/xvda:r".into()),
                ("device".into(), "/dev/null:rw".into()),
            ];
        },
        host(json!({"Devices": [
            {"PathOnHost": "/dev/fuse", "PathInContainer": "/dev/fuse", "CgroupPermissions": "rwm"},
            {"PathOnHost": "/dev/sda", "PathInContainer": "/dev/xvda", "CgroupPermissions": "r"},
            {"PathOnHost": "/dev/null", "PathInContainer": "/dev/null", "CgroupPermissions": "rw"},
        ]})),
    );
    check(
        |s| {
            s.parameters = vec![
                ("sysctl".into(), "net.core.somaxconn=1024".into()),
                ("tmpfs".into(), "/run:size=64m".into()),
                ("tmpfs".into(), "/tmp".into()),
                ("log-driver".into(), "json-file".into()),
                ("log-opt".into(), "max-size=10m".into()),
                ("volume".into(), "/data:/data:ro".into()),
                ("v".into(), "/x:/y".into()),
            ];
        },
        host(json!({
            "Sysctls": {"net.core.somaxconn": "1024"},
            "Tmpfs": {"/run": "size=64m", "/tmp": ""},
            "LogConfig": {"Type": "json-file", "Config": {"max-size": "10m"}},
            "Binds": ["/data:/data:ro", "/x:/y"],
        })),
    );
}

#[test]
fn bad_parameters_name_the_key() {
    for (key, value) in [
        ("restart", "always"),
        ("net", "host"),
        ("rm", "true"),
        ("", "x"),
        ("env", "NOVALUE"),
        ("env", "=1"),
        ("workdir", "relative"),
        ("hostname", ""),
        ("memory-swap", "lots"),
        ("shm-size", "-1"),
        ("shm-size", "0"),
        ("shm-size", "1e400"),
        ("cpu-quota", "half"),
        ("cpus", "0"),
        ("cpus", "NaN"),
        ("privileged", "yes please"),
        ("ulimit", "nofile"),
        ("ulimit", "nofile=10:5"),
        ("device", "dev/fuse"),
        ("device", "/a:/b:xyz"),
        ("add-host", "db"),
        ("cap-add", ""),
        ("sysctl", "=1"),
        ("tmpfs", "run"),
        ("log-opt", "nothing"),
        ("volume", "/a"),
        ("volume", "/a:/b:zz"),
        ("volume", "/a:/b:ro:extra"),
        ("label", "k=v\0"),
    ] {
        check_invalid(param(key, value), &format!("parameters.{key}"));
    }
}

#[test]
fn every_supported_parameter_is_accepted() {
    // Keeps SUPPORTED_PARAMETERS honest: each listed key maps with a plausible value.
    for key in SUPPORTED_PARAMETERS {
        let value = match *key {
            "add-host" => "h:1.2.3.4",
            "device" => "/dev/null",
            "e" | "env" | "sysctl" | "log-opt" | "l" | "label" => "a=b",
            "ulimit" => "nofile=1",
            "u" | "user" | "h" | "hostname" | "stop-signal" | "ipc" | "pid" | "uts" => "x",
            "w" | "workdir" | "tmpfs" => "/x",
            "v" | "volume" => "/a:/b",
            "memory-swap" | "memory-reservation" | "shm-size" => "1m",
            "cpus" => "0.5",
            "cpu-period" | "cpu-quota" | "pids-limit" | "stop-timeout" => "10",
            "init" | "privileged" | "read-only" | "oom-kill-disable" | "t" | "tty" => "true",
            _ => "value",
        };
        let mut spec = ContainerSpec::new("img");
        spec.parameters.push((key.to_string(), value.to_string()));
        if let Err(err) = create_body(&spec) {
            panic!("parameter {key}={value} was refused: {err}");
        }
    }
}
