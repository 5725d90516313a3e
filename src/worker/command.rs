//! Messages from the control plane to a media worker.

use str0m::change::{SdpAnswer, SdpOffer};
use str0m::{Candidate, IceCreds, Rtc};
use tokio::sync::{mpsc, oneshot};

use crate::media::stats::RoomView;
use crate::media::{
    AnswerError, CandidateError, CoreStats, JoinError, MuteError, OfferError, ParticipantId,
    ParticipantMode,
};
use cascade_protocol::{PcKind, ServerMessage};

/// A request to a worker. Replies travel on the embedded oneshot; a dropped
/// reply sender means the worker is gone.
pub enum Command {
    /// Join a room. A bundled-client participant (`ParticipantMode::Full`)
    /// brings its subscribe connection, built off the worker thread.
    Join {
        id: ParticipantId,
        room: String,
        name: String,
        mode: ParticipantMode,
        rtc: Option<Box<Rtc>>,
        outbox: mpsc::Sender<ServerMessage>,
        reply: oneshot::Sender<Result<(), JoinError>>,
    },
    /// Apply a client offer on connection `pc`; `rtc` is needed until the
    /// first one succeeded.
    ClientOffer {
        id: ParticipantId,
        pc: PcKind,
        rtc: Option<Box<Rtc>>,
        offer: SdpOffer,
        reply: oneshot::Sender<Result<SdpAnswer, OfferError>>,
    },
    SubscribeAnswer {
        id: ParticipantId,
        answer: SdpAnswer,
        reply: oneshot::Sender<Result<(), AnswerError>>,
    },
    Candidate {
        id: ParticipantId,
        pc: PcKind,
        candidate: Candidate,
        reply: oneshot::Sender<Result<(), CandidateError>>,
    },
    /// ICE restart with the client's new credentials; replies with ours.
    RestartIce {
        id: ParticipantId,
        pc: PcKind,
        remote: IceCreds,
        reply: oneshot::Sender<Result<IceCreds, CandidateError>>,
    },
    Mute {
        id: ParticipantId,
        mid: String,
        muted: bool,
        reply: oneshot::Sender<Result<(), MuteError>>,
    },
    Leave {
        id: ParticipantId,
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
    pub peers: usize,
    pub stats: CoreStats,
    pub send_errors: u64,
}
