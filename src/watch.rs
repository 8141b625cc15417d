//! `nym run --watch`: the development loop. The composed stack runs in this
//! process; when `src/`, `Cargo.toml` or the graph changes, the graph is
//! checked again and the application rebuilt and swapped in under the
//! running devices ([`nym_driver::live`]). On any error the old version
//! keeps running.
use crate::cli::ProjectArgs;
use crate::commands::{checked, load, start_unless_interrupted, CliError};
use nym_driver::build::{build_shim, key_values};
use nym_driver::live::Live;
use nym_driver::watch::{next_change, short, watch};
use nym_driver::Out;
use nym_unix::jobs::{self, Ended};
use std::path::Path;
use std::process::ExitCode;
use tokio::sync::mpsc;

/// `nym run --watch`.
pub(crate) fn run(
    cwd: &Path,
    args: &ProjectArgs,
    key_args: &[String],
) -> Result<ExitCode, CliError> {
    let (project, graph) = load(cwd, args)?;
    let keys = key_values(&graph, key_args)?;
    let root = project.root.clone();
    let out = Out::stderr();
    let runtime = nym_driver::build::runtime()?;
    runtime.block_on(async {
        let stop = jobs::interrupted();
        tokio::pin!(stop);
        let (tx, mut changes) = mpsc::unbounded_channel();
        let _watcher = watch(&project.root, &project.graph_path, tx)?;
        let Some(mut live) =
            start_unless_interrupted(&project, graph, keys, &out, &mut stop).await?
        else {
            jobs::report("nym", &Ended::Interrupted);
            return Ok(ExitCode::from(130));
        };
        eprintln!(
            "nym: watching {} and src/; Ctrl-C to stop",
            short(&root, &project.graph_path)
        );
        loop {
            tokio::select! {
                () = &mut stop => {
                    live.stop().await;
                    jobs::report("nym", &Ended::Interrupted);
                    return Ok(ExitCode::from(130));
                }
                ended = live.ended() => {
                    jobs::report("nym", &ended);
                    eprintln!("nym: the jobs ended; waiting for a change");
                }
                Some(changed) = next_change(&mut changes, &root) => {
                    reload(cwd, args, key_args, &mut live, &changed.join(", ")).await;
                }
            }
        }
    })
}

/// Checks the graph again, then rebuilds and swaps.
async fn reload(cwd: &Path, args: &ProjectArgs, key_args: &[String], live: &mut Live, what: &str) {
    let keep = "the previous version keeps running";
    eprintln!("nym: {what} changed; rebuilding");
    let (project, graph, errors, _) = match checked(cwd, args, false) {
        Ok(c) => c,
        Err(e) => return eprintln!("nym: {e}; {keep}"),
    };
    let Some(graph) = graph else {
        // The checker read the job signatures with syn; when the Rust does
        // not parse, let cargo say so in its own words too (building with
        // the running graph, whose shim is known good). If that build
        // succeeds the error is in the graph alone, and nothing is swapped.
        let _ = build_shim(&project, live.graph(), &Out::stderr());
        return eprintln!(
            "nym: {} has {} error{}; {keep}",
            short(&project.root, &project.graph_path),
            errors.max(1),
            if errors == 1 { "" } else { "s" }
        );
    };
    let keys = match key_values(&graph, key_args) {
        Ok(k) => k,
        Err(e) => return eprintln!("nym: {e}; {keep}"),
    };
    match live.reload(&project, graph, keys, &Out::stderr()).await {
        Ok(done) => eprintln!("nym: {done}"),
        Err(e) => eprintln!("nym: {e}; {keep}"),
    }
}
