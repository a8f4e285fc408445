//! A loopback TCP proxy in front of one ZooKeeper server, so a test can stall a client's
//! connection (bytes stop flowing, nothing is closed), cut it (closed, new connections
//! refused) and restore it, while the server itself keeps running.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use mantle_zk::Server;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::{AbortHandle, JoinHandle};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    Forward,
    Stall,
    Refuse,
}

pub struct Proxy {
    addr: SocketAddr,
    mode: watch::Sender<Mode>,
    connections: Arc<Mutex<Vec<AbortHandle>>>,
    accept: JoinHandle<()>,
}

impl Proxy {
    pub async fn start(upstream: Server) -> anyhow::Result<Proxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (mode, mode_rx) = watch::channel(Mode::Forward);
        let connections: Arc<Mutex<Vec<AbortHandle>>> = Arc::default();
        let tracked = connections.clone();
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                if *mode_rx.borrow() == Mode::Refuse {
                    drop(client);
                    continue;
                }
                let Ok(server) = TcpStream::connect((upstream.host.as_str(), upstream.port)).await
                else {
                    continue;
                };
                let (client_read, client_write) = client.into_split();
                let (server_read, server_write) = server.into_split();
                let mut handles = tracked.lock().unwrap();
                for (from, to) in [
                    (
                        Box::new(client_read) as Box<dyn AsyncReadUnpin>,
                        Box::new(server_write) as Box<dyn AsyncWriteUnpin>,
                    ),
                    (Box::new(server_read), Box::new(client_write)),
                ] {
                    let task = tokio::spawn(pump(from, to, mode_rx.clone()));
                    handles.push(task.abort_handle());
                }
            }
        });
        Ok(Proxy {
            addr,
            mode,
            connections,
            accept,
        })
    }

    /// The address clients connect to.
    pub fn server(&self) -> Server {
        Server {
            host: self.addr.ip().to_string(),
            port: self.addr.port(),
        }
    }

    /// Stops moving bytes in both directions; connections stay open.
    pub fn stall(&self) {
        self.mode.send_replace(Mode::Stall);
    }

    /// Closes every connection and refuses new ones.
    pub fn cut(&self) {
        self.mode.send_replace(Mode::Refuse);
        for handle in self.connections.lock().unwrap().drain(..) {
            handle.abort();
        }
    }

    /// Forwards again.
    pub fn restore(&self) {
        self.mode.send_replace(Mode::Forward);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        for handle in self.connections.lock().unwrap().drain(..) {
            handle.abort();
        }
    }
}

trait AsyncReadUnpin: tokio::io::AsyncRead + Unpin + Send {}
impl<T: tokio::io::AsyncRead + Unpin + Send> AsyncReadUnpin for T {}
trait AsyncWriteUnpin: tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncWrite + Unpin + Send> AsyncWriteUnpin for T {}

/// Copies one direction, holding each chunk while the proxy stalls.
async fn pump(
    mut from: Box<dyn AsyncReadUnpin>,
    mut to: Box<dyn AsyncWriteUnpin>,
    mut mode: watch::Receiver<Mode>,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if mode.wait_for(|m| *m == Mode::Forward).await.is_err() {
            return;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}
