//! The block benchmark's unikernel (scripts/bench_targets.py): sequential
//! writes, a flush, then sequential reads of `mib` MiB in `chunk`-byte
//! requests on the graph's block device, timed by the platform's clock.
#![no_std]
extern crate alloc;

use alloc::{format, string::String, vec};
use libos::{Block, Console, MonoClock};

pub async fn start(
    console: impl Console,
    clock: impl MonoClock,
    disk: impl Block,
    chunk: u32,
    mib: u32,
) -> Result<(), String> {
    let chunk = chunk as usize;
    let total = (mib as u64) << 20;
    let sectors = (chunk / 512) as u64;
    let count = total / chunk as u64;
    if disk.info().sectors < count * sectors {
        return Err(format!("the disk holds less than {mib} MiB"));
    }
    let mut buf = vec![0x5au8; chunk];
    let t0 = clock.elapsed_ns();
    for i in 0..count {
        buf[0] = i as u8;
        disk.write(i * sectors, &buf).await.map_err(|e| format!("{e}"))?;
    }
    disk.flush().await.map_err(|e| format!("{e}"))?;
    let t1 = clock.elapsed_ns();
    for i in 0..count {
        disk.read(i * sectors, &mut buf).await.map_err(|e| format!("{e}"))?;
        if buf[0] != i as u8 {
            return Err(format!("read back the wrong data at request {i}"));
        }
    }
    let t2 = clock.elapsed_ns();
    let rate = |ns: u64| (total as f64 / 1e6) / (ns.max(1) as f64 / 1e9);
    console
        .log(&format!(
            "bench: chunk {chunk} write {:.2} MB/s read {:.2} MB/s",
            rate(t1 - t0),
            rate(t2 - t1)
        ))
        .await
        .map_err(|e| format!("{e}"))
}
