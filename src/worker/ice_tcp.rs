//! ICE over TCP for a media worker (RFC 6544 passive candidates, RFC 4571
//! framing), for clients whose network drops UDP.
//!
//! The worker listens on TCP at its UDP port number and advertises a
//! passive TCP host candidate there (str0m gives it a lower priority than
//! UDP, so a client that can use UDP does). Each accepted connection is a
//! task on the worker's runtime that cuts the stream into frames
//! ([`framing`](super::framing)) and hands them to the worker loop, and
//! writes what the worker queued for it. The worker loop never awaits a
//! connection:
//!
//! - a connection's outgoing queue is bounded ([`OUTBOUND_FRAMES`], on top
//!   of a [`SEND_BUFFER_BYTES`] kernel buffer); a peer that stops reading
//!   fills it and is dropped, so it costs at most that much memory and never
//!   stalls other peers;
//! - frames in are bounded by [`MAX_FRAME`]; longer ones are skipped;
//! - a connection that has not passed an ICE check after
//!   [`UNVERIFIED_TIMEOUT`], or is silent for [`IDLE_TIMEOUT`], is closed;
//!   at most [`MAX_CONNECTIONS`] are open, [`MAX_CONNECTIONS_PER_IP`] from
//!   one address.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use str0m::net::Transmit;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::AbortHandle;

use super::framing::{self, Decoded, FrameDecoder};
use super::udp::MAX_DATAGRAM;

/// Longest frame taken in; longer ones are skipped, like a UDP datagram
/// longer than the receive buffer.
pub const MAX_FRAME: usize = MAX_DATAGRAM;

/// Frames queued for one connection before it counts as stalled and is
/// dropped: ~0.3 MB of video, a second or more at the rates a subscriber on
/// a TCP fallback gets.
pub const OUTBOUND_FRAMES: usize = 256;

/// Kernel send buffer of a connection. Fixed (no autotuning), so a stalled
/// peer's kernel memory is bounded too.
pub const SEND_BUFFER_BYTES: usize = 256 * 1024;

/// Open connections per worker.
pub const MAX_CONNECTIONS: usize = 1024;

/// Open connections from one IP address.
pub const MAX_CONNECTIONS_PER_IP: usize = 16;

