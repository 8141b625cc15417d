//! netfront: `netif::default()` on Xen. The vif the toolstack gave the
//! domain (`vif = [...]` in the xl config) is served by netback in dom0,
//! which bridges it to dom0's network.
//!
//! Set-up follows xenbus: wait for the backend to be `InitWait`, check it
//! can copy received frames into the guest's pages (`feature-rx-copy`),
//! grant a transmit and a receive ring, write their references and an
//! event channel, ask for no checksum offload (every frame arrives
//! checksummed) and no scatter-gather, become `Connected` and wait for
//! the backend to be too. Buffers are one page each, granted once:
//! [`TX`] read-only pages for frames going out (a slot is reused once the
//! backend answered it), [`RX`] writable pages the backend copies frames
//! into (each posted again as soon as its frame is copied out).
//!
//! A backend that breaks the rings — a response producer past what was
//! asked, an id never posted, a frame running past its page — ends the
//! guest with a message naming the device (see `xen::device_failed`).
use super::page::Shared;
use super::xenbus::{DeviceError, Frontend};
use super::{evtchn, grant};
use crate::runtime::frames::{Frames, SharedNet};
use alloc::format;
use alloc::vec::Vec;
use libos::NetError;
use nym_xen_abi::netif::{self, RxRequest, TxRequest};
use nym_xen_abi::ring::{FrontRing, Outstanding, RingError};
use nym_xen_abi::xenbus::State;

/// The largest Ethernet frame (no VLAN tag, no FCS).
pub const MTU: usize = 1514;
/// Transmit buffers.
const TX: u16 = 32;
/// Receive buffers.
const RX: u16 = 64;

/// The vif, set up and connected.
pub struct Net {
    front: Frontend,
    port: u32,
    tx_page: Shared,
    tx: FrontRing,
    tx_ids: Outstanding,
    tx_bufs: Vec<(Shared, u32)>,
    rx_page: Shared,
    rx: FrontRing,
    rx_bufs: Vec<(Shared, u32)>,
}

impl Net {
    fn open() -> Result<(Net, [u8; 6]), DeviceError> {
        let front = Frontend::find("vif", "netfront", "add `vif = [...]` to the xl config")?;
        let text = front.read("mac")?;
        let mac = nym_xen_abi::xenbus::mac(&text)
            .ok_or_else(|| front.malformed(&format!("{}/mac", front.dir), &text))?;
        front.await_backend(State::InitWait)?;
        if front.backend_number("feature-rx-copy")? != Some(1) {
            return Err(front.error(format!(
                "the backend ({}) cannot copy received frames (no feature-rx-copy)",
                front.backend
            )));
        }
        let dom = front.backend_id;
        let grant_error =
            |e: grant::Error| front.error(format!("granting a page: {}", e.message()));
        let share = |readonly: bool| -> Result<(Shared, u32), DeviceError> {
            let page = Shared::new();
            let r = grant::permit(dom, page.address(), readonly).map_err(grant_error)?;
            Ok((page, r))
        };
        let (tx_page, tx_ref) = share(false)?;
        let (rx_page, rx_ref) = share(false)?;
        let tx = FrontRing::init(&tx_page, netif::TX_ENTRY);
        let rx = FrontRing::init(&rx_page, netif::RX_ENTRY);
        let tx_bufs = (0..TX)
            .map(|_| share(true))
            .collect::<Result<Vec<_>, _>>()?;
        let rx_bufs = (0..RX)
            .map(|_| share(false))
            .collect::<Result<Vec<_>, _>>()?;
        let port = evtchn::bind_new(dom).map_err(|e| front.error(e.into()))?;
        for (key, value) in [
            ("tx-ring-ref", format!("{tx_ref}")),
            ("rx-ring-ref", format!("{rx_ref}")),
            ("event-channel", format!("{port}")),
            ("request-rx-copy", "1".into()),
            ("feature-rx-notify", "1".into()),
            ("feature-no-csum-offload", "1".into()),
            ("feature-ipv6-csum-offload", "0".into()),
            ("feature-sg", "0".into()),
            ("feature-gso-tcpv4", "0".into()),
            ("feature-gso-tcpv6", "0".into()),
        ] {
            front.write(key, &value)?;
        }
        front.switch(State::Connected)?;
        front.await_backend(State::Connected)?;
        let mut net = Net {
            front,
            port,
            tx_page,
            tx,
            tx_ids: Outstanding::new(u32::from(TX)),
            tx_bufs,
            rx_page,
            rx,
            rx_bufs,
        };
        for id in 0..RX {
            net.post(id).map_err(|e| net.front.error(format!("{e}")))?;
        }
        if net.rx.push(&net.rx_page) {
            evtchn::notify(port);
        }
        Ok((net, mac))
    }

