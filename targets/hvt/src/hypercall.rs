//! Decoding hypercalls: an I/O port write becomes a [`Call`] whose every
//! address and length has been checked against guest memory, or a
//! [`Violation`] naming the call and what was wrong. Handlers only ever see
//! the validated form.
use crate::memory::{BadAddress, GuestMemory, GuestRange};
use nym_hvt_abi::{self as abi, Hypercall};

/// A validated hypercall.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    /// Write the wall time into the [`abi::Time`] at `at`.
    WallTime {
        /// The struct.
        at: u64,
    },
    /// Write the monotonic time into the [`abi::Time`] at `at`.
    MonoTime {
        /// The struct.
        at: u64,
    },
    /// Print this text.
    Puts(GuestRange),
    /// Sleep for at most this long.
    Wait {
        /// Nanoseconds, at most [`MAX_WAIT_NS`].
        timeout: u64,
    },
    /// Write the block geometry into the [`abi::BlockInfo`] at `at`.
    BlockInfo {
        /// The struct.
        at: u64,
    },
    /// Read or write sectors.
    BlockIo {
        /// The struct (for `ret`).
        at: u64,
        /// Reading (else writing).
        read: bool,
        /// The first sector.
        sector: u64,
        /// The guest buffer.
        buf: GuestRange,
    },
    /// Fill this buffer with entropy.
    Random {
        /// The struct (for `ret`).
        at: u64,
        /// The buffer, at most [`abi::RANDOM_MAX`] bytes.
        buf: GuestRange,
    },
    /// End with this status.
    Exit(u64),
    /// The guest crashed.
    Fault(abi::Fault),
    /// Write the network interface into the [`abi::NetInfo`] at `at`.
    NetInfo {
        /// The struct.
        at: u64,
    },
    /// Send this frame.
    NetWrite {
        /// The struct (for `ret`).
        at: u64,
        /// The frame.
        frame: GuestRange,
    },
    /// Receive a frame into this buffer.
    NetRead {
        /// The struct (for `ret` and `len`).
        at: u64,
        /// The buffer.
        buf: GuestRange,
    },
    /// Take a batch of the guest's log (none: is it recorded?).
    Trace {
        /// The struct (for `on`).
        at: u64,
        /// The events.
        batch: GuestRange,
        /// How many, at most [`abi::TRACE_MAX`] (0: asking).
        count: u64,
        /// Asking: where the guest counts the events waiting in its
        /// buffer (`batch` then names the buffer's address).
        pending: u64,
    },
}

/// A hypercall that broke the ABI.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("hypercall {call}: {problem}")]
pub struct Violation {
    /// The call's name, or its port.
    pub call: String,
    /// What was wrong.
    pub problem: String,
}

/// The longest one `WAIT` blocks the vCPU: a guest asking for longer (up
/// to `u64::MAX` ns, centuries) is woken after this and waits again, so the
/// vCPU thread looks at the world (a stop asked for) at least this often
/// even if a wake-up were lost. `WAIT` promises at most its timeout, so
/// this is within the ABI.
pub const MAX_WAIT_NS: u64 = 1_000_000_000;

/// Whether `port` is a hypercall port.
pub fn is_hypercall(port: u16) -> bool {
    (abi::PORT_BASE..abi::PORT_BASE + abi::PORT_COUNT).contains(&port)
}

/// The hypercall an `out` to `port` makes; `Err` with its number if
/// there is none.
pub fn at_port(port: u16) -> Result<Hypercall, u16> {
    Hypercall::try_from(port.wrapping_sub(abi::PORT_BASE))
}

