//! One DTLS 1.2 endpoint on OpenSSL, driven the way str0m drives dimpl.
//!
//! Sans-IO: OpenSSL reads and writes a `Datagrams` queue in memory (see
//! `datagrams`) instead of a socket.
//!
//! Time: OpenSSL's DTLS retransmission timer runs on its own clock, which we
//! cannot feed. We ask it how long is left (`DTLSv1_get_timeout`) and report
//! `now + left` to str0m, where `now` is the latest time str0m gave us; when
//! str0m calls back we let OpenSSL retransmit if its timer has expired
//! (`DTLSv1_handle_timeout`). A deadline that is early only costs a wake-up.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use dimpl::{CertificateError, CryptoOperation, TimeoutError};
use foreign_types_shared::ForeignTypeRef;
use openssl::error::ErrorStack;
use openssl::pkey::PKey;
use openssl::srtp::SrtpProfileId;
use openssl::ssl::{ErrorCode, Ssl, SslContext, SslMethod, SslOptions, SslRef, SslStream};
use openssl::ssl::{SslVerifyMode, SslVersion};
use openssl::x509::X509;
use str0m::crypto::dtls::{DtlsCert, DtlsImplError, DtlsInstance, DtlsOutput};
use str0m::crypto::dtls::{KeyingMaterial, ProtocolVersion, SrtpProfile};

use super::datagrams::{has_short_protected_record, Datagrams};

/// RFC 5764 label for the SRTP master keys and salts.
const SRTP_EXPORTER_LABEL: &str = "EXTRACTOR-dtls_srtp";

/// SRTP protection profiles we offer, most preferred first. Both are in every
/// WebRTC stack; str0m's SRTP implements both.
const SRTP_PROFILES: &str = "SRTP_AEAD_AES_128_GCM:SRTP_AES128_CM_SHA1_80";

/// Forward-secret AEAD suites first, then CBC ones for old peers. Both ECDSA
/// and RSA authentication: when we are the DTLS client, the server's
/// certificate (and so the suite) may be RSA.
const CIPHERS: &str = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:\
ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:\
ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:\
ECDHE-ECDSA-AES128-SHA:ECDHE-RSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA:ECDHE-RSA-AES256-SHA";

/// `SSL_ctrl` commands behind the `DTLSv1_get_timeout` and
/// `DTLSv1_handle_timeout` macros (OpenSSL's `ssl.h`), which `openssl-sys`
/// does not bind.
const DTLS_CTRL_GET_TIMEOUT: libc::c_int = 73;
const DTLS_CTRL_HANDLE_TIMEOUT: libc::c_int = 74;

/// Largest DTLS record plaintext.
const MAX_RECORD: usize = 16_384;

/// Received datagrams OpenSSL has not read yet. Every `handle_packet` drains
/// the queue, so more than a few means something is wrong.
const MAX_QUEUED: usize = 64;

/// Far enough ahead to mean "no timer" to str0m.
const IDLE: Duration = Duration::from_secs(3600);

/// A DTLS endpoint for one peer connection; see the module doc.
pub struct OpensslDtls {
    stream: SslStream<Datagrams>,
    phase: Phase,
    /// Output str0m has not polled yet, in order (after the packets).
    events: VecDeque<Event>,
    /// Latest time str0m gave us; deadlines are measured from it.
    now: Instant,
    close_sent: bool,
    close_received: bool,
    read_buf: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for `set_active`.
    Idle,
    Handshaking {
        active: bool,
    },
    Connected {
        active: bool,
    },
    Failed {
        active: bool,
    },
}

#[derive(Debug)]
enum Event {
    PeerCert(Vec<u8>),
    Connected,
    KeyingMaterial(Vec<u8>, SrtpProfile),
    ApplicationData(Vec<u8>),
    CloseNotify,
}

impl Event {
    /// Bytes it needs in the caller's buffer.
    fn len(&self) -> usize {
        match self {
            Event::PeerCert(bytes) | Event::ApplicationData(bytes) => bytes.len(),
            Event::Connected | Event::KeyingMaterial(..) | Event::CloseNotify => 0,
        }
    }
}

