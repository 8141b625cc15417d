//! The image loader's front door: an ELF file is validated once, here, into
//! an [`Image`] the rest of the monitor can trust.
//!
//! [`Image::parse`] checks the ELF header and program headers: a 64-bit,
//! little-endian, static (`ET_EXEC`) x86_64 image with no interpreter; every
//! `PT_LOAD` segment has its file bytes inside the file, does not wrap the
//! address space, does not touch the null page, is not both writable and
//! executable, and overlaps no other; the entry point lies in an executable
//! segment. Once an `Image` exists, slicing [`Image::bytes`] with a
//! [`Segment::file_range`] cannot go out of bounds. [`Image::check_fits`]
//! adds the one check that needs the guest's memory size.
//!
//! Section headers are *not* needed to load an image: a stripped image loads.
//! When they are present and sound they give the symbol table, notes in
//! `SHT_NOTE` sections and DWARF line tables for [`Image::symbolize`]; when
//! they are broken the image still loads and simply has no symbols.
//!
//! "Segment N" in messages is the N-th program header, counted from 0, the way
//! `readelf -l` lists them.

use std::fmt;
use std::ops::Range;
use std::sync::{Arc, Mutex, OnceLock};

use addr2line::gimli;
use nym_hvt_abi::{Manifest, MANIFEST_VERSION, NOTE_MANIFEST, NOTE_NAME};

/// The page the guest never gets mapped, so null pointers fault.
const NULL_PAGE_END: u64 = 0x1000;

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

/// Why an image was refused.
#[derive(Debug, thiserror::Error)]
pub enum ElfError {
    /// The file has no bytes at all.
    #[error("empty file")]
    Empty,
    /// The first four bytes are not `\x7fELF`.
    #[error("not an ELF file (bad magic)")]
    BadMagic,
    /// Something the headers name lies past the end of the file.
    #[error("truncated: {part} ends at byte {end} but the file has {len} bytes")]
    Truncated {
        /// What was cut off.
        part: Part,
        /// Where it should end.
        end: u64,
        /// The file's length.
        len: usize,
    },
    /// An offset plus a size does not fit in 64 bits.
    #[error("{part} is out of range: offset {offset:#x} + size {size:#x} overflows")]
    RangeOverflow {
        /// What the range is of.
        part: Part,
        /// Its file offset.
        offset: u64,
        /// Its size.
        size: u64,
    },
    /// `EI_CLASS` is not `ELFCLASS64`.
    #[error("not a 64-bit ELF")]
    NotElf64,
    /// `EI_DATA` is not `ELFDATA2LSB`.
    #[error("not little-endian")]
    NotLittleEndian,
    /// `EI_VERSION` or `e_version` is not 1.
    #[error("unsupported ELF version {0} (expected 1)")]
    BadVersion(u32),
    /// `e_machine` is not `EM_X86_64`.
    #[error("built for machine {}, not x86_64", Machine(*.0))]
    WrongMachine(u16),
    /// `e_type` is not `ET_EXEC`.
    #[error("not an executable ({}); build a static, non-PIE image", FileType(*.0))]
    NotExecutable(u16),
    /// `e_phentsize` is too small to hold a program header.
    #[error("program header entries are {0} bytes, expected at least 56")]
    BadProgramHeaderSize(u16),
    /// `e_phnum` is `PN_XNUM`: the count lives in section 0, which no static
    /// image needs.
    #[error("too many program headers (extended numbering is not supported)")]
    TooManyProgramHeaders,
    /// A `PT_INTERP` segment: the image wants a dynamic loader.
    #[error("segment {0} names a dynamic loader (PT_INTERP); build a static image")]
    Interpreter(usize),
    /// A segment is both writable and executable.
    #[error("segment {0} is both writable and executable (W^X)")]
    WriteExec(usize),
    /// A segment has more bytes in the file than in memory.
    #[error("segment {index} has {file_size:#x} bytes in the file but only {mem_size:#x} in memory")]
    FileLargerThanMemory {
        /// The program header's index.
        index: usize,
        /// `p_filesz`.
        file_size: u64,
        /// `p_memsz`.
        mem_size: u64,
    },
    /// A segment's address plus its size does not fit in 64 bits.
    #[error("segment {index} at {addr:#x} with size {size:#x} wraps around the address space")]
    AddressOverflow {
        /// The program header's index.
        index: usize,
        /// Its address.
        addr: u64,
        /// `p_memsz`.
        size: u64,
    },
    /// A segment reaches into the first page, which stays unmapped.
    #[error("segment {index} at {addr:#x} maps the null page")]
    NullPage {
        /// The program header's index.
        index: usize,
        /// Its address.
        addr: u64,
    },
    /// Two segments share memory.
    #[error("segment {index} overlaps segment {other} at {at:#x}")]
    Overlap {
        /// The program header's index of the higher segment.
        index: usize,
        /// The program header's index of the one it overlaps.
        other: usize,
        /// Where the overlap starts.
        at: u64,
    },
    /// No `PT_LOAD` segment with any memory.
    #[error("no loadable segments")]
    NoLoadableSegments,
    /// `e_entry` is not inside an executable segment.
    #[error("entry point {0:#x} is not in an executable segment")]
    EntryNotExecutable(u64),
    /// A segment ends past the guest's memory ([`Image::check_fits`]).
    #[error("segment {paddr:#x} ends at {end:#x}, past guest memory ({})", ByteSize(*.mem_size))]
    PastMemory {
        /// The segment's physical address.
        paddr: u64,
        /// Its end.
        end: u64,
        /// The guest's memory size.
        mem_size: u64,
    },
    /// A segment starts in memory the monitor keeps for itself
    /// ([`Image::check_fits`]).
    #[error("segment {paddr:#x} starts below {reserved:#x}, in memory the monitor reserves")]
    BelowReserved {
        /// The segment's physical address.
        paddr: u64,
        /// The first address the image may use.
        reserved: u64,
    },
    /// The manifest note's descriptor is not one [`Manifest`].
    #[error("the nym manifest note is {0} bytes, expected {MANIFEST_SIZE}")]
    ManifestSize(usize),
    /// The manifest is a version this monitor does not read.
    #[error("the nym manifest is version {0}; this monitor reads version {MANIFEST_VERSION}")]
    ManifestVersion(u32),
}

