//! Hosts in network namespaces for system tests: each host is a namespace of its own
//! with one address, joined by a veth pair to a bridge in a "switch" namespace; the test
//! process reaches them through one more veth pair from its own namespace. A host's link
//! can be cut and restored on the switch side, and `mantle` processes are started inside
//! a host with `ip netns exec`. Everything is removed on drop.
//!
//! Needs root and `ip` (iproute2). Outside CI a test without them is skipped with a
//! printed reason; in CI (`CI` set) it fails.

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

pub struct Network {
    /// Short and unique: interface names are at most 15 characters.
    id: String,
    /// `10.a.b`: hosts are `10.a.b.1` and up, the test process `10.a.b.254`.
    prefix: String,
    switch: String,
    hosts: Vec<String>,
}

/// Whether this machine can build namespaces; `Err` says why not.
fn available() -> Result<(), String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err("network namespaces need root".into());
    }
    match Command::new("ip").arg("-V").stdout(Stdio::null()).status() {
        Ok(status) if status.success() => Ok(()),
        _ => Err("the ip command (iproute2) is missing".into()),
    }
}

fn ip(args: &[&str]) {
    let output = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        output.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
}

impl Network {
    /// `hosts` hosts on one switch, or `None` (after saying why) when this machine
    /// cannot build them outside CI.
    pub fn create(hosts: usize) -> Option<Network> {
        if let Err(why) = available() {
            assert!(std::env::var_os("CI").is_none(), "system test in CI: {why}");
            eprintln!("skipping a system test: {why}");
            return None;
        }
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let serial = NEXT.fetch_add(1, Ordering::Relaxed);
        let pid = std::process::id();
        let id = format!("{:x}{serial:x}", pid % 0xfff);
        let prefix = format!("10.{}.{}", 100 + pid % 100, serial % 250);
        let mut network = Network {
            switch: format!("msw{id}"),
            hosts: Vec::new(),
            prefix,
            id,
        };
        network.build(hosts);
        Some(network)
    }

    fn build(&mut self, hosts: usize) {
        let switch = self.switch.clone();
        ip(&["netns", "add", &switch]);
        ip(&["-n", &switch, "link", "set", "lo", "up"]);
        ip(&["-n", &switch, "link", "add", "br0", "type", "bridge"]);
        ip(&["-n", &switch, "link", "set", "br0", "up"]);
        // The test process's own leg.
        let (root, root_peer) = (format!("mr{}", self.id), format!("mp{}", self.id));
        ip(&[
            "link", "add", &root, "type", "veth", "peer", "name", &root_peer,
        ]);
        ip(&["link", "set", &root_peer, "netns", &switch]);
        ip(&[
            "-n", &switch, "link", "set", &root_peer, "master", "br0", "up",
        ]);
        ip(&[
            "addr",
            "add",
            &format!("{}.254/24", self.prefix),
            "dev",
            &root,
        ]);
        ip(&["link", "set", &root, "up"]);
        for index in 0..hosts {
            let ns = format!("mh{}h{index}", self.id);
            ip(&["netns", "add", &ns]);
            self.hosts.push(ns.clone());
            ip(&["-n", &ns, "link", "set", "lo", "up"]);
            let port = self.port(index);
            ip(&[
                "-n", &ns, "link", "add", "eth0", "type", "veth", "peer", "name", &port,
            ]);
            ip(&["-n", &ns, "link", "set", &port, "netns", &switch]);
            ip(&["-n", &switch, "link", "set", &port, "master", "br0", "up"]);
            let address = format!("{}/24", self.address(index));
            ip(&["-n", &ns, "addr", "add", &address, "dev", "eth0"]);
            ip(&["-n", &ns, "link", "set", "eth0", "up"]);
        }
    }

    /// The switch-side end of a host's link.
    fn port(&self, index: usize) -> String {
        format!("ms{}h{index}", self.id)
    }

    /// The address of host `index`.
    pub fn address(&self, index: usize) -> String {
        format!("{}.{}", self.prefix, index + 1)
    }

    /// Cuts host `index` off: its packets go nowhere, its connections stay open.
    pub fn cut(&self, index: usize) {
        ip(&["-n", &self.switch, "link", "set", &self.port(index), "down"]);
    }

    pub fn restore(&self, index: usize) {
        ip(&["-n", &self.switch, "link", "set", &self.port(index), "up"]);
    }

    /// The network namespace of host `index`.
    pub fn namespace(&self, index: usize) -> &str {
        &self.hosts[index]
    }

    /// A command that runs `program` inside host `index`.
    pub fn command(&self, index: usize, program: &str) -> Command {
        let mut command = Command::new("ip");
        command
            .args(["netns", "exec", &self.hosts[index], program])
            .stdin(Stdio::null());
        command
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        let quiet = |args: &[&str]| {
            let _ = Command::new("ip")
                .args(args)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        };
        // Deleting a namespace deletes the veth ends inside it, and with them their peers.
        for ns in &self.hosts {
            quiet(&["netns", "del", ns]);
        }
        quiet(&["netns", "del", &self.switch]);
        quiet(&["link", "del", &format!("mr{}", self.id)]);
    }
}
