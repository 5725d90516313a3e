//! Media workers: the I/O driver around a [`MediaCore`].
//!
//! Each worker is an OS thread running a single-threaded tokio runtime that
//! owns one UDP socket and one core outright (no locks on the packet path).
//! It is the only place that reads the clock for media. The control plane
//! talks to it with [`Command`]s over a channel and gets replies on oneshots;
//! the core's events for a participant go to that participant's [`Outbox`],
//! its room events to the [`Directory`].
//!
//! Loop: wait for a datagram, a command or the core's next deadline; when
//! the socket is readable, read up to [`RECV_BATCH`] datagrams in one call,
//! feed them to the core and flush it, so every touched subscriber is
//! drained once per batch; send everything the core queued in one batched
//! call ([`udp`]); dispatch signaling. A batch whose fan-out passes
//! [`FLUSH_AFTER_WRITES`] forwarded packets is fed and sent in parts of at
//! least [`MIN_DATAGRAMS_PER_FLUSH`] datagrams, so batching saves CPU without
//! holding a batch's first packets back for all the work of its last.

mod command;
mod directory;
pub mod framing;
pub mod ice_tcp;
pub mod udp;

use std::collections::HashMap;
use std::io::ErrorKind;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use str0m::net::{Protocol, Transmit};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

pub use command::{Command, Outbox, WorkerSnapshot};
pub use directory::{Directory, RoomLease, ServerFull};
use ice_tcp::{IceTcp, TcpInput};
use udp::{RecvBatch, SendBatch};

use crate::media::{
    CoreConfig, CoreEvent, LeaveReason, MediaCore, ParticipantEvent, ParticipantId,
};
use crate::memory;
use crate::metrics::{Metrics, WorkerIo, WorkerMetrics};

/// How many datagrams are read in one call.
pub const RECV_BATCH: usize = 64;

/// Forwarded packets after which the rest of a receive batch waits for the
/// next loop iteration and the core is flushed and sent first (about 0.4 ms
/// of work in a 10-person meeting), so a packet does not wait long for the
/// packets fed after it...
pub const FLUSH_AFTER_WRITES: usize = 64;

/// ...once at least this many datagrams were fed. With a large fan-out (a
/// webinar) one packet alone passes [`FLUSH_AFTER_WRITES`]; flushing after
/// every packet would send each viewer one packet per flush, with no GSO
/// runs, and cost ~30 % more CPU per forwarded packet, while a video frame
/// is only complete at its last packet anyway.
pub const MIN_DATAGRAMS_PER_FLUSH: usize = 8;

/// Socket buffer size requested for media sockets (the kernel may cap it).
const SOCKET_BUFFER_BYTES: usize = 4 * 1024 * 1024;

/// Depth of a worker's command queue.
pub const COMMAND_QUEUE: usize = 1024;

/// How often a worker folds its plain counters into the metrics registry
/// (scrapes also fold, through [`Command::Snapshot`]).
const METRICS_FOLD_INTERVAL: Duration = Duration::from_secs(1);

/// The control plane's handle on a running worker.
#[derive(Debug, Clone)]
pub struct WorkerHandle {
    pub index: usize,
    /// The address advertised to clients as this worker's host candidate.
    pub candidate_addr: SocketAddr,
    /// The passive ICE-TCP host candidate's address, if the worker listens
    /// on TCP (at the UDP port's number).
    pub tcp_candidate_addr: Option<SocketAddr>,
    pub commands: mpsc::Sender<Command>,
}

