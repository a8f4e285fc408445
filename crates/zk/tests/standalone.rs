//! The client against one real ZooKeeper server: node operations and their version
//! checks, watches, ephemeral sequential nodes and leader election, multi, digest
//! credentials, and the session's end.

mod common;

use std::time::Duration;

use anyhow::Context;
use common::{bounded, StateLog};
use mantle_zk::testing::ZkServers;
use mantle_zk::{
    Client, CreateMode, Credentials, Error, EventType, Op, OpResult, Options, SessionState,
    WatchedEvent, ZkUrl, MAX_DATA_LEN,
};
use tokio::time::{timeout, Instant};

const LIMIT: Duration = Duration::from_secs(120);

async fn client(url: &ZkUrl) -> anyhow::Result<Client> {
    let options = Options::default().session_timeout(Duration::from_secs(4));
    Ok(Client::connect(url, options).await?)
}

fn event(event_type: EventType, path: &str) -> WatchedEvent {
    WatchedEvent {
        event_type,
        path: path.to_string(),
    }
}

/// Waits for a watch, failing the test rather than hanging on it.
async fn fired(watch: mantle_zk::Watch) -> anyhow::Result<WatchedEvent> {
    Ok(timeout(Duration::from_secs(10), watch)
        .await
        .context("watch did not fire within 10s")??)
}

#[tokio::test]
async fn create_read_update_delete_with_versions() -> anyhow::Result<()> {
    require_zookeeper!("create_read_update_delete_with_versions");
    bounded(LIMIT, async {
        let servers = ZkServers::standalone().await?;
        let zk = client(&servers.url("/")).await?;
        assert_eq!(zk.state(), SessionState::Connected);
        assert_eq!(zk.session_timeout(), Duration::from_secs(4));
        assert_ne!(zk.session_id(), 0);

        assert_eq!(
            zk.create("/crud", b"v0", CreateMode::Persistent).await?,
            "/crud"
        );
        assert_eq!(
            zk.create("/crud", b"again", CreateMode::Persistent).await,
            Err(Error::NodeExists {
                path: "/crud".into()
            })
        );
        let (data, stat) = zk.get_data("/crud").await?;
        assert_eq!(
            (data.as_slice(), stat.version, stat.ephemeral_owner),
            (&b"v0"[..], 0, 0)
        );

        let stat = zk.set_data("/crud", b"v1", Some(0)).await?;
        assert_eq!(stat.version, 1);
        assert_eq!(
            zk.set_data("/crud", b"lost update", Some(0)).await,
            Err(Error::BadVersion {
                path: "/crud".into()
            })
        );
        assert_eq!(zk.set_data("/crud", b"v2", None).await?.version, 2);
        assert_eq!(zk.get_data("/crud").await?.0, b"v2");

        zk.create("/crud/child", b"", CreateMode::Persistent)
            .await?;
        assert_eq!(zk.get_children("/crud").await?, vec!["child"]);
        assert_eq!(
            zk.delete("/crud", None).await,
            Err(Error::NotEmpty {
                path: "/crud".into()
            })
        );
        zk.delete("/crud/child", Some(0)).await?;
        assert_eq!(
            zk.delete("/crud", Some(1)).await,
            Err(Error::BadVersion {
                path: "/crud".into()
            })
        );
        zk.delete("/crud", Some(2)).await?;
        assert_eq!(zk.exists("/crud").await?, None);
        assert_eq!(
            zk.get_data("/crud").await,
            Err(Error::NoNode {
                path: "/crud".into()
            })
        );
        assert_eq!(
            zk.delete("/crud", None).await,
            Err(Error::NoNode {
                path: "/crud".into()
            })
        );
        assert_eq!(
            zk.create("/missing/child", b"", CreateMode::Persistent)
                .await,
            Err(Error::NoNode {
                path: "/missing/child".into()
            })
        );

        // Parents on demand, and a path that already exists is fine.
        assert_eq!(
            zk.create_all("/a/b/c", b"deep", CreateMode::Persistent)
                .await?,
            "/a/b/c"
        );
        assert_eq!(zk.get_data("/a/b/c").await?.0, b"deep");
        zk.ensure_path("/a/b/c").await?;
        zk.ensure_path("/a/x/y").await?;
        assert_eq!(zk.get_data("/a/b/c").await?.0, b"deep");
        let mut children = zk.get_children("/a").await?;
        children.sort();
        assert_eq!(children, vec!["b", "x"]);

        assert_eq!(
            zk.create_all("/seq/dir/", b"", CreateMode::PersistentSequential)
                .await?,
            "/seq/dir/0000000000"
        );

        zk.create("/eph", b"", CreateMode::Ephemeral).await?;
        assert_eq!(
            zk.exists("/eph").await?.map(|s| s.ephemeral_owner),
            Some(zk.session_id())
        );
        assert_eq!(
            zk.create("/eph/x", b"", CreateMode::Persistent).await,
            Err(Error::NoChildrenForEphemerals {
                path: "/eph/x".into()
            })
        );

        // Bad paths never reach the server.
        assert!(matches!(
            zk.get_data("relative").await,
            Err(Error::InvalidPath {
                reason: "must start with /",
                ..
            })
        ));

        // The largest value this client sends goes through; one byte more is refused
        // before it could make the server drop the connection.
        let big = vec![b'x'; MAX_DATA_LEN];
        zk.create("/big", &big, CreateMode::Persistent).await?;
        let (data, stat) = zk.get_data("/big").await?;
        assert_eq!(
            (data.len(), stat.data_length as usize),
            (MAX_DATA_LEN, MAX_DATA_LEN)
        );
        let too_big = vec![b'x'; MAX_DATA_LEN + 1];
        assert!(matches!(
            zk.set_data("/big", &too_big, None).await,
            Err(Error::TooLarge { what: "data", .. })
        ));
        assert_eq!(zk.state(), SessionState::Connected);

        zk.close().await;
        assert_eq!(zk.state(), SessionState::Closed);
        assert_eq!(zk.exists("/a").await, Err(Error::Closed));
        Ok(())
    })
    .await
}

