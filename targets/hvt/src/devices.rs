//! The devices the monitor serves a guest: console, clocks, wait,
//! entropy, block and network, one hypercall at a time.
use crate::error::MonitorError;
use crate::hypercall::Call;
use crate::vcpu::{Guest, Outcome};
use kvm_ioctls::VcpuFd;
use nym_hvt_abi as abi;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The most bytes a handler copies through one buffer of its own: console
/// text and block requests go in pieces this big, so a guest naming all of
/// its memory costs the monitor no more than this.
const CHUNK: usize = 64 << 10;

impl Guest<'_> {
    fn now(&self) -> u64 {
        self.started.elapsed().as_nanos() as u64
    }

    /// Serves one call; `Some` ends the guest.
    pub(crate) fn serve(
        &mut self,
        call: Call,
        vcpu: &mut VcpuFd,
    ) -> Result<Option<Outcome>, MonitorError> {
        match call {
            Call::WallTime { at } => {
                let nanos = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos() as u64);
                let _ = self.mem.write(at, &abi::Time { nanos });
            }
            Call::MonoTime { at } => {
                let nanos = self.now();
                let _ = self.mem.write(at, &abi::Time { nanos });
            }
            Call::Puts(text) => {
                let mut piece = vec![0; text.len().min(CHUNK)];
                for r in text.chunks(CHUNK) {
                    let n = self.mem.read_into(r, &mut piece);
                    let _ = self.console.write_all(&piece[..n]);
                }
                let _ = self.console.flush();
            }
            Call::Wait { timeout } => self.wait(Duration::from_nanos(timeout)),
            Call::BlockInfo { at } => {
                let info = match &self.block {
                    Some((_, sectors)) => abi::BlockInfo {
                        ret: abi::Ret::Ok as u64,
                        sector_size: 512,
                        sectors: *sectors,
                        writable: 1,
                    },
                    None => abi::BlockInfo {
                        ret: abi::Ret::NoDevice as u64,
                        ..Default::default()
                    },
                };
                let _ = self.mem.write(at, &info);
            }
            Call::BlockIo {
                at,
                read,
                sector,
                buf,
            } => {
                let ret = self.block_io(read, sector, buf);
                let mut io: abi::BlockIo = self.mem.read(at).unwrap_or_default();
                io.ret = ret as u64;
                let _ = self.mem.write(at, &io);
            }
            Call::Random { at, buf } => {
                // Read whole before the guest sees a byte: a failed read
                // leaves its buffer as it was and says so, never "done".
                let mut bytes = vec![0; buf.len()];
                let ret = match &mut self.random {
                    None => abi::Ret::NoDevice,
                    Some(f) => match f.read_exact(&mut bytes) {
                        Ok(()) => {
                            self.mem.write_from(buf, &bytes);
                            abi::Ret::Ok
                        }
                        Err(_) => abi::Ret::Io,
                    },
                };
                let mut r: abi::Random = self.mem.read(at).unwrap_or_default();
                r.ret = ret as u64;
                let _ = self.mem.write(at, &r);
            }
            Call::Exit(status) => return Ok(Some(Outcome::Exited((status & 0xff) as i32))),
            Call::Fault(f) => return Ok(Some(Outcome::Crashed(self.report_fault(&f, vcpu)))),
            Call::NetInfo { at } => {
                let info = match &self.net {
                    Some(net) => abi::NetInfo {
                        ret: abi::Ret::Ok as u64,
                        mac: abi::NET_GUEST_MAC
                            .iter()
                            .rev()
                            .fold(0, |m, &b| (m << 8) | u64::from(b)),
                        mtu: abi::NET_MTU,
                        flags: if net.tap { abi::NET_CHECKSUMS } else { 0 },
                    },
                    None => abi::NetInfo {
                        ret: abi::Ret::NoDevice as u64,
                        ..Default::default()
                    },
                };
                let _ = self.mem.write(at, &info);
            }
            Call::NetWrite { at, frame } => {
                let ret = match &self.net {
                    None => abi::Ret::NoDevice,
                    Some(_) if frame.len() as u64 > abi::NET_MTU => abi::Ret::OutOfRange,
                    Some(net) => {
                        net.link.from_guest(self.mem.to_vec(frame));
                        abi::Ret::Ok
                    }
                };
                let mut io: abi::NetIo = self.mem.read(at).unwrap_or_default();
                io.ret = ret as u64;
                let _ = self.mem.write(at, &io);
            }
            Call::NetRead { at, buf } => {
                let mut io: abi::NetIo = self.mem.read(at).unwrap_or_default();
                (io.ret, io.len) = match self.net.as_ref().map(|n| n.link.to_guest()) {
                    None => (abi::Ret::NoDevice as u64, 0),
                    Some(None) => (abi::Ret::Ok as u64, 0),
                    Some(Some(f)) if f.len() > buf.len() => (abi::Ret::OutOfRange as u64, 0),
                    Some(Some(f)) => {
                        self.mem.write_from(buf, &f);
                        (abi::Ret::Ok as u64, f.len() as u64)
                    }
                };
                let _ = self.mem.write(at, &io);
            }
            Call::Trace {
                at,
                batch,
                count,
                pending,
            } => {
                let on = match &self.trace {
                    None => 0,
                    Some(sink) => {
                        let mut log = sink.lock().unwrap_or_else(|p| p.into_inner());
                        if count == 0 {
                            log.buffer = (pending != 0).then(|| (batch.start(), pending));
                        } else if let Err(v) = log.take(&self.mem, batch, count) {
                            return Ok(Some(Outcome::Violation(v)));
                        }
                        1
                    }
                };
                let mut t: abi::Trace = self.mem.read(at).unwrap_or_default();
                t.on = on;
                let _ = self.mem.write(at, &t);
            }
        }
        Ok(None)
    }

    /// Whether a frame waits for the guest.
    pub(crate) fn frame_waiting(&self) -> bool {
        self.net.as_ref().is_some_and(|n| n.link.pending())
    }

    /// Blocks the vCPU for at most `d`; less when a frame waits for the
    /// guest or a stop is asked for.
    pub(crate) fn wait(&self, d: Duration) {
        match &self.net {
            Some(net) => net.link.wait(d),
            None => self.stop.sleep(d),
        }
    }

    fn block_io(&mut self, read: bool, sector: u64, buf: crate::memory::GuestRange) -> abi::Ret {
        let Some((file, sectors)) = &self.block else {
            return abi::Ret::NoDevice;
        };
        if !buf.len().is_multiple_of(512) {
            return abi::Ret::Unaligned;
        }
        let count = (buf.len() / 512) as u64;
        match sector.checked_add(count) {
            Some(end) if end <= *sectors => {}
            _ => return abi::Ret::OutOfRange,
        }
        // Through a buffer of the monitor's, a piece at a time: the guest's
        // memory is never handed to the kernel as a slice (see `memory`).
        let mut piece = vec![0; buf.len().min(CHUNK)];
        let mut offset = sector * 512;
        for r in buf.chunks(CHUNK) {
            let piece = &mut piece[..r.len()];
            let done = if read {
                file.read_exact_at(piece, offset).map(|()| {
                    self.mem.write_from(r, piece);
                })
            } else {
                self.mem.read_into(r, piece);
                file.write_all_at(piece, offset)
            };
            if done.is_err() {
                return abi::Ret::Io;
            }
            offset += r.len() as u64;
        }
        if !read && file.sync_data().is_err() {
            return abi::Ret::Io;
        }
        abi::Ret::Ok
    }
}