/// A part of the file, for [`ElfError`] messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// The 64-byte ELF header.
    Header,
    /// The program header table.
    ProgramHeaders,
    /// The file bytes of the program header with this index.
    Segment(usize),
}

impl fmt::Display for Part {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Part::Header => f.write_str("the ELF header"),
            Part::ProgramHeaders => f.write_str("the program header table"),
            Part::Segment(index) => write!(f, "segment {index}'s data"),
        }
    }
}

/// `e_machine`, with its name when it is a common one.
struct Machine(u16);

impl fmt::Display for Machine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self.0 {
            2 => "SPARC",
            3 => "x86",
            8 => "MIPS",
            20 => "PowerPC",
            21 => "PowerPC64",
            22 => "S/390",
            40 => "ARM",
            43 => "SPARC V9",
            50 => "IA-64",
            62 => "x86_64",
            183 => "AArch64",
            243 => "RISC-V",
            247 => "BPF",
            258 => "LoongArch",
            _ => return write!(f, "{}", self.0),
        };
        write!(f, "{} ({name})", self.0)
    }
}

/// `e_type`, with what it means.
struct FileType(u16);

impl fmt::Display for FileType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.0 {
            0 => "no file type",
            1 => "a relocatable object",
            3 => "a shared object or PIE",
            4 => "a core dump",
            _ => return write!(f, "type {}", self.0),
        };
        write!(f, "type {}, {what}", self.0)
    }
}

/// A byte count, in the largest binary unit that divides it.
struct ByteSize(u64);

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [(u64, &str); 3] = [(1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")];
        for (unit, name) in UNITS {
            if self.0 != 0 && self.0 % unit == 0 {
                return write!(f, "{} {name}", self.0 / unit);
            }
        }
        write!(f, "{} bytes", self.0)
    }
}

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
    fn from_bits(bits: u32) -> Flags {
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
    /// Where the image was linked to run it.
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
    fn end(&self) -> u64 {
        self.paddr.saturating_add(self.mem_size)
    }

    fn contains_vaddr(&self, addr: u64) -> bool {
        self.vaddr <= addr && addr - self.vaddr < self.mem_size
    }
}

