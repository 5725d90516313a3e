//! The stream allocator: each subscriber's bandwidth estimate, spread over
//! the videos it receives.
//!
//! str0m runs send-side bandwidth estimation (TWCC, Google congestion
//! control) on every subscribe connection. Whenever the estimate moves, and
//! every housekeeping round, [`allocate`] decides one layer per video (or a
//! pause) for that subscriber, the way LiveKit's and mediasoup's allocators
//! do:
//! - audio is taken off the top: it is never paused or thinned;
//! - videos are served in priority order (a screen share before cameras,
//!   once tracks carry a source), and first every video gets its lowest
//!   layer that is allowed, so as many videos as possible play;
//! - what is left raises videos one layer at a time, round robin, so the
//!   estimate is shared fairly before any video reaches its top;
//! - a video whose lowest layer does not fit is paused, and its subscriber
//!   told; it resumes when it fits again.
//!
//! Downgrades take effect at once; a pause only after the lowest layer did
//! not fit for [`PAUSE_AFTER`] around a fall of the estimate (congestion:
//! an estimate still climbing towards what the videos need pauses nothing;
//! and a video already on its lowest layer keeps it down to
//! [`LOWEST_LAYER_KEEP`] of its price); upgrades and resumes need
//! [`UPGRADE_HEADROOM`] over the layer's price and wait [`UPGRADE_HOLD`]
//! after a downgrade or pause of the same video; an upgrade goes one layer
//! at a time and only once the estimate allowed it for [`UPGRADE_STABLE`],
//! so layers do not flap on a noisy estimate or a probe's overshoot. A
//! resume starts again from the lowest layer. An upgrade is on trial for
//! [`UPGRADE_TRIAL`]: moved down for bandwidth within it, its layer is out of
//! reach for [`FAILED_UPGRADE_HOLD`], doubled for each failure in a row (a
//! bursty shaper lets short probes through whole, so the estimate can
//! promise a layer the link cannot carry, again and again), unless the
//! budget proves the layer first ([`CEILING_PROOF`] for
//! [`CEILING_PROVEN_FOR`]); probing goes on meanwhile. To find more capacity,
//! the allocator tells str0m what it would like to send
//! (`bwe().set_bitrate`): str0m probes towards it.

use std::time::{Duration, Instant};

use str0m::bwe::Bitrate;
use str0m::media::MediaKind;

use super::core::MediaCore;
use super::events::{ParticipantEvent, PauseReason, TrackSource};
use super::ids::ParticipantId;
use super::membership::{Membership, Subscription, UpgradeTrial};
use super::simulcast::Layer;

/// An upgrade needs this much more estimate than the new layer's price.
pub const UPGRADE_HEADROOM: f64 = 1.15;

/// An upgrade happens once the estimate allowed it for this long, one layer
/// at a time.
pub const UPGRADE_STABLE: Duration = Duration::from_millis(1500);

/// A video already on its lowest layer keeps it while the estimate covers
/// this share of the layer's price.
pub const LOWEST_LAYER_KEEP: f64 = 0.6;

/// After a video was moved down, it is not moved up for this long.
pub const UPGRADE_HOLD: Duration = Duration::from_secs(4);

/// An upgrade is on trial this long: moved down again for bandwidth before
/// it ends, the upgrade failed.
pub const UPGRADE_TRIAL: Duration = Duration::from_secs(6);

/// After a failed upgrade, the layer it reached is not tried again for this
/// long, doubled for each further failure in a row up to
/// [`MAX_FAILED_UPGRADE_HOLD`]. Each failed trial costs the viewer a visible
/// stall (the larger layer's keyframe and frames queue up on the link), so
/// retrying is slow: at 10 s, a browser behind a 700 kbit/s `tbf` link froze
/// for more than 2 s in 20 in 2 of 8 runs, with a trial in most windows.
pub const FAILED_UPGRADE_HOLD: Duration = Duration::from_secs(30);

/// A failed upgrade's layer comes back before its hold ends once the
/// budget held this multiple of the layer's price for [`CEILING_PROVEN_FOR`]:
/// the link carries it after all (it widened, or the failure was a blip).
/// A bursty shaper's probe overshoot, the reason for the hold, lasts
/// well under that.
pub const CEILING_PROOF: f64 = 2.0;

