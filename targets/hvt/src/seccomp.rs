//! The monitor's system-call allowlist, applied to every thread just
//! before the guest first runs (as Solo5's hvt and Firecracker do). After
//! that the monitor can run the vCPU, write the console, use the block file
//! and clocks, allocate, and exit; a guest that escaped into the monitor
//! could do little else. Anything outside the list kills the process.
use seccompiler::{BpfProgram, SeccompAction, SeccompFilter, TargetArch};
use std::collections::BTreeMap;

/// Why the filter could not be installed.
#[derive(Debug, thiserror::Error)]
#[error("installing the seccomp filter: {0}")]
pub struct SeccompError(String);

/// The system calls the run loop needs, and why.
const ALLOWED: &[(i64, &str)] = &[
    (
        libc::SYS_ioctl,
        "KVM_RUN, and reading registers for crash reports",
    ),
    (libc::SYS_write, "the console"),
    (libc::SYS_writev, "the console, through buffered writers"),
    (
        libc::SYS_read,
        "the entropy source opened before the filter",
    ),
    (libc::SYS_pread64, "block reads"),
    (libc::SYS_pwrite64, "block writes"),
    (
        libc::SYS_fdatasync,
        "block writes are durable before the guest resumes",
    ),
    (
        libc::SYS_fsync,
        "block writes are durable before the guest resumes",
    ),
    (
        libc::SYS_clock_gettime,
        "the guest's clocks (when the vDSO falls back)",
    ),
    (libc::SYS_clock_nanosleep, "WAIT"),
    (libc::SYS_nanosleep, "WAIT"),
    (libc::SYS_mmap, "allocation (crash reports, symbolisation)"),
    (libc::SYS_munmap, "freeing memory, and guest memory at exit"),
    (libc::SYS_mremap, "allocation"),
    (libc::SYS_brk, "allocation"),
    (libc::SYS_madvise, "the allocator returning memory"),
    (libc::SYS_futex, "locks in std (stdout)"),
    (libc::SYS_close, "closing the VM and files at exit"),
    (
        libc::SYS_fcntl,
        "checking descriptors as they are closed at exit",
    ),
    (
        libc::SYS_sigaltstack,
        "std's stack-overflow handler at thread exit",
    ),
    (libc::SYS_rt_sigreturn, "returning from a signal handler"),
    (libc::SYS_rt_sigprocmask, "std's signal handling"),
    (libc::SYS_sched_yield, "spin loops in std"),
    (libc::SYS_exit, "thread exit"),
    (libc::SYS_poll, "netd waiting for frames and host sockets"),
    (
        libc::SYS_ppoll,
        "netd waiting (libc may use ppoll for poll)",
    ),
    (libc::SYS_accept4, "netd accepting forwarded connections"),
    (libc::SYS_accept, "netd accepting forwarded connections"),
    (libc::SYS_recvfrom, "netd reading forwarded connections"),
    (libc::SYS_sendto, "netd writing forwarded connections"),
    (libc::SYS_shutdown, "netd passing a guest's FIN on"),
    (
        libc::SYS_setsockopt,
        "netd disabling Nagle on forwarded connections",
    ),
    (libc::SYS_rseq, "a thread registering itself as it starts"),
    (libc::SYS_exit_group, "process exit"),
];

/// Installs the allowlist on every thread of the process.
pub fn install() -> Result<(), SeccompError> {
    let mut rules: BTreeMap<i64, Vec<seccompiler::SeccompRule>> =
        ALLOWED.iter().map(|(nr, _)| (*nr, vec![])).collect();
    // The allocator of a second thread (netd) grows its heap with mprotect;
    // never to make memory executable.
    let no_exec = seccompiler::SeccompCondition::new(
        2,
        seccompiler::SeccompCmpArgLen::Dword,
        seccompiler::SeccompCmpOp::MaskedEq(libc::PROT_EXEC as u64),
        0,
    )
    .and_then(|c| seccompiler::SeccompRule::new(vec![c]))
    .map_err(|e| SeccompError(e.to_string()))?;
    rules.insert(libc::SYS_mprotect, vec![no_exec]);
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::KillProcess,
        SeccompAction::Allow,
        TargetArch::x86_64,
    )
    .map_err(|e| SeccompError(e.to_string()))?;
    let program: BpfProgram = filter
        .try_into()
        .map_err(|e: seccompiler::BackendError| SeccompError(e.to_string()))?;
    seccompiler::apply_filter_all_threads(&program).map_err(|e| SeccompError(e.to_string()))
}
