//! [`WorkerClient`]: the one way the control plane talks to a media worker.
//!
//! Every client kind (WebSocket sessions, WHIP/WHEP, admin) sends commands
//! through it and gets one error type back, [`WorkerError`]: the worker was
//! busy (its queue is full: answered at once instead of waiting behind a
//! flood), it is not running, no connection could be built, or the core
//! refused the request with its own error. Building a str0m `Rtc` (key
//! generation, ~1 ms) happens here, on a blocking thread, never on a worker.

use std::time::{Duration, Instant};

use str0m::change::{SdpAnswer, SdpOffer};
use str0m::media::Mid;
use str0m::{Candidate, IceCreds, Rtc};
use tokio::sync::{mpsc, oneshot};

use crate::media::views::RoomView;
use crate::media::{
    self, AnswerError, CandidateError, JoinError, JoinRequest, LeaveReason, MuteError, OfferError,
    ParticipantId, ParticipantMode, PeerRole, PreferenceError, RoomName, TrackId, TrackSource,
    VideoPreference,
};
use crate::worker::{Command, Outbox, RoomLease, WorkerHandle, WorkerSnapshot};

/// Why a request to a worker did not get the core's answer.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError<E> {
    #[error("the media worker is busy; try again")]
    Busy,
    #[error("the media worker is not running")]
    Stopped,
    #[error("could not create a peer connection")]
    NoConnection,
    #[error(transparent)]
    Rejected(E),
}

/// A handle on one worker for sending it commands.
#[derive(Clone, Copy)]
pub struct WorkerClient<'a> {
    handle: &'a WorkerHandle,
}

impl<'a> WorkerClient<'a> {
    pub fn new(handle: &'a WorkerHandle) -> Self {
        WorkerClient { handle }
    }

    /// A bundled client joins; its subscribe connection is built here.
    pub async fn join(
        self,
        request: JoinRequest,
        outbox: Outbox,
        lease: RoomLease,
    ) -> Result<(), WorkerError<JoinError>> {
        let rtc = build_rtc(PeerRole::Subscribe).await?;
        self.request(|reply| Command::Join {
            request,
            rtc,
            outbox,
            lease,
            reply,
        })
        .await
    }

    /// A WHIP publisher or WHEP viewer joins with its offer.
    pub async fn join_with_offer(
        self,
        request: JoinRequest,
        offer: SdpOffer,
        outbox: Outbox,
        lease: RoomLease,
    ) -> Result<SdpAnswer, WorkerError<JoinError>> {
        let role = match request.mode {
            ParticipantMode::Viewer { .. } => PeerRole::Subscribe,
            _ => PeerRole::Publish,
        };
        let rtc = build_rtc(role).await?;
        self.request(|reply| Command::JoinWithOffer {
            request,
            rtc,
            offer,
            outbox,
            lease,
            reply,
        })
        .await
    }

    /// A bundled client's offer on its publish connection; `first` builds
    /// the connection.
    pub async fn publish_offer(
        self,
        id: ParticipantId,
        offer: SdpOffer,
        sources: Vec<(Mid, TrackSource)>,
        first: bool,
    ) -> Result<SdpAnswer, WorkerError<OfferError>> {
        let rtc = match first {
            true => Some(build_rtc(PeerRole::Publish).await?),
            false => None,
        };
        self.request(|reply| Command::PublishOffer {
            id,
            rtc,
            offer,
            sources,
            reply,
        })
        .await
    }

    pub async fn subscribe_answer(
        self,
        id: ParticipantId,
        answer: SdpAnswer,
    ) -> Result<(), WorkerError<AnswerError>> {
        self.request(|reply| Command::SubscribeAnswer { id, answer, reply })
            .await
    }

    pub async fn add_candidate(
        self,
        id: ParticipantId,
        role: PeerRole,
        candidate: Candidate,
    ) -> Result<(), WorkerError<CandidateError>> {
        self.request(|reply| Command::Candidate {
            id,
            role,
            candidate,
            reply,
        })
        .await
    }

    pub async fn restart_ice(
        self,
        id: ParticipantId,
        role: PeerRole,
        remote: IceCreds,
    ) -> Result<IceCreds, WorkerError<CandidateError>> {
        self.request(|reply| Command::RestartIce {
            id,
            role,
            remote,
            reply,
        })
        .await
    }

