//! `nym`'s command line, whole: both binaries parse it (`nym` and
//! `nym-studio`), so `nym --help` lists every command and a lesson's
//! command lines are checked against the one parser.
use clap::{Parser, Subcommand};
use nym_driver::guest::{parse_forward, parse_mem, PortForward};
use std::path::PathBuf;

pub use crate::cache::CacheCommand;
pub use crate::new::Template;

/// A library operating system: write against device traits, wire devices
/// with a typed graph, run in-process or as a unikernel.
#[derive(Parser)]
#[command(name = "nym", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// Where a graph runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TargetArg {
    /// In-process on this Unix host.
    Unix,
    /// A unikernel in nym's KVM monitor.
    Kvm,
    /// A PVH unikernel under QEMU (microvm; `--machine q35` for PCI).
    Qemu,
    /// A PVH unikernel as a libvirt domain (q35, virtio-pci).
    Libvirt,
    /// A PVH unikernel under Xen.
    Xen,
}

impl From<TargetArg> for nym_graph::Target {
    fn from(t: TargetArg) -> Self {
        match t {
            TargetArg::Unix => nym_graph::Target::Unix,
            TargetArg::Kvm => nym_graph::Target::Kvm,
            TargetArg::Qemu => nym_graph::Target::Qemu,
            TargetArg::Libvirt => nym_graph::Target::Libvirt,
            TargetArg::Xen => nym_graph::Target::Xen,
        }
    }
}

/// Options shared by the commands that read a project.
#[derive(clap::Args, Clone)]
pub struct ProjectArgs {
    /// The graph file (default: unikernel.nym here or in a parent directory).
    #[arg(long, short = 'f')]
    pub(crate) file: Option<PathBuf>,
    /// The target to check the graph for.
    #[arg(long, short = 't', value_enum, default_value = "unix")]
    pub(crate) target: TargetArg,
    /// The project's directory, when the graph file lives elsewhere (how a
    /// session boots its in-memory graph).
    #[arg(long, hide = true)]
    pub(crate) root: Option<PathBuf>,
}

