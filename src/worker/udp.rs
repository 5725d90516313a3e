//! Batched UDP I/O for a media worker.
//!
//! Receiving: one `recvmmsg` call reads up to a batch of datagrams, each with
//! the kernel's receive timestamp (`SO_TIMESTAMPNS`), so the worker can tell
//! how long a packet waited in the socket and in the worker before what it
//! caused was sent.
//!
//! Sending: one `sendmmsg` call hands the kernel every datagram a flush
//! produced. Consecutive datagrams to the same destination with the same size
//! (a video frame's packets to one subscriber) travel as one UDP GSO message
//! (`UDP_SEGMENT`), so the kernel walks its stack once for the run and splits
//! it at the end. If the kernel or the route refuses GSO for a message, that
//! message is sent again datagram by datagram, and GSO is switched off for the
//! socket when the kernel says it cannot do it at all (`EIO`).
//!
//! No crate combines `sendmmsg` with GSO (quinn-udp sends one `sendmsg` per
//! destination), and with a 10-way fan-out the syscall count is what matters,
//! so this is written against `libc` directly. Linux only; other systems use
//! one `recv_from`/`send_to` per datagram ([`fallback`]).

use std::io;
use std::net::SocketAddr;
use std::time::SystemTime;

use str0m::net::Transmit;
use tokio::io::Interest;
use tokio::net::UdpSocket;

/// Largest datagram read; longer ones are counted as truncated and dropped.
pub const MAX_DATAGRAM: usize = 2048;

/// What a send pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SendOutcome {
    pub datagrams: u64,
    pub bytes: u64,
    pub errors: u64,
    /// Send system calls made.
    pub calls: u64,
    /// Messages handed to the kernel: a GSO run of datagrams is one.
    pub messages: u64,
}

/// One received datagram.
#[derive(Debug, Clone, Copy)]
pub struct Datagram<'a> {
    pub source: SocketAddr,
    pub contents: &'a [u8],
    /// When the kernel received it, if it said.
    pub received_at: Option<SystemTime>,
}

#[cfg(target_os = "linux")]
pub use linux::{enable_receive_timestamps, RecvBatch, SendBatch};

#[cfg(not(target_os = "linux"))]
pub use fallback::{enable_receive_timestamps, RecvBatch, SendBatch};

/// Awaits writability and retries `attempt` until it stops saying
/// `WouldBlock`.
async fn send_when_writable<T>(
    socket: &UdpSocket,
    mut attempt: impl FnMut() -> io::Result<T>,
) -> io::Result<T> {
    loop {
        match socket.try_io(Interest::WRITABLE, &mut attempt) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => socket.writable().await?,
            other => return other,
        }
    }
}

/// Sends each transmit with its own `sendto`.
async fn send_each(socket: &UdpSocket, transmits: &[Transmit]) -> SendOutcome {
    let mut outcome = SendOutcome::default();
    for t in transmits {
        outcome.calls += 1;
        match send_when_writable(socket, || socket.try_send_to(&t.contents, t.destination)).await {
            Ok(_) => {
                outcome.datagrams += 1;
                outcome.messages += 1;
                outcome.bytes += t.contents.len() as u64;
            }
            Err(e) => {
                tracing::debug!(error = %e, to = %t.destination, "send failed");
                outcome.errors += 1;
            }
        }
    }
    outcome
}

#[cfg(target_os = "linux")]
mod linux {
    use std::io;
    use std::mem::{size_of, zeroed};
    use std::os::fd::AsRawFd;
    use std::time::{Duration, SystemTime};

    use socket2::SockAddr;
    use str0m::net::Transmit;
    use tokio::io::Interest;
    use tokio::net::UdpSocket;

    use super::{send_when_writable, Datagram, SendOutcome, MAX_DATAGRAM};