impl OpensslDtls {
    /// An endpoint that will present `cert`, with records sized for `mtu`.
    pub fn new(cert: &DtlsCert, now: Instant, mtu: usize) -> Result<Self, ErrorStack> {
        let context = context(cert)?;
        let mut ssl = Ssl::new(&context)?;
        ssl.set_mtu(u32::try_from(mtu).unwrap_or(u32::MAX))?;
        Ok(Self {
            stream: SslStream::new(ssl, Datagrams::default())?,
            phase: Phase::Idle,
            events: VecDeque::new(),
            now,
            close_sent: false,
            close_received: false,
            read_buf: vec![0; MAX_RECORD],
        })
    }

    /// Runs the handshake as far as the received datagrams allow.
    fn drive_handshake(&mut self, active: bool) -> Result<(), DtlsImplError> {
        // SSL_connect / SSL_accept pick the role on the first call and
        // continue the handshake on later ones.
        let progress = if active {
            self.stream.connect()
        } else {
            self.stream.accept()
        };
        match progress {
            Ok(()) => self.on_connected(active),
            Err(e) if e.code() == ErrorCode::WANT_READ || e.code() == ErrorCode::WANT_WRITE => {
                Ok(())
            }
            Err(e) => {
                tracing::debug!(error = %e, "OpenSSL DTLS handshake failed");
                self.phase = Phase::Failed { active };
                Err(failed(CryptoOperation::CompleteKeyExchange))
            }
        }
    }

    /// Queues what str0m needs from a finished handshake: the peer's
    /// certificate (str0m checks its fingerprint), the SRTP keys.
    fn on_connected(&mut self, active: bool) -> Result<(), DtlsImplError> {
        let ssl = self.stream.ssl();
        let Some(peer) = ssl.peer_certificate() else {
            self.phase = Phase::Failed { active };
            return Err(DtlsImplError::CertificateError(if active {
                CertificateError::NoServerCertificateReceived
            } else {
                CertificateError::NoClientCertificateReceived
            }));
        };
        let peer = peer
            .to_der()
            .map_err(|_| DtlsImplError::CertificateError(CertificateError::ParseFailed))?;
        let keys = srtp_keying_material(ssl);
        let Some((keys, profile)) = keys else {
            self.phase = Phase::Failed { active };
            return Err(failed(CryptoOperation::Prf));
        };
        tracing::debug!(
            version = ssl.version_str(),
            cipher = ssl.current_cipher().map_or("?", |c| c.name()),
            ?profile,
            "OpenSSL DTLS connected"
        );
        self.phase = Phase::Connected { active };
        self.events.push_back(Event::PeerCert(peer));
        self.events.push_back(Event::Connected);
        self.events.push_back(Event::KeyingMaterial(keys, profile));
        Ok(())
    }

    /// Decrypts every record waiting, noting a `close_notify`.
    fn read_records(&mut self) -> Result<(), DtlsImplError> {
        loop {
            match self.stream.ssl_read(&mut self.read_buf) {
                Ok(0) => {}
                Ok(n) => {
                    let data = self.read_buf[..n].to_vec();
                    self.events.push_back(Event::ApplicationData(data));
                }
                Err(e) if e.code() == ErrorCode::ZERO_RETURN => {
                    self.on_close_notify();
                    return Ok(());
                }
                Err(e) if e.code() == ErrorCode::WANT_READ => return Ok(()),
                Err(e) => {
                    tracing::debug!(error = %e, "OpenSSL DTLS read failed");
                    return Err(failed(CryptoOperation::Decrypt));
                }
            }
        }
    }

    fn on_close_notify(&mut self) {
        if self.close_received {
            return;
        }
        self.close_received = true;
        self.events.push_back(Event::CloseNotify);
        // Answer with our own close_notify (RFC 5246 7.2.1) unless we sent it.
        if !self.close_sent {
            self.close_sent = true;
            let _ = self.stream.shutdown();
        }
    }

    /// OpenSSL's retransmission timer, if one is running.
    fn retransmit_in(&self) -> Option<Duration> {
        let mut left = libc::timeval {
            tv_sec: 0,
            tv_usec: 0,
        };
        // SAFETY: `DTLSv1_get_timeout` is `SSL_ctrl(ssl, DTLS_CTRL_GET_TIMEOUT,
        // 0, &timeval)`; the pointer is to a live, writable timeval and the SSL
        // is owned by `self.stream`.
        let running = unsafe {
            openssl_sys::SSL_ctrl(
                self.stream.ssl().as_ptr(),
                DTLS_CTRL_GET_TIMEOUT,
                0,
                (&mut left as *mut libc::timeval).cast(),
            )
        };
        let secs = u64::try_from(left.tv_sec).unwrap_or(0);
        let micros = u32::try_from(left.tv_usec).unwrap_or(0);
        (running > 0).then(|| Duration::from_secs(secs) + Duration::from_micros(micros.into()))
    }

