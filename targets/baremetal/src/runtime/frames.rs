//! A network device as the stack uses it once it is set up: the device's
//! state behind a lock, shared by the stack's driver (which receives) and
//! its sends, polled until it answers and woken after each of the
//! executor's waits (which the device's interrupt or event channel ends).
//! virtio-net and Xen's netfront are two such devices.
use super::executor::wake_after_wait;
use alloc::boxed::Box;
use core::task::Poll;
use libos::{BoxFuture, NetError, Netif};

/// What a set-up device does without waiting.
pub trait Frames: Send + 'static {
    /// Queues `frame`; `None` while every transmit slot is in flight.
    fn try_send(&mut self, frame: &[u8]) -> Option<Result<(), NetError>>;
    /// Copies the next received frame into `buf`; `None` if none came.
    fn poll_recv(&mut self, buf: &mut [u8]) -> Option<Result<usize, NetError>>;
}

/// A device as a [`Netif`], kept for the guest's life. Its frames cross
/// a real network (QEMU's, a bridge): checksums are computed and checked.
pub struct SharedNet<D: 'static> {
    dev: &'static spin::Mutex<D>,
    mac: [u8; 6],
    mtu: usize,
}

impl<D: Frames> SharedNet<D> {
    /// `dev`, with its MAC address and MTU.
    pub fn new(dev: D, mac: [u8; 6], mtu: usize) -> SharedNet<D> {
        SharedNet {
            dev: Box::leak(Box::new(spin::Mutex::new(dev))),
            mac,
            mtu,
        }
    }

    /// A future that polls the device with `poll` until it answers.
    fn until_ready<'a, T>(
        &'a self,
        mut poll: impl FnMut(&mut D) -> Option<T> + Send + 'a,
    ) -> BoxFuture<'a, T> {
        Box::pin(core::future::poll_fn(move |cx| {
            match poll(&mut self.dev.lock()) {
                Some(r) => Poll::Ready(r),
                None => {
                    wake_after_wait(cx.waker());
                    Poll::Pending
                }
            }
        }))
    }
}

impl<D: Frames> Netif for SharedNet<D> {
    fn mac(&self) -> [u8; 6] {
        self.mac
    }

    fn mtu(&self) -> usize {
        self.mtu
    }

    fn reliable(&self) -> bool {
        false
    }

    fn send<'a>(&'a self, frame: &'a [u8]) -> BoxFuture<'a, Result<(), NetError>> {
        self.until_ready(move |d| d.try_send(frame))
    }

    fn recv<'a>(&'a self, buf: &'a mut [u8]) -> BoxFuture<'a, Result<usize, NetError>> {
        self.until_ready(move |d| d.poll_recv(buf))
    }
}
