//! The guest's grant table (version 1): [`FRAMES`] frames Xen maps over
//! pages of this image at the first grant, each entry letting a backend
//! use one of the guest's pages. Devices grant their rings and buffers
//! once, at set-up, and keep them granted for the guest's life, so a
//! request never waits for a grant and no page is reused while a backend
//! may still hold it.
#![allow(unsafe_code)] // the frames' static memory
use super::hypercall;
use super::page::Shared;
use nym_xen_abi::grant::{self, GrantError, Refs, PER_FRAME};
use nym_xen_abi::hypercall::XENMAPSPACE_GRANT_TABLE;
use nym_xen_abi::DomId;

/// Grant table frames: 2048 entries, far more than the devices take
/// (netfront about 100, blkfront 12).
pub const FRAMES: usize = 4;

#[repr(C, align(4096))]
struct Frames([[u8; 4096]; FRAMES]);

static mut TABLE_FRAMES: Frames = Frames([[0; 4096]; FRAMES]);

struct Table {
    refs: Refs,
}

static TABLE: spin::Mutex<Option<Table>> = spin::Mutex::new(None);

fn frame(i: usize) -> Shared {
    Shared::at(core::ptr::addr_of!(TABLE_FRAMES) as u64 + (i * 4096) as u64)
}

/// Maps the table's frames; `None` if Xen refuses.
fn map() -> Option<Table> {
    for i in 0..FRAMES {
        if hypercall::add_to_physmap(
            XENMAPSPACE_GRANT_TABLE,
            i as u64,
            u64::from(frame(i).frame()),
        ) != 0
        {
            return None;
        }
    }
    Some(Table {
        refs: Refs::new(FRAMES as u32),
    })
}

/// Why a page could not be granted.
#[derive(Clone, Copy)]
pub enum Error {
    /// Xen would not map the table.
    Unmapped,
    /// Every entry is taken.
    Full(GrantError),
}

impl Error {
    /// What went wrong.
    pub fn message(self) -> &'static str {
        match self {
            Error::Unmapped => "Xen refused to map the grant table",
            Error::Full(e) => e.message(),
        }
    }
}

/// Lets domain `domid` use the page at physical address `page` (read-only
/// if `readonly`); its grant reference.
pub fn permit(domid: DomId, page: u64, readonly: bool) -> Result<u32, Error> {
    let mut table = TABLE.lock();
    if table.is_none() {
        *table = Some(map().ok_or(Error::Unmapped)?);
    }
    let Some(t) = table.as_mut() else {
        return Err(Error::Unmapped);
    };
    let r = t.refs.take().map_err(Error::Full)?;
    grant::permit(
        &frame((r / PER_FRAME) as usize % FRAMES),
        r,
        domid,
        (page >> 12) as u32,
        readonly,
    );
    Ok(r)
}
