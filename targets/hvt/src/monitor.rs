//! Booting a guest: read and check the image, lay out guest memory, set
//! up the VM and its vCPU, start the devices, then hand over to the vCPU
//! loop (or to gdb first).
#![allow(unsafe_code)] // maps guest memory into the VM
use crate::boot::{self, BOOT_INFO};
use crate::debug::debug_session;
use crate::elf::{Image, ReadRest};
use crate::error::{kvm, MonitorError};
use crate::vcpu::{Guest, Outcome};
use kvm_ioctls::Kvm;
use nym_hvt_abi::{self as abi, BootInfo};
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// What to boot and with what.
#[derive(Debug)]
pub struct Config {
    /// The image.
    pub image: PathBuf,
    /// Guest memory in bytes.
    pub mem_size: u64,
    /// The guest's command line (its keys).
    pub cmdline: String,
    /// The block device's backing file, if the image has one.
    pub block: Option<BlockFile>,
    /// Install the system-call allowlist before the guest runs (on unless
    /// debugging the monitor itself; never while gdb is attached).
    pub seccomp: bool,
    /// Serve gdb here; the guest waits before its first instruction until
    /// gdb attaches.
    pub gdb: Option<std::net::TcpListener>,
    /// The guest's network: its link and port forwards.
    pub net: Option<crate::net::NetConfig>,
    /// Ends the guest from another thread when asked.
    pub stop: Option<crate::Stopper>,
    /// Record the guest's scheduler log here (`TRACE`).
    pub trace: Option<crate::trace::TraceSink>,
    /// Hand the run's exits and time here when the guest ends (not
    /// counted while gdb drives the guest).
    pub stats: Option<crate::StatsSink>,
}

/// A host file served as the guest's block device.
#[derive(Debug, Clone)]
pub struct BlockFile {
    /// The file; created with `size` bytes if missing.
    pub path: PathBuf,
    /// The size of a new file.
    pub size: u64,
}

impl BlockFile {
    /// Opens the file for this monitor alone, and its size in sectors.
    ///
    /// It must be a regular file, named directly (a symbolic link is
    /// refused, not followed: a guest's disk is never a file the link
    /// happens to point at), and no other monitor may hold it: the file is
    /// locked (`flock`, exclusive) for as long as the returned `File` is
    /// open, so a second guest on it is refused rather than left to corrupt
    /// the first one's writes. A missing file is created with [`size`]
    /// bytes; an existing one is served at its own size and never changed
    /// here (one of 0 bytes or of part of a sector is refused, naming it).
    ///
    /// [`size`]: BlockFile::size
    pub fn open(&self) -> std::io::Result<(File, u64)> {
        use std::io::{Error, ErrorKind};
        use std::os::unix::fs::OpenOptionsExt;
        let open = |create: bool| {
            std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(create)
                .custom_flags(libc::O_NOFOLLOW)
                .open(&self.path)
        };
        let (file, created) = match open(false) {
            Ok(file) => (file, false),
            Err(e) if e.kind() == ErrorKind::NotFound => {
                if self.size == 0 || !self.size.is_multiple_of(512) {
                    return Err(Error::other(format!(
                        "a new file of {} bytes is not a positive multiple of 512",
                        self.size
                    )));
                }
                // O_EXCL: a name made meanwhile (a link too) is not ours.
                (open(true)?, true)
            }
            Err(e) if e.raw_os_error() == Some(libc::ELOOP) && self.path.is_symlink() => {
                return Err(Error::other(
                    "it is a symbolic link; give the file it points to",
                ))
            }
            Err(e) if e.raw_os_error() == Some(libc::EISDIR) => {
                return Err(Error::other("it is not a regular file"))
            }
            Err(e) => return Err(e),
        };
        if !file.metadata()?.is_file() {
            return Err(Error::other("it is not a regular file"));
        }
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(Error::other(
                    "another monitor is using it (the file is locked); one guest at a time",
                ))
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(e),
        }
        // Sized only once locked: a second monitor opening the new file
        // meanwhile finds it empty and refuses it.
        if created {
            file.set_len(self.size)?;
        }
        let len = file.metadata()?.len();
        if len == 0 || !len.is_multiple_of(512) {
            return Err(Error::other(format!(
                "its size, {len} bytes, is not a positive multiple of 512 \
                 (the file is left as it is)"
            )));
        }
        Ok((file, len / 512))
    }
}

