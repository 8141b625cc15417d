//! Helpers shared by the stack tests of this crate.
#![allow(unreachable_pub)] // shared by several test binaries, each using some
#![allow(dead_code)]
use libos::platform::Platform;
use libos::stack::{Config, Direct, Driven};
use libos::{Ipv4Cidr, MonoClock, Netif, Time};
use nym_unix::platform::Unix;
use std::net::Ipv4Addr;

/// A `stack::direct` at 10.0.0.`last`/24 over `netif`, its driver spawned
/// on the test's runtime.
pub fn direct(netif: impl Netif + 'static, last: u8) -> Direct {
    spawned(
        netif,
        Unix.mono_clock().unwrap(),
        Unix.time().unwrap(),
        last,
    )
}

/// [`direct`], but its clock and sleeps run `factor` times fast: TCP's
/// timers, and nym's own, pass in a fraction of the time.
pub fn direct_fast(netif: impl Netif + 'static, last: u8, factor: u32) -> Direct {
    spawned(
        netif,
        libos::clock::Scaled::new(Unix.mono_clock().unwrap(), u64::from(factor)),
        libos::time::Scaled::new(Unix.time().unwrap(), factor),
        last,
    )
}

fn spawned(
    netif: impl Netif + 'static,
    clock: impl MonoClock + 'static,
    time: impl Time + 'static,
    last: u8,
) -> Direct {
    let d = Direct::new(
        netif,
        clock,
        time,
        Unix.random().unwrap(),
        Config::new(Ipv4Cidr {
            addr: Ipv4Addr::new(10, 0, 0, last),
            prefix: 24,
        }),
    )
    .unwrap();
    tokio::spawn(d.driver());
    d
}

/// A loopback port nothing listens on (as of now).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