#[tokio::test]
async fn watches_fire_on_data_and_children_changes() -> anyhow::Result<()> {
    require_zookeeper!("watches_fire_on_data_and_children_changes");
    bounded(LIMIT, async {
        let servers = ZkServers::standalone().await?;
        let url = servers.url("/");
        let watcher = client(&url).await?;
        let writer = client(&url).await?;

        let (stat, created) = watcher.exists_watch("/w").await?;
        assert_eq!(stat, None);
        writer.create("/w", b"0", CreateMode::Persistent).await?;
        assert_eq!(fired(created).await?, event(EventType::NodeCreated, "/w"));

        let (data, _, changed) = watcher.get_data_watch("/w").await?;
        assert_eq!(data, b"0");
        let (_, exists_changed) = watcher.exists_watch("/w").await?;
        writer.set_data("/w", b"1", None).await?;
        assert_eq!(
            fired(changed).await?,
            event(EventType::NodeDataChanged, "/w")
        );
        assert_eq!(
            fired(exists_changed).await?,
            event(EventType::NodeDataChanged, "/w")
        );

        let (children, children_changed) = watcher.get_children_watch("/w").await?;
        assert!(children.is_empty());
        writer.create("/w/c", b"", CreateMode::Persistent).await?;
        assert_eq!(
            fired(children_changed).await?,
            event(EventType::NodeChildrenChanged, "/w")
        );

        let (_, _, child_deleted) = watcher.get_data_watch("/w/c").await?;
        let (children, children_changed) = watcher.get_children_watch("/w").await?;
        assert_eq!(children, vec!["c"]);
        writer.delete("/w/c", None).await?;
        assert_eq!(
            fired(child_deleted).await?,
            event(EventType::NodeDeleted, "/w/c")
        );
        assert_eq!(
            fired(children_changed).await?,
            event(EventType::NodeChildrenChanged, "/w")
        );

        // A read that fails sets no watch; a watch pending when the client closes ends.
        assert!(watcher.get_data_watch("/nothing").await.is_err());
        let (_, _, pending) = watcher.get_data_watch("/w").await?;
        watcher.close().await;
        assert_eq!(
            timeout(Duration::from_secs(10), pending).await?,
            Err(Error::Closed)
        );
        Ok(())
    })
    .await
}

