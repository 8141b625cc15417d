//! `nym`: the command-line front end of the nym library operating system.
//!
//! It holds no language logic of its own: it opens a project, hands the
//! graph to `nym-graph` for checking and code generation, and to a target
//! for running. This library is the command line ([`cli`]) and the
//! commands that the `nym` binary runs itself. The interactive ones
//! (`repl`, `tui`, `tutorial`, `lsp`) bring evcxr, rust-analyzer's crates,
//! ratatui and an LSP server; they live in a second binary, `nym-studio`,
//! which `nym` hands them to, so that `nym boot` and `nym run` start
//! without loading any of that (see BENCHMARKS.md, "nym's monitor and
//! Solo5's hvt").
mod cache;
pub mod cli;
mod commands;
mod new;
mod sim;
mod watch;

pub use commands::CliError;

use cli::{Command, TargetArg};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// The directory nym was started in, or the exit status after saying why
/// it cannot be read.
pub fn current_dir() -> Result<PathBuf, ExitCode> {
    std::env::current_dir().map_err(|e| {
        eprintln!("nym: error: cannot read the current directory: {e}");
        ExitCode::from(2)
    })
}

/// The commands `nym-studio` runs (see the crate's docs), as `nym::run`
/// gives them back.
pub enum Studio {
    /// `nym repl`.
    Repl {
        /// `--file`.
        file: Option<PathBuf>,
    },
    /// `nym tui`.
    Tui {
        /// The notebook.
        notebook: PathBuf,
        /// `--file`.
        file: Option<PathBuf>,
    },
    /// `nym tutorial`.
    Tutorial {
        /// Its subcommand.
        command: Option<cli::TutorialCommand>,
    },
    /// `nym lsp`.
    Lsp,
}

/// Runs `command` in `cwd`, unless it is one of `nym-studio`'s: that one
/// is given back.
pub fn run(cwd: &Path, command: Command) -> Result<Result<ExitCode, CliError>, Studio> {
    use cli::conflict;
    Ok(match command {
        Command::Repl { file } => return Err(Studio::Repl { file }),
        Command::Tui { notebook, file } => return Err(Studio::Tui { notebook, file }),
        Command::Tutorial { command } => return Err(Studio::Tutorial { command }),
        Command::Lsp => return Err(Studio::Lsp),
        Command::New { name, template } => commands::new(cwd, &name, template),
        Command::Cache { command } => cache::run(command),
        Command::Check { project, short } => commands::check(cwd, &project, short),
        Command::Dom0 => commands::dom0(),
        Command::Sim {
            topology,
            seed,
            seeds,
            until,
            pcaps,
            trace,
        } => sim::run(
            cwd,
            sim::Args {
                topology: &topology,
                seed,
                seeds: seeds.as_deref(),
                until: until.as_deref(),
                pcaps: &pcaps,
                trace: trace.as_deref(),
            },
        ),
        Command::Fmt { file, check } => commands::fmt(cwd, file.as_deref(), check),
        Command::Graph { project, dot } => commands::graph(cwd, &project, dot),
        Command::Run {
            project,
            watch: true,
            keys,
            ..
        } => match nym_graph::Target::from(project.target) {
            nym_graph::Target::Unix => watch::run(cwd, &project, &keys),
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
            cwd,
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
        } => commands::debug(cwd, &project, &keys, mem, break_at),
        Command::Build {
            project,
            release,
            keys,
        } => commands::build(cwd, &project, release, &keys),
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
    })
}

/// The exit status of a command's `result`, after printing its error.
pub fn finish(result: Result<ExitCode, CliError>) -> ExitCode {
    result.unwrap_or_else(|e| {
        eprintln!("nym: error: {e}");
        e.exit_code()
    })
}
