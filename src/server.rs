//! Starting and stopping a whole Cascade server: media workers plus the HTTP
//! control plane. `main` only parses flags and calls [`start`]; tests call it
//! with [`Config::loopback`] and ephemeral ports.

use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;

use tokio::net::TcpListener;
use tokio::sync::oneshot;

use crate::config::Config;
use crate::media::CoreConfig;
use crate::signal::{self, AppState, Directory};
use crate::worker::{self, Command, WorkerHandle, WorkerStartError};

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot listen for HTTP on {addr}: {source} (is another server using the port?)")]
    Http {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Worker(#[from] WorkerStartError),
}

/// A running server.
pub struct Server {
    http_addr: SocketAddr,
    workers: Arc<[WorkerHandle]>,
    threads: Vec<JoinHandle<()>>,
    stop_http: oneshot::Sender<()>,
    http: tokio::task::JoinHandle<()>,
}

/// Binds everything `config` asks for and starts serving.
pub async fn start(config: Config) -> Result<Server, StartError> {
    let listener = TcpListener::bind(config.http_addr)
        .await
        .map_err(|source| StartError::Http {
            addr: config.http_addr,
            source,
        })?;
    let http_addr = listener.local_addr().map_err(|source| StartError::Http {
        addr: config.http_addr,
        source,
    })?;

    let mut handles = Vec::with_capacity(config.workers);
    let mut threads = Vec::with_capacity(config.workers);
    for index in 0..config.workers {
        let port = match config.media_port {
            0 => 0,
            base => base + index as u16,
        };
        let bind = SocketAddr::new(config.media_addr, port);
        let core_config = |candidate_addr| CoreConfig {
            connect_timeout: config.connect_timeout,
            disconnect_grace: config.disconnect_grace,
            ..CoreConfig::new(candidate_addr)
        };
        let (handle, thread) = match worker::spawn(index, bind, config.public_ip, core_config) {
            Ok(started) => started,
            Err(e) => {
                stop_workers(&handles, threads);
                return Err(e.into());
            }
        };
        handles.push(handle);
        threads.push(thread);
    }
    let workers: Arc<[WorkerHandle]> = handles.into();
    let state = AppState {
        workers: workers.clone(),
        directory: Arc::new(Directory::new(config.workers)),
    };
    let (stop_http, stopped) = oneshot::channel::<()>();
    let workers_for_shutdown = workers.clone();
    let http = tokio::spawn(async move {
        let app = signal::app(state);
        let shutdown = async move {
            let _ = stopped.await;
            // Workers remove every participant, which ends their WebSocket
            // sessions, which lets the graceful shutdown finish.
            for w in workers_for_shutdown.iter() {
                let _ = w.commands.send(Command::Shutdown).await;
            }
        };
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
        {
            tracing::error!(error = %e, "http server failed");
        }
    });
    tracing::info!(%http_addr, workers = config.workers, "cascade is listening");
    Ok(Server {
        http_addr,
        workers,
        threads,
        stop_http,
        http,
    })
}

impl Server {
    /// The bound HTTP address (useful with port 0).
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// The media workers (their candidate addresses, command queues).
    pub fn workers(&self) -> &[WorkerHandle] {
        &self.workers
    }

    /// Stops accepting, removes every participant and joins the workers.
    pub async fn shutdown(self) {
        let _ = self.stop_http.send(());
        let _ = self.http.await;
        stop_workers(&self.workers, self.threads);
    }
}

fn stop_workers(handles: &[WorkerHandle], threads: Vec<JoinHandle<()>>) {
    for h in handles {
        let _ = h.commands.try_send(Command::Shutdown);
    }
    for t in threads {
        let _ = t.join();
    }
}