    /// `SO_TIMESTAMPNS` (= `SCM_TIMESTAMPNS`) on the architectures that use
    /// the generic socket option numbers (x86, arm, riscv); libc only exports
    /// it for Android.
    #[cfg(any(
        target_arch = "x86_64",
        target_arch = "x86",
        target_arch = "aarch64",
        target_arch = "arm",
        target_arch = "riscv64"
    ))]
    const SO_TIMESTAMPNS: libc::c_int = 35;

    /// The kernel's limit on segments in one GSO message (`UDP_MAX_SEGMENTS`).
    const MAX_SEGMENTS: usize = 64;
    /// Bytes of payload one GSO message may carry.
    const MAX_GSO_BYTES: usize = 64_000;
    /// Datagrams larger than this are never segmented: a segment must fit
    /// the route's MTU, and 1472 is what fits a 1500-byte Ethernet frame.
    const MAX_GSO_SEGMENT: usize = 1472;
    /// Messages per `sendmmsg` call (the kernel caps it at `UIO_MAXIOV`).
    const MAX_MESSAGES_PER_CALL: usize = 1024;

    /// Ancillary data space, aligned for `cmsghdr`.
    #[derive(Clone, Copy)]
    #[repr(C, align(8))]
    struct Control([u8; 64]);

    /// Asks the kernel to timestamp received datagrams. Best effort: without
    /// it, datagrams simply carry no receive time.
    pub fn enable_receive_timestamps(socket: &UdpSocket) -> io::Result<()> {
        #[cfg(any(
            target_arch = "x86_64",
            target_arch = "x86",
            target_arch = "aarch64",
            target_arch = "arm",
            target_arch = "riscv64"
        ))]
        {
            let on: libc::c_int = 1;
            // SAFETY: valid fd, option value points at a c_int of the given size.
            let rc = unsafe {
                libc::setsockopt(
                    socket.as_raw_fd(),
                    libc::SOL_SOCKET,
                    SO_TIMESTAMPNS,
                    (&on as *const libc::c_int).cast(),
                    size_of::<libc::c_int>() as libc::socklen_t,
                )
            };
            if rc != 0 {
                return Err(io::Error::last_os_error());
            }
        }
        Ok(())
    }

    /// Buffers for one `recvmmsg` call and what it returned.
    pub struct RecvBatch {
        data: Vec<u8>,
        names: Vec<libc::sockaddr_storage>,
        iovs: Vec<libc::iovec>,
        controls: Vec<Control>,
        headers: Vec<libc::mmsghdr>,
        received: usize,
    }

    impl RecvBatch {
        pub fn new(capacity: usize) -> Self {
            // SAFETY: all-zero is a valid value for these plain C structs.
            let (name, iov, header) = unsafe { (zeroed(), zeroed(), zeroed()) };
            RecvBatch {
                data: vec![0; capacity * MAX_DATAGRAM],
                names: vec![name; capacity],
                iovs: vec![iov; capacity],
                controls: vec![Control([0; 64]); capacity],
                headers: vec![header; capacity],
                received: 0,
            }
        }

        /// Reads what is queued (up to the capacity) without waiting.
        /// `WouldBlock` when nothing is, which also clears tokio's readiness.
        pub fn recv(&mut self, socket: &UdpSocket) -> io::Result<usize> {
            self.received = 0;
            let n = socket.try_io(Interest::READABLE, || self.recvmmsg(socket.as_raw_fd()))?;
            self.received = n;
            Ok(n)
        }

        fn recvmmsg(&mut self, fd: libc::c_int) -> io::Result<usize> {
            let capacity = self.headers.len();
            for i in 0..capacity {
                self.iovs[i] = libc::iovec {
                    iov_base: self.data[i * MAX_DATAGRAM..].as_mut_ptr().cast(),
                    iov_len: MAX_DATAGRAM,
                };
                let header = &mut self.headers[i];
                header.msg_len = 0;
                let msg = &mut header.msg_hdr;
                msg.msg_name = (&mut self.names[i] as *mut libc::sockaddr_storage).cast();
                msg.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
                msg.msg_iov = &mut self.iovs[i];
                msg.msg_iovlen = 1;
                msg.msg_control = self.controls[i].0.as_mut_ptr().cast();
                msg.msg_controllen = self.controls[i].0.len() as _;
                msg.msg_flags = 0;
            }
            // SAFETY: every header points at live buffers of the stated sizes,
            // owned by `self` and not touched until the call returns.
            let rc = unsafe {
                libc::recvmmsg(
                    fd,
                    self.headers.as_mut_ptr(),
                    capacity as libc::c_uint,
                    libc::MSG_DONTWAIT,
                    std::ptr::null_mut(),
                )
            };
            if rc < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(rc as usize)
        }

        /// How many datagrams the last read returned (0 after an error).
        pub fn received(&self) -> usize {
            self.received
        }

        /// Datagram `i` of the last read; `None` if it was truncated or its
        /// source is not an IP address.
        pub fn get(&self, i: usize) -> Option<Datagram<'_>> {
            if i >= self.received {
                return None;
            }
            let header = &self.headers[i];
            if header.msg_hdr.msg_flags & libc::MSG_TRUNC != 0 {
                return None;
            }
            let len = (header.msg_len as usize).min(MAX_DATAGRAM);
            // SAFETY: the kernel wrote a socket address of `msg_namelen` bytes.
            let source =
                unsafe { SockAddr::new(self.names[i], header.msg_hdr.msg_namelen) }.as_socket()?;
            Some(Datagram {
                source,
                contents: &self.data[i * MAX_DATAGRAM..i * MAX_DATAGRAM + len],
                received_at: receive_time(&header.msg_hdr),
            })
        }
    }

    /// The `SCM_TIMESTAMPNS` control message of a received message, if any.
    fn receive_time(msg: &libc::msghdr) -> Option<SystemTime> {
        #[cfg(any(
            target_arch = "x86_64",
            target_arch = "x86",
            target_arch = "aarch64",
            target_arch = "arm",
            target_arch = "riscv64"
        ))]
        {
            // SAFETY: `msg` was filled by recvmmsg; the CMSG macros stay
            // within `msg_controllen` and the data is read unaligned.
            unsafe {
                let mut cmsg = libc::CMSG_FIRSTHDR(msg);
                while !cmsg.is_null() {
                    if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == SO_TIMESTAMPNS
                    {
                        let ts: libc::timespec =
                            std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast());
                        let since_epoch = Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32);
                        return SystemTime::UNIX_EPOCH.checked_add(since_epoch);
                    }
                    cmsg = libc::CMSG_NXTHDR(msg, cmsg);
                }
            }
        }
        let _ = msg;
        None
    }

    /// One message of a `sendmmsg` call: a run of transmits to one place.
    #[derive(Clone, Copy)]
    struct Run {
        first: usize,
        count: usize,
        /// Segment size when `count > 1` (every datagram but the last has
        /// exactly this size, the last at most this).
        segment: usize,
    }

    /// Reusable buffers for sending a flush's transmits.
    pub struct SendBatch {
        gso: bool,
        runs: Vec<Run>,
        names: Vec<SockAddr>,
        iovs: Vec<libc::iovec>,
        controls: Vec<Control>,
        headers: Vec<libc::mmsghdr>,
    }

    impl SendBatch {
        pub fn new() -> Self {
            SendBatch {
                gso: true,
                runs: Vec::new(),
                names: Vec::new(),
                iovs: Vec::new(),
                controls: Vec::new(),
                headers: Vec::new(),
            }
        }

        /// Sends every transmit, waiting for socket space when the kernel's
        /// buffer is full; a datagram the kernel refuses is counted as an
        /// error and skipped. Empties `transmits`.
        pub async fn send(
            &mut self,
            socket: &UdpSocket,
            transmits: &mut Vec<Transmit>,
        ) -> SendOutcome {
            let mut outcome = SendOutcome::default();
            if transmits.is_empty() {
                return outcome;
            }
            self.plan(transmits);
            let mut next = 0;
            while next < self.runs.len() {
                let end = (next + MAX_MESSAGES_PER_CALL).min(self.runs.len());
                self.prepare(transmits, next..end);
                let fd = socket.as_raw_fd();
                let headers = &mut self.headers;
                outcome.calls += 1;
                let result = send_when_writable(socket, || {
                    // SAFETY: the headers point at `names`, `iovs`, `controls`
                    // and the transmits' contents, all alive and unchanged
                    // for the duration of the call.
                    let rc = unsafe {
                        libc::sendmmsg(fd, headers.as_mut_ptr(), headers.len() as libc::c_uint, 0)
                    };
                    if rc < 0 {
                        Err(io::Error::last_os_error())
                    } else {
                        Ok(rc as usize)
                    }
                })
                .await;
                match result {
                    Ok(sent) => {
                        outcome.messages += sent as u64;
                        for run in &self.runs[next..next + sent] {
                            for t in &transmits[run.first..run.first + run.count] {
                                outcome.datagrams += 1;
                                outcome.bytes += t.contents.len() as u64;
                            }
                        }
                        next += sent.max(1).min(end - next);
                        if sent == 0 {
                            // Not expected from the kernel; never spin on it.
                            outcome.errors += self.runs[next - 1].count as u64;
                        }
                    }
                    Err(e) => {
                        // The first message of the call failed.
                        let run = self.runs[next];
                        if run.count > 1 {
                            if e.raw_os_error() == Some(libc::EIO) {
                                tracing::info!(error = %e, "UDP GSO unavailable, sending datagram by datagram");
                                self.gso = false;
                            }
                            let single = super::send_each(
                                socket,
                                &transmits[run.first..run.first + run.count],
                            )
                            .await;
                            outcome.datagrams += single.datagrams;
                            outcome.bytes += single.bytes;
                            outcome.errors += single.errors;
                            outcome.calls += single.calls;
                            outcome.messages += single.messages;
                        } else {
                            tracing::debug!(error = %e, to = %transmits[run.first].destination, "send failed");
                            outcome.errors += 1;
                        }
                        next += 1;
                    }
                }
            }
            transmits.clear();
            outcome
        }

        /// Groups the transmits into runs (one `sendmmsg` message each).
        fn plan(&mut self, transmits: &[Transmit]) {
            self.runs.clear();
            for (i, t) in transmits.iter().enumerate() {
                let len = t.contents.len();
                if self.gso {
                    if let Some(run) = self.runs.last_mut() {
                        let last = &transmits[run.first + run.count - 1];
                        let joins = last.destination == t.destination
                            && len > 0
                            && len <= run.segment
                            // Only the last datagram of a run may be short.
                            && last.contents.len() == run.segment
                            && run.count < MAX_SEGMENTS
                            && (run.count + 1) * run.segment <= MAX_GSO_BYTES;
                        if joins {
                            run.count += 1;
                            continue;
                        }
                    }
                }
                let segment = if len <= MAX_GSO_SEGMENT { len } else { 0 };
                self.runs.push(Run {
                    first: i,
                    count: 1,
                    segment,
                });
            }
        }

        /// Fills the `sendmmsg` headers for `runs[range]`.
        fn prepare(&mut self, transmits: &[Transmit], range: std::ops::Range<usize>) {
            let runs = &self.runs[range];
            let datagrams: usize = runs.iter().map(|r| r.count).sum();
            self.names.clear();
            self.iovs.clear();
            self.headers.clear();
            self.iovs.reserve(datagrams);
            if self.controls.len() < runs.len() {
                self.controls.resize(runs.len(), Control([0; 64]));
            }
            for run in runs {
                self.names
                    .push(SockAddr::from(transmits[run.first].destination));
                for t in &transmits[run.first..run.first + run.count] {
                    self.iovs.push(libc::iovec {
                        iov_base: t.contents.as_ptr() as *mut libc::c_void,
                        iov_len: t.contents.len(),
                    });
                }
            }
            // Pointers are taken only now that the vectors no longer grow.
            let mut iov = 0;
            for (i, run) in runs.iter().enumerate() {
                // SAFETY: all-zero is a valid mmsghdr.
                let mut header: libc::mmsghdr = unsafe { zeroed() };
                let msg = &mut header.msg_hdr;
                msg.msg_name = self.names[i].as_ptr() as *mut libc::c_void;
                msg.msg_namelen = self.names[i].len();
                msg.msg_iov = &mut self.iovs[iov];
                msg.msg_iovlen = run.count as _;
                iov += run.count;
                if run.count > 1 {
                    let control = &mut self.controls[i].0;
                    msg.msg_control = control.as_mut_ptr().cast();
                    // SAFETY: CMSG_SPACE/CMSG_LEN are pure size arithmetic.
                    let space = unsafe { libc::CMSG_SPACE(size_of::<u16>() as u32) } as usize;
                    msg.msg_controllen = space as _;
                    // SAFETY: `control` holds at least `space` bytes, aligned
                    // for cmsghdr; the u16 is written unaligned.
                    unsafe {
                        let cmsg = libc::CMSG_FIRSTHDR(msg);
                        (*cmsg).cmsg_level = libc::SOL_UDP;
                        (*cmsg).cmsg_type = libc::UDP_SEGMENT;
                        (*cmsg).cmsg_len = libc::CMSG_LEN(size_of::<u16>() as u32) as _;
                        std::ptr::write_unaligned(
                            libc::CMSG_DATA(cmsg).cast::<u16>(),
                            run.segment as u16,
                        );
                    }
                }
                self.headers.push(header);
            }
        }
    }

    impl Default for SendBatch {
        fn default() -> Self {
            Self::new()
        }
    }
}

