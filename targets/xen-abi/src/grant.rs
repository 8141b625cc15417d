//! Grant tables, version 1: the guest lets one other domain map or copy
//! one of its pages by writing an entry (`struct grant_entry_v1`) and
//! handing over its index, the *grant reference*.
use crate::{DomId, Mem};
use alloc::vec::Vec;

/// The size of an entry.
pub const ENTRY: usize = 8;
/// Entries per grant table frame.
pub const PER_FRAME: u32 = (crate::PAGE / ENTRY) as u32;
/// References the toolstack keeps (the console's and xenstore's pages):
/// the guest's own start here.
pub const FIRST_FREE: u32 = 8;

/// The other domain may use the page.
pub const GTF_PERMIT_ACCESS: u16 = 1;
/// ... only to read it.
pub const GTF_READONLY: u16 = 1 << 2;
/// Set by Xen while the page is mapped for reading.
pub const GTF_READING: u16 = 1 << 3;
/// Set by Xen while the page is mapped for writing.
pub const GTF_WRITING: u16 = 1 << 4;

/// Why a page could not be granted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GrantError {
    /// Every reference of the table is in use.
    Full {
        /// How many the table has.
        entries: u32,
    },
}

impl GrantError {
    /// What went wrong, for a device's error message.
    pub fn message(self) -> &'static str {
        match self {
            GrantError::Full { .. } => "the grant table is full",
        }
    }
}

/// Hands out grant references `FIRST_FREE..entries`, each once until it
/// is given back.
pub struct Refs {
    next: u32,
    entries: u32,
    free: Vec<u32>,
}

impl Refs {
    /// References of a table of `frames` frames.
    pub fn new(frames: u32) -> Refs {
        Refs {
            next: FIRST_FREE,
            entries: frames.saturating_mul(PER_FRAME),
            free: Vec::new(),
        }
    }

    /// A reference nobody holds.
    pub fn take(&mut self) -> Result<u32, GrantError> {
        if let Some(r) = self.free.pop() {
            return Ok(r);
        }
        if self.next >= self.entries {
            return Err(GrantError::Full {
                entries: self.entries,
            });
        }
        self.next += 1;
        Ok(self.next - 1)
    }

    /// Gives `r` back (its entry already ended).
    pub fn give_back(&mut self, r: u32) {
        if (FIRST_FREE..self.next).contains(&r) && !self.free.contains(&r) {
            self.free.push(r);
        }
    }
}

/// Writes entry `r` of the table `table` (one frame of it, `r` taken
/// modulo [`PER_FRAME`]): `domid` may use guest frame `frame`, read-only
/// if `readonly`. The flags are written last, after a barrier, so the
/// other domain never sees a permitted entry with a stale frame.
pub fn permit(table: &impl Mem, r: u32, domid: DomId, frame: u32, readonly: bool) {
    let off = (r % PER_FRAME) as usize * ENTRY;
    table.write::<u16>(off + 2, domid);
    table.write::<u32>(off + 4, frame);
    table.fence();
    let flags = GTF_PERMIT_ACCESS | if readonly { GTF_READONLY } else { 0 };
    table.write::<u16>(off, flags);
    table.fence();
}

/// Whether the other domain has entry `r` mapped right now.
pub fn in_use(table: &impl Mem, r: u32) -> bool {
    let off = (r % PER_FRAME) as usize * ENTRY;
    table.read::<u16>(off) & (GTF_READING | GTF_WRITING) != 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mem::TestPage;

    #[test]
    fn a_full_table_says_so_and_never_reuses_a_held_reference() {
        let mut refs = Refs::new(1);
        let got: Vec<u32> = (0..PER_FRAME - FIRST_FREE)
            .map(|_| refs.take().unwrap())
            .collect();
        assert_eq!(got.first(), Some(&FIRST_FREE));
        assert_eq!(got.last(), Some(&(PER_FRAME - 1)));
        assert_eq!(refs.take(), Err(GrantError::Full { entries: 512 }));
        refs.give_back(100);
        refs.give_back(100);
        assert_eq!(refs.take(), Ok(100));
        assert!(refs.take().is_err(), "given back twice, handed out once");
    }

    #[test]
    fn references_never_handed_out_are_not_taken_back() {
        let mut refs = Refs::new(1);
        refs.give_back(3);
        refs.give_back(4000);
        assert_eq!(refs.take(), Ok(FIRST_FREE));
    }

    #[test]
    fn an_entry_is_permitted_last() {
        let t = TestPage::new();
        permit(&t, 9, 0, 0x1234, true);
        assert_eq!(t.read::<u16>(72), GTF_PERMIT_ACCESS | GTF_READONLY);
        assert_eq!(t.read::<u16>(74), 0);
        assert_eq!(t.read::<u32>(76), 0x1234);
        assert!(!in_use(&t, 9));
        t.write::<u16>(72, GTF_PERMIT_ACCESS | GTF_WRITING);
        assert!(in_use(&t, 9));
    }
}