/// Why a worker could not start.
#[derive(Debug, thiserror::Error)]
pub enum WorkerStartError {
    #[error("cannot bind UDP {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot listen on TCP {addr} for ICE-TCP (the UDP port's number; --no-ice-tcp turns ICE-TCP off): {source}")]
    BindTcp {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot start worker thread: {0}")]
    Thread(std::io::Error),
}

/// Binds `bind_addr` (and, with `ice_tcp`, a TCP listener on the same port
/// number), and starts a worker thread advertising `public_ip` on the bound
/// port.
pub fn spawn(
    index: usize,
    bind_addr: SocketAddr,
    public_ip: std::net::IpAddr,
    ice_tcp: bool,
    mut core_config: impl FnMut(SocketAddr) -> CoreConfig,
    metrics: &Arc<Metrics>,
    directory: &Arc<Directory>,
) -> Result<(WorkerHandle, JoinHandle<()>), WorkerStartError> {
    let (socket, local, listener) = bind_media_sockets(bind_addr, ice_tcp)?;
    let candidate_addr = SocketAddr::new(public_ip, local.port());
    let tcp_candidate_addr = listener.as_ref().map(|_| candidate_addr);
    let mut config = core_config(candidate_addr);
    config.tcp_candidate_addr = tcp_candidate_addr;
    let (tx, rx) = mpsc::channel(COMMAND_QUEUE);
    let metrics = metrics.worker(index);
    let directory = directory.clone();
    let thread = std::thread::Builder::new()
        .name(format!("cascade-media-{index}"))
        .spawn(move || run(index, socket, listener, config, rx, metrics, directory))
        .map_err(WorkerStartError::Thread)?;
    tracing::info!(worker = index, %local, %candidate_addr, ice_tcp = tcp_candidate_addr.is_some(), "media worker started");
    Ok((
        WorkerHandle {
            index,
            candidate_addr,
            tcp_candidate_addr,
            commands: tx,
        },
        thread,
    ))
}

/// Attempts at a free port number for both UDP and TCP when the port is
/// left to the kernel.
const EPHEMERAL_BIND_ATTEMPTS: usize = 16;

/// The worker's UDP socket, its address, and its ICE-TCP listener on the
/// same port number if asked for. With port 0 the kernel picks the UDP
/// port; if that number is taken on TCP, another is tried.
fn bind_media_sockets(
    addr: SocketAddr,
    ice_tcp: bool,
) -> Result<
    (
        std::net::UdpSocket,
        SocketAddr,
        Option<std::net::TcpListener>,
    ),
    WorkerStartError,
> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let socket = bind_media_socket(addr)?;
        let local = socket
            .local_addr()
            .map_err(|source| WorkerStartError::Bind { addr, source })?;
        if !ice_tcp {
            return Ok((socket, local, None));
        }
        match ice_tcp::bind(local) {
            Ok(listener) => return Ok((socket, local, Some(listener))),
            Err(_) if addr.port() == 0 && attempt < EPHEMERAL_BIND_ATTEMPTS => continue,
            Err(source) => {
                return Err(WorkerStartError::BindTcp {
                    addr: local,
                    source,
                })
            }
        }
    }
}

fn bind_media_socket(addr: SocketAddr) -> Result<std::net::UdpSocket, WorkerStartError> {
    use socket2::{Domain, Protocol, Socket, Type};
    let err = |source| WorkerStartError::Bind { addr, source };
    let socket =
        Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP)).map_err(err)?;
    // Best effort: small buffers drop bursts (keyframes) before we read them.
    let _ = socket.set_recv_buffer_size(SOCKET_BUFFER_BYTES);
    let _ = socket.set_send_buffer_size(SOCKET_BUFFER_BYTES);
    socket.set_nonblocking(true).map_err(err)?;
    socket.bind(&addr.into()).map_err(err)?;
    Ok(socket.into())
}

/// The next ICE-TCP input; pending forever with ICE-TCP off.
async fn next_tcp_input(tcp: &mut Option<IceTcp>) -> Option<TcpInput> {
    match tcp {
        Some(tcp) => Some(tcp.next().await),
        None => std::future::pending().await,
    }
}

/// The worker thread body.
fn run(
    index: usize,
    socket: std::net::UdpSocket,
    listener: Option<std::net::TcpListener>,
    config: CoreConfig,
    commands: mpsc::Receiver<Command>,
    metrics: WorkerMetrics,
    directory: Arc<Directory>,
) {
    // Every log line of this thread (the core's included) names the worker.
    let _span = tracing::info_span!("worker", worker = index).entered();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(worker = index, error = %e, "cannot start worker runtime");
            return;
        }
    };
    runtime.block_on(async move {
        let socket = match UdpSocket::from_std(socket) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(worker = index, error = %e, "cannot register media socket");
                return;
            }
        };
        if let Err(e) = udp::enable_receive_timestamps(&socket) {
            tracing::warn!(worker = index, error = %e, "no kernel receive timestamps: forward delay is not measured");
        }
        let tcp = match listener.map(IceTcp::new).transpose() {
            Ok(tcp) => tcp,
            Err(e) => {
                tracing::error!(worker = index, error = %e, "cannot register ICE-TCP listener");
                return;
            }
        };
        let mut worker = Worker {
            index,
            core: MediaCore::new(config, Instant::now()),
            socket,
            tcp,
            recv: RecvBatch::new(RECV_BATCH),
            recv_next: 0,
            send: SendBatch::new(),
            outgoing: Vec::new(),
            received_at: Vec::with_capacity(RECV_BATCH),
            outboxes: HashMap::new(),
            directory,
            metrics,
            io: WorkerIo::default(),
            next_fold: Instant::now() + METRICS_FOLD_INTERVAL,
            peers_at_fold: 0,
            release_pending: false,
        };
        worker.run(commands).await;
    });
    tracing::info!(worker = index, "media worker stopped");
}

