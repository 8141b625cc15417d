//! netd with `--tap`: the guest's frames bridged to a tap device as they
//! are, with no stack in the monitor.
#![allow(unsafe_code)] // reading, writing and polling the tap's descriptor
use super::{pollfd, Link, MTU, QUEUE};
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// netd over a tap device: frames pass between the guest and the tap as
/// they are, with no stack in the monitor.
pub(super) struct TapBridge {
    link: Arc<Link>,
    tap: OwnedFd,
    /// Where a frame from the tap is read (allocated before the allowlist).
    buf: Vec<u8>,
}

impl TapBridge {
    pub(super) fn new(link: Arc<Link>, tap: OwnedFd) -> TapBridge {
        TapBridge {
            link,
            tap,
            buf: vec![0; MTU],
        }
    }

    pub(super) fn run(mut self) {
        while !self.link.stop.load(Ordering::Acquire) {
            let frames: Vec<Vec<u8>> = self
                .link
                .from_guest
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .drain(..)
                .collect();
            for f in frames {
                // SAFETY: writes the frame's bytes to our tap descriptor. A
                // frame the tap refuses (full queue) is lost, as on a wire.
                unsafe { libc::write(self.tap.as_raw_fd(), f.as_ptr().cast(), f.len()) };
            }
            let mut arrived = false;
            loop {
                // SAFETY: reads at most `buf.len()` bytes into `buf`; the
                // descriptor is non-blocking.
                let n = unsafe {
                    libc::read(
                        self.tap.as_raw_fd(),
                        self.buf.as_mut_ptr().cast(),
                        self.buf.len(),
                    )
                };
                let Ok(n @ 1..) = usize::try_from(n) else {
                    break;
                };
                let mut q = self.link.to_guest.lock().unwrap_or_else(|p| p.into_inner());
                if q.len() < QUEUE {
                    q.push_back(self.buf[..n].to_vec());
                }
                arrived = true;
            }
            if arrived {
                self.link.arrived.notify_all();
            }
            let mut fds = [
                pollfd(self.link.wake.as_raw_fd(), libc::POLLIN),
                pollfd(self.tap.as_raw_fd(), libc::POLLIN),
            ];
            // SAFETY: `fds` is a live array of two pollfd structs.
            unsafe { libc::poll(fds.as_mut_ptr(), 2, 1000) };
            let mut sink = [0u8; 8];
            // SAFETY: reads the eventfd's counter into a local (resetting it).
            unsafe { libc::read(self.link.wake.as_raw_fd(), sink.as_mut_ptr().cast(), 8) };
        }
    }
}
