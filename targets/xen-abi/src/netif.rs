//! netfront's rings (`io/netif.h`): transmit (the guest's frames, each in
//! a granted page, answered with a status) and receive (granted empty
//! pages the backend copies frames into, answered with where and how
//! long). nym's netfront asks for no scatter-gather, no segmentation
//! offload and no checksum offload, so every frame is one slot, whole and
//! checksummed.
use crate::ring::RingError;
use crate::Mem;

/// A transmit ring entry's size (the request; the response is smaller).
pub const TX_ENTRY: usize = 12;
/// A receive ring entry's size.
pub const RX_ENTRY: usize = 8;

/// `NETRXF_more_data`: the frame continues in the next slot.
pub const RXF_MORE_DATA: u16 = 1 << 2;
/// `NETRXF_extra_info`: an extra-info slot follows.
pub const RXF_EXTRA_INFO: u16 = 1 << 3;
/// `NETIF_RSP_NULL`: a response to an extra-info slot.
pub const RSP_NULL: i16 = 1;

/// `struct netif_tx_request`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TxRequest {
    /// The page holding the frame.
    pub gref: u32,
    /// Where in it the frame starts.
    pub offset: u16,
    /// `NETTXF_*` (none used).
    pub flags: u16,
    /// Echoed in the response.
    pub id: u16,
    /// The frame's length.
    pub size: u16,
}

impl TxRequest {
    /// Writes it at `off`.
    pub fn write(&self, ring: &impl Mem, off: usize) {
        ring.write::<u32>(off, self.gref);
        ring.write::<u16>(off + 4, self.offset);
        ring.write::<u16>(off + 6, self.flags);
        ring.write::<u16>(off + 8, self.id);
        ring.write::<u16>(off + 10, self.size);
    }
}

/// `struct netif_tx_response`: `(id, status)`.
pub fn tx_response(ring: &impl Mem, off: usize) -> (u16, i16) {
    (ring.read::<u16>(off), ring.read::<u16>(off + 2) as i16)
}

/// `struct netif_rx_request`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RxRequest {
    /// Echoed in the response.
    pub id: u16,
    /// The empty page.
    pub gref: u32,
}

impl RxRequest {
    /// Writes it at `off`.
    pub fn write(&self, ring: &impl Mem, off: usize) {
        ring.write::<u16>(off, self.id);
        ring.write::<u16>(off + 2, 0);
        ring.write::<u32>(off + 4, self.gref);
    }
}

/// A received frame: which buffer, and where in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RxFrame {
    /// The request's id (its buffer).
    pub id: u16,
    /// Where the frame starts in the page.
    pub offset: usize,
    /// Its length; `Err` with the backend's status when it failed.
    pub len: Result<usize, i16>,
}

/// Why a receive response cannot be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RxError {
    /// The id is not that of a posted buffer.
    Ring(RingError),
    /// The frame would run past its page.
    PastPage {
        /// Its offset.
        offset: usize,
        /// Its length.
        len: usize,
    },
    /// Flags for features nym's netfront did not ask for.
    Flags(u16),
}

impl core::fmt::Display for RxError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            RxError::Ring(e) => write!(f, "{e}"),
            RxError::PastPage { offset, len } => write!(
                f,
                "a received frame of {len} bytes at offset {offset} runs past its page"
            ),
            RxError::Flags(flags) => write!(
                f,
                "a received frame with flags {flags:#x} (scatter-gather or extra info, never negotiated)"
            ),
        }
    }
}

/// Reads and checks the receive response at `off`: its id must be below
/// `buffers`, the frame inside its page, and no flag asking for a
/// feature that was never negotiated.
pub fn rx_response(ring: &impl Mem, off: usize, buffers: u16) -> Result<RxFrame, RxError> {
    let id = ring.read::<u16>(off);
    let offset = usize::from(ring.read::<u16>(off + 2));
    let flags = ring.read::<u16>(off + 4);
    let status = ring.read::<u16>(off + 6) as i16;
    if id >= buffers {
        return Err(RxError::Ring(RingError::UnknownId { id: u64::from(id) }));
    }
    if flags & (RXF_MORE_DATA | RXF_EXTRA_INFO) != 0 {
        return Err(RxError::Flags(flags));
    }
    if status < 0 {
        return Ok(RxFrame {
            id,
            offset,
            len: Err(status),
        });
    }
    let len = status as usize;
    if offset + len > crate::PAGE {
        return Err(RxError::PastPage { offset, len });
    }
    Ok(RxFrame {
        id,
        offset,
        len: Ok(len),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mem::TestPage;

    fn rsp(page: &TestPage, id: u16, offset: u16, flags: u16, status: i16) {
        page.write::<u16>(64, id);
        page.write::<u16>(66, offset);
        page.write::<u16>(68, flags);
        page.write::<u16>(70, status as u16);
    }

    #[test]
    fn requests_are_laid_out_as_netif_h_says() {
        let page = TestPage::new();
        TxRequest {
            gref: 0x0102_0304,
            offset: 5,
            flags: 0,
            id: 7,
            size: 1514,
        }
        .write(&page, 64);
        assert_eq!(page.read::<u32>(64), 0x0102_0304);
        assert_eq!(page.read::<u16>(72), 7);
        assert_eq!(page.read::<u16>(74), 1514);
        RxRequest { id: 3, gref: 99 }.write(&page, 128);
        assert_eq!(page.read::<u16>(128), 3);
        assert_eq!(page.read::<u32>(132), 99);
        page.write::<u16>(200, 4);
        page.write::<u16>(202, (-1i16) as u16);
        assert_eq!(tx_response(&page, 200), (4, -1));
    }

    #[test]
    fn good_frames_and_failed_ones() {
        let page = TestPage::new();
        rsp(&page, 3, 0, 0, 60);
        assert_eq!(
            rx_response(&page, 64, 64),
            Ok(RxFrame {
                id: 3,
                offset: 0,
                len: Ok(60)
            })
        );
        rsp(&page, 3, 0, 0, -1);
        assert_eq!(rx_response(&page, 64, 64).unwrap().len, Err(-1));
    }

    #[test]
    fn hostile_responses_are_refused() {
        let page = TestPage::new();
        rsp(&page, 64, 0, 0, 60);
        assert!(matches!(rx_response(&page, 64, 64), Err(RxError::Ring(_))));
        rsp(&page, u16::MAX, 0, 0, 60);
        assert!(rx_response(&page, 64, 64).is_err());
        rsp(&page, 1, 4000, 0, 200);
        assert_eq!(
            rx_response(&page, 64, 64),
            Err(RxError::PastPage {
                offset: 4000,
                len: 200
            })
        );
        rsp(&page, 1, 0, 0, i16::MAX);
        assert!(rx_response(&page, 64, 64).is_err(), "longer than a page");
        rsp(&page, 1, 0, RXF_MORE_DATA, 60);
        assert_eq!(
            rx_response(&page, 64, 64),
            Err(RxError::Flags(RXF_MORE_DATA))
        );
    }
}