/// How long the budget must hold [`CEILING_PROOF`] to lift a ceiling.
pub const CEILING_PROVEN_FOR: Duration = Duration::from_secs(5);

/// The longest a failed upgrade's layer is kept out of reach.
pub const MAX_FAILED_UPGRADE_HOLD: Duration = Duration::from_secs(240);

/// How long after a subscribe connection's estimate first arrives a
/// single-layer video may be paused: the initial estimate is a guess, and a
/// video paused on a guess waits for a keyframe to come back.
pub const ESTIMATE_SETTLE: Duration = Duration::from_secs(3);

/// How long a video's lowest layer must go on not fitting before the video
/// is paused (a collapse of the estimate right after congestion often
/// recovers within a second or two).
pub const PAUSE_AFTER: Duration = Duration::from_secs(2);

/// The estimate falling by more than this share, once [`ESTIMATE_SETTLE`]
/// passed, is a sign of congestion. Only then may a video be paused: an
/// estimate that merely has not grown to what the videos need yet (str0m's
/// probing stalls at a few Mbit/s now and then, and a first probe's
/// overshoot falls back) is no reason to stop one.
const ESTIMATE_DROP: f64 = 0.05;

/// While a video is short of its best layer, the desired rate steps up
/// (or back) this often; every step up makes str0m probe.
pub const PROBE_NUDGE: Duration = Duration::from_secs(3);

/// A video short of its layer also steps the desired rate as soon as the
/// estimate grew by this factor since the last step: str0m caps a probe at
/// twice the estimate it starts from, so a probe sent while the estimate
/// was still a first guess fell short of what the videos need.
const NUDGE_ON_GROWTH: f64 = 1.5;

/// What an audio track is priced at before its rate is measured.
const AUDIO_PRICE: u64 = 48_000;

/// Prices of unmeasured video layers by quality, for one to three layers
/// (a single layer is priced as a middle one).
const LAYER_PRICES: [u64; 3] = [180_000, 550_000, 1_800_000];

/// One video as the allocator sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Demand {
    /// Price of each layer in bits per second, `None` where the layer
    /// does not flow; index = quality.
    pub layers: Vec<Option<u64>>,
    /// The highest layer the subscriber may get (its preference); `None`:
    /// it does not want the video now (hidden tile).
    pub cap: Option<usize>,
    /// The highest layer an upgrade may reach now, below `cap` after a
    /// failed upgrade. What the subscriber wants is still `cap`: the
    /// shortfall keeps str0m probing, which is how the link can prove it
    /// carries the failed layer after all.
    pub ceiling: Option<usize>,
    /// The layer currently chosen, `None` if paused or new.
    pub current: Option<usize>,
    /// Whether upgrades are on hold after a recent downgrade.
    pub hold: bool,
    /// Higher is served first.
    pub priority: u8,
    /// Whether any layer ever flowed (a track that never did is starting).
    pub ever_flowed: bool,
}

/// What the allocator decided for one video.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Layer(usize),
    Paused(PauseReason),
    /// The subscriber asked not to receive it.
    Unwanted,
}

/// The allocation of one subscriber's estimate.
#[derive(Debug, Clone, PartialEq)]
pub struct Allocation {
    pub decisions: Vec<Decision>,
    /// Some video got less than its best allowed layer.
    pub deficit: bool,
    /// Bits per second the chosen layers cost.
    pub allocated: u64,
    /// Bits per second the best allowed layers would cost.
    pub wanted: u64,
}