    /// The shortest record of a protected epoch worth handing to OpenSSL.
    /// OpenSSL 3.0 takes an AEAD record shorter than its explicit nonce and
    /// tag (8 + 16 bytes for AES-GCM, the 16-byte tag for ChaCha20-Poly1305)
    /// for an internal error and fails the connection, where it drops other
    /// bad records. No real record is that short: CBC records are at least
    /// 32 bytes, and while the suite is unknown AES-GCM's bound holds.
    fn min_protected_record(&self) -> usize {
        match self.stream.ssl().current_cipher() {
            Some(cipher) if cipher.name().contains("CHACHA20") => 16,
            _ => 24,
        }
    }

    fn active(&self) -> Option<bool> {
        match self.phase {
            Phase::Idle => None,
            Phase::Handshaking { active }
            | Phase::Connected { active }
            | Phase::Failed { active } => Some(active),
        }
    }
}

impl DtlsInstance for OpensslDtls {
    fn set_active(&mut self, active: bool) {
        if self.phase != Phase::Idle {
            return;
        }
        self.phase = Phase::Handshaking { active };
        if active {
            // Writes the ClientHello; a failure shows on the next packet.
            let _ = self.drive_handshake(active);
        }
    }

    fn handle_packet(&mut self, packet: &[u8]) -> Result<(), DtlsImplError> {
        // Anyone who knows the peer's address can send such a record; RFC
        // 6347 4.1.2.7 says to discard invalid records silently. Only once
        // connected: handshake messages (hellos carry the version bytes
        // and random data) could match, and a retransmission would too.
        let connected = matches!(self.phase, Phase::Connected { .. });
        if connected && has_short_protected_record(packet, self.min_protected_record()) {
            tracing::trace!(len = packet.len(), "short DTLS record dropped");
            return Ok(());
        }
        // str0m sends an empty "packet" to kick off a client handshake.
        if !packet.is_empty() {
            if self.stream.get_ref().incoming.len() >= MAX_QUEUED {
                return Err(DtlsImplError::ReceiveQueueFull);
            }
            self.stream.get_mut().incoming.push_back(packet.to_vec());
        }
        match self.phase {
            Phase::Idle | Phase::Failed { .. } => {
                self.stream.get_mut().incoming.clear();
                Ok(())
            }
            Phase::Handshaking { active } => {
                self.drive_handshake(active)?;
                if matches!(self.phase, Phase::Connected { .. }) {
                    // Application data may ride with the last flight.
                    self.read_records()?;
                }
                Ok(())
            }
            Phase::Connected { .. } if self.close_received => {
                self.stream.get_mut().incoming.clear();
                Ok(())
            }
            Phase::Connected { .. } => self.read_records(),
        }
    }

