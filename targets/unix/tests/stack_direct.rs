//! `stack::direct` (smoltcp in libos) end to end: two stacks over an
//! in-memory link exchange data over TCP, through loss and garbage.
mod common;

use common::direct as stack;
use libos::netif::{pair, Lossy, PairEnd};
use libos::platform::Platform;
use libos::stack::Direct;
use libos::{BoxFuture, Flow, NetError, Netif, Stack};
use nym_unix::platform::Unix;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// A deterministic payload and its checksum (FNV-1a).
fn payload(len: usize) -> Vec<u8> {
    let mut x = 0x1234_5678u32;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

fn fnv(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

/// Server on 10.0.0.1:5000 sends `len` bytes to a client on 10.0.0.2,
/// which returns what it received.
async fn transfer(server: Direct, client: Direct, len: usize) -> Vec<u8> {
    let data = payload(len);
    let sent = data.clone();
    let mut listener = server.listen(5000).await.unwrap();
    let serve = tokio::spawn(async move {
        let (mut flow, peer) = listener.accept().await.unwrap();
        assert_eq!(*peer.ip(), Ipv4Addr::new(10, 0, 0, 2));
        for chunk in sent.chunks(7000) {
            flow.write_all(chunk).await.unwrap();
        }
        flow.close().await.unwrap();
        // Keep the stack alive until the client has read everything.
        let mut rest = [0u8; 1];
        let _ = flow.read(&mut rest).await;
        drop(server);
    });
    let mut flow = client
        .connect(SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), 5000))
        .await
        .unwrap();
    let mut got = Vec::with_capacity(len);
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match flow.read(&mut buf).await.unwrap() {
            0 => break,
            n => got.extend_from_slice(&buf[..n]),
        }
    }
    flow.close().await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), serve)
        .await
        .expect("the server ends")
        .unwrap();
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_stacks_over_a_pair_move_ten_megabytes_intact() {
    through_loss(0, 10 << 20, 0..1, Duration::from_secs(120)).await;
}

