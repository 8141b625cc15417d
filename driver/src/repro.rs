//! Reproducible images: the same bytes from the same sources and toolchain,
//! wherever they are built and by whom.
//!
//! Two things in a build depend on where it happens. *Paths*: rustc writes
//! source paths into debug info and panic locations (the project's, nym's,
//! the registry's, the toolchain's library sources, build scripts' output).
//! And *crate identities*: cargo hashes a path dependency's absolute
//! location into the `-C metadata` it gives rustc, and that hash is in every
//! symbol name. Cargo's own answer (`trim-paths`) is unstable, and flags in
//! `RUSTFLAGS` would differ per project, which would give every project its
//! own copy of every dependency (cargo names compiled units by their flags)
//! and so undo the shared cache ([`crate::cache`]).
//!
//! So a release image's build runs rustc through a small wrapper
//! (`RUSTC_WRAPPER`: a shell script nym writes beside the compiled units)
//! that, for each crate, remaps paths (the crate's own directory to
//! `NAME-VERSION`, and the roots nym passes in `NYM_REMAP`: the cargo home,
//! the toolchain's library sources to `/rustc/COMMIT`, the build
//! directories) and, for a crate that does not come from a registry,
//! replaces cargo's `-C metadata` with a hash of what is not a path in its
//! command line (package, version, target, features, profile). Cargo never
//! sees the change: its fingerprints and file names stay as they were, so
//! what is shared and what is rebuilt does not change. Debug images keep
//! real paths, for gdb.
use crate::cache::Dirs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The wrapper. `$1` is the rustc cargo chose; the rest its arguments.
const WRAPPER: &str = r#"#!/bin/sh
# Written by nym (nym_driver::repro): rustc for reproducible images, run by
# cargo as RUSTC_WRAPPER. Paths are remapped; a crate not from a registry
# gets a -C metadata made of what is not a path in its command line.
rustc=$1
shift
if [ -n "$NYM_RUSTC_WRAPPER" ]; then
  set -- "$rustc" "$@"
  rustc=$NYM_RUSTC_WRAPPER
fi
# Not a compilation (cargo asking rustc about itself): as it is.
if [ -z "$CARGO_PKG_NAME" ] || [ -z "$NYM_CARGO_HOME" ]; then
  exec "$rustc" "$@"
fi
case "$CARGO_MANIFEST_DIR" in
"$NYM_CARGO_HOME"/registry/* | "$NYM_CARGO_HOME"/git/*) registry=yes ;;
*) registry=no ;;
esac
id="$CARGO_PKG_NAME $CARGO_PKG_VERSION"
for a do
  case "$a" in
  */* | metadata=* | extra-filename=* | --json=* | --error-format=* | --color=* | --diagnostic-width=*) ;;
  *) id="$id $a" ;;
  esac
done
id=$(printf '%s' "$id" | sha256sum | cut -c1-16)
for a do
  shift
  case "$registry $a" in
  "no metadata="*) a="metadata=$id" ;;
  esac
  set -- "$@" "$a"
done
set -f
IFS='
'
for r in $NYM_REMAP; do
  set -- "$@" "--remap-path-prefix=$r"
done
exec "$rustc" "$@" "--remap-path-prefix=$CARGO_MANIFEST_DIR=$CARGO_PKG_NAME-$CARGO_PKG_VERSION"
"#;

/// The environment a reproducible build runs cargo with: the wrapper and
/// what it reads.
pub fn env(dirs: &Dirs) -> std::io::Result<Vec<(&'static str, String)>> {
    let wrapper = write_wrapper(dirs.units())?;
    let cargo_home = cargo_home();
    let mut remap: Vec<(PathBuf, String)> = vec![(cargo_home.clone(), "/cargo".into())];
    if let Some(t) = toolchain() {
        remap.push((t.sysroot.join("lib/rustlib/src/rust"), t.rust_src.clone()));
    }
    // The compiled units (build scripts' output is there) have one name
    // whether they are in the shared cache or in `$CARGO_TARGET_DIR`.
    remap.push((dirs.units().to_owned(), "/build".into()));
    if dirs.build.is_some() {
        remap.push((dirs.target.clone(), "/target".into()));
    }
    // rustc applies the last mapping that matches: the longest last.
    remap.sort_by_key(|(from, _)| from.as_os_str().len());
    let remap: Vec<String> = remap
        .iter()
        .map(|(from, to)| format!("{}={to}", from.display()))
        .collect();
    let mut env = vec![
        ("RUSTC_WRAPPER", wrapper.display().to_string()),
        ("NYM_CARGO_HOME", cargo_home.display().to_string()),
        ("NYM_REMAP", remap.join("\n")),
    ];
    // A wrapper of the user's own (sccache) still runs, inside ours.
    if let Some(w) = std::env::var_os("RUSTC_WRAPPER").filter(|w| !w.is_empty()) {
        env.push(("NYM_RUSTC_WRAPPER", w.to_string_lossy().into_owned()));
    }
    Ok(env)
}