/// Decodes the guest's `out` of `data` to hypercall `port`.
pub fn decode(mem: &GuestMemory, port: u16, data: &[u8]) -> Result<Call, Violation> {
    let call = at_port(port);
    let violation = |problem: String| Violation {
        call: call.map_or("unknown", Hypercall::name).into(),
        problem,
    };
    let bad = |e: BadAddress| violation(e.to_string());
    // A call that moves at most `max` things per call: "asked for 5 bytes".
    let at_most = |n: u64, max: u64, verb: &str, things: &str| match n <= max {
        true => Ok(()),
        false => Err(violation(format!(
            "{verb} {n} {things}; at most {max} per call"
        ))),
    };
    let Ok(bytes) = <[u8; 4]>::try_from(data) else {
        return Err(violation(format!(
            "the argument must be a 4-byte guest address, got {} byte(s)",
            data.len()
        )));
    };
    let at = u64::from(u32::from_le_bytes(bytes));
    // Checks the struct itself: aligned and inside memory.
    macro_rules! load {
        ($t:ty) => {
            mem.read::<$t>(at).map_err(bad)?
        };
    }
    let call = match call {
        Ok(call) => call,
        Err(n) => {
            return Err(Violation {
                call: format!("on port {port:#x}"),
                problem: format!("there is no hypercall number {n}"),
            })
        }
    };
    // One arm per call of the table: a call added there without a decoder
    // here does not compile.
    Ok(match call {
        Hypercall::WallTime => {
            load!(abi::Time);
            Call::WallTime { at }
        }
        Hypercall::MonoTime => {
            load!(abi::Time);
            Call::MonoTime { at }
        }
        Hypercall::Puts => {
            let p = load!(abi::Puts);
            Call::Puts(mem.range(p.data, p.len).map_err(bad)?)
        }
        Hypercall::Wait => Call::Wait {
            timeout: load!(abi::Wait).timeout.min(MAX_WAIT_NS),
        },
        Hypercall::BlockInfo => {
            load!(abi::BlockInfo);
            Call::BlockInfo { at }
        }
        Hypercall::BlockRead | Hypercall::BlockWrite => {
            let io = load!(abi::BlockIo);
            Call::BlockIo {
                at,
                read: call == Hypercall::BlockRead,
                sector: io.sector,
                buf: mem.range(io.data, io.len).map_err(bad)?,
            }
        }
        Hypercall::Random => {
            let r = load!(abi::Random);
            at_most(r.len, abi::RANDOM_MAX, "asked for", "bytes")?;
            Call::Random {
                at,
                buf: mem.range(r.data, r.len).map_err(bad)?,
            }
        }
        Hypercall::Exit => Call::Exit(load!(abi::Exit).status),
        Hypercall::Fault => Call::Fault(load!(abi::Fault)),
        Hypercall::NetInfo => {
            load!(abi::NetInfo);
            Call::NetInfo { at }
        }
        Hypercall::NetWrite => {
            let io = load!(abi::NetIo);
            Call::NetWrite {
                at,
                frame: mem.range(io.data, io.len).map_err(bad)?,
            }
        }
        Hypercall::NetRead => {
            let io = load!(abi::NetIo);
            Call::NetRead {
                at,
                buf: mem.range(io.data, io.len).map_err(bad)?,
            }
        }
        Hypercall::Trace => {
            let t = load!(abi::Trace);
            at_most(t.count, abi::TRACE_MAX, "handed over", "events")?;
            let size = core::mem::size_of::<abi::TraceEvent>() as u64;
            Call::Trace {
                at,
                batch: mem.range(t.data, t.count * size).map_err(bad)?,
                count: t.count,
                pending: t.pending,
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::MIN_SIZE;
    use nym_hvt_abi::nr;

    fn out(n: u16, at: u32) -> (u16, [u8; 4]) {
        (abi::PORT_BASE + n, at.to_le_bytes())
    }

    #[test]
    fn well_formed_calls_decode_and_hostile_ones_are_violations() {
        let mut m = GuestMemory::new(MIN_SIZE).unwrap();
        m.write(
            0x2000,
            &abi::Puts {
                data: 0x3000,
                len: 5,
            },
        )
        .unwrap();
        let (p, d) = out(nr::PUTS, 0x2000);
        assert_eq!(
            decode(&m, p, &d),
            Ok(Call::Puts(m.range(0x3000, 5).unwrap()))
        );

        // The buffer runs past memory, the length overflows, the struct is
        // misaligned or outside memory, the port is unknown. Each case is the
        // raw words of the argument struct at `at`.
        let cases: Vec<(u16, u32, [u64; 4], &str)> = vec![
            (
                nr::PUTS,
                0x2000,
                [MIN_SIZE - 2, 5, 0, 0],
                "reach past the end",
            ),
            (
                nr::PUTS,
                0x2000,
                [0x3000, u64::MAX, 0, 0],
                "reach past the end",
            ),
            (nr::PUTS, 0x2004, [0; 4], "not 8-byte aligned"),
            (nr::PUTS, u32::MAX - 7, [0; 4], "reach past the end"),
            (
                nr::BLOCK_WRITE,
                0x2000,
                [0, 0, 5, u64::MAX - 1],
                "reach past the end",
            ),
            (
                nr::BLOCK_READ,
                0x2000,
                [0, 0, MIN_SIZE - 512, 1024],
                "reach past the end",
            ),
            (15, 0x2000, [0; 4], "no hypercall number 15"),
        ];
        for (n, at, words, expect) in cases {
            for (i, w) in words.iter().enumerate() {
                m.write(0x2000 + 8 * i as u64, w).unwrap();
            }
            let (p, d) = out(n, at);
            let err = decode(&m, p, &d).unwrap_err();
            assert!(err.to_string().contains(expect), "{err}");
        }
        // A wait without end is one of a second; a short one is as asked.
        for (asked, waits) in [(u64::MAX, MAX_WAIT_NS), (5, 5)] {
            m.write(0x2000, &abi::Wait { timeout: asked }).unwrap();
            let (p, d) = out(nr::WAIT, 0x2000);
            assert_eq!(decode(&m, p, &d), Ok(Call::Wait { timeout: waits }));
        }
        let err = decode(&m, abi::PORT_BASE + nr::EXIT, &[1]).unwrap_err();
        assert!(err.to_string().contains("got 1 byte"), "{err}");
        m.write(
            0x2000,
            &abi::Random {
                data: 0x3000,
                len: abi::RANDOM_MAX + 1,
                ret: 0,
            },
        )
        .unwrap();
        let (p, d) = out(nr::RANDOM, 0x2000);
        assert!(decode(&m, p, &d)
            .unwrap_err()
            .to_string()
            .contains("at most 4096"));
    }
}
