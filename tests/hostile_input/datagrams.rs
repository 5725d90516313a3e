//! Datagrams into the media core: arbitrary bytes and near-valid STUN, DTLS,
//! RTP and RTCP (right magic numbers and versions, wrong lengths, random
//! attributes, real ufrags and SSRCs), from strangers and from the addresses
//! of connected participants, where demux hands them to str0m.
//!
//! Nobody holds the keys of these packets, so they must harm nobody: every
//! participant stays, media keeps flowing both ways, strangers get no
//! answer, and no peer or learnt route is added. Each case runs in a fresh
//! simulated room, so a failure shrinks to the datagrams that cause it.
//!
//! Not covered: the DTLS handshake itself. Until it ends nothing is
//! authenticated, and a spoofed handshake record (a change_cipher_spec of
//! the wrong length, a plaintext alert) makes OpenSSL abort it; the room is
//! let to finish every handshake before the datagrams are sent.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use cascade::media::demux::{stun_local_ufrag, Demux, MAX_ADDRESSES_PER_PEER};
use cascade::media::PeerKey;
use cascade_protocol::ServerMessage;
use cascade_test_support::sim::Sim;
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::TestCaseResult;
use str0m::media::MediaKind;
use str0m::net::Protocol;

use crate::packets::{binding_request, datagram, encode_dtls, Dtls, Names, PARTICIPANTS};
use crate::run;

/// The `n`th stranger's address (2001:db8::/32, the documentation range):
/// no client has it and no earlier datagram of the case came from it.
fn stranger(n: usize, port: u16) -> SocketAddr {
    let ip = std::net::Ipv6Addr::from(0x2001_0db8_u128 << 96 | n as u128);
    SocketAddr::from((ip, port))
}

/// A room of connected publishers, and what datagrams may name of it.
fn room() -> (Sim, Names) {
    room_with(|_| {})
}

/// [`room`] with its core's config adjusted.
fn room_with(adjust: impl FnOnce(&mut cascade::media::CoreConfig)) -> (Sim, Names) {
    let names: Vec<String> = (0..PARTICIPANTS).map(|i| format!("p{i}")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut sim = Sim::room_of_with(&names, adjust);
    // The clients are connected; let the server's side of every DTLS
    // handshake finish too (see the module doc for the handshake itself).
    sim.run(Duration::from_millis(100), true);
    let mut usernames = Vec::new();
    let mut ssrcs = Vec::new();
    let mut addresses = Vec::new();
    for client in sim.clients.iter_mut() {
        let server_ufrag = client.messages.iter().find_map(|m| match m {
            ServerMessage::SubscribeOffer { sdp, .. } => sdp
                .lines()
                .find_map(|l| l.strip_prefix("a=ice-ufrag:"))
                .map(str::to_string),
            _ => None,
        });
        let subscribe = client.subscribe.as_mut().expect("connected");
        let client_ufrag = subscribe.rtc.direct_api().local_ice_credentials().ufrag;
        usernames.push(format!(
            "{}:{client_ufrag}",
            server_ufrag.expect("an offer")
        ));
        addresses.push(subscribe.addr);
        let publish = client.publish.as_mut().expect("connected");
        addresses.push(publish.addr);
        for (_, mid) in client.publish_mids.clone() {
            let mut api = publish.rtc.direct_api();
            let stream = api.stream_tx_by_mid(mid, None).expect("a send stream");
            ssrcs.push(*stream.ssrc());
        }
    }
    let names = Names {
        usernames,
        ssrcs,
        addresses,
    };
    (sim, names)
}

/// Packets each client has received from the others so far.
fn received(sim: &Sim) -> Vec<usize> {
    let ids: Vec<_> = sim.clients.iter().map(|c| c.id).collect();
    sim.clients
        .iter()
        .map(|c| {
            ids.iter()
                .filter(|id| **id != c.id)
                .map(|id| c.payloads_from(*id, MediaKind::Audio).len())
                .sum()
        })
        .collect()
}

/// What the core holds while nobody joins or leaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Held {
    participants: usize,
    peers: usize,
    routes: usize,
}

