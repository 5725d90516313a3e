//! Active speaker detection: who in a room is speaking, from the RFC 6464
//! audio level every publisher's audio packets carry (str0m's
//! `audio_level`, in -dBov: 0 is full scale, -127 silence).
//!
//! In LiveKit's spirit: each audio track's packets are observed over a
//! window of [`SPEAKER_ROUND`]; a window counts as speech only when at least
//! [`MIN_LOUD_SHARE`] of its packets are louder than [`ACTIVE_LEVEL`] (a
//! click or a cough is not speech), and its loudness is then the loud
//! packets' mean amplitude scaled by their share. The windows are smoothed
//! ([`SMOOTHING`]), and a track starts speaking above [`START_LOUDNESS`] and
//! stops below half of it, so the marker does not flicker between words.
//! A muted track never speaks, and only microphones count (not the sound
//! of a shared screen).
//!
//! Every round, each room's speakers (loudest first) are compared with the
//! list last sent; on a change every member is told (`active_speakers`),
//! so updates go out at most once a round and only when something changed.
//! A member that joined since is told the current list once.

use std::time::{Duration, Instant};

use str0m::media::MediaKind;

use super::core::MediaCore;
use super::events::{ParticipantEvent, Speaker, TrackSource};
use super::ids::ParticipantId;
use super::membership::{Membership, Participant};

/// How often speakers are decided, and the observation window.
pub const SPEAKER_ROUND: Duration = Duration::from_millis(300);

/// A packet louder than this (in dBov below full scale) counts as loud.
pub const ACTIVE_LEVEL: u8 = 40;

/// The share of a window's packets that must be loud for it to count as
/// speech.
pub const MIN_LOUD_SHARE: f32 = 0.4;

/// The weight of the newest window in the smoothed loudness.
pub const SMOOTHING: f32 = 0.5;

/// The smoothed loudness (linear amplitude, 1.0 = full scale) a track must
/// reach to start speaking; it stops below half of it. Two windows of loud
/// packets at [`ACTIVE_LEVEL`], [`MIN_LOUD_SHARE`] of them, get there; one
/// window of speech at -30 dBov does.
pub const START_LOUDNESS: f32 = 0.003;

/// One audio track's speech detector.
#[derive(Debug, Default, Clone)]
pub struct SpeechMeter {
    /// Packets in the current window, and how many of them were loud.
    packets: u32,
    loud: u32,
    /// Sum of the loud packets' linear amplitudes.
    loud_amplitude: f32,
    /// Smoothed loudness over the windows.
    loudness: f32,
    speaking: bool,
}

impl SpeechMeter {
    /// One packet's audio level (-dBov, either sign).
    pub fn observe(&mut self, level: i8) {
        let dbov = level.unsigned_abs().min(127);
        self.packets += 1;
        if dbov <= ACTIVE_LEVEL {
            self.loud += 1;
            self.loud_amplitude += amplitude(dbov);
        }
    }

    /// Ends the window: folds it into the smoothed loudness and decides
    /// whether the track speaks. A muted track is silent.
    pub fn close_window(&mut self, muted: bool) {
        let share = match self.packets {
            0 => 0.0,
            n => self.loud as f32 / n as f32,
        };
        let window = match share >= MIN_LOUD_SHARE && !muted {
            true => self.loud_amplitude / self.loud as f32 * share,
            false => 0.0,
        };
        self.loudness += (window - self.loudness) * SMOOTHING;
        self.speaking = match self.speaking {
            true => self.loudness >= START_LOUDNESS / 2.0,
            false => self.loudness >= START_LOUDNESS,
        } && !muted;
        self.packets = 0;
        self.loud = 0;
        self.loud_amplitude = 0.0;
    }

    /// The smoothed loudness while speaking.
    pub fn speaking(&self) -> Option<f32> {
        self.speaking.then_some(self.loudness)
    }
}

/// The linear amplitude of a level `dbov` below full scale.
fn amplitude(dbov: u8) -> f32 {
    10f32.powf(-f32::from(dbov) / 20.0)
}

/// The level in -dBov (0..=127) of a linear amplitude.
fn dbov(amplitude: f32) -> u8 {
    match amplitude > 0.0 {
        true => (-20.0 * amplitude.log10()).clamp(0.0, 127.0).round() as u8,
        false => 127,
    }
}

