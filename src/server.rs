//! Starting and stopping a whole Cascade server: media workers plus the HTTP
//! control plane. `main` only parses flags and calls [`start`]; tests call it
//! with [`Config::loopback`] and ephemeral ports.

use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::oneshot;

use crate::config::Config;
use crate::drain::Drain;
use crate::media::CoreConfig;
use crate::metrics::{Metrics, SessionKind};
use crate::signal::limits::Limits;
use crate::signal::tls::{self_signed_names, Tls, TlsError, TlsSource};
use crate::signal::{self, listen, AppState};
use crate::worker::{self, Command, Directory, WorkerHandle, WorkerStartError};

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot listen for HTTP on {addr}: {source} (is another server using the port?)")]
    Http {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot listen for metrics on {addr}: {source} (is another server using the port?)")]
    Metrics {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Worker(#[from] WorkerStartError),
    #[error(transparent)]
    Tls(#[from] TlsError),
}

/// How often a drain looks whether the rooms have emptied.
const DRAIN_POLL: Duration = Duration::from_millis(200);

/// How long a shutdown waits for WebSocket sessions to close (their close
/// handshake waits up to 2 s for the client).
const SESSIONS_END_TIMEOUT: Duration = Duration::from_secs(3);

/// A running server.
pub struct Server {
    http_addr: SocketAddr,
    workers: Arc<[WorkerHandle]>,
    threads: Vec<JoinHandle<()>>,
    stop_http: oneshot::Sender<()>,
    http: tokio::task::JoinHandle<()>,
    metrics: Arc<Metrics>,
    /// The `--metrics-addr` listener, when metrics are served apart.
    admin: Option<AdminServer>,
    directory: Arc<Directory>,
    drain: Arc<Drain>,
    /// The SHA-256 fingerprint of the HTTPS certificate, when TLS is on.
    tls_fingerprint: Option<String>,
}

struct AdminServer {
    addr: SocketAddr,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

/// Binds everything `config` asks for and starts serving.
pub async fn start(config: Config) -> Result<Server, StartError> {
    // The names a self-signed certificate is made for (a PEM pair has its own).
    let tls_names = self_signed_names(&[config.public_ip, config.http_addr.ip()]);
    let tls = match &config.tls {
        Some(source) => Some(Tls::new(source, &tls_names)?),
        None => None,
    };
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
    let admin_listener = match config.metrics_addr {
        Some(addr) => {
            let error = |source| StartError::Metrics { addr, source };
            let listener = TcpListener::bind(addr).await.map_err(error)?;
            let bound = listener.local_addr().map_err(error)?;
            Some((listener, bound))
        }
        None => None,
    };

    let metrics = Metrics::new(config.workers);
    let directory = Directory::new(config.workers, config.max_rooms);
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
            max_participants_per_room: config.max_participants_per_room,
            data_limits: config.data_limits,
            ..CoreConfig::new(candidate_addr)
        };
        let (handle, thread) = match worker::spawn(
            index,
            bind,
            config.public_ip,
            config.ice_tcp,
            core_config,
            &metrics,
            &directory,
        ) {
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
    let drain = Arc::new(Drain::default());
    let state = AppState {
        workers: workers.clone(),
        directory: directory.clone(),
        metrics: metrics.clone(),
        http_sessions: Arc::default(),
        access: Arc::new(config.access.clone()),
        limits: Limits::new(config.limits),
        timeouts: config.timeouts,
        ice_servers: Arc::new(config.ice_servers.clone()),
        drain: drain.clone(),
        allowed_origins: Arc::new(config.allowed_origins.clone()),
    };
    let max_connections = config.max_connections;
    let header_timeout = config.timeouts.header;
    let admin = admin_listener.map(|(listener, addr)| {
        let (stop, stopped) = oneshot::channel::<()>();
        let app = signal::admin::standalone_router(state.clone());
        let task = tokio::spawn(async move {
            let shutdown = async move {
                let _ = stopped.await;
            };
            listen::serve(
                listener,
                app,
                max_connections,
                header_timeout,
                None,
                shutdown,
            )
            .await;
        });
        tracing::info!(metrics_addr = %addr, "serving metrics apart");
        AdminServer { addr, stop, task }
    });
    let (stop_http, stopped) = oneshot::channel::<()>();
    let workers_for_shutdown = workers.clone();
    let operator_routes = admin
        .is_none()
        .then(|| signal::admin::router(state.clone()));
    let tls_fingerprint = tls.as_ref().map(|t| t.fingerprint.clone());
    let acceptor = tls.map(|t| t.acceptor);
    let http = tokio::spawn(async move {
        let mut app = signal::app(state);
        if let Some(routes) = operator_routes {
            app = app.merge(routes);
        }
        let shutdown = async move {
            let _ = stopped.await;
            // Workers remove every participant, which ends their WebSocket
            // sessions, which lets the graceful shutdown finish.
            for w in workers_for_shutdown.iter() {
                let _ = w.commands.send(Command::Shutdown).await;
            }
        };
        listen::serve(
            listener,
            app,
            max_connections,
            header_timeout,
            acceptor,
            shutdown,
        )
        .await;
    });
    let scheme = if tls_fingerprint.is_some() {
        "https"
    } else {
        "http"
    };
    tracing::info!(%http_addr, scheme, workers = config.workers, "cascade is listening");
    if let (Some(fingerprint), Some(TlsSource::SelfSigned)) = (&tls_fingerprint, &config.tls) {
        tracing::info!(
            %fingerprint,
            names = %tls_names.join(", "),
            "self-signed TLS certificate made for this run: browsers warn about it; check that the SHA-256 fingerprint they show is this one"
        );
    }
    Ok(Server {
        http_addr,
        workers,
        threads,
        stop_http,
        http,
        metrics,
        admin,
        directory,
        drain,
        tls_fingerprint,
    })
}

impl Server {
    /// The SHA-256 fingerprint (`AB:CD:…`) of the certificate the HTTP port
    /// serves, when it serves HTTPS.
    pub fn tls_fingerprint(&self) -> Option<&str> {
        self.tls_fingerprint.as_deref()
    }

    /// The bound HTTP address (useful with port 0).
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// The media workers (their candidate addresses, command queues).
    pub fn workers(&self) -> &[WorkerHandle] {
        &self.workers
    }

    /// Where `/metrics` and `/admin/*` are served: `--metrics-addr` if set,
    /// else the HTTP address.
    pub fn metrics_addr(&self) -> SocketAddr {
        self.admin.as_ref().map_or(self.http_addr, |a| a.addr)
    }

    /// The metrics registry.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Resolves once a drain was asked for over the admin API (or by
    /// [`Server::drain`]).
    pub async fn drain_requested(&self) {
        self.drain.requested().await
    }

    /// Drains: stops taking joins (if not yet) and waits until every room
    /// is empty or `timeout` has passed since the drain started. Returns
    /// the rooms still in progress (0: all ended on their own). Call
    /// [`Server::shutdown`] next.
    pub async fn drain(&self, timeout: Duration) -> usize {
        if self.drain.start() {
            tracing::info!(rooms = self.directory.room_count(), "draining");
        }
        let started = self
            .drain
            .started_at()
            .unwrap_or_else(std::time::Instant::now);
        let deadline = tokio::time::Instant::from_std(started + timeout);
        loop {
            let rooms = self.directory.room_count();
            if rooms == 0 || tokio::time::Instant::now() >= deadline {
                return rooms;
            }
            let poll = tokio::time::Instant::now() + DRAIN_POLL;
            tokio::time::sleep_until(poll.min(deadline)).await;
        }
    }

    /// Stops accepting, removes every participant and joins the workers.
    pub async fn shutdown(self) {
        if let Some(admin) = self.admin {
            let _ = admin.stop.send(());
            let _ = admin.task.await;
        }
        let _ = self.stop_http.send(());
        let _ = self.http.await;
        // Upgraded WebSockets are not the accept loop's connections any
        // more: wait (bounded) until they have told their clients why they
        // end and closed, or an exit right after would cut them off.
        let deadline = tokio::time::Instant::now() + SESSIONS_END_TIMEOUT;
        while self.metrics.active_sessions(SessionKind::Ws) > 0
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
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
