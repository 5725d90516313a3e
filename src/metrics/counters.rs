//! The counters a worker folds: one table, [`definitions`], drives their
//! registration, the series created at zero for dashboards, and the fold.
//!
//! A new counter is one entry here plus its increment in `CoreStats` or
//! `WorkerIo`. Each entry names the metric, says what it counts, and reads
//! its value for each series from a worker's plain totals; the fold adds the
//! growth since the last fold.

use prometheus::{IntCounterVec, Opts, Registry};

use super::{reg, WorkerIo, KINDS};
use crate::media::data::envelope::DataChannelKind;
use crate::media::stats::{CoreStats, DropReason};
use crate::media::{DataRefusal, LeaveReason};

/// Reads one series' value from a worker's totals.
type Read = Box<dyn Fn(&CoreStats, &WorkerIo) -> u64 + Send + Sync>;

/// One labelled series of a counter (beside `worker`) and where its value
/// comes from.
pub struct Series {
    labels: Vec<&'static str>,
    read: Read,
}

/// A counter every worker feeds.
pub struct CounterDef {
    name: &'static str,
    help: &'static str,
    /// Label names beside `worker`.
    labels: &'static [&'static str],
    series: Vec<Series>,
}

/// Every per-worker counter Cascade exports.
pub fn definitions() -> Vec<CounterDef> {
    vec![
        // media
        worker("cascade_media_joins_total", "Participants that joined a room", |c, _| c.joins),
        by_reason("cascade_media_leaves_total", "Participants that left, by reason", leave_reasons()),
        worker("cascade_media_subscribe_offers_total", "Server-initiated subscribe offers (renegotiations)", |c, _| c.subscribe_offers),
        worker("cascade_media_subscribe_connections_total", "Subscribe connections that came up (ICE + DTLS), WHEP viewers included", |c, _| c.subscribers_connected),
        worker("cascade_media_peer_errors_total", "Peer connections that failed inside str0m (participant removed)", |c, _| c.peer_errors),
        // rtp
        by_kind("cascade_rtp_received_packets_total", "RTP packets received from publishers", |c, _| c.rtp_packets_in),
        by_kind("cascade_rtp_received_bytes_total", "RTP payload bytes received from publishers", |c, _| c.rtp_bytes_in),
        by_kind("cascade_rtp_forwarded_packets_total", "RTP packets forwarded, one per receiving subscriber", |c, _| c.rtp_packets_forwarded),
        by_kind("cascade_rtp_forwarded_bytes_total", "RTP payload bytes forwarded, one copy per receiving subscriber", |c, _| c.rtp_bytes_forwarded),
        by_kind("cascade_rtp_sent_packets_total", "RTP packets sent to subscribers including retransmissions (str0m stats, 1 s granularity)", |c, _| c.rtp_packets_sent),
        by_kind("cascade_rtp_sent_bytes_total", "RTP payload bytes sent to subscribers including retransmissions (str0m stats, 1 s granularity)", |c, _| c.rtp_bytes_sent),
        by_kind("cascade_rtp_retransmitted_packets_total", "RTP packets retransmitted to subscribers after NACKs", |c, _| c.rtp_retransmitted),
        by_kind_and_reason("cascade_rtp_dropped_packets_total", "RTP packets not forwarded to a subscriber, by reason (kind unknown for unknown streams)", dropped_packets()),
        by_kind("cascade_rtp_subscriber_lost_packets_total", "Packets subscribers reported lost in RTCP receiver reports", |c, _| c.rtp_lost_by_subscribers),
        // rtcp
        by_kind("cascade_rtcp_nacks_received_total", "NACKs received from subscribers", |c, _| c.nacks_received),
        by_kind("cascade_rtcp_nacks_sent_total", "NACKs sent to publishers", |c, _| c.nacks_sent),
        worker("cascade_rtcp_plis_received_total", "PLIs received from subscribers", |c, _| c.plis_received),
        worker("cascade_rtcp_firs_received_total", "FIRs received from subscribers", |c, _| c.firs_received),
        worker("cascade_rtcp_keyframe_requests_sent_total", "Keyframe requests (PLI) sent to publishers, after throttling", |c, _| c.keyframe_requests_sent),
        // simulcast and congestion control
        by_label("cascade_simulcast_layer_switches_total", "Subscriber streams that moved to another simulcast layer, at a keyframe", &["direction"], vec![
            ("up", Box::new(|c: &CoreStats, _: &WorkerIo| c.layer_switches_up) as Read),
            ("down", Box::new(|c: &CoreStats, _: &WorkerIo| c.layer_switches_down)),
        ]),
        worker("cascade_bwe_allocation_deficits_total", "Times a subscriber's bandwidth estimate started leaving a video below its best allowed layer or paused", |c, _| c.allocation_deficits),
        worker("cascade_active_speaker_updates_total", "Speaker rounds (300 ms) in which some room's list of active speakers changed and its members were told", |c, _| c.speaker_updates),
        // data channels
        data_channels("cascade_data_messages_total", "Data-channel messages on the relayed channels: received from senders, relayed (one per receiver), dropped (a receiver's SCTP send buffer was full)", |c| [Some(c.data_messages_in), Some(c.data_messages_relayed), Some(c.data_dropped_backlog)]),
        data_channels("cascade_data_bytes_total", "Data-channel bytes on the relayed channels: received from senders, relayed (one copy per receiver, envelope included)", |c| [Some(c.data_bytes_in), Some(c.data_bytes_relayed), None]),
        by_label("cascade_data_refused_messages_total", "Data-channel messages not relayed, by reason", &["reason"], data_refusals()),
        // workers
        worker("cascade_worker_received_datagrams_total", "UDP datagrams a media worker received", |c, _| c.datagrams_in),
        worker("cascade_worker_received_bytes_total", "UDP bytes a media worker received", |c, _| c.bytes_in),
        worker("cascade_worker_sent_datagrams_total", "UDP datagrams a media worker sent", |_, io| io.sent_datagrams),
        worker("cascade_worker_sent_bytes_total", "UDP bytes a media worker sent", |_, io| io.sent_bytes),
        by_reason("cascade_worker_dropped_datagrams_total", "UDP datagrams dropped: unroutable, malformed or oversize on receive, send_error on send", vec![
            ("unroutable", Box::new(|c: &CoreStats, _: &WorkerIo| c.datagrams_unroutable) as Read),
            ("malformed", Box::new(|c: &CoreStats, _: &WorkerIo| c.datagrams_malformed)),
            ("oversize", Box::new(|_: &CoreStats, io: &WorkerIo| io.recv_truncated)),
            ("send_error", Box::new(|_: &CoreStats, io: &WorkerIo| io.send_errors)),
        ]),
        worker("cascade_worker_send_calls_total", "Send system calls a media worker made (sent datagrams / calls = batching)", |_, io| io.send_calls),
        worker("cascade_worker_loop_iterations_total", "Event loop iterations of a media worker", |_, io| io.iterations),
        // ICE over TCP
        by_label("cascade_ice_tcp_connections_total", "ICE-TCP connections: accepted, refused (too many), dropped as stalled (peer stopped reading), closed as unverified (no ICE check in time)", &["event"], vec![
            ("accepted", Box::new(|_: &CoreStats, io: &WorkerIo| io.tcp.accepted) as Read),
            ("refused", Box::new(|_: &CoreStats, io: &WorkerIo| io.tcp.refused)),
            ("stalled", Box::new(|_: &CoreStats, io: &WorkerIo| io.tcp.dropped_stalled)),
            ("unverified", Box::new(|_: &CoreStats, io: &WorkerIo| io.tcp.dropped_unverified)),
        ]),
        by_label("cascade_ice_tcp_frames_total", "RFC 4571 frames on ICE-TCP connections: received, sent (queued), oversize (skipped on receive), unroutable (no connection on send)", &["event"], vec![
            ("received", Box::new(|_: &CoreStats, io: &WorkerIo| io.tcp.frames_in) as Read),
            ("sent", Box::new(|_: &CoreStats, io: &WorkerIo| io.tcp.frames_out)),
            ("oversize", Box::new(|_: &CoreStats, io: &WorkerIo| io.tcp.frames_oversize)),
            ("unroutable", Box::new(|_: &CoreStats, io: &WorkerIo| io.tcp.frames_unroutable)),
        ]),
    ]
}

