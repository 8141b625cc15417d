//! The loader's tests: images built byte by byte, good and hostile.
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

/// `TestElf::good`'s code and `count - 1` data segments of a page each.
fn with_program_headers(count: u64) -> TestElf {
    let mut elf = TestElf::good();
    elf.segs.truncate(1);
    elf.segs
        .extend((1..count).map(|i| Seg::load(PF_R | PF_W, DATA + i * 0x1000, &[], 0x1000)));
    elf
}

#[test]
fn a_crafted_program_header_count_is_refused_before_any_work() {
    // 60,000 segments, each sound: checked one by one, then laid out page by
    // page at boot, they would take minutes.
    let bytes = with_program_headers(60_000).build();
    let started = std::time::Instant::now();
    let e = Image::parse(bytes).unwrap_err();
    assert!(
        started.elapsed() < std::time::Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert!(matches!(e, ElfError::ProgramHeaderCount(60_000)), "{e}");
    assert_eq!(
        e.to_string(),
        "60000 program headers; an image may have at most 1024"
    );
    // The limit itself is fine.
    let image = with_program_headers(u64::from(MAX_PROGRAM_HEADERS))
        .parse()
        .unwrap();
    assert_eq!(image.segments().len(), 1024);
    assert!(matches!(
        err(&with_program_headers(1025)),
        ElfError::ProgramHeaderCount(1025)
    ));
}

#[test]
fn an_image_larger_than_the_cap_is_refused_unread() {
    // Zeroed by the allocator's fresh pages: untouched, so nearly free.
    let e = Image::parse(vec![0; MAX_IMAGE_SIZE as usize + 1]).unwrap_err();
    assert!(matches!(e, ElfError::TooLarge(n) if n == MAX_IMAGE_SIZE + 1));
    assert_eq!(
        e.to_string(),
        "the image is 268435457 bytes; images larger than 256 MiB are refused"
    );
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
    let source = include_str!("../../tests/fixtures/tiny.rs");
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

/// The head of `bytes` that booting reads, as `load_image` reads it: a
/// prefix, grown until [`boot_len`] is satisfied.
fn head_of(bytes: &[u8], first: usize) -> Vec<u8> {
    let mut head = bytes[..first.min(bytes.len())].to_vec();
    for _ in 0..2 {
        let need = boot_len(&head, bytes.len());
        if need > head.len() {
            head = bytes[..need].to_vec();
        }
    }
    head
}

#[test]
fn an_image_read_by_its_head_boots_from_it_and_reads_the_rest_for_symbols() {
    let bytes = TestElf::full().build();
    let len = bytes.len();
    let whole = Image::parse(bytes.clone()).unwrap();
    // A head of 100 bytes holds the ELF header but not every program
    // header: `boot_len` asks for more, twice at most.
    let head = head_of(&bytes, 100);
    let shoff = u64::at(&bytes, 40).unwrap() as usize;
    assert!(head.len() < shoff, "the section table is not read to boot");
    let rest = bytes.clone();
    let image = Image::parse_head(
        head.clone(),
        len,
        Some(Box::new(move || Some(rest.clone()))),
    )
    .unwrap();
    for (a, b) in image.segments().iter().zip(whole.segments()) {
        assert_eq!(image.segment_data(a), whole.segment_data(b));
    }
    assert_eq!(image.manifest().unwrap(), whole.manifest().unwrap());
    let name = |i: &Image| i.symbolize(TEXT + 0x14).map(|s| s.name);
    assert_eq!(name(&image), Some("hello::start".into()));
    assert_eq!(name(&image), name(&whole));

    // A file changed since its head was read (rewritten in place) gives
    // no symbols rather than someone else's; booting is unaffected.
    let mut changed = bytes.clone();
    changed[1] ^= 0xff;
    let image = Image::parse_head(
        head.clone(),
        len,
        Some(Box::new(move || Some(changed.clone()))),
    )
    .unwrap();
    assert_eq!(name(&image), None);
    assert_eq!(image.manifest().unwrap(), whole.manifest().unwrap());
    let gone = Image::parse_head(head.clone(), len, Some(Box::new(|| None))).unwrap();
    assert_eq!(name(&gone), None);

    // A head short of what the segments need is refused, not sliced.
    let short = head[..head.len() - 1].to_vec();
    assert!(matches!(
        Image::parse_head(short, len, None),
        Err(ElfError::Truncated { .. })
    ));
}

/// An image whose `NOTE_EXCEPTIONS` note names a table of handlers at
/// `table` (in the text segment, whose 32 entries are `handlers`).
fn with_exception_table(table: u64, handlers: &[u64]) -> Image {
    let mut elf = TestElf::good();
    let mut text = vec![0x90; 0x100];
    for h in handlers {
        text.extend(h.to_le_bytes());
    }
    elf.segs[0] = Seg::load(PF_R | PF_X, TEXT, &text, 0x1000);
    elf.segs.push(Seg::other(
        PT_NOTE,
        &note(
            NOTE_NAME,
            nym_hvt_abi::NOTE_EXCEPTIONS,
            &table.to_le_bytes(),
        ),
    ));
    elf.parse().unwrap()
}

#[test]
fn the_monitor_loads_the_idt_an_image_names_and_no_idt_it_cannot_trust() {
    use crate::boot::{load, IDT};
    use nym_hvt_abi::{idt_gate, BOOT_IDT, EXCEPTION_VECTORS};
    let size = crate::memory::MIN_SIZE;
    let table = TEXT + 0x100;
    let handlers: Vec<u64> = (0..EXCEPTION_VECTORS as u64)
        .map(|i| TEXT + 8 * i)
        .collect();
    let (mem, info) = load(size, &with_exception_table(table, &handlers), "", 0).unwrap();
    assert_eq!(info.flags & BOOT_IDT, BOOT_IDT);
    for (i, &h) in handlers.iter().enumerate() {
        let at = IDT + 16 * i as u64;
        assert_eq!(
            [
                mem.read::<u64>(at).unwrap(),
                mem.read::<u64>(at + 8).unwrap()
            ],
            idt_gate(h)
        );
    }
    let mut sregs = kvm_bindings::kvm_sregs::default();
    sregs = crate::boot::sregs(sregs, &info);
    assert_eq!((sregs.idt.base, sregs.idt.limit), (IDT, 16 * 32 - 1));

    // A handler outside executable memory (here in the data segment), a
    // table past the end of memory, one whose entries would wrap the
    // address space, a misaligned one, or no note: no IDT, and the guest
    // fills its own.
    let mut data = handlers.clone();
    data[14] = DATA;
    for image in [
        with_exception_table(table, &data),
        with_exception_table(size, &handlers),
        with_exception_table(u64::MAX - 7, &handlers),
        with_exception_table(table + 1, &handlers),
        TestElf::good().parse().unwrap(),
    ] {
        let (mem, info) = load(size, &image, "", 0).unwrap();
        assert_eq!(info.flags & BOOT_IDT, 0);
        assert_eq!(mem.read::<u64>(IDT), Ok(0));
        let sregs = crate::boot::sregs(kvm_bindings::kvm_sregs::default(), &info);
        assert_eq!(sregs.idt.base, 0);
    }

    // Looking for the note reads nothing past the head: an image without
    // it (here one with sections, whose rest is never asked for) boots
    // from its head alone.
    let bytes = TestElf::full().build();
    let asked = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let rest: ReadRest = {
        let (asked, bytes) = (asked.clone(), bytes.clone());
        Box::new(move || {
            asked.store(true, std::sync::atomic::Ordering::Relaxed);
            Some(bytes.clone())
        })
    };
    let image = Image::parse_head(head_of(&bytes, 64), bytes.len(), Some(rest)).unwrap();
    let (_, info) = load(size, &image, "", 0).unwrap();
    assert_eq!(info.flags & BOOT_IDT, 0);
    assert!(!asked.load(std::sync::atomic::Ordering::Relaxed));
}
