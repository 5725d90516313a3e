//! Micro-benchmarks of the forwarding hot path, no sockets.
//!
//! - `forward/one_packet/N`: one SRTP-protected ~1150-byte VP8-shaped packet
//!   from a publisher goes into a [`MediaCore`] (decrypt, route, rewrite,
//!   write into N subscriber `Rtc`s) and out (flush: encrypt N datagrams).
//!   This is the core's whole per-packet cost except the UDP system calls.
//! - `forward/batch_of_32/N`: the same with 32 packets per flush, as the
//!   worker does when datagrams queue up.
//! - `forward/one_packet_channels/N`: `one_packet` with the bundled client's
//!   two relayed data channels open on the publishing connections (the
//!   publisher's and the first viewer's), idle: what an SCTP association
//!   costs forwarded media.
//! - `rewrite`: `SeqRewriter::rewrite` alone; `demux`: `Demux::route` alone,
//!   for an RTP datagram (by address) and a STUN request (by ufrag) among
//!   1000 peers.
//!
//! Peers are real str0m clients connected through the deterministic
//! simulation of `cascade_test_support::sim` (fake time, in-process network).
//! Throughput is in forwarded packets, so criterion reports time per
//! forwarded packet.
//!
//! Run: `cargo bench --bench forwarding` (or `-- forward/one_packet` etc.).

use std::hint::black_box;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use str0m::format::Codec;
use str0m::media::{MediaKind, Mid, Pt};
use str0m::net::{Protocol, Transmit};
use str0m::rtp::{RtpWrite, Ssrc};
use str0m::{Input, Output};

use cascade::media::demux::Demux;
use cascade::media::rewrite::SeqRewriter;
use cascade::media::PeerKey;
use cascade_load::payload::{self, Stamp};
use cascade_test_support::sim::Sim;

/// Fake time between two published packets (~100k packets/s).
const PACKET_SPACING: Duration = Duration::from_micros(10);
/// Let the simulation catch up on timers, RTCP and STUN this often.
const KEEPALIVE_EVERY: u64 = 256;
const VIDEO_PAYLOAD_BYTES: usize = 1150;

/// A core with one publisher and `subscribers` connected subscribers.
struct Fanout {
    sim: Sim,
    video_mid: Mid,
    video_pt: Pt,
    publisher_addr: SocketAddr,
    seq: u64,
    sent: u64,
    /// What the core sent in the last [`Fanout::forward`].
    out: Vec<Transmit>,
    /// Forwarded media datagrams the core sent so far, timed or not (a
    /// packet str0m holds for a timeout leaves in the untimed part).
    media_out: u64,
}

impl Fanout {
    /// `channels`: the publishing connections also carry the two relayed
    /// data channels, open.
    fn new(subscribers: usize, channels: bool) -> Self {
        let mut sim = Sim::new();
        let publish = |sim: &mut Sim, index: usize| match channels {
            true => sim.publish_with_data(index),
            false => sim.publish(index),
        };
        let publisher = sim.join("bench", "publisher");
        publish(&mut sim, publisher);
        for i in 0..subscribers {
            let viewer = sim.join("bench", &format!("viewer-{i}"));
            if i == 0 {
                // It never sends, but the publisher's subscribe connection
                // gets m-lines: one with only the data channel does not
                // connect (see the load-test notes) and would be removed.
                publish(&mut sim, viewer);
            }
        }
        let connected = sim.run_until(Duration::from_secs(60), |s| {
            s.clients.iter().all(|c| {
                c.subscribe.as_ref().is_some_and(|p| p.connected)
                    && c.publish.as_ref().is_none_or(|p| p.connected)
            })
        });
        if !connected {
            for c in &sim.clients {
                eprintln!(
                    "{}: publish {:?} subscribe {:?} removal {:?}",
                    c.name,
                    c.publish.as_ref().map(|p| p.connected),
                    c.subscribe.as_ref().map(|p| p.connected),
                    c.removal
                );
            }
        }
        assert!(connected, "every simulated peer connects");
        if channels {
            let open = sim.run_until(Duration::from_secs(10), |s| {
                s.clients
                    .iter()
                    .filter(|c| c.publish.is_some())
                    .all(|c| c.channels.len() == 2)
            });
            assert!(open, "the data channels open");
        }
        let client = &sim.clients[publisher];
        let pc = client.publish.as_ref().expect("publisher connection");
        let video_mid = client
            .publish_mids
            .iter()
            .find(|(k, _)| *k == MediaKind::Video)
            .map(|(_, m)| *m)
            .expect("video m-line");
        let video_pt = pc
            .rtc
            .codec_config()
            .params()
            .iter()
            .find(|p| p.spec().codec == Codec::Vp8)
            .map(|p| p.pt())
            .expect("VP8 configured");
        let publisher_addr = pc.addr;
        let mut fanout = Fanout {
            sim,
            video_mid,
            video_pt,
            publisher_addr,
            seq: 1000,
            sent: 0,
            out: Vec::with_capacity(4096),
            media_out: 0,
        };
        // Warm up: the first packets set up SSRC and payload type caches.
        for _ in 0..64 {
            let d = fanout.next_datagram();
            fanout.forward(&[d]);
            fanout.return_control_traffic();
        }
        fanout
    }