/// Loads and validates an image, checking that it fits `mem_size`. A file
/// larger than [`MAX_IMAGE_SIZE`](crate::elf::MAX_IMAGE_SIZE) is refused
/// before it is read. Only the file's head is read now, what booting needs
/// (headers, segments, notes: [`crate::elf::boot_len`]); the rest (symbols and DWARF,
/// most of an unstripped image) is read through the same open file if a
/// crash report or a debugger asks, so a build that replaces the file
/// meanwhile does not change what is read.
pub fn load_image(path: &Path, mem_size: u64) -> Result<Image, MonitorError> {
    use crate::elf::{ElfError, MAX_IMAGE_SIZE};
    let read = |source| MonitorError::Read {
        path: path.to_owned(),
        source,
    };
    let elf = |source| MonitorError::Elf {
        path: path.to_owned(),
        source,
    };
    let file = File::open(path).map_err(read)?;
    let meta = file.metadata().map_err(read)?;
    let image = if meta.is_file() {
        if meta.len() > MAX_IMAGE_SIZE {
            return Err(elf(ElfError::TooLarge(meta.len())));
        }
        let len = meta.len() as usize;
        let (head, rest) = read_head(file, len).map_err(read)?;
        Image::parse_head(head, len, Some(rest))
    } else {
        // A pipe or a device has no length to read a head of: read it
        // whole, never more than one byte past the cap, which `parse`
        // refuses (`/dev/zero` included).
        let mut bytes = Vec::new();
        file.take(MAX_IMAGE_SIZE + 1)
            .read_to_end(&mut bytes)
            .map_err(read)?;
        Image::parse(bytes)
    }
    .map_err(elf)?;
    image.check_fits(mem_size, boot::IMAGE_MIN).map_err(elf)?;
    Ok(image)
}

/// The first bytes of an image file of `len` bytes that booting needs
/// ([`crate::elf::boot_len`]), and the reader of the whole file through the
/// same open file, for later.
fn read_head(file: File, len: usize) -> std::io::Result<(Vec<u8>, ReadRest)> {
    use std::os::unix::fs::FileExt;
    // A head that holds a small image's headers and segments at once;
    // `boot_len` says when more is needed (at most twice: the program
    // headers, then the segments they name).
    let mut head = vec![0; len.min(HEAD)];
    file.read_exact_at(&mut head, 0)?;
    for _ in 0..2 {
        let need = crate::elf::boot_len(&head, len);
        if need <= head.len() {
            break;
        }
        let have = head.len();
        head.resize(need, 0);
        file.read_exact_at(&mut head[have..], have as u64)?;
    }
    let rest: ReadRest = Box::new(move || {
        let mut whole = vec![0; len];
        file.read_exact_at(&mut whole, 0).ok().map(|()| whole)
    });
    Ok((head, rest))
}

/// How much of an image file [`load_image`] reads first: hello's release
/// image needs 37 KiB of its 0.9 MB.
const HEAD: usize = 64 << 10;

/// The host's entropy source, which the guest's `RANDOM` calls read.
pub const ENTROPY: &str = "/dev/urandom";
/// For tests only: names a file to read instead of [`ENTROPY`] (one that is
/// missing or unreadable, to see boot refused; a short one, to see a guest
/// told that the host's entropy ran out).
pub const ENTROPY_ENV: &str = "NYM_ENTROPY";

/// [`ENTROPY`], or what [`ENTROPY_ENV`] names.
fn entropy_path() -> PathBuf {
    std::env::var_os(ENTROPY_ENV).map_or_else(|| PathBuf::from(ENTROPY), PathBuf::from)
}

