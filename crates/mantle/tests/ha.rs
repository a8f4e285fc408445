//! High availability with real processes (reference §5.6): three `mantle master`s
//! contend through a real ZooKeeper server; one leads (`master/elected` 1), the others
//! answer with 307 to it. An agent and a framework find the leader through a `zk://` URL.
//! When the leader is killed, another master is elected, recovers the registry from
//! ZooKeeper, the agent and the framework follow it, and the task keeps running.

mod common;

use common::checks::{checkpointing, launch};
use common::framework::Framework;
use common::{spawn, wait_for_address};
use mantle_api::{Reason, TaskState};
use mantle_sdk::HttpClient;
use mantle_zk::testing::{require_zookeeper, ZkServers};
use std::process::Child;
use std::time::{Duration, Instant};

struct Masters {
    dir: tempfile::TempDir,
    zk: String,
    addresses: Vec<String>,
    children: Vec<Option<Child>>,
    http: HttpClient,
}

impl Masters {
    fn start(zk: &str, count: usize) -> Masters {
        let mut masters = Masters {
            dir: tempfile::tempdir().unwrap(),
            zk: zk.to_string(),
            addresses: Vec::new(),
            children: Vec::new(),
            http: HttpClient::new(Duration::from_secs(5)),
        };
        for index in 0..count {
            let (address, child) = masters.spawn_master(index, "0");
            masters.addresses.push(address);
            masters.children.push(Some(child));
        }
        masters
    }

    fn spawn_master(&self, index: usize, port: &str) -> (String, Child) {
        let log = self.dir.path().join(format!("master-{index}-{port}.log"));
        let work = self.dir.path().join(format!("master-{index}"));
        let args = [
            "master",
            "--ip",
            "127.0.0.1",
            "--port",
            port,
            "--work_dir",
            work.to_str().unwrap(),
            "--zk",
            &self.zk,
            "--zk_session_timeout",
            "2secs",
            "--agent_reregister_timeout",
            "10mins",
        ];
        let mut child = spawn(None, 0, &args, &log);
        (wait_for_address(&log, &mut child), child)
    }

