//! One constructor per implementation the graph can name: `kv::full(kv)`
//! is [`kv_full`]. Generated programs call them with concrete devices and
//! their platform (monomorphised, so an image links only what its graph
//! uses); the in-process runner calls the very same functions with trait
//! objects and [`DynPlatform`](crate::platform::DynPlatform). The graph's
//! catalog names each function once, for both; nothing else decides how a
//! device is built.
//!
//! Every constructor takes the platform first, then the implementation's
//! parameters in the catalog's order: devices as `impl Trait`, integers as
//! `i64`, strings as `String`, addresses as [`Ipv4Cidr`].
use crate::platform::{MakeError, Platform};
use crate::stack::{Config, Direct, Driven};
use crate::{Block, Ipv4Cidr, Kv, MonoClock, Netif, Time};
#[cfg(feature = "tls")]
use crate::{KvRo, Stack};
use alloc::string::String;

/// `console::default()`.
pub fn console_default<P: Platform + ?Sized>(p: &P) -> Result<P::Console, MakeError> {
    p.console()
}

/// `clock::mono()`.
pub fn clock_mono<P: Platform + ?Sized>(p: &P) -> Result<P::MonoClock, MakeError> {
    p.mono_clock()
}

/// `clock::wall()`.
pub fn clock_wall<P: Platform + ?Sized>(p: &P) -> Result<P::WallClock, MakeError> {
    p.wall_clock()
}

/// `clock::scaled(clock, factor)`.
pub fn clock_scaled<P: Platform + ?Sized, C: MonoClock>(
    _: &P,
    clock: C,
    factor: i64,
) -> Result<crate::clock::Scaled<C>, MakeError> {
    Ok(crate::clock::Scaled::new(clock, u64::try_from(factor)?))
}

/// `time::default()`.
pub fn time_default<P: Platform + ?Sized>(p: &P) -> Result<P::Time, MakeError> {
    p.time()
}

/// `time::scaled(time, factor)`.
pub fn time_scaled<P: Platform + ?Sized, T: Time>(
    _: &P,
    time: T,
    factor: i64,
) -> Result<crate::time::Scaled<T>, MakeError> {
    Ok(crate::time::Scaled::new(time, u32::try_from(factor)?))
}

/// `random::default()`.
pub fn random_default<P: Platform + ?Sized>(p: &P) -> Result<P::Random, MakeError> {
    p.random()
}

/// `random::seeded(seed)`: the seed's bits, whatever its sign.
pub fn random_seeded<P: Platform + ?Sized>(
    _: &P,
    seed: i64,
) -> Result<crate::random::Seeded, MakeError> {
    Ok(crate::random::Seeded::new(seed as u64))
}

/// `kv::mem()`.
pub fn kv_mem<P: Platform + ?Sized>(_: &P) -> Result<crate::kv::Mem, MakeError> {
    Ok(crate::kv::Mem::new())
}

/// `kv::full(kv)`.
pub fn kv_full<P: Platform + ?Sized, K: Kv>(_: &P, kv: K) -> Result<crate::kv::Full<K>, MakeError> {
    Ok(crate::kv::Full::new(kv))
}

/// `kv::history(kv, bound)`: `kv`'s changes recorded, the newest `bound`
/// kept, timed by the platform's wall clock.
pub fn kv_history<P: Platform + ?Sized, K: Kv>(
    p: &P,
    kv: K,
    bound: i64,
) -> Result<crate::kv::History<K, P::WallClock>, MakeError> {
    Ok(crate::kv::History::new(
        kv,
        usize::try_from(bound)?,
        p.wall_clock()?,
    ))
}

/// `kv::dir(path)`.
pub fn kv_dir<P: Platform + ?Sized>(p: &P, path: String) -> Result<P::KvDir, MakeError> {
    p.kv_dir(&path)
}

/// `kv::block(block)`.
pub fn kv_block<P: Platform + ?Sized, B: Block + 'static>(
    _: &P,
    block: B,
) -> Result<crate::kv::Block<B>, MakeError> {
    Ok(crate::kv::Block::new(block))
}

