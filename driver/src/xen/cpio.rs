//! The smallest initramfs writer: files and directories in the `newc`
//! cpio format Linux unpacks. nym appends one to the cached dom0 image
//! at each boot, so the scripts dom0 runs come with the nym that runs
//! them (Linux unpacks concatenated archives one after the other, later
//! files replacing earlier ones).

/// An archive being written.
#[derive(Default)]
pub(super) struct Archive {
    bytes: Vec<u8>,
    ino: u32,
}

impl Archive {
    fn entry(&mut self, name: &str, mode: u32, data: &[u8]) {
        self.ino += 1;
        let fields = [
            self.ino,
            mode,
            0,
            0,
            1,
            0,
            data.len() as u32,
            0,
            0,
            0,
            0,
            name.len() as u32 + 1,
            0,
        ];
        self.bytes.extend_from_slice(b"070701");
        for f in fields {
            self.bytes.extend_from_slice(format!("{f:08x}").as_bytes());
        }
        self.bytes.extend_from_slice(name.as_bytes());
        self.bytes.push(0);
        self.pad();
        self.bytes.extend_from_slice(data);
        self.pad();
    }

    fn pad(&mut self) {
        while !self.bytes.len().is_multiple_of(4) {
            self.bytes.push(0);
        }
    }

    /// A directory (`nym`, no leading slash).
    pub(super) fn dir(&mut self, name: &str) {
        self.entry(name, 0o040_755, b"");
    }

    /// A file with permissions `perm` (`0o755`).
    pub(super) fn file(&mut self, name: &str, perm: u32, data: &[u8]) {
        self.entry(name, 0o100_000 | perm, data);
    }

    /// The archive, with its trailer.
    pub(super) fn finish(mut self) -> Vec<u8> {
        self.entry("TRAILER!!!", 0, b"");
        // Archives are read in 512-byte blocks by some tools: pad to one.
        while !self.bytes.len().is_multiple_of(512) {
            self.bytes.push(0);
        }
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_newc_and_aligned() {
        let mut a = Archive::default();
        a.dir("nym");
        a.file("nym/agent", 0o755, b"#!/bin/sh\n");
        let bytes = a.finish();
        assert!(bytes.starts_with(b"070701"));
        assert_eq!(bytes.len() % 512, 0);
        let text = String::from_utf8_lossy(&bytes);
        // The file's header: inode 2, mode 100755, size 10, name size 10.
        assert!(text.contains("07070100000002000081ed"), "{text}");
        assert!(text.contains("nym/agent\0"));
        assert!(text.contains("#!/bin/sh\n"));
        assert!(text.contains("TRAILER!!!"));
        for header in text.match_indices("070701") {
            assert_eq!(header.0 % 4, 0, "every header is 4-byte aligned");
        }
    }
}
