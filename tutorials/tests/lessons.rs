//! The lessons as data, held to the product: each loads, each step has a
//! check and a hint, and what the lessons tell a learner to type in a
//! session or name in a graph exists. (Command lines are held to nym's
//! parser by the binary's tests; ```nym cells are evaluated and every
//! step solved by tests/tutorials.rs.)
use nym_tutorials::{audit, lesson, Check};

#[test]
fn every_lesson_loads_in_order_and_every_step_has_a_check_and_a_hint() {
    let lessons = lesson::all().expect("the lessons load");
    assert!(lessons.len() >= 11, "{} lessons", lessons.len());
    for (i, l) in lessons.iter().enumerate() {
        assert_eq!(l.order as usize, i + 1, "lesson {} is out of order", l.name);
        assert!(!l.steps.is_empty(), "{}: no steps", l.name);
        let mut ids: Vec<_> = l.steps.iter().map(|s| s.id.as_str()).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(
            ids.len(),
            l.steps.len(),
            "{}: two steps share an id",
            l.name
        );
        for s in &l.steps {
            assert!(!s.checks.is_empty(), "{}/{}: no check", l.name, s.id);
            assert!(
                s.hints.len() >= 2,
                "{}/{}: a nudge and a command, at least",
                l.name,
                s.id
            );
            assert!(s.text.lines().count() > 2, "{}/{}: no text", l.name, s.id);
            let touches_files = l.solutions.contains_key(&s.id);
            let has_actions = !s.actions.is_empty();
            let answers = s.checks.iter().any(|c| matches!(c, Check::Answer(_)));
            assert!(
                touches_files || has_actions || answers,
                "{}/{}: no solution (files, actions or an answer to find)",
                l.name,
                s.id
            );
        }
    }
}

#[test]
fn every_session_command_a_lesson_names_exists() {
    let known: Vec<&str> = nym_repl::session::COMMANDS
        .iter()
        .map(|(c, _)| *c)
        .collect();
    let mut seen = 0;
    for l in lesson::all().unwrap() {
        for (place, cmd) in audit::session_commands(&l) {
            seen += 1;
            assert!(
                known.contains(&cmd.as_str()),
                "{place}: `{cmd}` is no session command"
            );
        }
    }
    assert!(
        seen > 10,
        "only {seen} session commands found: the scan is broken"
    );
}

#[test]
fn every_implementation_a_lesson_names_is_in_the_catalog() {
    let mut seen = 0;
    for l in lesson::all().unwrap() {
        for (place, imp) in audit::implementations(&l) {
            seen += 1;
            assert!(
                nym_graph::catalog::lookup(&imp).is_some(),
                "{place}: `{imp}` is not in the catalog"
            );
        }
    }
    assert!(
        seen > 40,
        "only {seen} implementations found: the scan is broken"
    );
}

#[test]
fn checks_name_real_targets_and_durations() {
    for l in lesson::all().unwrap() {
        for s in &l.steps {
            for c in &s.checks {
                let (targets, within): (Vec<&str>, Option<&str>) = match c {
                    Check::Graph(g) => (g.targets.iter().map(String::as_str).collect(), None),
                    Check::Run(r) => (
                        r.target.as_deref().into_iter().collect(),
                        r.within.as_deref(),
                    ),
                    Check::Http(h) => (h.target.as_deref().into_iter().collect(), None),
                    Check::Echo(e) => (e.target.as_deref().into_iter().collect(), None),
                    Check::Answer(a) => {
                        assert_eq!(a.sha256.len(), 64, "{}/{}: not a SHA-256", l.name, s.id);
                        (vec![], None)
                    }
                    _ => (vec![], None),
                };
                for t in targets {
                    assert!(
                        nym_graph::Target::from_name(t).is_some(),
                        "{}/{}: target {t}",
                        l.name,
                        s.id
                    );
                }
                if let Some(w) = within {
                    assert!(
                        libos::value::parse_duration(w).is_ok(),
                        "{}/{}: {w}",
                        l.name,
                        s.id
                    );
                }
            }
        }
    }
}
