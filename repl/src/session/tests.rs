//! The session's unit tests: every command and the statement rules, without
//! builds.
use super::*;

const APP: &str = "pub async fn start(c: impl libos::Console, kv: impl libos::Kv, n: u32) -> Result<(), libos::ConsoleError> { Ok(()) }\n";
const GRAPH: &str = "// a test graph\nlet console = console::default();\nlet store = kv::mem();\nlet app = job app::start(console, store, key(\"n\", 3));\nregister(\"app\", [app]);\n";

/// A project on disk whose graph checks (nothing here builds it).
fn project() -> (tempfile::TempDir, Session) {
    let dir = tempfile::tempdir().unwrap();
    crate::write_project(dir.path(), APP, GRAPH).unwrap();
    let s = Session::open(dir.path(), None).unwrap();
    (dir, s)
}

fn ok(s: &mut Session, input: &str) -> String {
    let r = s.eval(input);
    assert!(!r.error, "{input:?} failed:\n{}", r.text);
    r.text
}

fn err(s: &mut Session, input: &str) -> String {
    let r = s.eval(input);
    assert!(r.error, "{input:?} should fail, said:\n{}", r.text);
    r.text
}

#[test]
fn rust_mode_tells_the_sessions_commands_from_evcxrs() {
    for line in [
        ":run -- --port 1",
        ":quit",
        ":q",
        ":nym",
        ":help",
        ":inspect kv",
    ] {
        assert!(Session::is_command(line), "{line}");
    }
    for line in [":dep rand = \"0.8\"", ":vars", ":explain", "let x = 1;", ""] {
        assert!(!Session::is_command(line), "{line}");
    }
    // Aliases answer as their command.
    let (_d, mut s) = project();
    let help = s.eval(":help").text;
    assert!(help.contains(":inspect"), "{help}");
    assert_eq!(s.eval(":?").text, help);
    assert_eq!(s.eval(":h").text, help);
    assert!(s.eval(":exit").quit);
}

#[test]
fn starts_from_the_projects_graph() {
    let (_d, s) = project();
    assert_eq!(s.source().lines().count(), 4, "{}", s.source());
    assert_eq!(s.graph().unwrap().name, "app");
    assert_eq!(s.target(), Target::Unix);
}

#[test]
fn a_binding_shows_its_kind_and_an_expression_its_kind_without_being_kept() {
    let (_d, mut s) = project();
    assert_eq!(ok(&mut s, "let extra = kv::mem();"), "extra: Kv");
    assert_eq!(ok(&mut s, "clock::mono()"), "clock::mono(): MonoClock");
    assert_eq!(ok(&mut s, "key(\"port\", 80)"), "key(\"port\", 80): int");
    assert!(s.source().contains("let extra = kv::mem();"));
    assert!(!s.source().contains("clock::mono"));
    // Added before `register`, so the graph still ends with it.
    assert!(s.source().trim_end().ends_with("register(\"app\", [app]);"));
}

#[test]
fn rebinding_replaces_the_statement_in_place() {
    let (_d, mut s) = project();
    ok(&mut s, "let store = kv::full(kv::mem());");
    let src = s.source();
    assert_eq!(src.matches("let store").count(), 1, "{src}");
    assert!(
        src.find("let store").unwrap() < src.find("let app").unwrap(),
        "{src}"
    );
    let g = s.graph().unwrap();
    assert!(g.nodes.iter().any(|n| n.imp.name == "kv::full"));
}

#[test]
fn a_bad_input_is_refused_with_the_checkers_words_and_changes_nothing() {
    let (_d, mut s) = project();
    let before = s.source();
    let e = err(&mut s, "let x = kv::mme();");
    assert!(e.contains("unknown implementation `kv::mme`"), "{e}");
    assert!(e.contains("did you mean `kv::mem`"), "{e}");
    assert!(e.contains("input:1:9"), "the span is the input's: {e}");
    let e = err(&mut s, "let y = kv::mem(");
    assert!(e.contains("nym::syntax") || e.contains("expected"), "{e}");
    // A new binding of another kind breaks the job that takes it.
    let e = err(&mut s, "let store = clock::mono();");
    assert!(e.contains("breaks the rest of the graph"), "{e}");
    assert!(e.contains("MonoClock"), "{e}");
    assert_eq!(s.source(), before);
}

