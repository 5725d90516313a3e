//! Which peer connection an incoming datagram (or ICE-TCP frame) belongs to.
//!
//! All peers of a worker share one UDP socket and one TCP listener. A remote
//! address is kept with its transport: a NAT maps UDP and TCP ports apart, so
//! two clients may share an address and port number, one on each. Once a
//! remote address is known it
//! maps straight to its peer; before that (and whenever a client switches
//! candidate pair) the STUN binding request's USERNAME, `local:remote` ufrags,
//! names the peer. `Rtc::accepts` would be a linear scan over every peer.
//!
//! Anyone who saw a ufrag can send requests naming it, from any address, so
//! routing by ufrag teaches nothing: the core [`Demux::learn`]s an address
//! only once the peer's `Rtc` accepted the request (its integrity), and at
//! most [`MAX_ADDRESSES_PER_PEER`] per peer.

use std::collections::{HashMap, VecDeque};

use rustc_hash::FxHashMap;
use std::net::SocketAddr;
use str0m::net::Protocol;

use super::ids::PeerKey;

/// Addresses kept per peer, the most recently checked: a client checks from
/// each of its candidates (host IPv4 and IPv6, server-reflexive, relayed),
/// a handful. Bounds the table against a client that checks, with valid
/// credentials, from ever new ports.
pub const MAX_ADDRESSES_PER_PEER: usize = 8;

/// A remote address on one transport.
pub type Route = (Protocol, SocketAddr);

/// Address and ufrag maps from datagrams to peers.
#[derive(Debug, Default)]
pub struct Demux {
    /// Keyed by addresses that passed an ICE check, so a cheap hash is safe.
    by_addr: FxHashMap<Route, PeerKey>,
    by_ufrag: HashMap<String, PeerKey>,
    /// Each peer's ufrag and learnt addresses, which `remove` forgets.
    peers: FxHashMap<PeerKey, Routes>,
}

#[derive(Debug, Default)]
struct Routes {
    ufrag: Option<String>,
    /// Oldest check first.
    addresses: VecDeque<Route>,
}

impl Demux {
    /// Lets go of the table capacity departed peers left.
    pub fn shrink_to_fit(&mut self) {
        self.by_addr.shrink_to_fit();
        self.by_ufrag.shrink_to_fit();
        self.peers.shrink_to_fit();
    }

    /// Registers a peer under its local ICE ufrag, replacing the one it had
    /// (an ICE restart): the old one no longer routes.
    pub fn insert(&mut self, ufrag: String, key: PeerKey) {
        let routes = self.peers.entry(key).or_default();
        if let Some(old) = routes.ufrag.replace(ufrag.clone()) {
            self.forget_ufrag(&old, key);
        }
        self.by_ufrag.insert(ufrag, key);
    }

    /// Forgets a peer and every address learnt for it.
    pub fn remove(&mut self, key: PeerKey) {
        let Some(routes) = self.peers.remove(&key) else {
            return;
        };
        if let Some(ufrag) = routes.ufrag {
            self.forget_ufrag(&ufrag, key);
        }
        for address in routes.addresses {
            self.by_addr.remove(&address);
        }
    }

    /// The peer a datagram from `source` is for: the one a STUN binding
    /// request names, else the one the address was learnt for.
    pub fn route(&self, source: Route, datagram: &[u8]) -> Option<PeerKey> {
        if let Some(ufrag) = stun_local_ufrag(datagram) {
            if let Some(&key) = self.by_ufrag.get(ufrag) {
                return Some(key);
            }
        }
        self.by_addr.get(&source).copied()
    }

