//! `stack::direct` through `netif::lossy`: every byte arrives, in order.
//! A test binary of its own: run beside the other stack tests, under CPU
//! contention, it has stalled (not yet understood; see the closing note).
use libos::netif::{pair, Lossy};
use libos::stack::{Config, Direct, Driven};
use libos::{Flow, Ipv4Cidr, Netif, Stack};
use nym_unix::platform;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

fn stack(netif: impl Netif + 'static, last: u8) -> Direct {
    let d = Direct::new(
        netif,
        platform::mono_clock().unwrap(),
        platform::time().unwrap(),
        platform::random().unwrap(),
        Config {
            ipv4: Ipv4Cidr {
                addr: Ipv4Addr::new(10, 0, 0, last),
                prefix: 24,
            },
            gateway: None,
        },
    )
    .unwrap();
    tokio::spawn(d.driver());
    d
}

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
async fn a_lossy_link_still_delivers_every_byte_in_order() {
    // smoltcp resends go-back-N without SACK: at 5 % loss a 10 MB
    // transfer takes minutes; at 1 % about 6 s.
    const LOSS: u32 = 1;
    let (a, b) = pair();
    let len = 10 << 20;
    let t = std::time::Instant::now();
    let got = tokio::time::timeout(
        Duration::from_secs(180),
        transfer(
            stack(Lossy::new(a, LOSS, 7), 1),
            stack(Lossy::new(b, LOSS, 8), 2),
            len,
        ),
    )
    .await
    .expect("10 MB through 1 % loss each way within three minutes");
    eprintln!("lossy: {len} bytes in {:?}", t.elapsed());
    assert_eq!(got.len(), len);
    assert_eq!(fnv(&got), fnv(&payload(len)));
}
