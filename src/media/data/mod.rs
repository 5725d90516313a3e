//! The data relay: messages on the `cascade-reliable` and `cascade-lossy`
//! data channels a client opens on its publish connection, relayed to the
//! room's other participants (or only those a message names) on the same
//! channel of their own publish connections.
//!
//! Each message is checked in order: the sender's `canPublishData` grant,
//! the 16 KiB size limit, the sender's rate ([`DataLimits`], a bucket of
//! messages and one of bytes), then the [`envelope`]. A refused message is
//! counted and the sender told ([`ParticipantEvent::DataRefused`], at most
//! once a second per reason so that a flood cannot flood signaling too). A
//! relayed copy that does not fit a receiver's SCTP send buffer (str0m's
//! per-connection `sctp_max_buffered_amount`) is dropped for that receiver
//! and counted: a receiver that cannot keep up never holds memory or other
//! receivers hostage.
//!
//! Only publish connections carry relayed channels. A subscribe connection's
//! own `cascade` channel (see `negotiate`) only brings the connection up.

pub mod envelope;

use std::time::{Duration, Instant};

use str0m::channel::{ChannelData, ChannelId};

use self::envelope::{DataChannelKind, MAX_DATA_MESSAGE_BYTES};
use super::core::MediaCore;
use super::events::ParticipantEvent;
use super::ids::{ParticipantId, PeerKey};

/// How much one participant may send, across both channels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DataLimits {
    /// Messages per second; bursts of up to a second's worth.
    pub messages_per_second: u32,
    /// Bytes per second (envelopes included); bursts of up to a second's worth.
    pub bytes_per_second: u32,
}

impl Default for DataLimits {
    /// 100 messages and 256 KiB a second: a game's 30 fps state plus chat,
    /// with room to spare, while one sender's fan-out to a room of 50 stays
    /// a few megabytes a second.
    fn default() -> Self {
        DataLimits {
            messages_per_second: 100,
            bytes_per_second: 256 * 1024,
        }
    }
}

/// Why a message was not relayed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataRefusal {
    /// The sender's token lacks `canPublishData`.
    Forbidden,
    /// Over [`MAX_DATA_MESSAGE_BYTES`].
    TooLarge,
    /// Beyond the sender's [`DataLimits`].
    RateLimited,
    /// Not the documented envelope.
    Malformed,
}

impl DataRefusal {
    pub const ALL: [DataRefusal; 4] = [
        DataRefusal::Forbidden,
        DataRefusal::TooLarge,
        DataRefusal::RateLimited,
        DataRefusal::Malformed,
    ];

    /// As in metric labels.
    pub const fn as_str(self) -> &'static str {
        match self {
            DataRefusal::Forbidden => "forbidden",
            DataRefusal::TooLarge => "too_large",
            DataRefusal::RateLimited => "rate_limited",
            DataRefusal::Malformed => "malformed",
        }
    }

    pub const fn index(self) -> usize {
        self as usize
    }
}

/// A refusal is told to its sender at most this often (per reason).
const NOTICE_INTERVAL: Duration = Duration::from_secs(1);

/// One participant's relayed channels and sending allowance.
#[derive(Debug, Default)]
pub struct DataChannels {
    /// The publish connection the channel ids belong to.
    peer: Option<PeerKey>,
    ids: [Option<ChannelId>; 2],
    allowance: Allowance,
    /// When each refusal was last told, and how many went untold since.
    told: [Option<Instant>; DataRefusal::ALL.len()],
    untold: [u32; DataRefusal::ALL.len()],
}

impl DataChannels {
    fn kind_of(&self, peer: PeerKey, id: ChannelId) -> Option<DataChannelKind> {
        if self.peer != Some(peer) {
            return None;
        }
        DataChannelKind::ALL
            .into_iter()
            .find(|k| self.ids[k.index()] == Some(id))
    }