/// Portable I/O: one system call per datagram, no receive timestamps.
#[cfg(not(target_os = "linux"))]
mod fallback {
    use std::io;

    use str0m::net::Transmit;
    use tokio::net::UdpSocket;

    use super::{Datagram, SendOutcome, MAX_DATAGRAM};

    pub fn enable_receive_timestamps(_socket: &UdpSocket) -> io::Result<()> {
        Ok(())
    }

    pub struct RecvBatch {
        data: Vec<Vec<u8>>,
        received: Vec<(std::net::SocketAddr, usize)>,
    }

    impl RecvBatch {
        pub fn new(capacity: usize) -> Self {
            RecvBatch {
                data: vec![vec![0; MAX_DATAGRAM]; capacity],
                received: Vec::with_capacity(capacity),
            }
        }

        pub fn recv(&mut self, socket: &UdpSocket) -> io::Result<usize> {
            self.received.clear();
            for buf in &mut self.data {
                match socket.try_recv_from(buf) {
                    Ok((n, source)) => self.received.push((source, n)),
                    // Hand on what was read; an error shows again next time.
                    Err(_) if !self.received.is_empty() => break,
                    Err(e) => return Err(e),
                }
            }
            Ok(self.received.len())
        }

        pub fn received(&self) -> usize {
            self.received.len()
        }