    /// Offers receive buffer `id` to the backend (published by the caller).
    fn post(&mut self, id: u16) -> Result<(), RingError> {
        let off = self
            .rx
            .next_request()
            .ok_or(RingError::UnknownId { id: u64::from(id) })?;
        let gref = self.rx_bufs[usize::from(id) % self.rx_bufs.len()].1;
        RxRequest { id, gref }.write(&self.rx_page, off);
        Ok(())
    }

    /// Takes the backend's answers to sent frames, freeing their slots.
    fn reap(&mut self) {
        loop {
            match self.tx.next_response(&self.tx_page) {
                Ok(Some(off)) => {
                    let (id, status) = netif::tx_response(&self.tx_page, off);
                    if status == netif::RSP_NULL {
                        continue;
                    }
                    if let Err(e) = self.tx_ids.finish(u64::from(id)) {
                        super::device_failed(&self.front.error(format!("transmit ring: {e}")));
                    }
                }
                Ok(None) => return,
                Err(e) => super::device_failed(&self.front.error(format!("transmit ring: {e}"))),
            }
        }
    }
}

impl Frames for Net {
    /// Copies the next received frame into `buf`, if one is there.
    fn poll_recv(&mut self, buf: &mut [u8]) -> Option<Result<usize, NetError>> {
        loop {
            let off = match self.rx.next_response(&self.rx_page) {
                Ok(Some(off)) => off,
                Ok(None) => return None,
                Err(e) => super::device_failed(&self.front.error(format!("receive ring: {e}"))),
            };
            let frame = netif::rx_response(&self.rx_page, off, RX)
                .unwrap_or_else(|e| super::device_failed(&self.front.error(format!("{e}"))));
            let result = match frame.len {
                // The backend dropped it: post the buffer again, read on.
                Err(_) => None,
                Ok(len) if len > buf.len() => Some(Err(NetError::FrameTooLarge {
                    len,
                    mtu: buf.len(),
                })),
                Ok(len) => {
                    self.rx_bufs[usize::from(frame.id)]
                        .0
                        .copy_out(frame.offset, &mut buf[..len]);
                    Some(Ok(len))
                }
            };
            if let Err(e) = self.post(frame.id) {
                super::device_failed(&self.front.error(format!("receive ring: {e}")));
            }
            if self.rx.push(&self.rx_page) {
                evtchn::notify(self.port);
            }
            if result.is_some() {
                return result;
            }
        }
    }

    /// Queues `frame`, unless every transmit slot is in flight.
    fn try_send(&mut self, frame: &[u8]) -> Option<Result<(), NetError>> {
        if frame.len() > MTU {
            return Some(Err(NetError::FrameTooLarge {
                len: frame.len(),
                mtu: MTU,
            }));
        }
        self.reap();
        let id = self.tx_ids.take()?;
        let Some(off) = self.tx.next_request() else {
            // Cannot happen (there are fewer ids than slots); wait anyway.
            let _ = self.tx_ids.finish(u64::from(id));
            return None;
        };
        let (page, gref) = self.tx_bufs[usize::from(id)];
        page.copy_in(0, frame);
        TxRequest {
            gref,
            offset: 0,
            flags: 0,
            id,
            size: frame.len() as u16,
        }
        .write(&self.tx_page, off);
        if self.tx.push(&self.tx_page) {
            evtchn::notify(self.port);
        }
        Some(Ok(()))
    }
}

/// The vif as a [`libos::Netif`], shared by the stack's driver and its
/// sends. Frames cross a real bridge: checksums are computed and checked.
pub type Netfront = SharedNet<Net>;

impl SharedNet<Net> {
    /// Connects to the domain's first vif.
    pub fn open() -> Result<Netfront, DeviceError> {
        let (net, mac) = Net::open()?;
        Ok(SharedNet::new(net, mac, MTU))
    }
}
