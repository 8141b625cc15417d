//! `nym`: the command-line front end of the nym library operating system.
//!
//! This binary runs the commands that build, run and boot; it hands the
//! interactive ones (`repl`, `tui`, `tutorial`, `lsp`) to `nym-studio`,
//! installed beside it, which brings what only they need (evcxr,
//! rust-analyzer's crates, ratatui, an LSP server). `nym boot` then starts
//! without loading any of it.
use clap::Parser;
use nym::cli::Cli;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let cwd = match nym::current_dir() {
        Ok(d) => d,
        Err(code) => return code,
    };
    match nym::run(&cwd, cli.command) {
        Ok(result) => nym::finish(result),
        Err(_) => studio(),
    }
}

/// The studio binary's name, beside `nym`.
const STUDIO: &str = "nym-studio";

/// Becomes `nym-studio` with nym's own arguments (same process: the
/// terminal, signals and exit status are the command's, as if `nym` ran
/// it); returns only to say why it could not.
fn studio() -> ExitCode {
    use std::os::unix::process::CommandExt;
    let path = match std::env::current_exe() {
        Ok(exe) => exe.with_file_name(STUDIO),
        Err(e) => {
            eprintln!("nym: error: finding this program, to start {STUDIO} beside it: {e}");
            return ExitCode::from(2);
        }
    };
    let e = std::process::Command::new(&path)
        .args(std::env::args_os().skip(1))
        .exec();
    eprintln!(
        "nym: error: this command is run by {STUDIO}, which should be beside nym at {}: {e} \
         (`cargo build --release` builds both)",
        path.display()
    );
    ExitCode::from(2)
}
