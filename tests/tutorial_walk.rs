//! `nym tutorial` as a learner meets it, in a real terminal (tmux): the
//! first lesson walked through `start`, a failed and a passed `check`,
//! `hint` and `reset`; and `nym tutorial open`, whose lesson pane checks
//! the step again when a file is saved from another editor.
mod common;

use common::shared_target;
use common::tmux::Tmux;
use std::path::Path;
use std::time::Duration;

/// A shell in `dir` with `nym` on its PATH, as after the README's set-up.
fn shell(dir: &Path, width: u16, height: u16) -> Option<Tmux> {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let _ = std::fs::remove_file(bin.join("nym"));
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_nym"), bin.join("nym")).unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let t = Tmux::sized(dir, &format!("env PATH={path} PS1='$ ' sh"), width, height)?;
    t.wait_for("$", Duration::from_secs(10));
    Some(t)
}

#[test]
fn the_first_lesson_walked_start_check_hint_check_reset() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(t) = shell(tmp.path(), 120, 50) else {
        return;
    };
    let slow = Duration::from_secs(900);

    t.line("nym tutorial start hello && cd nym-tutorial/hello");
    t.wait_for("step 1 of 3: Five by default", Duration::from_secs(60));

    // Not done yet: the check says what it expected and what it saw.
    t.line("clear; nym tutorial check; echo CHECKED $?");
    let s = t.wait_for("CHECKED 1", slow);
    assert!(s.contains("✗ step 1 of 3"), "{s}");
    assert!(s.contains("expected: key `count` to default to 5"), "{s}");
    assert!(s.contains("seen: it defaults to 3"), "{s}");

    // A nudge first.
    t.line("clear; nym tutorial hint");
    t.wait_for("hint 1 of 3", Duration::from_secs(30));

    // Done: recorded, and the next step is shown.
    t.line("clear; sed -i 's/key(\"count\", 3)/key(\"count\", 5)/' unikernel.nym && nym tutorial check; echo CHECKED $?");
    let s = t.wait_for("CHECKED 0", slow);
    assert!(s.contains("✓ step 1 of 3: Five by default — passed"), "{s}");
    assert!(s.contains("step 2 of 3: Draw the graph"), "{s}");
    let progress = std::fs::read_to_string(
        tmp.path()
            .join("nym-tutorial/hello/.nym-tutorial/progress.toml"),
    )
    .unwrap();
    assert!(progress.contains("done = [\"count\"]"), "{progress}");

    // Reset lays the files back as they were laid out; progress stays,
    // and the edited file is saved first.
    t.line("clear; nym tutorial reset; grep -c 'key(\"count\", 3)' unikernel.nym");
    let s = t.wait_for("Files laid back", Duration::from_secs(30));
    t.wait_for("\n1\n", Duration::from_secs(10));
    assert!(
        s.contains("Your versions of the files that changed are in .nym-tutorial/saved/"),
        "{s}"
    );
    t.line("clear; nym tutorial reset --step; grep -c 'key(\"count\", 5)' unikernel.nym");
    t.wait_for("as at the start of step `dot`", Duration::from_secs(30));
    t.wait_for("\n1\n", Duration::from_secs(10));
    t.line("clear; nym tutorial");
    let s = t.wait_for("✓ done", Duration::from_secs(30));
    assert!(s.contains("✓ count  · dot  · name"), "{s}");
}

#[test]
fn the_lesson_pane_of_tutorial_open_checks_again_on_a_save() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("nym-tutorial/hello");
    let Some(t) = shell(tmp.path(), 160, 48) else {
        return;
    };
    t.line(&format!(
        "CARGO_TARGET_DIR={} nym tutorial open hello",
        shared_target().display()
    ));
    let s = t.wait_for("lesson 1 · Hello, nym", Duration::from_secs(60));
    assert!(s.contains("▸ Five by default (count)"), "{s}");
    // The notebook is the lesson's: its first cell is the introduction.
    assert!(s.contains("A nym program is two files"), "{s}");

    // A save from another editor: the pane checks, and the step is done.
    let graph = std::fs::read_to_string(dir.join("unikernel.nym")).unwrap();
    std::fs::write(
        dir.join("unikernel.nym"),
        graph.replace("key(\"count\", 3)", "key(\"count\", 5)"),
    )
    .unwrap();
    let s = t.wait_for("✓ Five by default (count)", Duration::from_secs(900));
    assert!(s.contains("▸ Draw the graph (dot)"), "{s}");
    t.keys(&["C-q"]);
    t.line("echo LEFT-$?");
    t.wait_for("LEFT-0", Duration::from_secs(30));
}

#[test]
fn tutorial_watch_checks_again_on_every_save() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(t) = shell(tmp.path(), 120, 50) else {
        return;
    };
    let dir = tmp.path().join("nym-tutorial/hello");
    t.line(&format!(
        "nym tutorial start hello >/dev/null && cd nym-tutorial/hello && CARGO_TARGET_DIR={} nym tutorial watch",
        shared_target().display()
    ));
    t.wait_for("every save checks the step again", Duration::from_secs(60));
    // A save that is not the answer yet: the check says what it saw.
    let graph = std::fs::read_to_string(dir.join("unikernel.nym")).unwrap();
    std::fs::write(
        dir.join("unikernel.nym"),
        graph.replace("key(\"count\", 3)", "key(\"count\", 4)"),
    )
    .unwrap();
    t.wait_for("seen: it defaults to 4", Duration::from_secs(120));
    // The answer: passed, and the next step shown, still watching.
    std::fs::write(
        dir.join("unikernel.nym"),
        graph.replace("key(\"count\", 3)", "key(\"count\", 5)"),
    )
    .unwrap();
    let s = t.wait_for(
        "✓ step 1 of 3: Five by default — passed",
        Duration::from_secs(900),
    );
    assert!(s.contains("step 2 of 3: Draw the graph"), "{s}");
    t.keys(&["C-c"]);
    t.line("echo WATCH-ENDED");
    t.wait_for("WATCH-ENDED", Duration::from_secs(30));
}
