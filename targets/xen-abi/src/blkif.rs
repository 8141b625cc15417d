//! blkfront's ring (`io/blkif.h`): each request reads or writes up to
//! [`MAX_SEGMENTS`] granted pages at a sector, or flushes the disk's
//! cache; each response echoes the request's id with a status. Sector
//! numbers in requests are always of 512 bytes; the disk's own sector
//! size (`sector-size`) may be larger.

use crate::Mem;

/// A ring entry's size (the request; the response is smaller).
pub const ENTRY: usize = 112;
/// Segments (pages) one request moves.
pub const MAX_SEGMENTS: usize = 11;
/// The unit of `sector_number`, `first_sect` and `last_sect`.
pub const SECTOR: usize = 512;

/// `BLKIF_OP_READ`.
pub const OP_READ: u8 = 0;
/// `BLKIF_OP_WRITE`.
pub const OP_WRITE: u8 = 1;
/// `BLKIF_OP_FLUSH_DISKCACHE`.
pub const OP_FLUSH_DISKCACHE: u8 = 3;
/// `BLKIF_RSP_OKAY`.
pub const RSP_OKAY: i16 = 0;
/// `BLKIF_RSP_EOPNOTSUPP`.
pub const RSP_EOPNOTSUPP: i16 = -2;
/// `VDISK_READONLY` in the backend's `info` key.
pub const VDISK_READONLY: u64 = 4;

/// One page of a request: `(grant reference, first sector, last sector)`
/// of 512 bytes within the page, inclusive.
pub type Segment = (u32, u8, u8);

/// `struct blkif_request`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Request {
    /// `OP_*`.
    pub operation: u8,
    /// The disk's handle (its `virtual-device` number).
    pub handle: u16,
    /// Echoed in the response.
    pub id: u64,
    /// The first 512-byte sector.
    pub sector: u64,
    /// The pages, at most [`MAX_SEGMENTS`].
    pub segments: [Segment; MAX_SEGMENTS],
    /// How many of them are used.
    pub nr_segments: u8,
}

impl Request {
    /// Writes it at `off`.
    pub fn write(&self, ring: &impl Mem, off: usize) {
        let n = usize::from(self.nr_segments).min(MAX_SEGMENTS);
        ring.write::<u8>(off, self.operation);
        ring.write::<u8>(off + 1, n as u8);
        ring.write::<u16>(off + 2, self.handle);
        ring.write::<u32>(off + 4, 0);
        ring.write::<u64>(off + 8, self.id);
        ring.write::<u64>(off + 16, self.sector);
        for (i, &(gref, first, last)) in self.segments[..n].iter().enumerate() {
            let s = off + 24 + i * 8;
            ring.write::<u32>(s, gref);
            ring.write::<u8>(s + 4, first);
            ring.write::<u8>(s + 5, last);
            ring.write::<u16>(s + 6, 0);
        }
    }
}

/// `struct blkif_response`: `(id, status)`.
pub fn response(ring: &impl Mem, off: usize) -> (u64, i16) {
    (ring.read::<u64>(off), ring.read::<u16>(off + 10) as i16)
}

/// The segments that move `len` bytes (a multiple of 512, at most
/// `MAX_SEGMENTS` pages) through pages whose grant references `grefs`
/// gives in order; `None` if `len` is not such a length.
pub fn segments(len: usize, grefs: &[u32]) -> Option<([Segment; MAX_SEGMENTS], u8)> {
    if len == 0 || !len.is_multiple_of(SECTOR) || len > MAX_SEGMENTS * crate::PAGE {
        return None;
    }
    let mut segs = [(0, 0, 0); MAX_SEGMENTS];
    let pages = len.div_ceil(crate::PAGE);
    for (i, seg) in segs.iter_mut().take(pages).enumerate() {
        let bytes = (len - i * crate::PAGE).min(crate::PAGE);
        *seg = (*grefs.get(i)?, 0, (bytes / SECTOR - 1) as u8);
    }
    Some((segs, pages as u8))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mem::TestPage;

    #[test]
    fn a_request_is_laid_out_as_blkif_h_says() {
        let page = TestPage::new();
        let (segments, n) = segments(4096 + 1024, &[20, 21, 22]).unwrap();
        assert_eq!(n, 2);
        Request {
            operation: OP_WRITE,
            handle: 51712,
            id: 9,
            sector: 1234,
            segments,
            nr_segments: n,
        }
        .write(&page, 64);
        assert_eq!(page.read::<u8>(64), OP_WRITE);
        assert_eq!(page.read::<u8>(65), 2);
        assert_eq!(page.read::<u16>(66), 51712);
        assert_eq!(page.read::<u64>(72), 9);
        assert_eq!(page.read::<u64>(80), 1234);
        assert_eq!(page.read::<u32>(88), 20);
        assert_eq!((page.read::<u8>(92), page.read::<u8>(93)), (0, 7));
        assert_eq!(page.read::<u32>(96), 21);
        assert_eq!((page.read::<u8>(100), page.read::<u8>(101)), (0, 1));
        page.write::<u64>(304, 9);
        page.write::<u16>(314, (-1i16) as u16);
        assert_eq!(response(&page, 304), (9, -1));
    }

    #[test]
    fn lengths_that_are_not_whole_sectors_or_too_long_are_refused() {
        assert!(segments(0, &[1]).is_none());
        assert!(segments(100, &[1]).is_none());
        assert!(segments(12 * 4096, &[0; 12]).is_none());
        assert!(segments(8192, &[1]).is_none(), "a page without a grant");
        assert_eq!(segments(11 * 4096, &[0; 11]).unwrap().1, 11);
    }
}
