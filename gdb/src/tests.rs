//! The stub over a fake debuggee, through the real protocol on loopback.
//!
//! The fake "CPU" executes one byte per instruction: `0x90` does nothing,
//! `0xcc` is a planted breakpoint, `0x01` writes to the data word at
//! `DATA`, `0xc3` exits with status 7.
use super::*;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};

const BASE: u64 = 0x1000;
const DATA: u64 = 0x1800;

struct Fake {
    mem: Vec<u8>,
    rip: u64,
    rax: u64,
    slots: [Option<HwSlot>; 4],
    stop_after: Option<usize>,
}

impl Fake {
    fn new(code: &[u8]) -> Fake {
        let mut mem = vec![0x90; 0x1000];
        mem[..code.len()].copy_from_slice(code);
        Fake {
            mem,
            rip: BASE,
            rax: 0,
            slots: [None; 4],
            stop_after: None,
        }
    }
    fn byte(&self, addr: u64) -> Option<u8> {
        addr.checked_sub(BASE)
            .and_then(|o| self.mem.get(o as usize))
            .copied()
    }
}

impl Debuggee for Fake {
    type Error = String;
    fn read_registers(&mut self) -> Result<Registers, String> {
        let mut regs = [0; 16];
        regs[0] = self.rax;
        Ok(Registers {
            rip: self.rip,
            regs,
            ..Default::default()
        })
    }
    fn write_registers(&mut self, regs: &Registers) -> Result<(), String> {
        self.rip = regs.rip;
        self.rax = regs.regs[0];
        Ok(())
    }
    fn read_memory(&mut self, addr: u64, buf: &mut [u8]) -> Result<usize, String> {
        let mut n = 0;
        for (i, b) in buf.iter_mut().enumerate() {
            match self.byte(addr + i as u64) {
                Some(v) => *b = v,
                None => break,
            }
            n += 1;
        }
        Ok(n)
    }
    fn write_memory(&mut self, addr: u64, data: &[u8]) -> Result<bool, String> {
        if self.byte(addr).is_none() || self.byte(addr + data.len() as u64 - 1).is_none() {
            return Ok(false);
        }
        let o = (addr - BASE) as usize;
        self.mem[o..o + data.len()].copy_from_slice(data);
        Ok(true)
    }
    fn set_hw_slots(&mut self, slots: &[Option<HwSlot>; 4]) -> Result<(), String> {
        self.slots = *slots;
        Ok(())
    }
    fn resume(
        &mut self,
        step: bool,
        interrupted: &mut dyn FnMut() -> bool,
    ) -> Result<Stop, String> {
        let mut executed = 0;
        loop {
            if interrupted() || self.stop_after == Some(executed) {
                return Ok(Stop::Interrupted);
            }
            // A hardware breakpoint fires before its instruction, except
            // the one the debuggee is resuming from.
            if let Some(i) = self.slots.iter().position(|s| {
                *s == Some(HwSlot {
                    addr: self.rip,
                    kind: HwKind::Exec,
                })
            }) {
                if executed > 0 {
                    return Ok(Stop::Hw(i));
                }
            }
            match self.byte(self.rip).ok_or("ran off memory")? {
                0xcc => return Ok(Stop::SwBreak),
                0xc3 => return Ok(Stop::Exited(7)),
                0xfe => {
                    self.rip = BASE;
                    std::thread::sleep(std::time::Duration::from_micros(50));
                }
                0x01 => {
                    let o = (DATA - BASE) as usize;
                    self.mem[o] = self.mem[o].wrapping_add(1);
                    self.rip += 1;
                    if let Some(i) = self.slots.iter().position(|s| {
                        matches!(
                            s,
                            Some(HwSlot {
                                addr: DATA,
                                kind: HwKind::Data { .. }
                            })
                        )
                    }) {
                        return Ok(Stop::Hw(i));
                    }
                }
                _ => self.rip += 1,
            }
            executed += 1;
            if step {
                return Ok(Stop::Step);
            }
        }
    }
}

