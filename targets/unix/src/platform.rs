//! The Unix platform as generated code sees it: [`Unix`], the host's
//! [`Platform`], and [`main`], the runtime of a standalone build.
use crate::devices::{block_file, clock, console, kv_dir, random, socket, tap, time};
use crate::keys::Keys;
use libos::abi::JobFuture;
use libos::platform::{MakeError, Platform, Unsupported};
use libos::BoxFuture;
use libos::Value;
use std::process::ExitCode;

/// The host as a standalone program's platform: its devices, relative
/// paths from the current directory, background tasks on the current
/// tokio runtime. (The in-process runner's platform, `runner::InProcess`,
/// builds on it.)
#[derive(Debug, Default, Clone, Copy)]
pub struct Unix;

impl Platform for Unix {
    type Console = console::Stdout;
    type MonoClock = clock::Mono;
    type WallClock = clock::Wall;
    type Time = time::Tokio;
    type Random = random::Host;
    type BlockFile = block_file::File;
    type KvDir = kv_dir::Dir;
    type Netif = Unsupported;
    type Tap = tap::Tap;
    type SocketStack = socket::Socket;

    fn console(&self) -> Result<console::Stdout, MakeError> {
        Ok(console::Stdout::new()?)
    }
    fn mono_clock(&self) -> Result<clock::Mono, MakeError> {
        Ok(clock::Mono::new()?)
    }
    fn wall_clock(&self) -> Result<clock::Wall, MakeError> {
        Ok(clock::Wall::new()?)
    }
    fn time(&self) -> Result<time::Tokio, MakeError> {
        Ok(time::Tokio::new()?)
    }
    fn random(&self) -> Result<random::Host, MakeError> {
        Ok(random::Host::new()?)
    }
    fn block_file(&self, path: &str, size: u64) -> Result<block_file::File, MakeError> {
        Ok(block_file::File::open(path, size)?)
    }
    fn kv_dir(&self, path: &str) -> Result<kv_dir::Dir, MakeError> {
        Ok(kv_dir::Dir::open(path)?)
    }
    fn netif_default(&self) -> Result<Unsupported, MakeError> {
        Err(Unsupported::error(
            "netif::default",
            "unix (use netif::tap)",
        ))
    }
    fn tap(&self, name: &str) -> Result<tap::Tap, MakeError> {
        Ok(tap::Tap::open(name)?)
    }
    fn socket_stack(&self) -> Result<socket::Socket, MakeError> {
        Ok(socket::Socket::new()?)
    }
    fn bake(&self, dir: &str) -> Result<Vec<(String, Vec<u8>)>, MakeError> {
        // A standalone program has its files baked in when it is built.
        Err(Unsupported::bake(dir, "a compiled program"))
    }
    fn spawn(&self, task: BoxFuture<'static, ()>) {
        tokio::spawn(task);
    }
}

/// The jobs built by generated code, each with its name.
pub type Jobs = Vec<(&'static str, JobFuture)>;

/// The `main` of a standalone Unix build: parses the keys from the command
/// line, builds the devices and jobs with `build`, and runs the jobs until
/// they finish, one fails, or Ctrl-C.
pub fn main(
    name: &str,
    keys: Vec<(&str, Value)>,
    build: impl FnOnce(&Keys, &Unix) -> Result<Jobs, MakeError>,
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
        let jobs = match build(&keys, &Unix) {
            Ok(j) => j,
            Err(e) => {
                eprintln!("{name}: cannot build the devices: {}", e.message());
                return ExitCode::from(1);
            }
        };
        let jobs = jobs.into_iter().map(|(n, f)| (n.to_owned(), f)).collect();
        let ended = crate::jobs::run(jobs, stop).await;
        crate::jobs::report(name, &ended);
        ended.exit_code()
    })
}