    fn poll_output<'a>(&mut self, buf: &'a mut [u8]) -> DtlsOutput<'a> {
        if let Some(packet) = self.stream.get_mut().outgoing.pop_front() {
            if packet.len() > buf.len() {
                let needed = packet.len();
                self.stream.get_mut().outgoing.push_front(packet);
                return DtlsOutput::BufferTooSmall { needed };
            }
            buf[..packet.len()].copy_from_slice(&packet);
            return DtlsOutput::Packet(&buf[..packet.len()]);
        }
        if let Some(needed) = self
            .events
            .front()
            .map(Event::len)
            .filter(|&n| n > buf.len())
        {
            // Kept queued: str0m may retry with a larger buffer.
            return DtlsOutput::BufferTooSmall { needed };
        }
        if let Some(event) = self.events.pop_front() {
            return match event {
                Event::PeerCert(der) => DtlsOutput::PeerCert(copy_into(buf, &der)),
                Event::Connected => DtlsOutput::Connected,
                Event::KeyingMaterial(keys, profile) => {
                    DtlsOutput::KeyingMaterial(KeyingMaterial::new(&keys), profile)
                }
                Event::ApplicationData(data) => DtlsOutput::ApplicationData(copy_into(buf, &data)),
                Event::CloseNotify => DtlsOutput::CloseNotify,
            };
        }
        // Ask OpenSSL for its retransmission timer only while handshaking:
        // this runs on every poll of a connected peer.
        let handshaking = matches!(self.phase, Phase::Handshaking { .. });
        match handshaking.then(|| self.retransmit_in()).flatten() {
            Some(left) => DtlsOutput::Timeout(self.now + left),
            None => DtlsOutput::Timeout(self.now + IDLE),
        }
    }

    fn handle_timeout(&mut self, now: Instant) -> Result<(), DtlsImplError> {
        self.now = self.now.max(now);
        let Phase::Handshaking { active } = self.phase else {
            return Ok(());
        };
        // SAFETY: `DTLSv1_handle_timeout` is `SSL_ctrl(ssl,
        // DTLS_CTRL_HANDLE_TIMEOUT, 0, NULL)`; the SSL is owned by
        // `self.stream` and its BIO (our queue) is attached.
        let ret = unsafe {
            openssl_sys::SSL_ctrl(
                self.stream.ssl().as_ptr(),
                DTLS_CTRL_HANDLE_TIMEOUT,
                0,
                std::ptr::null_mut(),
            )
        };
        if ret < 0 {
            // Too many retransmissions without an answer.
            tracing::debug!(error = %ErrorStack::get(), "OpenSSL DTLS handshake timed out");
            self.phase = Phase::Failed { active };
            return Err(DtlsImplError::Timeout(TimeoutError::Handshake));
        }
        Ok(())
    }

    fn send_application_data(&mut self, data: &[u8]) -> Result<usize, DtlsImplError> {
        if self.close_sent || self.close_received {
            return Err(DtlsImplError::ConnectionClosed);
        }
        if data.is_empty() || !matches!(self.phase, Phase::Connected { .. }) {
            return Ok(0);
        }
        match self.stream.ssl_write(data) {
            Ok(n) => Ok(n),
            Err(e) if e.code() == ErrorCode::WANT_WRITE => Ok(0),
            Err(e) => {
                tracing::debug!(error = %e, "OpenSSL DTLS write failed");
                Err(failed(CryptoOperation::Encrypt))
            }
        }
    }

    fn is_active(&self) -> bool {
        self.active().unwrap_or(false)
    }

    fn protocol_version(&self) -> Option<ProtocolVersion> {
        matches!(self.phase, Phase::Connected { .. }).then_some(ProtocolVersion::DTLS1_2)
    }

    fn is_closing(&self) -> bool {
        self.close_sent || self.close_received
    }

    fn is_closed(&self) -> bool {
        self.close_sent && self.stream.get_ref().outgoing.is_empty()
    }

    fn close(&mut self) -> Result<(), DtlsImplError> {
        if self.close_sent {
            return Ok(());
        }
        self.close_sent = true;
        if matches!(self.phase, Phase::Connected { .. }) {
            // Queues the close_notify; the peer's answer is not waited for.
            let _ = self.stream.shutdown();
        }
        Ok(())
    }
}

impl std::fmt::Debug for OpensslDtls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpensslDtls")
            .field("phase", &self.phase)
            .field("events", &self.events.len())
            .field("close_sent", &self.close_sent)
            .field("close_received", &self.close_received)
            .finish()
    }
}

/// One `SslContext` per connection: it carries that connection's certificate.
fn context(cert: &DtlsCert) -> Result<SslContext, ErrorStack> {
    let mut ctx = SslContext::builder(SslMethod::dtls())?;
    ctx.set_min_proto_version(Some(SslVersion::DTLS1_2))?;
    ctx.set_max_proto_version(Some(SslVersion::DTLS1_2))?;
    ctx.set_cipher_list(CIPHERS)?;
    ctx.set_tlsext_use_srtp(SRTP_PROFILES)?;
    ctx.set_certificate(&*X509::from_der(&cert.certificate)?)?;
    ctx.set_private_key(&*PKey::private_key_from_der(&cert.private_key)?)?;
    ctx.check_private_key()?;
    // Ask for the peer's certificate and take any: str0m pins it by the
    // SDP fingerprint, which is the only check WebRTC defines.
    ctx.set_verify_callback(
        SslVerifyMode::PEER | SslVerifyMode::FAIL_IF_NO_PEER_CERT,
        |_, _| true,
    );
    // The MTU comes from str0m (`Ssl::set_mtu`); there is no socket to ask.
    ctx.set_options(SslOptions::NO_QUERY_MTU | SslOptions::SINGLE_ECDH_USE);
    Ok(ctx.build())
}

