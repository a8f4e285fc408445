//! Connection trouble between one client and a live server, made with a proxy: a lost
//! connection fails the requests on it and the session carries on over a new one with
//! its watches; a session the server ended is reported expired as soon as the client
//! reaches the server again.

mod common;

use std::time::Duration;

use anyhow::Context;
use common::proxy::Proxy;
use common::{bounded, wait_for_state, StateLog};
use mantle_zk::testing::ZkServers;
use mantle_zk::{Client, CreateMode, Error, EventType, Options, SessionState, ZkUrl};
use tokio::time::{sleep, timeout, Instant};

const LIMIT: Duration = Duration::from_secs(120);

fn url_via(proxy: &Proxy) -> ZkUrl {
    ZkUrl {
        servers: vec![proxy.server()],
        path: "/".into(),
        credentials: None,
    }
}

#[tokio::test]
async fn a_lost_connection_fails_its_requests_and_the_session_carries_on() -> anyhow::Result<()> {
    require_zookeeper!("a_lost_connection_fails_its_requests_and_the_session_carries_on");
    bounded(LIMIT, async {
        let servers = ZkServers::standalone().await?;
        let proxy = Proxy::start(servers.server(0)).await?;
        let options = Options::default().session_timeout(Duration::from_secs(6));
        let zk = Client::connect(&url_via(&proxy), options).await?;
        let direct = Client::connect(&servers.url("/"), Options::default()).await?;
        let session_id = zk.session_id();
        zk.create("/lease", b"", CreateMode::Ephemeral).await?;
        zk.create("/config", b"0", CreateMode::Persistent).await?;
        let (_, _, config_changed) = zk.get_data_watch("/config").await?;
        let (_, appeared) = zk.exists_watch("/later").await?;
        let log = StateLog::record(&zk);

        // A request stuck on a stalled connection fails as soon as the connection
        // breaks, without waiting for its own timeout.
        proxy.stall();
        let stuck = tokio::spawn({
            let zk = zk.clone();
            async move { zk.get_data("/config").await }
        });
        sleep(Duration::from_millis(300)).await;
        assert!(!stuck.is_finished());
        let cut = Instant::now();
        proxy.cut();
        let result = timeout(Duration::from_secs(2), stuck).await??;
        assert!(
            matches!(result, Err(Error::ConnectionLoss(_))),
            "{result:?}"
        );
        wait_for_state(&zk, SessionState::Disconnected, Duration::from_secs(1)).await?;

        // Changes while the client is away reach its watches after the reconnection.
        direct.set_data("/config", b"1", None).await?;
        direct.create("/later", b"", CreateMode::Persistent).await?;
        // Requests made while disconnected wait for the connection.
        let queued = tokio::spawn({
            let zk = zk.clone();
            async move { zk.get_data("/config").await }
        });
        sleep(Duration::from_millis(500)).await;
        proxy.restore();
        wait_for_state(&zk, SessionState::Connected, Duration::from_secs(4)).await?;
        assert!(cut.elapsed() < zk.session_timeout());
        assert_eq!(
            timeout(Duration::from_secs(5), queued)
                .await??
                .map(|(d, _)| d),
            Ok(b"1".to_vec())
        );
        assert_eq!(zk.session_id(), session_id);
        let event = timeout(Duration::from_secs(5), config_changed).await??;
        assert_eq!(event.event_type, EventType::NodeDataChanged);
        let event = timeout(Duration::from_secs(5), appeared).await??;
        assert_eq!(event.event_type, EventType::NodeCreated);
        let lease = direct
            .exists("/lease")
            .await?
            .context("the ephemeral node went")?;
        assert_eq!(lease.ephemeral_owner, session_id);
        assert_eq!(
            log.states(),
            vec![
                SessionState::Connected,
                SessionState::Disconnected,
                SessionState::Connected
            ]
        );
        Ok(())
    })
    .await
}

#[tokio::test]
async fn a_session_the_server_ended_is_reported_expired_on_reconnection() -> anyhow::Result<()> {
    require_zookeeper!("a_session_the_server_ended_is_reported_expired_on_reconnection");
    bounded(LIMIT, async {
        let servers = ZkServers::standalone().await?;
        let proxy = Proxy::start(servers.server(0)).await?;
        // The longest timeout the test servers grant, so that the client cannot
        // decide on its own that the session is gone.
        let options = Options::default().session_timeout(Duration::from_secs(10));
        let zk = Client::connect(&url_via(&proxy), options).await?;
        zk.create("/lease", b"", CreateMode::Ephemeral).await?;
        let log = StateLog::record(&zk);

        proxy.cut();
        wait_for_state(&zk, SessionState::Disconnected, Duration::from_secs(2)).await?;
        // Another client takes the session over and closes it: the server deletes its
        // ephemeral nodes and forgets it.
        let thief = Client::connect(
            &servers.url("/"),
            Options::default().resume(zk.session_credentials()),
        )
        .await?;
        assert_eq!(thief.session_id(), zk.session_id());
        thief.close().await;
        let observer = Client::connect(&servers.url("/"), Options::default()).await?;
        assert_eq!(observer.exists("/lease").await?, None);

        let restored = Instant::now();
        proxy.restore();
        wait_for_state(&zk, SessionState::Expired, Duration::from_secs(5)).await?;
        assert!(restored.elapsed() < Duration::from_secs(5));
        assert_eq!(
            zk.create("/x", b"", CreateMode::Persistent).await,
            Err(Error::SessionExpired)
        );
        assert_eq!(
            log.states(),
            vec![
                SessionState::Connected,
                SessionState::Disconnected,
                SessionState::Expired
            ]
        );

        // Resuming an expired session is refused outright.
        let again = Client::connect(
            &servers.url("/"),
            Options::default().resume(zk.session_credentials()),
        )
        .await;
        assert_eq!(again.err(), Some(Error::SessionExpired));
        Ok(())
    })
    .await
}
