//! The incremental analysis the language server uses equals a full
//! analysis, after every one of many random one-character edits of real
//! graphs (the examples, the tutorials' steps, a long generated chain):
//! the same tree, diagnostics, bindings, types and graph, for each target
//! in turn.
use nym_graph::incremental::Incremental;
use nym_graph::{analyze, RustCrate, Target};
use std::path::{Path, PathBuf};

/// What an edit inserts: the characters that move statement and token
/// boundaries, and some that only change a name or a value.
const CHARS: &[&str] = &[
    "\n",
    ";",
    "(",
    ")",
    ",",
    "\"",
    "\\",
    " ",
    "l",
    "e",
    "t",
    "let ",
    "\nlet x = kv::mem();\n",
    "=",
    "1",
    "k",
    "[",
    "]",
    "/",
    "{",
    "}",
    "ä",
    ".",
    ":",
];

/// A small deterministic generator (xorshift), so a failure replays.
struct Rng(u64);

impl Rng {
    fn next(&mut self, below: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % below.max(1) as u64) as usize
    }
}

/// `text` with one random edit: a character inserted, deleted or replaced.
fn edit(text: &str, rng: &mut Rng) -> String {
    let boundaries: Vec<usize> = (0..=text.len())
        .filter(|&i| text.is_char_boundary(i))
        .collect();
    let at = boundaries[rng.next(boundaries.len())];
    let next = boundaries.iter().copied().find(|&i| i > at).unwrap_or(at);
    let insert = CHARS[rng.next(CHARS.len())];
    match rng.next(3) {
        0 => format!("{}{insert}{}", &text[..at], &text[at..]),
        1 => format!("{}{}", &text[..at], &text[next..]),
        _ => format!("{}{insert}{}", &text[..at], &text[next..]),
    }
}

/// The graphs of the examples (with their own crates) and of the
/// tutorials' lessons (with the lesson's crate where it has one).
fn graphs() -> Vec<(PathBuf, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut found = Vec::new();
    let mut dirs = vec![root.join("examples"), root.join("tutorials/lessons")];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() && !path.ends_with("target") {
                dirs.push(path);
            } else if path.file_name().is_some_and(|n| n == "unikernel.nym") {
                if let Ok(text) = std::fs::read_to_string(&path) {
                    found.push((path, text));
                }
            }
        }
    }
    found.sort();
    assert!(found.len() >= 5, "the examples' graphs are found");
    found
}

/// What an analysis took from the last one: pieces not parsed again,
/// statements not checked again (taken as they were, from the top),
/// statements replayed.
#[derive(Default, Debug)]
struct Reused {
    pieces: usize,
    skipped: usize,
    replayed: usize,
}

/// Edits `text` at random `edits` times (each version one or two edits
/// away from `text`), comparing after each; what was re-used along the way.
fn agree(name: &str, text: &str, krate: Option<&RustCrate>, seed: u64, edits: usize) -> Reused {
    let mut reused = Reused::default();
    // Now and then a version is still held (a request in flight) when the
    // next comes: its statements are copied, not moved.
    let mut held = None;
    let mut rng = Rng(seed);
    let mut inc = Incremental::default();
    let (base, mut text) = (text, text.to_owned());
    let targets = [Target::Unix, Target::Kvm];
    for i in 0..edits {
        let target = targets[(i / 40) % targets.len()];
        let full = analyze(&text, target, krate);
        let incremental = inc.analyze(&text, target, krate);
        assert!(
            *incremental == full,
            "{name}, edit {i} (seed {seed}), for {target:?}: the incremental analysis differs for\n{text}"
        );
        if i % 3 == 0 {
            held = Some(incremental);
        } else {
            held.take();
        }
        let (pieces, skipped, replayed) = inc.reused();
        reused.pieces += pieces;
        reused.skipped += skipped;
        reused.replayed += replayed;
        // One or two edits away from the graph, in turn.
        text = edit(if i % 2 == 0 { base } else { &text }, &mut rng);
    }
    reused
}

#[test]
fn incremental_analysis_equals_a_full_one_after_random_edits_of_the_examples() {
    let (mut skipped, mut replayed) = (0, 0);
    for (i, (path, text)) in graphs().into_iter().enumerate() {
        let krate = path.parent().and_then(RustCrate::find).map(|(k, _)| k);
        let r = agree(
            &path.display().to_string(),
            &text,
            krate.as_ref(),
            0x9e37_79b9_7f4a_7c15 ^ i as u64,
            200,
        );
        skipped += r.skipped;
        replayed += r.replayed;
    }
    assert!(skipped > 0, "some statements were taken as they were");
    assert!(replayed > 0, "some statements were replayed");
}

