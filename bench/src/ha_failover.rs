//! `ha-failover`: how long a cluster goes without offers when its leading master dies.
//! Three `mantle master` processes contend in a ZooKeeper server of their own (Debian's
//! zookeeperd, `tickTime=500`); N simulated agents (inside this process, over the real
//! agent protocol, with tasks of five frameworks) and one framework (the Rust SDK with a
//! `zk://` URL) follow the leader. The leader is killed with SIGKILL; the time counts
//! from the kill until the framework holds its first offer from the new leader. Without
//! a goodbye, ZooKeeper notices the dead leader only when its session expires, so the
//! session timeout is the floor of the measure.

use crate::cluster::{rss_mb, spawn, wait_for_address, Process};
use crate::failover::{self, Leader, Shape, Shared};
use anyhow::{bail, Context};
use mantle_api::scheduler::Event;
use mantle_api::*;
use mantle_sdk::scheduler::{Scheduler, SchedulerEvent, SubscribeOptions};
use mantle_zk::testing::ZkServers;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};

const MASTERS: usize = 3;

pub struct Options {
    pub shape: Shape,
    pub concurrency: usize,
    pub timeout: Duration,
}

/// What the framework's event reader tells the coordinator.
enum Seen {
    /// A subscription was accepted by the master at this address.
    Connected(String),
    Offers(Instant),
}

/// One run per session timeout, one JSON line each.
pub async fn run(mantle: &Path, options: &Options, session_timeouts: &[f64]) -> anyhow::Result<()> {
    if options.shape.agents == 0 {
        bail!("--agents must be positive");
    }
    if let Some(reason) = mantle_zk::testing::zookeeper_missing() {
        bail!("{reason} (scripts/ensure-zookeeper.sh installs it)");
    }
    let shape = options.shape;
    failover::raise_open_files(
        failover::agent_connections(shape.agents, shape.agents_per_connection) + 1024,
    )?;
    for &session in session_timeouts {
        // The test servers grant sessions of 1 to 10 s (2 to 20 ticks of 500 ms).
        if !(1.0..=10.0).contains(&session) {
            bail!("--session-timeouts: {session} is outside 1 to 10 seconds");
        }
        let line = once(mantle, options, session).await?;
        println!("{line}");
    }
    Ok(())
}

/// The masters, killed when dropped.
struct Masters(Vec<(Process, SocketAddr)>);

/// The leader's address from its candidacy data (MasterInfo as JSON).
fn leader_address(data: &Option<Vec<u8>>) -> Option<SocketAddr> {
    let info: MasterInfo = serde_json::from_slice(data.as_deref()?).ok()?;
    info.http_address()?.parse().ok()
}