fn held(sim: &Sim) -> Held {
    Held {
        participants: sim.core.participant_count(),
        peers: sim.core.peer_count(),
        routes: sim.core.routed_address_count(),
    }
}

/// Runs 60 ms of media and checks every participant is still there, still
/// receives the others, and the core holds what it held.
fn check_media_flows(sim: &mut Sim, before: Held) -> TestCaseResult {
    let received_before = received(sim);
    sim.run(Duration::from_millis(60), true);
    let received_after = received(sim);
    for (i, client) in sim.clients.iter().enumerate() {
        prop_assert_eq!(client.removal, None, "{} was removed", client.name);
        let (was, is) = (received_before[i], received_after[i]);
        prop_assert!(
            is > was,
            "{} stopped receiving ({was} then {is})",
            client.name
        );
    }
    prop_assert_eq!(held(sim), before);
    Ok(())
}

/// Strangers' datagrams, whatever they are, reach nobody (demux drops them,
/// counted as unroutable) and are never answered; STUN naming a real ufrag
/// goes to str0m, which must drop it too, and teaches demux no route.
#[test]
fn datagrams_from_strangers_are_dropped_unanswered() {
    run(vec((any::<u16>(), datagram()), 1..16), |batch| {
        let (mut sim, names) = room();
        let before = held(&sim);
        let unroutable = sim.core.stats().datagrams_unroutable;
        let mut routed = 0;
        let mut strangers = Vec::new();
        for (n, (port, datagram)) in batch.iter().enumerate() {
            let source = stranger(n, *port);
            let bytes = datagram.encode(&names);
            let local = stun_local_ufrag(&bytes);
            routed += names.usernames.iter().any(|u| u.split(':').next() == local) as u64;
            sim.core.handle_receive(sim.now, source, &bytes);
            strangers.push(source);
        }
        sim.core.flush(sim.now);
        sim.core.handle_timeout(sim.now);
        while let Some(transmit) = sim.core.poll_transmit() {
            prop_assert!(
                !strangers.contains(&transmit.destination),
                "answered a stranger"
            );
            sim.send_from_server(transmit);
        }
        let dropped = sim.core.stats().datagrams_unroutable - unroutable;
        prop_assert_eq!(dropped, batch.len() as u64 - routed);
        check_media_flows(&mut sim, before)
    });
}

/// Datagrams from the addresses of connected participants reach str0m (the
/// address routes them), which must drop what it cannot authenticate:
/// spoofing a participant's address harms neither it nor anyone else.
#[test]
fn spoofed_datagrams_from_participants_addresses_harm_nobody() {
    run(vec((any::<usize>(), datagram()), 1..16), |batch| {
        let (mut sim, names) = room();
        let before = held(&sim);
        let unroutable = sim.core.stats().datagrams_unroutable;
        for (sender, datagram) in &batch {
            let source = names.addresses[sender % names.addresses.len()];
            sim.core
                .handle_receive(sim.now, source, &datagram.encode(&names));
        }
        sim.core.flush(sim.now);
        let unroutable = sim.core.stats().datagrams_unroutable - unroutable;
        prop_assert_eq!(
            unroutable,
            0,
            "datagrams from known addresses were unroutable"
        );
        check_media_flows(&mut sim, before)
    });
}

/// Minimized from `spoofed_datagrams_from_participants_addresses_harm_nobody`:
/// a record of the current epoch shorter than AES-GCM's nonce and tag (14
/// bytes in all), alone or behind a record whose length OpenSSL skips, from
/// a participant's address, made OpenSSL fail that connection and the
/// participant was removed.
#[test]
fn a_spoofed_short_dtls_record_removes_nobody() {
    let short = Dtls {
        content_type: 21,
        version: 0xFEFD,
        epoch: 1,
        seq: [0, 0, 0, 0, 0, 5],
        length_lie: None,
        body: vec![1],
    };
    let skipped = Dtls {
        content_type: 20,
        epoch: 0,
        length_lie: Some(17729),
        body: vec![7; 169],
        ..short.clone()
    };
    for datagram in [
        encode_dtls(std::slice::from_ref(&short)),
        encode_dtls(&[skipped, short]),
    ] {
        let (mut sim, names) = room();
        let before = held(&sim);
        for source in &names.addresses {
            sim.core.handle_receive(sim.now, *source, &datagram);
        }
        sim.core.flush(sim.now);
        check_media_flows(&mut sim, before).expect("nobody harmed");
    }
}

