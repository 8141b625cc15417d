//! Notes, in `PT_NOTE` segments and `SHT_NOTE` sections: nym's device
//! manifest and the PVH entry.
use super::*;
use std::ops::Range;

/// A `PT_NOTE` segment's bytes.
pub(super) struct NoteArea {
    pub(super) range: Range<usize>,
    pub(super) align: u64,
}

/// One ELF note.
pub(super) struct Note<'a> {
    /// Without its terminating NUL.
    pub(super) name: &'a [u8],
    pub(super) ty: u32,
    pub(super) desc: &'a [u8],
}

/// The notes in a note segment or section; stops at the first malformed one.
pub(super) struct Notes<'a> {
    pub(super) rest: &'a [u8],
    pub(super) align: usize,
}

impl<'a> Notes<'a> {
    /// `None` for an alignment notes cannot have.
    pub(super) fn new(data: &'a [u8], align: u64) -> Option<Notes<'a>> {
        let align = match align {
            0..=4 => 4,
            8 => 8,
            _ => return None,
        };
        Some(Notes { rest: data, align })
    }

    pub(super) fn split(&self) -> Option<(Note<'a>, &'a [u8])> {
        let data = self.rest;
        let name_size = usize::try_from(u32::at(data, 0)?).ok()?;
        let desc_size = usize::try_from(u32::at(data, 4)?).ok()?;
        let ty = u32::at(data, 8)?;
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

pub(super) fn align_up(n: usize, align: usize) -> Option<usize> {
    Some(n.checked_add(align - 1)? & !(align - 1))
}

impl Image {
    /// The descriptor of the first note named `name` (without its NUL) of type
    /// `ty`, from the `PT_NOTE` segments, then from `SHT_NOTE` sections.
    /// The segments' notes are in the head booting reads; the sections
    /// are read (with the rest of the file) only if they are not there.
    pub fn note(&self, name: &[u8], ty: u32) -> Option<&[u8]> {
        self.segment_note(name, ty).or_else(|| {
            let sections = self
                .sections()
                .iter()
                .filter(|s| s.ty == SHT_NOTE)
                .filter_map(|s| Some((s.data.clone()?, s.align)));
            find_note(self.file(), sections, name, ty)
        })
    }

    /// As [`Image::note`], from the `PT_NOTE` segments only: what booting
    /// reads, never the rest of the file.
    pub fn segment_note(&self, name: &[u8], ty: u32) -> Option<&[u8]> {
        let segments = self.notes.iter().map(|a| (a.range.clone(), a.align));
        find_note(&self.bytes, segments, name, ty)
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
        let (Some(version), Some(devices)) = (u32::at(desc, 0), u32::at(desc, 4)) else {
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
            4 => u32::at(desc, 0),
            8 => u32::try_from(u64::at(desc, 0)?).ok(),
            _ => None,
        }
    }
}

/// The descriptor of the first note named `name` of type `ty` in `areas`
/// (ranges of `bytes`, with their alignment).
fn find_note<'a>(
    bytes: &'a [u8],
    areas: impl Iterator<Item = (Range<usize>, u64)>,
    name: &[u8],
    ty: u32,
) -> Option<&'a [u8]> {
    areas
        .filter_map(|(range, align)| Notes::new(bytes.get(range)?, align))
        .flatten()
        .find(|note| note.name == name && note.ty == ty)
        .map(|note| note.desc)
}