    /// Routes datagrams from `source` to `key` from now on, after `key`'s
    /// `Rtc` accepted a binding request from there. Forgets the peer's
    /// least recently checked address past [`MAX_ADDRESSES_PER_PEER`].
    pub fn learn(&mut self, source: Route, key: PeerKey) {
        let Some(routes) = self.peers.get_mut(&key) else {
            return;
        };
        routes.addresses.retain(|a| *a != source);
        routes.addresses.push_back(source);
        if routes.addresses.len() > MAX_ADDRESSES_PER_PEER {
            if let Some(oldest) = routes.addresses.pop_front() {
                self.by_addr.remove(&oldest);
            }
        }
        if let Some(previous) = self.by_addr.insert(source, key).filter(|k| *k != key) {
            // Another peer had it (a NAT gave its port to a new client).
            if let Some(routes) = self.peers.get_mut(&previous) {
                routes.addresses.retain(|a| *a != source);
            }
        }
    }

    fn forget_ufrag(&mut self, ufrag: &str, key: PeerKey) {
        if self.by_ufrag.get(ufrag) == Some(&key) {
            self.by_ufrag.remove(ufrag);
        }
    }

    /// Number of learnt addresses (for leak checks in tests).
    pub fn address_count(&self) -> usize {
        self.by_addr.len()
    }

    /// Whether datagrams from `source` route to a peer (it passed a check).
    pub fn knows(&self, source: Route) -> bool {
        self.by_addr.contains_key(&source)
    }
}

const STUN_HEADER_LEN: usize = 20;
const STUN_MAGIC_COOKIE: [u8; 4] = [0x21, 0x12, 0xA4, 0x42];
const STUN_BINDING_REQUEST: u16 = 0x0001;
const STUN_ATTR_USERNAME: u16 = 0x0006;

