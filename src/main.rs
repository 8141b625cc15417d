//! `nym`: the command-line front end of the nym library operating system.
//!
//! One binary with subcommands. It holds no language logic of its own: it
//! opens a project, hands the graph to `nym-graph` for checking and code
//! generation, and to a target (`nym-unix` today) for running.
mod cache;
mod commands;
mod guide;
mod new;
mod sim;
mod tutorial;
mod watch;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// A library operating system: write against device traits, wire devices
/// with a typed graph, run in-process or as a unikernel.
#[derive(Parser)]
#[command(name = "nym", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
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
    file: Option<PathBuf>,
    /// The target to check the graph for.
    #[arg(long, short = 't', value_enum, default_value = "unix")]
    target: TargetArg,
    /// The project's directory, when the graph file lives elsewhere (how a
    /// session boots its in-memory graph).
    #[arg(long, hide = true)]
    root: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Create a project: unikernel.nym, Cargo.toml and src/lib.rs.
    New {
        /// The project's name (also its directory).
        name: String,
        /// What the project starts as.
        #[arg(long, value_enum, default_value = "hello")]
        template: new::Template,
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
        command: Option<cache::CacheCommand>,
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
        command: Option<tutorial::TutorialCommand>,
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

use nym_driver::guest::{parse_forward, parse_mem, PortForward};

/// Ends nym as clap ends it for flags that conflict: `message` says why.
fn conflict(message: &str) -> ! {
    use clap::CommandFactory;
    Cli::command()
        .error(clap::error::ErrorKind::ArgumentConflict, message)
        .exit()
}

fn main() -> ExitCode {
    // Rust cells run in this program re-executed as evcxr's runtime: in
    // that role it serves the cells and never returns from here.
    nym_repl::rust::runtime_hook();
    let cli = Cli::parse();
    let cwd = match std::env::current_dir() {
        Ok(d) => d,
        Err(e) => {
            eprintln!("nym: error: cannot read the current directory: {e}");
            return ExitCode::from(2);
        }
    };
    let result = match cli.command {
        Command::New { name, template } => commands::new(&cwd, &name, template),
        Command::Tutorial { command } => tutorial::run(&cwd, command),
        Command::Cache { command } => cache::run(command),
        Command::Lsp => match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => {
                rt.block_on(nym_lsp::serve_stdio());
                // stdin's reader may still block on a client that keeps
                // its end open after `exit`: do not wait for it.
                rt.shutdown_background();
                Ok(ExitCode::SUCCESS)
            }
            Err(source) => Err(commands::CliError::Io {
                what: "starting the runtime".into(),
                source,
            }),
        },
        Command::Tui { notebook, file } => nym_repl::Session::open(&cwd, file.as_deref())
            .map(|s| nym_tui::run(s, &cwd.join(notebook))),
        Command::Repl { file } => {
            nym_repl::Session::open(&cwd, file.as_deref()).map(nym_repl::repl::run)
        }
        Command::Check { project, short } => commands::check(&cwd, &project, short),
        Command::Dom0 => commands::dom0(),
        Command::Sim {
            topology,
            seed,
            seeds,
            until,
            pcaps,
            trace,
        } => sim::run(
            &cwd,
            sim::Args {
                topology: &topology,
                seed,
                seeds: seeds.as_deref(),
                until: until.as_deref(),
                pcaps: &pcaps,
                trace: trace.as_deref(),
            },
        ),
        Command::Fmt { file, check } => commands::fmt(&cwd, file.as_deref(), check),
        Command::Graph { project, dot } => commands::graph(&cwd, &project, dot),
        Command::Run {
            project,
            watch: true,
            keys,
            ..
        } => match nym_graph::Target::from(project.target) {
            nym_graph::Target::Unix => watch::run(&cwd, &project, &keys),
            other => Err(commands::CliError::WatchTarget(other)),
        },
        Command::Run {
            project,
            max_conns: Some(_),
            ..
        } if project.target != TargetArg::Kvm => {
            conflict("--max-conns caps the connections nym's monitor forwards (--target kvm); under QEMU, QEMU forwards -p itself")
        }
        Command::Run {
            project,
            trace: Some(_),
            ..
        } if !matches!(project.target, TargetArg::Unix | TargetArg::Kvm) => {
            conflict("--trace records the scheduler in-process (--target unix) and on nym's monitor (--target kvm); other engines' guests are not traced")
        }
        Command::Run {
            project,
            timeout: Some(_),
            ..
        } if project.target != TargetArg::Xen => {
            conflict("--timeout destroys a xen guest's domain (--target xen); other targets end with nym (Ctrl-C)")
        }
        Command::Run {
            project,
            mem,
            gdb,
            gdb_allow_remote,
            forwards,
            tap,
            max_conns,
            block,
            machine,
            release,
            timeout,
            trace,
            keys,
            ..
        } => commands::run(
            &cwd,
            &project,
            gdb.as_deref(),
            gdb_allow_remote,
            nym_driver::guest::Options {
                key_args: keys,
                mem,
                forwards,
                tap,
                max_conns: max_conns.map(|n| n as usize),
                block: block.map(|b| cwd.join(b)),
                machine: machine.unwrap_or_default(),
                release,
                timeout,
                trace: trace.map(|f| cwd.join(f)),
            },
        ),
        Command::Debug {
            project,
            break_at,
            mem,
            keys,
        } => commands::debug(&cwd, &project, &keys, mem, break_at),
        Command::Build {
            project,
            release,
            keys,
        } => commands::build(&cwd, &project, release, &keys),
        Command::Boot {
            image,
            mem,
            block,
            block_size,
            gdb,
            gdb_allow_remote,
            forwards,
            tap,
            stats,
            args,
        } => {
            let block = block.map(|path| nym_hvt::BlockFile {
                path,
                size: block_size,
            });
            nym_driver::kvm::listen(gdb.as_deref(), gdb_allow_remote).and_then(|gdb| {
                commands::boot(nym_hvt::Config {
                    image: cwd.join(image),
                    mem_size: mem,
                    cmdline: args.join(" "),
                    block,
                    seccomp: true,
                    stop: None,
                    trace: None,
                    stats: stats.then(nym_hvt::StatsSink::default),
                    gdb,
                    net: nym_driver::kvm::net_config(
                        &forwards,
                        None,
                        tap.as_deref(),
                        nym_hvt::net::MAX_CONNS,
                    )?,
                })
            })
        }
    };
    result.unwrap_or_else(|e| {
        eprintln!("nym: error: {e}");
        e.exit_code()
    })
}
