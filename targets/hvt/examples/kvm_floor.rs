//! The floor under any monitor's boot time on this machine: a process that
//! opens `/dev/kvm`, creates a VM with 2 MiB of memory and one vCPU, runs a
//! single `hlt` in real mode and exits. `scripts/bench.py` times it as a
//! whole process, as it times `nym boot`, so the two compare directly.
//!
//! `cargo run --release -p nym-hvt --example kvm_floor` prints the split:
//! VM set-up, and the one `KVM_RUN` that reaches the `hlt`. With a count,
//! `kvm_floor 1000000`, the guest first runs a two-instruction loop that
//! many times (`dec ecx; jnz`, no exits): the time per iteration is what
//! guest code costs on this machine.
#![allow(unsafe_code)] // a VM by hand: guest memory and its mapping
use kvm_ioctls::{Kvm, VcpuExit};
use std::time::Instant;

const MEM: usize = 2 << 20;
const ENTRY: u64 = 0x1000;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let count: u32 = match std::env::args().nth(1) {
        Some(n) => n.parse().map_err(|_| format!("`{n}`: not a count"))?,
        None => 0,
    };
    let start = Instant::now();
    let kvm = Kvm::new()?;
    let vm = kvm.create_vm()?;
    // SAFETY: an anonymous private mapping, checked before use; it outlives
    // the VM (the process ends first).
    let mem = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            MEM,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if mem == libc::MAP_FAILED {
        return Err(std::io::Error::last_os_error().into());
    }
    // Real mode: `mov ecx, count; l: dec ecx; jnz l; hlt`, or `hlt` alone.
    let code = if count == 0 {
        vec![0xf4]
    } else {
        let mut code = vec![0x66, 0xb9];
        code.extend_from_slice(&count.to_le_bytes());
        code.extend_from_slice(&[0x66, 0x49, 0x75, 0xfc, 0xf4]);
        code
    };
    // SAFETY: ENTRY plus the code's few bytes is inside the mapping.
    unsafe {
        std::ptr::copy_nonoverlapping(
            code.as_ptr(),
            (mem as *mut u8).add(ENTRY as usize),
            code.len(),
        )
    };
    let region = kvm_bindings::kvm_userspace_memory_region {
        slot: 0,
        guest_phys_addr: 0,
        memory_size: MEM as u64,
        userspace_addr: mem as u64,
        flags: 0,
    };
    // SAFETY: the region is the live mapping above, not shared with any
    // other slot.
    unsafe { vm.set_user_memory_region(region)? };
    let mut vcpu = vm.create_vcpu(0)?;
    let mut sregs = vcpu.get_sregs()?;
    sregs.cs.base = 0;
    sregs.cs.selector = 0;
    vcpu.set_sregs(&sregs)?;
    vcpu.set_regs(&kvm_bindings::kvm_regs {
        rip: ENTRY,
        rflags: 2,
        ..Default::default()
    })?;
    let ready = start.elapsed();
    let exit = vcpu.run()?;
    let ran = start.elapsed() - ready;
    if !matches!(exit, VcpuExit::Hlt) {
        return Err(format!("the vCPU stopped with {exit:?}, not hlt").into());
    }
    println!(
        "set-up {:.3} ms, KVM_RUN to hlt {:.3} ms",
        ready.as_secs_f64() * 1e3,
        ran.as_secs_f64() * 1e3
    );
    if count > 0 {
        println!(
            "{count} loop iterations: {:.0} ns each",
            ran.as_secs_f64() * 1e9 / f64::from(count)
        );
    }
    Ok(())
}