#[tokio::test]
async fn ephemeral_sequential_nodes_are_numbered_and_vanish_with_their_session(
) -> anyhow::Result<()> {
    require_zookeeper!("ephemeral_sequential_nodes_are_numbered_and_vanish_with_their_session");
    bounded(LIMIT, async {
        let servers = ZkServers::standalone().await?;
        let url = servers.url("/");
        let owner = client(&url).await?;
        let observer = client(&url).await?;
        owner.ensure_path("/group").await?;

        // The sequence number is the parent's count of child changes: 0 for the first
        // child of a new node, then 1, whoever creates them.
        let first = owner
            .create("/group/json.info_", b"a", CreateMode::EphemeralSequential)
            .await?;
        let second = owner
            .create("/group/json.info_", b"b", CreateMode::EphemeralSequential)
            .await?;
        assert_eq!(first, "/group/json.info_0000000000");
        assert_eq!(second, "/group/json.info_0000000001");
        let third = observer
            .create("/group/seq-", b"", CreateMode::PersistentSequential)
            .await?;
        assert_eq!(third, "/group/seq-0000000002");

        let (mut children, changed) = observer.get_children_watch("/group").await?;
        children.sort();
        assert_eq!(
            children,
            vec![
                "json.info_0000000000",
                "json.info_0000000001",
                "seq-0000000002"
            ]
        );
        let stat = observer
            .exists(&first)
            .await?
            .context("first node missing")?;
        assert_eq!(stat.ephemeral_owner, owner.session_id());

        owner.close().await;
        assert_eq!(
            fired(changed).await?,
            event(EventType::NodeChildrenChanged, "/group")
        );
        assert_eq!(
            observer.get_children("/group").await?,
            vec!["seq-0000000002"]
        );
        assert_eq!(observer.exists(&first).await?, None);
        assert_eq!(owner.state(), SessionState::Closed);
        Ok(())
    })
    .await
}

