//! The "socket" OpenSSL's DTLS reads and writes: two in-memory queues.
//!
//! OpenSSL sees it through the `openssl` crate's stream BIO. Unlike a plain
//! memory BIO it keeps datagram boundaries, so a handshake flight that
//! OpenSSL splits to fit the MTU leaves as several UDP payloads, and each
//! received payload is read as exactly one datagram. No I/O happens here:
//! `OpensslDtls` fills `incoming` from str0m and drains `outgoing` to it,
//! after [`has_short_protected_record`] has kept out what OpenSSL would
//! fail the whole connection over.

use std::collections::VecDeque;
use std::io::{self, Read, Write};

/// The "socket" OpenSSL sees: whole datagrams in, whole datagrams out.
#[derive(Debug, Default)]
pub(super) struct Datagrams {
    /// Received from the peer, not yet read by OpenSSL.
    pub(super) incoming: VecDeque<Vec<u8>>,
    /// Written by OpenSSL, not yet polled by str0m.
    pub(super) outgoing: VecDeque<Vec<u8>>,
}

impl Read for Datagrams {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let Some(datagram) = self.incoming.pop_front() else {
            return Err(io::ErrorKind::WouldBlock.into());
        };
        // Like a UDP socket: a datagram longer than the buffer is cut.
        let n = datagram.len().min(buf.len());
        buf[..n].copy_from_slice(&datagram[..n]);
        Ok(n)
    }
}

impl Write for Datagrams {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.outgoing.push_back(buf.to_vec());
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Bytes of a DTLS record header: type, version, epoch, sequence, length.
const RECORD_HEADER: usize = 13;

/// Whether `datagram` holds, anywhere, what reads as a header of a record of
/// a protected epoch (1 or later) with 1 to `min - 1` bytes, which no real
/// peer sends (see `OpensslDtls::min_protected_record`).
///
/// Every offset is tried, not only record boundaries: OpenSSL skips records
/// it cannot use (a declared length of 0 or past its maximum) and reads on
/// from places a walk by declared lengths never reaches. Ciphertext matches
/// by chance about once in 10^8 offsets; that datagram is lost like any
/// other. Handshake messages are not random (a hello holds the version
/// bytes), so this is for connected endpoints only.
pub(super) fn has_short_protected_record(datagram: &[u8], min: usize) -> bool {
    datagram.windows(RECORD_HEADER).any(|h| {
        let dtls = h[1] == 0xfe && matches!(h[2], 0xfd | 0xff);
        let epoch = u16::from_be_bytes([h[3], h[4]]);
        let len = usize::from(u16::from_be_bytes([h[11], h[12]]));
        dtls && epoch > 0 && (1..min).contains(&len)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(epoch: u16, body: &[u8]) -> Vec<u8> {
        let mut r = vec![23, 0xfe, 0xfd];
        r.extend_from_slice(&epoch.to_be_bytes());
        r.extend_from_slice(&[0, 0, 0, 0, 0, 1]);
        r.extend_from_slice(&(body.len() as u16).to_be_bytes());
        r.extend_from_slice(body);
        r
    }

    #[test]
    fn reads_one_datagram_at_a_time_and_would_block_when_empty() {
        let mut d = Datagrams::default();
        d.incoming.push_back(vec![1, 2, 3]);
        d.incoming.push_back(vec![4]);
        let mut buf = [0; 8];
        assert_eq!(d.read(&mut buf).unwrap(), 3);
        assert_eq!(d.read(&mut buf).unwrap(), 1);
        assert_eq!(buf[0], 4);
        let err = d.read(&mut buf).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);

        d.write_all(&[9; 5]).unwrap();
        d.write_all(&[8; 2]).unwrap();
        assert_eq!(d.outgoing, [vec![9; 5], vec![8; 2]]);
    }

    #[test]
    fn finds_a_short_record_of_a_protected_epoch_anywhere_in_a_datagram() {
        assert!(has_short_protected_record(&record(1, &[0; 23]), 24));
        assert!(!has_short_protected_record(&record(1, &[0; 24]), 24));
        assert!(!has_short_protected_record(&record(1, &[]), 24));
        // Epoch 0 is plaintext: short handshake fragments are normal there.
        assert!(!has_short_protected_record(&record(0, &[1]), 24));
        let mut two = record(0, &[0; 40]);
        two.extend(record(1, &[0; 2]));
        assert!(has_short_protected_record(&two, 24));
        // Minimized by tests/hostile_input.rs: a first record whose length
        // OpenSSL skips (0, or over its maximum) hides a short one from a
        // walk by lengths, not from OpenSSL.
        for lie in [0u16, 17729] {
            let mut hidden = record(0, &[7; 169]);
            hidden[11..13].copy_from_slice(&lie.to_be_bytes());
            hidden.extend(record(1, &[9; 13]));
            assert!(has_short_protected_record(&hidden, 24), "length {lie}");
        }
        assert!(!has_short_protected_record(&[], 24));
    }
}