    pub async fn set_muted(
        self,
        id: ParticipantId,
        mid: String,
        muted: bool,
    ) -> Result<(), WorkerError<MuteError>> {
        self.request(|reply| Command::Mute {
            id,
            mid,
            muted,
            reply,
        })
        .await
    }

    /// An ICE restart of a bundled client's subscribe connection (its next
    /// offer carries new credentials).
    pub async fn restart_subscribe_ice(
        self,
        id: ParticipantId,
    ) -> Result<(), WorkerError<CandidateError>> {
        self.request(|reply| Command::RestartSubscribeIce { id, reply })
            .await
    }

    /// How a participant shows a remote video (adaptive stream).
    pub async fn set_video_preference(
        self,
        id: ParticipantId,
        track: TrackId,
        preference: VideoPreference,
    ) -> Result<(), WorkerError<PreferenceError>> {
        self.request(|reply| Command::VideoPreference {
            id,
            track,
            preference,
            reply,
        })
        .await
    }

    /// Removes a participant. Waits for queue space: a leave must not be lost.
    pub async fn leave(self, id: ParticipantId) {
        let _ = self.handle.commands.send(Command::Leave { id }).await;
    }

    /// Removes `id` from `room` for `reason`; `Some(false)`: it was not there.
    pub async fn remove(
        self,
        room: RoomName,
        id: ParticipantId,
        reason: LeaveReason,
        timeout: Duration,
    ) -> Option<bool> {
        self.ask(timeout, |reply| Command::Remove {
            room,
            id,
            reason,
            reply,
        })
        .await
    }

    /// Mutes `id`'s `track` in `room` for an operator; `None` if the worker
    /// did not answer in time.
    pub async fn mute_by_operator(
        self,
        room: RoomName,
        id: ParticipantId,
        track: TrackId,
        timeout: Duration,
    ) -> Option<Result<(), MuteError>> {
        self.ask(timeout, |reply| Command::OperatorMute {
            room,
            id,
            track,
            reply,
        })
        .await
    }

    /// Removes everyone in `room`; answers how many.
    pub async fn close_room(self, room: RoomName, timeout: Duration) -> Option<usize> {
        self.ask(timeout, |reply| Command::CloseRoom { room, reply })
            .await
    }

    /// Folds the worker's metrics and reports its state, within `timeout`.
    pub async fn snapshot(self, timeout: Duration) -> Option<WorkerSnapshot> {
        self.ask(timeout, |reply| Command::Snapshot { reply }).await
    }

    /// Rooms, participants and tracks, within `timeout`.
    pub async fn rooms(self, timeout: Duration) -> Option<Vec<RoomView>> {
        self.ask(timeout, |reply| Command::Rooms { reply }).await
    }

    /// Commands waiting in the worker's queue.
    pub fn queue_depth(self) -> usize {
        let commands = &self.handle.commands;
        commands.max_capacity() - commands.capacity()
    }

    async fn request<T, E>(
        self,
        command: impl FnOnce(oneshot::Sender<Result<T, E>>) -> Command,
    ) -> Result<T, WorkerError<E>> {
        self.send(command)?
            .await
            .map_err(|_| WorkerError::Stopped)?
            .map_err(WorkerError::Rejected)
    }

    async fn ask<T>(
        self,
        timeout: Duration,
        command: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Option<T> {
        let response = self.send::<T, ()>(command).ok()?;
        tokio::time::timeout(timeout, response).await.ok()?.ok()
    }

    fn send<T, E>(
        self,
        command: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<oneshot::Receiver<T>, WorkerError<E>> {
        let (reply, response) = oneshot::channel();
        self.handle
            .commands
            .try_send(command(reply))
            .map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => WorkerError::Busy,
                mpsc::error::TrySendError::Closed(_) => WorkerError::Stopped,
            })?;
        Ok(response)
    }
}

/// Builds a server `Rtc` for a connection of `role` on a blocking thread.
async fn build_rtc<E>(role: PeerRole) -> Result<Box<Rtc>, WorkerError<E>> {
    tokio::task::spawn_blocking(move || Box::new(media::server_rtc(Instant::now(), role)))
        .await
        .map_err(|_| WorkerError::NoConnection)
}
