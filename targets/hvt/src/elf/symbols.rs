//! Symbols and DWARF line tables: what turns a guest address into
//! `function+offset at file:line` for crash reports and backtraces.
use super::*;
use std::ops::Range;
use std::sync::{Arc, Mutex};

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

pub(super) type DwarfReader = gimli::EndianArcSlice<gimli::LittleEndian>;
pub(super) type LineTables = addr2line::Context<DwarfReader>;

impl Image {
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
                let segment = self.exec_segment(addr)?;
                segment.contains_vaddr(nearest.addr).then_some(nearest)
            })?;
        let raw = self.file().get(symbol.name.clone())?;
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
            let raw = self.file().get(s.name.clone())?;
            Some(format!(
                "{:#}",
                rustc_demangle::demangle(&String::from_utf8_lossy(raw))
            ))
        })
    }

    /// `STT_FUNC` symbols, and `STT_NOTYPE` labels in executable sections
    /// (assembly stubs), sorted by address; empty if anything is off.
    pub(super) fn read_symbols(&self) -> Vec<FuncSymbol> {
        let read = || -> Option<Vec<FuncSymbol>> {
            let symtab = self.sections().iter().find(|s| s.ty == SHT_SYMTAB)?;
            let strtab = self.sections().get(usize::try_from(symtab.link).ok()?)?;
            let strtab = strtab.data.clone()?;
            let entry_size = match usize::try_from(symtab.entry_size).ok()? {
                0 => SYM_SIZE,
                n if n < SYM_SIZE => return None,
                n => n,
            };
            let table = self.file().get(symtab.data.clone()?)?;
            let mut symbols: Vec<FuncSymbol> = table
                .chunks_exact(entry_size)
                .filter_map(|entry| {
                    let raw = RawSymbol::read(entry)?;
                    if !self.is_code_symbol(&raw) {
                        return None;
                    }
                    let name = cstr_range(self.file(), strtab.clone(), raw.name)?;
                    let text = self.file().get(name.clone())?;
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

    pub(super) fn is_code_symbol(&self, sym: &RawSymbol) -> bool {
        match sym.info & 0xf {
            STT_FUNC => sym.section != SHN_UNDEF,
            STT_NOTYPE => {
                sym.section != SHN_UNDEF
                    && sym.section < SHN_LORESERVE
                    && self
                        .sections()
                        .get(usize::from(sym.section))
                        .is_some_and(|s| s.flags & SHF_EXECINSTR != 0)
            }
            _ => false,
        }
    }

    /// The source file and line of `addr` in the function the symbol table
    /// names: where code was inlined, the line of the outermost call, not a
    /// line inside `core`.
    pub(super) fn location(&self, addr: u64) -> Option<(String, u32)> {
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

    pub(super) fn read_line_tables(&self) -> Option<Mutex<LineTables>> {
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
    pub(super) fn section_data(&self, name: &str) -> Option<&[u8]> {
        let section = self
            .sections()
            .iter()
            .find(|s| s.name == name.as_bytes() && s.flags & SHF_COMPRESSED == 0)?;
        self.file().get(section.data.clone()?)
    }
}

record! {
    /// A symbol table entry as it is in the file.
    RawSymbol { name: u32 = 0, info: u8 = 4, section: u16 = 6, value: u64 = 8, size: u64 = 16 }
}

/// A code symbol, its name a range of the file.
pub(super) struct FuncSymbol {
    pub(super) addr: u64,
    pub(super) size: u64,
    pub(super) name: Range<usize>,
}