        pub fn get(&self, i: usize) -> Option<Datagram<'_>> {
            let (source, n) = *self.received.get(i)?;
            Some(Datagram {
                source,
                contents: &self.data[i][..n],
                received_at: None,
            })
        }
    }

    #[derive(Default)]
    pub struct SendBatch;

    impl SendBatch {
        pub fn new() -> Self {
            SendBatch
        }

        pub async fn send(
            &mut self,
            socket: &UdpSocket,
            transmits: &mut Vec<Transmit>,
        ) -> SendOutcome {
            let outcome = super::send_each(socket, transmits).await;
            transmits.clear();
            outcome
        }
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use std::net::SocketAddr;
    use std::time::{Duration, SystemTime};

    use str0m::net::{Protocol, Transmit};
    use tokio::net::UdpSocket;

    use super::{enable_receive_timestamps, RecvBatch, SendBatch};

    fn transmit(from: SocketAddr, to: SocketAddr, tag: u8, len: usize) -> Transmit {
        let mut contents = vec![tag; len];
        contents[0] = tag;
        Transmit {
            proto: Protocol::Udp,
            source: from,
            destination: to,
            contents: contents.into(),
        }
    }

    async fn socket() -> UdpSocket {
        UdpSocket::bind("127.0.0.1:0").await.unwrap()
    }

    /// Reads until `want` datagrams arrived (or a second passed).
    async fn receive_all(socket: &UdpSocket, want: usize) -> Vec<(Vec<u8>, Option<SystemTime>)> {
        let mut batch = RecvBatch::new(8);
        let mut got = Vec::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
        while got.len() < want {
            tokio::select! {
                r = socket.readable() => r.unwrap(),
                _ = tokio::time::sleep_until(deadline) => break,
            }
            let Ok(n) = batch.recv(socket) else { continue };
            for i in 0..n {
                let d = batch.get(i).expect("not truncated");
                got.push((d.contents.to_vec(), d.received_at));
            }
        }
        got
    }

    #[tokio::test]
    async fn a_flush_leaves_in_few_calls_and_arrives_whole_and_in_order() {
        let sender = socket().await;
        let (a, b) = (socket().await, socket().await);
        enable_receive_timestamps(&a).unwrap();
        let from = sender.local_addr().unwrap();
        let (to_a, to_b) = (a.local_addr().unwrap(), b.local_addr().unwrap());
        // A "frame" of three full packets and a short one to `a`, audio to
        // `b`, another frame to `a`: runs of 4, 2 (different sizes) and 3.
        let mut transmits = vec![
            transmit(from, to_a, 1, 1200),
            transmit(from, to_a, 2, 1200),
            transmit(from, to_a, 3, 1200),
            transmit(from, to_a, 4, 700),
            transmit(from, to_b, 5, 120),
            transmit(from, to_b, 6, 130),
            transmit(from, to_a, 7, 1000),
            transmit(from, to_a, 8, 1000),
            transmit(from, to_a, 9, 1000),
        ];
        let sizes: Vec<(u8, usize)> = transmits
            .iter()
            .map(|t| (t.contents[0], t.contents.len()))
            .collect();
        let mut batch = SendBatch::new();
        let outcome = batch.send(&sender, &mut transmits).await;
        assert!(transmits.is_empty());
        assert_eq!(outcome.datagrams, 9);
        assert_eq!(outcome.errors, 0);
        assert_eq!(outcome.bytes, sizes.iter().map(|s| s.1 as u64).sum::<u64>());
        assert_eq!(outcome.calls, 1, "one sendmmsg for the whole flush");
        assert_eq!(outcome.messages, 4, "runs of 4, 1, 1 and 3 datagrams");

        let at_a = receive_all(&a, 7).await;
        let at_b = receive_all(&b, 2).await;
        let seen = |got: &[(Vec<u8>, Option<SystemTime>)]| -> Vec<(u8, usize)> {
            got.iter().map(|(d, _)| (d[0], d.len())).collect()
        };
        let want_a: Vec<_> = sizes
            .iter()
            .copied()
            .filter(|s| ![5, 6].contains(&s.0))
            .collect();
        assert_eq!(
            seen(&at_a),
            want_a,
            "GSO runs split back into the original datagrams"
        );
        assert_eq!(seen(&at_b), vec![(5, 120), (6, 130)]);
        for (d, _) in at_a.iter().chain(&at_b) {
            assert!(d.iter().all(|&byte| byte == d[0]), "payload intact");
        }
        // Timestamps were asked for on `a` only.
        assert!(at_a.iter().all(|(_, t)| t.is_some_and(|t| {
            SystemTime::now().duration_since(t).unwrap_or_default() < Duration::from_secs(5)
        })));
        assert!(at_b.iter().all(|(_, t)| t.is_none()));
    }

    #[tokio::test]
    async fn an_unsendable_datagram_is_counted_and_the_rest_still_go() {
        let sender = socket().await;
        let a = socket().await;
        let from = sender.local_addr().unwrap();
        let to_a = a.local_addr().unwrap();
        // An IPv6 destination cannot be reached from an IPv4 socket.
        let nowhere: SocketAddr = "[::1]:9".parse().unwrap();
        let mut transmits = vec![
            transmit(from, to_a, 1, 100),
            transmit(from, nowhere, 2, 100),
            transmit(from, to_a, 3, 100),
        ];
        let outcome = SendBatch::new().send(&sender, &mut transmits).await;
        assert_eq!((outcome.datagrams, outcome.errors), (2, 1));
        let got = receive_all(&a, 2).await;
        let tags: Vec<u8> = got.iter().map(|(d, _)| d[0]).collect();
        assert_eq!(tags, vec![1, 3]);
    }

    #[tokio::test]
    async fn oversize_datagrams_are_reported_as_truncated() {
        let sender = socket().await;
        let a = socket().await;
        let to_a = a.local_addr().unwrap();
        sender
            .send_to(&vec![1u8; super::MAX_DATAGRAM + 10], to_a)
            .await
            .unwrap();
        sender.send_to(&[2u8; 10], to_a).await.unwrap();
        a.readable().await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        let mut batch = RecvBatch::new(4);
        assert_eq!(batch.recv(&a).unwrap(), 2);
        assert!(
            batch.get(0).is_none(),
            "truncated datagram is not handed on"
        );
        assert_eq!(batch.get(1).unwrap().contents, &[2u8; 10]);
        assert!(batch.get(2).is_none());
    }
}