/// `len` bytes through `percent` % loss each way, once per seed, the
/// seeds at once (each pair of stacks is on its own): every run must
/// deliver every byte, in order, within `within`.
async fn through_loss(percent: u32, len: usize, seeds: std::ops::Range<u64>, within: Duration) {
    let runs: Vec<_> = seeds
        .map(|seed| {
            tokio::spawn(async move {
                let (a, b) = pair();
                let started = std::time::Instant::now();
                let got = tokio::time::timeout(
                    within,
                    transfer(
                        stack(Lossy::new(a, percent, 2 * seed + 1), 1),
                        stack(Lossy::new(b, percent, 2 * seed + 2), 2),
                        len,
                    ),
                )
                .await
                .unwrap_or_else(|_| {
                    panic!("{len} bytes through {percent} % loss, seed {seed}, within {within:?}")
                });
                assert_eq!(got.len(), len, "seed {seed}");
                assert_eq!(fnv(&got), fnv(&payload(len)), "seed {seed}");
                // For BENCHMARKS.md (`-- --nocapture` shows it).
                eprintln!(
                    "{len} bytes through {percent} % loss, seed {seed}: {:.2} s",
                    started.elapsed().as_secs_f64()
                );
            })
        })
        .collect();
    for run in runs {
        run.await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lossy_link_still_delivers_ten_megabytes_intact() {
    // Resends of data and ACKs through a long transfer, several windows
    // deep: the receiver's window fills, and a lost window update must not
    // stall it (smoltcp 0.12 has no zero-window probe; the stack's
    // keep-alives stand in for one).
    through_loss(1, 10 << 20, 0..3, Duration::from_secs(120)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_very_lossy_link_still_delivers_every_byte_of_short_transfers() {
    // Ten seeds of 5 % loss each way lose SYNs, FINs and the last
    // segment's ACK too (smoltcp 0.14 stalled here: see libos/Cargo.toml).
    through_loss(5, 96 << 10, 0..10, Duration::from_secs(120)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_reader_gets_the_whole_answer_after_the_server_lets_go() {
    // Clocks 100 times fast: the 30 s a dropped connection may go without
    // progress pass in 0.3 s. The client takes 256 KiB at 16 KiB per 50 ms
    // (some 80 s of stack time): the server's flow is dropped long before
    // the end, and the rest must still arrive, not a reset.
    let (a, b) = pair();
    let server = common::direct_fast(a, 1, 100);
    let client = common::direct_fast(b, 2, 100);
    let len = 256 << 10;
    let mut listener = server.listen(5000).await.unwrap();
    let serve = tokio::spawn(async move {
        let (mut flow, _) = listener.accept().await.unwrap();
        flow.write_all(&payload(len)).await.unwrap();
        flow.close().await.unwrap();
        drop(flow);
        server
    });
    let mut flow = client
        .connect(SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), 5000))
        .await
        .unwrap();
    let mut got = Vec::with_capacity(len);
    let mut buf = vec![0u8; 16 << 10];
    let read = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            tokio::time::sleep(Duration::from_millis(50)).await;
            match flow.read(&mut buf).await {
                Ok(0) => return Ok(()),
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) => return Err(e),
            }
        }
    })
    .await
    .expect("the answer within a minute");
    assert_eq!(read, Ok(()), "after {} of {len} bytes", got.len());
    assert_eq!(fnv(&got), fnv(&payload(len)));
    let _server = serve.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_to_a_vanished_peer_is_let_go() {
    // Clocks 100 times fast: the 30 s of silence that mean a peer has
    // vanished pass in 0.3 s.
    let (a, b) = pair();
    let server = common::direct_fast(a, 1, 100);
    let client = common::direct_fast(b, 2, 100);
    let mut listener = server.listen(5000).await.unwrap();
    let listening = server.sockets();
    let flow = client
        .connect(SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), 5000))
        .await
        .unwrap();
    let (mut accepted, _) = listener.accept().await.unwrap();
    accepted.write_all(&payload(64 << 10)).await.unwrap();
    // The client goes without a word (its stack stops: no FIN, no reset),
    // then the server drops the connection, its FIN unanswered.
    drop(client);
    drop(flow);
    drop(accepted);
    assert_eq!(server.sockets(), listening + 1, "the connection lingers");
    let gone = tokio::time::timeout(Duration::from_secs(20), async {
        while server.sockets() > listening {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(gone.is_ok(), "still {:?}", server.socket_states());
    drop(listener);
}

/// A netif that slips garbage between the real frames: random bytes,
/// truncated headers, and frames too large for the buffer.
struct Garbage {
    inner: PairEnd,
    n: AtomicU32,
}

impl Netif for Garbage {
    fn mac(&self) -> [u8; 6] {
        self.inner.mac()
    }
    fn mtu(&self) -> usize {
        self.inner.mtu()
    }
    fn send<'a>(&'a self, frame: &'a [u8]) -> BoxFuture<'a, Result<(), NetError>> {
        self.inner.send(frame)
    }
    fn recv<'a>(&'a self, buf: &'a mut [u8]) -> BoxFuture<'a, Result<usize, NetError>> {
        Box::pin(async move {
            let n = self.n.fetch_add(1, Ordering::Relaxed);
            match n % 4 {
                1 => {
                    // Random bytes, addressed to us so they get parsed.
                    let len = 14 + (n as usize * 37) % 1400;
                    buf[..6].copy_from_slice(&self.inner.mac());
                    for (i, b) in buf[6..len].iter_mut().enumerate() {
                        *b = (i as u32).wrapping_mul(n).wrapping_add(0x9e) as u8;
                    }
                    // Claim IPv4 so the IP parser sees it.
                    buf[12] = 0x08;
                    buf[13] = 0x00;
                    Ok(len)
                }
                2 => Ok(3),
                3 => Err(NetError::FrameTooLarge {
                    len: 100_000,
                    mtu: buf.len(),
                }),
                _ => self.inner.recv(buf).await,
            }
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_oversized_frames_are_dropped_and_the_stack_keeps_serving() {
    let (a, b) = pair();
    let server = stack(
        Garbage {
            inner: a,
            n: AtomicU32::new(0),
        },
        1,
    );
    let len = 1 << 20;
    let got = tokio::time::timeout(Duration::from_secs(60), transfer(server, stack(b, 2), len))
        .await
        .expect("1 MB through garbage within a minute");
    assert_eq!(fnv(&got), fnv(&payload(len)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_vanishes_and_a_closed_port_do_not_stop_the_listener() {
    let (a, b) = pair();
    let server = stack(a, 1);
    let client = stack(b, 2);
    let mut listener = server.listen(80).await.unwrap();
    assert!(
        matches!(server.listen(80).await, Err(NetError::AddrInUse)),
        "a second listener on the same port is refused"
    );
    let addr = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), 80);
    // Connects and drops at once, before the server accepts.
    drop(client.connect(addr).await.unwrap());
    // Nobody listens on 81: refused, not hung.
    let refused = tokio::time::timeout(
        Duration::from_secs(10),
        client.connect(SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), 81)),
    )
    .await
    .expect("a refusal, not a hang");
    assert!(
        matches!(refused, Err(NetError::Refused)),
        "{:?}",
        refused.err()
    );
    let echo = tokio::spawn(async move {
        for _ in 0..2 {
            let (mut flow, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 64];
            let n = flow.read(&mut buf).await.unwrap_or(0);
            let _ = flow.write_all(&buf[..n]).await;
            let _ = flow.close().await;
        }
        server
    });
    let mut flow = client.connect(addr).await.unwrap();
    flow.write_all(b"still there?").await.unwrap();
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(10), flow.read(&mut buf))
        .await
        .expect("an answer")
        .unwrap();
    assert_eq!(&buf[..n], b"still there?");
    let server = tokio::time::timeout(Duration::from_secs(10), echo)
        .await
        .expect("the echo task ends")
        .unwrap();
    // A listener dropped and made again on its port keeps its backlog: a
    // connection made in between is accepted by the new one.
    let again = server.listen(80).await.unwrap();
    drop(again);
    let pending = tokio::spawn(async move {
        let mut flow = client.connect(addr).await.unwrap();
        flow.write_all(b"between").await.unwrap();
        // The stack lives as long as its driver sends what was written.
        (flow, client)
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut listener = server.listen(80).await.unwrap();
    let (mut accepted, _) = tokio::time::timeout(Duration::from_secs(10), listener.accept())
        .await
        .expect("the connection made while no listener existed")
        .unwrap();
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(Duration::from_secs(10), accepted.read(&mut buf))
        .await
        .expect("the bytes written before the accept")
        .unwrap();
    assert_eq!(&buf[..n], b"between");
    let (between, client) = pending.await.unwrap();
    drop((accepted, listener, between, flow));
    // Closed flows are reaped once both sides are done: only the parked
    // backlog of the dropped listener is left.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(server.sockets(), 8, "sockets linger");
    drop(client);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_datagrams_cross_a_pair_both_ways_with_their_senders() {
    let (a, b) = pair();
    let (server, client) = (stack(a, 1), stack(b, 2));
    let mut echo = server.udp(5353).await.unwrap();
    assert_eq!(echo.port(), 5353);
    assert!(matches!(server.udp(5353).await, Err(NetError::AddrInUse)));
    let mut asker = client.udp(0).await.unwrap();
    let from_port = asker.port();
    assert!(from_port >= 49152, "an ephemeral port: {from_port}");
    let there = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), 5353);
    let exchange = async {
        let mut buf = [0u8; 2048];
        for i in 0..20u8 {
            let msg = vec![i; 100 + usize::from(i) * 50];
            asker.send_to(&msg, there).await.unwrap();
            let (n, from) = echo.recv_from(&mut buf).await.unwrap();
            assert_eq!(&buf[..n], &msg[..]);
            assert_eq!(
                from,
                SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), from_port)
            );
            echo.send_to(&buf[..n], from).await.unwrap();
            let (n, from) = asker.recv_from(&mut buf).await.unwrap();
            assert_eq!((n, from), (msg.len(), there));
        }
    };
    tokio::time::timeout(Duration::from_secs(20), exchange)
        .await
        .expect("twenty round trips within 20 s");
    // A datagram that cannot fit in one frame is refused, naming sizes.
    match asker.send_to(&[0u8; 1500], there).await {
        Err(NetError::FrameTooLarge { len, mtu }) => assert_eq!((len, mtu), (1542, 1514)),
        other => panic!("expected FrameTooLarge, got {other:?}"),
    }
    // Dropping the socket frees its port.
    drop(echo);
    server.udp(5353).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_over_host_sockets_talks_to_a_std_socket() {
    let stack = Unix.socket_stack().unwrap();
    let mut socket = stack.udp(0).await.unwrap();
    let port = socket.port();
    let peer = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    peer.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    peer.send_to(b"ping", ("127.0.0.1", port)).unwrap();
    let mut buf = [0u8; 64];
    let (n, from) = tokio::time::timeout(Duration::from_secs(5), socket.recv_from(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&buf[..n], b"ping");
    assert_eq!(std::net::SocketAddr::V4(from), peer.local_addr().unwrap());
    socket.send_to(b"pong", from).await.unwrap();
    let (n, _) = peer.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"pong");
    let taken = stack.udp(port).await;
    assert!(
        matches!(taken, Err(NetError::AddrInUse)),
        "{:?}",
        taken.err()
    );
}

/// A link on which a frame is always waiting: a peer that sends as fast
/// as the stack takes frames, as a client retrying each refused SYN at
/// once does. The frames are for another host (dropped on sight).
struct Flood {
    reliable: bool,
}

impl Netif for Flood {
    fn mac(&self) -> [u8; 6] {
        [2, 0, 0, 0, 0, 1]
    }
    fn mtu(&self) -> usize {
        1514
    }
    fn reliable(&self) -> bool {
        self.reliable
    }
    fn send<'a>(&'a self, _frame: &'a [u8]) -> BoxFuture<'a, Result<(), NetError>> {
        Box::pin(async { Ok(()) })
    }
    fn recv<'a>(&'a self, buf: &'a mut [u8]) -> BoxFuture<'a, Result<usize, NetError>> {
        Box::pin(async move {
            buf[..6].copy_from_slice(&[2, 0, 0, 0, 0, 9]);
            buf[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 2]);
            buf[12..14].copy_from_slice(&[0x08, 0x00]);
            buf[14..60].fill(0);
            Ok(60)
        })
    }
}

/// The stack's driver shares one thread with the jobs, as in a guest,
/// whose executor never forces a task to yield: a link that never runs
/// dry must still leave the jobs their turns.
#[test]
fn a_link_that_never_runs_dry_does_not_starve_the_jobs() {
    for reliable in [false, true] {
        let (done, finished) = std::sync::mpsc::channel();
        // The thread is left behind if the driver starves it.
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let server = stack(Flood { reliable }, 1);
                // A few turns, each after the driver's streak of rounds
                // (on a reliable link each round takes a queue's worth of
                // frames): starved, the job gets none; a hundred took
                // 20 s of a debug build on a loaded machine.
                for _ in 0..10 {
                    tokio::task::yield_now().await;
                }
                let listener = server.listen(80).await;
                tokio::time::sleep(Duration::from_millis(20)).await;
                done.send(listener.is_ok()).unwrap();
            });
        });
        let listened = finished
            .recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|_| panic!("jobs starved by a flooding link (reliable: {reliable})"));
        assert!(listened, "listen failed (reliable: {reliable})");
    }
}
