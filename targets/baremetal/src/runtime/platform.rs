//! The guest platform as generated code sees it: the same functions every
//! platform offers (`console()`, `time()`, …) and [`main`].
use super::devices::{HvtBlock, HvtClock, HvtConsole, HvtNet, HvtRandom, HvtTime, InitError};
use super::{entry, executor};
use alloc::{format, vec::Vec};
use libos::abi::JobFuture;
use libos::keys::Keys;
use libos::Value;

/// Why the devices and jobs could not be built: the message of the error
/// on the way. Only its message: a `Box<dyn Error>` would link every error
/// type's `Debug` (and with it `core`'s escaping and Unicode tables) into
/// the image, most of a kilobyte each.
pub struct BuildError(alloc::string::String);

impl<E: core::fmt::Display> From<E> for BuildError {
    fn from(e: E) -> BuildError {
        BuildError(alloc::string::ToString::to_string(&e))
    }
}

/// The jobs built by generated code, each with its name.
pub type Jobs = Vec<(&'static str, JobFuture)>;

/// `console::default()`.
pub fn console() -> Result<HvtConsole, InitError> {
    Ok(HvtConsole)
}
/// `clock::mono()`.
pub fn mono_clock() -> Result<HvtClock, InitError> {
    Ok(HvtClock)
}
/// `clock::wall()`.
pub fn wall_clock() -> Result<HvtClock, InitError> {
    Ok(HvtClock)
}
/// `time::default()`.
pub fn time() -> Result<HvtTime, InitError> {
    Ok(HvtTime)
}
/// `random::default()`.
pub fn random() -> Result<HvtRandom, InitError> {
    Ok(HvtRandom)
}
/// `block::file(path, size)`: the monitor opens the file; the guest sees
/// its block device.
pub fn block_file(_path: impl AsRef<str>, _size: u64) -> Result<HvtBlock, InitError> {
    HvtBlock::open()
}

/// `netif::default()`: the monitor's virtual link.
pub fn netif_default() -> Result<HvtNet, InitError> {
    HvtNet::open()
}

/// Runs a device's background task (a `stack::direct`'s driver) beside the
/// jobs for as long as they run.
pub fn driven<T: libos::stack::Driven>(device: T) -> T {
    executor::spawn(device.driver());
    device
}

fn say(text: &str) {
    super::sys::puts(text.as_bytes());
}

/// The guest's main: reads the keys from the command line, builds the
/// devices and jobs with `build`, runs them, and returns the exit status.
pub fn main(
    name: &str,
    keys: Vec<(&str, Value)>,
    build: impl FnOnce(&Keys) -> Result<Jobs, BuildError>,
) -> i32 {
    // The command line is ASCII (the monitor, QEMU and Xen pass bytes);
    // Unicode whitespace would link core's whitespace table for nothing.
    let args: Vec<&str> = entry::cmdline().split_ascii_whitespace().collect();
    let keys = match Keys::parse(keys, &args) {
        Ok(k) => k,
        Err(e) => {
            say(&format!("{name}: {e}\n"));
            return 2;
        }
    };
    let jobs = match build(&keys) {
        Ok(j) => j,
        Err(e) => {
            say(&format!("{name}: cannot build the devices: {}\n", e.0));
            return 1;
        }
    };
    match executor::run(jobs) {
        executor::Ended::Finished => 0,
        executor::Ended::Failed { job, error } => {
            say(&format!("{name}: job {job} failed: {error}\n"));
            1
        }
        executor::Ended::Stuck => {
            say(&format!(
                "{name}: every job is waiting and nothing can wake them\n"
            ));
            1
        }
    }
}
