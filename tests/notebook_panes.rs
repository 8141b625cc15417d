//! The notebook's panes that follow the running stack, in a real 80×24
//! terminal (tmux): the history pane shows a store's changes as the http
//! example makes them, the timeline pane the jobs' polls and device calls
//! while `:trace on` records.
mod common;

use common::tmux::Tmux;
use std::sync::Mutex;
use std::time::Duration;

/// Each test builds the http example; one build at a time.
static ONE_BUILD: Mutex<()> = Mutex::new(());

fn nym_exe() -> &'static str {
    env!("CARGO_BIN_EXE_nym")
}

/// The notebook `cells` (each a `nym` cell) of the http example in an
/// 80×24 terminal, all run; the terminal and the server's port.
fn notebook(cells: &[&str]) -> Option<(tempfile::TempDir, Tmux, u16)> {
    let (tmp, dir) = common::project("web", "http");
    let port = common::free_port();
    let mut text = format!("```nym\n:run -- --port {port}\n```\n");
    for c in cells {
        text += &format!("\n```nym\n{c}\n```\n");
    }
    std::fs::write(dir.join("nb.md"), text).unwrap();
    let t = Tmux::sized(&dir, &format!("{} tui nb.md", nym_exe()), 80, 24)?;
    t.wait_for("[1] nym", Duration::from_secs(30));
    t.keys(&["C-a"]);
    t.wait_for(
        &format!("ran {} cell(s)", cells.len() + 1),
        Duration::from_secs(300),
    );
    common::wait_for_body(port, "/", "Hello from nym!\n");
    Some((tmp, t, port))
}

#[test]
fn the_history_pane_follows_a_store_as_the_running_server_writes_it() {
    let _one = ONE_BUILD.lock().unwrap_or_else(|p| p.into_inner());
    let Some((_tmp, t, port)) = notebook(&["state.set(\"k\", \"v\")\n:history state"]) else {
        return;
    };
    // `:history state` opened the pane in the graph's place.
    let s = t.wait_for("history · state", Duration::from_secs(10));
    assert!(!s.contains("graph · unix"), "{s}");
    t.wait_for("(none) → \"v\"", Duration::from_secs(10));
    // A write the server makes shows up without running a cell again.
    common::put(port, "/kv/k", "from curl");
    let s = t.wait_for("\"v\" → \"from curl\"", Duration::from_secs(10));
    assert!(s.contains("#2 "), "{s}");
    // Ctrl-Y puts the graph back, and the pane again.
    t.keys(&["C-y"]);
    t.wait_for("graph · unix", Duration::from_secs(10));
    t.keys(&["C-y"]);
    t.wait_for("\"v\" → \"from curl\"", Duration::from_secs(10));
    t.keys(&["C-q"]);
    t.wait_for("EXITED 0", Duration::from_secs(30));
}

#[test]
fn the_timeline_pane_draws_the_jobs_while_tracing() {
    let _one = ONE_BUILD.lock().unwrap_or_else(|p| p.into_inner());
    let Some((_tmp, t, port)) = notebook(&[]) else {
        return;
    };
    // Off, the pane says how to turn tracing on.
    t.keys(&["C-l"]);
    t.wait_for("not tracing: `:trace on`", Duration::from_secs(10));
    t.keys(&["C-l"]);
    // `:trace on` in a new cell opens it.
    t.keys(&["C-n"]);
    t.type_text(":trace on");
    t.keys(&["Escape", "C-r"]);
    t.wait_for("timeline · last 5 s", Duration::from_secs(30));
    // Requests make the server's job poll and call its devices; the
    // accept it waits on is drawn up to now.
    for _ in 0..3 {
        common::get(port, "/").unwrap();
    }
    let s = t.wait_until(
        "a job's row and a waiting call in the legend",
        Duration::from_secs(20),
        |s| s.lines().any(|l| l.starts_with("│job ")) && s.contains("(waiting)"),
    );
    assert!(s.contains("█ polled  · woken"), "{s}");
    t.keys(&["C-q"]);
    t.wait_for("EXITED 0", Duration::from_secs(30));
}
