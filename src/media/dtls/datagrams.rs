//! The "socket" OpenSSL's DTLS reads and writes: two in-memory queues.
//!
//! OpenSSL sees it through the `openssl` crate's stream BIO. Unlike a plain
//! memory BIO it keeps datagram boundaries, so a handshake flight that
//! OpenSSL splits to fit the MTU leaves as several UDP payloads, and each
//! received payload is read as exactly one datagram. No I/O happens here:
//! `OpensslDtls` fills `incoming` from str0m and drains `outgoing` to it.

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