struct Worker {
    index: usize,
    core: MediaCore,
    socket: UdpSocket,
    /// The ICE-TCP listener and connections, unless turned off.
    tcp: Option<IceTcp>,
    recv: RecvBatch,
    /// The next datagram of `recv` to feed to the core.
    recv_next: usize,
    send: SendBatch,
    /// Transmits taken from the core, waiting for the next batched send.
    outgoing: Vec<Transmit>,
    /// Kernel receive times of the datagrams of the current batch.
    received_at: Vec<SystemTime>,
    outboxes: HashMap<ParticipantId, Outbox>,
    directory: Arc<Directory>,
    metrics: WorkerMetrics,
    /// Plain counters of this loop, folded into `metrics` with the core's.
    io: WorkerIo,
    next_fold: Instant,
    /// The core's peer connections at the last fold, and whether some closed
    /// since memory was last given back (see [`Worker::release_memory`]).
    peers_at_fold: usize,
    release_pending: bool,
}

impl Worker {
    async fn run(&mut self, mut commands: mpsc::Receiver<Command>) {
        loop {
            let deadline = self.core.next_deadline();
            let woke: Instant;
            tokio::select! {
                command = commands.recv() => {
                    woke = Instant::now();
                    let Some(command) = command else { break };
                    if !self.handle_command(command) {
                        break;
                    }
                }
                // The rest of a batch cut short by FLUSH_AFTER_WRITES.
                _ = std::future::ready(()), if self.recv_next < self.recv.received() => {
                    woke = Instant::now();
                    self.handle_datagrams();
                }
                Some(input) = next_tcp_input(&mut self.tcp) => {
                    woke = Instant::now();
                    self.handle_tcp(input);
                }
                readable = self.socket.readable() => {
                    woke = Instant::now();
                    if let Err(e) = readable {
                        tracing::error!(worker = self.index, error = %e, "media socket failed");
                        break;
                    }
                    self.handle_datagrams();
                }
                _ = tokio::time::sleep_until(tokio::time::Instant::from_std(deadline)) => {
                    woke = Instant::now();
                    self.metrics.timer_lag(woke.saturating_duration_since(deadline));
                    self.core.handle_timeout(woke);
                }
            }
            self.send_transmits().await;
            self.observe_forward_delays();
            self.dispatch_events();
            self.account(woke);
        }
        self.core.close_all(Instant::now());
        self.send_transmits().await;
        self.dispatch_events();
    }

    /// Feeds datagrams to the core and flushes it: the rest of the current
    /// batch, or a new batch read from the socket. Stops early once the core
    /// holds [`FLUSH_AFTER_WRITES`] unsent packets and at least
    /// [`MIN_DATAGRAMS_PER_FLUSH`] datagrams went in; the loop comes back for
    /// the rest after sending them.
    fn handle_datagrams(&mut self) {
        if self.recv_next >= self.recv.received() {
            self.recv_next = 0;
            match self.recv.recv(&self.socket) {
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                // ICMP errors for earlier sends surface here on some systems.
                Err(e) => tracing::debug!(worker = self.index, error = %e, "recv failed"),
            }
        }
        let now = Instant::now();
        let mut fed = 0;
        while self.recv_next < self.recv.received() {
            let i = self.recv_next;
            self.recv_next += 1;
            fed += 1;
            let Some(datagram) = self.recv.get(i) else {
                self.io.recv_truncated += 1;
                continue;
            };
            if let Some(at) = datagram.received_at {
                self.received_at.push(at);
            }
            self.core
                .handle_receive(now, datagram.source, datagram.contents);
            if fed >= MIN_DATAGRAMS_PER_FLUSH && self.core.unflushed_writes() >= FLUSH_AFTER_WRITES
            {
                break;
            }
        }
        self.core.flush(Instant::now());
    }