    /// The open channel of `kind`, on which connection.
    fn channel(&self, kind: DataChannelKind) -> Option<(PeerKey, ChannelId)> {
        Some((self.peer?, self.ids[kind.index()]?))
    }
}

/// Two token buckets, refilled continuously, full at the start.
#[derive(Debug, Default)]
struct Allowance {
    messages: f64,
    bytes: f64,
    at: Option<Instant>,
}

impl Allowance {
    /// Takes one message of `size` bytes if both buckets hold enough.
    fn take(&mut self, now: Instant, limits: DataLimits, size: usize) -> bool {
        let (max_messages, max_bytes) = (
            f64::from(limits.messages_per_second),
            f64::from(limits.bytes_per_second),
        );
        match self.at {
            None => (self.messages, self.bytes) = (max_messages, max_bytes),
            Some(at) => {
                let elapsed = now.saturating_duration_since(at).as_secs_f64();
                self.messages = (self.messages + elapsed * max_messages).min(max_messages);
                self.bytes = (self.bytes + elapsed * max_bytes).min(max_bytes);
            }
        }
        self.at = Some(now);
        let size = size as f64;
        if self.messages < 1.0 || self.bytes < size {
            return false;
        }
        self.messages -= 1.0;
        self.bytes -= size;
        true
    }
}

impl MediaCore {
    /// A data channel opened on `owner`'s publish connection `key`.
    pub(super) fn on_channel_open(
        &mut self,
        key: PeerKey,
        owner: ParticipantId,
        id: ChannelId,
        label: &str,
    ) {
        let Some(kind) = DataChannelKind::from_label(label) else {
            tracing::debug!(participant = %owner, label, "data channel of no relayed label: ignored");
            return;
        };
        let Some(p) = self.members.participants.get_mut(&owner) else {
            return;
        };
        let data = &mut p.data;
        if data.peer != Some(key) {
            data.peer = Some(key);
            data.ids = [None; 2];
        }
        data.ids[kind.index()] = Some(id);
        tracing::debug!(participant = %owner, channel = kind.as_str(), "data channel open");
    }

    pub(super) fn on_channel_close(&mut self, key: PeerKey, owner: ParticipantId, id: ChannelId) {
        let Some(p) = self.members.participants.get_mut(&owner) else {
            return;
        };
        if let Some(kind) = p.data.kind_of(key, id) {
            p.data.ids[kind.index()] = None;
        }
    }

