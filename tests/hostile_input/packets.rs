//! Datagrams for the media core, near-valid by construction: STUN with the
//! magic cookie and real or random attributes, RTP of version 2 with any
//! flags, compound RTCP of payload types 200-206, DTLS records of any type
//! and epoch, each with lengths that may lie, and raw bytes. What they name
//! of the room they go to (USERNAMEs, SSRCs) is by index into [`Names`], so
//! a case means the same in every fresh room.

use std::net::SocketAddr;

use proptest::collection::vec;
use proptest::prelude::*;

pub const MAGIC_COOKIE: [u8; 4] = [0x21, 0x12, 0xA4, 0x42];
pub const BINDING_REQUEST: u16 = 0x0001;
pub const ATTR_USERNAME: u16 = 0x0006;
const ATTR_MESSAGE_INTEGRITY: u16 = 0x0008;
const ATTR_PRIORITY: u16 = 0x0024;
const ATTR_ICE_CONTROLLED: u16 = 0x8029;
const ATTR_ICE_CONTROLLING: u16 = 0x802A;

/// Participants in each case's room; each names one subscribe USERNAME and
/// two SSRCs (audio, video).
pub const PARTICIPANTS: usize = 2;

/// What a datagram may name of the room it is sent into.
#[derive(Debug, Clone)]
pub struct Names {
    /// `server:client` USERNAMEs of the subscribe connections.
    pub usernames: Vec<String>,
    /// SSRCs the publishers send with.
    pub ssrcs: Vec<u32>,
    /// Addresses of the clients' connections.
    pub addresses: Vec<SocketAddr>,
}

/// A USERNAME: a real one of the room (by index) or any text.
#[derive(Debug, Clone)]
pub enum Username {
    Real(usize),
    Text(String),
}

/// An SSRC: one the room's publishers use (by index) or any.
#[derive(Debug, Clone)]
pub enum Ssrc {
    Real(usize),
    Any(u32),
}

impl Ssrc {
    fn resolve(&self, names: &Names) -> u32 {
        match self {
            Ssrc::Real(i) => names.ssrcs[i % names.ssrcs.len()],
            Ssrc::Any(n) => *n,
        }
    }
}

/// A declared length: mostly the true one (`None`), sometimes any.
fn lie() -> impl Strategy<Value = Option<u16>> {
    prop_oneof![4 => Just(None), 1 => any::<u16>().prop_map(Some)]
}

fn ssrc() -> impl Strategy<Value = Ssrc> {
    prop_oneof![
        (0..2 * PARTICIPANTS).prop_map(Ssrc::Real),
        any::<u32>().prop_map(Ssrc::Any)
    ]
}

/// An attribute of a STUN message, with the length it claims.
#[derive(Debug, Clone)]
pub enum Attr {
    Username(Username),
    Other(u16, Vec<u8>),
}

/// A STUN message; lengths are the real ones unless a lie is given.
#[derive(Debug, Clone)]
pub struct Stun {
    method: u16,
    cookie: bool,
    txid: [u8; 12],
    attrs: Vec<(Attr, Option<u16>)>,
    length_lie: Option<u16>,
}

impl Stun {
    fn encode(&self, names: &Names) -> Vec<u8> {
        let mut body = Vec::new();
        for (attr, len_lie) in &self.attrs {
            let (kind, value) = match attr {
                Attr::Username(Username::Real(i)) => {
                    let name = &names.usernames[i % names.usernames.len()];
                    (ATTR_USERNAME, name.as_bytes().to_vec())
                }
                Attr::Username(Username::Text(t)) => (ATTR_USERNAME, t.as_bytes().to_vec()),
                Attr::Other(kind, value) => (*kind, value.clone()),
            };
            body.extend_from_slice(&kind.to_be_bytes());
            let len = len_lie.unwrap_or(value.len() as u16);
            body.extend_from_slice(&len.to_be_bytes());
            body.extend_from_slice(&value);
            body.resize(body.len().next_multiple_of(4), 0);
        }
        let mut msg = self.method.to_be_bytes().to_vec();
        let len = self.length_lie.unwrap_or(body.len() as u16);
        msg.extend_from_slice(&len.to_be_bytes());
        msg.extend_from_slice(if self.cookie { &MAGIC_COOKIE } else { &[0; 4] });
        msg.extend_from_slice(&self.txid);
        msg.extend_from_slice(&body);
        msg
    }
}