    /// Feeds an ICE-TCP input and those already waiting behind it (up to a
    /// receive batch) to the core, and flushes it.
    fn handle_tcp(&mut self, first: TcpInput) {
        let Some(tcp) = self.tcp.as_mut() else {
            return;
        };
        let now = Instant::now();
        let mut next = Some(first);
        let mut fed = 0;
        while let Some(input) = next.take() {
            if let TcpInput::Frame { source, frame } = input {
                self.core.handle_tcp_frame(now, source, &frame);
                if self.core.knows_address((Protocol::Tcp, source)) {
                    tcp.verified(source);
                }
            }
            fed += 1;
            if fed < RECV_BATCH {
                next = tcp.try_next();
            }
        }
        self.core.flush(Instant::now());
    }

    /// Sends everything the core queued: UDP batched, ICE-TCP onto its
    /// connections' queues.
    async fn send_transmits(&mut self) {
        while let Some(transmit) = self.core.poll_transmit() {
            if transmit.proto == Protocol::Udp {
                self.outgoing.push(transmit);
            } else if let Some(tcp) = self.tcp.as_mut() {
                tcp.send(&transmit);
            }
        }
        let outcome = self.send.send(&self.socket, &mut self.outgoing).await;
        self.io.sent_datagrams += outcome.datagrams;
        self.io.sent_bytes += outcome.bytes;
        self.io.send_errors += outcome.errors;
        self.io.send_calls += outcome.calls;
    }

    /// Books how long each datagram of the batch just handled spent between
    /// the kernel and the end of the send that followed.
    fn observe_forward_delays(&mut self) {
        if self.received_at.is_empty() {
            return;
        }
        let sent = SystemTime::now();
        for at in self.received_at.drain(..) {
            self.metrics
                .forward_delay(sent.duration_since(at).unwrap_or_default());
        }
    }

    /// Delivers the core's events: a participant's to its outbox, a room's
    /// to the directory. A participant whose outbox is full is not keeping
    /// up and is removed; one whose session already ended (outbox closed) is
    /// removed as having left, so the leave metrics do not count it as a
    /// slow consumer.
    fn dispatch_events(&mut self) {
        loop {
            let mut gone = Vec::new();
            while let Some(event) = self.core.poll_event() {
                match event {
                    CoreEvent::Participant(to, event) => {
                        if let Some(reason) = self.deliver(to, event) {
                            gone.push((to, reason));
                        }
                    }
                    CoreEvent::RoomOpened(room) => self.directory.room_opened(&room, self.index),
                    CoreEvent::RoomClosed(room) => self.directory.room_closed(&room, self.index),
                }
            }
            if gone.is_empty() {
                return;
            }
            for (id, reason) in gone {
                self.core.leave(Instant::now(), id, reason);
            }
        }
    }

    /// Puts `event` in `to`'s outbox; returns why `to` must go if it cannot.
    fn deliver(&mut self, to: ParticipantId, event: ParticipantEvent) -> Option<LeaveReason> {
        if matches!(event, ParticipantEvent::Removed(_)) {
            // The last event: dropping the outbox ends the session's stream.
            if let Some(outbox) = self.outboxes.remove(&to) {
                let _ = outbox.try_send(event);
            }
            return None;
        }
        let outbox = self.outboxes.get(&to)?;
        match outbox.try_send(event) {
            Ok(()) => None,
            Err(mpsc::error::TrySendError::Full(_)) => Some(LeaveReason::SlowConsumer),
            // The session ended; its `Leave` is on the way.
            Err(mpsc::error::TrySendError::Closed(_)) => Some(LeaveReason::Left),
        }
    }