/// Opens the entropy source and reads a byte from it: a guest never boots
/// on a host that cannot give it entropy (it would get none and not know).
fn open_entropy(path: &Path) -> Result<File, MonitorError> {
    let err = |source| MonitorError::Entropy {
        path: path.to_owned(),
        source,
    };
    let mut file = File::open(path).map_err(err)?;
    file.read_exact(&mut [0; 1]).map_err(err)?;
    Ok(file)
}

/// Boots `config.image`, writing the guest's console to `console`.
pub fn run(config: &Config, console: &mut dyn Write) -> Result<Outcome, MonitorError> {
    let image = load_image(&config.image, config.mem_size)?;
    let manifest = image
        .manifest()
        .map_err(|source| MonitorError::Elf {
            path: config.image.clone(),
            source,
        })?
        .ok_or_else(|| MonitorError::NoManifest(config.image.clone()))?;
    let block = match (&config.block, manifest.devices & abi::DEVICE_BLOCK != 0) {
        (Some(b), true) => Some(b.open().map_err(|source| MonitorError::Block {
            path: b.path.clone(),
            source,
        })?),
        (None, true) => {
            return Err(MonitorError::MissingDevice(
                "a block device (block::file): give it a file",
            ))
        }
        (_, false) => None,
    };
    let random = open_entropy(&entropy_path())?;
    let needs_net = manifest.devices & abi::DEVICE_NET != 0;
    if needs_net && config.net.is_none() {
        return Err(MonitorError::MissingDevice(
            "a network (netif::default): forward a port to it with -p HOST:GUEST (or HOST:GUEST/udp)",
        ));
    }

    // Laid out before any set-up, so that an image or a command line that
    // cannot boot is refused first; the TSC's rate is added once the vCPU
    // exists.
    let flags = if config.trace.is_none() {
        abi::BOOT_NO_TRACE
    } else {
        0
    };
    let (mem, info) = boot::load(config.mem_size, &image, &config.cmdline, flags)?;

    // Everything the run loop touches is open before the allowlist goes on.
    let net = match config.net.as_ref().filter(|_| needs_net) {
        Some(n) => {
            Some(crate::net::start(clone_net(n)?, config.seccomp).map_err(MonitorError::Net)?)
        }
        None => None,
    };
    let stop = config.stop.clone().unwrap_or_default();
    // `guest` owns guest memory, and is declared before the VM and its vCPU
    // so that it is dropped after them on every path out of here, early
    // returns and unwinding included: the memory KVM maps is unmapped only
    // once the VM is closed. (Made after them, as it was, it went first.)
    let mut guest = Guest {
        mem,
        image,
        block,
        started: Instant::now(),
        console,
        random: Some(random),
        net,
        stop: stop.clone(),
        trace: config.trace.clone(),
        stats: crate::Stats::default(),
    };

    let kvm_fd = Kvm::new().map_err(kvm("opening /dev/kvm"))?;
    let vm = kvm_fd.create_vm().map_err(kvm("creating a VM"))?;
    let region = kvm_bindings::kvm_userspace_memory_region {
        slot: 0,
        guest_phys_addr: 0,
        memory_size: guest.mem.size(),
        userspace_addr: guest.mem.host_base(),
        flags: 0,
    };
    // SAFETY: the region is guest memory's mapping, owned by `guest`, which
    // is declared before `vm` and so dropped after it (and after `vcpu`,
    // declared later still): the mapping outlives the VM.
    unsafe { vm.set_user_memory_region(region) }.map_err(kvm("mapping guest memory"))?;
    let mut vcpu = vm.create_vcpu(0).map_err(kvm("creating the vCPU"))?;
    // The guest's clock: its TSC at the rate KVM gives it. KVM refuses
    // (EIO) when the host's TSC is unstable; then the rate stays 0 and the
    // guest asks for the time by hypercall, an exit each.
    if let Ok(khz) = vcpu.get_tsc_khz() {
        let info = BootInfo {
            tsc_hz: u64::from(khz) * 1000,
            ..info
        };
        guest
            .mem
            .write(BOOT_INFO, &info)
            .map_err(boot::BootError::from)?;
    }
    // No CPUID is set: the guest's CPUID is empty. Guests are built for
    // x86-64's baseline (soft-float, RustCrypto's portable paths), read
    // time from the TSC at the rate above, and take entropy by hypercall,
    // so they need no feature bit; asking KVM for its supported leaves
    // (75 here, each a host CPUID, trapped under nesting) cost 0.35 ms of
    // a 7 ms boot (BENCHMARKS.md).
    let sregs = boot::sregs(vcpu.get_sregs().map_err(kvm("reading sregs"))?, &info);
    vcpu.set_sregs(&sregs).map_err(kvm("entering long mode"))?;
    let regs = kvm_bindings::kvm_regs {
        rip: guest.image.entry(),
        rsp: guest.mem.size(),
        rdi: BOOT_INFO,
        rflags: 0x2,
        ..Default::default()
    };
    vcpu.set_regs(&regs).map_err(kvm("setting registers"))?;

    stop.attach(guest.net.as_ref().map(|n| n.link.clone()));
    guest.started = Instant::now();
    let ran = run_vcpu(config, &mut guest, &mut vcpu);
    stop.detach();
    if let Some(sink) = &config.stats {
        *sink.lock().unwrap_or_else(|p| p.into_inner()) = std::mem::take(&mut guest.stats);
    }
    if let Some(sink) = &guest.trace {
        // A guest stopped from outside left its last events in its buffer.
        sink.lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain(&guest.mem);
    }
    ran
}

