//! Our own DTLS certificate: self-signed ECDSA P-256.
//!
//! ECDSA because browsers and every other WebRTC stack accept it and it is
//! what str0m's built-in DTLS makes too; OpenSSL lets *peers* use RSA, our
//! side needs no change for that. Nobody validates the certificate's names or
//! dates — peers pin its SHA-256 fingerprint from the SDP — so it only has to
//! parse and sign.

use std::time::{SystemTime, UNIX_EPOCH};

use openssl::asn1::Asn1Time;
use openssl::bn::{BigNum, MsbOption};
use openssl::ec::{EcGroup, EcKey};
use openssl::error::ErrorStack;
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::PKey;
use openssl::x509::{X509Builder, X509NameBuilder};
use str0m::crypto::dtls::DtlsCert;

/// How long the certificate claims to be valid, counted from a day ago so a
/// peer whose clock is a little behind does not see it as not yet valid.
const VALID_DAYS: u32 = 30;

/// A fresh key pair and certificate: the certificate as DER, the key as
/// PKCS#8 DER (the format str0m's other providers use too).
pub(super) fn self_signed_ecdsa() -> Result<DtlsCert, ErrorStack> {
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1)?;
    let key = PKey::from_ec_key(EcKey::generate(&group)?)?;

    let mut name = X509NameBuilder::new()?;
    name.append_entry_by_nid(Nid::COMMONNAME, "cascade")?;
    let name = name.build();

    let mut serial = BigNum::new()?;
    serial.rand(64, MsbOption::MAYBE_ZERO, false)?;

    let mut x509 = X509Builder::new()?;
    x509.set_version(2)?; // X.509 v3
    x509.set_serial_number(&*serial.to_asn1_integer()?)?;
    x509.set_subject_name(&name)?;
    x509.set_issuer_name(&name)?;
    x509.set_pubkey(&key)?;
    x509.set_not_before(&*Asn1Time::from_unix(unix_now() - 86_400)?)?;
    x509.set_not_after(&*Asn1Time::days_from_now(VALID_DAYS)?)?;
    x509.sign(&key, MessageDigest::sha256())?;

    Ok(DtlsCert {
        certificate: x509.build().to_der()?,
        private_key: key.private_key_to_pkcs8()?,
    })
}

/// Wall-clock seconds, for the certificate's validity only.
fn unix_now() -> libc::time_t {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    libc::time_t::try_from(secs).unwrap_or(libc::time_t::MAX)
}