/// STUN of any shape, or an ICE check as a browser sends it with a forged
/// MESSAGE-INTEGRITY (which str0m parses, so its credentials check runs).
fn stun() -> impl Strategy<Value = Stun> {
    prop_oneof![any_stun(), forged_check()]
}

fn username() -> impl Strategy<Value = Username> {
    prop_oneof![
        3 => (0..PARTICIPANTS).prop_map(Username::Real),
        1 => "[ -~]{0,40}".prop_map(Username::Text),
        1 => any::<String>().prop_map(Username::Text),
    ]
}

fn forged_check() -> impl Strategy<Value = Stun> {
    let role = prop_oneof![Just(ATTR_ICE_CONTROLLING), Just(ATTR_ICE_CONTROLLED)];
    let attrs = (
        username(),
        any::<[u8; 4]>(),
        role,
        any::<[u8; 8]>(),
        any::<bool>(),
    );
    (
        any::<[u8; 12]>(),
        attrs,
        any::<[u8; 20]>(),
        any::<[u8; 4]>(),
    )
        .prop_map(
            |(txid, (username, priority, role, tiebreak, nominate), integrity, fingerprint)| {
                let mut attrs = vec![
                    (Attr::Username(username), None),
                    (Attr::Other(ATTR_PRIORITY, priority.to_vec()), None),
                    (Attr::Other(role, tiebreak.to_vec()), None),
                ];
                if nominate {
                    attrs.push((Attr::Other(0x0025, Vec::new()), None)); // USE-CANDIDATE
                }
                attrs.push((
                    Attr::Other(ATTR_MESSAGE_INTEGRITY, integrity.to_vec()),
                    None,
                ));
                attrs.push((Attr::Other(0x8028, fingerprint.to_vec()), None)); // FINGERPRINT
                Stun {
                    method: BINDING_REQUEST,
                    cookie: true,
                    txid,
                    attrs,
                    length_lie: None,
                }
            },
        )
}

fn any_stun() -> impl Strategy<Value = Stun> {
    let method = prop_oneof![
        4 => Just(BINDING_REQUEST),
        1 => Just(0x0101u16), // success response
        1 => Just(0x0111u16), // error response
        1 => Just(0x0011u16), // indication
        1 => any::<u16>().prop_map(|t| t & 0x3fff),
    ];
    let attr_type = prop_oneof![
        Just(ATTR_MESSAGE_INTEGRITY),
        Just(0x8028), // FINGERPRINT
        Just(ATTR_PRIORITY),
        Just(0x0025), // USE-CANDIDATE
        Just(ATTR_ICE_CONTROLLED),
        Just(ATTR_ICE_CONTROLLING),
        Just(0x0020), // XOR-MAPPED-ADDRESS
        Just(0x0009), // ERROR-CODE
        any::<u16>(),
    ];
    let size = prop_oneof![Just(0usize), Just(4), Just(8), Just(20), 0..64usize];
    let other = (attr_type, size.prop_flat_map(|n| vec(any::<u8>(), n)));
    let attr = prop_oneof![
        1 => username().prop_map(Attr::Username),
        3 => other.prop_map(|(kind, value)| Attr::Other(kind, value)),
    ];
    (
        method,
        prop::bool::weighted(0.9),
        any::<[u8; 12]>(),
        vec((attr, lie()), 0..6),
        lie(),
    )
        .prop_map(|(method, cookie, txid, attrs, length_lie)| Stun {
            method,
            cookie,
            txid,
            attrs,
            length_lie,
        })
}

/// An RTP packet: version 2 (mostly), any flags, CSRC count, extension and
/// padding, real or random SSRCs, and declared lengths that need not fit.
#[derive(Debug, Clone)]
pub struct Rtp {
    version: u8,
    padding: bool,
    csrc_count: u8,
    marker: bool,
    pt: u8,
    seq: u16,
    timestamp: u32,
    ssrc: Ssrc,
    csrcs: Vec<u32>,
    /// Profile, declared length in words, and the bytes that follow.
    extension: Option<(u16, u16, Vec<u8>)>,
    payload: Vec<u8>,
    /// A last byte, read as the padding count when `padding` is set.
    pad_count: Option<u8>,
}