/// Spreads `budget` bits per second (the estimate minus audio) over `demands`.
pub fn allocate(budget: u64, demands: &[Demand]) -> Allocation {
    let mut order: Vec<usize> = (0..demands.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(demands[i].priority));
    let mut decisions = vec![Decision::Unwanted; demands.len()];
    let mut left = budget;
    let mut wanted = 0;

    // Every video that can, gets its lowest allowed layer.
    for &i in &order {
        let d = &demands[i];
        let Some(cap) = d.cap else { continue };
        let Some((lowest, price)) = d.allowed(d.reachable(cap)).next() else {
            decisions[i] = Decision::Paused(PauseReason::Publisher);
            continue;
        };
        wanted += d.allowed(cap).last().map_or(0, |(_, p)| p);
        let need = d.price_to_reach(lowest, price);
        let held = d.hold && d.current.is_none();
        if need <= left && !held {
            decisions[i] = Decision::Layer(lowest);
            left = left.saturating_sub(price);
        } else {
            decisions[i] = Decision::Paused(PauseReason::Bandwidth);
        }
    }

    // Then one layer up at a time, round robin, while it fits.
    loop {
        let mut raised = false;
        for &i in &order {
            let Decision::Layer(at) = decisions[i] else {
                continue;
            };
            let d = &demands[i];
            let Some(cap) = d.cap else { continue };
            let Some((next, price)) = d.allowed(d.reachable(cap)).find(|(l, _)| *l > at) else {
                continue;
            };
            if d.hold && d.current.is_some_and(|c| next > c) {
                continue;
            }
            let paid = d.layers[at].unwrap_or(0);
            let extra = d.price_to_reach(next, price).saturating_sub(paid);
            if extra <= left {
                decisions[i] = Decision::Layer(next);
                left = left.saturating_sub(price.saturating_sub(paid));
                raised = true;
            }
        }
        if !raised {
            break;
        }
    }

    let allocated = budget - left;
    let deficit = decisions.iter().zip(demands).any(|(decision, d)| {
        let best = d.cap.and_then(|cap| d.allowed(cap).last().map(|(l, _)| l));
        match (decision, best) {
            (Decision::Paused(PauseReason::Bandwidth), _) => true,
            (Decision::Layer(l), Some(best)) => *l < best,
            _ => false,
        }
    });
    Allocation {
        decisions,
        deficit,
        allocated,
        wanted,
    }
}

impl Demand {
    /// The highest layer that may be chosen now under `cap`.
    fn reachable(&self, cap: usize) -> usize {
        self.ceiling.map_or(cap, |c| c.min(cap))
    }

    /// The flowing layers up to `cap`, with their prices, lowest first.
    fn allowed(&self, cap: usize) -> impl Iterator<Item = (usize, u64)> + '_ {
        self.layers
            .iter()
            .enumerate()
            .take(cap + 1)
            .filter_map(|(l, price)| price.map(|p| (l, p)))
    }

    /// What the estimate must hold to move to `layer` costing `price`:
    /// staying or going down costs the price, going up (or resuming) costs
    /// the headroom too.
    fn price_to_reach(&self, layer: usize, price: u64) -> u64 {
        let lowest = self.layers.iter().position(Option::is_some);
        match self.current {
            // Keeping the lowest layer through a dip of the estimate beats
            // a pause and the keyframe a resume costs.
            Some(c) if layer <= c && Some(layer) == lowest => {
                (price as f64 * LOWEST_LAYER_KEEP) as u64
            }
            Some(c) if layer <= c => price,
            _ => (price as f64 * UPGRADE_HEADROOM) as u64,
        }
    }
}

/// The highest layer no larger than needed to show a video at
/// `width`×`height` device pixels: the smallest layer that covers it (the
/// top layer when none does, or when no size was given).
pub fn layer_cap(layers: &[Layer], width: u32, height: u32) -> usize {
    let top = layers.len().saturating_sub(1);
    if width == 0 && height == 0 {
        return top;
    }
    (0..layers.len())
        .find(|&l| {
            let (w, h) = layer_size(layers, l);
            // Within a tenth is close enough: no blur worth a bigger layer.
            u32::from(w) * 10 >= width * 9 || u32::from(h) * 10 >= height * 9
        })
        .unwrap_or(top)
}

/// A layer's frame size: as its keyframes say, or else assumed from the
/// usual scale of 2 between layers under a 1280×720 top layer.
fn layer_size(layers: &[Layer], layer: usize) -> (u16, u16) {
    if let Some(size) = layers[layer].size {
        return size;
    }
    let shift = (layers.len() - 1 - layer) as u32;
    (1280 >> shift, 720 >> shift)
}

/// The price of a flowing layer: measured, or its quality's default.
fn layer_price(layers: &[Layer], layer: usize) -> Option<u64> {
    let l = &layers[layer];
    if !l.flowing {
        return None;
    }
    Some(match l.meter.bps() {
        0 if layers.len() == 1 => LAYER_PRICES[1],
        0 => LAYER_PRICES[(LAYER_PRICES.len() - layers.len().min(3) + layer).min(2)],
        bps => bps,
    })
}

