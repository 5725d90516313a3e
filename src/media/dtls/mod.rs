//! DTLS through the system OpenSSL, plugged into str0m as a crypto provider.
//!
//! str0m 0.25's built-in DTLS (dimpl) only speaks ECDSA, so a peer whose
//! certificate is RSA (stock GStreamer 1.22 `webrtcbin`, older libwebrtc
//! builds, many embedded stacks) fails with "no client certificate received".
//! OpenSSL accepts any key type. It exists only because of that gap: the
//! `openssl` feature of str0m (the `str0m-openssl` 0.7 crate) would take RSA
//! peers too, but it does not resolve from the crates.io registry Cascade
//! builds from. What would replace this module: that feature once it
//! resolves, or RSA support in dimpl; either makes this module and its
//! OpenSSL dependency go, with `tests/dtls_rsa.rs` as the check. This
//! module owns:
//!
//! - [`crypto_provider`]: the [`CryptoProvider`] every server `Rtc` uses —
//!   str0m's default (aws-lc-rs) SRTP, HMAC and hashes, with DTLS swapped for
//!   ours;
//! - [`OpensslDtlsProvider`]: makes our certificate (`cert`) and one
//!   [`OpensslDtls`] per peer connection (`instance`).
//!
//! What it must not do: verify the peer's certificate. Any certificate is
//! accepted during the handshake and handed to str0m as `PeerCert`; str0m
//! compares its fingerprint with the SDP's `a=fingerprint` and drops the
//! connection on a mismatch. It must also not read the clock for anything
//! str0m sees: deadlines are computed from the `now` str0m passes in (OpenSSL
//! keeps its own retransmission clock internally, see `instance`).

mod cert;
mod datagrams;
mod instance;

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use str0m::config::CryptoProvider;
use str0m::crypto::dtls::{DtlsCert, DtlsInstance, DtlsProvider, DtlsVersion};
use str0m::crypto::CryptoError;

pub use self::instance::OpensslDtls;

/// The crypto provider for Cascade's server side: str0m's default provider
/// for everything but DTLS, which goes through OpenSSL.
///
/// Built once per process; every call returns the same `Arc`.
pub fn crypto_provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    static DTLS: OpensslDtlsProvider = OpensslDtlsProvider;
    PROVIDER
        .get_or_init(|| {
            let mut provider = str0m::crypto::from_feature_flags();
            provider.dtls_provider = &DTLS;
            Arc::new(provider)
        })
        .clone()
}

/// Makes OpenSSL-backed DTLS instances and ECDSA P-256 certificates.
#[derive(Debug, Clone, Copy, Default)]
pub struct OpensslDtlsProvider;

impl DtlsProvider for OpensslDtlsProvider {
    fn generate_certificate(&self) -> Option<DtlsCert> {
        match cert::self_signed_ecdsa() {
            Ok(cert) => Some(cert),
            Err(e) => {
                tracing::warn!(error = %e, "OpenSSL could not make a DTLS certificate");
                None
            }
        }
    }

    fn new_dtls(
        &self,
        cert: &DtlsCert,
        now: Instant,
        dtls_version: DtlsVersion,
        mtu: Option<usize>,
    ) -> Result<Box<dyn DtlsInstance>, CryptoError> {
        // `Auto` lets the peer's ClientHello decide; every DTLS 1.3 client
        // also offers 1.2, which is all we speak.
        if dtls_version == DtlsVersion::Dtls13 {
            return Err(CryptoError::Other(
                "the OpenSSL DTLS provider speaks DTLS 1.2 only".into(),
            ));
        }
        let mtu = mtu.unwrap_or(str0m::DATAGRAM_MTU_TARGET);
        let dtls = OpensslDtls::new(cert, now, mtu)
            .map_err(|e| CryptoError::Other(format!("OpenSSL DTLS setup: {e}")))?;
        Ok(Box::new(dtls))
    }
}
