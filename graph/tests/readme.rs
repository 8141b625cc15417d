//! The README's device table is documentation of the catalog: every
//! implementation has a row naming what it provides and where it runs, and
//! every row is in the catalog. (The catalog is the truth; this keeps the
//! one hand-written view of it from drifting.)
use nym_graph::catalog::CATALOG;
use nym_graph::Target;

/// The rows of the table under `### Devices`: (names, provides, targets).
fn rows(readme: &str) -> Vec<(Vec<String>, String, String)> {
    let table = readme
        .split("### Devices")
        .nth(1)
        .expect("README has a `### Devices` section");
    table
        .lines()
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .skip(2) // the header and its rule
        .map(|l| {
            let cells: Vec<&str> = l.trim_matches('|').split(" | ").map(str::trim).collect();
            let names = cells[0]
                .split('`')
                .skip(1)
                .step_by(2)
                .map(|code| code.split('(').next().unwrap_or(code).to_owned())
                .collect();
            (names, cells[1].to_owned(), cells[2].to_owned())
        })
        .collect()
}

fn targets(ts: &[Target]) -> String {
    if ts == Target::ALL {
        "all".into()
    } else {
        ts.iter().map(|t| t.name()).collect::<Vec<_>>().join(", ")
    }
}

#[test]
fn the_readme_device_table_is_the_catalog() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"))
        .expect("README.md");
    let rows = rows(&readme);
    assert!(rows.len() > 10, "the table was not found: {rows:?}");
    for imp in CATALOG {
        let Some((names, provides, on)) = rows.iter().find(|r| r.0.iter().any(|n| n == imp.name))
        else {
            panic!("README's device table has no row for `{}`", imp.name);
        };
        let i = names.iter().position(|n| n == imp.name).unwrap();
        let kinds: Vec<&str> = provides.split(", ").collect();
        let kind = kinds.get(i).or(kinds.first()).unwrap();
        assert_eq!(*kind, imp.provides.to_string(), "`{}` provides", imp.name);
        assert_eq!(*on, targets(imp.targets), "`{}` runs on", imp.name);
    }
    for (names, _, _) in &rows {
        for n in names {
            assert!(
                CATALOG.iter().any(|i| i.name == *n),
                "README's device table names `{n}`, which the catalog does not have"
            );
        }
    }
}

/// The README's portability matrix says, for each template and target,
/// what the checker says: ✓ where the template's graph checks, "kept" where
/// its store survives a restart there (a `kv::dir`, or a `kv::block` on a
/// `block::file`), — where the checker refuses it.
#[test]
fn the_readme_portability_matrix_is_what_the_checker_says() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"))
        .expect("README.md");
    let section = readme
        .split("### One graph, every target")
        .nth(1)
        .expect("README has a `### One graph, every target` section");
    let mut lines = section
        .lines()
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'));
    let cells = |l: &str| -> Vec<String> {
        l.trim_matches('|')
            .split('|')
            .map(|c| c.trim().to_owned())
            .collect()
    };
    let header = cells(lines.next().expect("a header"));
    let targets: Vec<Target> = header[1..]
        .iter()
        .map(|t| Target::from_name(t).unwrap_or_else(|| panic!("`{t}` is not a target")))
        .collect();
    assert_eq!(targets, Target::ALL, "one column per target, in order");
    let rows: Vec<Vec<String>> = lines.skip(1).map(cells).collect();
    let templates = ["hello", "kv", "echo", "http", "https"];
    assert_eq!(
        rows.iter().map(|r| r[0].as_str()).collect::<Vec<_>>(),
        templates,
        "one row per template"
    );
    for row in &rows {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join(format!("../examples/{}", row[0]));
        let graph = std::fs::read_to_string(dir.join("unikernel.nym")).unwrap();
        let krate = nym_graph::RustCrate::on_disk(&row[0], &dir);
        for (t, cell) in targets.iter().zip(&row[1..]) {
            let analysis = nym_graph::analyze(&graph, *t, Some(&krate));
            let want = match &analysis.checked.graph {
                None => "—",
                Some(g) => {
                    let kept = g.nodes.iter().any(|n| {
                        n.imp.name == "kv::dir"
                            || (n.imp.name == "kv::block"
                                && matches!(n.args.first(), Some(nym_graph::check::GArg::Node(i))
                                    if g.nodes[*i].imp.name == "block::file"))
                    });
                    if kept {
                        "✓ kept"
                    } else {
                        "✓"
                    }
                }
            };
            assert_eq!(cell, want, "{} on {t}", row[0]);
        }
    }
}
