//! The monitor's system-call allowlists, one per thread (Firecracker's
//! shape): each thread that touches the guest installs its own filter on
//! itself just before it first does, and keeps it until it ends.
//!
//! - the **vCPU** thread runs the guest and serves its hypercalls: KVM's
//!   vCPU ioctls (by request number, nothing else), the console, the block
//!   file, clocks, waiting, allocation; no sockets, no files opened;
//! - **netd** (the guest's network) also polls, accepts and reads and
//!   writes sockets (forwarded connections, and forwarded UDP's datagrams
//!   with `recvfrom` and `sendto` on sockets bound before the filter), and
//!   its one ioctl makes them non-blocking;
//! - the vCPU thread **under gdb** adds what the stub needs: its socket,
//!   the debug ioctls, `FIONBIO`;
//! - the **kicker** (gdb's Ctrl-C) only sleeps and signals the vCPU thread.
//!
//! Memory is never made executable: `mmap` and `mprotect` with
//! `PROT_EXEC` are refused like any call off the list, which kills the
//! whole process. A filtered thread that tries to open a file (glibc's
//! allocator reads `/proc/sys/vm/overcommit_memory` once) gets `EACCES`
//! instead, so a thread is never killed for what a library does on its
//! own, and still opens nothing.
//!
//! Filters are per thread, so a monitor running inside a larger process
//! (the REPL's `:boot`) confines its own threads and nothing else.
use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};
use std::collections::BTreeMap;

/// Why a filter could not be installed.
#[derive(Debug, thiserror::Error)]
#[error("installing the seccomp filter: {0}")]
pub struct SeccompError(String);

/// Which thread a filter is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Thread {
    /// The vCPU thread: runs the guest, serves hypercalls.
    Vcpu,
    /// netd: the monitor's end of the guest's network.
    Netd,
    /// The vCPU thread while gdb is attached: the stub's calls too.
    Debugger,
    /// The thread that kicks the vCPU out of KVM_RUN for gdb's Ctrl-C.
    Kicker,
}

/// The threads a call in [`CALLS`] is allowed on, as bits: the vCPU
/// thread (with or without gdb), netd, the vCPU thread only while gdb is
/// attached, and the kicker.
const V: u8 = 1;
const N: u8 = 2;
const D: u8 = 4;
const K: u8 = 8;
const ALL: u8 = V | N | D | K;

impl Thread {
    /// Its bit in [`CALLS`] (under gdb, the vCPU thread's calls too).
    fn bits(self) -> u8 {
        match self {
            Thread::Vcpu => V,
            Thread::Netd => N,
            Thread::Debugger => V | D,
            Thread::Kicker => K,
        }
    }
}

/// Every system call a monitor thread may make (besides `mmap`,
/// `mprotect`, `ioctl` and the opens, which have rules of their own in
/// [`rules`]), the threads that may make it, and why. Every thread:
/// allocation (never executable), locks, clocks, waiting, signals and
/// thread exit. The vCPU thread: the block file. netd: waiting on sockets
/// and moving their bytes. Under gdb: gdb's connection. The kicker:
/// signalling the vCPU thread.
#[rustfmt::skip]
const CALLS: &[(i64, u8, &str)] = &[
    (libc::SYS_write, ALL, "the console, and netd's wake-up eventfd"),
    (libc::SYS_writev, ALL, "the console, through buffered writers"),
    (libc::SYS_read, ALL, "the entropy source opened before the filter"),
    (libc::SYS_futex, ALL, "locks and condition variables"),
    (libc::SYS_munmap, ALL, "freeing memory, and guest memory at exit"),
    (libc::SYS_mremap, ALL, "allocation"),
    (libc::SYS_brk, ALL, "allocation"),
    (libc::SYS_madvise, ALL, "the allocator returning memory"),
    (libc::SYS_close, ALL, "closing the VM and files at exit"),
    (libc::SYS_fcntl, ALL, "checking descriptors as they are closed"),
    (libc::SYS_clock_gettime, ALL, "clocks, when the vDSO falls back"),
    (libc::SYS_clock_nanosleep, ALL, "sleeping"),
    (libc::SYS_nanosleep, ALL, "sleeping"),
    (libc::SYS_sched_yield, ALL, "spin loops in std"),
    (libc::SYS_sigaltstack, ALL, "std's stack-overflow handler at thread exit"),
    (libc::SYS_rt_sigreturn, ALL, "returning from the kick's signal handler"),
    (libc::SYS_rt_sigprocmask, ALL, "std's signal handling"),
    (libc::SYS_rseq, ALL, "a thread registering itself"),
    (libc::SYS_exit, ALL, "thread exit"),
    (libc::SYS_exit_group, ALL, "process exit"),
    (libc::SYS_pread64, V, "block reads, and the image's symbols read for a crash report or gdb"),
    (libc::SYS_pwrite64, V, "block writes"),
    (libc::SYS_fdatasync, V, "block writes are durable before the guest resumes"),
    (libc::SYS_fsync, V, "block writes are durable before the guest resumes"),
    (libc::SYS_poll, N | D, "waiting for frames and host sockets, or for gdb"),
    (libc::SYS_ppoll, N | D, "waiting (libc may use ppoll for poll)"),
    (libc::SYS_accept4, N, "accepting forwarded connections"),
    (libc::SYS_accept, N, "accepting forwarded connections"),
    (libc::SYS_recvfrom, N | D, "reading forwarded connections and datagrams, gdb's packets, peeking for Ctrl-C"),
    (libc::SYS_sendto, N | D, "writing forwarded connections and datagrams, answering gdb"),
    (libc::SYS_shutdown, N | D, "passing a guest's FIN on, closing gdb's connection"),
    (libc::SYS_setsockopt, N | D, "no Nagle on forwarded connections, gdb's connection options"),
    (libc::SYS_getpid, K, "pthread_kill"),
    (libc::SYS_gettid, K, "pthread_kill"),
    (libc::SYS_tgkill, K, "pthread_kill: the kick itself"),
];