    /// Encrypts the next video packet on the publisher's client (untimed).
    fn next_datagram(&mut self) -> Vec<u8> {
        if self.sent.is_multiple_of(KEEPALIVE_EVERY) {
            self.sim.step();
        }
        self.sent += 1;
        self.seq += 1;
        self.sim.now += PACKET_SPACING;
        let now = self.sim.now;
        if self.sim.core.next_deadline() <= now {
            // As the worker does between batches: str0m's timers (RTCP, a
            // packet its pacer held) run outside the timed flush.
            self.sim.core.handle_timeout(now);
            self.collect_transmits();
            self.return_control_traffic();
        }
        let server = self.sim.server_addr;
        let pc = self.sim.clients[0].publish.as_mut().expect("publisher");
        let stamp = Stamp {
            sender: 0,
            counter: self.sent,
            sent_micros: 0,
        };
        let data = payload::video(stamp, self.sent % 8 == 1, false, VIDEO_PAYLOAD_BYTES);
        let time = (self.sent / 8 * 3000) as u32;
        let mut api = pc.rtc.direct_api();
        let stream = api
            .stream_tx_by_mid(self.video_mid, None)
            .expect("video stream");
        stream.write_rtp(
            RtpWrite::new(self.video_pt, self.seq.into(), time, now, data)
                .marker(self.sent.is_multiple_of(8))
                .nackable(true),
        );
        pc.rtc
            .handle_input(Input::Timeout(now))
            .expect("client timeout");
        let mut media = None;
        loop {
            match pc.rtc.poll_output().expect("client poll") {
                Output::Timeout(_) => break,
                Output::Transmit(t) if t.destination == server => {
                    if t.contents.len() > VIDEO_PAYLOAD_BYTES {
                        media = Some(t.contents.to_vec());
                    } else {
                        // RTCP and the like: deliver, untimed.
                        self.sim.core.handle_receive(now, t.source, &t.contents);
                    }
                }
                Output::Transmit(_) | Output::Event(_) => {}
            }
        }
        media.expect("the written packet leaves the publisher")
    }

    /// The timed part: datagrams in, one flush, every transmit out. Not
    /// inlined, so a profiler can select it
    /// (`valgrind --tool=callgrind --toggle-collect='*Fanout*forward*'`).
    #[inline(never)]
    fn forward(&mut self, datagrams: &[Vec<u8>]) {
        let now = self.sim.now;
        for d in datagrams {
            self.sim.core.handle_receive(now, self.publisher_addr, d);
        }
        self.sim.core.flush(now);
        self.collect_transmits();
    }

    /// Moves everything the core has to send into `out`.
    fn collect_transmits(&mut self) {
        while let Some(t) = self.sim.core.poll_transmit() {
            self.out.push(t);
        }
    }

    /// Untimed, after [`Fanout::forward`]: counts and drops the forwarded
    /// media and puts the rest (STUN responses, RTCP) on the simulated
    /// network, so the clients' ICE keeps seeing answers however long a
    /// benchmark runs.
    fn return_control_traffic(&mut self) {
        for t in self.out.drain(..) {
            if t.contents.len() < VIDEO_PAYLOAD_BYTES {
                self.sim.send_from_server(t);
            } else {
                self.media_out += 1;
                black_box(&t);
            }
        }
    }