#[test]
fn incremental_analysis_equals_a_full_one_on_a_long_chain() {
    let mut text = String::from("let console = console::default();\nlet t0 = time::default();\n");
    for i in 1..300 {
        text.push_str(&format!(
            "let t{i} = time::scaled(t{}, factor = 2);\n",
            i - 1
        ));
        // A second name for a device built further up relabels its node.
        if i == 150 {
            text.push_str("let alias = t75;\n");
        }
    }
    text.push_str("let n = 3;\nlet j = job hello::start(console, t299, key(\"count\", 3));\nregister(\"hello\", [j]);\n");
    let files = [(PathBuf::from("src/lib.rs"), "use libos::{Console, Time};\npub async fn start(console: impl Console, time: impl Time, count: u32) {}\n".to_owned())];
    let krate = RustCrate::in_memory("hello", files.into());
    let r = agree("chain", &text, Some(&krate), 7, 300);
    // Not a vacuous comparison: most of the chain was taken from the
    // previous version, not parsed and checked again.
    assert!(r.pieces > 200 * 300, "{r:?}");
    assert!(r.skipped > 50 * 300, "{r:?}");
    assert!(r.replayed > 50 * 300, "{r:?}");
}

/// What a job says it takes is read again at every check: a job's
/// statement is not taken as it was when the crate may have changed.
#[test]
fn a_changed_crate_is_read_again_though_the_graph_is_the_same() {
    let text = "let console = console::default();\nlet j = job hello::start(console);\nlet t = time::default();\nregister(\"hello\", [j]);\n";
    let krate = |sig: &str| {
        let files = [(
            PathBuf::from("src/lib.rs"),
            format!("pub async fn start({sig}) {{}}\n"),
        )];
        RustCrate::in_memory("hello", files.into())
    };
    let (one, two) = (
        krate("c: impl libos::Console"),
        krate("c: impl libos::Console, n: u32"),
    );
    let mut inc = Incremental::default();
    for k in [&one, &two, &two, &one] {
        let a = inc.analyze(text, Target::Unix, Some(k));
        assert_eq!(*a, analyze(text, Target::Unix, Some(k)));
    }
    assert_ne!(
        analyze(text, Target::Unix, Some(&one)).diagnostics(),
        analyze(text, Target::Unix, Some(&two)).diagnostics(),
        "the two crates fit the graph differently"
    );
}

/// A crate `hello` whose job `store` takes a console and a store.
fn store_crate() -> RustCrate {
    let lib = "pub async fn store(c: impl libos::Console, kv: impl libos::Kv) {}\n";
    RustCrate::in_memory(
        "hello",
        [(PathBuf::from("src/lib.rs"), lib.to_owned())].into(),
    )
}

/// A `let` giving a device a second name relabels its node; an edit of
/// that `let` gives the node back its first name.
#[test]
fn an_edited_second_name_gives_the_node_back_its_first() {
    let krate = store_crate();
    let graph = |alias: &str| {
        format!("let c = console::default();\nlet a = kv::mem();\nlet b = kv::mem();\nlet {alias};\nregister(\"hello\", [job hello::store(c, a), job hello::store(c, b)]);\n")
    };
    let mut inc = Incremental::default();
    for (i, alias) in ["x = a", "x = b", "y = 1", "x = a"].into_iter().enumerate() {
        let text = graph(alias);
        let a = inc.analyze(&text, Target::Unix, Some(&krate));
        assert_eq!(*a, analyze(&text, Target::Unix, Some(&krate)), "{text}");
        assert!(
            i == 0 || inc.reused().1 == 3,
            "the first three statements were taken as they were"
        );
    }
}

/// A name used before its `let` is told where that `let` is: an edit of
/// the `let`, further down, is an edit of what the use says.
#[test]
fn a_use_before_its_let_follows_the_let() {
    let krate = store_crate();
    let mut inc = Incremental::default();
    for later in [
        "let b = kv::mem();",
        "let bb = kv::mem();",
        "\nlet b = kv::mem();",
    ] {
        let text = format!("let c = console::default();\nlet a = kv::full(b);\n{later}\nregister(\"hello\", [job hello::store(c, a)]);\n");
        let a = inc.analyze(&text, Target::Unix, Some(&krate));
        assert_eq!(*a, analyze(&text, Target::Unix, Some(&krate)), "{text}");
    }
}

/// A string key used where a CIDR goes becomes a CIDR key: an edit of
/// that use, after the key's own `let`, gives the key back its first type
/// (here it is then used where a string goes, which a CIDR key is not).
#[test]
fn an_edited_use_gives_a_key_back_its_type() {
    let lib = "pub async fn net(c: impl libos::Console, s: impl libos::Stack) {}\n";
    let krate = RustCrate::in_memory(
        "hello",
        [(PathBuf::from("src/lib.rs"), lib.to_owned())].into(),
    );
    let graph = |link: &str, addr: &str| {
        format!("let c = console::default();\nlet addr = key(\"addr\", \"10.0.0.2/24\");\nlet n = netif::pair({link});\nlet s = stack::direct(n, {addr});\nregister(\"hello\", [job hello::net(c, s)]);\n")
    };
    let mut inc = Incremental::default();
    let versions = [
        ("key(\"link\", \"tap\")", "addr"),
        ("addr", "\"10.0.0.3/24\""),
        ("key(\"link\", \"tap\")", "addr"),
    ];
    for (link, addr) in versions {
        let text = graph(link, addr);
        let a = inc.analyze(&text, Target::Unix, Some(&krate));
        assert_eq!(*a, analyze(&text, Target::Unix, Some(&krate)), "{text}");
    }
}