/// A subscriber's allocator state.
#[derive(Debug)]
pub struct AllocatorState {
    /// The latest estimate of the subscribe connection, once str0m gave one.
    pub estimate: Option<Bitrate>,
    /// When the first estimate arrived.
    pub estimate_since: Option<Instant>,
    /// When the estimate last fell by more than [`ESTIMATE_DROP`].
    estimate_fell: Option<Instant>,
    /// What was last passed to `bwe().set_bitrate` as desired.
    desired: Option<u64>,
    /// When the desired rate is stepped next while a video is short.
    next_nudge: Instant,
    /// Whether the desired rate is stepped up now.
    nudged: bool,
    /// The estimate when the desired rate last changed.
    estimate_at_nudge: u64,
    /// Whether the last allocation left a video short (for the metric).
    pub deficit: bool,
}

impl AllocatorState {
    pub fn new(now: Instant) -> Self {
        AllocatorState {
            estimate: None,
            estimate_since: None,
            estimate_fell: None,
            desired: None,
            next_nudge: now + PROBE_NUDGE,
            nudged: false,
            estimate_at_nudge: 0,
            deficit: false,
        }
    }

    /// Whether the first estimate arrived at least [`ESTIMATE_SETTLE`] ago.
    fn settled(&self, now: Instant) -> bool {
        self.estimate_since
            .is_some_and(|t| now >= t + ESTIMATE_SETTLE)
    }
}

impl MediaCore {
    /// str0m's estimate for `subscriber`'s subscribe connection moved.
    pub(super) fn on_estimate(
        &mut self,
        now: Instant,
        subscriber: ParticipantId,
        estimate: Bitrate,
    ) {
        let Some(p) = self.members.participants.get_mut(&subscriber) else {
            return;
        };
        if p.allocator.estimate == Some(estimate) {
            return;
        }
        tracing::trace!(participant = %subscriber, %estimate, "bandwidth estimate");
        // While the first probes settle, their overshoot falls back: no sign
        // of congestion yet.
        let fell = p.allocator.settled(now)
            && p.allocator.estimate.is_some_and(|before| {
                (estimate.as_u64() as f64) < before.as_u64() as f64 * (1.0 - ESTIMATE_DROP)
            });
        if fell {
            p.allocator.estimate_fell = Some(now);
        }
        p.allocator.estimate = Some(estimate);
        p.allocator.estimate_since.get_or_insert(now);
        self.allocate_for(now, subscriber);
    }

    /// Re-runs every subscriber's allocation (prices and layers change).
    pub(super) fn allocate_all(&mut self, now: Instant) {
        let subscribers: Vec<ParticipantId> = self
            .members
            .participants
            .values()
            .filter(|p| p.subscribe_peer.is_some())
            .map(|p| p.id)
            .collect();
        for id in subscribers {
            self.allocate_for(now, id);
        }
    }