/// The negotiated SRTP profile and RFC 5764 keying material for it.
fn srtp_keying_material(ssl: &SslRef) -> Option<(Vec<u8>, SrtpProfile)> {
    let profile = match ssl.selected_srtp_profile()?.id() {
        SrtpProfileId::SRTP_AEAD_AES_128_GCM => SrtpProfile::AEAD_AES_128_GCM,
        SrtpProfileId::SRTP_AES128_CM_SHA1_80 => SrtpProfile::AES128_CM_SHA1_80,
        other => {
            tracing::debug!(profile = other.as_raw(), "unexpected SRTP profile");
            return None;
        }
    };
    let mut keys = vec![0; profile.keying_material_len()];
    ssl.export_keying_material(&mut keys, SRTP_EXPORTER_LABEL, None)
        .ok()?;
    Some((keys, profile))
}

fn failed(operation: CryptoOperation) -> DtlsImplError {
    DtlsImplError::CryptoError(dimpl::CryptoError::OperationFailed(operation))
}

/// `data` copied to the front of `buf`, which the caller made sure is long
/// enough.
fn copy_into<'a>(buf: &'a mut [u8], data: &[u8]) -> &'a [u8] {
    buf[..data.len()].copy_from_slice(data);
    &buf[..data.len()]
}

#[cfg(test)]
mod tests {
    use openssl::rsa::Rsa;
    use str0m::crypto::dtls::{DtlsProvider, DtlsVersion};

    use super::*;
    use crate::media::dtls::OpensslDtlsProvider;

    /// What one side saw during a run.
    #[derive(Default)]
    struct Seen {
        connected: bool,
        peer_cert: Option<Vec<u8>>,
        keys: Option<(Vec<u8>, SrtpProfile)>,
        data: Vec<Vec<u8>>,
        close_notify: bool,
    }

    /// Drains `from`'s output, delivering its packets to `to`.
    fn pump(from: &mut dyn DtlsInstance, to: &mut dyn DtlsInstance, seen: &mut Seen) -> usize {
        let mut buf = vec![0; 2000];
        let mut packets = 0;
        loop {
            match from.poll_output(&mut buf) {
                DtlsOutput::Packet(p) => {
                    packets += 1;
                    let p = p.to_vec();
                    to.handle_packet(&p).expect("peer accepts our packet");
                }
                DtlsOutput::Connected => seen.connected = true,
                DtlsOutput::PeerCert(der) => seen.peer_cert = Some(der.to_vec()),
                DtlsOutput::KeyingMaterial(km, profile) => seen.keys = Some((km.to_vec(), profile)),
                DtlsOutput::ApplicationData(d) => seen.data.push(d.to_vec()),
                DtlsOutput::CloseNotify => seen.close_notify = true,
                DtlsOutput::Timeout(_) => return packets,
                other => panic!("unexpected output {other:?}"),
            }
        }
    }

    /// Runs a handshake between `client` and `server` with no loss.
    fn handshake(
        client: &mut dyn DtlsInstance,
        server: &mut dyn DtlsInstance,
        now: Instant,
    ) -> (Seen, Seen) {
        let (mut c, mut s) = (Seen::default(), Seen::default());
        server.set_active(false);
        client.set_active(true);
        server.handle_timeout(now).unwrap();
        client.handle_timeout(now).unwrap();
        client.handle_packet(&[]).unwrap();
        for _ in 0..20 {
            let moved = pump(client, server, &mut c) + pump(server, client, &mut s);
            if moved == 0 && c.connected && s.connected {
                break;
            }
        }
        assert!(c.connected && s.connected, "handshake did not finish");
        (c, s)
    }

    fn ours(now: Instant) -> (Box<dyn DtlsInstance>, DtlsCert) {
        let cert = OpensslDtlsProvider.generate_certificate().unwrap();
        let dtls = OpensslDtlsProvider
            .new_dtls(&cert, now, DtlsVersion::Dtls12, Some(1150))
            .unwrap();
        (dtls, cert)
    }

