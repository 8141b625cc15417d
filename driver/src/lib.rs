//! # nym-driver: what the front ends drive
//!
//! The machinery between a checked graph and a running one, shared by the
//! command line and the interactive session (`nym repl`, `nym tui`):
//! opening a [`project`], building generated crates with [`cargo`] (the
//! in-process shim and the compiled programs, see [`build`]) in a build
//! [`cache`] shared by every project, reproducibly for images ([`repro`]), the live
//! in-process stack and its hot reload ([`live`]), watching the sources
//! ([`watch`]), and the runs on nym's monitor, QEMU and Xen ([`kvm`],
//! [`qemu`], [`xen`]).
//!
//! Nothing here renders diagnostics or parses command lines: front ends do.
//! Everything that prints goes through an [`Out`], the terminal's stderr
//! for the CLI, a session's log for the REPL and the notebook.
pub mod build;
pub mod cache;
pub mod cargo;
mod child;
pub mod guest;
pub mod kvm;
pub mod libvirt;
pub mod live;
pub mod project;
pub mod qemu;
pub mod repro;
pub mod watch;
pub mod xen;

use nym_graph::Target;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

type Sink = Arc<dyn Fn(&str) + Send + Sync>;

/// Hands each line read from `reader` (a child's pipe) to `sink`, on a
/// thread of its own, until the reader ends or fails.
pub fn forward_lines(
    reader: impl std::io::Read + Send + 'static,
    sink: impl Fn(&str) + Send + 'static,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(reader)
            .lines()
            .map_while(Result::ok)
        {
            sink(&line);
        }
    })
}

/// Where nym's messages and cargo's output go.
#[derive(Clone, Default)]
pub struct Out(Option<Sink>);

impl Out {
    /// The terminal: standard error, inherited by cargo (colours and all).
    pub fn stderr() -> Out {
        Out(None)
    }
    /// Each line to `sink` (a session's log).
    pub fn to(sink: impl Fn(&str) + Send + Sync + 'static) -> Out {
        Out(Some(Arc::new(sink)))
    }
    /// Says `text` (one or more lines).
    pub fn line(&self, text: &str) {
        match &self.0 {
            None => eprintln!("{text}"),
            Some(sink) => text.lines().for_each(|l| sink(l)),
        }
    }
    /// Whether this is the terminal.
    pub fn is_stderr(&self) -> bool {
        self.0.is_none()
    }
}

impl std::fmt::Debug for Out {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_none() {
            "Out::stderr"
        } else {
            "Out::to(..)"
        })
    }
}

/// Why a command or a session step failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The project cannot be opened.
    #[error(transparent)]
    Project(#[from] project::ProjectError),
    /// Another failure, already described by its error (`nym new`'s).
    #[error(transparent)]
    Other(Box<dyn std::error::Error + Send + Sync>),
    /// The graph has errors (already printed).
    #[error("{file} has {errors} error(s); nothing was run")]
    Invalid {
        /// The graph file.
        file: String,
        /// How many.
        errors: usize,
    },
    /// Code generation failed.
    #[error(transparent)]
    Codegen(#[from] nym_graph::codegen::CodegenError),
    /// cargo failed.
    #[error(transparent)]
    Build(#[from] cargo::BuildError),
    /// The shared build cache could not be read or cleaned.
    #[error(transparent)]
    Cache(#[from] cache::CacheError),
    /// Bad key arguments.
    #[error("{0}\n  hint: `nym graph` lists the keys and their defaults")]
    Keys(#[from] nym_unix::keys::KeyError),
    /// Starting the graph failed.
    #[error(transparent)]
    Run(#[from] nym_unix::runner::RunError),
    /// The graph has no application crate.
    #[error("{} has no Cargo.toml next to it: there is no application to build", .0.display())]
    NoCrate(PathBuf),
    /// The monitor could not boot the guest.
    #[error(transparent)]
    Monitor(#[from] nym_hvt::MonitorError),
    /// The gdb address cannot be listened on.
    #[error("cannot listen for gdb on {addr}: {source}")]
    Listen {
        /// The address.
        addr: String,
        /// Why (a port in use, a bad address).
        source: std::io::Error,
    },
    /// gdb would be served beyond this machine without being asked to.
    #[error("--gdb {0}: gdb's protocol gives whoever connects the guest's memory and registers, so nym serves it on loopback only (127.0.0.1:PORT)\n  hint: --gdb-allow-remote serves it on {0} anyway; prefer an SSH tunnel")]
    GdbRemote(String),
    /// The tap device for the guest cannot be opened.
    #[error("{0}")]
    Tap(String),
    /// `--tap` with port forwards, or off kvm.
    #[error("--tap puts a kvm guest on the tap's network; {0}")]
    TapUse(&'static str),
    /// A forwarded port cannot be listened on.
    #[error("cannot forward port {port}: {source}")]
    Forward {
        /// The host port.
        port: u16,
        /// Why (a port in use).
        source: std::io::Error,
    },
    /// `-p` with a target that has no forwarding.
    #[error("-p forwards host ports to a unikernel on kvm, qemu, libvirt or xen (TCP, or UDP with /udp); with --target {0} the stack uses the host's ports directly")]
    ForwardTarget(Target),
    /// `--block` for an in-process run.
    #[error("--block gives a guest its disk; in-process, block::file's own path is the file (edit the graph, or use a key: block::file(key(\"disk\", \"disk.img\")))")]
    BlockTarget,
    /// `--release` for an in-process run.
    #[error("--release builds images (guest targets); in-process runs build the application in debug (for an optimised program: `nym build --target unix --release`)")]
    ReleaseTarget,
    /// `:boot` on a target that is not a guest.
    #[error("--target {0} runs in-process (`:run`); :boot boots an image on kvm, qemu or xen")]
    BootTarget(Target),
    /// `--gdb` with a target that has no stub.
    #[error("--gdb works with --target kvm (nym's monitor), not {0}")]
    GdbTarget(Target),
    /// `--watch` with a target that does not run in-process.
    #[error("--watch reloads the application in-process, so it needs --target unix (not {0}); an image is rebuilt by running again")]
    WatchTarget(Target),
    /// A key value that cannot travel on a guest command line.
    #[error("`{0}`: key values for a guest cannot contain white space")]
    GuestArg(String),
    /// QEMU could not run the guest.
    #[error(transparent)]
    Qemu(#[from] qemu::QemuError),
    /// Xen could not run the guest.
    #[error(transparent)]
    Xen(#[from] xen::XenError),
    /// libvirt could not run the guest.
    #[error(transparent)]
    Libvirt(#[from] libvirt::LibvirtError),
    /// `--block` for a graph without a block device.
    #[error("--block {}: the graph has no block::file for it", .0.display())]
    NoBlock(PathBuf),
    /// The block device's host file cannot be used.
    #[error("block file {}: {source}", path.display())]
    BlockFile {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },

    /// A host operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// Why it failed.
        source: std::io::Error,
    },
}

impl Error {
    /// The exit status: 2 for usage mistakes, 1 for everything else.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            Error::Keys(_) | Error::GuestArg(_) => ExitCode::from(2),
            _ => ExitCode::from(1),
        }
    }
}