/// Runs the guest on the calling thread, under gdb first if asked, then
/// under the vCPU thread's allowlist.
fn run_vcpu(
    config: &Config,
    guest: &mut Guest,
    vcpu: &mut kvm_ioctls::VcpuFd,
) -> Result<Outcome, MonitorError> {
    if let Some(listener) = &config.gdb {
        if let Some(outcome) = debug_session(listener, &config.image, guest, vcpu, config.seccomp)?
        {
            return Ok(outcome);
        }
    }
    if config.seccomp {
        // After a gdb session this narrows the debugger's list.
        crate::seccomp::install(crate::seccomp::Thread::Vcpu)?;
    }
    guest.run(vcpu)
}

/// The network configuration for netd: its own handles to the listeners
/// and the tap (the caller keeps the originals).
fn clone_net(n: &crate::net::NetConfig) -> Result<crate::net::NetConfig, MonitorError> {
    let forwards = n
        .forwards
        .iter()
        .map(|f| {
            Ok(crate::net::Forward {
                listener: f.listener.try_clone()?,
                guest_port: f.guest_port,
            })
        })
        .collect::<std::io::Result<_>>()
        .map_err(MonitorError::Net)?;
    let tap = n
        .tap
        .as_ref()
        .map(|t| t.try_clone())
        .transpose()
        .map_err(MonitorError::Net)?;
    Ok(crate::net::NetConfig {
        forwards,
        guest_ip: n.guest_ip,
        tap,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_guest_boots_without_entropy() {
        let tmp = tempfile::tempdir().unwrap();
        let short = tmp.path().join("one-byte");
        std::fs::write(&short, [7]).unwrap();
        let missing = tmp.path().join("missing");
        for (path, why) in [
            (missing.as_path(), "No such file or directory"),
            (tmp.path(), "Is a directory"),
        ] {
            let err = open_entropy(path).unwrap_err().to_string();
            assert!(
                err.starts_with(&format!(
                    "cannot read the entropy source {}: {why}",
                    path.display()
                )),
                "{err}"
            );
        }
        // A source that answers once opens; what it cannot give later is the
        // guest's to hear (RANDOM's `ret`).
        let mut once = open_entropy(&short).unwrap();
        assert!(once.read_exact(&mut [0; 1]).is_err());
    }

    #[test]
    fn a_block_file_is_a_regular_file_held_by_one_monitor_and_never_resized() {
        let tmp = tempfile::tempdir().unwrap();
        let at = |name: &str, size| BlockFile {
            path: tmp.path().join(name),
            size,
        };
        let refused = |b: &BlockFile| b.open().expect_err("refused").to_string();

        // A missing file is made at the graph's size; then it is in use.
        let disk = at("disk.img", 64 << 10);
        let (held, sectors) = disk.open().unwrap();
        assert_eq!(sectors, 128);
        assert_eq!(std::fs::metadata(&disk.path).unwrap().len(), 64 << 10);
        assert!(refused(&disk).contains("another monitor is using it"));
        // Whoever holds the lock, this monitor or another process's flock.
        drop(held);
        let other = File::open(&disk.path).unwrap();
        other.try_lock().unwrap();
        assert!(refused(&disk).contains("another monitor is using it"));
        drop(other);
        assert_eq!(disk.open().unwrap().1, 128, "free again");

        // A link to it is refused, not followed.
        std::os::unix::fs::symlink(&disk.path, tmp.path().join("link.img")).unwrap();
        assert!(refused(&at("link.img", 512)).contains("it is a symbolic link"));
        // Existing files keep their size, whatever the graph says.
        for (name, len) in [("empty.img", 0), ("odd.img", 1000)] {
            std::fs::write(tmp.path().join(name), vec![1; len]).unwrap();
            let err = refused(&at(name, 64 << 10));
            assert!(
                err.contains(&format!(
                    "its size, {len} bytes, is not a positive multiple of 512"
                )),
                "{err}"
            );
            assert_eq!(std::fs::read(tmp.path().join(name)).unwrap(), vec![1; len]);
        }
        assert_eq!(at("odd.img", 1000).path.metadata().unwrap().len(), 1000);
        std::fs::create_dir(tmp.path().join("dir.img")).unwrap();
        assert!(refused(&at("dir.img", 512)).contains("it is not a regular file"));
        // A new file of part of a sector is not made at all.
        assert!(refused(&at("new.img", 100)).contains("a new file of 100 bytes"));
        assert!(!tmp.path().join("new.img").exists());
    }

    /// A regular file is read by its head (symbols later); a pipe, which
    /// has no length, is read whole, up to the cap, and boots the same.
    #[test]
    fn an_image_loads_from_a_file_and_from_a_pipe_alike() {
        let fixture = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tiny.elf");
        let bytes = std::fs::read(fixture).unwrap();
        let whole = Image::parse(bytes.clone()).unwrap();
        let from_file = load_image(Path::new(fixture), 64 << 20).unwrap();
        let tmp = tempfile::tempdir().unwrap();
        let fifo = tmp.path().join("image.fifo");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a NUL-terminated path; mkfifo reads it only.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let writer = {
            let (fifo, bytes) = (fifo.clone(), bytes.clone());
            std::thread::spawn(move || std::fs::write(fifo, bytes).unwrap())
        };
        let from_pipe = load_image(&fifo, 64 << 20).unwrap();
        writer.join().unwrap();
        for image in [&from_file, &from_pipe] {
            assert_eq!(image.entry(), whole.entry());
            assert_eq!(image.segments(), whole.segments());
            for (a, b) in image.segments().iter().zip(whole.segments()) {
                assert_eq!(image.segment_data(a), whole.segment_data(b));
            }
            let name = |i: &Image| i.symbolize(whole.entry()).map(|s| s.name);
            assert_eq!(name(image), name(&whole));
            assert!(name(image).is_some());
        }
    }

    #[test]
    fn an_image_too_large_is_refused_before_it_is_read() {
        let tmp = tempfile::tempdir().unwrap();
        let big = tmp.path().join("big.elf");
        // Sparse: 257 MiB on paper, nothing on disk.
        File::create(&big)
            .unwrap()
            .set_len(crate::elf::MAX_IMAGE_SIZE + (1 << 20))
            .unwrap();
        let started = Instant::now();
        let err = load_image(&big, 64 << 20).unwrap_err().to_string();
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
        assert_eq!(
            err,
            format!(
                "{}: the image is 269484032 bytes; images larger than 256 MiB are refused",
                big.display()
            )
        );
    }
}