    /// Chooses a layer (or a pause) for each video `subscriber` receives,
    /// asks for keyframes where a switch waits for one, tells the subscriber
    /// of pauses and resumes, and sets the probing target.
    pub(super) fn allocate_for(&mut self, now: Instant, subscriber: ParticipantId) {
        let estimate = match self.members.participants.get(&subscriber) {
            Some(p) => p
                .allocator
                .estimate
                .unwrap_or(super::INITIAL_BANDWIDTH_ESTIMATE),
            None => return,
        };
        let (audio, demands, videos) = demands_of(&self.members, subscriber, now);
        let budget = estimate.as_u64().saturating_sub(audio);
        let allocation = allocate(budget, &demands);

        let Some(p) = self.members.participants.get_mut(&subscriber) else {
            return;
        };
        let settled = p.allocator.settled(now);
        let estimate_fell = p.allocator.estimate_fell;
        let mut keyframes = Vec::new();
        let mut notices = Vec::new();
        for (n, (&index, decision)) in videos.iter().zip(&allocation.decisions).enumerate() {
            let sub = &mut p.subscriptions[index];
            let Some(source) = sub.source else { continue };
            // The lowest layer not fitting pauses the video only once the
            // estimate is more than a first guess, the shortfall lasted, and
            // the estimate fell around it (congestion, not a slow ramp).
            let short_since = match *decision {
                Decision::Paused(PauseReason::Bandwidth) => *sub.short_since.get_or_insert(now),
                _ => {
                    sub.short_since = None;
                    now
                }
            };
            let congested = estimate_fell.is_some_and(|t| t + PAUSE_AFTER >= short_since);
            let pause = settled && congested && now >= short_since + PAUSE_AFTER;
            let target = match (*decision, sub.down.target()) {
                // Up one layer at a time, and only once the estimate held
                // for it a while: a probe through a bursty shaper can
                // overshoot the link for a moment.
                (Decision::Layer(l), Some(at)) if l > at => {
                    let since = *sub.upgrade_since.get_or_insert(now);
                    match now >= since + UPGRADE_STABLE {
                        true => {
                            sub.upgrade_since = None;
                            Some(at + 1)
                        }
                        false => Some(at),
                    }
                }
                // A resume starts from the lowest layer and climbs like
                // any upgrade: the estimate that allows more may be the
                // same kind of overshoot that caused the pause.
                (Decision::Layer(_), None) if sub.told_paused == Some(PauseReason::Bandwidth) => {
                    sub.upgrade_since = None;
                    demands[n].layers.iter().position(Option::is_some)
                }
                (Decision::Layer(l), _) => {
                    sub.upgrade_since = None;
                    Some(l)
                }
                (Decision::Paused(PauseReason::Bandwidth), at) if !pause => at.or(Some(0)),
                (Decision::Paused(PauseReason::Bandwidth) | Decision::Unwanted, _) => None,
                // Nothing flows: keep the choice for when something does.
                (Decision::Paused(PauseReason::Publisher), at) => at,
            };
            let before = sub.down.target();
            let down = match (before, target) {
                (Some(b), Some(t)) => t < b,
                (Some(_), None) => *decision != Decision::Unwanted,
                _ => false,
            };
            if down {
                sub.upgrade_hold_until = Some(now + UPGRADE_HOLD);
            }
            let for_bandwidth =
                down && before.is_some_and(|b| demands[n].cap.is_some_and(|cap| cap >= b));
            judge_trial(&mut sub.trial, now, before, target, for_bandwidth);
            lift_proven_ceiling(&mut sub.trial, now, budget, &demands[n]);
            if sub.down.set_target(target) && target != before {
                keyframes.push((source, target));
            }
            let paused = match *decision {
                Decision::Layer(_) => None,
                Decision::Paused(PauseReason::Bandwidth) if target.is_some() => None,
                // A track that never flowed is starting, not paused.
                Decision::Paused(PauseReason::Publisher) if !demands[n].ever_flowed => {
                    sub.told_paused
                }
                Decision::Paused(reason) => Some(reason),
                Decision::Unwanted => sub.told_paused, // its subscriber hid it
            };
            if paused != sub.told_paused {
                tracing::debug!(participant = %subscriber, track = %source.track, ?paused, ?decision, "video paused or resumed");
                notices.push(match paused {
                    Some(reason) => ParticipantEvent::TrackPaused {
                        participant: source.participant,
                        track: source.track,
                        reason,
                    },
                    None => ParticipantEvent::TrackResumed {
                        participant: source.participant,
                        track: source.track,
                    },
                });
                sub.told_paused = paused;
            }
        }
        if allocation.deficit && !p.allocator.deficit {
            self.telemetry.stats.allocation_deficits += 1;
        }
        p.allocator.deficit = allocation.deficit;
        // Probing: `desired` is what the best allowed layers cost, and while
        // a video is short it steps up a little every PROBE_NUDGE, which
        // makes str0m probe for real. No padding minimum: str0m pads with
        // old packets from the send history, which receivers take for late
        // media.
        let desired = (allocation.wanted + audio).max(super::INITIAL_BANDWIDTH_ESTIMATE.as_u64());
        let grown =
            estimate.as_u64() as f64 >= p.allocator.estimate_at_nudge as f64 * NUDGE_ON_GROWTH;
        let nudge = allocation.deficit && (now >= p.allocator.next_nudge || grown);
        if nudge {
            p.allocator.next_nudge = now + PROBE_NUDGE;
            p.allocator.nudged = !p.allocator.nudged;
        }
        let desired = match p.allocator.nudged {
            true => desired + desired / 50,
            false => desired,
        };
        let retarget = nudge
            || p.allocator
                .desired
                .is_none_or(|d| differs_by_a_tenth(d, desired));
        let peer = p.subscribe_peer;
        if retarget {
            p.allocator.desired = Some(desired);
            p.allocator.estimate_at_nudge = estimate.as_u64();
            if let Some(peer) = peer.and_then(|k| self.scheduler.get_mut(k)) {
                peer.rtc
                    .bwe()
                    .set_bitrate(Bitrate::ZERO, Bitrate::bps(desired));
            }
            if let Some(key) = peer {
                self.scheduler.mark_dirty(key);
            }
        }
        for (source, layer) in keyframes {
            self.request_keyframe(now, source, layer);
        }
        for notice in notices {
            self.notify(subscriber, notice);
        }
    }
}

