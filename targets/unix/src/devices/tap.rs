//! `netif::tap(name)`: a Linux tap device, Ethernet frames to and from the
//! host's network.
//!
//! The device must exist or the process must be allowed to create it
//! (`CAP_NET_ADMIN`); `ip tuntap add NAME mode tap` makes a persistent one
//! an unprivileged user can be given. The host configures its side
//! (address, routes, bridge); the stack over the tap has its own MAC and
//! address.
#![allow(unsafe_code)] // the tap device's ioctls
use super::{io_error, InitError};
use libos::{BoxFuture, NetError, Netif, Random};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

/// The largest frame: a 1500-byte payload and the Ethernet header.
const MTU: usize = 1514;
const TUNSETIFF: libc::c_ulong = 0x4004_54ca;
const IFF_TAP: libc::c_short = 0x0002;
const IFF_NO_PI: libc::c_short = 0x1000;

#[repr(C)]
struct IfReq {
    name: [u8; libc::IFNAMSIZ],
    flags: libc::c_short,
    _pad: [u8; 22],
}

/// A tap device.
pub struct Tap {
    fd: AsyncFd<OwnedFd>,
    mac: [u8; 6],
}

/// Attaches to (or creates) the tap device `name`: its descriptor,
/// non-blocking, carrying Ethernet frames without a packet-info header.
/// nym's monitor hands one to a guest (`nym run --target kvm --tap NAME`).
pub fn open_fd(name: &str) -> Result<OwnedFd, InitError> {
    let invalid = |why: &str| InitError::Invalid {
        what: format!("netif::tap: {name:?} {why}"),
    };
    if name.is_empty() || name.len() >= libc::IFNAMSIZ || name.contains(['/', '\0', ' ']) {
        return Err(invalid(
            "is not a valid interface name (1 to 15 bytes, no '/' or spaces)",
        ));
    }
    // SAFETY: a plain open(2) of a constant path; the result is checked.
    let raw = unsafe {
        libc::open(
            c"/dev/net/tun".as_ptr(),
            libc::O_RDWR | libc::O_NONBLOCK | libc::O_CLOEXEC,
        )
    };
    if raw < 0 {
        return Err(InitError::io(
            "netif::tap: cannot open",
            "/dev/net/tun",
            io::Error::last_os_error(),
        ));
    }
    // SAFETY: `raw` is a descriptor we just opened and own.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let mut req = IfReq {
        name: [0; libc::IFNAMSIZ],
        flags: IFF_TAP | IFF_NO_PI,
        _pad: [0; 22],
    };
    req.name[..name.len()].copy_from_slice(name.as_bytes());
    // SAFETY: TUNSETIFF reads and writes an `ifreq`, which `IfReq` lays
    // out (name, then the flags union member, padded to its size).
    if unsafe { libc::ioctl(fd.as_raw_fd(), TUNSETIFF as _, &mut req) } < 0 {
        let e = io::Error::last_os_error();
        let hint = match e.raw_os_error() {
            Some(libc::EPERM) => {
                " (create it first with `ip tuntap add NAME mode tap user $USER`, or run as root)"
            }
            Some(libc::EBUSY) => " (another process holds it)",
            _ => "",
        };
        return Err(InitError::Invalid {
            what: format!("netif::tap: cannot attach to {name:?}: {e}{hint}"),
        });
    }
    Ok(fd)
}

impl Tap {
    /// Attaches to (or creates) the tap device `name`. Must be called inside
    /// a tokio runtime.
    pub fn open(name: &str) -> Result<Tap, InitError> {
        let invalid = |why: &str| InitError::Invalid {
            what: format!("netif::tap: {name:?} {why}"),
        };
        let fd = open_fd(name)?;
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(invalid("must be opened inside the runtime (a nym bug)"));
        }
        // SAFETY: `fd` is open, owned by the AsyncFd from here on, and its
        // `as_raw_fd` always returns the same descriptor.
        let fd =
            unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE | Interest::WRITABLE) }
                .map_err(|e| {
                    InitError::io("netif::tap: cannot register", "/dev/net/tun", e.into())
                })?;
        let mut mac = [0u8; 6];
        super::random::Host::new()?
            .fill(&mut mac)
            .map_err(|_| invalid("has no random MAC address"))?;
        // Locally administered, unicast.
        mac[0] = (mac[0] & 0xfc) | 0x02;
        Ok(Tap { fd, mac })
    }
}

impl Netif for Tap {
    fn mac(&self) -> [u8; 6] {
        self.mac
    }

    fn mtu(&self) -> usize {
        MTU
    }

    fn send<'a>(&'a self, frame: &'a [u8]) -> BoxFuture<'a, Result<(), NetError>> {
        Box::pin(async move {
            if frame.len() > MTU {
                return Err(NetError::FrameTooLarge {
                    len: frame.len(),
                    mtu: MTU,
                });
            }
            self.fd
                .async_io(Interest::WRITABLE, |fd| {
                    // SAFETY: writes `frame` to our descriptor; the length is its own.
                    done(unsafe { libc::write(fd.as_raw_fd(), frame.as_ptr().cast(), frame.len()) })
                })
                .await
                .map(drop)
                .map_err(|e| NetError::Io(io_error(&e)))
        })
    }

    fn recv<'a>(&'a self, buf: &'a mut [u8]) -> BoxFuture<'a, Result<usize, NetError>> {
        Box::pin(async move {
            self.fd
                .async_io(Interest::READABLE, |fd| {
                    // SAFETY: reads at most `buf.len()` bytes into `buf`.
                    done(unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) })
                })
                .await
                .map_err(|e| NetError::Io(io_error(&e)))
        })
    }
}

/// A `read` or `write` return value: the byte count, or the error.
fn done(n: isize) -> io::Result<usize> {
    usize::try_from(n).map_err(|_| io::Error::last_os_error())
}
