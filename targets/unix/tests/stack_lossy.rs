//! `stack::direct` through `netif::lossy`: every byte arrives, in order.
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
    // Each transfer stays under the receiver's 128 KiB window: smoltcp 0.12
    // has no zero-window probe, so over a lossy link a transfer that fills
    // the receiver's window can stall for good when the one window update
    // is lost (reproduced: sender "send 131072", receiver "win 131072").
    // Ten seeds of 5 % loss each way exercise resends of data, ACKs,
    // SYNs and FINs.
    const LOSS: u32 = 5;
    let len = 96 << 10;
    for seed in 0..10 {
        let (a, b) = pair();
        let got = tokio::time::timeout(
            Duration::from_secs(60),
            transfer(
                stack(Lossy::new(a, LOSS, 2 * seed + 1), 1),
                stack(Lossy::new(b, LOSS, 2 * seed + 2), 2),
                len,
            ),
        )
        .await
        .unwrap_or_else(|_| panic!("96 KiB through 5 % loss, seed {seed}, within a minute"));
        assert_eq!(got.len(), len, "seed {seed}");
        assert_eq!(fnv(&got), fnv(&payload(len)), "seed {seed}");
    }
}
