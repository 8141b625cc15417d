//! Packet captures in the classic pcap format (what tcpdump writes and
//! Wireshark and tshark read), stamped with simulated time.
use std::io::{BufWriter, Write};
use std::path::Path;
use std::time::Duration;

/// The capture's clock: simulated time from this instant (2030-01-01
/// UTC), the same in every run, so a capture's bytes follow the seed.
pub const EPOCH_SECS: u64 = 1_893_456_000;

/// An open capture.
pub struct Pcap {
    out: Box<dyn Write + Send>,
    /// The first write error, kept to report when the run ends.
    failed: Option<std::io::Error>,
}

impl Pcap {
    /// Creates `path` and writes the header (Ethernet, microseconds).
    pub fn create(path: &Path) -> std::io::Result<Pcap> {
        let file = std::fs::File::create(path)?;
        Pcap::to(Box::new(BufWriter::new(file)))
    }

    /// A capture written to `out`.
    pub fn to(mut out: Box<dyn Write + Send>) -> std::io::Result<Pcap> {
        let mut header = Vec::with_capacity(24);
        header.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
        header.extend_from_slice(&2u16.to_le_bytes());
        header.extend_from_slice(&4u16.to_le_bytes());
        header.extend_from_slice(&0i32.to_le_bytes()); // UTC
        header.extend_from_slice(&0u32.to_le_bytes()); // accuracy
        header.extend_from_slice(&65_535u32.to_le_bytes()); // snap length
        header.extend_from_slice(&1u32.to_le_bytes()); // Ethernet
        out.write_all(&header)?;
        Ok(Pcap { out, failed: None })
    }

    /// Records `frame`, seen `at` into the run.
    pub fn frame(&mut self, at: Duration, frame: &[u8]) {
        if self.failed.is_some() {
            return;
        }
        let mut record = Vec::with_capacity(16 + frame.len());
        let secs = EPOCH_SECS + at.as_secs();
        record.extend_from_slice(&(secs as u32).to_le_bytes());
        record.extend_from_slice(&at.subsec_micros().to_le_bytes());
        record.extend_from_slice(&(frame.len() as u32).to_le_bytes());
        record.extend_from_slice(&(frame.len() as u32).to_le_bytes());
        record.extend_from_slice(frame);
        if let Err(e) = self.out.write_all(&record) {
            self.failed = Some(e);
        }
    }

    /// Flushes what is written; the first error of the capture, if any.
    pub fn flush(&mut self) -> std::io::Result<()> {
        if let Some(e) = self.failed.take() {
            return Err(e);
        }
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_record_holds_the_simulated_time_and_the_whole_frame() {
        let buf = Shared::default();
        let mut p = Pcap::to(Box::new(buf.clone())).unwrap();
        p.frame(Duration::from_micros(2_500_001), &[1, 2, 3]);
        p.flush().unwrap();
        let bytes = buf.0.lock().unwrap().clone();
        assert_eq!(bytes.len(), 24 + 16 + 3);
        assert_eq!(&bytes[..4], &[0xd4, 0xc3, 0xb2, 0xa1]);
        let word = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap());
        assert_eq!(word(20), 1, "Ethernet");
        assert_eq!(word(24), (EPOCH_SECS + 2) as u32);
        assert_eq!((word(28), word(32), word(36)), (500_001, 3, 3));
        assert_eq!(&bytes[40..], &[1, 2, 3]);
    }
}