/// `kv::baked(dir)` in-process: the directory read now. (A compiled
/// program bakes it in when it is built: [`crate::kv::Baked::from_static`].)
pub fn kv_baked<P: Platform + ?Sized>(p: &P, dir: String) -> Result<crate::kv::Baked, MakeError> {
    Ok(crate::kv::Baked::from_entries(p.bake(&dir)?))
}

/// `block::file(path, size)`.
pub fn block_file<P: Platform + ?Sized>(
    p: &P,
    path: String,
    size: i64,
) -> Result<P::BlockFile, MakeError> {
    p.block_file(&path, u64::try_from(size)?)
}

/// `block::mem(size)`: `size` bytes, rounded down to whole sectors.
pub fn block_mem<P: Platform + ?Sized>(_: &P, size: i64) -> Result<crate::block::Mem, MakeError> {
    Ok(crate::block::Mem::new(u64::try_from(size)? / 512, 512))
}

/// `stack::socket()`.
pub fn stack_socket<P: Platform + ?Sized>(p: &P) -> Result<P::SocketStack, MakeError> {
    p.socket_stack()
}

/// `stack::direct(netif, ipv4)`: smoltcp on the netif, its driver running
/// on the platform beside the jobs.
pub fn stack_direct<P: Platform + ?Sized, N: Netif + 'static>(
    p: &P,
    netif: N,
    ipv4: Ipv4Cidr,
) -> Result<Direct, MakeError> {
    driven(p, netif, Config::new(ipv4))
}

/// `stack::dhcp(netif)`.
pub fn stack_dhcp<P: Platform + ?Sized, N: Netif + 'static>(
    p: &P,
    netif: N,
) -> Result<Direct, MakeError> {
    driven(p, netif, Config::dhcp())
}

fn driven<P: Platform + ?Sized, N: Netif + 'static>(
    p: &P,
    netif: N,
    config: Config,
) -> Result<Direct, MakeError> {
    let stack = Direct::new(netif, p.mono_clock()?, p.time()?, p.random()?, config)?;
    p.spawn(stack.driver());
    Ok(stack)
}

/// `netif::default()`.
pub fn netif_default<P: Platform + ?Sized>(p: &P) -> Result<P::Netif, MakeError> {
    p.netif_default()
}

/// `netif::tap(name)`.
pub fn netif_tap<P: Platform + ?Sized>(p: &P, name: String) -> Result<P::Tap, MakeError> {
    p.tap(&name)
}

/// `netif::pair(name)`.
pub fn netif_pair<P: Platform + ?Sized>(
    _: &P,
    name: String,
) -> Result<crate::netif::PairEnd, MakeError> {
    Ok(crate::netif::pair_named(&name))
}

/// `netif::lossy(netif, percent, seed)`.
pub fn netif_lossy<P: Platform + ?Sized, N: Netif>(
    _: &P,
    netif: N,
    percent: i64,
    seed: i64,
) -> Result<crate::netif::Lossy<N>, MakeError> {
    Ok(crate::netif::Lossy::new(
        netif,
        u32::try_from(percent)?,
        seed as u64,
    ))
}

/// `tls::server(stack, certs)`.
#[cfg(feature = "tls")]
pub fn tls_server<P: Platform + ?Sized, S: Stack + 'static, K: KvRo + 'static>(
    p: &P,
    stack: S,
    certs: K,
) -> Result<crate::tls::Server<S, K, P::WallClock>, MakeError> {
    Ok(crate::tls::Server::new(stack, certs, p.wall_clock()?))
}

/// `tls::client(stack, roots, name)`.
#[cfg(feature = "tls")]
pub fn tls_client<P: Platform + ?Sized, S: Stack + 'static, K: KvRo + 'static>(
    p: &P,
    stack: S,
    roots: K,
    name: String,
) -> Result<crate::tls::Client<S, K, P::WallClock>, MakeError> {
    Ok(crate::tls::Client::new(
        stack,
        roots,
        p.wall_clock()?,
        &name,
    ))
}