#[tokio::test]
async fn the_lowest_sequence_number_among_sessions_leads() -> anyhow::Result<()> {
    require_zookeeper!("the_lowest_sequence_number_among_sessions_leads");
    bounded(LIMIT, async {
        let servers = ZkServers::standalone().await?;
        let url = servers.url("/mantle");
        let mut candidates = Vec::new();
        for i in 0..3 {
            let zk = client(&url).await?;
            let info = format!("{{\"id\":\"master-{i}\"}}");
            let node = zk
                .create_all(
                    "/mantle/json.info_",
                    info.as_bytes(),
                    CreateMode::EphemeralSequential,
                )
                .await?;
            candidates.push((zk, node));
        }
        let observer = client(&url).await?;

        // What every Mesos detector does: the lowest sequence number leads.
        let leader = |children: Vec<String>| {
            children
                .into_iter()
                .filter(|c| c.starts_with("json.info_"))
                .min()
        };
        let (children, _) = observer.get_children_watch("/mantle").await?;
        let first_leader = leader(children).context("no candidate")?;
        assert_eq!(format!("/mantle/{first_leader}"), candidates[0].1);
        let (data, _) = observer.get_data(&candidates[0].1).await?;
        assert_eq!(data, br#"{"id":"master-0"}"#);

        // The next candidate watches the node just below its own; the leader's session
        // ends and the watch tells it that it leads now.
        let (stat, predecessor_gone) = candidates[1].0.exists_watch(&candidates[0].1).await?;
        assert!(stat.is_some());
        candidates[0].0.close().await;
        assert_eq!(
            fired(predecessor_gone).await?,
            event(EventType::NodeDeleted, &candidates[0].1)
        );
        let next_leader =
            leader(observer.get_children("/mantle").await?).context("no candidate")?;
        assert_eq!(format!("/mantle/{next_leader}"), candidates[1].1);
        Ok(())
    })
    .await
}

#[tokio::test]
async fn multi_applies_everything_or_nothing() -> anyhow::Result<()> {
    require_zookeeper!("multi_applies_everything_or_nothing");
    bounded(LIMIT, async {
        let servers = ZkServers::standalone().await?;
        let zk = client(&servers.url("/")).await?;
        zk.ensure_path("/m").await?;
        zk.create("/m/leader", b"", CreateMode::Ephemeral).await?;
        zk.create("/m/registry", b"r0", CreateMode::Persistent).await?;
        zk.create("/m/old", b"", CreateMode::Persistent).await?;

        let results = zk
            .multi(&[
                Op::check("/m/leader", None),
                Op::set_data("/m/registry", b"r1".to_vec(), Some(0)),
                Op::create("/m/new", b"n".to_vec(), CreateMode::Persistent),
                Op::delete("/m/old", None),
            ])
            .await?;
        assert_eq!(results[0], OpResult::Check);
        assert!(matches!(results[1], OpResult::SetData { stat } if stat.version == 1));
        assert_eq!(results[2], OpResult::Create { path: "/m/new".into() });
        assert_eq!(results[3], OpResult::Delete);
        assert_eq!(zk.get_data("/m/registry").await?.0, b"r1");
        assert_eq!(zk.exists("/m/old").await?, None);

        // A failed check applies nothing, and the error says which operation failed.
        let failed = zk
            .multi(&[
                Op::check("/m/registry", Some(0)),
                Op::set_data("/m/registry", b"r2".to_vec(), None),
                Op::create("/m/another", b"".to_vec(), CreateMode::Persistent),
                Op::delete("/m/new", None),
            ])
            .await;
        assert_eq!(
            failed,
            Err(Error::Multi {
                index: 0,
                source: Box::new(Error::BadVersion { path: "/m/registry".into() })
            })
        );
        assert_eq!(zk.get_data("/m/registry").await?.0, b"r1");
        assert_eq!(zk.exists("/m/another").await?, None);
        assert!(zk.exists("/m/new").await?.is_some());

        // A failure in the middle undoes the operations before it.
        let failed = zk
            .multi(&[
                Op::set_data("/m/registry", b"r2".to_vec(), None),
                Op::create("/m/new", b"".to_vec(), CreateMode::Persistent),
            ])
            .await;
        assert!(matches!(failed, Err(Error::Multi { index: 1, ref source }) if **source == Error::NodeExists { path: "/m/new".into() }));
        assert_eq!(zk.get_data("/m/registry").await?.0, b"r1");

        // The registry write of a master that lost its leader node does not land.
        zk.delete("/m/leader", None).await?;
        let failed = zk
            .multi(&[
                Op::check("/m/leader", None),
                Op::set_data("/m/registry", b"r3".to_vec(), Some(1)),
            ])
            .await;
        assert_eq!(
            failed,
            Err(Error::Multi {
                index: 0,
                source: Box::new(Error::NoNode { path: "/m/leader".into() })
            })
        );
        assert_eq!(zk.get_data("/m/registry").await?.0, b"r1");
        Ok(())
    })
    .await
}

#[tokio::test]
async fn digest_credentials_give_the_creator_everything_and_others_reading() -> anyhow::Result<()> {
    require_zookeeper!("digest_credentials_give_the_creator_everything_and_others_reading");
    bounded(LIMIT, async {
        let servers = ZkServers::standalone().await?;
        let mut url = servers.url("/");
        url.credentials = Some(Credentials {
            user: "mantle".into(),
            password: "secret".into(),
        });
        let owner = client(&url).await?;
        owner
            .create("/secure", b"s", CreateMode::Persistent)
            .await?;
        owner.set_data("/secure", b"s1", None).await?;
        owner
            .create("/secure/child", b"", CreateMode::Persistent)
            .await?;

        let anonymous = client(&servers.url("/")).await?;
        assert_eq!(anonymous.get_data("/secure").await?.0, b"s1");
        assert_eq!(
            anonymous.set_data("/secure", b"x", None).await,
            Err(Error::NoAuth {
                path: "/secure".into()
            })
        );
        assert_eq!(
            anonymous
                .create("/secure/other", b"", CreateMode::Persistent)
                .await,
            Err(Error::NoAuth {
                path: "/secure/other".into()
            })
        );

        let mut other_url = servers.url("/");
        other_url.credentials = Some(Credentials {
            user: "mantle".into(),
            password: "wrong".into(),
        });
        let other = client(&other_url).await?;
        assert_eq!(
            other.delete("/secure/child", None).await,
            Err(Error::NoAuth {
                path: "/secure/child".into()
            })
        );

        // Another session with the same credentials is the same identity.
        let same = client(&url).await?;
        same.delete("/secure/child", None).await?;
        Ok(())
    })
    .await
}

#[tokio::test]
async fn pings_keep_an_idle_session_which_expires_when_no_server_answers() -> anyhow::Result<()> {
    require_zookeeper!("pings_keep_an_idle_session_which_expires_when_no_server_answers");
    bounded(LIMIT, async {
        let mut servers = ZkServers::standalone().await?;
        let options = Options::default()
            .session_timeout(Duration::from_secs(2))
            .request_timeout(Duration::from_secs(10));
        let zk = Client::connect(&servers.url("/"), options).await?;
        let timeout_granted = zk.session_timeout();
        assert_eq!(timeout_granted, Duration::from_secs(2));
        zk.create("/e", b"", CreateMode::Persistent).await?;
        zk.create("/e/lease", b"", CreateMode::Ephemeral).await?;
        let (_, _, watch) = zk.get_data_watch("/e").await?;
        let log = StateLog::record(&zk);

        // Idle for more than two timeouts: pings keep the session.
        tokio::time::sleep(timeout_granted * 5 / 2).await;
        assert_eq!(log.states(), vec![SessionState::Connected]);
        let observer = client(&servers.url("/")).await?;
        assert!(observer.exists("/e/lease").await?.is_some());
        drop(observer);

        let killed = Instant::now();
        servers.kill(0);
        common::wait_for_state(&zk, SessionState::Disconnected, Duration::from_secs(1)).await?;
        // A request made while disconnected waits, then fails with the session.
        let waiting = tokio::spawn({
            let zk = zk.clone();
            async move { zk.get_data("/e").await }
        });
        common::wait_for_state(&zk, SessionState::Expired, Duration::from_secs(10)).await?;
        let expired_after = killed.elapsed();
        let disconnected = log
            .first(SessionState::Disconnected, killed)
            .context("no Disconnected")?;
        assert!(disconnected.duration_since(killed) < Duration::from_secs(1));
        // Expiry counts from the last answered ping, sent at most a third of the
        // timeout before the kill.
        assert!(
            expired_after >= timeout_granted / 2
                && expired_after <= timeout_granted + Duration::from_secs(1),
            "expired {expired_after:?} after the server died, with a {timeout_granted:?} timeout"
        );
        assert_eq!(waiting.await?, Err(Error::SessionExpired));
        assert_eq!(
            timeout(Duration::from_secs(1), watch).await?,
            Err(Error::SessionExpired)
        );
        assert_eq!(zk.exists("/e").await, Err(Error::SessionExpired));
        assert_eq!(
            log.states(),
            vec![
                SessionState::Connected,
                SessionState::Disconnected,
                SessionState::Expired
            ]
        );
        Ok(())
    })
    .await
}
