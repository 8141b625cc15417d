//! Randomness on the host: the kernel's generator, read from `/dev/urandom`.
use super::{io_error, InitError};
use libos::{Random, RandomError};
use std::{fs, io::Read, path::Path};

const URANDOM: &str = "/dev/urandom";

/// Random bytes from the host kernel (`random::host()`), suitable for keys.
pub struct Host {
    urandom: fs::File,
}

impl Host {
    /// Opens `/dev/urandom` once, for the life of the device.
    pub fn new() -> Result<Self, InitError> {
        let urandom = fs::File::open(URANDOM)
            .map_err(|e| InitError::io("random::host: cannot open", Path::new(URANDOM), e))?;
        Ok(Self { urandom })
    }
}

impl Random for Host {
    fn fill(&self, buf: &mut [u8]) -> Result<(), RandomError> {
        // `Read for &File` reads through a shared reference; /dev/urandom has
        // no position to share, so concurrent fills need no lock.
        (&self.urandom)
            .read_exact(buf)
            .map_err(|e| RandomError::Unavailable(io_error(&e)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_fills_differ_and_are_not_zero() {
        let random = Host::new().unwrap();
        let (mut a, mut b) = ([0u8; 32], [0u8; 32]);
        random.fill(&mut a).unwrap();
        random.fill(&mut b).unwrap();
        assert_ne!(a, b);
        assert_ne!(a, [0u8; 32]);
        assert_ne!(random.next_u64().unwrap(), random.next_u64().unwrap());
    }

    #[test]
    fn large_and_empty_buffers_are_filled_whole() {
        let random = Host::new().unwrap();
        let mut big = vec![0u8; 1 << 20];
        random.fill(&mut big).unwrap();
        // 1 MiB of random bytes has no run of 64 zeros in practice; a short
        // read would leave the tail zeroed.
        assert!(big[big.len() - 64..].iter().any(|&b| b != 0));
        random.fill(&mut []).unwrap();
    }
}
