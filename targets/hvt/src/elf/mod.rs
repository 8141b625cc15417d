//! The image loader's front door: an ELF file is validated once, here, into
//! an [`Image`] the rest of the monitor can trust.
//!
//! [`Image::parse`] checks the ELF header and program headers: a 64-bit,
//! little-endian, static (`ET_EXEC`) x86_64 image with no interpreter; every
//! `PT_LOAD` segment has its file bytes inside the file, is loaded where it
//! is linked to run (`p_paddr == p_vaddr`: the guest's memory is
//! identity-mapped), does not wrap the address space, does not touch the null
//! page, is not both writable and executable, and overlaps no other; the
//! entry point lies in an executable segment. Once an `Image` exists, slicing
//! [`Image::bytes`] with a [`Segment::file_range`] cannot go out of bounds. [`Image::check_fits`]
//! adds the one check that needs the guest's memory size.
//!
//! Section headers are *not* needed to load an image: a stripped image loads.
//! When they are present and sound they give the symbol table, notes in
//! `SHT_NOTE` sections and DWARF line tables for [`Image::symbolize`]; when
//! they are broken the image still loads and simply has no symbols.
//!
//! A hostile image stays cheap: one of more than [`MAX_IMAGE_SIZE`] bytes
//! or [`MAX_PROGRAM_HEADERS`] program headers is refused before any work
//! that grows with them.
//!
//! "Segment N" in messages is the N-th program header, counted from 0, the way
//! `readelf -l` lists them.

use std::fmt;
use std::ops::Range;
use std::sync::{Mutex, OnceLock};

use addr2line::gimli;
use nym_hvt_abi::{Manifest, MANIFEST_VERSION, NOTE_MANIFEST, NOTE_NAME};

/// The page the guest never gets mapped, so null pointers fault.
const NULL_PAGE_END: u64 = 0x1000;

/// The largest image the monitor reads: far above any unikernel (nym's are
/// tens of kilobytes to a few megabytes), far below what would make reading
/// it the slow part of a boot.
pub const MAX_IMAGE_SIZE: u64 = 256 << 20;
/// The most program headers an image may have. A linker makes a handful;
/// the cap keeps the work per page at boot (each page's permissions come
/// from the segments) from growing with a crafted header count.
pub const MAX_PROGRAM_HEADERS: u16 = 1024;

const EHDR_SIZE: usize = 64;
const PHDR_SIZE: usize = 56;
const SHDR_SIZE: usize = 64;
const SYM_SIZE: usize = 24;

const MAGIC: &[u8; 4] = b"\x7fELF";
const ELFCLASS64: u8 = 2;
const ELFDATA2LSB: u8 = 1;
const EV_CURRENT: u32 = 1;
const ET_EXEC: u16 = 2;
const EM_X86_64: u16 = 62;

const PT_LOAD: u32 = 1;
const PT_INTERP: u32 = 3;
const PT_NOTE: u32 = 4;
const PF_X: u32 = 1;
const PF_W: u32 = 2;
const PF_R: u32 = 4;
const PN_XNUM: u16 = 0xffff;

const SHT_SYMTAB: u32 = 2;
const SHT_NOTE: u32 = 7;
const SHT_NOBITS: u32 = 8;
const SHF_EXECINSTR: u64 = 0x4;
const SHF_COMPRESSED: u64 = 0x800;
const SHN_UNDEF: u16 = 0;
const SHN_LORESERVE: u16 = 0xff00;
const SHN_XINDEX: u16 = 0xffff;

const STT_NOTYPE: u8 = 0;
const STT_FUNC: u8 = 2;

/// Xen's note name and its `XEN_ELFNOTE_PHYS32_ENTRY` type (the PVH entry).
const XEN_NOTE_NAME: &[u8] = b"Xen";
const XEN_ELFNOTE_PHYS32_ENTRY: u32 = 18;

const MANIFEST_SIZE: usize = std::mem::size_of::<Manifest>();

