//! The ELF header and the program headers, validated into [`Segment`]s.
use super::*;
use std::fmt;
use std::ops::Range;

/// A segment's permissions, from `p_flags`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Flags {
    /// `PF_R`.
    pub read: bool,
    /// `PF_W`.
    pub write: bool,
    /// `PF_X`.
    pub exec: bool,
}

impl Flags {
    pub(super) fn from_bits(bits: u32) -> Flags {
        Flags {
            read: bits & PF_R != 0,
            write: bits & PF_W != 0,
            exec: bits & PF_X != 0,
        }
    }
}

/// `rwx`, `r-x`, …, as `readelf` and `/proc/*/maps` show them.
impl fmt::Display for Flags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bit = |on, c| if on { c } else { '-' };
        write!(
            f,
            "{}{}{}",
            bit(self.read, 'r'),
            bit(self.write, 'w'),
            bit(self.exec, 'x')
        )
    }
}

/// A `PT_LOAD` segment: copy `file_range` of the file to `paddr`, zero the
/// rest up to `mem_size`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// Where it goes in guest-physical memory.
    pub paddr: u64,
    /// Where the image was linked to run it; always equal to `paddr`.
    pub vaddr: u64,
    /// Its size in memory (at least `file_range.len()`, never 0).
    pub mem_size: u64,
    /// Its bytes in the file; always inside [`Image::bytes`] (empty when the
    /// segment is all zeroes).
    pub file_range: Range<usize>,
    /// Its permissions.
    pub flags: Flags,
}

impl Segment {
    /// One past its last guest-physical byte (cannot overflow: checked by
    /// [`Image::parse`]).
    pub(super) fn end(&self) -> u64 {
        self.paddr.saturating_add(self.mem_size)
    }

    pub(super) fn contains_vaddr(&self, addr: u64) -> bool {
        self.vaddr <= addr && addr - self.vaddr < self.mem_size
    }
}

/// The executable segment of `segments` that holds `addr`, if one does.
pub(super) fn exec_segment(segments: &[Segment], addr: u64) -> Option<&Segment> {
    segments
        .iter()
        .find(|s| s.flags.exec && s.contains_vaddr(addr))
}

impl Header {
    pub(super) fn parse(bytes: &[u8]) -> Result<Header, ElfError> {
        if bytes.is_empty() {
            return Err(ElfError::Empty);
        }
        if !MAGIC.starts_with(bytes.get(..MAGIC.len()).unwrap_or(bytes)) {
            return Err(ElfError::BadMagic);
        }
        // Judge class and byte order on what there is, so a truncated 32-bit
        // or big-endian file is named for what it is.
        if bytes.get(4).is_some_and(|&class| class != ELFCLASS64) {
            return Err(ElfError::NotElf64);
        }
        if bytes.get(5).is_some_and(|&data| data != ELFDATA2LSB) {
            return Err(ElfError::NotLittleEndian);
        }
        let truncated = ElfError::Truncated {
            part: Part::Header,
            end: EHDR_SIZE as u64,
            len: bytes.len(),
        };
        let Some(raw) = Header::read(bytes) else {
            return Err(truncated);
        };
        for version in [u32::from(raw.ident_version), raw.version] {
            if version != EV_CURRENT {
                return Err(ElfError::BadVersion(version));
            }
        }
        if raw.machine != EM_X86_64 {
            return Err(ElfError::WrongMachine(raw.machine));
        }
        if raw.ty != ET_EXEC {
            return Err(ElfError::NotExecutable(raw.ty));
        }
        if usize::from(raw.phentsize) < PHDR_SIZE {
            return Err(ElfError::BadProgramHeaderSize(raw.phentsize));
        }
        if raw.phnum == PN_XNUM {
            return Err(ElfError::TooManyProgramHeaders);
        }
        if raw.phnum > MAX_PROGRAM_HEADERS {
            return Err(ElfError::ProgramHeaderCount(raw.phnum));
        }
        Ok(raw)
    }
}

record! {
    /// The ELF header as it is in the file ([`Header::parse`] checks it).
    Header {
        ident_version: u8 = 6, ty: u16 = 16, machine: u16 = 18, version: u32 = 20,
        entry: u64 = 24, phoff: u64 = 32, shoff: u64 = 40,
        phentsize: u16 = 54, phnum: u16 = 56, shentsize: u16 = 58, shnum: u16 = 60, shstrndx: u16 = 62,
    }
}

record! {
    /// A program header as it is in the file.
    ProgramHeader {
        ty: u32 = 0, flags: u32 = 4, offset: u64 = 8, vaddr: u64 = 16, paddr: u64 = 24,
        file_size: u64 = 32, mem_size: u64 = 40, align: u64 = 48,
    }
}

/// The program headers, from `bytes`, the head of a file of `len` bytes
/// (see [`boot_len`]).
pub(super) fn program_headers(
    bytes: &[u8],
    header: &Header,
    len: usize,
) -> Result<Vec<ProgramHeader>, ElfError> {
    let entry = u64::from(header.phentsize);
    let size = entry * u64::from(header.phnum); // u16 * u16: cannot overflow
    let table = file_range(Part::ProgramHeaders, header.phoff, size, len)?;
    let truncated = || ElfError::Truncated {
        part: Part::ProgramHeaders,
        end: header.phoff.saturating_add(size),
        len,
    };
    bytes
        .get(table)
        .ok_or_else(truncated)?
        .chunks_exact(usize::from(header.phentsize))
        .map(|entry| ProgramHeader::read(entry).ok_or_else(truncated))
        .collect()
}

/// Checks a `PT_LOAD` header; `None` for one with no memory.
pub(super) fn load_segment(
    index: usize,
    ph: &ProgramHeader,
    len: usize,
) -> Result<Option<Segment>, ElfError> {
    if ph.mem_size == 0 {
        return Ok(None);
    }
    let flags = Flags::from_bits(ph.flags);
    if flags.write && flags.exec {
        return Err(ElfError::WriteExec(index));
    }
    if ph.file_size > ph.mem_size {
        return Err(ElfError::FileLargerThanMemory {
            index,
            file_size: ph.file_size,
            mem_size: ph.mem_size,
        });
    }
    let file_range = file_range(Part::Segment(index), ph.offset, ph.file_size, len)?;
    if ph.vaddr != ph.paddr {
        return Err(ElfError::NotIdentity {
            index,
            vaddr: ph.vaddr,
            paddr: ph.paddr,
        });
    }
    let addr = ph.paddr;
    if addr.checked_add(ph.mem_size).is_none() {
        return Err(ElfError::AddressOverflow {
            index,
            addr,
            size: ph.mem_size,
        });
    }
    if addr < NULL_PAGE_END {
        return Err(ElfError::NullPage { index, addr });
    }
    Ok(Some(Segment {
        paddr: ph.paddr,
        vaddr: ph.vaddr,
        mem_size: ph.mem_size,
        file_range,
        flags,
    }))
}

/// `offset..offset + size` as a range of a file of `len` bytes; an empty
/// range is `0..0` wherever it claims to be.
pub(super) fn file_range(
    part: Part,
    offset: u64,
    size: u64,
    len: usize,
) -> Result<Range<usize>, ElfError> {
    if size == 0 {
        return Ok(0..0);
    }
    let end = offset
        .checked_add(size)
        .ok_or(ElfError::RangeOverflow { part, offset, size })?;
    let truncated = ElfError::Truncated { part, end, len };
    match (usize::try_from(offset), usize::try_from(end)) {
        (Ok(start), Ok(end)) if end <= len => Ok(start..end),
        _ => Err(truncated),
    }
}
