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
    #[error(
        "segment {index} has {file_size:#x} bytes in the file but only {mem_size:#x} in memory"
    )]
    FileLargerThanMemory {
        /// The program header's index.
        index: usize,
        /// `p_filesz`.
        file_size: u64,
        /// `p_memsz`.
        mem_size: u64,
    },
    /// A segment is linked to run at one address and loaded at another; the
    /// monitor identity-maps memory, so it would run at the wrong one.
    #[error("segment {index} is linked at {vaddr:#x} but loads at {paddr:#x}; the monitor identity-maps memory, so they must match")]
    NotIdentity {
        /// The program header's index.
        index: usize,
        /// `p_vaddr`.
        vaddr: u64,
        /// `p_paddr`.
        paddr: u64,
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
            if self.0 != 0 && self.0.is_multiple_of(unit) {
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
    /// The source file and line of the address in that function, from DWARF,
    /// when the image has line tables (for inlined code, the line of the
    /// outermost call).
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
            name: format!(
                "{:#}",
                rustc_demangle::demangle(&String::from_utf8_lossy(raw))
            ),
            offset: addr - symbol.addr,
            location: self.location(addr),
        })
    }

    /// The demangled names of the image's functions (what was linked), in
    /// address order.
    pub fn function_names(&self) -> impl Iterator<Item = String> + '_ {
        let symbols = self.symbols.get_or_init(|| self.read_symbols());
        symbols.iter().filter_map(|s| {
            let raw = self.bytes.get(s.name.clone())?;
            Some(format!(
                "{:#}",
                rustc_demangle::demangle(&String::from_utf8_lossy(raw))
            ))
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

    /// The source file and line of `addr` in the function the symbol table
    /// names: where code was inlined, the line of the outermost call, not a
    /// line inside `core`.
    fn location(&self, addr: u64) -> Option<(String, u32)> {
        let tables = self
            .lines
            .get_or_init(|| self.read_line_tables())
            .as_ref()?;
        let tables = tables.lock().ok()?;
        let mut frames = tables.find_frames(addr).skip_all_loads().ok()?;
        let mut outermost = None;
        while let Ok(Some(frame)) = frames.next() {
            if let Some(addr2line::Location {
                file: Some(file),
                line: Some(line),
                ..
            }) = frame.location
            {
                outermost = Some((file.to_owned(), line));
            }
        }
        outermost
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

#[cfg(test)]
mod tests {
    use super::*;
    use nym_hvt_abi::DEVICE_BLOCK;

    const TEXT: u64 = 0x10_0000;
    const DATA: u64 = 0x20_0000;
    const SHT_PROGBITS: u32 = 1;
    const SHT_STRTAB: u32 = 3;
    const SHF_ALLOC: u64 = 0x2;
    const STT_OBJECT: u8 = 1;
    const MANGLED: &str = "_ZN5hello5start17h0123456789abcdefE";

    /// A program header and the bytes it covers.
    #[derive(Clone)]
    struct Seg {
        ty: u32,
        flags: u32,
        addr: u64,
        data: Vec<u8>,
        mem_size: u64,
        align: u64,
        /// Overrides where the builder put `data`.
        offset: Option<u64>,
        /// A `p_paddr` other than `addr`.
        paddr: Option<u64>,
    }

    impl Seg {
        fn load(flags: u32, addr: u64, data: &[u8], mem_size: u64) -> Seg {
            Seg {
                ty: PT_LOAD,
                flags,
                addr,
                data: data.to_vec(),
                mem_size,
                align: 0x1000,
                offset: None,
                paddr: None,
            }
        }

        fn other(ty: u32, data: &[u8]) -> Seg {
            Seg {
                ty,
                flags: PF_R,
                addr: 0,
                data: data.to_vec(),
                mem_size: data.len() as u64,
                align: 4,
                offset: None,
                paddr: None,
            }
        }
    }

    /// A section header and its bytes.
    #[derive(Clone)]
    struct Sec {
        name: &'static str,
        ty: u32,
        flags: u64,
        data: Vec<u8>,
        link: u32,
        entry_size: u64,
        align: u64,
    }

    impl Sec {
        fn new(name: &'static str, ty: u32, data: Vec<u8>) -> Sec {
            Sec {
                name,
                ty,
                flags: 0,
                data,
                link: 0,
                entry_size: 0,
                align: 1,
            }
        }
    }

    /// Writes an ELF file by hand: header, program headers, segment bytes,
    /// section bytes, `.shstrtab`, section headers.
    #[derive(Clone)]
    struct TestElf {
        class: u8,
        data: u8,
        ty: u16,
        machine: u16,
        phentsize: u16,
        entry: u64,
        segs: Vec<Seg>,
        /// Numbered from 1; `.shstrtab` is added last.
        secs: Vec<Sec>,
        shoff: Option<u64>,
    }

    impl TestElf {
        /// A good image: code at `TEXT` (r-x), data and bss at `DATA` (rw-).
        fn good() -> TestElf {
            TestElf {
                class: ELFCLASS64,
                data: ELFDATA2LSB,
                ty: ET_EXEC,
                machine: EM_X86_64,
                phentsize: PHDR_SIZE as u16,
                entry: TEXT + 0x10,
                segs: vec![
                    Seg::load(PF_R | PF_X, TEXT, &[0x90; 0x80], 0x1000),
                    Seg::load(PF_R | PF_W, DATA, &[7; 16], 0x3000),
                ],
                secs: Vec::new(),
                shoff: None,
            }
        }

        /// [`TestElf::good`] with notes, a `.text` section and a symbol table.
        fn full() -> TestElf {
            let mut elf = TestElf::good();
            let mut notes = note(NOTE_NAME, NOTE_MANIFEST, &manifest(1, DEVICE_BLOCK));
            notes.extend(note(
                b"Xen",
                XEN_ELFNOTE_PHYS32_ENTRY,
                &0x10_2030u32.to_le_bytes(),
            ));
            elf.segs.push(Seg::other(PT_NOTE, &notes));
            let (symtab, strtab) = symtab(&[
                (MANGLED, TEXT + 0x10, 0x20, STT_FUNC, 1),
                ("plain_c", TEXT + 0x40, 0x10, STT_FUNC, 1),
                ("asm_label", TEXT + 0x60, 0, STT_NOTYPE, 1),
                (".Ltmp0", TEXT + 0x68, 0, STT_NOTYPE, 1),
                ("an_object", DATA, 16, STT_OBJECT, 2),
                ("undefined", TEXT + 0x70, 0, STT_FUNC, SHN_UNDEF),
            ]);
            elf.secs = vec![
                Sec {
                    flags: SHF_ALLOC | SHF_EXECINSTR,
                    ..Sec::new(".text", SHT_PROGBITS, vec![0x90; 0x80])
                },
                Sec {
                    flags: SHF_ALLOC | 0x1,
                    ..Sec::new(".data", SHT_PROGBITS, vec![7; 16])
                },
                Sec {
                    link: 4,
                    entry_size: SYM_SIZE as u64,
                    align: 8,
                    ..Sec::new(".symtab", SHT_SYMTAB, symtab)
                },
                Sec::new(".strtab", SHT_STRTAB, strtab),
            ];
            elf
        }

        fn build(&self) -> Vec<u8> {
            let phoff = EHDR_SIZE;
            let mut out = vec![0; phoff + PHDR_SIZE * self.segs.len()];
            for (i, seg) in self.segs.iter().enumerate() {
                pad(&mut out, 16);
                let offset = seg.offset.unwrap_or(out.len() as u64);
                out.extend(&seg.data);
                let at = phoff + i * PHDR_SIZE;
                put(&mut out, at, &seg.ty.to_le_bytes());
                put(&mut out, at + 4, &seg.flags.to_le_bytes());
                put(&mut out, at + 8, &offset.to_le_bytes());
                put(&mut out, at + 16, &seg.addr.to_le_bytes());
                put(
                    &mut out,
                    at + 24,
                    &seg.paddr.unwrap_or(seg.addr).to_le_bytes(),
                );
                put(&mut out, at + 32, &(seg.data.len() as u64).to_le_bytes());
                put(&mut out, at + 40, &seg.mem_size.to_le_bytes());
                put(&mut out, at + 48, &seg.align.to_le_bytes());
            }
            let (shoff, shnum, shstrndx) = if self.secs.is_empty() {
                (0, 0, 0)
            } else {
                self.write_sections(&mut out)
            };
            put(&mut out, 0, MAGIC);
            out[4] = self.class;
            out[5] = self.data;
            out[6] = 1;
            put(&mut out, 16, &self.ty.to_le_bytes());
            put(&mut out, 18, &self.machine.to_le_bytes());
            put(&mut out, 20, &1u32.to_le_bytes());
            put(&mut out, 24, &self.entry.to_le_bytes());
            put(&mut out, 32, &(phoff as u64).to_le_bytes());
            put(&mut out, 40, &self.shoff.unwrap_or(shoff).to_le_bytes());
            put(&mut out, 52, &(EHDR_SIZE as u16).to_le_bytes());
            put(&mut out, 54, &self.phentsize.to_le_bytes());
            put(&mut out, 56, &(self.segs.len() as u16).to_le_bytes());
            put(&mut out, 58, &(SHDR_SIZE as u16).to_le_bytes());
            put(&mut out, 60, &shnum.to_le_bytes());
            put(&mut out, 62, &shstrndx.to_le_bytes());
            out
        }

        /// Returns `(shoff, shnum, shstrndx)`.
        fn write_sections(&self, out: &mut Vec<u8>) -> (u64, u16, u16) {
            let shstrtab = Sec::new(".shstrtab", SHT_STRTAB, Vec::new());
            let secs: Vec<&Sec> = self.secs.iter().chain([&shstrtab]).collect();
            let mut names = vec![0u8];
            let mut placed = Vec::new();
            for sec in &secs {
                let name = names.len() as u32;
                names.extend(sec.name.as_bytes());
                names.push(0);
                pad(out, 8);
                placed.push((name, out.len() as u64, sec.data.len() as u64));
                out.extend(&sec.data);
            }
            if let Some(last) = placed.last_mut() {
                last.1 = out.len() as u64;
                last.2 = names.len() as u64;
            }
            out.extend(&names);
            pad(out, 8);
            let shoff = out.len() as u64;
            out.extend([0; SHDR_SIZE]);
            for (sec, (name, offset, size)) in secs.iter().zip(placed) {
                let mut h = [0u8; SHDR_SIZE];
                put(&mut h, 0, &name.to_le_bytes());
                put(&mut h, 4, &sec.ty.to_le_bytes());
                put(&mut h, 8, &sec.flags.to_le_bytes());
                put(&mut h, 24, &offset.to_le_bytes());
                put(&mut h, 32, &size.to_le_bytes());
                put(&mut h, 40, &sec.link.to_le_bytes());
                put(&mut h, 48, &sec.align.to_le_bytes());
                put(&mut h, 56, &sec.entry_size.to_le_bytes());
                out.extend(h);
            }
            let count = secs.len() as u16 + 1;
            (shoff, count, count - 1)
        }

        fn parse(&self) -> Result<Image, ElfError> {
            Image::parse(self.build())
        }
    }

    fn put(out: &mut [u8], at: usize, bytes: &[u8]) {
        out[at..at + bytes.len()].copy_from_slice(bytes);
    }

    fn pad(out: &mut Vec<u8>, align: usize) {
        out.resize(out.len().next_multiple_of(align), 0);
    }

    /// One note with 4-byte alignment.
    fn note(name: &[u8], ty: u32, desc: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend((name.len() as u32 + 1).to_le_bytes());
        out.extend((desc.len() as u32).to_le_bytes());
        out.extend(ty.to_le_bytes());
        out.extend(name);
        out.push(0);
        pad(&mut out, 4);
        out.extend(desc);
        pad(&mut out, 4);
        out
    }

    fn manifest(version: u32, devices: u32) -> Vec<u8> {
        [version.to_le_bytes(), devices.to_le_bytes()].concat()
    }

    /// `(name, value, size, type, section)` → `(.symtab, .strtab)`.
    fn symtab(syms: &[(&str, u64, u64, u8, u16)]) -> (Vec<u8>, Vec<u8>) {
        let mut table = vec![0; SYM_SIZE];
        let mut strings = vec![0];
        for &(name, value, size, ty, section) in syms {
            let mut entry = [0u8; SYM_SIZE];
            put(&mut entry, 0, &(strings.len() as u32).to_le_bytes());
            entry[4] = ty | (1 << 4);
            put(&mut entry, 6, &section.to_le_bytes());
            put(&mut entry, 8, &value.to_le_bytes());
            put(&mut entry, 16, &size.to_le_bytes());
            table.extend(entry);
            strings.extend(name.as_bytes());
            strings.push(0);
        }
        (table, strings)
    }

    fn err(elf: &TestElf) -> ElfError {
        elf.parse().expect_err("the image should be refused")
    }

    /// Calls everything an image offers; nothing may panic.
    fn exercise(image: &Image) {
        let _ = image.check_fits(32 << 20, 0x1000);
        let _ = image.end();
        let _ = image.manifest();
        let _ = image.pvh_entry();
        let _ = image.note(b"", 0);
        for segment in image.segments() {
            assert_eq!(image.segment_data(segment).len(), segment.file_range.len());
            let _ = image.symbolize(segment.vaddr);
            let _ = image.symbolize(segment.vaddr + segment.mem_size / 2);
        }
        let _ = image.symbolize(image.entry());
        let _ = image.symbolize(image.entry() + 1);
        let _ = image.symbolize(0);
        let _ = image.symbolize(u64::MAX);
    }

    #[test]
    fn good_image_parses() {
        let mut elf = TestElf::good();
        elf.segs.reverse(); // program header order does not matter
        let image = elf.parse().unwrap();
        assert_eq!(image.entry(), TEXT + 0x10);
        let [text, data] = image.segments() else {
            panic!("two segments expected: {image:?}");
        };
        assert_eq!(
            (text.paddr, text.vaddr, text.mem_size),
            (TEXT, TEXT, 0x1000)
        );
        assert_eq!(
            (data.paddr, data.vaddr, data.mem_size),
            (DATA, DATA, 0x3000)
        );
        assert_eq!(text.flags.to_string(), "r-x");
        assert_eq!(
            data.flags,
            Flags {
                read: true,
                write: true,
                exec: false
            }
        );
        assert_eq!(image.segment_data(text), &[0x90; 0x80]);
        assert_eq!(&image.bytes()[data.file_range.clone()], &[7; 16]);
        assert_eq!(image.end(), DATA + 0x3000);
        assert_eq!(image.bytes(), elf.build());
        image.check_fits(32 << 20, 0x1000).unwrap();
        // No notes, no sections: loads anyway, just without extras.
        assert_eq!(image.manifest().unwrap(), None);
        assert_eq!(image.pvh_entry(), None);
        assert_eq!(image.symbolize(TEXT + 0x10), None);
    }

    #[test]
    fn image_is_shareable() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<Image>();
    }

    #[test]
    fn empty() {
        let e = Image::parse(Vec::new()).unwrap_err();
        assert!(matches!(e, ElfError::Empty));
        assert_eq!(e.to_string(), "empty file");
    }

    #[test]
    fn bad_magic() {
        for bytes in [&b"MZ\x90\x00"[..], b"\x7fELG", b"#!/bin/sh\n", b"\x7fX"] {
            let e = Image::parse(bytes.to_vec()).unwrap_err();
            assert!(matches!(e, ElfError::BadMagic), "{bytes:?}: {e}");
            assert_eq!(e.to_string(), "not an ELF file (bad magic)");
        }
    }

    #[test]
    fn truncated_header() {
        let bytes = TestElf::good().build();
        for len in [1, 3, 4, 6, 20, 63] {
            let e = Image::parse(bytes[..len].to_vec()).unwrap_err();
            assert!(
                matches!(e, ElfError::Truncated { part: Part::Header, end: 64, len: l } if l == len),
                "{len}: {e}"
            );
        }
        let e = Image::parse(bytes[..20].to_vec()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "truncated: the ELF header ends at byte 64 but the file has 20 bytes"
        );
    }

    #[test]
    fn truncated_program_headers() {
        let bytes = TestElf::good().build();
        let e = Image::parse(bytes[..100].to_vec()).unwrap_err();
        assert!(
            matches!(
                e,
                ElfError::Truncated {
                    part: Part::ProgramHeaders,
                    end: 176,
                    len: 100
                }
            ),
            "{e}"
        );
        assert_eq!(
            e.to_string(),
            "truncated: the program header table ends at byte 176 but the file has 100 bytes"
        );

        let mut bytes = TestElf::good().build();
        put(&mut bytes, 32, &0x1000u64.to_le_bytes());
        let e = Image::parse(bytes).unwrap_err();
        assert!(matches!(
            e,
            ElfError::Truncated {
                part: Part::ProgramHeaders,
                end: 0x1070,
                ..
            }
        ));

        let mut bytes = TestElf::good().build();
        put(&mut bytes, 32, &(u64::MAX - 8).to_le_bytes());
        let e = Image::parse(bytes).unwrap_err();
        assert!(
            matches!(
                e,
                ElfError::RangeOverflow {
                    part: Part::ProgramHeaders,
                    ..
                }
            ),
            "{e}"
        );
    }

    #[test]
    fn truncated_segment_data() {
        let bytes = TestElf::good().build();
        let e = Image::parse(bytes[..bytes.len() - 1].to_vec()).unwrap_err();
        assert!(
            matches!(
                e,
                ElfError::Truncated {
                    part: Part::Segment(1),
                    ..
                }
            ),
            "{e}"
        );
        assert!(e
            .to_string()
            .starts_with("truncated: segment 1's data ends at byte "));

        let mut elf = TestElf::good();
        elf.segs[0].offset = Some(u64::MAX - 0x10);
        let e = err(&elf);
        assert!(
            matches!(
                e,
                ElfError::RangeOverflow {
                    part: Part::Segment(0),
                    ..
                }
            ),
            "{e}"
        );
        assert!(e
            .to_string()
            .starts_with("segment 0's data is out of range"));

        // A note segment past the end is refused too: a manifest must not
        // silently go missing.
        let mut elf = TestElf::full();
        elf.segs[2].offset = Some(1 << 20);
        assert!(matches!(
            err(&elf),
            ElfError::Truncated {
                part: Part::Segment(2),
                ..
            }
        ));
    }

    #[test]
    fn wrong_machine() {
        let mut elf = TestElf::good();
        elf.machine = 183;
        let e = err(&elf);
        assert!(matches!(e, ElfError::WrongMachine(183)));
        assert_eq!(e.to_string(), "built for machine 183 (AArch64), not x86_64");
        elf.machine = 4242;
        assert_eq!(err(&elf).to_string(), "built for machine 4242, not x86_64");
    }

    #[test]
    fn not_64_bit() {
        let mut elf = TestElf::good();
        elf.class = 1;
        let e = err(&elf);
        assert!(matches!(e, ElfError::NotElf64));
        assert_eq!(e.to_string(), "not a 64-bit ELF");
        // Named for what it is even when cut short.
        assert!(matches!(
            Image::parse(elf.build()[..5].to_vec()).unwrap_err(),
            ElfError::NotElf64
        ));
    }

    #[test]
    fn big_endian() {
        let mut elf = TestElf::good();
        elf.data = 2;
        let e = err(&elf);
        assert!(matches!(e, ElfError::NotLittleEndian));
        assert_eq!(e.to_string(), "not little-endian");
    }

    #[test]
    fn bad_version() {
        let mut bytes = TestElf::good().build();
        bytes[6] = 0;
        assert!(matches!(
            Image::parse(bytes).unwrap_err(),
            ElfError::BadVersion(0)
        ));
        let mut bytes = TestElf::good().build();
        put(&mut bytes, 20, &2u32.to_le_bytes());
        let e = Image::parse(bytes).unwrap_err();
        assert_eq!(e.to_string(), "unsupported ELF version 2 (expected 1)");
    }

    #[test]
    fn not_an_executable() {
        let mut elf = TestElf::good();
        elf.ty = 3;
        let e = err(&elf);
        assert!(matches!(e, ElfError::NotExecutable(3)));
        assert_eq!(
            e.to_string(),
            "not an executable (type 3, a shared object or PIE); build a static, non-PIE image"
        );
        elf.ty = 1;
        assert!(err(&elf)
            .to_string()
            .starts_with("not an executable (type 1, a relocatable object)"));
    }

    #[test]
    fn program_header_table_shape() {
        let mut elf = TestElf::good();
        elf.phentsize = 32;
        let e = err(&elf);
        assert!(matches!(e, ElfError::BadProgramHeaderSize(32)));
        assert_eq!(
            e.to_string(),
            "program header entries are 32 bytes, expected at least 56"
        );

        let mut bytes = TestElf::good().build();
        put(&mut bytes, 56, &PN_XNUM.to_le_bytes());
        assert!(matches!(
            Image::parse(bytes).unwrap_err(),
            ElfError::TooManyProgramHeaders
        ));
    }

    #[test]
    fn interpreter() {
        let mut elf = TestElf::good();
        elf.segs
            .push(Seg::other(PT_INTERP, b"/lib64/ld-linux-x86-64.so.2\0"));
        let e = err(&elf);
        assert!(matches!(e, ElfError::Interpreter(2)));
        assert_eq!(
            e.to_string(),
            "segment 2 names a dynamic loader (PT_INTERP); build a static image"
        );
    }

    #[test]
    fn overlapping_segments() {
        let mut elf = TestElf::good();
        elf.segs[0].mem_size = 0x2000;
        elf.segs[1].addr = TEXT + 0x1000;
        let e = err(&elf);
        assert!(
            matches!(
                e,
                ElfError::Overlap {
                    index: 1,
                    other: 0,
                    at: 0x101000
                }
            ),
            "{e}"
        );
        assert_eq!(e.to_string(), "segment 1 overlaps segment 0 at 0x101000");

        // Touching is fine; one byte more is not.
        elf.segs[0].mem_size = 0x1000;
        elf.parse().unwrap();
        elf.segs[0].mem_size = 0x1001;
        assert!(matches!(err(&elf), ElfError::Overlap { .. }));

        // Found whatever order the program headers are in.
        elf.segs.reverse();
        assert!(matches!(
            err(&elf),
            ElfError::Overlap {
                index: 0,
                other: 1,
                at: 0x101000
            }
        ));
    }

    #[test]
    fn write_and_execute() {
        let mut elf = TestElf::good();
        elf.segs[1].flags = PF_R | PF_W | PF_X;
        let e = err(&elf);
        assert!(matches!(e, ElfError::WriteExec(1)));
        assert_eq!(
            e.to_string(),
            "segment 1 is both writable and executable (W^X)"
        );
    }

    #[test]
    fn null_page() {
        let mut elf = TestElf::good();
        elf.segs[1].addr = 0;
        let e = err(&elf);
        assert!(matches!(e, ElfError::NullPage { index: 1, addr: 0 }));
        assert_eq!(e.to_string(), "segment 1 at 0x0 maps the null page");
        elf.segs[1].addr = 0xfff;
        assert!(matches!(err(&elf), ElfError::NullPage { addr: 0xfff, .. }));
        elf.segs[1].addr = 0x1000;
        elf.parse().unwrap();
    }

    #[test]
    fn sizes_that_do_not_add_up() {
        let mut elf = TestElf::good();
        elf.segs[1].mem_size = 8;
        let e = err(&elf);
        assert!(matches!(
            e,
            ElfError::FileLargerThanMemory {
                index: 1,
                file_size: 16,
                mem_size: 8
            }
        ));
        assert_eq!(
            e.to_string(),
            "segment 1 has 0x10 bytes in the file but only 0x8 in memory"
        );

        let mut elf = TestElf::good();
        elf.segs[1].addr = u64::MAX - 0x1000;
        let e = err(&elf);
        assert!(
            matches!(e, ElfError::AddressOverflow { index: 1, .. }),
            "{e}"
        );
        assert!(e.to_string().ends_with("wraps around the address space"));
    }

    #[test]
    fn loaded_where_linked() {
        let mut elf = TestElf::good();
        elf.segs[1].paddr = Some(0x30_0000);
        let e = err(&elf);
        assert!(matches!(
            e,
            ElfError::NotIdentity {
                index: 1,
                vaddr: DATA,
                paddr: 0x30_0000
            }
        ));
        assert_eq!(
            e.to_string(),
            "segment 1 is linked at 0x200000 but loads at 0x300000; \
             the monitor identity-maps memory, so they must match"
        );
    }

    #[test]
    fn past_memory() {
        let mut elf = TestElf::good();
        elf.segs[1].addr = 0x1ff_f000;
        elf.segs[1].mem_size = 0x2000;
        let image = elf.parse().unwrap();
        let e = image.check_fits(32 << 20, 0x1000).unwrap_err();
        assert!(matches!(
            e,
            ElfError::PastMemory {
                paddr: 0x1fff000,
                end: 0x2001000,
                ..
            }
        ));
        assert_eq!(
            e.to_string(),
            "segment 0x1fff000 ends at 0x2001000, past guest memory (32 MiB)"
        );
        image.check_fits(0x200_1000, 0x1000).unwrap();
        assert!(image
            .check_fits(0x200_0fff, 0x1000)
            .unwrap_err()
            .to_string()
            .ends_with("(33558527 bytes)"));
    }

    #[test]
    fn below_reserved() {
        let image = TestElf::good().parse().unwrap();
        let e = image.check_fits(1 << 30, 0x10_1000).unwrap_err();
        assert!(matches!(
            e,
            ElfError::BelowReserved {
                paddr: TEXT,
                reserved: 0x101000
            }
        ));
        assert_eq!(
            e.to_string(),
            "segment 0x100000 starts below 0x101000, in memory the monitor reserves"
        );
        image.check_fits(1 << 30, TEXT).unwrap();
    }

    #[test]
    fn no_loadable_segments() {
        let mut elf = TestElf::good();
        elf.segs = vec![Seg::other(PT_NOTE, &note(b"x", 1, b""))];
        let e = err(&elf);
        assert!(matches!(e, ElfError::NoLoadableSegments));
        assert_eq!(e.to_string(), "no loadable segments");

        // A PT_LOAD with no memory does not count (and is not kept).
        elf.segs.push(Seg::load(PF_R | PF_X, TEXT, &[], 0));
        assert!(matches!(err(&elf), ElfError::NoLoadableSegments));
        let mut elf = TestElf::good();
        elf.segs.push(Seg::load(PF_R | PF_W | PF_X, 0, &[], 0));
        assert_eq!(elf.parse().unwrap().segments().len(), 2);
    }

    #[test]
    fn entry_outside_code() {
        let mut elf = TestElf::good();
        for entry in [DATA, TEXT + 0x1000, TEXT - 1, 0] {
            elf.entry = entry;
            let e = err(&elf);
            assert!(matches!(e, ElfError::EntryNotExecutable(a) if a == entry));
        }
        elf.entry = DATA;
        assert_eq!(
            err(&elf).to_string(),
            "entry point 0x200000 is not in an executable segment"
        );
        elf.entry = TEXT + 0xfff; // in the bss part of the code segment: still inside
        elf.parse().unwrap();
    }

    #[test]
    fn notes_in_a_segment() {
        let image = TestElf::full().parse().unwrap();
        assert_eq!(
            image.manifest().unwrap(),
            Some(Manifest {
                version: MANIFEST_VERSION,
                devices: DEVICE_BLOCK
            })
        );
        assert_eq!(image.pvh_entry(), Some(0x10_2030));
        assert_eq!(
            image.note(b"Xen", 18),
            Some(&0x10_2030u32.to_le_bytes()[..])
        );
        assert_eq!(image.note(b"Xe", 18), None);
        assert_eq!(image.note(b"Xen", 17), None);
        // Notes are not loaded: the segment list is unchanged.
        assert_eq!(image.segments().len(), 2);
    }

    #[test]
    fn notes_in_sections_only() {
        let mut elf = TestElf::good();
        let notes = [
            note(b"GNU", 3, &[1; 20]),
            note(b"Xen", XEN_ELFNOTE_PHYS32_ENTRY, &0x1234u64.to_le_bytes()),
        ]
        .concat();
        elf.secs = vec![Sec {
            align: 4,
            ..Sec::new(".note", SHT_NOTE, notes)
        }];
        let image = elf.parse().unwrap();
        assert_eq!(image.pvh_entry(), Some(0x1234));
        assert_eq!(image.manifest().unwrap(), None);
    }

    #[test]
    fn notes_with_8_byte_alignment() {
        // desc starts at align_up(12 + 4, 8) = 16; the next note at 24.
        let mut notes = Vec::new();
        notes.extend(4u32.to_le_bytes());
        notes.extend(4u32.to_le_bytes());
        notes.extend(5u32.to_le_bytes());
        notes.extend(b"GNU\0");
        notes.extend(0xaabbccddu32.to_le_bytes());
        notes.extend([0; 4]);
        notes.extend(note(
            b"Xen",
            XEN_ELFNOTE_PHYS32_ENTRY,
            &0x5678u32.to_le_bytes(),
        ));
        let mut elf = TestElf::good();
        let mut seg = Seg::other(PT_NOTE, &notes);
        seg.align = 8;
        elf.segs.push(seg);
        let image = elf.parse().unwrap();
        assert_eq!(
            image.note(b"GNU", 5),
            Some(&0xaabbccddu32.to_le_bytes()[..])
        );
        assert_eq!(image.pvh_entry(), Some(0x5678));
    }

    #[test]
    fn pvh_entry_sizes() {
        for (desc, want) in [
            (0x1000u32.to_le_bytes().to_vec(), Some(0x1000)),
            (0x2000u64.to_le_bytes().to_vec(), Some(0x2000)),
            ((1u64 << 32).to_le_bytes().to_vec(), None),
            (vec![1, 2], None),
        ] {
            let mut elf = TestElf::good();
            elf.segs.push(Seg::other(PT_NOTE, &note(b"Xen", 18, &desc)));
            assert_eq!(elf.parse().unwrap().pvh_entry(), want, "{desc:?}");
        }
    }

    #[test]
    fn bad_manifests() {
        let with_manifest = |desc: &[u8]| {
            let mut elf = TestElf::good();
            elf.segs
                .push(Seg::other(PT_NOTE, &note(NOTE_NAME, NOTE_MANIFEST, desc)));
            elf.parse().unwrap().manifest()
        };
        let e = with_manifest(&[1, 0, 0, 0]).unwrap_err();
        assert!(matches!(e, ElfError::ManifestSize(4)));
        assert_eq!(
            e.to_string(),
            "the nym manifest note is 4 bytes, expected 8"
        );
        let e = with_manifest(&[manifest(1, 0), vec![0; 4]].concat()).unwrap_err();
        assert!(matches!(e, ElfError::ManifestSize(12)));
        let e = with_manifest(&manifest(2, 0)).unwrap_err();
        assert!(matches!(e, ElfError::ManifestVersion(2)));
        assert_eq!(
            e.to_string(),
            "the nym manifest is version 2; this monitor reads version 1"
        );
        assert_eq!(
            with_manifest(&manifest(1, 0)).unwrap(),
            Some(Manifest {
                version: 1,
                devices: 0
            })
        );
    }

    #[test]
    fn symbolize_demangles() {
        let image = TestElf::full().parse().unwrap();
        let start = image.symbolize(TEXT + 0x10).unwrap();
        assert_eq!(start.name, "hello::start");
        assert_eq!(start.offset, 0);
        assert_eq!(start.location, None, "no DWARF in this image");
        assert_eq!(image.symbolize(TEXT + 0x2f).unwrap().offset, 0x1f);
        let c = image.symbolize(TEXT + 0x45).unwrap();
        assert_eq!((c.name.as_str(), c.offset), ("plain_c", 5));
    }

    #[test]
    fn symbolize_falls_back_to_the_nearest_symbol_below() {
        let image = TestElf::full().parse().unwrap();
        // Between two sized functions: the one below, past its end.
        let gap = image.symbolize(TEXT + 0x38).unwrap();
        assert_eq!((gap.name.as_str(), gap.offset), ("hello::start", 0x28));
        // An assembly label (STT_NOTYPE in an executable section), not the
        // `.L` local label after it.
        let label = image.symbolize(TEXT + 0x6a).unwrap();
        assert_eq!((label.name.as_str(), label.offset), ("asm_label", 0xa));
        // Below every symbol, or outside code: nothing.
        assert_eq!(image.symbolize(TEXT + 0x8), None);
        assert_eq!(image.symbolize(DATA + 4), None);
        assert_eq!(image.symbolize(TEXT + 0x1000), None);
        assert_eq!(image.symbolize(0), None);
        assert_eq!(image.symbolize(u64::MAX), None);
    }

    #[test]
    fn broken_section_table_still_loads() {
        let full = TestElf::full();
        let good = full.build();
        let mut broken = Vec::new();
        // The table past the end, entries too small, an absurd count, a
        // symbol table whose string table index is out of range.
        let mut elf = full.clone();
        elf.shoff = Some(1 << 40);
        broken.push(elf.build());
        let mut bytes = good.clone();
        put(&mut bytes, 58, &10u16.to_le_bytes());
        broken.push(bytes);
        let mut bytes = good.clone();
        put(&mut bytes, 60, &0xfffeu16.to_le_bytes());
        broken.push(bytes);
        let mut elf = full.clone();
        elf.secs[2].link = 99;
        broken.push(elf.build());
        let mut elf = full.clone();
        elf.secs[2].entry_size = 8;
        broken.push(elf.build());

        for bytes in broken {
            let image = Image::parse(bytes).unwrap();
            assert_eq!(image.symbolize(TEXT + 0x10), None);
            assert_eq!(image.segments().len(), 2);
            assert_eq!(
                image.pvh_entry(),
                Some(0x10_2030),
                "the PT_NOTE still counts"
            );
        }
    }

    #[test]
    fn stripped_image_loads() {
        let mut elf = TestElf::full();
        elf.secs.clear();
        let image = elf.parse().unwrap();
        assert_eq!(image.symbolize(TEXT + 0x10), None);
        assert!(image.manifest().unwrap().is_some());
    }

    /// A small xorshift generator, so the mutation tests are repeatable.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    #[test]
    fn no_input_panics() {
        let good = TestElf::full().build();
        for len in 0..=good.len() {
            if let Ok(image) = Image::parse(good[..len].to_vec()) {
                exercise(&image);
            }
        }
        for at in 0..good.len() {
            for flip in [0xff, 0x80, 0x01, 0x10] {
                let mut bytes = good.clone();
                bytes[at] ^= flip;
                if let Ok(image) = Image::parse(bytes) {
                    exercise(&image);
                }
            }
        }
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for _ in 0..5000 {
            let mut bytes = good.clone();
            for _ in 0..1 + rng.below(4) {
                let at = rng.below(bytes.len());
                bytes[at] = rng.next() as u8;
            }
            if let Ok(image) = Image::parse(bytes) {
                exercise(&image);
            }
        }
    }

    fn fixture() -> Image {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tiny.elf");
        Image::parse(std::fs::read(path).unwrap()).unwrap()
    }

    /// The address of the symbol whose demangled name is `name`.
    fn address_of(image: &Image, name: &str) -> u64 {
        image.symbolize(0); // fills the symbol table
        let symbols = image.symbols.get().unwrap();
        symbols
            .iter()
            .find(|s| {
                let raw = String::from_utf8_lossy(&image.bytes()[s.name.clone()]);
                format!("{:#}", rustc_demangle::demangle(&raw)) == name
            })
            .unwrap_or_else(|| panic!("no symbol {name}"))
            .addr
    }

    /// `tests/fixtures/tiny.elf`, built by rustc and rust-lld for
    /// `x86_64-unknown-none` (see `tiny.rs` next to it).
    #[test]
    fn real_image() {
        let image = fixture();
        let flags: Vec<String> = image
            .segments()
            .iter()
            .map(|s| s.flags.to_string())
            .collect();
        assert_eq!(flags, ["r--", "r-x", "rw-"]);
        assert_eq!(image.entry(), address_of(&image, "_start"));
        image.check_fits(32 << 20, 0x1000).unwrap();
        assert_eq!(
            image.manifest().unwrap(),
            Some(Manifest {
                version: 1,
                devices: DEVICE_BLOCK
            })
        );
        assert_eq!(image.pvh_entry(), Some(0x10_2030));

        let crash = address_of(&image, "tiny::crash_here");
        let symbol = image.symbolize(crash + 1).unwrap();
        assert_eq!(
            (symbol.name.as_str(), symbol.offset),
            ("tiny::crash_here", 1)
        );
        let (file, line) = symbol.location.expect("the fixture has line tables");
        assert!(file.ends_with("tiny.rs"), "{file}");
        let source = include_str!("../tests/fixtures/tiny.rs");
        let fn_line = source
            .lines()
            .position(|l| l.starts_with("fn crash_here"))
            .unwrap() as u32
            + 1;
        assert!(
            (fn_line..fn_line + 3).contains(&line),
            "line {line}, fn at {fn_line}"
        );

        let stub = address_of(&image, "asm_stub");
        let symbol = image.symbolize(stub + 1).unwrap();
        assert_eq!((symbol.name.as_str(), symbol.offset), ("asm_stub", 1));
    }

    #[test]
    fn real_image_mutated() {
        let good = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/tiny.elf"
        ))
        .unwrap();
        for len in (0..=good.len()).step_by(7) {
            if let Ok(image) = Image::parse(good[..len].to_vec()) {
                exercise(&image);
            }
        }
        let mut rng = Rng(0x0123_4567_89ab_cdef);
        for _ in 0..2000 {
            let mut bytes = good.clone();
            for _ in 0..1 + rng.below(8) {
                let at = rng.below(bytes.len());
                bytes[at] = rng.next() as u8;
            }
            if let Ok(image) = Image::parse(bytes) {
                exercise(&image);
            }
        }
    }

    /// A host PIE (`/bin/true` on most Linux systems) is refused by type.
    #[test]
    fn host_pie_is_refused() {
        let Ok(bytes) = std::fs::read("/bin/true") else {
            return;
        };
        match Image::parse(bytes) {
            Err(e @ ElfError::NotExecutable(3)) => {
                assert!(e.to_string().starts_with("not an executable (type 3"));
            }
            // Not an x86_64 PIE host: nothing to check here.
            Err(ElfError::WrongMachine(_) | ElfError::BadMagic | ElfError::NotExecutable(_)) => {}
            other => panic!("/bin/true: {other:?}"),
        }
    }
}
