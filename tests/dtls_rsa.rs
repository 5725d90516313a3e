//! A peer with an RSA DTLS certificate (stock GStreamer 1.22 `webrtcbin`)
//! connects to Cascade's server `Rtc` and its media gets through; str0m still
//! rejects a certificate that does not match the SDP fingerprint.
//!
//! One str0m client `Rtc` and one `cascade::media::server_rtc` in process,
//! with a fake clock and a lossless network, like `tests/common/sim.rs`
//! without the media core.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use openssl::asn1::Asn1Time;
use openssl::hash::MessageDigest;
use openssl::pkey::PKey;
use openssl::rsa::Rsa;
use openssl::x509::{X509Builder, X509NameBuilder};
use str0m::change::{SdpAnswer, SdpOffer};
use str0m::config::DtlsCert;
use str0m::format::Codec;
use str0m::media::{Direction, MediaKind, Mid};
use str0m::net::{Protocol, Receive, Transmit};
use str0m::rtp::RtpWrite;
use str0m::{Candidate, Event, Input, Output, Rtc, RtcError};

const CLIENT: &str = "127.0.0.1:40000";
const SERVER: &str = "127.0.0.1:50000";

/// A client `Rtc` and a server `Rtc` wired back to back.
struct Pair {
    now: Instant,
    client: Rtc,
    server: Rtc,
    mid: Mid,
    network: VecDeque<Transmit>,
    client_connected: bool,
    server_connected: bool,
    server_error: Option<RtcError>,
    server_received: Vec<Vec<u8>>,
}

impl Pair {
    /// Negotiates one send-only audio m-line from `client` to a Cascade
    /// server `Rtc`; `tamper` may edit the offer on its way.
    fn new(mut client: Rtc, now: Instant, tamper: impl FnOnce(String) -> String) -> Self {
        let mut server = cascade::media::server_rtc(now, cascade::media::PeerRole::Publish);
        client.add_local_candidate(Candidate::host(CLIENT.parse().unwrap(), "udp").unwrap());
        server.add_local_candidate(Candidate::host(SERVER.parse().unwrap(), "udp").unwrap());

        let mut api = client.sdp_api();
        let mid = api.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None);
        let (offer, pending) = api.apply().expect("offer");
        let offer = SdpOffer::from_sdp_string(&tamper(offer.to_sdp_string())).unwrap();
        let answer = server
            .sdp_api()
            .accept_offer(offer)
            .expect("server answers");
        let answer = SdpAnswer::from_sdp_string(&answer.to_sdp_string()).unwrap();
        client
            .sdp_api()
            .accept_answer(pending, answer)
            .expect("client takes answer");

        Pair {
            now,
            client,
            server,
            mid,
            network: VecDeque::new(),
            client_connected: false,
            server_connected: false,
            server_error: None,
            server_received: Vec::new(),
        }
    }

    /// Runs fake time for `limit`, sending one audio packet per 20 ms once
    /// the client is connected.
    fn run(&mut self, limit: Duration) {
        let end = self.now + limit;
        let mut sent = 0u64;
        while self.now < end && self.server_error.is_none() {
            let deadline = self.drain().min(self.now + Duration::from_millis(20));
            self.now = deadline.max(self.now + Duration::from_micros(100));
            self.client.handle_input(Input::Timeout(self.now)).unwrap();
            if self.server.handle_input(Input::Timeout(self.now)).is_err() {
                break;
            }
            if self.client_connected {
                sent += 1;
                self.send_audio(sent);
            }
        }
    }

    fn send_audio(&mut self, n: u64) {
        let pt = self
            .client
            .codec_config()
            .params()
            .iter()
            .find(|p| p.spec().codec == Codec::Opus)
            .map(|p| p.pt())
            .expect("opus configured");
        let payload = format!("rsa-peer:{n}").into_bytes();
        let now = self.now;
        let mut api = self.client.direct_api();
        let stream = api.stream_tx_by_mid(self.mid, None).expect("tx stream");
        stream.write_rtp(RtpWrite::new(pt, n.into(), (n * 960) as u32, now, payload));
    }

    /// Polls both sides and delivers datagrams until nothing moves; returns
    /// the earliest deadline.
    fn drain(&mut self) -> Instant {
        loop {
            let client_next = loop {
                match self.client.poll_output().expect("client poll") {
                    Output::Timeout(t) => break t,
                    Output::Transmit(t) => self.network.push_back(t),
                    Output::Event(Event::Connected) => self.client_connected = true,
                    Output::Event(_) => {}
                }
            };
            let server_next = loop {
                match self.server.poll_output() {
                    Ok(Output::Timeout(t)) => break t,
                    Ok(Output::Transmit(t)) => self.network.push_back(t),
                    Ok(Output::Event(Event::Connected)) => self.server_connected = true,
                    Ok(Output::Event(Event::RtpPacket(p))) => {
                        self.server_received.push(p.payload.to_vec())
                    }
                    Ok(Output::Event(_)) => {}
                    Err(e) => {
                        self.server_error = Some(e);
                        return self.now;
                    }
                }
            };
            let Some(t) = self.network.pop_front() else {
                return client_next.min(server_next);
            };
            self.deliver(t);
        }
    }

    fn deliver(&mut self, t: Transmit) {
        let to_server = t.destination == SERVER.parse::<SocketAddr>().unwrap();
        let input = Input::Receive(
            self.now,
            Receive {
                proto: Protocol::Udp,
                source: t.source,
                destination: t.destination,
                contents: (&*t.contents).try_into().unwrap(),
            },
        );
        if to_server {
            if let Err(e) = self.server.handle_input(input) {
                self.server_error = Some(e);
            }
        } else {
            self.client.handle_input(input).expect("client input");
        }
    }
}

