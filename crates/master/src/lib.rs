//! The Mantle master: the pure core (`core`), and the async shell around it (the event
//! loop and the HTTP routes for the scheduler API, the agent protocol and the legacy
//! JSON endpoints).

mod agent_socket;
pub mod core;
pub mod event_loop;
pub mod http;
pub mod leadership;
mod legacy;
mod operator;
mod operator_api;
mod prometheus;
pub mod serve;
pub mod snapshot;
pub mod store;
mod stream_queue;
mod webui;

use crate::core::{Master, MasterConfig};
use crate::event_loop::EventLoop;
use crate::leadership::{Role, RoleHandle};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::sync::watch;

/// `--zk` and its session timeout: several masters elect a leader through ZooKeeper.
#[derive(Clone, Debug)]
pub struct HaConfig {
    pub zk: mantle_zk::ZkUrl,
    pub session_timeout: Duration,
}

/// A master running inside this process.
pub struct MasterHandle {
    address: SocketAddr,
    ha: bool,
    shutdown: watch::Sender<bool>,
    server: tokio::task::JoinHandle<()>,
    /// The event loop (a single master), or the leadership supervisor (with `--zk`).
    event_loop: tokio::task::JoinHandle<()>,
}

impl MasterHandle {
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        if self.ha {
            // The supervisor runs until aborted; its leader loop ends with it.
            self.event_loop.abort();
        }
        let _ = self.event_loop.await;
        self.server.abort();
        let _ = self.server.await;
    }
}

/// Connections the kernel queues until the master accepts them (capped by
/// `net.core.somaxconn`). Thousands of agents re-register at once after a failover, and a
/// connection that finds the queue full is retried only a second later.
const LISTEN_BACKLOG: u32 = 4096;

fn listen(address: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    // A restarted master takes its port back while old connections are in TIME_WAIT.
    socket.set_reuseaddr(true)?;
    socket.bind(address)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Binds `config.ip:config.port` (port 0 picks a free one), starts the event loop and the
/// HTTP server, and returns once the master accepts connections.
pub async fn start(
    config: MasterConfig,
    allocation_interval: Duration,
) -> anyhow::Result<MasterHandle> {
    start_ha(config, allocation_interval, None).await
}

/// Like [`start`]; with `ha`, the master contends for leadership through ZooKeeper and
/// runs an event loop only while it leads (`leadership.rs`).
pub async fn start_ha(
    mut config: MasterConfig,
    allocation_interval: Duration,
    ha: Option<HaConfig>,
) -> anyhow::Result<MasterHandle> {
    let listener = listen(SocketAddr::from((config.ip, config.port)))
        .map_err(|e| anyhow::anyhow!("cannot listen on {}:{}: {e}", config.ip, config.port))?;
    let address = listener.local_addr()?;
    config.port = address.port();
    config
        .flags
        .insert("port".into(), address.port().to_string());
    let advertised = format!("{}:{}", config.hostname, config.port);
    let flags = std::sync::Arc::new(config.flags.clone());
    let (shutdown, shutdown_rx) = watch::channel(false);
    let (role_tx, role) = watch::channel(Role::Following(None));
    let event_loop = match &ha {
        Some(ha) => {
            tracing::info!(zk = %ha.zk, address = %address, "master started; contending for leadership");
            tokio::spawn(leadership::supervise(
                config,
                allocation_interval,
                ha.zk.clone(),
                ha.session_timeout,
                role_tx,
            ))
        }
        None => {
            let id = uuid::Uuid::new_v4().to_string();
            let work_dir = config.work_dir.clone();
            let mut core = Master::new(id.clone(), config, event_loop::unix_now());
            if let Some(dir) = &work_dir {
                core.restore_policy(store::load(dir)?);
                core.recover_registry(event_loop::unix_now(), store::load_registry(dir)?);
            }
            let store =
                work_dir.map(|dir| Box::new(store::FileStore::new(dir)) as Box<dyn store::Store>);
            let (event_loop, handle) = EventLoop::new(core, allocation_interval, store);
            role_tx.send_replace(Role::Leading(handle));
            tracing::info!(master_id = %id, address = %address, "master started");
            let running = event_loop.spawn(shutdown_rx.clone());
            // The role sender lives as long as the loop: the HTTP layer keeps reading it.
            tokio::spawn(async move {
                let _ = running.await;
                drop(role_tx);
            })
        }
    };
    let app = http::router(http::AppState {
        handle: RoleHandle::new(role),
        advertised,
        started: event_loop::unix_now(),
        flags,
    });
    let mut server_shutdown = shutdown_rx;
    let server = tokio::spawn(serve::serve(listener, app, async move {
        let _ = server_shutdown.changed().await;
    }));
    Ok(MasterHandle {
        address,
        ha: ha.is_some(),
        shutdown,
        server,
        event_loop,
    })
}
