//! Child processes that end with nym: QEMU (and Xen in QEMU) started for a
//! guest get SIGKILL when the thread that started them ends, whatever ends
//! nym (Ctrl-C, a `kill -9`, a panic), so no guest outlives its `nym run`.
#![allow(unsafe_code)] // prctl in the child between fork and exec
use std::os::unix::process::CommandExt;
use std::process::Command;

/// Makes the process `cmd` starts die with the thread that starts it.
pub(crate) fn dies_with_parent(cmd: &mut Command) -> &mut Command {
    // SAFETY: the closure runs in the child between fork and exec and only
    // makes async-signal-safe system calls (prctl, getppid, raise).
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The parent may have died before the prctl: then it is init's.
            if libc::getppid() == 1 {
                libc::raise(libc::SIGKILL);
            }
            Ok(())
        })
    }
}