/// A counter with one series per worker.
fn worker(
    name: &'static str,
    help: &'static str,
    read: fn(&CoreStats, &WorkerIo) -> u64,
) -> CounterDef {
    let series = vec![Series {
        labels: Vec::new(),
        read: Box::new(read),
    }];
    CounterDef {
        name,
        help,
        labels: &[],
        series,
    }
}

/// A counter with one series per worker and media kind.
fn by_kind(
    name: &'static str,
    help: &'static str,
    read: fn(&CoreStats, &WorkerIo) -> [u64; 2],
) -> CounterDef {
    let series = KINDS
        .iter()
        .enumerate()
        .map(|(i, kind)| Series {
            labels: vec![*kind],
            read: Box::new(move |c, io| read(c, io)[i]),
        })
        .collect();
    CounterDef {
        name,
        help,
        labels: &["kind"],
        series,
    }
}

/// A counter with one series per worker and reason.
fn by_reason(
    name: &'static str,
    help: &'static str,
    reasons: Vec<(&'static str, Read)>,
) -> CounterDef {
    by_label(name, help, &["reason"], reasons)
}

/// A counter with one series per worker and value of one more `label`.
fn by_label(
    name: &'static str,
    help: &'static str,
    label: &'static [&'static str],
    values: Vec<(&'static str, Read)>,
) -> CounterDef {
    let series = values
        .into_iter()
        .map(|(value, read)| Series {
            labels: vec![value],
            read,
        })
        .collect();
    CounterDef {
        name,
        help,
        labels: label,
        series,
    }
}

/// A counter with one series per worker, kind and reason.
fn by_kind_and_reason(
    name: &'static str,
    help: &'static str,
    series: Vec<(&'static str, &'static str, Read)>,
) -> CounterDef {
    by_two_labels(name, help, &["kind", "reason"], series)
}

/// A counter with one series per worker and pair of label values.
fn by_two_labels(
    name: &'static str,
    help: &'static str,
    labels: &'static [&'static str],
    series: Vec<(&'static str, &'static str, Read)>,
) -> CounterDef {
    let series = series
        .into_iter()
        .map(|(a, b, read)| Series {
            labels: vec![a, b],
            read,
        })
        .collect();
    CounterDef {
        name,
        help,
        labels,
        series,
    }
}