/// Opening a file: refused with EACCES (see `install`), never allowed.
const OPENS: [i64; 2] = [libc::SYS_open, libc::SYS_openat];

// The Linux ioctl encoding: direction, size, type, number.
const fn ioc(dir: u64, nr: u64, size: usize) -> u64 {
    (dir << 30) | ((size as u64) << 16) | (0xae << 8) | nr
}
const IOC_WRITE: u64 = 1;
const IOC_READ: u64 = 2;
const KVM_RUN: u64 = ioc(0, 0x80, 0);
const KVM_GET_REGS: u64 = ioc(IOC_READ, 0x81, size_of::<kvm_bindings::kvm_regs>());
const KVM_SET_REGS: u64 = ioc(IOC_WRITE, 0x82, size_of::<kvm_bindings::kvm_regs>());
const KVM_GET_SREGS: u64 = ioc(IOC_READ, 0x83, size_of::<kvm_bindings::kvm_sregs>());
const KVM_SET_SREGS: u64 = ioc(IOC_WRITE, 0x84, size_of::<kvm_bindings::kvm_sregs>());
const KVM_TRANSLATE: u64 = ioc(
    IOC_READ | IOC_WRITE,
    0x85,
    size_of::<kvm_bindings::kvm_translation>(),
);
const KVM_GET_FPU: u64 = ioc(IOC_READ, 0x8c, size_of::<kvm_bindings::kvm_fpu>());
const KVM_SET_GUEST_DEBUG: u64 = ioc(IOC_WRITE, 0x9b, size_of::<kvm_bindings::kvm_guest_debug>());

/// The vCPU ioctls the run loop makes: running, and reading registers for
/// crash reports.
const VCPU_IOCTLS: &[u64] = &[KVM_RUN, KVM_GET_REGS, KVM_GET_SREGS];
/// What the stub adds: writing registers, translating addresses, guest
/// debug (steps and hardware breakpoints), the FPU for `info registers`,
/// and making gdb's socket non-blocking.
const DEBUGGER_IOCTLS: &[u64] = &[
    KVM_SET_REGS,
    KVM_SET_SREGS,
    KVM_TRANSLATE,
    KVM_GET_FPU,
    KVM_SET_GUEST_DEBUG,
    libc::FIONBIO,
];

fn err(e: impl std::fmt::Display) -> SeccompError {
    SeccompError(e.to_string())
}

/// A rule matching argument `arg` (a 64-bit value) equal to `value`.
fn arg_is(arg: u8, value: u64) -> Result<SeccompRule, SeccompError> {
    SeccompCondition::new(arg, SeccompCmpArgLen::Qword, SeccompCmpOp::Eq, value)
        .and_then(|c| SeccompRule::new(vec![c]))
        .map_err(err)
}

