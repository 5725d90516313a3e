//! Why a participant left, and one error enum per core operation.

use super::ids::TrackId;

/// Why a participant left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaveReason {
    /// The client said `leave` or closed its socket.
    Left,
    /// The subscribe connection never connected.
    ConnectTimeout,
    /// ICE stayed disconnected past the grace period.
    IceDisconnected,
    /// str0m reported an error or closed the connection.
    PeerFailed,
    /// The participant's signaling channel could not keep up.
    SlowConsumer,
    /// The server is shutting down.
    Shutdown,
    /// A newer connection with the same identity joined the room.
    Replaced,
    /// An operator removed the participant (room service API).
    Removed,
    /// An operator closed the room.
    RoomClosed,
}

impl LeaveReason {
    /// Every reason, in [`LeaveReason::index`] order.
    pub const ALL: [LeaveReason; 9] = [
        LeaveReason::Left,
        LeaveReason::ConnectTimeout,
        LeaveReason::IceDisconnected,
        LeaveReason::PeerFailed,
        LeaveReason::SlowConsumer,
        LeaveReason::Shutdown,
        LeaveReason::Replaced,
        LeaveReason::Removed,
        LeaveReason::RoomClosed,
    ];

    /// Position in [`LeaveReason::ALL`] (and in `CoreStats::leaves_by_reason`).
    pub fn index(&self) -> usize {
        *self as usize
    }

    /// The reason's name in metrics and messages.
    pub const fn as_str(&self) -> &'static str {
        match self {
            LeaveReason::Left => "left",
            LeaveReason::ConnectTimeout => "connect_timeout",
            LeaveReason::IceDisconnected => "ice_disconnected",
            LeaveReason::PeerFailed => "peer_failed",
            LeaveReason::SlowConsumer => "slow_consumer",
            LeaveReason::Shutdown => "shutdown",
            LeaveReason::Replaced => "replaced",
            LeaveReason::Removed => "removed",
            LeaveReason::RoomClosed => "room_closed",
        }
    }
}

/// Why [`MediaCore::join`] or [`MediaCore::join_with_offer`] failed.
///
/// [`MediaCore::join`]: super::MediaCore::join
/// [`MediaCore::join_with_offer`]: super::MediaCore::join_with_offer
#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    #[error("this participant has already joined")]
    AlreadyJoined,
    #[error("no such participant in this room")]
    NoSuchParticipant,
    #[error("this kind of participant joins another way")]
    WrongMode,
    #[error("could not set up the connection: {0}")]
    Setup(String),
    #[error("the offer was rejected: {0}")]
    InvalidSdp(String),
    #[error("the participant may not {0}")]
    Forbidden(&'static str),
    #[error("the room is full")]
    RoomFull,
    #[error("the offer has no audio or video the server can {0}: every m-line is inactive or uses codecs it does not support")]
    NoUsableMedia(&'static str),
}

/// Why [`MediaCore::publish_offer`] failed.
///
/// [`MediaCore::publish_offer`]: super::MediaCore::publish_offer
#[derive(Debug, thiserror::Error)]
pub enum OfferError {
    #[error("not joined")]
    NotJoined,
    #[error("no connection was provided for the first offer")]
    NoPublishConnection,
    #[error("this participant cannot offer on that connection")]
    WrongConnection,
    #[error("could not set up the connection: {0}")]
    Setup(String),
    #[error("the offer was rejected: {0}")]
    InvalidSdp(String),
    #[error("the participant may not publish")]
    Forbidden,
}

/// Why [`MediaCore::subscribe_answer`] failed.
///
/// [`MediaCore::subscribe_answer`]: super::MediaCore::subscribe_answer
#[derive(Debug, thiserror::Error)]
pub enum AnswerError {
    #[error("not joined")]
    NotJoined,
    #[error("no subscribe offer is waiting for an answer")]
    NoPendingOffer,
    #[error("the answer was rejected: {0}")]
    InvalidSdp(String),
}

/// Why [`MediaCore::add_remote_candidate`] or an ICE restart failed.
///
/// [`MediaCore::add_remote_candidate`]: super::MediaCore::add_remote_candidate
#[derive(Debug, thiserror::Error)]
pub enum CandidateError {
    #[error("not joined")]
    NotJoined,
    #[error("that peer connection has not been negotiated yet")]
    NoSuchConnection,
    #[error("too many candidates: at most {0} per connection")]
    TooMany(usize),
}

/// Why [`MediaCore::set_muted`] failed.
///
/// [`MediaCore::set_muted`]: super::MediaCore::set_muted
#[derive(Debug, thiserror::Error)]
pub enum MuteError {
    #[error("not joined")]
    NotJoined,
    #[error("no published track has mid {0:?}")]
    UnknownTrack(String),
    #[error("the participant publishes no track {0}")]
    NoSuchTrack(TrackId),
}

/// Why a video preference was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PreferenceError {
    #[error("not joined")]
    NotJoined,
    #[error("no remote video {0:?} is subscribed")]
    UnknownTrack(String),
}