    fn rsa_cert() -> DtlsCert {
        let key = PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap();
        let mut name = openssl::x509::X509NameBuilder::new().unwrap();
        name.append_entry_by_text("CN", "gstreamer").unwrap();
        let name = name.build();
        let mut x509 = openssl::x509::X509Builder::new().unwrap();
        x509.set_version(2).unwrap();
        x509.set_subject_name(&name).unwrap();
        x509.set_issuer_name(&name).unwrap();
        x509.set_pubkey(&key).unwrap();
        x509.set_not_before(&openssl::asn1::Asn1Time::days_from_now(0).unwrap())
            .unwrap();
        x509.set_not_after(&openssl::asn1::Asn1Time::days_from_now(1).unwrap())
            .unwrap();
        x509.sign(&key, openssl::hash::MessageDigest::sha256())
            .unwrap();
        DtlsCert {
            certificate: x509.build().to_der().unwrap(),
            // Traditional (PKCS#1) DER on purpose: not every peer uses PKCS#8.
            private_key: key.private_key_to_der().unwrap(),
        }
    }

    #[test]
    fn two_endpoints_agree_on_srtp_keys_and_see_each_others_certificate() {
        let now = Instant::now();
        let (mut client, client_cert) = ours(now);
        let (mut server, server_cert) = ours(now);
        let (c, s) = handshake(client.as_mut(), server.as_mut(), now);

        let (client_keys, profile) = c.keys.unwrap();
        assert_eq!(Some((client_keys.clone(), profile)), s.keys);
        assert_eq!(profile, SrtpProfile::AEAD_AES_128_GCM);
        assert_eq!(client_keys.len(), 56);
        assert_eq!(c.peer_cert, Some(server_cert.certificate));
        assert_eq!(s.peer_cert, Some(client_cert.certificate));
        assert!(client.is_active() && !server.is_active());
        assert_eq!(server.protocol_version(), Some(ProtocolVersion::DTLS1_2));
    }

    #[test]
    fn our_certificate_is_ecdsa_p256() {
        let cert = OpensslDtlsProvider.generate_certificate().unwrap();
        let x509 = X509::from_der(&cert.certificate).unwrap();
        let key = x509.public_key().unwrap().ec_key().unwrap();
        assert_eq!(
            key.group().curve_name(),
            Some(openssl::nid::Nid::X9_62_PRIME256V1)
        );
        PKey::private_key_from_pkcs8(&cert.private_key).unwrap();
    }

    #[test]
    fn a_client_with_an_rsa_certificate_connects() {
        let now = Instant::now();
        let rsa = rsa_cert();
        let mut client = OpensslDtls::new(&rsa, now, 1150).unwrap();
        let (mut server, _) = ours(now);
        let (c, s) = handshake(&mut client, server.as_mut(), now);
        assert_eq!(s.peer_cert, Some(rsa.certificate));
        assert_eq!(c.keys.map(|k| k.0), s.keys.map(|k| k.0));
    }

    #[test]
    fn we_connect_as_client_to_a_server_with_an_rsa_certificate() {
        let now = Instant::now();
        let rsa = rsa_cert();
        let (mut client, _) = ours(now);
        let mut server = OpensslDtls::new(&rsa, now, 1150).unwrap();
        let (c, s) = handshake(client.as_mut(), &mut server, now);
        assert_eq!(c.peer_cert, Some(rsa.certificate));
        assert_eq!(c.keys.map(|k| k.0), s.keys.map(|k| k.0));
    }

    #[test]
    fn str0m_builtin_dtls_client_connects_both_ways() {
        let now = Instant::now();
        let builtin = str0m::crypto::from_feature_flags().dtls_provider;
        for we_are_server in [true, false] {
            let cert = builtin.generate_certificate().unwrap();
            let mut theirs = builtin
                .new_dtls(&cert, now, DtlsVersion::Dtls12, Some(1150))
                .unwrap();
            let (mut mine, _) = ours(now);
            let (a, b) = if we_are_server {
                handshake(theirs.as_mut(), mine.as_mut(), now)
            } else {
                handshake(mine.as_mut(), theirs.as_mut(), now)
            };
            assert!(a.keys.is_some());
            assert_eq!(a.keys.map(|k| k.0), b.keys.map(|k| k.0));
        }
    }

