//! RFC 4571 framing: ICE, DTLS and SRTP packets over a TCP stream, each
//! preceded by its length as a 16-bit big-endian number.
//!
//! [`FrameDecoder`] cuts a byte stream into frames whatever the reads' sizes
//! (a frame split over several reads, several frames in one). A frame longer
//! than the decoder's limit is skipped without being buffered, as a UDP
//! datagram longer than the receive buffer is dropped: memory per connection
//! stays at the limit whatever a peer declares.

/// Bytes of the length prefix.
pub const PREFIX_LEN: usize = 2;

/// What [`FrameDecoder::next_frame`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded<'a> {
    /// A whole frame.
    Frame(&'a [u8]),
    /// A frame over the limit, of this declared length, skipped.
    Oversize(usize),
}

/// Cuts an RFC 4571 byte stream into frames of at most `max_frame` bytes.
#[derive(Debug)]
pub struct FrameDecoder {
    max_frame: usize,
    /// Bytes received and not yet returned: at most a prefix and a frame.
    buffer: Vec<u8>,
    /// Where the unread part of `buffer` starts.
    start: usize,
    /// Bytes of an oversize frame still to be thrown away.
    skipping: usize,
}

impl FrameDecoder {
    pub fn new(max_frame: usize) -> Self {
        FrameDecoder {
            max_frame,
            buffer: Vec::with_capacity(PREFIX_LEN + max_frame),
            start: 0,
            skipping: 0,
        }
    }

    /// How many bytes [`FrameDecoder::push`] takes now, at most: the decoder
    /// never holds more than one frame, so the caller reads the rest of its
    /// input after taking out the frames this completes.
    #[must_use]
    pub fn room(&self) -> usize {
        if self.skipping > 0 {
            return self.skipping;
        }
        (PREFIX_LEN + self.max_frame).saturating_sub(self.buffer.len() - self.start)
    }

    /// Appends received bytes and returns how many it took (up to
    /// [`FrameDecoder::room`]); call [`FrameDecoder::next_frame`] until it
    /// returns `None`, then push the rest.
    pub fn push(&mut self, bytes: &[u8]) -> usize {
        if self.skipping > 0 {
            let thrown = self.skipping.min(bytes.len());
            self.skipping -= thrown;
            return thrown;
        }
        if self.start > 0 {
            self.buffer.drain(..self.start);
            self.start = 0;
        }
        let taken = self.room().min(bytes.len());
        self.buffer.extend_from_slice(&bytes[..taken]);
        taken
    }

    /// The next complete frame or skipped oversize frame, if any.
    pub fn next_frame(&mut self) -> Option<Decoded<'_>> {
        if self.skipping > 0 {
            return None;
        }
        let unread = &self.buffer[self.start..];
        let prefix: [u8; PREFIX_LEN] = unread.get(..PREFIX_LEN)?.try_into().ok()?;
        let len = usize::from(u16::from_be_bytes(prefix));
        if len > self.max_frame {
            // Throw away what of it is buffered, and the rest as it comes.
            let buffered = unread.len() - PREFIX_LEN;
            self.skipping = len.saturating_sub(buffered);
            self.start += PREFIX_LEN + len.min(buffered);
            return Some(Decoded::Oversize(len));
        }
        if unread.len() < PREFIX_LEN + len {
            return None;
        }
        let from = self.start + PREFIX_LEN;
        self.start = from + len;
        Some(Decoded::Frame(&self.buffer[from..from + len]))
    }
}

/// Appends `packet` to `out` as one frame. `None` if it is too long for the
/// 16-bit prefix (nothing WebRTC sends is).
pub fn encode_into(packet: &[u8], out: &mut Vec<u8>) -> Option<()> {
    let len = u16::try_from(packet.len()).ok()?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(packet);
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framed(packets: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        for p in packets {
            encode_into(p, &mut out).unwrap();
        }
        out
    }

    /// Feeds `stream` in reads of `chunk` bytes and collects what comes out.
    fn decode(
        decoder: &mut FrameDecoder,
        stream: &[u8],
        chunk: usize,
    ) -> Vec<Result<Vec<u8>, usize>> {
        let mut out = Vec::new();
        for read in stream.chunks(chunk) {
            let mut rest = read;
            loop {
                let taken = decoder.push(rest);
                rest = &rest[taken..];
                while let Some(d) = decoder.next_frame() {
                    out.push(match d {
                        Decoded::Frame(f) => Ok(f.to_vec()),
                        Decoded::Oversize(n) => Err(n),
                    });
                }
                if rest.is_empty() {
                    break;
                }
            }
        }
        out
    }

    #[test]
    fn frames_come_out_whole_whatever_the_read_sizes() {
        let a = vec![1u8; 100];
        let b = vec![2u8; 1];
        let c = vec![3u8; 1200];
        let stream = framed(&[&a, &b, &[], &c]);
        for chunk in [1, 2, 3, 7, 101, 1500, stream.len()] {
            let mut decoder = FrameDecoder::new(1500);
            let got = decode(&mut decoder, &stream, chunk);
            assert_eq!(
                got,
                vec![Ok(a.clone()), Ok(b.clone()), Ok(vec![]), Ok(c.clone())],
                "reads of {chunk}"
            );
        }
    }

    #[test]
    fn a_frame_split_mid_prefix_waits_for_its_second_byte() {
        let mut decoder = FrameDecoder::new(100);
        assert_eq!(decoder.push(&[0]), 1);
        assert_eq!(decoder.next_frame(), None);
        assert_eq!(decoder.push(&[3, 9, 9]), 3);
        assert_eq!(decoder.next_frame(), None);
        assert_eq!(decoder.push(&[9]), 1);
        assert_eq!(decoder.next_frame(), Some(Decoded::Frame(&[9, 9, 9])));
        assert_eq!(decoder.next_frame(), None);
    }

    #[test]
    fn an_oversize_frame_is_skipped_without_buffering_it() {
        let big = vec![7u8; 60_000];
        let small = vec![5u8; 10];
        let stream = framed(&[&small, &big, &small]);
        for chunk in [1, 9, 1000, 4096, stream.len()] {
            let mut decoder = FrameDecoder::new(2048);
            let got = decode(&mut decoder, &stream, chunk);
            assert_eq!(
                got,
                vec![Ok(small.clone()), Err(60_000), Ok(small.clone())],
                "reads of {chunk}"
            );
            assert!(
                decoder.buffer.capacity() <= 4 * (PREFIX_LEN + 2048),
                "buffer stayed bounded"
            );
        }
    }

    #[test]
    fn push_never_takes_more_than_a_frame() {
        let mut decoder = FrameDecoder::new(16);
        let stream = framed(&[&[1; 16], &[2; 16], &[3; 16]]);
        let taken = decoder.push(&stream);
        assert_eq!(taken, PREFIX_LEN + 16);
        assert_eq!(decoder.room(), 0);
        assert_eq!(decoder.next_frame(), Some(Decoded::Frame(&[1; 16])));
        assert_eq!(decoder.room(), PREFIX_LEN + 16);
    }

    #[test]
    fn encode_refuses_what_the_prefix_cannot_say() {
        let mut out = Vec::new();
        assert_eq!(encode_into(&vec![0; 65_536], &mut out), None);
        assert!(out.is_empty());
        assert_eq!(encode_into(&[1, 2], &mut out), Some(()));
        assert_eq!(out, [0, 2, 1, 2]);
    }
}