    /// Runs one command; returns false when the worker should stop.
    fn handle_command(&mut self, command: Command) -> bool {
        let now = Instant::now();
        match command {
            Command::Join {
                request,
                rtc,
                outbox,
                lease,
                reply,
            } => {
                let id = request.id;
                // Register the outbox first: joining queues `Joined` for it.
                self.outboxes.insert(id, outbox);
                let result = self.core.join(now, request, *rtc);
                self.after_join(id, result.is_ok(), lease);
                let _ = reply.send(result);
            }
            Command::JoinWithOffer {
                request,
                rtc,
                offer,
                outbox,
                lease,
                reply,
            } => {
                let id = request.id;
                self.outboxes.insert(id, outbox);
                let result = self.core.join_with_offer(now, request, *rtc, offer);
                self.after_join(id, result.is_ok(), lease);
                let _ = reply.send(result);
            }
            Command::PublishOffer {
                id,
                rtc,
                offer,
                sources,
                reply,
            } => {
                self.core.name_track_sources(id, &sources);
                let _ = reply.send(self.core.publish_offer(now, id, rtc.map(|b| *b), offer));
            }
            Command::RestartIce {
                id,
                role,
                remote,
                reply,
            } => {
                let _ = reply.send(self.core.restart_ice(now, id, role, remote));
            }
            Command::SubscribeAnswer { id, answer, reply } => {
                let _ = reply.send(self.core.subscribe_answer(now, id, answer));
            }
            Command::Candidate {
                id,
                role,
                candidate,
                reply,
            } => {
                let _ = reply.send(self.core.add_remote_candidate(now, id, role, candidate));
            }
            Command::Mute {
                id,
                mid,
                muted,
                reply,
            } => {
                let _ = reply.send(self.core.set_muted(now, id, &mid, muted));
            }
            Command::RestartSubscribeIce { id, reply } => {
                let _ = reply.send(self.core.restart_subscribe_ice(now, id));
            }
            Command::VideoPreference {
                id,
                track,
                preference,
                reply,
            } => {
                let _ = reply.send(self.core.set_video_preference(now, id, track, preference));
            }
            Command::Leave { id } => self.core.leave(now, id, LeaveReason::Left),
            Command::Remove {
                room,
                id,
                reason,
                reply,
            } => {
                let _ = reply.send(self.core.remove_from_room(now, &room, id, reason));
            }
            Command::OperatorMute {
                room,
                id,
                track,
                reply,
            } => {
                let _ = reply.send(self.core.mute_by_operator(now, &room, id, track));
            }
            Command::CloseRoom { room, reply } => {
                let _ = reply.send(self.core.close_room(now, &room));
            }
            Command::Snapshot { reply } => {
                self.fold_metrics();
                let _ = reply.send(self.snapshot());
            }
            Command::Rooms { reply } => {
                let _ = reply.send(self.core.rooms_view());
            }
            Command::Shutdown => return false,
        }
        true
    }

    /// Settles a join: a failed one leaves no outbox, and the directory hears
    /// of the room (opened by the join, or never opened) before the lease
    /// goes, so a placement is never freed under a room that exists.
    fn after_join(&mut self, id: ParticipantId, joined: bool, lease: RoomLease) {
        if !joined {
            self.outboxes.remove(&id);
        }
        self.dispatch_events();
        drop(lease);
    }

    fn snapshot(&self) -> WorkerSnapshot {
        WorkerSnapshot {
            index: self.index,
            rooms: self.core.room_count(),
            participants: self.core.participant_count(),
        }
    }

    /// Books one loop iteration (from `woke` to now) and folds the counters
    /// into the registry when due.
    fn account(&mut self, woke: Instant) {
        self.drain_samples();
        let now = Instant::now();
        self.io.busy += now.saturating_duration_since(woke);
        self.io.iterations += 1;
        if now >= self.next_fold {
            self.next_fold = now + METRICS_FOLD_INTERVAL;
            if let Some(tcp) = self.tcp.as_mut() {
                tcp.sweep(now);
            }
            self.fold_metrics();
            self.release_memory();
        }
    }

    /// Gives memory back to the OS once connections have closed and stopped
    /// closing (one fold interval without another close), so a room or a
    /// storm of joins that all leave costs one release, not one per leave.
    /// The core's buffers that grew for the crowd shrink first, then this
    /// thread collects its allocator pages ([`memory::release_freed`]): only
    /// the owning thread can collect what other threads freed into them.
    fn release_memory(&mut self) {
        let peers = self.core.peer_count();
        let closed = peers < self.peers_at_fold;
        self.peers_at_fold = peers;
        if closed {
            self.release_pending = true;
        } else if self.release_pending {
            self.release_pending = false;
            let started = Instant::now();
            self.core.shrink_to_fit();
            self.outgoing.shrink_to_fit();
            self.outboxes.shrink_to_fit();
            memory::release_freed();
            tracing::debug!(worker = self.index, peers, took = ?started.elapsed(), "memory released after connections closed");
        }
    }

    fn fold_metrics(&mut self) {
        self.drain_samples();
        if let Some(tcp) = &self.tcp {
            self.io.tcp = tcp.stats.clone();
            self.io.tcp_open = tcp.open_connections();
        }
        let occupancy = self.core.occupancy();
        self.metrics.fold(self.core.stats(), &self.io, &occupancy);
    }

    /// Moves the core's histogram samples into the thread-local buffers
    /// (every iteration, so the core's bounded queue never overflows).
    fn drain_samples(&mut self) {
        while let Some(sample) = self.core.poll_sample() {
            self.metrics.observe(sample);
        }
    }
}