#[derive(Subcommand)]
pub enum Command {
    /// Create a project: unikernel.nym, Cargo.toml and src/lib.rs.
    New {
        /// The project's name (also its directory).
        name: String,
        /// What the project starts as.
        #[arg(long, value_enum, default_value = "hello")]
        template: Template,
    },
    /// Type-check the graph; errors are printed with their place and a hint.
    Check {
        #[command(flatten)]
        project: ProjectArgs,
        /// One line per diagnostic instead of source excerpts.
        #[arg(long)]
        short: bool,
    },
    /// Print the resolved device graph.
    Graph {
        #[command(flatten)]
        project: ProjectArgs,
        /// Graphviz DOT instead of text (`nym graph --dot | dot -Tsvg > graph.svg`).
        #[arg(long)]
        dot: bool,
    },
    /// Build the application and run the graph (in-process on unix).
    Run {
        #[command(flatten)]
        project: ProjectArgs,
        /// Guest memory for unikernel targets: 32M, 512M, 1G.
        #[arg(long, short = 'm', default_value = "32M", value_parser = parse_mem)]
        mem: u64,
        /// Serve gdb on this address (kvm): the guest waits before its first
        /// instruction until gdb attaches. Loopback only (127.0.0.1:1234)
        /// unless --gdb-allow-remote.
        #[arg(long, value_name = "ADDR")]
        gdb: Option<String>,
        /// Serve gdb on a non-loopback address: whoever connects gets the
        /// guest's memory and registers.
        #[arg(long, requires = "gdb")]
        gdb_allow_remote: bool,
        /// Hot reload (unix): rebuild and swap in the application when
        /// src/ or the graph changes, keeping the devices and their state.
        #[arg(long, short = 'w', conflicts_with = "gdb")]
        watch: bool,
        /// Record the jobs' polls, wake-ups, sleeps and device calls
        /// (unix, in-process; kvm, in the guest) into FILE, in the Trace Event format that
        /// Perfetto (ui.perfetto.dev) and chrome://tracing open.
        #[arg(long, value_name = "FILE", conflicts_with = "watch")]
        trace: Option<PathBuf>,
        /// Forward a host port to the guest (kvm, qemu, libvirt, xen): `-p
        /// 8080:80` accepts on 127.0.0.1:8080 and connects to the guest's
        /// port 80 (TCP; `/tcp` says so); `-p 5300:53/udp` sends datagrams
        /// to 127.0.0.1:5300 on to the guest's port 53 and its answers back
        /// (kvm, qemu, libvirt). Repeatable.
        #[arg(long = "publish", short = 'p', value_name = "HOST:GUEST[/udp]", value_parser = parse_forward)]
        forwards: Vec<PortForward>,
        /// Put the guest on a tap device's network (kvm), instead of
        /// forwarding ports: the host configures the tap, the guest takes
        /// an address on its subnet (`-- --ipv4 10.0.3.2/24`).
        #[arg(long, value_name = "NAME", conflicts_with = "forwards")]
        tap: Option<String>,
        /// Connections each forwarded port has open at once (kvm; default
        /// 64): more wait in the host port's queue until one closes.
        #[arg(long, value_name = "N", requires = "forwards", value_parser = clap::value_parser!(u32).range(1..))]
        max_conns: Option<u32>,
        /// The host file for the graph's `block::file` (kvm, qemu,
        /// libvirt, xen), instead of the one it names; made with the
        /// graph's size if missing.
        #[arg(long, value_name = "FILE")]
        block: Option<PathBuf>,
        /// Build the image with optimisations (guest targets).
        #[arg(long)]
        release: bool,
        /// The machine QEMU emulates (qemu): microvm (virtio-mmio) or q35
        /// (virtio-pci, as libvirt gives).
        #[arg(long, value_name = "MACHINE", value_parser = nym_driver::guest::parse_machine)]
        machine: Option<nym_driver::qemu::Machine>,
        /// Destroy the guest's domain if it has not shut down after this
        /// long (xen): `90s`, `5m`; nym then exits with 124. No limit by
        /// default.
        #[arg(long, value_name = "DURATION", value_parser = nym_driver::guest::parse_duration)]
        timeout: Option<std::time::Duration>,
        /// Key values for the graph's `key()`s, after `--`: `-- --count 5`.
        #[arg(last = true)]
        keys: Vec<String>,
    },
    /// Debug the guest: boot it in nym's KVM monitor with a gdb already
    /// attached, a breakpoint set before its first instruction.
    Debug {
        #[command(flatten)]
        project: ProjectArgs,
        /// Where to stop first (default: the first registered job).
        #[arg(long = "break", value_name = "LOCATION")]
        break_at: Option<String>,
        /// Guest memory: 32M, 512M, 1G.
        #[arg(long, short = 'm', default_value = "32M", value_parser = parse_mem)]
        mem: u64,
        /// Key values, after `--`.
        #[arg(last = true)]
        keys: Vec<String>,
    },
    /// Boot a built unikernel image in nym's KVM monitor.
    Boot {
        /// The image (`nym build --target kvm` writes target/nym/kvm/NAME.elf).
        image: PathBuf,
        /// Guest memory: 32M, 512M, 1G.
        #[arg(long, short = 'm', default_value = "32M", value_parser = parse_mem)]
        mem: u64,
        /// A host file to serve as the guest's block device.
        #[arg(long)]
        block: Option<PathBuf>,
        /// Size of a new block file.
        #[arg(long, default_value = "1M", value_parser = parse_mem)]
        block_size: u64,
        /// Serve gdb on this address: the guest waits until gdb attaches.
        /// Loopback only (127.0.0.1:1234) unless --gdb-allow-remote.
        #[arg(long, value_name = "ADDR")]
        gdb: Option<String>,
        /// Serve gdb on a non-loopback address: whoever connects gets the
        /// guest's memory and registers.
        #[arg(long, requires = "gdb")]
        gdb_allow_remote: bool,
        /// Forward a host port to the guest (kvm): `-p 8080:80` accepts on
        /// 127.0.0.1:8080 and connects to the guest's port 80 (TCP);
        /// `-p 5300:53/udp` forwards datagrams. Repeatable.
        #[arg(long = "publish", short = 'p', value_name = "HOST:GUEST[/udp]", value_parser = parse_forward)]
        forwards: Vec<PortForward>,
        /// Put the guest on a tap device's network instead of forwarding
        /// ports (give it an address on the tap's subnet: `-- --ipv4 …`).
        #[arg(long, value_name = "NAME", conflicts_with = "forwards")]
        tap: Option<String>,
        /// When the guest ends, print its exits to the monitor by kind and
        /// the time it ran (inside KVM_RUN), to standard error.
        #[arg(long)]
        stats: bool,
        /// The command line (its keys), after `--`.
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// Keep Xen and a Linux dom0 running in QEMU (software emulation), so
    /// that each `nym run --target xen` starts its guest in seconds instead
    /// of booting them first. Ends on Ctrl-C, or when its standard input
    /// is a pipe and that pipe closes.
    Dom0,
    /// Format the graph file in place (the layout `nym lsp` formats to).
    Fmt {
        /// The graph file (default: unikernel.nym here or in a parent directory).
        #[arg(long, short = 'f')]
        file: Option<PathBuf>,
        /// Change nothing; exit 1 if the file is not formatted.
        #[arg(long)]
        check: bool,
    },
    /// The build cache shared by every project: where it is and how big;
    /// `nym cache clean` empties it.
    Cache {
        #[command(subcommand)]
        command: Option<CacheCommand>,
    },
    /// Run many graphs on one simulated network, on virtual time: the same
    /// seed gives the same run; faults and properties come from the
    /// topology file (TOML: nodes, links, events, properties).
    Sim {
        /// The topology file.
        topology: PathBuf,
        /// The seed of every random choice (default: the file's `seed`, or 1).
        #[arg(long)]
        seed: Option<u64>,
        /// Run every seed of a range, `1..100`, and report those that fail.
        #[arg(long, value_name = "A..B")]
        seeds: Option<String>,
        /// How much simulated time a run lasts, `10m` (default: the file's `until`, or 60s).
        #[arg(long)]
        until: Option<String>,
        /// Write the frames a node sends and receives to a pcap file (repeatable).
        #[arg(long = "pcap", value_name = "NODE=FILE")]
        pcaps: Vec<String>,
        /// Write the scheduler's log, on simulated time, as Trace Event JSON
        /// (Perfetto, chrome://tracing): a track per node's job and task.
        #[arg(long, value_name = "FILE")]
        trace: Option<PathBuf>,
    },
    /// Serve the Language Server Protocol on stdio for *.nym files.
    Lsp,
    /// Guided lessons, every step checked: `nym tutorial` lists them,
    /// `nym tutorial start hello` begins the first.
    Tutorial {
        #[command(subcommand)]
        command: Option<TutorialCommand>,
    },
    /// The notebook: cells of graph, Rust and Markdown, the device graph,
    /// the log and the run state on one screen (Ctrl-Q leaves).
    Tui {
        /// The notebook (Markdown with ```nym and ```rust cells); made on
        /// the first save if it does not exist.
        #[arg(default_value = "notebook.md")]
        notebook: PathBuf,
        /// The graph file (default: unikernel.nym here or in a parent directory).
        #[arg(long, short = 'f')]
        file: Option<PathBuf>,
    },
    /// An interactive session: bind devices, check, run, inspect, swap.
    Repl {
        /// The graph file (default: unikernel.nym here or in a parent directory).
        #[arg(long, short = 'f')]
        file: Option<PathBuf>,
    },
    /// Generate the compiled program for a target and build it.
    Build {
        #[command(flatten)]
        project: ProjectArgs,
        /// Build with optimisations.
        #[arg(long)]
        release: bool,
        /// Key values to boot with, after `--` (written into the xen target's
        /// xl config and the qemu target's command line).
        #[arg(last = true)]
        keys: Vec<String>,
    },
}

/// `nym tutorial …`.
#[derive(clap::Subcommand)]
pub enum TutorialCommand {
    /// Lay a lesson out in DIR/NAME (default ./nym-tutorial/NAME) and print
    /// its first step.
    Start {
        /// The lesson (`nym tutorial` lists them).
        name: String,
        /// Where to put the lesson's folder.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
    /// Check the current step: on success record it and print the next;
    /// on failure say what was expected and what was seen.
    Check {
        /// The answer the step asks for.
        #[arg(long, value_name = "VALUE")]
        answer: Option<String>,
        /// Check this step (by id) instead of the current one.
        #[arg(long, value_name = "ID")]
        step: Option<String>,
    },
    /// Check again on every save, as `nym run --watch` rebuilds.
    Watch,
    /// The next hint for the current step: a nudge, then the command, last
    /// the solution's diff.
    Hint,
    /// Lay the lesson's files back as they were laid out (progress kept;
    /// your versions are saved first).
    Reset {
        /// As they are at the start of the current step instead.
        #[arg(long)]
        step: bool,
    },
    /// The lesson in `nym tui`: its notebook, and its steps in a pane,
    /// checked again after each cell, save, reload or run.
    Open {
        /// The lesson (default: the one here); laid out if it is not yet.
        name: Option<String>,
    },
}

/// Ends nym as clap ends it for flags that conflict: `message` says why.
pub(crate) fn conflict(message: &str) -> ! {
    use clap::CommandFactory;
    Cli::command()
        .error(clap::error::ErrorKind::ArgumentConflict, message)
        .exit()
}
