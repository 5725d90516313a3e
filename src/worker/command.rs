//! Messages from the control plane to a media worker.
//!
//! The control plane sends them through `crate::signal::WorkerClient`, which
//! owns the reply channels and turns a full queue or a stopped worker into
//! one error type.

use str0m::change::{SdpAnswer, SdpOffer};
use str0m::media::Mid;
use str0m::{Candidate, IceCreds, Rtc};
use tokio::sync::{mpsc, oneshot};

use super::directory::RoomLease;
use crate::media::views::RoomView;
use crate::media::{
    AnswerError, CandidateError, JoinError, JoinRequest, LeaveReason, MuteError, OfferError,
    ParticipantEvent, ParticipantId, PeerRole, PreferenceError, RoomName, TrackId, TrackSource,
    VideoPreference,
};

/// Where a participant's events go. Dropped by the worker after the
/// participant's last event (`Removed`).
pub type Outbox = mpsc::Sender<ParticipantEvent>;

/// A request to a worker. Replies travel on the embedded oneshot; a dropped
/// reply sender means the worker is gone.
pub enum Command {
    /// A bundled client joins with its subscribe connection (built off the
    /// worker thread), on which the server offers.
    Join {
        request: JoinRequest,
        rtc: Box<Rtc>,
        outbox: Outbox,
        lease: RoomLease,
        reply: oneshot::Sender<Result<(), JoinError>>,
    },
    /// A WHIP publisher or WHEP viewer joins with its offer, in one step.
    JoinWithOffer {
        request: JoinRequest,
        rtc: Box<Rtc>,
        offer: SdpOffer,
        outbox: Outbox,
        lease: RoomLease,
        reply: oneshot::Sender<Result<SdpAnswer, JoinError>>,
    },
    /// Apply a bundled client's offer on its publish connection; `rtc` is
    /// needed until the first one succeeded.
    PublishOffer {
        id: ParticipantId,
        rtc: Option<Box<Rtc>>,
        offer: SdpOffer,
        /// What the offer's m-lines capture, where the client named them.
        sources: Vec<(Mid, TrackSource)>,
        reply: oneshot::Sender<Result<SdpAnswer, OfferError>>,
    },
    SubscribeAnswer {
        id: ParticipantId,
        answer: SdpAnswer,
        reply: oneshot::Sender<Result<(), AnswerError>>,
    },
    Candidate {
        id: ParticipantId,
        role: PeerRole,
        candidate: Candidate,
        reply: oneshot::Sender<Result<(), CandidateError>>,
    },
    /// ICE restart with the client's new credentials; replies with ours.
    RestartIce {
        id: ParticipantId,
        role: PeerRole,
        remote: IceCreds,
        reply: oneshot::Sender<Result<IceCreds, CandidateError>>,
    },
    Mute {
        id: ParticipantId,
        mid: String,
        muted: bool,
        reply: oneshot::Sender<Result<(), MuteError>>,
    },
    /// A bundled client asks for an ICE restart of its subscribe connection.
    RestartSubscribeIce {
        id: ParticipantId,
        reply: oneshot::Sender<Result<(), CandidateError>>,
    },
    VideoPreference {
        id: ParticipantId,
        track: TrackId,
        preference: VideoPreference,
        reply: oneshot::Sender<Result<(), PreferenceError>>,
    },
    Leave {
        id: ParticipantId,
    },
    /// An operator removes a participant of `room`; replies whether it was
    /// there.
    Remove {
        room: RoomName,
        id: ParticipantId,
        reason: LeaveReason,
        reply: oneshot::Sender<bool>,
    },
    /// An operator mutes a participant's track in `room` (media stops; only
    /// the participant unmutes it).
    OperatorMute {
        room: RoomName,
        id: ParticipantId,
        track: TrackId,
        reply: oneshot::Sender<Result<(), MuteError>>,
    },
    /// An operator closes `room`; replies how many were removed.
    CloseRoom {
        room: RoomName,
        reply: oneshot::Sender<usize>,
    },
    /// Fold the worker's counters into the metrics registry, then report
    /// them. Also the readiness probe: a worker that answers is running.
    Snapshot {
        reply: oneshot::Sender<WorkerSnapshot>,
    },
    /// List rooms, participants and tracks (admin endpoint).
    Rooms {
        reply: oneshot::Sender<Vec<RoomView>>,
    },
    /// Remove everyone and stop the worker.
    Shutdown,
}

/// A worker's state and counters at one moment.
#[derive(Debug, Clone)]
pub struct WorkerSnapshot {
    pub index: usize,
    pub rooms: usize,
    pub participants: usize,
}