/// How long a connection may go without a successful ICE check.
pub const UNVERIFIED_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a connection may stay silent (ICE consent checks come every few
/// seconds).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// Frames from all connections waiting for the worker loop.
const INBOUND_QUEUE: usize = 1024;

/// Bytes read per system call.
const READ_CHUNK: usize = 16 * 1024;

/// Bytes gathered from the queue into one write.
const WRITE_CHUNK: usize = 64 * 1024;

/// Something a connection task tells the worker.
#[derive(Debug)]
pub enum TcpInput {
    /// One RFC 4571 frame (a STUN, DTLS, RTP or RTCP packet).
    Frame { source: SocketAddr, frame: Vec<u8> },
    /// A frame over [`MAX_FRAME`] was skipped.
    Oversize { source: SocketAddr },
    /// The connection ended (closed by the peer, failed or idle).
    Closed { source: SocketAddr, id: u64 },
}

/// Counters of one worker's ICE-TCP side.
#[derive(Debug, Default, Clone)]
pub struct TcpStats {
    pub accepted: u64,
    /// Connections refused at accept: too many, in all or from one IP.
    pub refused: u64,
    /// Connections dropped because their peer stopped reading.
    pub dropped_stalled: u64,
    /// Connections closed for passing no ICE check in time.
    pub dropped_unverified: u64,
    pub frames_in: u64,
    pub frames_out: u64,
    pub frames_oversize: u64,
    /// Transmits for a TCP address with no open connection.
    pub frames_unroutable: u64,
}

struct Connection {
    id: u64,
    outbound: mpsc::Sender<Vec<u8>>,
    task: AbortHandle,
    opened: Instant,
    verified: bool,
}

/// One worker's TCP listener and open connections.
pub struct IceTcp {
    listener: TcpListener,
    inbound_tx: mpsc::Sender<TcpInput>,
    inbound_rx: mpsc::Receiver<TcpInput>,
    connections: HashMap<SocketAddr, Connection>,
    per_ip: HashMap<IpAddr, usize>,
    next_id: u64,
    pub stats: TcpStats,
}

/// Binds a non-blocking TCP listener (before the worker thread starts).
pub fn bind(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    Ok(socket.into())
}

impl IceTcp {
    /// Takes over `listener`; must run inside the worker's runtime.
    pub fn new(listener: std::net::TcpListener) -> io::Result<Self> {
        let (inbound_tx, inbound_rx) = mpsc::channel(INBOUND_QUEUE);
        Ok(IceTcp {
            listener: TcpListener::from_std(listener)?,
            inbound_tx,
            inbound_rx,
            connections: HashMap::new(),
            per_ip: HashMap::new(),
            next_id: 0,
            stats: TcpStats::default(),
        })
    }

    /// Waits for the next input, accepting connections meanwhile.
    /// Cancellation-safe: a `select!` branch.
    pub async fn next(&mut self) -> TcpInput {
        loop {
            tokio::select! {
                input = self.inbound_rx.recv() => {
                    // The sender half lives in `self`: never `None`.
                    if let Some(input) = input {
                        return self.note(input);
                    }
                }
                accepted = self.listener.accept() => match accepted {
                    Ok((stream, source)) => self.open(stream, source),
                    // Out of descriptors and the like: back off a little.
                    Err(e) => {
                        tracing::warn!(error = %e, "ICE-TCP accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
            }
        }
    }

    /// The next input already waiting, if any.
    pub fn try_next(&mut self) -> Option<TcpInput> {
        let input = self.inbound_rx.try_recv().ok()?;
        Some(self.note(input))
    }

    /// Books an input; a closed connection is forgotten.
    fn note(&mut self, input: TcpInput) -> TcpInput {
        match &input {
            TcpInput::Frame { .. } => self.stats.frames_in += 1,
            TcpInput::Oversize { .. } => self.stats.frames_oversize += 1,
            TcpInput::Closed { source, id } => {
                if self.connections.get(source).is_some_and(|c| c.id == *id) {
                    self.forget(*source);
                }
            }
        }
        input
    }

    fn open(&mut self, stream: TcpStream, source: SocketAddr) {
        let from_ip = self.per_ip.get(&source.ip()).copied().unwrap_or(0);
        if self.connections.len() >= MAX_CONNECTIONS || from_ip >= MAX_CONNECTIONS_PER_IP {
            self.stats.refused += 1;
            tracing::debug!(%source, open = self.connections.len(), from_ip, "ICE-TCP connection refused: too many");
            return; // dropping `stream` closes it
        }
        if let Err(e) = tune(&stream) {
            tracing::debug!(%source, error = %e, "cannot tune ICE-TCP socket");
        }
        self.next_id += 1;
        let id = self.next_id;
        let (outbound, queue) = mpsc::channel(OUTBOUND_FRAMES);
        let task = tokio::spawn(serve(stream, source, id, self.inbound_tx.clone(), queue));
        self.connections.insert(
            source,
            Connection {
                id,
                outbound,
                task: task.abort_handle(),
                opened: Instant::now(),
                verified: false,
            },
        );
        *self.per_ip.entry(source.ip()).or_default() += 1;
        self.stats.accepted += 1;
        tracing::debug!(%source, "ICE-TCP connection accepted");
    }

    /// Queues a TCP transmit on its connection; drops the connection if its
    /// peer is not keeping up.
    pub fn send(&mut self, transmit: &Transmit) {
        let Some(connection) = self.connections.get(&transmit.destination) else {
            self.stats.frames_unroutable += 1;
            return;
        };
        let mut frame = Vec::with_capacity(framing::PREFIX_LEN + transmit.contents.len());
        if framing::encode_into(&transmit.contents, &mut frame).is_none() {
            self.stats.frames_unroutable += 1;
            return;
        }
        match connection.outbound.try_send(frame) {
            Ok(()) => self.stats.frames_out += 1,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.stats.dropped_stalled += 1;
                tracing::info!(peer = %transmit.destination, queued = OUTBOUND_FRAMES, "ICE-TCP peer stopped reading: connection dropped");
                self.forget(transmit.destination);
            }
            // The task ended; its `Closed` is on the way.
            Err(mpsc::error::TrySendError::Closed(_)) => self.stats.frames_unroutable += 1,
        }
    }

    /// Marks the connection from `source` as having passed an ICE check.
    pub fn verified(&mut self, source: SocketAddr) {
        if let Some(c) = self.connections.get_mut(&source) {
            c.verified = true;
        }
    }

    /// Closes connections that passed no ICE check in time.
    pub fn sweep(&mut self, now: Instant) {
        let late: Vec<SocketAddr> = self
            .connections
            .iter()
            .filter(|(_, c)| {
                !c.verified && now.saturating_duration_since(c.opened) > UNVERIFIED_TIMEOUT
            })
            .map(|(a, _)| *a)
            .collect();
        for source in late {
            self.stats.dropped_unverified += 1;
            tracing::debug!(%source, "ICE-TCP connection passed no ICE check: closed");
            self.forget(source);
        }
    }

    /// Open connections.
    pub fn open_connections(&self) -> usize {
        self.connections.len()
    }

    fn forget(&mut self, source: SocketAddr) {
        if let Some(c) = self.connections.remove(&source) {
            c.task.abort();
            if let Some(n) = self.per_ip.get_mut(&source.ip()) {
                *n -= 1;
                if *n == 0 {
                    self.per_ip.remove(&source.ip());
                }
            }
        }
    }
}

impl Drop for IceTcp {
    fn drop(&mut self) {
        for c in self.connections.values() {
            c.task.abort();
        }
    }
}

fn tune(stream: &TcpStream) -> io::Result<()> {
    stream.set_nodelay(true)?;
    socket2::SockRef::from(stream).set_send_buffer_size(SEND_BUFFER_BYTES)
}

/// A connection's task: reads frames in, writes queued frames out, until
/// the peer closes, an I/O error, [`IDLE_TIMEOUT`] of silence, or the worker
/// drops the queue (or aborts the task).
async fn serve(
    stream: TcpStream,
    source: SocketAddr,
    id: u64,
    inbound: mpsc::Sender<TcpInput>,
    mut queue: mpsc::Receiver<Vec<u8>>,
) {
    let (mut reader, mut writer) = stream.into_split();
    let reading = async {
        let mut decoder = FrameDecoder::new(MAX_FRAME);
        let mut chunk = vec![0u8; READ_CHUNK];
        loop {
            let n = match tokio::time::timeout(IDLE_TIMEOUT, reader.read(&mut chunk)).await {
                Ok(Ok(0)) | Ok(Err(_)) | Err(_) => return,
                Ok(Ok(n)) => n,
            };
            let mut rest = &chunk[..n];
            loop {
                let taken = decoder.push(rest);
                rest = &rest[taken..];
                while let Some(decoded) = decoder.next_frame() {
                    let input = match decoded {
                        Decoded::Frame(frame) => TcpInput::Frame {
                            source,
                            frame: frame.to_vec(),
                        },
                        Decoded::Oversize(_) => TcpInput::Oversize { source },
                    };
                    if inbound.send(input).await.is_err() {
                        return;
                    }
                }
                if rest.is_empty() {
                    break;
                }
            }
        }
    };
    let writing = async {
        let mut batch = Vec::with_capacity(WRITE_CHUNK);
        while let Some(frame) = queue.recv().await {
            batch.extend_from_slice(&frame);
            while batch.len() < WRITE_CHUNK {
                match queue.try_recv() {
                    Ok(frame) => batch.extend_from_slice(&frame),
                    Err(_) => break,
                }
            }
            if writer.write_all(&batch).await.is_err() {
                return;
            }
            batch.clear();
        }
    };
    tokio::select! {
        () = reading => {}
        () = writing => {}
    }
    let _ = inbound.send(TcpInput::Closed { source, id }).await;
}
