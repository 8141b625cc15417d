//! `nym-studio`: nym's interactive commands, `nym repl`, `nym tui`, `nym
//! tutorial` and `nym lsp`. `nym` hands them here (it execs this binary,
//! installed beside it, with its own arguments); they bring evcxr,
//! rust-analyzer's crates, ratatui and an LSP server, which the commands
//! that build, run and boot do not load. It parses the same command line
//! as `nym` and runs the other commands too, as `nym` would.
mod guide;
mod tutorial;

use clap::Parser;
use nym::cli::Cli;
use nym::Studio;
use std::process::ExitCode;

fn main() -> ExitCode {
    // Rust cells run in this program re-executed as evcxr's runtime: in
    // that role it serves the cells and never returns from here.
    nym_repl::rust::runtime_hook();
    let cli = Cli::parse();
    let cwd = match nym::current_dir() {
        Ok(d) => d,
        Err(code) => return code,
    };
    let result = match nym::run(&cwd, cli.command) {
        Ok(result) => result,
        Err(Studio::Tutorial { command }) => tutorial::run(&cwd, command),
        Err(Studio::Tui { notebook, file }) => nym_repl::Session::open(&cwd, file.as_deref())
            .map(|s| nym_tui::run(s, &cwd.join(notebook))),
        Err(Studio::Repl { file }) => {
            nym_repl::Session::open(&cwd, file.as_deref()).map(nym_repl::repl::run)
        }
        Err(Studio::Lsp) => lsp(),
    };
    nym::finish(result)
}

/// `nym lsp`: the language server on stdio.
fn lsp() -> Result<ExitCode, nym::CliError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|source| nym::CliError::Io {
            what: "starting the runtime".into(),
            source,
        })?;
    rt.block_on(nym_lsp::serve_stdio());
    // stdin's reader may still block on a client that keeps its end open
    // after `exit`: do not wait for it.
    rt.shutdown_background();
    Ok(ExitCode::SUCCESS)
}
