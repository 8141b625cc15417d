//! The runtime proper (only built for `target_os = "none"`).
mod entry;
mod exceptions;
mod executor;
mod fault;
mod frames;
mod heap;
mod hvt;
mod kvmclock;
mod note;
mod one_request;
pub mod platform;
mod port;
mod pvh;
mod qemu;
mod sys;
mod trace;
mod virtio;
mod xen;

pub use note::Note;

/// Declares the devices the image needs, in the ELF note the monitor reads
/// before boot: `nym_baremetal::manifest!(block: true, net: false);`
#[macro_export]
macro_rules! manifest {
    (block: $block:expr, net: $net:expr) => {
        #[used]
        #[link_section = ".note.nym"]
        static NYM_MANIFEST: $crate::Note = $crate::Note::manifest($block, $net);
    };
}