/// The local ufrag (the part before `:`) of a STUN binding request's
/// USERNAME attribute, or `None` for anything else.
pub fn stun_local_ufrag(datagram: &[u8]) -> Option<&str> {
    if datagram.len() < STUN_HEADER_LEN || datagram[4..8] != STUN_MAGIC_COOKIE {
        return None;
    }
    let msg_type = u16::from_be_bytes([datagram[0], datagram[1]]);
    if msg_type != STUN_BINDING_REQUEST {
        return None;
    }
    let body_len = u16::from_be_bytes([datagram[2], datagram[3]]) as usize;
    let body = datagram.get(STUN_HEADER_LEN..STUN_HEADER_LEN + body_len)?;
    let mut rest = body;
    while rest.len() >= 4 {
        let attr_type = u16::from_be_bytes([rest[0], rest[1]]);
        let attr_len = u16::from_be_bytes([rest[2], rest[3]]) as usize;
        let value = rest.get(4..4 + attr_len)?;
        if attr_type == STUN_ATTR_USERNAME {
            let username = std::str::from_utf8(value).ok()?;
            return username.split(':').next();
        }
        let padded = (attr_len + 3) & !3;
        rest = rest.get(4 + padded..)?;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding_request(username: &str) -> Vec<u8> {
        let mut attr = Vec::new();
        attr.extend_from_slice(&STUN_ATTR_USERNAME.to_be_bytes());
        attr.extend_from_slice(&(username.len() as u16).to_be_bytes());
        attr.extend_from_slice(username.as_bytes());
        while attr.len() % 4 != 0 {
            attr.push(0);
        }
        let mut msg = Vec::new();
        msg.extend_from_slice(&STUN_BINDING_REQUEST.to_be_bytes());
        msg.extend_from_slice(&(attr.len() as u16).to_be_bytes());
        msg.extend_from_slice(&STUN_MAGIC_COOKIE);
        msg.extend_from_slice(&[7; 12]);
        msg.extend_from_slice(&attr);
        msg
    }

    #[test]
    fn parses_local_ufrag_from_binding_request() {
        assert_eq!(
            stun_local_ufrag(&binding_request("srv1:cli9")),
            Some("srv1")
        );
    }

    /// Found by `tests/hostile_input.rs`: every check naming a known ufrag
    /// taught demux its source address, so spoofed checks grew the table
    /// without bound (and could point a participant's address elsewhere).
    #[test]
    fn a_peer_keeps_only_its_most_recently_checked_addresses() {
        let mut demux = Demux::default();
        demux.insert("srv1".into(), PeerKey(1));
        let addr = |port| (Protocol::Udp, SocketAddr::from(([192, 0, 2, 1], port)));
        for port in 0..100 {
            demux.learn(addr(port), PeerKey(1));
        }
        assert_eq!(demux.address_count(), MAX_ADDRESSES_PER_PEER);
        assert_eq!(demux.route(addr(99), &[0x80]), Some(PeerKey(1)));
        assert_eq!(demux.route(addr(0), &[0x80]), None);
        // An address checked again is the most recent again.
        demux.learn(addr(92), PeerKey(1));
        demux.learn(addr(100), PeerKey(1));
        assert_eq!(demux.route(addr(92), &[0x80]), Some(PeerKey(1)));
        assert_eq!(demux.route(addr(93), &[0x80]), None);
        demux.remove(PeerKey(1));
        assert_eq!(demux.address_count(), 0);
    }

    /// Found by `tests/hostile_input.rs`: each ICE restart added a ufrag
    /// and none was forgotten before the peer left.
    #[test]
    fn an_ice_restart_replaces_the_ufrag() {
        let mut demux = Demux::default();
        let client = (
            Protocol::Udp,
            "127.0.0.1:5000".parse::<SocketAddr>().unwrap(),
        );
        demux.insert("old".into(), PeerKey(1));
        demux.insert("new".into(), PeerKey(1));
        assert_eq!(demux.route(client, &binding_request("old:x")), None);
        assert_eq!(
            demux.route(client, &binding_request("new:x")),
            Some(PeerKey(1))
        );
    }

    #[test]
    fn rejects_non_stun_and_truncated_input() {
        assert_eq!(stun_local_ufrag(&[0x80; 40]), None);
        let mut msg = binding_request("abc:def");
        msg.truncate(26);
        assert_eq!(stun_local_ufrag(&msg), None);
        assert_eq!(stun_local_ufrag(&[]), None);
    }

    #[test]
    fn learns_address_from_stun_then_routes_media_by_address() {
        let mut demux = Demux::default();
        demux.insert("srv1".into(), PeerKey(3));
        let client = (
            Protocol::Udp,
            "127.0.0.1:5000".parse::<SocketAddr>().unwrap(),
        );
        assert_eq!(demux.route(client, &[0x80, 0x60, 0, 1]), None);
        assert_eq!(
            demux.route(client, &binding_request("srv1:x")),
            Some(PeerKey(3))
        );
        // Routing by ufrag alone teaches nothing: the check is not verified.
        assert_eq!(demux.route(client, &[0x80, 0x60, 0, 1]), None);
        demux.learn(client, PeerKey(3));
        assert_eq!(demux.route(client, &[0x80, 0x60, 0, 1]), Some(PeerKey(3)));
        demux.remove(PeerKey(3));
        assert_eq!(demux.route(client, &[0x80, 0x60, 0, 1]), None);
        assert_eq!(demux.address_count(), 0);
    }
}

#[cfg(test)]
mod transport_tests {
    use super::*;

    /// A NAT may give one client UDP port 5000 and another TCP port 5000
    /// on the same public address: each routes to its own peer.
    #[test]
    fn the_same_address_on_udp_and_tcp_routes_apart() {
        let mut demux = Demux::default();
        demux.insert("a".into(), PeerKey(1));
        demux.insert("b".into(), PeerKey(2));
        let addr: SocketAddr = "198.51.100.4:5000".parse().unwrap();
        demux.learn((Protocol::Udp, addr), PeerKey(1));
        demux.learn((Protocol::Tcp, addr), PeerKey(2));
        assert_eq!(
            demux.route((Protocol::Udp, addr), &[0x80]),
            Some(PeerKey(1))
        );
        assert_eq!(
            demux.route((Protocol::Tcp, addr), &[0x80]),
            Some(PeerKey(2))
        );
        demux.remove(PeerKey(2));
        assert!(!demux.knows((Protocol::Tcp, addr)));
        assert!(demux.knows((Protocol::Udp, addr)));
    }
}