    #[test]
    fn application_data_and_close_notify_cross() {
        let now = Instant::now();
        let (mut client, _) = ours(now);
        let (mut server, _) = ours(now);
        assert_eq!(client.send_application_data(b"early").unwrap(), 0);
        handshake(client.as_mut(), server.as_mut(), now);

        assert_eq!(client.send_application_data(b"sctp").unwrap(), 4);
        let mut s = Seen::default();
        pump(client.as_mut(), server.as_mut(), &mut Seen::default());
        pump(server.as_mut(), client.as_mut(), &mut s);
        assert_eq!(s.data, vec![b"sctp".to_vec()]);

        client.close().unwrap();
        assert!(client.is_closing());
        pump(client.as_mut(), server.as_mut(), &mut Seen::default());
        assert!(client.is_closed());
        let mut s = Seen::default();
        pump(server.as_mut(), client.as_mut(), &mut s);
        assert!(s.close_notify);
        assert!(client.send_application_data(b"late").is_err());
    }

    #[test]
    fn a_lost_flight_arms_the_retransmission_timer() {
        let now = Instant::now();
        let (mut client, _) = ours(now);
        client.set_active(true);
        client.handle_timeout(now).unwrap();
        let mut buf = vec![0; 2000];
        // The ClientHello, lost.
        assert!(matches!(
            client.poll_output(&mut buf),
            DtlsOutput::Packet(_)
        ));
        let DtlsOutput::Timeout(at) = client.poll_output(&mut buf) else {
            panic!("expected a timeout after the flight");
        };
        assert!(at > now && at <= now + Duration::from_secs(1), "{at:?}");
        // Before OpenSSL's timer expires nothing is resent.
        client.handle_timeout(now).unwrap();
        assert!(matches!(
            client.poll_output(&mut buf),
            DtlsOutput::Timeout(_)
        ));
    }

    #[test]
    fn a_lost_client_hello_is_sent_again_when_openssls_timer_expires() {
        // OpenSSL's DTLS timer reads the real clock (module doc), so this one
        // test has to wait out its first interval of one second.
        let now = Instant::now();
        let (mut client, _) = ours(now);
        let (mut server, _) = ours(now);
        client.set_active(true);
        let mut buf = vec![0; 2000];
        let DtlsOutput::Packet(hello) = client.poll_output(&mut buf) else {
            panic!("expected the ClientHello");
        };
        let hello = hello.to_vec();
        let DtlsOutput::Timeout(at) = client.poll_output(&mut buf) else {
            panic!("expected a timeout");
        };
        std::thread::sleep(at - now + Duration::from_millis(50));
        client.handle_timeout(Instant::now()).unwrap();
        let DtlsOutput::Packet(again) = client.poll_output(&mut buf) else {
            panic!("expected a retransmitted ClientHello");
        };
        assert_eq!(again.len(), hello.len());
        let again = again.to_vec();
        server.set_active(false);
        server.handle_packet(&again).unwrap();
        let (c, s) = handshake(client.as_mut(), server.as_mut(), Instant::now());
        assert_eq!(c.keys.map(|k| k.0), s.keys.map(|k| k.0));
    }

    /// Found by `tests/hostile_input.rs`: one spoofed 14-byte datagram, a
    /// record of the current epoch too short for AES-GCM, ended a
    /// connected peer ("unexpected EOF" from OpenSSL 3.0).
    #[test]
    fn a_short_record_of_the_current_epoch_is_dropped_and_data_still_crosses() {
        let now = Instant::now();
        let (mut client, _) = ours(now);
        let (mut server, _) = ours(now);
        handshake(client.as_mut(), server.as_mut(), now);
        let short = [20, 254, 253, 0, 1, 0, 0, 0, 0, 0, 5, 0, 1, 1];
        assert!(server.handle_packet(&short).is_ok());

        assert_eq!(client.send_application_data(b"sctp").unwrap(), 4);
        let mut s = Seen::default();
        pump(client.as_mut(), server.as_mut(), &mut Seen::default());
        pump(server.as_mut(), client.as_mut(), &mut s);
        assert_eq!(s.data, vec![b"sctp".to_vec()]);
    }

    #[test]
    fn garbage_before_the_handshake_is_dropped_and_a_real_client_still_connects() {
        let now = Instant::now();
        let (mut server, _) = ours(now);
        server.set_active(false);
        // A truncated handshake record, then bytes that are no record at all.
        let _ = server.handle_packet(&[22, 254, 253, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5, 1, 2]);
        let _ = server.handle_packet(&[0xff; 40]);
        let (mut client, _) = ours(now);
        let (c, s) = handshake(client.as_mut(), server.as_mut(), now);
        assert_eq!(c.keys.map(|k| k.0), s.keys.map(|k| k.0));
    }
}
