//! The section header table, read when present and sound (a stripped or
//! broken table loads as none).
use super::*;
use std::ops::Range;

/// A section header, with its name and its bytes when it has any in the file.
#[derive(Debug)]
pub(super) struct Section {
    pub(super) name: Vec<u8>,
    pub(super) ty: u32,
    pub(super) flags: u64,
    /// `None` for `SHT_NOBITS` or a range outside the file.
    pub(super) data: Option<Range<usize>>,
    pub(super) link: u32,
    pub(super) align: u64,
    pub(super) entry_size: u64,
}

record! {
    /// A section header as it is in the file.
    RawSection {
        name: u32 = 0, ty: u32 = 4, flags: u64 = 8, offset: u64 = 24, size: u64 = 32,
        link: u32 = 40, align: u64 = 48, entry_size: u64 = 56,
    }
}

impl RawSection {
    pub(super) fn data(&self, len: usize) -> Option<Range<usize>> {
        if self.ty == SHT_NOBITS {
            return None;
        }
        let start = usize::try_from(self.offset).ok()?;
        let end = start.checked_add(usize::try_from(self.size).ok()?)?;
        (end <= len).then_some(start..end)
    }
}

impl Section {
    /// The section header table, or `None` if there is none or it is broken.
    /// A single section whose bytes lie outside the file keeps `data: None`.
    pub(super) fn parse_table(bytes: &[u8], header: &Header) -> Option<Vec<Section>> {
        if header.shoff == 0 {
            return None;
        }
        let entry = usize::from(header.shentsize);
        if entry < SHDR_SIZE {
            return None;
        }
        let start = usize::try_from(header.shoff).ok()?;
        let first = RawSection::read(bytes.get(start..start.checked_add(entry)?)?)?;
        // Extended numbering: past 0xff00 sections the count and the names'
        // index live in section 0.
        let count = match header.shnum {
            0 => usize::try_from(first.size).ok()?,
            n => usize::from(n),
        };
        let names_index = match header.shstrndx {
            SHN_XINDEX => usize::try_from(first.link).ok()?,
            n => usize::from(n),
        };
        let table = bytes.get(start..start.checked_add(entry.checked_mul(count)?)?)?;
        let raw: Vec<RawSection> = table
            .chunks_exact(entry)
            .map(RawSection::read)
            .collect::<Option<_>>()?;
        let names = raw.get(names_index).and_then(|s| s.data(bytes.len()));
        Some(
            raw.iter()
                .map(|s| Section {
                    name: names
                        .clone()
                        .and_then(|names| cstr_range(bytes, names, s.name))
                        .and_then(|name| bytes.get(name))
                        .unwrap_or_default()
                        .to_vec(),
                    ty: s.ty,
                    flags: s.flags,
                    data: s.data(bytes.len()),
                    link: s.link,
                    align: s.align,
                    entry_size: s.entry_size,
                })
                .collect(),
        )
    }
}
