//! The sans-IO media core: rooms, participants and RTP forwarding.
//!
//! Everything here is driven by its caller: datagrams and time come in as
//! arguments, datagrams and domain events go out through `poll_*` methods.
//! No sockets, no tokio, no `Instant::now()`, no wire protocol: this module
//! imports nothing from `signal`, `worker` or `cascade_protocol`. The worker
//! (`crate::worker`) runs a core on a thread and a UDP socket; the simulation
//! tests run one with str0m clients and fake time.
//!
//! - [`core`]: [`MediaCore`], the public API and the poll methods;
//! - [`events`]: what the core tells the control plane;
//! - [`errors`]: leave reasons and one error per operation;
//! - `membership`: rooms, participants, tracks, subscriptions;
//! - `scheduler`: every peer connection, its deadline, the flush;
//! - `forwarder`, `downtrack`, [`rewrite`]: the packet path and what it rewrites;
//! - `simulcast`: a track's layers, their prices and keyframes;
//! - `allocator`: each subscriber's bandwidth estimate spread over its
//!   videos (layer choice, pauses, probing); `dynacast`: layers nobody needs;
//! - `keyframes`: throttled keyframe requests, subscriber to publisher;
//! - `negotiate`: server-initiated renegotiation of subscribe connections;
//! - [`data`]: the data-channel relay (limits, envelope);
//! - `tracks`: publishing and unpublishing; `viewer`: WHEP slots;
//! - `lifecycle`: removal and the connect and ICE timers;
//! - `dispatch`: str0m events to all of the above;
//! - [`stats`], [`views`]: counters, samples, read-only views;
//! - [`demux`]: which peer connection a datagram is for;
//! - [`dtls`]: DTLS through OpenSSL, so peers with RSA certificates connect;
//! - [`peer`]: one str0m `Rtc` and how to drain it.

mod allocator;
pub mod core;
pub mod data;
pub mod demux;
mod dispatch;
mod downtrack;
pub mod dtls;
mod dynacast;
pub mod errors;
pub mod events;
mod forwarder;
pub mod ids;
mod keyframes;
mod lifecycle;
mod membership;
mod negotiate;
pub mod peer;
pub mod rewrite;
mod scheduler;
mod simulcast;
mod speakers;
pub mod stats;
mod tracks;
mod viewer;
pub mod views;

pub use self::core::{CoreConfig, JoinRequest, MediaCore, MAX_NAMED_SOURCES};
pub use data::{DataLimits, DataRefusal};
pub use errors::{
    AnswerError, CandidateError, JoinError, LeaveReason, MuteError, OfferError, PreferenceError,
};
pub use events::{
    CoreEvent, OfferedTrack, ParticipantEvent, ParticipantSummary, PauseReason, Speaker,
    TrackSource, TrackSummary,
};
pub use ids::{DisplayName, Identity, NameError, ParticipantId, PeerKey, RoomName, TrackId};
pub use membership::{MediaGrants, ParticipantMode, VideoPreference};
pub use peer::{PeerRole, MAX_REMOTE_CANDIDATES};
pub use stats::CoreStats;

/// How often str0m reports per-stream statistics (RTT, NACK/PLI/FIR counts,
/// bytes sent), which the core folds into its counters.
pub const STATS_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// Video packets each subscriber stream keeps for answering NACKs: about
/// 1.5 s of a 1.7 Mbit/s stream (str0m's default is 1000).
pub const VIDEO_SEND_BUFFER: usize = 300;

/// Where a subscribe connection's send-side bandwidth estimate starts: below
/// one camera's middle simulcast layer plus audio, so a new subscriber begins
/// on the low layer and climbs as probing proves capacity.
pub const INITIAL_BANDWIDTH_ESTIMATE: str0m::bwe::Bitrate = str0m::bwe::Bitrate::kbps(500);

/// A str0m `Rtc` configured the way Cascade's server side needs it for a
/// connection of `role`: ICE-lite, RTP mode (forward packets as they are),
/// video send buffer for NACKs, statistics events for the metrics, DTLS
/// through OpenSSL ([`dtls`]); a subscribe connection also runs send-side
/// bandwidth estimation (TWCC), which the stream allocator reads.
pub fn server_rtc(now: std::time::Instant, role: PeerRole) -> str0m::Rtc {
    let config = str0m::Rtc::builder()
        .set_crypto_provider(dtls::crypto_provider())
        .set_ice_lite(true)
        .set_rtp_mode(true)
        .set_stats_interval(Some(STATS_INTERVAL))
        .set_send_buffer_video(VIDEO_SEND_BUFFER);
    match role {
        PeerRole::Subscribe => config.enable_bwe(Some(INITIAL_BANDWIDTH_ESTIMATE)),
        PeerRole::Publish => config,
    }
    .build(now)
}