/// A minimal RSP client: sends packets, checks acks, returns replies.
struct Client(TcpStream);

impl Client {
    fn send(&mut self, body: &str) -> String {
        let sum = body.bytes().fold(0u8, |a, b| a.wrapping_add(b));
        write!(self.0, "${body}#{sum:02x}").unwrap();
        self.reply()
    }
    fn reply(&mut self) -> String {
        let mut byte = [0u8];
        loop {
            self.0.read_exact(&mut byte).unwrap();
            if byte[0] == b'$' {
                break;
            }
        }
        let mut body = Vec::new();
        loop {
            self.0.read_exact(&mut byte).unwrap();
            if byte[0] == b'#' {
                break;
            }
            body.push(byte[0]);
        }
        let mut sum = [0u8; 2];
        self.0.read_exact(&mut sum).unwrap();
        Write::write_all(&mut self.0, b"+").unwrap();
        // Run-length encoding: `X*N` repeats X (N - 29) more times.
        let mut out = Vec::new();
        let mut i = 0;
        while i < body.len() {
            if body[i] == b'*' && i + 1 < body.len() {
                let last = *out.last().unwrap();
                out.extend(std::iter::repeat_n(last, usize::from(body[i + 1] - 29)));
                i += 2;
            } else {
                out.push(body[i]);
                i += 1;
            }
        }
        String::from_utf8(out).unwrap()
    }
}

fn session(code: &[u8], client: impl FnOnce(&mut Client) + Send + 'static) -> (Ending, Fake) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let t = std::thread::spawn(move || {
        let mut c = Client(TcpStream::connect(addr).unwrap());
        c.0.set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        client(&mut c);
    });
    let (stream, _) = listener.accept().unwrap();
    let mut fake = Fake::new(code);
    let ending = serve(&mut fake, stream);
    t.join().unwrap();
    (ending, fake)
}

fn rip_of(g_reply: &str) -> u64 {
    // 16 general registers of 8 bytes (16 hex digits each), then rip.
    let hex = &g_reply[16 * 16..17 * 16];
    u64::from_le_bytes(std::array::from_fn(|i| {
        u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap()
    }))
}

#[test]
fn a_software_breakpoint_stops_where_it_was_set_and_leaves_no_trace() {
    let (ending, fake) = session(&[0x90, 0x90, 0x90, 0x90, 0xc3], |c| {
        assert!(c.send("?").starts_with('S') || c.send("?").starts_with('T'));
        assert_eq!(c.send("m1000,5"), "90909090c3");
        assert_eq!(c.send("Z0,1002,1"), "OK");
        assert_eq!(c.send("m1002,1"), "90", "gdb reads the code, not the int3");
        let stop = c.send("c");
        assert!(stop.contains("swbreak"), "{stop}");
        assert_eq!(rip_of(&c.send("g")), 0x1002);
        assert_eq!(c.send("z0,1002,1"), "OK");
        assert_eq!(c.send("D"), "OK");
    });
    assert_eq!(ending, Ending::Detached);
    assert_eq!(fake.mem[2], 0x90, "the original byte is back");
}

#[test]
fn stepping_hw_breakpoints_watchpoints_and_exit_are_reported() {
    let (ending, _) = session(&[0x90, 0x90, 0x01, 0x90, 0x90, 0x90, 0xc3], |c| {
        let stop = c.send("s");
        // The thread named, so gdb does not ask for the thread list.
        assert!(stop.starts_with("T05thread:"), "{stop}");
        assert_eq!(rip_of(&c.send("g")), 0x1001);
        assert_eq!(c.send("Z2,1800,1"), "OK", "a write watchpoint on the data");
        let stop = c.send("c");
        assert!(stop.contains("watch:1800"), "{stop}");
        assert_eq!(c.send("z2,1800,1"), "OK");
        assert_eq!(c.send("Z1,1005,1"), "OK", "a hardware breakpoint");
        let stop = c.send("c");
        assert!(stop.contains("hwbreak"), "{stop}");
        assert_eq!(rip_of(&c.send("g")), 0x1005);
        assert_eq!(c.send("z1,1005,1"), "OK");
        assert_eq!(c.send("c"), "W07", "the exit status reaches gdb");
    });
    assert_eq!(ending, Ending::Exited(7));
}

