//! What the kernel charges the server per forwarded datagram on loopback.
//!
//! The forwarding benchmark (`benches/forwarding.rs`) measures the core with
//! no sockets; this one measures the other half, the worker's batched UDP
//! calls (`cascade::worker::udp`), with nothing from str0m in the timed part.
//! On loopback the kernel also delivers each datagram into the receiving
//! socket inside the sender's system call, so the send figures include what a
//! NIC would take off the server's hands in production.
//!
//! - `udp_send/fanout/10`: a flush as one forwarded packet makes it: 10
//!   datagrams of 1200 bytes, one to each of 10 subscribers (10 messages in
//!   one `sendmmsg`, no GSO run longer than one).
//! - `udp_send/frame_runs/10`: a keyframe's burst: 4 datagrams to each of 10
//!   subscribers in a row (10 GSO messages of 4 segments, one `sendmmsg`).
//! - `udp_send/single/1`: one datagram per call, for the system call's own
//!   overhead.
//! - `udp_recv/batch/N`: one `recvmmsg` reading N queued datagrams.
//!
//! Receivers are drained and counted after every timed call (untimed), and
//! every iteration checks that each datagram arrived, so a dropping socket
//! cannot make the figures look cheap. Criterion reports time per datagram.
//!
//! Run: `cargo bench --bench udp`.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use socket2::{Domain, Socket, Type};
use str0m::net::{Protocol, Transmit};
use tokio::net::UdpSocket;
use tokio::runtime::Runtime;

use cascade::worker::udp::{RecvBatch, SendBatch};

/// A forwarded video packet's size on the wire (SRTP included).
const DATAGRAM_BYTES: usize = 1200;
const SOCKET_BUFFER_BYTES: usize = 4 * 1024 * 1024;

/// A loopback UDP socket with large buffers, as the worker and the bots use.
fn bind_socket() -> std::net::UdpSocket {
    let socket = Socket::new(Domain::IPV4, Type::DGRAM, None).expect("udp socket");
    socket
        .set_recv_buffer_size(SOCKET_BUFFER_BYTES)
        .expect("receive buffer");
    socket
        .set_send_buffer_size(SOCKET_BUFFER_BYTES)
        .expect("send buffer");
    let any: SocketAddr = "127.0.0.1:0".parse().expect("address");
    socket.bind(&any.into()).expect("bind");
    socket.set_nonblocking(true).expect("nonblocking");
    socket.into()
}

/// One sending socket (the worker's) and `subscribers` receiving ones.
struct Loopback {
    runtime: Runtime,
    server: UdpSocket,
    server_addr: SocketAddr,
    subscribers: Vec<std::net::UdpSocket>,
    subscriber_addrs: Vec<SocketAddr>,
}

impl Loopback {
    fn new(subscribers: usize) -> Self {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .expect("runtime");
        let server = runtime
            .block_on(async { UdpSocket::from_std(bind_socket()) })
            .expect("tokio socket");
        let server_addr = server.local_addr().expect("server address");
        let subscribers: Vec<_> = (0..subscribers).map(|_| bind_socket()).collect();
        let subscriber_addrs = subscribers
            .iter()
            .map(|s| s.local_addr().expect("subscriber address"))
            .collect();
        Loopback {
            runtime,
            server,
            server_addr,
            subscribers,
            subscriber_addrs,
        }
    }

    /// `per_subscriber` datagrams to each subscriber, each subscriber's in a
    /// row (as a flush orders them).
    fn flush(&self, per_subscriber: usize) -> Vec<Transmit> {
        let source = self.server_addr;
        self.subscriber_addrs
            .iter()
            .flat_map(|&destination| {
                (0..per_subscriber).map(move |i| Transmit {
                    proto: Protocol::Udp,
                    source,
                    destination,
                    contents: vec![i as u8; DATAGRAM_BYTES].into(),
                })
            })
            .collect()
    }

    /// Reads everything queued at the subscribers; returns how many arrived.
    fn drain_subscribers(&self) -> usize {
        let mut buf = [0u8; 2048];
        let mut received = 0;
        for socket in &self.subscribers {
            while let Ok(n) = socket.recv(&mut buf) {
                assert_eq!(n, DATAGRAM_BYTES, "a datagram arrived cut or merged");
                received += 1;
            }
        }
        received
    }

    /// Times `iterations` sends through `SendBatch` of `per_subscriber`
    /// datagrams to each subscriber (built fresh, untimed, each time).
    fn time_sends(&self, per_subscriber: usize, iterations: u64) -> Duration {
        let mut batch = SendBatch::new();
        let mut elapsed = Duration::ZERO;
        for _ in 0..iterations {
            let mut transmits = self.flush(per_subscriber);
            let expected = transmits.len();
            let start = Instant::now();
            let outcome = self
                .runtime
                .block_on(batch.send(&self.server, &mut transmits));
            elapsed += start.elapsed();
            assert_eq!(outcome.errors, 0, "the kernel refused a datagram");
            assert_eq!(outcome.datagrams as usize, expected);
            assert_eq!(
                self.drain_subscribers(),
                expected,
                "every datagram must arrive"
            );
        }
        elapsed
    }
}

fn bench_send(c: &mut Criterion) {
    let mut group = c.benchmark_group("udp_send");
    let cases: [(&str, usize, usize); 3] =
        [("fanout", 10, 1), ("frame_runs", 10, 4), ("single", 1, 1)];
    for (name, subscribers, per_subscriber) in cases {
        let loopback = Loopback::new(subscribers);
        group.throughput(Throughput::Elements((subscribers * per_subscriber) as u64));
        group.bench_function(BenchmarkId::new(name, subscribers), |b| {
            b.iter_custom(|iterations| loopback.time_sends(per_subscriber, iterations))
        });
    }
    group.finish();
}

fn bench_recv(c: &mut Criterion) {
    let mut group = c.benchmark_group("udp_recv");
    for datagrams in [1usize, 32] {
        let loopback = Loopback::new(1);
        let publisher = &loopback.subscribers[0];
        let server_addr = loopback.server_addr;
        let payload = vec![7u8; DATAGRAM_BYTES];
        let mut batch = RecvBatch::new(64);
        group.throughput(Throughput::Elements(datagrams as u64));
        group.bench_function(BenchmarkId::new("batch", datagrams), |b| {
            b.iter_custom(|iterations| {
                let mut elapsed = Duration::ZERO;
                for _ in 0..iterations {
                    for _ in 0..datagrams {
                        publisher.send_to(&payload, server_addr).expect("send");
                    }
                    let start = Instant::now();
                    let received = loopback.runtime.block_on(async {
                        loopback.server.readable().await.expect("readable");
                        batch.recv(&loopback.server)
                    });
                    elapsed += start.elapsed();
                    assert_eq!(received.expect("recvmmsg"), datagrams, "all queued read");
                }
                elapsed
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench_send, bench_recv);
criterion_main!(benches);