/// Minimized from `datagrams_from_strangers_are_dropped_unanswered`: a
/// stranger's binding request naming a participant's ufrag taught demux the
/// stranger's address (one more route per request, without bound).
#[test]
fn a_strangers_check_naming_a_real_ufrag_teaches_no_route() {
    let (mut sim, names) = room();
    let before = held(&sim);
    for (n, username) in names.usernames.iter().enumerate() {
        let check = binding_request(username);
        sim.core.handle_receive(sim.now, stranger(n, 9), &check);
    }
    sim.core.flush(sim.now);
    check_media_flows(&mut sim, before).expect("no route learnt");
}

/// Checks naming a known ufrag are routed before str0m checks their
/// integrity, so anyone who saw a ufrag can send them from any number of
/// addresses: demux keeps at most a bound of addresses per peer (the most
/// recently checked) and forgets them all with the peer.
#[test]
fn checks_from_many_addresses_learn_a_bounded_number_of_routes() {
    let ufrags = ["srv1", "srv2", "stranger"];
    let check = (any::<SocketAddr>(), 0..ufrags.len(), "[ -9;-~]{0,12}");
    run(vec(check, 1..200), |checks| {
        let mut demux = Demux::default();
        demux.insert("srv1".into(), PeerKey(1));
        demux.insert("srv2".into(), PeerKey(2));
        // Each peer's latest address, and whom each address was last checked for.
        let mut latest = [None, None];
        let mut owner = HashMap::new();
        for (source, ufrag, remote) in &checks {
            let check = binding_request(&format!("{}:{remote}", ufrags[*ufrag]));
            let routed = demux.route((Protocol::Udp, *source), &check);
            if *ufrag < 2 {
                let key = PeerKey(*ufrag as u32 + 1);
                prop_assert_eq!(routed, Some(key));
                demux.learn((Protocol::Udp, *source), key);
                latest[*ufrag] = Some(*source);
                owner.insert(*source, key);
            }
            prop_assert!(demux.address_count() <= 2 * MAX_ADDRESSES_PER_PEER);
        }
        for (peer, source) in latest.iter().enumerate() {
            let key = PeerKey(peer as u32 + 1);
            if let Some(source) = source.filter(|s| owner.get(s) == Some(&key)) {
                prop_assert_eq!(
                    demux.route((Protocol::Udp, source), &[0x80, 0, 0, 0]),
                    Some(key)
                );
            }
        }
        demux.remove(PeerKey(1));
        demux.remove(PeerKey(2));
        prop_assert_eq!(demux.address_count(), 0);
        Ok(())
    });
}

/// An ICE restart gives a peer a new ufrag: the old one stops routing, so
/// restarting again and again does not grow the table.
#[test]
fn ice_restarts_replace_the_ufrag_that_routes() {
    run(vec("[a-zA-Z0-9]{4,12}", 1..50), |ufrags| {
        let mut demux = Demux::default();
        for ufrag in &ufrags {
            demux.insert(ufrag.clone(), PeerKey(7));
        }
        let last = ufrags.last().expect("at least one");
        for (port, ufrag) in (1..).zip(&ufrags) {
            // A new address each time, so none routes by being learnt.
            let source = SocketAddr::from(([192, 0, 2, 1], port));
            let routed = demux.route(
                (Protocol::Udp, source),
                &binding_request(&format!("{ufrag}:remote")),
            );
            let expected = (ufrag == last).then_some(PeerKey(7));
            prop_assert_eq!(routed, expected, "{}", ufrag);
        }
        demux.remove(PeerKey(7));
        let source = SocketAddr::from(([192, 0, 2, 1], 1));
        prop_assert_eq!(
            demux.route(
                (Protocol::Udp, source),
                &binding_request(&format!("{last}:x"))
            ),
            None
        );
        Ok(())
    });
}