/// Puts an upgrade on trial, ends a trial that held, and fails one moved
/// down for bandwidth (the preference allowed the old layer): its layer is
/// then out of reach for a while, longer after each failure in a row.
fn judge_trial(
    trial: &mut UpgradeTrial,
    now: Instant,
    before: Option<usize>,
    target: Option<usize>,
    for_bandwidth: bool,
) {
    if let Some((layer, at)) = trial.upgraded {
        let moved_below = target.is_none_or(|t| t < layer);
        if now >= at + UPGRADE_TRIAL {
            trial.upgraded = None;
            trial.failures = 0;
        } else if moved_below && for_bandwidth {
            trial.upgraded = None;
            trial.failures = (trial.failures + 1).min(8);
            let hold = FAILED_UPGRADE_HOLD
                .saturating_mul(1 << (trial.failures - 1))
                .min(MAX_FAILED_UPGRADE_HOLD);
            trial.ceiling = Some((layer, now + hold));
        } else if moved_below {
            trial.upgraded = None;
        }
    }
    if let (Some(b), Some(t)) = (before, target) {
        if t > b {
            trial.upgraded = Some((t, now));
        }
    }
}

/// Lifts a failed upgrade's ceiling once the budget held
/// [`CEILING_PROOF`] times the failed layer's price for
/// [`CEILING_PROVEN_FOR`].
fn lift_proven_ceiling(trial: &mut UpgradeTrial, now: Instant, budget: u64, demand: &Demand) {
    let Some((layer, until)) = trial.ceiling else {
        trial.proven_since = None;
        return;
    };
    let price = demand.layers.get(layer).copied().flatten();
    let proven = now < until && price.is_some_and(|p| budget as f64 >= p as f64 * CEILING_PROOF);
    if !proven {
        trial.proven_since = None;
        return;
    }
    let since = *trial.proven_since.get_or_insert(now);
    if now >= since + CEILING_PROVEN_FOR {
        tracing::debug!(
            layer,
            "the link proved a failed upgrade's layer: ceiling lifted"
        );
        trial.ceiling = None;
        trial.proven_since = None;
    }
}

fn differs_by_a_tenth(a: u64, b: u64) -> bool {
    a.abs_diff(b) * 10 > a.max(b)
}

/// What `subscriber` receives, as the allocator sees it: the audio's total
/// price, one demand per video, and which subscription each demand is.
fn demands_of(
    members: &Membership,
    subscriber: ParticipantId,
    now: Instant,
) -> (u64, Vec<Demand>, Vec<usize>) {
    let mut audio = 0;
    let mut demands = Vec::new();
    let mut videos = Vec::new();
    let Some(p) = members.participants.get(&subscriber) else {
        return (audio, demands, videos);
    };
    for (index, sub) in p.subscriptions.iter().enumerate() {
        if sub.forwarding_mid().is_none() {
            continue;
        }
        let Some(track) = sub
            .source
            .and_then(|s| members.participants.get(&s.participant)?.track(s.track))
        else {
            continue;
        };
        if sub.kind == MediaKind::Audio {
            audio += match track.layers[0].meter.bps() {
                0 => AUDIO_PRICE,
                bps => bps,
            };
            continue;
        }
        demands.push(demand(sub, &track.layers, track.source, now));
        videos.push(index);
    }
    (audio, demands, videos)
}