async fn once(mantle: &Path, options: &Options, session: f64) -> anyhow::Result<String> {
    let shape = options.shape;
    let zk = ZkServers::standalone().await?;
    let url = zk.url("/mantle");
    let dir = tempfile::tempdir()?;
    let mut masters = Masters(Vec::new());
    for index in 0..MASTERS {
        let work = dir.path().join(format!("master-{index}"));
        let log = dir.path().join(format!("master-{index}.log"));
        let mut child = spawn(
            mantle,
            &[
                "master",
                "--port",
                "0",
                "--work_dir",
                work.to_str().context("work directory is not UTF-8")?,
                "--zk",
                &url.to_string(),
                "--quorum",
                "2",
                "--zk_session_timeout",
                &format!("{session}secs"),
            ],
            &log,
        )?;
        let address = wait_for_address(&log, &mut child)?;
        masters.0.push((child, address.parse()?));
    }

    // One detector stands for every simulated agent's own: each change of leader is a
    // new generation they register with.
    let mut detected = mantle_zk::election::detect(url.clone(), mantle_zk::Options::default());
    let (leader_tx, leader_rx) = watch::channel(None::<Leader>);
    let (elected_tx, mut elected) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut generation = 0;
        loop {
            let address = leader_address(&detected.borrow_and_update());
            leader_tx.send_replace(address.map(|address| {
                generation += 1;
                Leader {
                    generation,
                    address,
                }
            }));
            if let Some(address) = address {
                let _ = elected_tx.send((address, Instant::now()));
            }
            if detected.changed().await.is_err() {
                return;
            }
        }
    });
    let (first_leader, _) = tokio::time::timeout(options.timeout, elected.recv())
        .await
        .context("no master was elected")?
        .context("the detector stopped")?;
    eprintln!(
        "bench ha-failover: session timeout {session} s; {MASTERS} masters, {first_leader} leads; {} agents with {} tasks each",
        shape.agents, shape.tasks_per_agent
    );

    let (reports_tx, mut reports) = mpsc::unbounded_channel();
    let shared = Shared::new(shape, options.concurrency, reports_tx)?;
    let registering = Instant::now();
    for index in 0..shape.agents {
        tokio::spawn(failover::agent(index, shared.clone(), leader_rx.clone()));
    }
    failover::wait_for_agents(
        &shared,
        &mut reports,
        1,
        shape.agents,
        options.timeout,
        "registered",
    )
    .await?;
    let registered_s = registering.elapsed().as_secs_f64();
    eprintln!(
        "bench ha-failover: {} agents registered in {registered_s:.1} s",
        shape.agents
    );

    let (seen_tx, mut seen) = mpsc::unbounded_channel();
    let framework = subscribe(&url.to_string(), seen_tx).await?;
    // Settle: the framework holds the first leader's offers and declined them for long.
    wait_for_offers(&mut seen, options.timeout).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    while seen.try_recv().is_ok() {}
    while reports.try_recv().is_ok() {}
    while elected.try_recv().is_ok() {}

    let index = masters
        .0
        .iter()
        .position(|(_, address)| *address == first_leader)
        .context("the leader is none of the masters started")?;
    let rss = rss_mb(masters.0[index].0.id())?;
    let (mut leader, _) = masters.0.remove(index);
    let killed = Instant::now();
    let _ = leader.kill();
    let _ = leader.wait();

    let (new_leader, elected_at) = tokio::time::timeout(options.timeout, elected.recv())
        .await
        .context("no new master was elected")?
        .context("the detector stopped")?;
    let elected_s = elected_at.duration_since(killed).as_secs_f64();
    // Only an offer that follows a subscription accepted after the kill comes from the
    // new leader; one of the old leader's may still be on its way.
    let mut resubscribed = false;
    let first_offer = loop {
        match tokio::time::timeout(options.timeout, seen.recv()).await {
            Ok(Some(Seen::Connected(master))) => resubscribed = master != first_leader.to_string(),
            Ok(Some(Seen::Offers(at))) if resubscribed => break at,
            Ok(Some(Seen::Offers(_))) => {}
            Ok(None) => bail!("the framework's event stream ended"),
            Err(_) => bail!("no offer from the new leader within {:?}", options.timeout),
        }
    };
    let seconds = first_offer.duration_since(killed).as_secs_f64();
    let times = failover::wait_for_agents(
        &shared,
        &mut reports,
        2,
        shape.agents,
        options.timeout,
        "re-registered",
    )
    .await?;
    let agents_s = times
        .last()
        .map_or(0.0, |t| t.duration_since(killed).as_secs_f64());
    eprintln!(
        "bench ha-failover: killed {first_leader}; {new_leader} elected after {elected_s:.3} s; first offer after {seconds:.3} s; all agents re-registered after {agents_s:.3} s; the dead leader's rss was {rss:.0} MB"
    );
    drop(framework);
    if std::env::var_os("MANTLE_BENCH_KEEP").is_some() {
        eprintln!("bench ha-failover: logs kept in {}", dir.keep().display());
    }
    let round = |s: f64| (s * 1000.0).round() / 1000.0;
    Ok(serde_json::json!({
        "bench": "ha_failover",
        "agents": shape.agents,
        "session_timeout_s": session,
        "agents_registered_s": round(registered_s),
        "seconds": round(seconds),
        "elected_s": round(elected_s),
        "agents_reregistered_s": round(agents_s),
    })
    .to_string())
}

/// Subscribes a framework through ZooKeeper and reports what it sees; it declines every
/// offer for an hour, so that each master offers each agent once.
async fn subscribe(url: &str, seen: mpsc::UnboundedSender<Seen>) -> anyhow::Result<Scheduler> {
    let info: FrameworkInfo = serde_json::from_value(serde_json::json!({
        "user": "root",
        "name": "ha-failover-probe",
        "failover_timeout": 3600.0,
    }))?;
    let options = SubscribeOptions {
        request_timeout: Duration::from_secs(10),
        ..SubscribeOptions::default()
    };
    let (scheduler, mut events) = Scheduler::subscribe_with(url, info, options).await?;
    let caller = scheduler.clone();
    tokio::spawn(async move {
        while let Some(event) = events.next().await {
            match event {
                SchedulerEvent::Connected { master, .. } => {
                    let _ = seen.send(Seen::Connected(master));
                }
                SchedulerEvent::Event(Event::Offers(offers)) => {
                    let _ = seen.send(Seen::Offers(Instant::now()));
                    let ids = offers.offers.iter().map(|o| o.id.clone()).collect();
                    let filters = Filters {
                        refuse_seconds: 3600.0,
                    };
                    // A decline lost to the failover only means the offer comes back.
                    let _ = caller.decline(ids, Some(filters)).await;
                }
                _ => {}
            }
        }
    });
    Ok(scheduler)
}

async fn wait_for_offers(
    seen: &mut mpsc::UnboundedReceiver<Seen>,
    timeout: Duration,
) -> anyhow::Result<()> {
    loop {
        match tokio::time::timeout(timeout, seen.recv()).await {
            Ok(Some(Seen::Offers(_))) => return Ok(()),
            Ok(Some(Seen::Connected(_))) => {}
            Ok(None) => bail!("the framework's event stream ended"),
            Err(_) => bail!("no offer within {timeout:?}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_leader_address_from_master_info() {
        let info = serde_json::json!({
            "id": "m1", "ip": 16777343u32, "port": 5050, "hostname": "localhost",
            "address": {"ip": "127.0.0.1", "hostname": "localhost", "port": 5050},
        });
        let data = Some(serde_json::to_vec(&info).unwrap());
        assert_eq!(
            leader_address(&data),
            Some("127.0.0.1:5050".parse().unwrap())
        );
        assert_eq!(leader_address(&None), None);
        assert_eq!(leader_address(&Some(b"not json".to_vec())), None);
    }
}
