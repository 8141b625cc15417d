//! The manifest note (see `nym_hvt_abi`'s crate docs).
use nym_hvt_abi::{Manifest, DEVICE_BLOCK, DEVICE_NET, MANIFEST_VERSION, NOTE_MANIFEST};

/// An ELF note carrying a [`Manifest`], laid out as the ELF spec says.
#[repr(C, align(4))]
pub struct Note {
    namesz: u32,
    descsz: u32,
    ty: u32,
    name: [u8; 4],
    desc: Manifest,
}

impl Note {
    /// The manifest of an image that uses a block device, a network, or not.
    pub const fn manifest(block: bool, net: bool) -> Note {
        Note {
            namesz: 4,
            descsz: core::mem::size_of::<Manifest>() as u32,
            ty: NOTE_MANIFEST,
            name: *b"nym\0",
            desc: Manifest {
                version: MANIFEST_VERSION,
                devices: if block { DEVICE_BLOCK } else { 0 } | if net { DEVICE_NET } else { 0 },
            },
        }
    }
}