/// A function an address falls in, from [`Image::symbolize`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Symbol {
    /// Its demangled name, without the hash (`hello::start`).
    pub name: String,
    /// How far into it the address is.
    pub offset: u64,
    /// The source file and line of the address, from DWARF, when the image
    /// has line tables.
    pub location: Option<(String, u32)>,
}

/// A validated ELF image; see the module documentation for what is checked.
pub struct Image {
    bytes: Vec<u8>,
    entry: u64,
    /// `PT_LOAD` segments, sorted by `paddr`, non-empty.
    segments: Vec<Segment>,
    /// `PT_NOTE` segments, inside `bytes`.
    notes: Vec<NoteArea>,
    /// The section headers, or none if the table is missing or broken.
    sections: Vec<Section>,
    /// Function symbols sorted by address, read on first use.
    symbols: OnceLock<Vec<FuncSymbol>>,
    /// The DWARF line tables, read on first use; `None` if there are none.
    /// The mutex is there because `addr2line` fills its caches through `&`.
    lines: OnceLock<Option<Mutex<LineTables>>>,
}

type DwarfReader = gimli::EndianArcSlice<gimli::LittleEndian>;
type LineTables = addr2line::Context<DwarfReader>;

impl fmt::Debug for Image {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Image")
            .field("len", &self.bytes.len())
            .field("entry", &format_args!("{:#x}", self.entry))
            .field("segments", &self.segments)
            .field("sections", &self.sections.len())
            .finish_non_exhaustive()
    }
}

