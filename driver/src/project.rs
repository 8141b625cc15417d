//! A nym project on disk: `unikernel.nym` next to a `Cargo.toml` whose
//! crate holds the jobs.
use nym_graph::jobs::package_name;
use nym_graph::RustCrate;
use std::path::{Path, PathBuf};

/// The graph file's name.
pub const GRAPH_FILE: &str = "unikernel.nym";

/// Why a project cannot be opened.
#[derive(Debug, thiserror::Error)]
pub enum ProjectError {
    /// No graph in this directory or above.
    #[error("no {GRAPH_FILE} in {} or any parent directory\n  hint: create a project with `nym new NAME`, or pass --file", .0.display())]
    NotFound(PathBuf),
    /// A file cannot be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// No package name in Cargo.toml.
    #[error("{} has no `name = \"...\"` in its [package] section", .0.display())]
    NoPackageName(PathBuf),
}

/// An opened project.
#[derive(Debug, Clone)]
pub struct Project {
    /// The directory holding the graph and Cargo.toml.
    pub root: PathBuf,
    /// The graph file.
    pub graph_path: PathBuf,
    /// The graph's text.
    pub source: String,
    /// The Cargo package's name, when there is a Cargo.toml.
    pub package: Option<String>,
}

impl Project {
    /// Opens the project at `file` if given, else the nearest one at or
    /// above `cwd`.
    pub fn open(cwd: &Path, file: Option<&Path>) -> Result<Project, ProjectError> {
        Project::open_in(cwd, file, None)
    }

    /// Like [`Project::open`], with the project's directory (its Cargo.toml,
    /// relative paths) at `root` rather than beside the graph file: a
    /// session's graph, written elsewhere to be booted, is still the
    /// project's.
    pub fn open_in(
        cwd: &Path,
        file: Option<&Path>,
        root: Option<&Path>,
    ) -> Result<Project, ProjectError> {
        let graph_path = match file {
            Some(f) => cwd.join(f),
            None => cwd
                .ancestors()
                .map(|d| d.join(GRAPH_FILE))
                .find(|p| p.is_file())
                .ok_or_else(|| ProjectError::NotFound(cwd.to_owned()))?,
        };
        let source = std::fs::read_to_string(&graph_path).map_err(|source| ProjectError::Read {
            path: graph_path.clone(),
            source,
        })?;
        let root = match root {
            Some(r) => cwd.join(r),
            None => graph_path
                .parent()
                .map_or_else(|| cwd.to_owned(), Path::to_owned),
        };
        let cargo = root.join("Cargo.toml");
        let package = match std::fs::read_to_string(&cargo) {
            Ok(text) => Some(package_name(&text).ok_or(ProjectError::NoPackageName(cargo))?),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(source) => {
                return Err(ProjectError::Read {
                    path: cargo,
                    source,
                })
            }
        };
        Ok(Project {
            root,
            graph_path,
            source,
            package,
        })
    }

    /// The graph file's path as the user should see it.
    pub fn display_path(&self, cwd: &Path) -> String {
        self.graph_path
            .strip_prefix(cwd)
            .unwrap_or(&self.graph_path)
            .display()
            .to_string()
    }

    /// The application crate, for job signatures.
    pub fn krate(&self) -> Option<RustCrate> {
        self.package
            .as_deref()
            .map(|p| RustCrate::on_disk(p, &self.root))
    }

    /// The crate's name as Rust code writes it.
    pub fn rust_name(&self) -> Option<String> {
        self.package.as_ref().map(|p| p.replace('-', "_"))
    }

    /// Where cargo builds: the project's `target/` for its own artifacts
    /// and the shared cache for the rest, or `$CARGO_TARGET_DIR` for all
    /// ([`crate::cache`]).
    pub fn dirs(&self) -> crate::cache::Dirs {
        crate::cache::Dirs::for_project(self.root.join("target"))
    }

    /// nym's own files for target `t`: generated crates, built images.
    pub fn nym_dir(&self, t: nym_graph::Target) -> PathBuf {
        self.root.join("target").join("nym").join(t.name())
    }

    /// Where the program of a graph for target `t` is generated and built:
    /// one crate for every guest target (the image boots on all of them,
    /// so a graph that resolves alike for two targets is built once), one
    /// for unix.
    pub fn build_dir(&self, t: nym_graph::Target) -> PathBuf {
        let dir = if t.is_guest() { "image" } else { "unix" };
        self.root.join("target").join("nym").join(dir).join("main")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_package_name() {
        let toml = "[workspace]\nname = \"no\"\n[package]\nversion = \"1\"\nname = \"my-app\"\n[dependencies]\n";
        assert_eq!(package_name(toml).as_deref(), Some("my-app"));
        assert_eq!(package_name("[dependencies]\nname = \"x\"\n"), None);
    }
}