/// A data-channel counter by channel and event (`received`, `relayed`,
/// `dropped`): `read` gives each event's `[reliable, lossy]` totals, in that
/// order; an event whose totals are `None` has no series.
fn data_channels(
    name: &'static str,
    help: &'static str,
    read: fn(&CoreStats) -> [Option<[u64; 2]>; 3],
) -> CounterDef {
    let mut series: Vec<(&'static str, &'static str, Read)> = Vec::new();
    let zero = read(&CoreStats::default());
    for (e, event) in ["received", "relayed", "dropped"].into_iter().enumerate() {
        if zero[e].is_none() {
            continue;
        }
        for kind in DataChannelKind::ALL {
            let k = kind.index();
            series.push((
                kind.as_str(),
                event,
                Box::new(move |c, _| read(c)[e].map_or(0, |v| v[k])),
            ));
        }
    }
    by_two_labels(name, help, &["channel", "event"], series)
}

/// One series per reason of `all`, labelled `(label, index)` of the
/// reason, reading its slot in the array `counts` picks from the stats.
fn reason_series<R>(
    all: &'static [R],
    label_and_index: fn(&R) -> (&'static str, usize),
    counts: fn(&CoreStats) -> &[u64],
) -> Vec<(&'static str, Read)> {
    all.iter()
        .map(|reason| {
            let (label, i) = label_and_index(reason);
            let read: Read = Box::new(move |c, _| counts(c)[i]);
            (label, read)
        })
        .collect()
}

fn data_refusals() -> Vec<(&'static str, Read)> {
    reason_series(
        &DataRefusal::ALL,
        |r| (r.as_str(), r.index()),
        |c| &c.data_refused,
    )
}

fn leave_reasons() -> Vec<(&'static str, Read)> {
    reason_series(
        &LeaveReason::ALL,
        |r| (r.as_str(), r.index()),
        |c| &c.leaves_by_reason,
    )
}

/// Drops by kind and reason, plus those of no known track (`unknown`,
/// `unknown_stream`): counted in the total but not by reason.
fn dropped_packets() -> Vec<(&'static str, &'static str, Read)> {
    let mut series: Vec<(&'static str, &'static str, Read)> = Vec::new();
    for (k, kind) in KINDS.iter().enumerate() {
        for reason in DropReason::ALL {
            let r = reason as usize;
            series.push((
                kind,
                reason.as_str(),
                Box::new(move |c, _| c.rtp_dropped_by_reason[k][r]),
            ));
        }
    }
    series.push((
        "unknown",
        "unknown_stream",
        Box::new(|c, _| {
            let known: u64 = c.rtp_dropped_by_reason.iter().flatten().sum();
            c.rtp_dropped.saturating_sub(known)
        }),
    ));
    series
}

/// The registered counters of [`definitions`].
pub struct WorkerCounters {
    counters: Vec<(CounterDef, IntCounterVec)>,
}

impl WorkerCounters {
    /// Registers every counter and creates its series at zero for `workers`.
    pub fn register(r: &Registry, workers: usize) -> Self {
        let counters: Vec<_> = definitions()
            .into_iter()
            .map(|def| {
                let mut labels = vec!["worker"];
                labels.extend_from_slice(def.labels);
                let vec = reg(
                    r,
                    IntCounterVec::new(Opts::new(def.name, def.help), &labels),
                );
                (def, vec)
            })
            .collect();
        for w in 0..workers {
            let w = w.to_string();
            for (def, vec) in &counters {
                for series in &def.series {
                    vec.with_label_values(&series_labels(&w, series));
                }
            }
        }
        WorkerCounters { counters }
    }

    /// Adds the growth from `old` to `new` totals of `worker`.
    pub fn fold(
        &self,
        worker: &str,
        (new, new_io): (&CoreStats, &WorkerIo),
        (old, old_io): (&CoreStats, &WorkerIo),
    ) {
        for (def, vec) in &self.counters {
            for series in &def.series {
                let delta = (series.read)(new, new_io).saturating_sub((series.read)(old, old_io));
                if delta > 0 {
                    vec.with_label_values(&series_labels(worker, series))
                        .inc_by(delta);
                }
            }
        }
    }
}

fn series_labels<'a>(worker: &'a str, series: &'a Series) -> Vec<&'a str> {
    let mut labels = Vec::with_capacity(1 + series.labels.len());
    labels.push(worker);
    labels.extend_from_slice(&series.labels);
    labels
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_counter_is_defined_once_with_a_total_suffix() {
        let defs = definitions();
        let mut names: Vec<&str> = defs.iter().map(|d| d.name).collect();
        assert!(names.iter().all(|n| n.ends_with("_total")), "{names:?}");
        names.sort();
        names.dedup();
        assert_eq!(names.len(), defs.len(), "names are unique");
        assert!(defs.iter().all(|d| !d.series.is_empty()));
    }
}