impl Image {
    /// Validates the ELF header and program headers of `bytes` and keeps them.
    pub fn parse(bytes: Vec<u8>) -> Result<Image, ElfError> {
        let header = Header::parse(&bytes)?;
        let len = bytes.len();

        let mut loads = Vec::new();
        let mut notes = Vec::new();
        for (index, ph) in program_headers(&bytes, &header)?.into_iter().enumerate() {
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

        if !segments
            .iter()
            .any(|s| s.flags.exec && s.contains_vaddr(header.entry))
        {
            return Err(ElfError::EntryNotExecutable(header.entry));
        }

        let sections = Section::parse_table(&bytes, &header).unwrap_or_default();
        Ok(Image {
            bytes,
            entry: header.entry,
            segments,
            notes,
            sections,
            symbols: OnceLock::new(),
            lines: OnceLock::new(),
        })
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

    /// The whole file.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
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

    /// The descriptor of the first note named `name` (without its NUL) of type
    /// `ty`, from the `PT_NOTE` segments, then from `SHT_NOTE` sections.
    pub fn note(&self, name: &[u8], ty: u32) -> Option<&[u8]> {
        let in_segments = self
            .notes
            .iter()
            .map(|area| (area.range.clone(), area.align));
        let in_sections = self
            .sections
            .iter()
            .filter(|s| s.ty == SHT_NOTE)
            .filter_map(|s| Some((s.data.clone()?, s.align)));
        in_segments
            .chain(in_sections)
            .filter_map(|(range, align)| Notes::new(self.bytes.get(range)?, align))
            .flatten()
            .find(|note| note.name == name && note.ty == ty)
            .map(|note| note.desc)
    }

    /// The image's [`Manifest`], if it has one; a manifest of the wrong size
    /// or version is an error, not a missing one.
    pub fn manifest(&self) -> Result<Option<Manifest>, ElfError> {
        let Some(desc) = self.note(NOTE_NAME, NOTE_MANIFEST) else {
            return Ok(None);
        };
        let wrong_size = ElfError::ManifestSize(desc.len());
        if desc.len() != MANIFEST_SIZE {
            return Err(wrong_size);
        }
        let (Some(version), Some(devices)) = (u32_at(desc, 0), u32_at(desc, 4)) else {
            return Err(wrong_size);
        };
        if version != MANIFEST_VERSION {
            return Err(ElfError::ManifestVersion(version));
        }
        Ok(Some(Manifest { version, devices }))
    }

    /// The 32-bit PVH entry point from Xen's `XEN_ELFNOTE_PHYS32_ENTRY`
    /// note (a 4- or 8-byte descriptor), if there is one.
    pub fn pvh_entry(&self) -> Option<u32> {
        let desc = self.note(XEN_NOTE_NAME, XEN_ELFNOTE_PHYS32_ENTRY)?;
        match desc.len() {
            4 => u32_at(desc, 0),
            8 => u32::try_from(u64_at(desc, 0)?).ok(),
            _ => None,
        }
    }

    /// The function `addr` is in, from the symbol table, with the source
    /// line from DWARF when there is one. A symbol whose size covers `addr`
    /// wins; failing that, the nearest one below `addr` in the same
    /// executable segment.
    pub fn symbolize(&self, addr: u64) -> Option<Symbol> {
        let symbols = self.symbols.get_or_init(|| self.read_symbols());
        let below = symbols.get(..symbols.partition_point(|s| s.addr <= addr))?;
        let symbol = below
            .iter()
            .rev()
            .find(|s| addr - s.addr < s.size)
            .or_else(|| {
                let nearest = below.last()?;
                let segment = self
                    .segments
                    .iter()
                    .find(|s| s.flags.exec && s.contains_vaddr(addr))?;
                segment.contains_vaddr(nearest.addr).then_some(nearest)
            })?;
        let raw = self.bytes.get(symbol.name.clone())?;
        Some(Symbol {
            name: format!("{:#}", rustc_demangle::demangle(&String::from_utf8_lossy(raw))),
            offset: addr - symbol.addr,
            location: self.location(addr),
        })
    }

    /// `STT_FUNC` symbols, and `STT_NOTYPE` labels in executable sections
    /// (assembly stubs), sorted by address; empty if anything is off.
    fn read_symbols(&self) -> Vec<FuncSymbol> {
        let read = || -> Option<Vec<FuncSymbol>> {
            let symtab = self.sections.iter().find(|s| s.ty == SHT_SYMTAB)?;
            let strtab = self.sections.get(usize::try_from(symtab.link).ok()?)?;
            let strtab = strtab.data.clone()?;
            let entry_size = match usize::try_from(symtab.entry_size).ok()? {
                0 => SYM_SIZE,
                n if n < SYM_SIZE => return None,
                n => n,
            };
            let table = self.bytes.get(symtab.data.clone()?)?;
            let mut symbols: Vec<FuncSymbol> = table
                .chunks_exact(entry_size)
                .filter_map(|entry| {
                    let raw = RawSymbol::read(entry)?;
                    if !self.is_code_symbol(&raw) {
                        return None;
                    }
                    let name = cstr_range(&self.bytes, strtab.clone(), raw.name)?;
                    let text = self.bytes.get(name.clone())?;
                    let label = text.starts_with(b".L") || text.starts_with(b"$");
                    (!text.is_empty() && !label).then_some(FuncSymbol {
                        addr: raw.value,
                        size: raw.size,
                        name,
                    })
                })
                .collect();
            symbols.sort_by_key(|s| (s.addr, std::cmp::Reverse(s.size)));
            Some(symbols)
        };
        read().unwrap_or_default()
    }

    fn is_code_symbol(&self, sym: &RawSymbol) -> bool {
        match sym.info & 0xf {
            STT_FUNC => sym.section != SHN_UNDEF,
            STT_NOTYPE => {
                sym.section != SHN_UNDEF
                    && sym.section < SHN_LORESERVE
                    && self
                        .sections
                        .get(usize::from(sym.section))
                        .is_some_and(|s| s.flags & SHF_EXECINSTR != 0)
            }
            _ => false,
        }
    }

    /// The source file and line of `addr`, from the DWARF line tables.
    fn location(&self, addr: u64) -> Option<(String, u32)> {
        let tables = self.lines.get_or_init(|| self.read_line_tables()).as_ref()?;
        let tables = tables.lock().ok()?;
        let location = tables.find_location(addr).ok()??;
        Some((location.file?.to_owned(), location.line?))
    }

    fn read_line_tables(&self) -> Option<Mutex<LineTables>> {
        self.section_data(".debug_line")?;
        let dwarf = gimli::Dwarf::load(|id| -> Result<DwarfReader, gimli::Error> {
            let data = self.section_data(id.name()).unwrap_or(&[]);
            Ok(gimli::EndianArcSlice::new(
                Arc::from(data),
                gimli::LittleEndian,
            ))
        })
        .ok()?;
        addr2line::Context::from_dwarf(dwarf).ok().map(Mutex::new)
    }

    /// The bytes of the (uncompressed) section called `name`.
    fn section_data(&self, name: &str) -> Option<&[u8]> {
        let section = self
            .sections
            .iter()
            .find(|s| s.name == name.as_bytes() && s.flags & SHF_COMPRESSED == 0)?;
        self.bytes.get(section.data.clone()?)
    }
}

/// The fields of the ELF header the loader uses, identification checked.
struct Header {
    entry: u64,
    phoff: u64,
    phentsize: u16,
    phnum: u16,
    shoff: u64,
    shentsize: u16,
    shnum: u16,
    shstrndx: u16,
}

impl Header {
    fn parse(bytes: &[u8]) -> Result<Header, ElfError> {
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
        let Some(raw) = RawHeader::read(bytes) else {
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
        Ok(Header {
            entry: raw.entry,
            phoff: raw.phoff,
            phentsize: raw.phentsize,
            phnum: raw.phnum,
            shoff: raw.shoff,
            shentsize: raw.shentsize,
            shnum: raw.shnum,
            shstrndx: raw.shstrndx,
        })
    }
}

/// The ELF header as it is in the file.
struct RawHeader {
    ident_version: u8,
    ty: u16,
    machine: u16,
    version: u32,
    entry: u64,
    phoff: u64,
    shoff: u64,
    phentsize: u16,
    phnum: u16,
    shentsize: u16,
    shnum: u16,
    shstrndx: u16,
}

impl RawHeader {
    fn read(b: &[u8]) -> Option<RawHeader> {
        Some(RawHeader {
            ident_version: *b.get(6)?,
            ty: u16_at(b, 16)?,
            machine: u16_at(b, 18)?,
            version: u32_at(b, 20)?,
            entry: u64_at(b, 24)?,
            phoff: u64_at(b, 32)?,
            shoff: u64_at(b, 40)?,
            phentsize: u16_at(b, 54)?,
            phnum: u16_at(b, 56)?,
            shentsize: u16_at(b, 58)?,
            shnum: u16_at(b, 60)?,
            shstrndx: u16_at(b, 62)?,
        })
    }
}

/// A program header as it is in the file.
struct ProgramHeader {
    ty: u32,
    flags: u32,
    offset: u64,
    vaddr: u64,
    paddr: u64,
    file_size: u64,
    mem_size: u64,
    align: u64,
}

impl ProgramHeader {
    fn read(b: &[u8]) -> Option<ProgramHeader> {
        Some(ProgramHeader {
            ty: u32_at(b, 0)?,
            flags: u32_at(b, 4)?,
            offset: u64_at(b, 8)?,
            vaddr: u64_at(b, 16)?,
            paddr: u64_at(b, 24)?,
            file_size: u64_at(b, 32)?,
            mem_size: u64_at(b, 40)?,
            align: u64_at(b, 48)?,
        })
    }
}

fn program_headers(bytes: &[u8], header: &Header) -> Result<Vec<ProgramHeader>, ElfError> {
    let entry = u64::from(header.phentsize);
    let size = entry * u64::from(header.phnum); // u16 * u16: cannot overflow
    let table = file_range(Part::ProgramHeaders, header.phoff, size, bytes.len())?;
    let truncated = || ElfError::Truncated {
        part: Part::ProgramHeaders,
        end: header.phoff.saturating_add(size),
        len: bytes.len(),
    };
    bytes
        .get(table)
        .ok_or_else(truncated)?
        .chunks_exact(usize::from(header.phentsize))
        .map(|entry| ProgramHeader::read(entry).ok_or_else(truncated))
        .collect()
}

/// Checks a `PT_LOAD` header; `None` for one with no memory.
fn load_segment(index: usize, ph: &ProgramHeader, len: usize) -> Result<Option<Segment>, ElfError> {
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
    for addr in [ph.paddr, ph.vaddr] {
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
fn file_range(part: Part, offset: u64, size: u64, len: usize) -> Result<Range<usize>, ElfError> {
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

/// A section header, with its name and its bytes when it has any in the file.
#[derive(Debug)]
struct Section {
    name: Vec<u8>,
    ty: u32,
    flags: u64,
    /// `None` for `SHT_NOBITS` or a range outside the file.
    data: Option<Range<usize>>,
    link: u32,
    align: u64,
    entry_size: u64,
}

/// A section header as it is in the file.
struct RawSection {
    name: u32,
    ty: u32,
    flags: u64,
    offset: u64,
    size: u64,
    link: u32,
    align: u64,
    entry_size: u64,
}

impl RawSection {
    fn read(b: &[u8]) -> Option<RawSection> {
        Some(RawSection {
            name: u32_at(b, 0)?,
            ty: u32_at(b, 4)?,
            flags: u64_at(b, 8)?,
            offset: u64_at(b, 24)?,
            size: u64_at(b, 32)?,
            link: u32_at(b, 40)?,
            align: u64_at(b, 48)?,
            entry_size: u64_at(b, 56)?,
        })
    }

    fn data(&self, len: usize) -> Option<Range<usize>> {
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
    fn parse_table(bytes: &[u8], header: &Header) -> Option<Vec<Section>> {
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

/// A symbol table entry as it is in the file.
struct RawSymbol {
    name: u32,
    info: u8,
    section: u16,
    value: u64,
    size: u64,
}

impl RawSymbol {
    fn read(b: &[u8]) -> Option<RawSymbol> {
        Some(RawSymbol {
            name: u32_at(b, 0)?,
            info: *b.get(4)?,
            section: u16_at(b, 6)?,
            value: u64_at(b, 8)?,
            size: u64_at(b, 16)?,
        })
    }
}

/// A code symbol, its name a range of the file.
struct FuncSymbol {
    addr: u64,
    size: u64,
    name: Range<usize>,
}

/// A `PT_NOTE` segment's bytes.
struct NoteArea {
    range: Range<usize>,
    align: u64,
}

/// One ELF note.
struct Note<'a> {
    /// Without its terminating NUL.
    name: &'a [u8],
    ty: u32,
    desc: &'a [u8],
}

/// The notes in a note segment or section; stops at the first malformed one.
struct Notes<'a> {
    rest: &'a [u8],
    align: usize,
}

impl<'a> Notes<'a> {
    /// `None` for an alignment notes cannot have.
    fn new(data: &'a [u8], align: u64) -> Option<Notes<'a>> {
        let align = match align {
            0..=4 => 4,
            8 => 8,
            _ => return None,
        };
        Some(Notes { rest: data, align })
    }

    fn split(&self) -> Option<(Note<'a>, &'a [u8])> {
        let data = self.rest;
        let name_size = usize::try_from(u32_at(data, 0)?).ok()?;
        let desc_size = usize::try_from(u32_at(data, 4)?).ok()?;
        let ty = u32_at(data, 8)?;
        let name_end = 12usize.checked_add(name_size)?;
        let desc_start = align_up(name_end, self.align)?;
        let desc_end = desc_start.checked_add(desc_size)?;
        let mut name = data.get(12..name_end)?;
        let desc = data.get(desc_start..desc_end)?;
        if let Some((0, without_nul)) = name.split_last() {
            name = without_nul;
        }
        // The last note's padding may be missing.
        let next = align_up(desc_end, self.align)?.min(data.len());
        Some((Note { name, ty, desc }, data.get(next..)?))
    }
}

impl<'a> Iterator for Notes<'a> {
    type Item = Note<'a>;

    fn next(&mut self) -> Option<Note<'a>> {
        let (note, rest) = self.split()?;
        self.rest = rest;
        Some(note)
    }
}

fn align_up(n: usize, align: usize) -> Option<usize> {
    Some(n.checked_add(align - 1)? & !(align - 1))
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

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    array(b, at).map(u16::from_le_bytes)
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    array(b, at).map(u32::from_le_bytes)
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    array(b, at).map(u64::from_le_bytes)
}
