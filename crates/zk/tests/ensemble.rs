//! The client against a three-server ensemble: the session moves to another member
//! when its server dies and keeps its ephemeral nodes and watches, the restarted member
//! serves the same data, the session outlives the election that follows the death of
//! the ensemble's leader, and it is reported expired once no member has answered for
//! the session timeout.

mod common;

use std::time::Duration;

use anyhow::Context;
use common::{bounded, wait_for_state, StateLog};
use mantle_zk::testing::ZkServers;
use mantle_zk::{Client, CreateMode, Error, EventType, Options, SessionState, ZkUrl};
use tokio::time::{timeout, Instant};

#[tokio::test]
async fn a_session_survives_the_restart_of_its_server_and_expires_without_servers(
) -> anyhow::Result<()> {
    require_zookeeper!("a_session_survives_the_restart_of_its_server_and_expires_without_servers");
    bounded(Duration::from_secs(240), async {
        let mut servers = ZkServers::ensemble(3).await?;
        assert_eq!(servers.len(), 3);
        // Long enough for the two survivors to elect a new leader should the killed
        // server have been the leader (sessions survive an election; the new leader
        // gives every session a full timeout).
        let options = Options::default().session_timeout(Duration::from_secs(8));
        let zk = Client::connect(&servers.url("/mantle"), options).await?;
        let other = Client::connect(&servers.url("/mantle"), Options::default()).await?;
        let session_id = zk.session_id();
        zk.ensure_path("/mantle").await?;
        let leader = zk
            .create("/mantle/json.info_", b"{}", CreateMode::EphemeralSequential)
            .await?;
        zk.create("/mantle/registry", b"0", CreateMode::Persistent).await?;
        let (_, _, registry_changed) = zk.get_data_watch("/mantle/registry").await?;
        let log = StateLog::record(&zk);

        let first = zk.server().context("not connected")?;
        let index = servers.index_of(&first).context("connected to an unknown server")?;
        let mode = servers.mode(index).await?;
        let killed = Instant::now();
        servers.kill(index);
        wait_for_state(&zk, SessionState::Disconnected, Duration::from_secs(2)).await?;
        let moved_after = wait_for_state(&zk, SessionState::Connected, Duration::from_secs(8)).await?;
        let second = zk.server().context("not connected after the move")?;
        assert_ne!(second, first);
        assert_eq!(zk.session_id(), session_id);
        eprintln!(
            "session moved from {first} ({mode}) to {second} in {:?} ({moved_after:?} after the disconnection)",
            killed.elapsed()
        );
        let stat = zk.exists(&leader).await?.context("the leader's node went with its server")?;
        assert_eq!(stat.ephemeral_owner, session_id);

        // The watch set through the dead server still fires.
        other.set_data("/mantle/registry", b"1", None).await?;
        let event = timeout(Duration::from_secs(5), registry_changed).await??;
        assert_eq!(event.event_type, EventType::NodeDataChanged);

        // The restarted server rejoins and serves the same nodes.
        servers.restart(index).await?;
        let only_restarted = ZkUrl {
            servers: vec![servers.server(index)],
            path: "/".into(),
            credentials: None,
        };
        let reader = Client::connect(&only_restarted, Options::default()).await?;
        assert_eq!(reader.get_data("/mantle/registry").await?.0, b"1");
        assert!(reader.exists(&leader).await?.is_some());
        reader.close().await;
        assert_eq!(zk.state(), SessionState::Connected);

        // When the ensemble's leader dies every member drops its clients until a new
        // leader is elected; the session outlives the election.
        let ensemble_leader = servers.leader().await.context("no member leads")?;
        let killed_leader = Instant::now();
        servers.kill(ensemble_leader);
        wait_for_state(&zk, SessionState::Disconnected, Duration::from_secs(2)).await?;
        wait_for_state(&zk, SessionState::Connected, Duration::from_secs(8)).await?;
        eprintln!(
            "session back after the ensemble leader died in {:?}",
            killed_leader.elapsed()
        );
        assert_eq!(zk.session_id(), session_id);
        assert!(zk.exists(&leader).await?.is_some());
        servers.restart(ensemble_leader).await?;
        assert_eq!(log.first(SessionState::Expired, killed), None);

        // With every server gone, the session is reported expired within its timeout.
        let timeout_granted = zk.session_timeout();
        let gone = Instant::now();
        servers.kill_all();
        let expired_after = wait_for_state(&zk, SessionState::Expired, timeout_granted + Duration::from_secs(2)).await?;
        assert!(expired_after >= timeout_granted / 2, "expired after only {expired_after:?}");
        eprintln!("expired {:?} after the last server died", gone.elapsed());
        assert_eq!(zk.exists("/mantle").await, Err(Error::SessionExpired));
        assert_eq!(
            log.states(),
            vec![
                SessionState::Connected,
                SessionState::Disconnected,
                SessionState::Connected,
                SessionState::Disconnected,
                SessionState::Connected,
                SessionState::Disconnected,
                SessionState::Expired
            ]
        );
        Ok(())
    })
    .await
}