    /// A message on `owner`'s publish connection `key`: relayed, or refused.
    pub(super) fn on_channel_data(
        &mut self,
        now: Instant,
        key: PeerKey,
        owner: ParticipantId,
        message: ChannelData,
    ) {
        let limits = self.config.data_limits;
        let Some(sender) = self.members.participants.get_mut(&owner) else {
            return;
        };
        let Some(kind) = sender.data.kind_of(key, message.id) else {
            return; // a channel we do not relay
        };
        let size = message.data.len();
        let stats = &mut self.telemetry.stats;
        stats.data_messages_in[kind.index()] += 1;
        stats.data_bytes_in[kind.index()] += size as u64;
        let refusal = if !sender.grants.publish_data {
            Some((
                DataRefusal::Forbidden,
                "the token lacks the canPublishData grant".to_string(),
            ))
        } else if size > MAX_DATA_MESSAGE_BYTES {
            Some((
                DataRefusal::TooLarge,
                format!("a {size}-byte message is over the {MAX_DATA_MESSAGE_BYTES}-byte limit"),
            ))
        } else if !sender.data.allowance.take(now, limits, size) {
            Some((
                DataRefusal::RateLimited,
                format!(
                    "over {} messages or {} bytes a second",
                    limits.messages_per_second, limits.bytes_per_second
                ),
            ))
        } else {
            None
        };
        if let Some((reason, why)) = refusal {
            self.refuse_data(now, owner, reason, why);
            return;
        }
        let parsed = match envelope::parse_client(message.binary, &message.data) {
            Ok(parsed) => parsed,
            Err(e) => {
                self.refuse_data(now, owner, DataRefusal::Malformed, e.to_string());
                return;
            }
        };
        let sender = &self.members.participants[&owner];
        let from = owner.to_string();
        let identity = sender.identity.as_ref().map(|i| i.as_str());
        let mut relayed = std::mem::take(&mut self.data_buffer);
        let binary = envelope::encode_relayed(&from, identity, &parsed, &mut relayed);
        let room = &sender.room;
        let Some(members) = self.members.rooms.get(room) else {
            self.data_buffer = relayed;
            return;
        };
        let stats = &mut self.telemetry.stats;
        for receiver in members.members.iter().filter(|m| **m != owner) {
            let Some(p) = self.members.participants.get(receiver) else {
                continue;
            };
            let named = parsed.to.is_empty()
                || parsed.to.iter().any(|to| {
                    p.identity
                        .as_ref()
                        .is_some_and(|i| i.as_str() == to.as_ref())
                        || to.parse::<ParticipantId>() == Ok(*receiver)
                });
            let Some((peer_key, channel_id)) = p.data.channel(kind).filter(|_| named) else {
                continue;
            };
            let Some(peer) = self.scheduler.get_mut(peer_key) else {
                continue;
            };
            let written = peer
                .rtc
                .channel(channel_id)
                .map(|mut channel| channel.write(binary, &relayed));
            match written {
                Some(Ok(true)) => {
                    stats.data_messages_relayed[kind.index()] += 1;
                    stats.data_bytes_relayed[kind.index()] += relayed.len() as u64;
                    self.scheduler.mark_dirty(peer_key);
                }
                Some(Ok(false)) => stats.data_dropped_backlog[kind.index()] += 1,
                Some(Err(e)) => {
                    tracing::debug!(participant = %receiver, error = %e, "data channel write failed");
                    stats.data_dropped_backlog[kind.index()] += 1;
                }
                None => {} // closing
            }
        }
        self.data_buffer = relayed;
    }

    /// Counts a refused message and tells its sender, at most once per
    /// [`NOTICE_INTERVAL`] per reason.
    fn refuse_data(
        &mut self,
        now: Instant,
        owner: ParticipantId,
        reason: DataRefusal,
        why: String,
    ) {
        self.telemetry.stats.data_refused[reason.index()] += 1;
        let Some(p) = self.members.participants.get_mut(&owner) else {
            return;
        };
        let i = reason.index();
        let due =
            p.data.told[i].is_none_or(|at| now.saturating_duration_since(at) >= NOTICE_INTERVAL);
        if !due {
            p.data.untold[i] += 1;
            return;
        }
        let untold = std::mem::take(&mut p.data.untold[i]);
        p.data.told[i] = Some(now);
        let message = match untold {
            0 => format!("data message not relayed: {why}"),
            n => {
                format!("data message not relayed: {why} ({n} more refused since the last notice)")
            }
        };
        self.notify(owner, ParticipantEvent::DataRefused { reason, message });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_allowance_refills_at_the_configured_rates() {
        let limits = DataLimits {
            messages_per_second: 10,
            bytes_per_second: 1000,
        };
        let mut a = Allowance::default();
        let t0 = Instant::now();
        let taken = (0..20).filter(|_| a.take(t0, limits, 10)).count();
        assert_eq!(taken, 10, "a burst of one second's messages");
        assert!(!a.take(t0, limits, 10));
        assert!(a.take(t0 + Duration::from_millis(100), limits, 10));
        assert!(!a.take(t0 + Duration::from_millis(100), limits, 10));

        let mut b = Allowance::default();
        assert!(b.take(t0, limits, 900));
        assert!(!b.take(t0, limits, 200), "bytes run out before messages");
        assert!(b.take(t0 + Duration::from_millis(100), limits, 200));
    }
}