impl Rtp {
    fn encode(&self, names: &Names) -> Vec<u8> {
        let first = self.version << 6
            | (self.padding as u8) << 5
            | (self.extension.is_some() as u8) << 4
            | self.csrc_count;
        let mut packet = vec![first, (self.marker as u8) << 7 | (self.pt & 0x7f)];
        packet.extend_from_slice(&self.seq.to_be_bytes());
        packet.extend_from_slice(&self.timestamp.to_be_bytes());
        packet.extend_from_slice(&self.ssrc.resolve(names).to_be_bytes());
        for csrc in &self.csrcs {
            packet.extend_from_slice(&csrc.to_be_bytes());
        }
        if let Some((profile, words, body)) = &self.extension {
            packet.extend_from_slice(&profile.to_be_bytes());
            packet.extend_from_slice(&words.to_be_bytes());
            packet.extend_from_slice(body);
        }
        packet.extend_from_slice(&self.payload);
        packet.extend(self.pad_count);
        packet
    }
}

fn rtp() -> impl Strategy<Value = Rtp> {
    let extension = proptest::option::of((
        prop_oneof![Just(0xBEDEu16), Just(0x1000), any::<u16>()],
        0..8u16,
        vec(any::<u8>(), 0..40),
    ));
    let header = (
        prop_oneof![5 => Just(2u8), 1 => 0..4u8],
        any::<bool>(),
        0..16u8,
        any::<bool>(),
        any::<u8>(),
        any::<u16>(),
        any::<u32>(),
        ssrc(),
    );
    let rest = (
        vec(any::<u32>(), 0..16),
        extension,
        vec(any::<u8>(), 0..1200),
        proptest::option::of(any::<u8>()),
    );
    (header, rest).prop_map(
        |(
            (version, padding, csrc_count, marker, pt, seq, timestamp, ssrc),
            (csrcs, extension, payload, pad_count),
        )| Rtp {
            version,
            padding,
            csrc_count,
            marker,
            pt,
            seq,
            timestamp,
            ssrc,
            csrcs,
            extension,
            payload,
            pad_count,
        },
    )
}

/// One packet of a compound RTCP packet.
#[derive(Debug, Clone)]
pub struct Rtcp {
    version: u8,
    padding: bool,
    count: u8,
    pt: u8,
    length_lie: Option<u16>,
    ssrc: Ssrc,
    body: Vec<u8>,
}

/// A compound RTCP packet: payload types 200-206 (mostly), any counts,
/// declared lengths that need not fit, and maybe an SRTCP trailer.
fn rtcp() -> impl Strategy<Value = (Vec<Rtcp>, Option<[u8; 14]>)> {
    let packet = (
        prop_oneof![5 => Just(2u8), 1 => 0..4u8],
        any::<bool>(),
        0..32u8,
        prop_oneof![4 => 200..=206u8, 1 => any::<u8>()],
        lie(),
        ssrc(),
        vec(any::<u8>(), 0..64),
    )
        .prop_map(
            |(version, padding, count, pt, length_lie, ssrc, body)| Rtcp {
                version,
                padding,
                count,
                pt,
                length_lie,
                ssrc,
                body,
            },
        );
    (vec(packet, 1..5), proptest::option::of(any::<[u8; 14]>()))
}

fn encode_rtcp(packets: &[Rtcp], trailer: &Option<[u8; 14]>, names: &Names) -> Vec<u8> {
    let mut out = Vec::new();
    for p in packets {
        let mut body = p.body.clone();
        body.resize(body.len().next_multiple_of(4), 0);
        let words = (body.len() / 4 + 1) as u16; // length in words, minus one
        out.push(p.version << 6 | (p.padding as u8) << 5 | p.count);
        out.push(p.pt);
        out.extend_from_slice(&p.length_lie.unwrap_or(words).to_be_bytes());
        out.extend_from_slice(&p.ssrc.resolve(names).to_be_bytes());
        out.extend_from_slice(&body);
    }
    out.extend(trailer.iter().flatten());
    out
}

