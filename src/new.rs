//! `nym new`: a project from a template. The templates are the examples in
//! the repository, so every template is built and tested as an example.
use nym_driver::cargo::nym_src;
use std::path::{Path, PathBuf};

/// A project template.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Template {
    /// Console, clock and sleep: a greeting `count` times.
    Hello,
    /// A key-value store whose counter survives restarts.
    Kv,
    /// A TCP echo server on port 7.
    Echo,
    /// A web server on port 8080: a page, baked files and a store.
    Http,
    /// The web server over TLS on port 8443, with a demo certificate.
    Https,
}

impl Template {
    /// The example's crate name, as its graph writes jobs.
    fn example(self) -> &'static str {
        match self {
            Template::Hello => "hello",
            Template::Kv => "kv",
            Template::Echo => "echo",
            Template::Http => "http",
            Template::Https => "https",
        }
    }

    /// Files beyond the graph and `src/lib.rs`, relative to the project.
    fn extra(self) -> &'static [(&'static str, &'static str)] {
        const WWW: &[(&str, &str)] = &[
            (
                "www/hello.txt",
                include_str!("../examples/http/www/hello.txt"),
            ),
            (
                "www/style.css",
                include_str!("../examples/http/www/style.css"),
            ),
        ];
        const WWW_TLS: &[(&str, &str)] = &[
            WWW[0],
            WWW[1],
            ("tls/ca.pem", include_str!("../examples/https/tls/ca.pem")),
            (
                "tls/cert.pem",
                include_str!("../examples/https/tls/cert.pem"),
            ),
            ("tls/key.pem", include_str!("../examples/https/tls/key.pem")),
        ];
        match self {
            Template::Http => WWW,
            Template::Https => WWW_TLS,
            _ => &[],
        }
    }

    fn files(self) -> (&'static str, &'static str) {
        match self {
            Template::Hello => (
                include_str!("../examples/hello/unikernel.nym"),
                include_str!("../examples/hello/src/lib.rs"),
            ),
            Template::Kv => (
                include_str!("../examples/kv/unikernel.nym"),
                include_str!("../examples/kv/src/lib.rs"),
            ),
            Template::Echo => (
                include_str!("../examples/echo/unikernel.nym"),
                include_str!("../examples/echo/src/lib.rs"),
            ),
            Template::Http => (
                include_str!("../examples/http/unikernel.nym"),
                include_str!("../examples/http/src/lib.rs"),
            ),
            // The same application as http; only the graph differs.
            Template::Https => (
                include_str!("../examples/https/unikernel.nym"),
                include_str!("../examples/http/src/lib.rs"),
            ),
        }
    }
}

/// Why a project could not be made.
#[derive(Debug, thiserror::Error)]
pub(crate) enum NewError {
    /// The name is not a crate name.
    #[error("`{0}` is not a valid project name: use lowercase letters, digits, `-` and `_`, starting with a letter")]
    BadName(String),
    /// The directory exists.
    #[error("{} already exists; pick another name or remove it", .0.display())]
    Exists(PathBuf),
    /// Writing failed.
    #[error("cannot write {}: {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// Creates project `name` in `parent` from `template`; returns its directory.
pub(crate) fn create(parent: &Path, name: &str, template: Template) -> Result<PathBuf, NewError> {
    let valid = name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if !valid {
        return Err(NewError::BadName(name.into()));
    }
    let dir = parent.join(name);
    if dir.exists() {
        return Err(NewError::Exists(dir));
    }
    let rust_name = name.replace('-', "_");
    let unikernel = name.replace('_', "-");
    let (graph, lib) = template.files();
    let example = template.example();
    let graph = graph
        .replace(&format!("job {example}::"), &format!("job {rust_name}::"))
        .replace(
            &format!("register(\"{example}\""),
            &format!("register(\"{unikernel}\""),
        );
    let manifest = format!(
        "[package]\nname = \"{name}\"\nversion = \"0.1.0\"\nedition = \"2021\"\npublish = false\n\n\
         [dependencies]\n{}\n\
         # A project of its own, even inside another Cargo workspace.\n[workspace]\n",
        nym_driver::cargo::path_dep("libos", &nym_src().join("libos"), "").trim_end()
    );
    let files = [
        ("Cargo.toml", manifest),
        ("unikernel.nym", graph),
        ("src/lib.rs", lib.to_owned()),
        (".gitignore", "/target\n/data\n/kv.img\n".to_owned()),
    ]
    .into_iter()
    .chain(template.extra().iter().map(|&(p, t)| (p, t.to_owned())));
    for (rel, text) in files {
        let path = dir.join(rel);
        let write = || -> std::io::Result<()> {
            if let Some(p) = path.parent() {
                std::fs::create_dir_all(p)?;
            }
            std::fs::write(&path, text)
        };
        write().map_err(|source| NewError::Write {
            path: path.clone(),
            source,
        })?;
    }
    Ok(dir)
}