#[test]
fn register_replaces_the_previous_one() {
    let (_d, mut s) = project();
    ok(&mut s, "register(\"renamed\", [app]);");
    assert_eq!(s.source().matches("register").count(), 1);
    assert_eq!(s.graph().unwrap().name, "renamed");
}

#[test]
fn completeness_waits_for_brackets_and_semicolons() {
    assert!(is_complete(":help"));
    assert!(is_complete("kv::mem()"));
    assert!(is_complete("let a = kv::mem();"));
    assert!(!is_complete("let a = kv::mem()"));
    assert!(!is_complete("let a = match target {\n  unix => kv::mem(),"));
    assert!(is_complete(
        "let a = match target {\n  unix => kv::mem(),\n  _ => kv::mem(),\n};"
    ));
    assert!(!is_complete("let s = \"(\" ; let t = kv::dir(\"x\""));
    assert!(is_complete("let s = kv::dir(\")\"); // (\n"));
}

#[test]
fn every_command_answers() {
    let (d, mut s) = project();
    let help = ok(&mut s, ":help");
    for (c, _) in COMMANDS {
        assert!(help.contains(c), "{c} missing from :help");
    }
    let e = err(&mut s, ":chek");
    assert!(e.contains("did you mean `:check`"), "{e}");

    let g = ok(&mut s, ":graph");
    assert!(g.contains("│ store: kv::mem"), "{g}");
    assert!(g.contains("◀"), "{g}");
    assert!(ok(&mut s, ":graph --dot").starts_with("digraph"));

    ok(&mut s, "let spare = kv::mem();");
    // A binding no job uses yet is shown, marked, while the user wires.
    let g = ok(&mut s, ":graph");
    assert!(g.contains("╎ spare: kv::mem (unused)"), "{g}");
    let dev = ok(&mut s, ":devices");
    assert!(
        dev.lines()
            .any(|l| l.starts_with("spare") && l.contains("Kv") && l.contains("(unused")),
        "{dev}"
    );
    let c = ok(&mut s, ":check");
    assert!(c.contains("unused binding `spare`"), "{c}");
    assert!(c.contains("0 error(s), 1 warning(s)"), "{c}");

    // kv::dir exists only on unix: on kvm the check says so.
    ok(&mut s, "let store = kv::dir(\"data\");");
    let t = ok(&mut s, ":target kvm");
    assert!(t.contains("target: kvm") && t.contains("1 error(s)"), "{t}");
    let c = s.eval(":check");
    assert!(c.error && c.text.contains("kv::dir"), "{}", c.text);
    assert!(err(&mut s, ":target vax").contains("not a target"));
    ok(&mut s, ":target unix");

    let dev = ok(&mut s, ":devices");
    assert!(
        dev.contains("store") && dev.contains("kv::dir") && dev.contains("app::start"),
        "{dev}"
    );
    let i = ok(&mut s, ":inspect store");
    assert!(
        i.contains("kv::dir(\"data\")") && i.contains("not running"),
        "{i}"
    );
    assert!(err(&mut s, ":inspect stor").contains("did you mean `store`"));
    assert!(err(&mut s, ":inspect").contains("which device"));

    assert_eq!(ok(&mut s, ":stop"), "nothing is running");
    assert!(ok(&mut s, ":logs").is_empty());
    s.log().push("a line");
    assert_eq!(ok(&mut s, ":logs 5"), "a line");

    // :save writes the cells as a notebook and the graph as .nym.
    ok(&mut s, ":save nb.md");
    let nb = std::fs::read_to_string(d.path().join("nb.md")).unwrap();
    assert!(nb.contains("```nym\nlet spare = kv::mem();\n```"), "{nb}");
    assert!(
        !nb.contains(":check"),
        "commands that only look are not cells: {nb}"
    );
    ok(&mut s, ":save g.nym");
    let g = std::fs::read_to_string(d.path().join("g.nym")).unwrap();
    assert!(g.contains("kv::dir(\"data\");"), "{g}");
    assert!(nym_graph::analyze(&g, Target::Unix, s.krate().as_ref())
        .graph()
        .is_some());

    // :reset goes back to the file; :load runs the notebook again.
    let r = ok(&mut s, ":reset");
    assert!(r.contains("4 statement(s)"), "{r}");
    assert!(!s.source().contains("spare"));
    let l = ok(&mut s, ":load nb.md");
    assert!(l.contains("ran nb.md"), "{l}");
    assert!(s.source().contains("spare") && s.source().contains("kv::dir"));
    ok(&mut s, ":reset");
    let l = ok(&mut s, ":load g.nym");
    assert!(l.contains("took the graph"), "{l}");
    assert!(s.source().contains("kv::dir"));
    assert!(err(&mut s, ":load missing.md").contains("cannot read"));
    std::fs::write(d.path().join("bad.nym"), "let = ;").unwrap();
    assert!(err(&mut s, ":load bad.nym").contains("bad.nym"));

    let q = s.eval(":quit");
    assert!(q.quit && !q.error);
}