/// A participant's loudness while any of its audio tracks speaks.
fn speaking(p: &Participant) -> Option<f32> {
    p.published
        .iter()
        .filter(|t| t.source == TrackSource::Microphone)
        .filter_map(|t| t.speech.speaking())
        .reduce(f32::max)
}

impl MediaCore {
    /// Closes every audio track's window and tells rooms whose speakers
    /// changed (and members that joined since the last list).
    pub(super) fn speaker_round(&mut self, now: Instant) {
        if now < self.next_speaker_round {
            return;
        }
        self.next_speaker_round = now + SPEAKER_ROUND;
        let Membership {
            rooms,
            participants,
        } = &mut self.members;
        for p in participants.values_mut() {
            for t in p
                .published
                .iter_mut()
                .filter(|t| t.kind == MediaKind::Audio)
            {
                t.speech.close_window(t.muted || t.operator_muted);
            }
        }
        let mut notices: Vec<(ParticipantId, Vec<Speaker>)> = Vec::new();
        for room in rooms.values_mut() {
            let mut loud: Vec<(ParticipantId, f32)> = room
                .members
                .iter()
                .filter_map(|id| Some((*id, speaking(participants.get(id)?)?)))
                .collect();
            loud.sort_by(|a, b| b.1.total_cmp(&a.1));
            let ids: Vec<ParticipantId> = loud.iter().map(|(id, _)| *id).collect();
            let changed = ids != room.speakers;
            let list: Vec<Speaker> = loud
                .iter()
                .map(|&(participant, loudness)| Speaker {
                    participant,
                    level: dbov(loudness),
                })
                .collect();
            for id in &room.members {
                let Some(p) = participants.get_mut(id) else {
                    continue;
                };
                // A newcomer hears the current list once, even if empty
                // lists are not news to it.
                let tell = changed || (!p.speakers_told && !list.is_empty());
                p.speakers_told = true;
                if tell {
                    notices.push((*id, list.clone()));
                }
            }
            room.speakers = ids;
        }
        if !notices.is_empty() {
            self.telemetry.stats.speaker_updates += 1;
        }
        for (to, speakers) in notices {
            self.notify(to, ParticipantEvent::ActiveSpeakers(speakers));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A window of `packets` packets, `loud` of them at `level` dBov and the
    /// others silent.
    fn window(meter: &mut SpeechMeter, packets: u32, loud: u32, level: i8, muted: bool) {
        for i in 0..packets {
            meter.observe(if i < loud { level } else { -127 });
        }
        meter.close_window(muted);
    }

    #[test]
    fn speech_starts_within_a_round_or_two_and_ends_after_a_pause() {
        let mut meter = SpeechMeter::default();
        window(&mut meter, 15, 15, -30, false);
        assert!(meter.speaking().is_some(), "a loud window starts speech");
        // A short pause between words keeps the marker.
        window(&mut meter, 15, 0, -30, false);
        assert!(meter.speaking().is_some());
        let mut rounds = 0;
        while meter.speaking().is_some() {
            window(&mut meter, 15, 0, -30, false);
            rounds += 1;
            assert!(rounds < 10, "silence ends speech");
        }
        assert!(rounds >= 2, "not at the first quiet window: {rounds}");
    }

    #[test]
    fn clicks_quiet_hum_and_muted_tracks_are_not_speech() {
        let mut meter = SpeechMeter::default();
        for _ in 0..10 {
            window(&mut meter, 15, 3, -10, false); // a loud click now and then
        }
        assert_eq!(meter.speaking(), None, "too few loud packets");
        for _ in 0..10 {
            window(&mut meter, 15, 15, -55, false); // background hum
        }
        assert_eq!(meter.speaking(), None, "quieter than the active level");
        window(&mut meter, 15, 15, -20, true);
        assert_eq!(meter.speaking(), None, "muted");
        window(&mut meter, 0, 0, 0, false);
        assert_eq!(meter.speaking(), None, "no packets");
    }

    #[test]
    fn louder_speech_is_louder_and_levels_convert_both_ways() {
        let (mut quiet, mut loud) = (SpeechMeter::default(), SpeechMeter::default());
        for _ in 0..4 {
            window(&mut quiet, 15, 15, -35, false);
            window(&mut loud, 15, 15, -15, false);
        }
        assert!(loud.speaking().unwrap() > quiet.speaking().unwrap());
        assert_eq!(dbov(amplitude(35)), 35);
        assert_eq!(dbov(0.0), 127);
        assert_eq!(dbov(1.0), 0);
    }
}