/// The allowlist of `thread`: system call → the rules one of which its
/// arguments must meet (none: any arguments).
fn rules(thread: Thread) -> Result<BTreeMap<i64, Vec<SeccompRule>>, SeccompError> {
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = CALLS
        .iter()
        .filter(|(_, on, _)| on & thread.bits() != 0)
        .map(|(nr, _, _)| (*nr, vec![]))
        .collect();
    // Passed here and answered EACCES by the filter stacked with this one
    // (`install`): of two filters the stricter answer wins, so leaving
    // them off this list would kill the process instead.
    for call in OPENS {
        rules.insert(call, vec![]);
    }
    // Memory is mapped and protected, never executable: PROT_EXEC clear
    // in the third argument.
    for call in [libc::SYS_mmap, libc::SYS_mprotect] {
        let no_exec = SeccompCondition::new(
            2,
            SeccompCmpArgLen::Dword,
            SeccompCmpOp::MaskedEq(libc::PROT_EXEC as u64),
            0,
        )
        .and_then(|c| SeccompRule::new(vec![c]))
        .map_err(err)?;
        rules.insert(call, vec![no_exec]);
    }
    let ioctls: Vec<u64> = match thread {
        Thread::Vcpu => VCPU_IOCTLS.to_vec(),
        Thread::Debugger => VCPU_IOCTLS.iter().chain(DEBUGGER_IOCTLS).copied().collect(),
        // Accepted connections are made non-blocking.
        Thread::Netd => vec![libc::FIONBIO],
        Thread::Kicker => Vec::new(),
    };
    if thread == Thread::Debugger {
        // When gdb leaves, the vCPU's own (narrower) list stacks on this one.
        rules.insert(
            libc::SYS_prctl,
            vec![arg_is(0, libc::PR_SET_NO_NEW_PRIVS as u64)?],
        );
        rules.insert(
            libc::SYS_seccomp,
            vec![arg_is(0, 1 /* SECCOMP_SET_MODE_FILTER */)?],
        );
    }
    if !ioctls.is_empty() {
        let by_request = ioctls
            .into_iter()
            .map(|request| arg_is(1, request))
            .collect::<Result<_, _>>()?;
        rules.insert(libc::SYS_ioctl, by_request);
    }
    Ok(rules)
}

fn compile(
    rules: BTreeMap<i64, Vec<SeccompRule>>,
    mismatch: SeccompAction,
    matched: SeccompAction,
) -> Result<BpfProgram, SeccompError> {
    SeccompFilter::new(rules, mismatch, matched, TargetArch::x86_64)
        .map_err(err)?
        .try_into()
        .map_err(|e: seccompiler::BackendError| err(e))
}

/// Installs `thread`'s allowlist on the calling thread, for the rest of
/// its life (filters only ever narrow: a later one stacks on this one).
pub fn install(thread: Thread) -> Result<(), SeccompError> {
    let allow = compile(
        rules(thread)?,
        SeccompAction::KillProcess,
        SeccompAction::Allow,
    )?;
    // Opening a file fails with EACCES instead of killing the process (see
    // the module documentation); stacked filters take the strictest answer.
    let no_open = compile(
        OPENS.into_iter().map(|nr| (nr, vec![])).collect(),
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EACCES as u32),
    )?;
    seccompiler::apply_filter(&no_open).map_err(err)?;
    seccompiler::apply_filter(&allow).map_err(err)
}