#[test]
fn a_cell_mixes_statements_and_commands_and_stops_at_the_first_error() {
    let (_d, mut s) = project();
    let r = s.eval("let a = kv::mem();\n:devices\nlet b = kv::nope();\nlet c = kv::mem();");
    assert!(r.error);
    assert!(
        r.text.contains("a: Kv") && r.text.contains("app::start"),
        "{}",
        r.text
    );
    assert!(s.source().contains("let a"), "{}", s.source());
    assert!(!s.source().contains("let c ="), "{}", s.source());
}

#[test]
fn without_a_project_the_graph_starts_empty_and_running_says_why_not() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Session::open(dir.path(), None).unwrap();
    assert!(ok(&mut s, ":graph").contains("empty"));
    assert_eq!(ok(&mut s, "let kv = kv::mem();"), "kv: Kv");
    for cmd in [":run", ":build", ":boot"] {
        assert!(err(&mut s, cmd).contains("no project here"), "{cmd}");
    }
}

#[test]
fn a_device_call_is_checked_like_any_input_and_needs_the_running_stack() {
    let (_d, mut s) = project();
    let before = s.source();
    let e = err(&mut s, "store.get(\"greeting\")");
    assert!(
        e.contains("calls a device of the running stack, and nothing runs: `:run` starts it"),
        "{e}"
    );
    // Wrong calls get the checker's words, placed on the input.
    let e = err(&mut s, "store.gett(\"k\")");
    assert!(
        e.contains("`Kv` has no method `gett`") && e.contains("did you mean `get`"),
        "{e}"
    );
    assert!(e.contains("input:1:7"), "{e}");
    let e = err(&mut s, "store.set(\"k\")");
    assert!(
        e.contains("missing argument `value: string` of `store.set`"),
        "{e}"
    );
    let e = err(&mut s, "console.log(1)");
    assert!(
        e.contains("expects a string for `line`, found an int"),
        "{e}"
    );
    let e = err(&mut s, "app.start()");
    assert!(e.contains("`app` is a job: a job has no methods"), "{e}");
    let e = err(&mut s, "let v = store.get(\"k\");");
    assert!(e.contains("cannot be bound"), "{e}");
    assert_eq!(
        s.source(),
        before,
        "calls are never statements of the graph"
    );
    // A line each in a cell, no `;` needed.
    let e = err(
        &mut s,
        "let extra = kv::mem();\nstore.get(\"a\")\nstore.list()",
    );
    assert!(e.contains("extra: Kv") && e.contains("nothing runs"), "{e}");
}

#[test]
fn history_commands_say_what_they_need() {
    let (_d, mut s) = project();
    let e = err(&mut s, ":history store");
    assert!(
        e.contains("histories are kept while the stack runs, and nothing runs"),
        "{e}"
    );
    let e = err(&mut s, ":diff store one 2");
    assert!(e.contains("`one` is not a change's number"), "{e}");
    let e = err(&mut s, ":diff store 1");
    assert!(e.contains("`:diff NAME N M`"), "{e}");
    let e = err(&mut s, ":revert store");
    assert!(e.contains("`:revert NAME N`"), "{e}");
    let e = err(&mut s, ":history --bound 0");
    assert!(e.contains("at least 1"), "{e}");
    assert!(ok(&mut s, ":history --bound 500").contains("will keep its last 500 changes"));
    assert_eq!(nym_unix::runner::history_bound(), 500);
    nym_unix::runner::record_history(super::history::DEFAULT_BOUND);
    // Looking is no cell of its own; reverting is.
    assert!(is_meta(":history store\n:diff store 1 2"));
    assert!(!is_meta(":revert store 1"));
}
