//! The Mantle master: the pure core (`core`), and the async shell around it (the event
//! loop and the HTTP routes for the scheduler API, the agent protocol and the legacy
//! JSON endpoints).

pub mod core;
pub mod event_loop;
pub mod http;
mod operator;
pub mod store;

use crate::core::{Master, MasterConfig};
use crate::event_loop::EventLoop;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::sync::watch;

/// A master running inside this process.
pub struct MasterHandle {
    address: SocketAddr,
    shutdown: watch::Sender<bool>,
    server: tokio::task::JoinHandle<()>,
    event_loop: tokio::task::JoinHandle<()>,
}

impl MasterHandle {
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
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
    mut config: MasterConfig,
    allocation_interval: Duration,
) -> anyhow::Result<MasterHandle> {
    let listener = listen(SocketAddr::from((config.ip, config.port)))
        .map_err(|e| anyhow::anyhow!("cannot listen on {}:{}: {e}", config.ip, config.port))?;
    let address = listener.local_addr()?;
    config.port = address.port();
    config
        .flags
        .insert("port".into(), address.port().to_string());
    let advertised = format!("{}:{}", config.hostname, config.port);
    let id = uuid::Uuid::new_v4().to_string();
    let work_dir = config.work_dir.clone();
    let mut core = Master::new(id.clone(), config, event_loop::unix_now());
    if let Some(dir) = &work_dir {
        core.restore_policy(store::load(dir)?);
        core.recover_registry(event_loop::unix_now(), store::load_registry(dir)?);
    }
    let (event_loop, handle) = EventLoop::new(core, allocation_interval, work_dir);
    let (shutdown, shutdown_rx) = watch::channel(false);
    let event_loop = tokio::spawn(event_loop.run(shutdown_rx.clone()));
    let app = http::router(http::AppState { handle, advertised });
    let mut server_shutdown = shutdown_rx;
    let server = tokio::spawn(async move {
        let result = axum::serve(
            listener,
            axum::ServiceExt::<axum::extract::Request>::into_make_service(app),
        )
        .with_graceful_shutdown(async move {
            let _ = server_shutdown.changed().await;
        })
        .await;
        if let Err(err) = result {
            tracing::error!(error = %err, "master http server failed");
        }
    });
    tracing::info!(master_id = %id, address = %address, "master started");
    Ok(MasterHandle {
        address,
        shutdown,
        server,
        event_loop,
    })
}