fn demand(sub: &Subscription, layers: &[Layer], source: TrackSource, now: Instant) -> Demand {
    let pref = sub.preference;
    // A failed upgrade's layer is out of reach for a while (not the lowest:
    // that one is the pause logic's).
    let ceiling = match sub.trial.ceiling {
        Some((layer, until)) if layer > 0 && now < until => Some(layer - 1),
        _ => None,
    };
    Demand {
        layers: (0..layers.len()).map(|l| layer_price(layers, l)).collect(),
        cap: pref
            .visible
            .then(|| layer_cap(layers, pref.width, pref.height)),
        ceiling,
        current: sub.down.target(),
        hold: sub.upgrade_hold_until.is_some_and(|t| now < t),
        // A shared screen is read, not glanced at: it is served first.
        priority: u8::from(source == TrackSource::ScreenShare),
        ever_flowed: layers.iter().any(|l| l.ssrc.is_some()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn camera(current: Option<usize>) -> Demand {
        Demand {
            layers: vec![Some(150_000), Some(500_000), Some(1_700_000)],
            cap: Some(2),
            ceiling: None,
            current,
            hold: false,
            priority: 0,
            ever_flowed: true,
        }
    }

    #[test]
    fn an_upgrade_moved_down_on_trial_puts_its_layer_out_of_reach_longer_each_time() {
        let t0 = Instant::now();
        let mut trial = UpgradeTrial::default();
        let mut now = t0;
        for failures in 1..=5u32 {
            judge_trial(&mut trial, now, Some(1), Some(2), false);
            assert_eq!(trial.upgraded, Some((2, now)));
            now += Duration::from_secs(2);
            judge_trial(&mut trial, now, Some(2), Some(1), true);
            let hold = FAILED_UPGRADE_HOLD
                .saturating_mul(1 << (failures - 1))
                .min(MAX_FAILED_UPGRADE_HOLD);
            assert_eq!(trial.failures, failures);
            assert_eq!(trial.ceiling, Some((2, now + hold)), "failure {failures}");
            now += hold;
        }
        // An upgrade that outlives its trial clears the failures.
        judge_trial(&mut trial, now, Some(1), Some(2), false);
        now += UPGRADE_TRIAL;
        judge_trial(&mut trial, now, Some(2), Some(2), false);
        assert_eq!((trial.upgraded, trial.failures), (None, 0));
        // A move down the subscriber asked for (smaller tile) is no failure.
        judge_trial(&mut trial, now, Some(1), Some(2), false);
        judge_trial(&mut trial, now, Some(2), Some(0), false);
        assert_eq!((trial.upgraded, trial.failures), (None, 0));
    }

    #[test]
    fn a_ceiling_holds_the_layer_down_but_the_want_keeps_probing() {
        let held = Demand {
            ceiling: Some(0),
            ..camera(Some(0))
        };
        let a = allocate(5_000_000, &[held]);
        assert_eq!(layers(&a), [Decision::Layer(0)]);
        assert!(a.deficit, "short of the top: str0m keeps probing");
        assert_eq!(a.wanted, 1_700_000);
    }

    #[test]
    fn a_ceiling_lifts_once_the_budget_proves_the_failed_layer() {
        let t0 = Instant::now();
        let demand = camera(Some(0));
        let mut trial = UpgradeTrial {
            ceiling: Some((1, t0 + FAILED_UPGRADE_HOLD)),
            ..UpgradeTrial::default()
        };
        let enough = (500_000.0 * CEILING_PROOF) as u64;
        lift_proven_ceiling(&mut trial, t0, enough, &demand);
        // A dip below the proof starts the wait over.
        let t1 = t0 + CEILING_PROVEN_FOR / 2;
        lift_proven_ceiling(&mut trial, t1, enough - 1, &demand);
        assert_eq!(trial.proven_since, None);
        lift_proven_ceiling(&mut trial, t1, enough, &demand);
        lift_proven_ceiling(&mut trial, t0 + CEILING_PROVEN_FOR, enough, &demand);
        assert!(trial.ceiling.is_some(), "not proven for long enough yet");
        lift_proven_ceiling(&mut trial, t1 + CEILING_PROVEN_FOR, enough, &demand);
        assert_eq!(trial.ceiling, None);
    }

    fn layers(a: &Allocation) -> Vec<Decision> {
        a.decisions.clone()
    }

    #[test]
    fn a_narrow_link_gets_the_low_layer_and_a_wide_one_the_top() {
        let a = allocate(400_000, &[camera(Some(0))]);
        assert_eq!(layers(&a), [Decision::Layer(0)]);
        assert!(a.deficit);
        let a = allocate(5_000_000, &[camera(Some(0))]);
        assert_eq!(layers(&a), [Decision::Layer(2)]);
        assert!(!a.deficit);
        assert_eq!(a.allocated, 1_700_000);
        assert_eq!(a.wanted, 1_700_000);
    }

    #[test]
    fn every_video_plays_before_any_gets_better() {
        let demands = [camera(Some(0)), camera(Some(0)), camera(Some(0))];
        let a = allocate(1_300_000, &demands);
        // 3 x 150k first, then raises in turn: 500k + 500k fit, a third not.
        assert_eq!(
            layers(&a),
            [Decision::Layer(1), Decision::Layer(1), Decision::Layer(0)]
        );
    }

    #[test]
    fn a_video_whose_lowest_layer_does_not_fit_is_paused() {
        let a = allocate(80_000, &[camera(Some(0))]);
        assert_eq!(layers(&a), [Decision::Paused(PauseReason::Bandwidth)]);
        let none_flowing = Demand {
            layers: vec![None, None],
            ..camera(None)
        };
        let a = allocate(5_000_000, &[none_flowing]);
        assert_eq!(layers(&a), [Decision::Paused(PauseReason::Publisher)]);
    }

    #[test]
    fn upgrades_need_headroom_and_wait_after_a_downgrade_but_downgrades_do_not() {
        // 1.7M fits 1.8M but not with 15 % headroom: stay on the middle.
        let a = allocate(1_800_000, &[camera(Some(1))]);
        assert_eq!(layers(&a), [Decision::Layer(1)]);
        // Already on top: 1.8M keeps it there.
        let a = allocate(1_800_000, &[camera(Some(2))]);
        assert_eq!(layers(&a), [Decision::Layer(2)]);
        // Down at once when it no longer fits.
        let a = allocate(1_600_000, &[camera(Some(2))]);
        assert_eq!(layers(&a), [Decision::Layer(1)]);
        let held = Demand {
            hold: true,
            ..camera(Some(0))
        };
        assert_eq!(layers(&allocate(5_000_000, &[held])), [Decision::Layer(0)]);
    }

    #[test]
    fn preferences_cap_the_layer_and_hidden_videos_get_nothing() {
        let capped = Demand {
            cap: Some(1),
            ..camera(Some(0))
        };
        let hidden = Demand {
            cap: None,
            ..camera(Some(0))
        };
        let a = allocate(10_000_000, &[capped, hidden]);
        assert_eq!(layers(&a), [Decision::Layer(1), Decision::Unwanted]);
        assert!(!a.deficit);
    }

    #[test]
    fn a_video_on_its_lowest_layer_keeps_it_through_a_dip() {
        assert_eq!(
            layers(&allocate(100_000, &[camera(Some(0))])),
            [Decision::Layer(0)]
        );
        assert_eq!(
            layers(&allocate(100_000, &[camera(None)])),
            [Decision::Paused(PauseReason::Bandwidth)],
            "but does not start on it"
        );
        assert_eq!(
            layers(&allocate(80_000, &[camera(Some(0))])),
            [Decision::Paused(PauseReason::Bandwidth)]
        );
    }

    #[test]
    fn higher_priority_is_served_first() {
        let screen = Demand {
            priority: 1,
            ..camera(None)
        };
        let a = allocate(200_000, &[camera(None), screen]);
        assert_eq!(
            layers(&a),
            [Decision::Paused(PauseReason::Bandwidth), Decision::Layer(0)]
        );
    }

    #[test]
    fn a_stopped_layer_is_skipped() {
        let top_gone = Demand {
            layers: vec![Some(150_000), Some(500_000), None],
            ..camera(Some(2))
        };
        let a = allocate(5_000_000, &[top_gone]);
        assert_eq!(layers(&a), [Decision::Layer(1)]);
    }

    #[test]
    fn the_cap_is_the_smallest_layer_that_covers_the_shown_size() {
        let mut three = crate::media::simulcast::layers_for(&["q".into(), "h".into(), "f".into()]);
        assert_eq!(layer_cap(&three, 0, 0), 2, "no size: no limit");
        assert_eq!(layer_cap(&three, 320, 180), 0);
        assert_eq!(layer_cap(&three, 400, 225), 1);
        assert_eq!(layer_cap(&three, 1920, 1080), 2);
        three[1].size = Some((960, 540));
        assert_eq!(layer_cap(&three, 800, 450), 1, "measured sizes win");
    }
}
