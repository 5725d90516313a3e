//! One client peer connection of a bot: a str0m `Rtc` in RTP mode on its
//! own loopback UDP socket, and how to drain and poke it.

use std::net::SocketAddr;
use std::time::Instant;

use str0m::change::SdpPendingOffer;
use str0m::{Candidate, Event, Input, Output, Rtc};
use tokio::net::UdpSocket;

use super::BotError;

/// Receive/send buffer asked for each bot socket: keyframe bursts from many
/// senders must not overflow it while the bot's task waits for a turn.
const SOCKET_BUFFER_BYTES: usize = 2 * 1024 * 1024;

/// One client peer connection on its own loopback socket.
pub(crate) struct ClientPc {
    pub rtc: Rtc,
    pub socket: UdpSocket,
    /// The same socket (a duplicated descriptor) for sending. tokio's
    /// `try_send_to` reports `WouldBlock` without trying until its reactor
    /// has seen the new socket writable, which silently dropped the first
    /// ICE check of every new connection (and cost a 250 ms STUN
    /// retransmission against an ICE-lite server, which sends no checks of
    /// its own to trigger one).
    sender: std::net::UdpSocket,
    pub local: SocketAddr,
    /// When str0m wants its next timeout.
    pub deadline: Instant,
    /// Our offer, until the answer comes.
    pub pending: Option<SdpPendingOffer>,
}

impl ClientPc {
    pub fn new(now: Instant) -> Result<Self, BotError> {
        let (socket, sender) = bind_socket()?;
        let local = socket.local_addr()?;
        let mut rtc = Rtc::builder()
            .set_rtp_mode(true)
            .set_stats_interval(None)
            .build(now);
        let candidate =
            Candidate::host(local, "udp").map_err(|e| BotError::Protocol(e.to_string()))?;
        rtc.add_local_candidate(candidate);
        Ok(ClientPc {
            rtc,
            socket,
            sender,
            local,
            deadline: now,
            pending: None,
        })
    }

    /// Polls until str0m waits for time, sending what it emits.
    pub fn drain(&mut self, events: &mut Vec<Event>) -> Result<(), BotError> {
        loop {
            match self.rtc.poll_output()? {
                Output::Timeout(t) => {
                    self.deadline = t;
                    return Ok(());
                }
                Output::Transmit(t) => {
                    // A full socket buffer drops the datagram, as a real
                    // network would; the receiver's loss count shows it.
                    let _ = self.sender.send_to(&t.contents, t.destination);
                }
                Output::Event(e) => events.push(e),
            }
        }
    }

    /// Drains what writes and SDP changes queued, then feeds timeouts while
    /// one is due (str0m asks for "now" after `write_rtp`).
    pub fn poke(&mut self, now: Instant, events: &mut Vec<Event>) -> Result<(), BotError> {
        self.drain(events)?;
        for _ in 0..4 {
            if self.deadline > now {
                break;
            }
            self.rtc.handle_input(Input::Timeout(now))?;
            self.drain(events)?;
        }
        Ok(())
    }
}

/// A bound non-blocking socket, registered with tokio for receiving, and a
/// duplicate of it for sending.
fn bind_socket() -> Result<(UdpSocket, std::net::UdpSocket), BotError> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    // Best effort: the kernel caps these at net.core.[rw]mem_max.
    let _ = socket.set_recv_buffer_size(SOCKET_BUFFER_BYTES);
    let _ = socket.set_send_buffer_size(SOCKET_BUFFER_BYTES);
    socket.set_nonblocking(true)?;
    let addr: SocketAddr = ([127, 0, 0, 1], 0).into();
    socket.bind(&addr.into())?;
    let sender = socket.try_clone()?;
    Ok((UdpSocket::from_std(socket.into())?, sender.into()))
}