/// A fixed-layout record of the file (a header, a table entry): its fields
/// and their byte offsets written once, as one list, from which the struct
/// and its reader are made.
macro_rules! record {
    ($(#[$meta:meta])* $name:ident { $($field:ident: $ty:ty = $at:literal),* $(,)? }) => {
        $(#[$meta])*
        pub(super) struct $name {
            $(pub(super) $field: $ty,)*
        }

        impl $name {
            /// The record at the start of `b`; `None` if `b` is too short.
            pub(super) fn read(b: &[u8]) -> Option<$name> {
                Some($name {
                    $($field: Field::at(b, $at)?,)*
                })
            }
        }
    };
}

mod error;
mod headers;
mod notes;
mod sections;
mod symbols;
#[cfg(test)]
mod tests;

pub use error::{ElfError, Part};
use headers::{exec_segment, file_range, load_segment, program_headers, Header};
pub use headers::{Flags, Segment};
use notes::NoteArea;
use sections::Section;
pub use symbols::Symbol;
use symbols::{FuncSymbol, LineTables};

/// Reads the whole image file again, for what [`Image::parse_head`] left
/// out (symbols, sections, DWARF); `None` if it cannot.
pub type ReadRest = Box<dyn Fn() -> Option<Vec<u8>> + Send + Sync>;

/// A validated ELF image; see the module documentation for what is checked.
pub struct Image {
    /// The file, or its head: every byte booting needs (see [`boot_len`]).
    bytes: Vec<u8>,
    /// The file's length.
    len: usize,
    /// Reads the whole file when `bytes` is only its head.
    rest: Option<ReadRest>,
    /// The whole file, once read by `rest`.
    whole: OnceLock<Vec<u8>>,
    entry: u64,
    /// `PT_LOAD` segments, sorted by `paddr`, non-empty.
    segments: Vec<Segment>,
    /// `PT_NOTE` segments, inside `bytes`.
    notes: Vec<NoteArea>,
    /// The ELF header's section table fields, for reading `sections`.
    header: Header,
    /// The section headers, or none if the table is missing or broken;
    /// read on first use (booting needs none).
    sections: OnceLock<Vec<Section>>,
    /// Function symbols sorted by address, read on first use.
    symbols: OnceLock<Vec<FuncSymbol>>,
    /// The DWARF line tables, read on first use; `None` if there are none.
    /// The mutex is there because `addr2line` fills its caches through `&`.
    lines: OnceLock<Option<Mutex<LineTables>>>,
}

impl fmt::Debug for Image {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Image")
            .field("len", &self.len)
            .field("entry", &format_args!("{:#x}", self.entry))
            .field("segments", &self.segments)
            .finish_non_exhaustive()
    }
}

impl Image {
    /// Validates the ELF header and program headers of the whole file
    /// `bytes` and keeps them.
    pub fn parse(bytes: Vec<u8>) -> Result<Image, ElfError> {
        let len = bytes.len();
        Image::parse_head(bytes, len, None)
    }

    /// As [`Image::parse`], from the head of a file of `len` bytes: its
    /// first [`boot_len`] bytes at least, all that booting reads. The rest
    /// (symbols, sections, DWARF: most of an unstripped image, which took
    /// 0.4 ms of a 7 ms boot to read) is read by `rest` on first use. A
    /// file whose length or head has changed by then is not used: the
    /// image then has no symbols.
    pub fn parse_head(
        bytes: Vec<u8>,
        len: usize,
        rest: Option<ReadRest>,
    ) -> Result<Image, ElfError> {
        if len as u64 > MAX_IMAGE_SIZE {
            return Err(ElfError::TooLarge(len as u64));
        }
        let header = Header::parse(&bytes)?;

        let mut loads = Vec::new();
        let mut notes = Vec::new();
        for (index, ph) in program_headers(&bytes, &header, len)?
            .into_iter()
            .enumerate()
        {
            match ph.ty {
                PT_LOAD => {
                    if let Some(segment) = load_segment(index, &ph, len)? {
                        loads.push((index, segment));
                    }
                }
                PT_NOTE => notes.push(NoteArea {
                    range: file_range(Part::Segment(index), ph.offset, ph.file_size, len)?,
                    align: ph.align,
                }),
                PT_INTERP => return Err(ElfError::Interpreter(index)),
                _ => {}
            }
        }
        if loads.is_empty() {
            return Err(ElfError::NoLoadableSegments);
        }

        loads.sort_by_key(|(_, segment)| segment.paddr);
        for pair in loads.windows(2) {
            if let [(other, below), (index, above)] = pair {
                if above.paddr < below.end() {
                    return Err(ElfError::Overlap {
                        index: *index,
                        other: *other,
                        at: above.paddr,
                    });
                }
            }
        }
        let segments: Vec<Segment> = loads.into_iter().map(|(_, segment)| segment).collect();

        if exec_segment(&segments, header.entry).is_none() {
            return Err(ElfError::EntryNotExecutable(header.entry));
        }

        let head = segments
            .iter()
            .map(|s| s.file_range.end)
            .chain(notes.iter().map(|n| n.range.end))
            .max()
            .unwrap_or(0);
        if head > bytes.len() {
            // The caller read less than `boot_len` said.
            return Err(ElfError::Truncated {
                part: Part::Header,
                end: head as u64,
                len: bytes.len(),
            });
        }
        Ok(Image {
            rest: rest.filter(|_| bytes.len() < len),
            bytes,
            len,
            whole: OnceLock::new(),
            entry: header.entry,
            segments,
            notes,
            header,
            sections: OnceLock::new(),
            symbols: OnceLock::new(),
            lines: OnceLock::new(),
        })
    }

    /// The whole file, read on first use if only its head was given (the
    /// head alone if it cannot be read, or has changed).
    fn file(&self) -> &[u8] {
        let Some(read) = &self.rest else {
            return &self.bytes;
        };
        self.whole.get_or_init(|| {
            read()
                .filter(|w| w.len() == self.len && w.starts_with(&self.bytes))
                .unwrap_or_else(|| self.bytes.clone())
        })
    }

    /// The section headers (read on first use).
    fn sections(&self) -> &[Section] {
        self.sections
            .get_or_init(|| Section::parse_table(self.file(), &self.header).unwrap_or_default())
    }

    /// The entry point (`e_entry`), inside an executable segment.
    pub fn entry(&self) -> u64 {
        self.entry
    }

    /// The `PT_LOAD` segments, sorted by `paddr`, never empty, never
    /// overlapping.
    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    /// The whole file (read now if only its head was).
    pub fn bytes(&self) -> &[u8] {
        self.file()
    }

    /// The executable segment that holds `addr`, if one does.
    pub fn exec_segment(&self, addr: u64) -> Option<&Segment> {
        exec_segment(&self.segments, addr)
    }

    /// The file bytes of `segment` (one of [`Image::segments`]).
    pub fn segment_data(&self, segment: &Segment) -> &[u8] {
        self.bytes.get(segment.file_range.clone()).unwrap_or(&[])
    }

    /// Checks that every segment lies in `[reserved_below, mem_size)` of guest
    /// memory.
    pub fn check_fits(&self, mem_size: u64, reserved_below: u64) -> Result<(), ElfError> {
        for segment in &self.segments {
            if segment.paddr < reserved_below {
                return Err(ElfError::BelowReserved {
                    paddr: segment.paddr,
                    reserved: reserved_below,
                });
            }
            if segment.end() > mem_size {
                return Err(ElfError::PastMemory {
                    paddr: segment.paddr,
                    end: segment.end(),
                    mem_size,
                });
            }
        }
        Ok(())
    }

    /// One past the highest guest-physical byte of the image: the heap goes
    /// above it.
    pub fn end(&self) -> u64 {
        self.segments.iter().map(Segment::end).max().unwrap_or(0)
    }
}

/// How many of a file's first bytes booting it needs, judged from its
/// `head` (of a file of `len` bytes): the headers and every `PT_LOAD` and
/// `PT_NOTE` segment's bytes. More than `head.len()` when the head is
/// short of them: read that much and ask again (the program headers may
/// themselves lie past the head). Never more than `len`; a broken file is
/// left for [`Image::parse_head`] to name.
pub fn boot_len(head: &[u8], len: usize) -> usize {
    let Ok(header) = Header::parse(head) else {
        return head.len();
    };
    let table = u64::from(header.phentsize) * u64::from(header.phnum);
    let table_end = header.phoff.saturating_add(table);
    let clamp = |end: u64| usize::try_from(end).map_or(len, |e| e.min(len));
    if clamp(table_end) > head.len() {
        return clamp(table_end);
    }
    let Ok(headers) = program_headers(head, &header, len) else {
        return head.len();
    };
    headers
        .iter()
        .filter(|ph| matches!(ph.ty, PT_LOAD | PT_NOTE) && ph.file_size > 0)
        .map(|ph| clamp(ph.offset.saturating_add(ph.file_size)))
        .fold(clamp(table_end).max(head.len().min(len)), usize::max)
}

/// The range of `bytes` holding the NUL-terminated string at `offset` in the
/// string table `table`, without the NUL.
fn cstr_range(bytes: &[u8], table: Range<usize>, offset: u32) -> Option<Range<usize>> {
    let start = table.start.checked_add(usize::try_from(offset).ok()?)?;
    let rest = bytes.get(start..table.end)?;
    let len = rest.iter().position(|&b| b == 0)?;
    Some(start..start + len)
}

fn array<const N: usize>(b: &[u8], at: usize) -> Option<[u8; N]> {
    b.get(at..at.checked_add(N)?)?.try_into().ok()
}

/// A little-endian integer at a byte offset of a record.
trait Field: Sized {
    fn at(b: &[u8], at: usize) -> Option<Self>;
}

macro_rules! le_fields {
    ($($t:ty),*) => {$(
        impl Field for $t {
            fn at(b: &[u8], at: usize) -> Option<$t> {
                array(b, at).map(<$t>::from_le_bytes)
            }
        }
    )*};
}

le_fields!(u8, u16, u32, u64);