/// A self-signed RSA-2048 certificate like GStreamer 1.22 makes.
fn rsa_cert() -> DtlsCert {
    let key = PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap();
    let mut name = X509NameBuilder::new().unwrap();
    name.append_entry_by_text("CN", "GStreamer").unwrap();
    let name = name.build();
    let mut x509 = X509Builder::new().unwrap();
    x509.set_version(2).unwrap();
    x509.set_subject_name(&name).unwrap();
    x509.set_issuer_name(&name).unwrap();
    x509.set_pubkey(&key).unwrap();
    x509.set_not_before(&Asn1Time::days_from_now(0).unwrap())
        .unwrap();
    x509.set_not_after(&Asn1Time::days_from_now(1).unwrap())
        .unwrap();
    x509.sign(&key, MessageDigest::sha256()).unwrap();
    DtlsCert {
        certificate: x509.build().to_der().unwrap(),
        private_key: key.private_key_to_pkcs8().unwrap(),
    }
}

/// A client whose DTLS certificate is RSA (only OpenSSL can present one).
fn rsa_client(now: Instant) -> Rtc {
    Rtc::builder()
        .set_rtp_mode(true)
        .set_crypto_provider(cascade::media::dtls::crypto_provider())
        .set_dtls_cert(rsa_cert())
        .build(now)
}

#[test]
fn a_peer_with_an_rsa_certificate_connects_and_its_audio_arrives() {
    let now = Instant::now();
    let mut pair = Pair::new(rsa_client(now), now, |sdp| sdp);
    pair.run(Duration::from_secs(3));

    assert!(pair.server_error.is_none(), "{:?}", pair.server_error);
    assert!(pair.client_connected && pair.server_connected);
    // Decrypted on the server, so both sides derived the same SRTP keys.
    assert!(
        pair.server_received.len() >= 10,
        "{} packets",
        pair.server_received.len()
    );
    assert!(pair.server_received.contains(&b"rsa-peer:5".to_vec()));
}

#[test]
fn a_browser_like_ecdsa_peer_on_str0m_builtin_dtls_still_connects() {
    let now = Instant::now();
    let client = Rtc::builder().set_rtp_mode(true).build(now);
    let mut pair = Pair::new(client, now, |sdp| sdp);
    pair.run(Duration::from_secs(3));

    assert!(pair.server_error.is_none(), "{:?}", pair.server_error);
    assert!(pair.server_connected);
    assert!(pair.server_received.len() >= 10);
}

#[test]
fn a_certificate_that_does_not_match_the_sdp_fingerprint_is_rejected() {
    let now = Instant::now();
    // Flip the last hex digit of the offered sha-256 fingerprint.
    let tamper = |sdp: String| {
        let start = sdp
            .find("a=fingerprint:sha-256 ")
            .expect("fingerprint in offer");
        let end = start + sdp[start..].find("\r\n").unwrap();
        let last = sdp[end - 1..end].to_string();
        let flipped = if last == "0" { "1" } else { "0" };
        format!("{}{}{}", &sdp[..end - 1], flipped, &sdp[end..])
    };
    let mut pair = Pair::new(rsa_client(now), now, tamper);
    pair.run(Duration::from_secs(3));

    let error = pair.server_error.expect("server refuses the certificate");
    assert!(error.to_string().contains("fingerprint"), "{error}");
    assert!(pair.server_received.is_empty());
}