/// ICE-TCP frames (RFC 4571, the prefix already cut by the worker) of any
/// kind, from strangers and from the participants' addresses (which are UDP
/// routes, not TCP ones), reach nobody: routes are kept per transport, and
/// a frame is unroutable unless it is a check naming a real ufrag, which
/// str0m then refuses (no TCP candidate pair exists). Media keeps flowing.
#[test]
fn tcp_frames_from_anyone_harm_nobody() {
    run(
        vec((any::<usize>(), any::<bool>(), datagram()), 1..16),
        |batch| {
            let (mut sim, names) = room_with(|c| c.tcp_candidate_addr = Some(c.candidate_addr));
            let before = held(&sim);
            for (n, (pick, spoof, datagram)) in batch.iter().enumerate() {
                let source = if *spoof {
                    names.addresses[pick % names.addresses.len()]
                } else {
                    stranger(n, *pick as u16)
                };
                sim.core
                    .handle_tcp_frame(sim.now, source, &datagram.encode(&names));
                prop_assert!(
                    !sim.core.knows_address((Protocol::Tcp, source)),
                    "a TCP route was learnt"
                );
            }
            sim.core.flush(sim.now);
            while let Some(transmit) = sim.core.poll_transmit() {
                prop_assert_eq!(
                    transmit.proto,
                    Protocol::Udp,
                    "answered over TCP: {:?}",
                    transmit.destination
                );
                sim.send_from_server(transmit);
            }
            check_media_flows(&mut sim, before)
        },
    );
}

/// What goes on an RFC 4571 stream: frames of any declared length, some
/// over the decoder's limit, cut into reads of any size. The decoder gives
/// back exactly the frames within the limit and one `Oversize` per frame
/// over it, in order, and never holds more than one frame.
#[test]
fn any_rfc4571_stream_in_any_reads_gives_back_its_frames() {
    use cascade::worker::framing::{encode_into, Decoded, FrameDecoder, PREFIX_LEN};
    const MAX: usize = 2048;
    let frame = prop_oneof![
        4 => vec(any::<u8>(), 0..MAX + 1),
        1 => (MAX + 1..20_000usize).prop_map(|n| vec![0xAB; n]),
    ];
    run(
        (vec(frame, 0..12), vec(1..5000usize, 1..8)),
        |(frames, reads)| {
            let mut stream = Vec::new();
            for f in &frames {
                encode_into(f, &mut stream).expect("under 64 KiB");
            }
            let mut decoder = FrameDecoder::new(MAX);
            let mut got: Vec<Result<Vec<u8>, usize>> = Vec::new();
            let mut at = 0;
            let mut r = 0;
            while at < stream.len() {
                let end = (at + reads[r % reads.len()]).min(stream.len());
                r += 1;
                let mut rest = &stream[at..end];
                at = end;
                while !rest.is_empty() {
                    let room = decoder.room();
                    let taken = decoder.push(rest);
                    prop_assert!(taken <= room && room <= PREFIX_LEN + MAX.max(20_000));
                    rest = &rest[taken..];
                    while let Some(d) = decoder.next_frame() {
                        got.push(match d {
                            Decoded::Frame(f) => Ok(f.to_vec()),
                            Decoded::Oversize(n) => Err(n),
                        });
                    }
                }
            }
            let want: Vec<Result<Vec<u8>, usize>> = frames
                .iter()
                .map(|f| {
                    if f.len() > MAX {
                        Err(f.len())
                    } else {
                        Ok(f.clone())
                    }
                })
                .collect();
            prop_assert_eq!(got, want);
            Ok(())
        },
    );
}