/// Writes the wrapper under `units` unless it is there already (by
/// renaming a whole file into place, so a concurrent build never runs half
/// of one); its path.
fn write_wrapper(units: &Path) -> std::io::Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = units.join("nym-rustc.sh");
    if std::fs::read_to_string(&path).ok().as_deref() == Some(WRAPPER) {
        return Ok(path);
    }
    std::fs::create_dir_all(units)?;
    let tmp = units.join(format!(".nym-rustc.sh.{}", std::process::id()));
    std::fs::write(&tmp, WRAPPER)?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755))?;
    std::fs::rename(&tmp, &path)?;
    Ok(path)
}

/// Cargo's home: `$CARGO_HOME`, else `~/.cargo`.
fn cargo_home() -> PathBuf {
    std::env::var_os("CARGO_HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .unwrap_or_else(|| PathBuf::from("/nonexistent-cargo-home"))
}

/// The toolchain cargo will use, as far as remapping needs it.
struct Toolchain {
    /// Its sysroot, whose `lib/rustlib/src/rust` holds the library's
    /// sources when the `rust-src` component is installed.
    sysroot: PathBuf,
    /// The name rustc gives those sources where they are not installed:
    /// `/rustc/COMMIT`.
    rust_src: String,
}

/// Asks rustc (as cargo would find it) once per process.
fn toolchain() -> Option<&'static Toolchain> {
    static TOOLCHAIN: OnceLock<Option<Toolchain>> = OnceLock::new();
    TOOLCHAIN
        .get_or_init(|| {
            let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
            let ask = |args: &[&str]| {
                let out = Command::new(&rustc).args(args).output().ok()?;
                out.status
                    .success()
                    .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
            };
            let sysroot = PathBuf::from(ask(&["--print", "sysroot"])?.trim());
            let version = ask(&["-vV"])?;
            let commit = version
                .lines()
                .find_map(|l| l.strip_prefix("commit-hash: "))?
                .trim()
                .to_owned();
            Some(Toolchain {
                sysroot,
                rust_src: format!("/rustc/{commit}"),
            })
        })
        .as_ref()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The wrapper as cargo runs it, with `echo` for rustc: what rustc
    /// would be given.
    fn wrapped(dir: &Path, manifest_dir: &str, args: &[&str]) -> Vec<String> {
        let dirs = Dirs {
            target: dir.join("t"),
            build: Some(dir.join("b")),
        };
        let env = env(&dirs).unwrap();
        let out = Command::new(&env[0].1)
            .arg("printf")
            .arg("%s\\n")
            .args(args)
            .envs(env.iter().map(|(k, v)| (*k, v)))
            .env_remove("NYM_RUSTC_WRAPPER")
            .env("NYM_CARGO_HOME", "/home/u/.cargo")
            .env("CARGO_PKG_NAME", "hello")
            .env("CARGO_PKG_VERSION", "0.1.0")
            .env("CARGO_MANIFEST_DIR", manifest_dir)
            .output()
            .unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn a_path_crate_gets_metadata_of_its_non_path_arguments() {
        let tmp = tempfile::tempdir().unwrap();
        let args = |dir: &str| {
            [
                "--crate-name".to_owned(),
                "hello".to_owned(),
                format!("{dir}/src/lib.rs"),
                "-C".to_owned(),
                "metadata=0123456789abcdef".to_owned(),
                "--json=diagnostic-rendered-ansi".to_owned(),
            ]
        };
        let a_args = args("/a/hello");
        let a = wrapped(
            tmp.path(),
            "/a/hello",
            &a_args.iter().map(String::as_str).collect::<Vec<_>>(),
        );
        let mut b_args = args("/elsewhere/b/hello");
        b_args[4] = "metadata=fedcba9876543210".into();
        b_args[5] = "--json=diagnostic-short".into();
        let b = wrapped(
            tmp.path(),
            "/elsewhere/b/hello",
            &b_args.iter().map(String::as_str).collect::<Vec<_>>(),
        );
        let meta = |v: &[String]| v.iter().find(|a| a.starts_with("metadata=")).cloned();
        assert_eq!(meta(&a), meta(&b));
        assert_ne!(meta(&a).as_deref(), Some("metadata=0123456789abcdef"));
        assert!(a.contains(&"--remap-path-prefix=/a/hello=hello-0.1.0".to_owned()));
        assert!(a.iter().any(|x| x
            == &format!(
                "--remap-path-prefix={}=/build",
                tmp.path().join("b").display()
            )));
    }

    #[test]
    fn a_registry_crate_keeps_cargos_metadata() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = "/home/u/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/smoltcp-0.12.0";
        let out = wrapped(tmp.path(), dir, &["-C", "metadata=0123456789abcdef"]);
        assert!(
            out.contains(&"metadata=0123456789abcdef".to_owned()),
            "{out:?}"
        );
    }

    #[test]
    fn cargos_questions_pass_through() {
        let tmp = tempfile::tempdir().unwrap();
        let dirs = Dirs {
            target: tmp.path().join("t"),
            build: None,
        };
        let env = env(&dirs).unwrap();
        let out = Command::new(&env[0].1)
            .args(["echo", "-vV"])
            .env_remove("CARGO_PKG_NAME")
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "-vV\n");
    }
}