/// A DTLS record of any content type, version and epoch.
#[derive(Debug, Clone)]
pub struct Dtls {
    pub content_type: u8,
    pub version: u16,
    pub epoch: u16,
    pub seq: [u8; 6],
    pub length_lie: Option<u16>,
    pub body: Vec<u8>,
}

fn dtls() -> impl Strategy<Value = Vec<Dtls>> {
    let record = (
        prop_oneof![4 => 20..=25u8, 1 => 20..=63u8],
        prop_oneof![Just(0xFEFDu16), Just(0xFEFF), any::<u16>()],
        prop_oneof![Just(0u16), Just(1), any::<u16>()],
        any::<[u8; 6]>(),
        lie(),
        vec(any::<u8>(), 0..200),
    )
        .prop_map(
            |(content_type, version, epoch, seq, length_lie, body)| Dtls {
                content_type,
                version,
                epoch,
                seq,
                length_lie,
                body,
            },
        );
    vec(record, 1..4)
}

pub fn encode_dtls(records: &[Dtls]) -> Vec<u8> {
    let mut out = Vec::new();
    for r in records {
        out.push(r.content_type);
        out.extend_from_slice(&r.version.to_be_bytes());
        out.extend_from_slice(&r.epoch.to_be_bytes());
        out.extend_from_slice(&r.seq);
        out.extend_from_slice(&r.length_lie.unwrap_or(r.body.len() as u16).to_be_bytes());
        out.extend_from_slice(&r.body);
    }
    out
}

/// Any datagram: raw bytes or one of the near-valid kinds.
#[derive(Debug, Clone)]
pub enum Kind {
    Raw(Vec<u8>),
    Stun(Stun),
    Rtp(Rtp),
    Rtcp(Vec<Rtcp>, Option<[u8; 14]>),
    Dtls(Vec<Dtls>),
}

/// A datagram, maybe cut short.
#[derive(Debug, Clone)]
pub struct Datagram {
    kind: Kind,
    cut: Option<usize>,
}

impl Datagram {
    pub fn encode(&self, names: &Names) -> Vec<u8> {
        let mut bytes = match &self.kind {
            Kind::Raw(bytes) => bytes.clone(),
            Kind::Stun(stun) => stun.encode(names),
            Kind::Rtp(rtp) => rtp.encode(names),
            Kind::Rtcp(packets, trailer) => encode_rtcp(packets, trailer, names),
            Kind::Dtls(records) => encode_dtls(records),
        };
        if let Some(at) = self.cut {
            bytes.truncate(at % (bytes.len() + 1));
        }
        bytes
    }
}

pub fn datagram() -> impl Strategy<Value = Datagram> {
    let kind = prop_oneof![
        vec(any::<u8>(), 0..1500).prop_map(Kind::Raw),
        stun().prop_map(Kind::Stun),
        rtp().prop_map(Kind::Rtp),
        rtcp().prop_map(|(packets, trailer)| Kind::Rtcp(packets, trailer)),
        dtls().prop_map(Kind::Dtls),
    ];
    let cut = prop_oneof![4 => Just(None), 1 => any::<usize>().prop_map(Some)];
    (kind, cut).prop_map(|(kind, cut)| Datagram { kind, cut })
}

/// A binding request naming `username`, with a PRIORITY and a
/// MESSAGE-INTEGRITY that nobody computed: str0m parses it (it needs both)
/// and must find it forged.
pub fn binding_request(username: &str) -> Vec<u8> {
    let check = Stun {
        method: BINDING_REQUEST,
        cookie: true,
        txid: [7; 12],
        attrs: vec![
            (Attr::Username(Username::Text(username.to_string())), None),
            (Attr::Other(ATTR_PRIORITY, vec![0x6e, 0, 0x1e, 0xff]), None),
            (Attr::Other(ATTR_MESSAGE_INTEGRITY, vec![0x55; 20]), None),
        ],
        length_lie: None,
    };
    check.encode(&Names {
        usernames: Vec::new(),
        ssrcs: Vec::new(),
        addresses: Vec::new(),
    })
}