#[test]
fn ctrl_c_interrupts_a_running_debuggee() {
    let (ending, _) = session(&[0x90, 0x90, 0x90, 0xfe], |c| {
        Write::write_all(&mut c.0, b"$c#63").unwrap();
        let mut ack = [0u8];
        c.0.read_exact(&mut ack).unwrap();
        Write::write_all(&mut c.0, &[0x03]).unwrap();
        let stop = c.reply();
        assert!(
            stop.starts_with("S02") || stop.starts_with("T02"),
            "SIGINT: {stop}"
        );
        // `k` has no reply: the stub ends the session.
        Write::write_all(&mut c.0, b"$k#6b").unwrap();
        let mut rest = Vec::new();
        let _ = c.0.read_to_end(&mut rest);
    });
    // The fake loops forever: only the Ctrl-C could have stopped it.
    assert_eq!(ending, Ending::Killed);
}

#[test]
fn a_vanished_gdb_ends_the_session_and_removes_its_breakpoints() {
    let (ending, fake) = session(&[0x90, 0x90, 0x90, 0xc3], |c| {
        assert_eq!(c.send("Z0,1001,1"), "OK");
        assert_eq!(c.send("Z1,1002,1"), "OK");
        // gdb dies: the connection closes with breakpoints still planted.
    });
    assert!(matches!(ending, Ending::Disconnected(_)), "{ending:?}");
    assert_eq!(fake.mem[1], 0x90, "the planted int3 was removed");
    assert_eq!(fake.slots, [None; 4], "the hardware slots were cleared");
}

#[test]
fn garbage_and_bad_addresses_get_errors_not_panics() {
    let (ending, _) = session(&[0xc3], |c| {
        assert!(
            c.send("m9999999,4").starts_with('E'),
            "unmapped memory is an error reply"
        );
        assert!(c.send("M9999999,1:00").starts_with('E'));
        let refused = c.send("Z0,99999999,1");
        assert!(
            refused.is_empty() || refused.starts_with('E'),
            "a breakpoint on nothing is refused: {refused}"
        );
        let declined = c.send("Z2,1801,4");
        assert!(
            declined.is_empty() || declined.starts_with('E'),
            "a misaligned watch is declined: {declined}"
        );
        let _ = c.send("vNoSuchPacket");
        assert_eq!(c.send("D"), "OK");
    });
    assert_eq!(ending, Ending::Detached);
}

#[test]
fn a_slot_at_the_top_of_the_address_space_ends_there_without_overflow() {
    let top = HwSlot {
        addr: u64::MAX - 7,
        kind: HwKind::Data {
            kind: WatchKind::Write,
            len: 8,
        },
    };
    assert_eq!(top.last(), u64::MAX);
    assert!(top.covers(u64::MAX) && top.covers(u64::MAX - 7) && !top.covers(u64::MAX - 8));
    // A slot no packet can make (unaligned at the very top) still does
    // not wrap around to cover address 0.
    let wild = HwSlot {
        addr: u64::MAX,
        kind: HwKind::Data {
            kind: WatchKind::ReadWrite,
            len: 8,
        },
    };
    assert_eq!(wild.last(), u64::MAX);
    assert!(!wild.covers(0) && wild.covers(u64::MAX));
    let exec = HwSlot {
        addr: 0x1000,
        kind: HwKind::Exec,
    };
    assert!(exec.covers(0x1000) && !exec.covers(0x1001));
    // Packets cannot ask for a slot past the end either.
    assert_eq!(data_slot(u64::MAX - 3, 8, WatchKind::Write), None);
}
