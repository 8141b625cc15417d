//! Why an image was refused, and the small displays its messages use.
use super::*;

/// Why an image was refused.
#[derive(Debug, thiserror::Error)]
pub enum ElfError {
    /// The file has no bytes at all.
    #[error("empty file")]
    Empty,
    /// The file is larger than [`MAX_IMAGE_SIZE`].
    #[error("the image is {} bytes; images larger than {} are refused", .0, ByteSize(MAX_IMAGE_SIZE))]
    TooLarge(u64),
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
    /// More program headers than [`MAX_PROGRAM_HEADERS`].
    #[error("{0} program headers; an image may have at most {MAX_PROGRAM_HEADERS}")]
    ProgramHeaderCount(u16),
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

/// Common `e_machine` values and their names.
#[rustfmt::skip]
const MACHINES: &[(u16, &str)] = &[
    (2, "SPARC"), (3, "x86"), (8, "MIPS"), (20, "PowerPC"), (21, "PowerPC64"), (22, "S/390"),
    (40, "ARM"), (43, "SPARC V9"), (50, "IA-64"), (62, "x86_64"), (183, "AArch64"),
    (243, "RISC-V"), (247, "BPF"), (258, "LoongArch"),
];

impl fmt::Display for Machine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match name_of(MACHINES, self.0) {
            Some(name) => write!(f, "{} ({name})", self.0),
            None => write!(f, "{}", self.0),
        }
    }
}

/// `e_type`, with what it means.
struct FileType(u16);

/// The `e_type` values other than `ET_EXEC`, and what they mean.
#[rustfmt::skip]
const FILE_TYPES: &[(u16, &str)] = &[
    (0, "no file type"), (1, "a relocatable object"), (3, "a shared object or PIE"), (4, "a core dump"),
];

impl fmt::Display for FileType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match name_of(FILE_TYPES, self.0) {
            Some(what) => write!(f, "type {}, {what}", self.0),
            None => write!(f, "type {}", self.0),
        }
    }
}

fn name_of(table: &[(u16, &'static str)], value: u16) -> Option<&'static str> {
    table
        .iter()
        .find(|(v, _)| *v == value)
        .map(|(_, name)| *name)
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
