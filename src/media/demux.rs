//! Which peer connection an incoming UDP datagram belongs to.
//!
//! All peers of a worker share one socket. Once a remote address is known it
//! maps straight to its peer; before that (and whenever a client switches
//! candidate pair) the STUN binding request's USERNAME, `local:remote` ufrags,
//! names the peer. `Rtc::accepts` would be a linear scan over every peer.

use std::collections::HashMap;

use rustc_hash::FxHashMap;
use std::net::SocketAddr;

use super::ids::PeerKey;

/// Address and ufrag maps from datagrams to peers.
#[derive(Debug, Default)]
pub struct Demux {
    /// Keyed by addresses that passed an ICE check, so a cheap hash is safe.
    by_addr: FxHashMap<SocketAddr, PeerKey>,
    by_ufrag: HashMap<String, PeerKey>,
}

impl Demux {
    /// Registers a peer under its local ICE ufrag.
    pub fn insert(&mut self, ufrag: String, key: PeerKey) {
        self.by_ufrag.insert(ufrag, key);
    }

    /// Forgets a peer and every address learnt for it.
    pub fn remove(&mut self, key: PeerKey) {
        self.by_ufrag.retain(|_, k| *k != key);
        self.by_addr.retain(|_, k| *k != key);
    }

    /// The peer a datagram from `source` is for, learning the address when
    /// the datagram is a STUN request naming a known ufrag.
    pub fn route(&mut self, source: SocketAddr, datagram: &[u8]) -> Option<PeerKey> {
        if let Some(ufrag) = stun_local_ufrag(datagram) {
            if let Some(&key) = self.by_ufrag.get(ufrag) {
                self.by_addr.insert(source, key);
                return Some(key);
            }
        }
        self.by_addr.get(&source).copied()
    }

    /// Number of learnt addresses (for leak checks in tests).
    pub fn address_count(&self) -> usize {
        self.by_addr.len()
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
        let client: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        assert_eq!(demux.route(client, &[0x80, 0x60, 0, 1]), None);
        assert_eq!(
            demux.route(client, &binding_request("srv1:x")),
            Some(PeerKey(3))
        );
        assert_eq!(demux.route(client, &[0x80, 0x60, 0, 1]), Some(PeerKey(3)));
        demux.remove(PeerKey(3));
        assert_eq!(demux.route(client, &[0x80, 0x60, 0, 1]), None);
        assert_eq!(demux.address_count(), 0);
    }
}