    fn kill(&mut self, index: usize) {
        if let Some(mut child) = self.children[index].take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    async fn elected(&self, index: usize) -> Option<bool> {
        let url = format!("http://{}/metrics/snapshot", self.addresses[index]);
        let response = self.http.get(&url).await.ok()?;
        let metrics: serde_json::Value = serde_json::from_slice(&response.body).ok()?;
        Some(metrics["master/elected"].as_f64()? == 1.0)
    }

    /// Waits until exactly one live master leads, and returns it.
    async fn leader(&self) -> usize {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let mut leaders = Vec::new();
            for index in 0..self.addresses.len() {
                if self.children[index].is_some() && self.elected(index).await == Some(true) {
                    leaders.push(index);
                }
            }
            if let [one] = leaders[..] {
                return one;
            }
            assert!(leaders.len() <= 1, "two masters lead at once: {leaders:?}");
            assert!(Instant::now() < deadline, "no leader elected in 30 s");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits (at most 30 s) until master `index` shows its first agent active.
    async fn wait_agent_active(&self, index: usize, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let state = self.state(index).await;
            if state["slaves"][0]["active"] == true {
                return;
            }
            assert!(Instant::now() < deadline, "{what}: {state:#}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn state(&self, index: usize) -> serde_json::Value {
        let url = format!("http://{}/master/state", self.addresses[index]);
        let response = self.http.get(&url).await.expect("state");
        serde_json::from_slice(&response.body).expect("json")
    }
}

impl Drop for Masters {
    fn drop(&mut self) {
        for index in 0..self.children.len() {
            self.kill(index);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn masters_elect_one_leader_and_fail_over_to_another() {
    if !require_zookeeper("masters_elect_one_leader_and_fail_over_to_another") {
        return;
    }
    let zk = ZkServers::standalone().await.expect("zookeeper");
    let url = zk.url("/mantle").to_string();
    let mut masters = Masters::start(&url, 3);
    let leader = masters.leader().await;

    // The standbys send everyone to the leader (once they have read who it is).
    for index in (0..3).filter(|i| *i != leader) {
        assert_eq!(masters.elected(index).await, Some(false));
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let answer = masters
                .http
                .get(&format!("http://{}/master/state", masters.addresses[index]))
                .await;
            let Err(error) = answer else {
                panic!("standby {index} answered /master/state itself");
            };
            match error.redirect_target() {
                Some(target) => {
                    assert_eq!(target, masters.addresses[leader], "{error}");
                    break;
                }
                None => assert!(Instant::now() < deadline, "{error}"),
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    // An agent and a framework find the leader through ZooKeeper.
    let mut cluster = common::Cluster::without_master(&url).await;
    cluster.add_agent(0, "cpus:2;mem:512;disk:1000");
    let mut info = checkpointing("ha");
    info.failover_timeout = 300.0;
    let mut fw = Framework::subscribe_with(&url, info).await;
    launch(&mut fw, "survivor", 2, "sleep 1000").await;

    masters.kill(leader);
    let next = masters.leader().await;
    assert_ne!(next, leader);
    // The new leader recovered the agent from the registry and the agent came back.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let state = masters.state(next).await;
        let agents = state["slaves"].as_array().cloned().unwrap_or_default();
        if agents.len() == 1 && agents[0]["active"] == true {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the agent did not re-register: {state:#}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The framework follows (its calls fail until it subscribed to the new leader) and
    // its tasks still run.
    let deadline = Instant::now() + Duration::from_secs(30);
    while let Err(err) = fw.scheduler.reconcile(Vec::new()).await {
        assert!(Instant::now() < deadline, "reconcile: {err}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut answered = std::collections::HashSet::new();
    while answered.len() < 2 {
        let status = fw
            .next("reconciliation", Duration::from_secs(30), |e| match e {
                mantle_api::scheduler::Event::Update(u)
                    if u.status.reason == Some(Reason::Reconciliation) =>
                {
                    Some(u.status.clone())
                }
                _ => None,
            })
            .await;
        assert_eq!(status.state, TaskState::Running, "{status:?}");
        answered.insert(status.task_id.value.clone());
    }
    // And new tasks launch through the new leader.
    launch(&mut fw, "after", 1, "sleep 1000").await;
}

/// The pids of the command executors agent 0 of `cluster` recorded.
fn executor_pids(cluster: &common::Cluster) -> Vec<i32> {
    common::checks::executor_pids(cluster, 0)
        .into_values()
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zookeeper_outage_stops_the_leader_but_not_the_tasks() {
    if !require_zookeeper("a_zookeeper_outage_stops_the_leader_but_not_the_tasks") {
        return;
    }
    let mut zk = ZkServers::ensemble(3).await.expect("zookeeper ensemble");
    let url = zk.url("/mantle").to_string();
    let masters = Masters::start(&url, 2);
    let leader = masters.leader().await;
    let mut cluster = common::Cluster::without_master(&url).await;
    cluster.add_agent(0, "cpus:1;mem:512;disk:1000");
    let mut fw = Framework::subscribe_with(&url, checkpointing("outage")).await;
    launch(&mut fw, "steady", 2, "sleep 1000").await;
    let pids = executor_pids(&cluster);

    // One server of three: the ensemble keeps its quorum and nothing changes.
    zk.kill(0);
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(masters.leader().await, leader, "the same master leads");

    // Two of three: no quorum, sessions expire, nobody leads, the tasks run on.
    zk.kill(1);
    let deadline = Instant::now() + Duration::from_secs(20);
    while masters.elected(leader).await != Some(false) {
        assert!(
            Instant::now() < deadline,
            "the leader kept leading without ZooKeeper"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(masters.elected(1 - leader).await, Some(false));
    assert!(pids.iter().all(|pid| common::checks::alive(*pid)));

    // ZooKeeper returns: a leader again, the agent and the framework with it.
    zk.restart(0).await.expect("restart a zookeeper server");
    zk.restart(1).await.expect("restart a zookeeper server");
    let leader = masters.leader().await;
    masters
        .wait_agent_active(leader, "the agent did not come back")
        .await;
    assert_eq!(executor_pids(&cluster), pids, "the same executors run");
    let terminal: Vec<_> = fw
        .statuses
        .iter()
        .filter(|s| s.state.is_terminal())
        .collect();
    assert!(terminal.is_empty(), "no task ended: {terminal:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarting_every_master_recovers_the_registry_exactly() {
    if !require_zookeeper("restarting_every_master_recovers_the_registry_exactly") {
        return;
    }
    let zk = ZkServers::standalone().await.expect("zookeeper");
    let url = zk.url("/mantle").to_string();
    let mut masters = Masters::start(&url, 2);
    let leader = masters.leader().await;
    let mut cluster = common::Cluster::without_master(&url).await;
    cluster.add_agent(0, "cpus:1;mem:512;disk:1000");
    let base = format!("http://{}", masters.addresses[leader]);
    let post = |path: &str, body: serde_json::Value| {
        let http = masters.http.clone();
        let url = format!("{base}{path}");
        async move {
            http.post(&url, body.to_string().into_bytes(), &[])
                .await
                .expect("operator call")
        }
    };
    post(
        "/api/v1",
        serde_json::json!({"type": "UPDATE_WEIGHTS", "update_weights": {"weight_infos": [{"role": "eng", "weight": 3.0}]}}),
    )
    .await;
    let window = serde_json::json!({"windows": [{
        "machine_ids": [{"hostname": "spare", "ip": "10.9.9.9"}],
        "unavailability": {"start": {"nanoseconds": 4_000_000_000_000_000_000i64}}
    }]});
    post("/master/maintenance/schedule", window.clone()).await;
    let before = (
        masters.state(leader).await["slaves"].clone(),
        get_json(&masters, leader, "/master/weights").await,
        get_json(&masters, leader, "/master/maintenance/schedule").await,
    );

    for index in 0..2 {
        masters.kill(index);
    }
    for index in 0..2 {
        let port = masters.addresses[index]
            .rsplit(':')
            .next()
            .unwrap()
            .to_string();
        let (address, child) = masters.spawn_master(index, &port);
        masters.addresses[index] = address;
        masters.children[index] = Some(child);
    }
    let leader = masters.leader().await;
    masters
        .wait_agent_active(leader, "the agent did not come back")
        .await;
    let after = (
        masters.state(leader).await["slaves"].clone(),
        get_json(&masters, leader, "/master/weights").await,
        get_json(&masters, leader, "/master/maintenance/schedule").await,
    );
    assert_eq!(after.0[0]["id"], before.0[0]["id"], "the same agent id");
    assert_eq!(after.1, before.1, "the same weights");
    assert_eq!(after.2, before.2, "the same maintenance schedule");
    assert_eq!(after.2["windows"][0]["machine_ids"][0]["hostname"], "spare");
}

async fn get_json(masters: &Masters, index: usize, path: &str) -> serde_json::Value {
    let url = format!("http://{}{path}", masters.addresses[index]);
    let response = masters.http.get(&url).await.expect(path);
    serde_json::from_slice(&response.body).expect("json")
}

/// The time (RFC 3339, as the log prints it) of the first line of `log` containing
/// `what`; colour codes are skipped.
fn logged_at(log: &std::path::Path, what: &str) -> Option<String> {
    let text = std::fs::read_to_string(log).ok()?;
    let line = text.lines().find(|l| l.contains(what))?;
    let mut plain = String::new();
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c == 'm' {
                    break;
                }
            }
        } else {
            plain.push(c);
        }
    }
    plain.split_whitespace().next().map(str::to_string)
}

/// The leader's host is cut off: it stops leading on its own before another master is
/// elected (compared on the one clock of this machine), the agent and the framework
/// follow the new leader, and the tasks keep running.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_cut_off_stops_before_another_leads() {
    if !require_zookeeper("a_leader_cut_off_stops_before_another_leads") {
        return;
    }
    // Host 0: ZooKeeper; hosts 1 to 3: masters; host 4: the agent.
    let Some(net) = common::netns::Network::create(5) else {
        return;
    };
    let zk = ZkServers::standalone_in(net.namespace(0), &net.address(0))
        .await
        .expect("zookeeper in its namespace");
    let url = zk.url("/mantle").to_string();
    let dir = tempfile::tempdir().unwrap();
    let mut children = Vec::new();
    let mut addresses = Vec::new();
    let mut logs = Vec::new();
    for host in 1..=3 {
        let log = dir.path().join(format!("master-{host}.log"));
        let work = dir.path().join(format!("master-{host}"));
        let ip = net.address(host);
        let args = [
            "master",
            "--ip",
            &ip,
            "--port",
            "5050",
            "--work_dir",
            work.to_str().unwrap(),
            "--zk",
            &url,
            "--zk_session_timeout",
            "2secs",
        ];
        let mut child = spawn(Some(&net), host, &args, &log);
        addresses.push(wait_for_address(&log, &mut child));
        children.push(child);
        logs.push(log);
    }
    let masters = Masters {
        dir,
        zk: url.clone(),
        addresses,
        children: children.into_iter().map(Some).collect(),
        http: HttpClient::new(Duration::from_secs(2)),
    };
    let leader = masters.leader().await;
    let mut cluster = common::Cluster::without_master(&url).await;
    cluster.net = Some(net);
    cluster.add_agent_with(3, "cpus:1;mem:512;disk:1000", &[]);
    let mut fw = Framework::subscribe_with(&url, checkpointing("cut")).await;
    launch(&mut fw, "steady", 2, "sleep 1000").await;
    let pids = common::checks::executor_pids(&cluster, 3);

    cluster.net.as_ref().unwrap().cut(leader + 1);
    let deadline = Instant::now() + Duration::from_secs(30);
    let next = loop {
        let mut found = None;
        for index in (0..3).filter(|i| *i != leader) {
            if masters.elected(index).await == Some(true) {
                found = Some(index);
            }
        }
        if let Some(next) = found {
            break next;
        }
        assert!(
            Instant::now() < deadline,
            "no new leader while the old one is cut off"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let stopped = logged_at(&logs[leader], "no longer the leading master")
        .expect("the cut-off leader stopped leading on its own");
    let elected = logged_at(&logs[next], "elected the leading master").expect("elected");
    assert!(
        stopped < elected,
        "old leader stopped at {stopped}, new one elected at {elected}"
    );

    cluster.net.as_ref().unwrap().restore(leader + 1);
    masters
        .wait_agent_active(next, "the agent did not follow")
        .await;
    assert_eq!(masters.leader().await, next, "the old leader follows now");
    assert_eq!(common::checks::executor_pids(&cluster, 3), pids);
    let terminal: Vec<_> = fw
        .statuses
        .iter()
        .filter(|s| s.state.is_terminal())
        .collect();
    assert!(terminal.is_empty(), "no task ended: {terminal:#?}");
}
