//! The Unix platform as generated code sees it: the same function names
//! every platform offers (`console()`, `time()`, …), and [`main`], the
//! runtime of a standalone build.
use crate::devices::{block_file, clock, console, random, socket, tap, time, InitError};
use crate::keys::Keys;
use libos::abi::JobFuture;
use libos::Value;
use std::path::Path;
use std::process::ExitCode;

/// `console::default()`: standard output.
pub fn console() -> Result<console::Stdout, InitError> {
    console::Stdout::new()
}
/// `clock::mono()`.
pub fn mono_clock() -> Result<clock::Mono, InitError> {
    clock::Mono::new()
}
/// `clock::wall()`.
pub fn wall_clock() -> Result<clock::Wall, InitError> {
    clock::Wall::new()
}
/// `time::default()`: tokio's timer.
pub fn time() -> Result<time::Tokio, InitError> {
    time::Tokio::new()
}
/// `random::default()`: /dev/urandom.
pub fn random() -> Result<random::Host, InitError> {
    random::Host::new()
}
/// `block::file(path, size)`.
pub fn block_file(path: impl AsRef<Path>, size: u64) -> Result<block_file::File, InitError> {
    block_file::File::open(path, size)
}

/// `stack::socket()`: the host's TCP/IP stack.
pub fn socket_stack() -> Result<socket::Socket, InitError> {
    socket::Socket::new()
}
/// `netif::tap(name)`.
pub fn tap(name: &str) -> Result<tap::Tap, InitError> {
    tap::Tap::open(name)
}
/// Runs a device's background task (a `stack::direct`'s driver) on the
/// current tokio runtime for as long as the device lives.
pub fn driven<T: libos::stack::Driven>(device: T) -> T {
    tokio::spawn(device.driver());
    device
}

/// Any error on the way to running the jobs.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The jobs built by generated code, each with its name.
pub type Jobs = Vec<(&'static str, JobFuture)>;

/// The `main` of a standalone Unix build: parses the keys from the command
/// line, builds the devices and jobs with `build`, and runs the jobs until
/// they finish, one fails, or Ctrl-C.
pub fn main(
    name: &str,
    keys: Vec<(&str, Value)>,
    build: impl FnOnce(&Keys) -> Result<Jobs, BoxError>,
) -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--help" || a == "-h") {
        print!(
            "{name}: a nym unikernel\n\n{}",
            Keys::defaults(keys).usage(name)
        );
        return ExitCode::SUCCESS;
    }
    let keys = match Keys::parse(keys, &args) {
        Ok(k) => k,
        Err(e) => {
            eprintln!("{name}: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{name}: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    runtime.block_on(async {
        let stop = crate::jobs::interrupted();
        let jobs = match build(&keys) {
            Ok(j) => j,
            Err(e) => {
                eprintln!("{name}: cannot build the devices: {e}");
                return ExitCode::from(1);
            }
        };
        let jobs = jobs.into_iter().map(|(n, f)| (n.to_owned(), f)).collect();
        let ended = crate::jobs::run(jobs, stop).await;
        crate::jobs::report(name, &ended);
        ended.exit_code()
    })
}