/// Every call `thread` may make (opening files is answered EACCES, so it
/// is not among them): for documentation and tests.
pub fn allowed(thread: Thread) -> Vec<i64> {
    rules(thread)
        .map(|r| r.into_keys().filter(|nr| !OPENS.contains(nr)).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sockets_are_netds_and_the_debuggers_only() {
        let vcpu = allowed(Thread::Vcpu);
        let netd = allowed(Thread::Netd);
        let debugger = allowed(Thread::Debugger);
        let kicker = allowed(Thread::Kicker);
        for socket_call in [libc::SYS_accept4, libc::SYS_sendto, libc::SYS_recvfrom] {
            assert!(!vcpu.contains(&socket_call), "{socket_call}");
            assert!(!kicker.contains(&socket_call), "{socket_call}");
        }
        assert!(netd.contains(&libc::SYS_accept4));
        assert!(debugger.contains(&libc::SYS_recvfrom));
        assert!(!kicker.contains(&libc::SYS_ioctl));
        for never in [
            libc::SYS_execve,
            libc::SYS_open,
            libc::SYS_openat,
            libc::SYS_socket,
            libc::SYS_connect,
            libc::SYS_clone,
            libc::SYS_clone3,
            libc::SYS_ptrace,
        ] {
            for t in [&vcpu, &netd, &debugger, &kicker] {
                assert!(!t.contains(&never), "{never}");
            }
        }
    }

    /// A confined thread that opens a file (glibc's allocator does, once)
    /// is told no and runs on; a forbidden call would kill the process.
    #[test]
    fn a_confined_thread_opening_a_file_gets_eacces_and_runs_on() {
        for thread in [Thread::Vcpu, Thread::Netd, Thread::Debugger, Thread::Kicker] {
            let got = std::thread::spawn(move || {
                install(thread).map_err(|e| e.to_string())?;
                let opened = std::fs::File::open("/proc/sys/vm/overcommit_memory");
                // Allocation after the refusal still works.
                let v = vec![7u8; 1 << 20];
                Ok::<_, String>((opened.map_err(|e| e.kind()).err(), v[12345]))
            })
            .join()
            .expect("the confined thread ended normally");
            assert_eq!(
                got,
                Ok((Some(std::io::ErrorKind::PermissionDenied), 7)),
                "{thread:?}"
            );
        }
    }

    /// What a confined thread tries in [`a_forbidden_call_from_each_thread_kills_the_process`].
    const FORBIDDEN: &[&str] = &["socket", "exec-mapping", "tty-ioctl"];

    /// Run as a child of the test below (the test binary re-executed):
    /// confines a thread as `NYM_SECCOMP_THREAD` says and makes the call
    /// `NYM_SECCOMP_CALL` says. Without those variables it does nothing.
    #[test]
    #[allow(unsafe_code)] // calls the kernel directly, to be refused
    fn forbidden_call_child() {
        let (Ok(thread), Ok(call)) = (
            std::env::var("NYM_SECCOMP_THREAD"),
            std::env::var("NYM_SECCOMP_CALL"),
        ) else {
            return;
        };
        let thread = match thread.as_str() {
            "vcpu" => Thread::Vcpu,
            "netd" => Thread::Netd,
            "debugger" => Thread::Debugger,
            _ => Thread::Kicker,
        };
        let _ = std::thread::spawn(move || {
            install(thread).expect("the filter installs");
            // SAFETY: each call is made to be refused; its arguments are
            // valid for the kernel either way (no memory is handed over
            // but a local for the ioctl's answer).
            unsafe {
                match call.as_str() {
                    "socket" => {
                        libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
                    }
                    "exec-mapping" => {
                        libc::mmap(
                            std::ptr::null_mut(),
                            4096,
                            libc::PROT_READ | libc::PROT_EXEC,
                            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                            -1,
                            0,
                        );
                    }
                    _ => {
                        let mut size = [0u16; 4];
                        libc::ioctl(0, libc::TIOCGWINSZ, size.as_mut_ptr());
                    }
                }
            }
        })
        .join();
        // Still alive: the call was allowed.
        std::process::exit(3);
    }

    /// Each thread's filter kills the whole process on a call off its
    /// list: a socket outside netd and the debugger, an executable
    /// mapping anywhere, an ioctl that is not KVM's.
    #[test]
    fn a_forbidden_call_from_each_thread_kills_the_process() {
        use std::os::unix::process::ExitStatusExt;
        let exe = std::env::current_exe().unwrap();
        for thread in ["vcpu", "netd", "debugger", "kicker"] {
            for &call in FORBIDDEN {
                let allowed_here = call == "socket" && matches!(thread, "netd" | "debugger");
                if allowed_here {
                    continue;
                }
                let status = std::process::Command::new(&exe)
                    .args([
                        "--exact",
                        "seccomp::tests::forbidden_call_child",
                        "--nocapture",
                    ])
                    .env("NYM_SECCOMP_THREAD", thread)
                    .env("NYM_SECCOMP_CALL", call)
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null())
                    .status()
                    .unwrap();
                assert_eq!(
                    status.signal(),
                    Some(libc::SIGSYS),
                    "{thread} calling {call}: {status}"
                );
            }
        }
    }

    #[test]
    fn ioctl_numbers_are_kvms() {
        // Cross-checked with linux/kvm.h.
        assert_eq!(KVM_RUN, 0xae80);
        assert_eq!(KVM_GET_REGS, 0x8090_ae81);
        assert_eq!(KVM_SET_REGS, 0x4090_ae82);
        assert_eq!(KVM_GET_SREGS, 0x8138_ae83);
        assert_eq!(KVM_TRANSLATE, 0xc018_ae85);
        assert_eq!(KVM_SET_GUEST_DEBUG, 0x4048_ae9b);
    }
}