    /// Times `iters` flushes of `batch` packets each, and checks that every
    /// packet reached every subscriber (one flush's worth may still be held
    /// by str0m's pacer for its next timeout).
    fn time_flushes(&mut self, subscribers: usize, batch: usize, iters: u64) -> Duration {
        let mut total = Duration::ZERO;
        let mut datagrams = Vec::with_capacity(batch);
        let before = self.media_out;
        for _ in 0..iters {
            datagrams.clear();
            datagrams.extend((0..batch).map(|_| self.next_datagram()));
            let start = Instant::now();
            self.forward(&datagrams);
            total += start.elapsed();
            self.return_control_traffic();
        }
        let expected = iters * (subscribers * batch) as u64;
        let sent = self.media_out - before;
        assert!(
            sent + (subscribers * batch) as u64 >= expected,
            "{iters} flushes of {batch} packet(s) to {subscribers} subscriber(s) sent {sent} \
             of {expected} media datagrams"
        );
        total
    }
}

fn forward(c: &mut Criterion) {
    let mut group = c.benchmark_group("forward");
    group.sample_size(20);
    group.measurement_time(Duration::from_secs(4));
    for subscribers in [1usize, 10, 100] {
        let variants = [
            ("one_packet", false, 1),
            ("one_packet_channels", true, 1),
            ("batch_of_32", false, 32),
        ];
        for (name, channels, batch) in variants {
            if channels && subscribers == 100 {
                continue; // 1 and 10 show the cost; 100 only dilutes it
            }
            // Built on first use, so a filtered run (or a profile) sets up
            // only the fanouts it times.
            let mut fanout: Option<Fanout> = None;
            group.throughput(Throughput::Elements((subscribers * batch) as u64));
            group.bench_function(BenchmarkId::new(name, subscribers), |b| {
                let fanout = fanout.get_or_insert_with(|| Fanout::new(subscribers, channels));
                b.iter_custom(|iters| fanout.time_flushes(subscribers, batch, iters))
            });
            if let Some(fanout) = fanout {
                let stats = fanout.sim.core.stats();
                assert!(
                    stats.rtp_packets_forwarded[1]
                        >= stats.rtp_packets_in[1] * subscribers as u64 - 64,
                    "every packet reached every subscriber ({} in, {} forwarded)",
                    stats.rtp_packets_in[1],
                    stats.rtp_packets_forwarded[1]
                );
            }
        }
    }
    group.finish();
}

fn rewrite(c: &mut Criterion) {
    let mut rw = SeqRewriter::default();
    let ssrc = Ssrc::from(0x1234_5678);
    let mut seq = 70_000u64;
    c.bench_function("rewrite/seq", |b| {
        b.iter(|| {
            seq += 1;
            black_box(rw.rewrite(black_box(ssrc), black_box(seq)))
        })
    });
}

fn demux(c: &mut Criterion) {
    let mut demux = Demux::default();
    for i in 0..1000u32 {
        demux.insert(format!("ufrag{i:04}"), PeerKey(i));
        let addr: SocketAddr = ([127, 0, 0, 1], 20_000 + i as u16).into();
        // As the core does once the peer's `Rtc` accepted a check from there.
        demux.learn((Protocol::Udp, addr), PeerKey(i));
    }
    let rtp = {
        let mut p = vec![0u8; 1200];
        p[0] = 0x80;
        p[1] = 96;
        p
    };
    let known = (Protocol::Udp, SocketAddr::from(([127, 0, 0, 1], 20_500)));
    assert!(
        demux.route(known, &rtp).is_some(),
        "a learnt address routes"
    );
    c.bench_function("demux/rtp_by_address", |b| {
        b.iter(|| black_box(demux.route(black_box(known), black_box(&rtp))))
    });
    let stun = binding_request("ufrag0777:remote");
    let new = (Protocol::Udp, SocketAddr::from(([127, 0, 0, 1], 40_000)));
    c.bench_function("demux/stun_by_ufrag", |b| {
        b.iter(|| black_box(demux.route(black_box(new), black_box(&stun))))
    });
}

/// A STUN binding request carrying only a USERNAME attribute.
fn binding_request(username: &str) -> Vec<u8> {
    let mut attr = Vec::new();
    attr.extend_from_slice(&0x0006u16.to_be_bytes());
    attr.extend_from_slice(&(username.len() as u16).to_be_bytes());
    attr.extend_from_slice(username.as_bytes());
    while attr.len() % 4 != 0 {
        attr.push(0);
    }
    let mut msg = Vec::new();
    msg.extend_from_slice(&0x0001u16.to_be_bytes());
    msg.extend_from_slice(&(attr.len() as u16).to_be_bytes());
    msg.extend_from_slice(&[0x21, 0x12, 0xA4, 0x42]);
    msg.extend_from_slice(&[7; 12]);
    msg.extend_from_slice(&attr);
    msg
}

criterion_group!(benches, forward, rewrite, demux);
criterion_main!(benches);
