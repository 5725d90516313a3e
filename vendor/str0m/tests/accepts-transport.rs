//! `Rtc::accepts` tells apart the transports of the nominated pair: a STUN
//! message from the nominated remote address on another protocol (TCP where
//! the pair is UDP) is not taken on the pair's word, but judged by its
//! credentials, as an SFU that learns routes from `accepts` over a UDP
//! socket and a TCP listener needs. (Non-STUN traffic from a remote address
//! of any succeeded pair is still accepted whatever its protocol: that check
//! lives in the `is` crate.)

use std::net::Ipv4Addr;
use std::time::Instant;

use str0m::net::{Protocol, Receive};
use str0m::Input;

mod common;
use common::{connect_l_r, init_crypto_default, init_log};

#[test]
fn accepts_the_nominated_address_only_on_its_own_protocol() {
    init_log();
    init_crypto_default();
    let (l, _r) = connect_l_r();
    // A binding request whose MESSAGE-INTEGRITY is zeros and whose USERNAME
    // is no one's: its credentials do not hold, so only the nominated
    // pair's fast path could accept it.
    let mut stun = vec![0x00, 0x01, 0x00, 40, 0x21, 0x12, 0xA4, 0x42];
    stun.extend_from_slice(&[7; 12]);
    stun.extend_from_slice(&[0x00, 0x06, 0x00, 0x03, b'a', b':', b'b', 0]); // USERNAME
    stun.extend_from_slice(&[0x00, 0x24, 0x00, 0x04, 0x6e, 0x00, 0x1e, 0xff]); // PRIORITY
    stun.extend_from_slice(&[0x00, 0x08, 0x00, 20]); // MESSAGE-INTEGRITY
    stun.extend_from_slice(&[0; 20]);
    let receive = |proto| {
        Input::Receive(
            Instant::now(),
            Receive {
                proto,
                source: (Ipv4Addr::new(2, 2, 2, 2), 2000).into(),
                destination: (Ipv4Addr::new(1, 1, 1, 1), 1000).into(),
                contents: stun.as_slice().try_into().expect("parses as STUN"),
            },
        )
    };
    assert!(l.rtc.accepts(&receive(Protocol::Udp)), "the nominated UDP pair");
    assert!(!l.rtc.accepts(&receive(Protocol::Tcp)), "the same address over TCP");
}
