//! Building generated crates with cargo: the in-process shim library and
//! standalone programs. Cargo's progress and compiler errors go to the
//! user's terminal (or a session's log) as cargo prints them; nym reads the
//! artifact paths from cargo's JSON messages.
use crate::cache::{self, Dirs};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// nym's own source tree, where generated crates find libos and the targets.
pub fn nym_src() -> PathBuf {
    std::env::var_os("NYM_SRC").map_or_else(
        || {
            let driver = Path::new(env!("CARGO_MANIFEST_DIR"));
            driver.parent().unwrap_or(driver).to_owned()
        },
        PathBuf::from,
    )
}

/// nym's Cargo.lock: generated crates start from it, so they build the same
/// dependency versions as nym itself (and share compiled artifacts).
const LOCKFILE: &str = include_str!("../../Cargo.lock");

/// Why a build failed.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// Writing the generated crate failed.
    #[error("cannot write {}: {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A file of nym's sources could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// cargo could not be started.
    #[error("cannot run cargo: {0}\n  hint: is the Rust toolchain installed and on PATH?")]
    Spawn(std::io::Error),
    /// cargo reported errors (already printed).
    #[error("the build failed (cargo's errors are above)")]
    Failed,
    /// cargo succeeded but produced no artifact of the kind asked for.
    #[error("cargo built no {0}")]
    NoArtifact(&'static str),
    /// The shared build cache could not be used.
    #[error(transparent)]
    Cache(#[from] cache::CacheError),
}

/// A generated crate to build.
pub struct Crate<'a> {
    /// The directory to write it to.
    pub dir: PathBuf,
    /// `Cargo.toml`.
    pub manifest: String,
    /// The source files, relative to `dir`.
    pub files: Vec<(&'a str, String)>,
}

fn write(path: &Path, text: &str) -> Result<(), BuildError> {
    // Unchanged files are left alone so cargo's fingerprints stay fresh.
    if std::fs::read_to_string(path).ok().as_deref() == Some(text) {
        return Ok(());
    }
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|source| BuildError::Write {
            path: parent.to_owned(),
            source,
        })?;
    }
    std::fs::write(path, text).map_err(|source| BuildError::Write {
        path: path.to_owned(),
        source,
    })
}

/// What to build and how.
#[derive(Clone, Copy)]
pub enum Artifact {
    /// A `cdylib`.
    Cdylib,
    /// A binary.
    Bin,
}

/// How to build a generated crate.
#[derive(Clone, Copy)]
pub struct Options<'a> {
    /// What to build.
    pub artifact: Artifact,
    /// `--release`.
    pub release: bool,
    /// More cargo arguments (a guest's target and flags).
    pub extra: &'a [String],
    /// Rustc through [`crate::repro`]'s wrapper: the same bytes wherever
    /// the crate and its dependencies are.
    pub reproducible: bool,
}

/// Writes `krate` and builds it into `dirs`, returning the artifact's path.
/// A build that fails on a damaged file of the shared cache removes it and
/// builds once more, saying so.
pub fn build(
    krate: &Crate,
    dirs: &Dirs,
    options: Options<'_>,
    out: &crate::Out,
) -> Result<PathBuf, BuildError> {
    write(&krate.dir.join("Cargo.toml"), &krate.manifest)?;
    for (name, text) in &krate.files {
        write(&krate.dir.join(name), text)?;
    }
    let lock = krate.dir.join("Cargo.lock");
    if !lock.exists() {
        write(&lock, LOCKFILE)?;
    }
    let env = if options.reproducible {
        crate::repro::env(dirs).map_err(|source| BuildError::Write {
            path: dirs.units().to_owned(),
            source,
        })?
    } else {
        Vec::new()
    };
    let mut repaired = false;
    loop {
        let held = cache::lock_for_build(dirs)?;
        let run = run_cargo(krate, dirs, options, &env, out)?;
        drop(held);
        if run.success {
            return find_artifact(&run.messages, options.artifact);
        }
        let damage = cache::damaged(
            dirs.units(),
            run.errors.iter().map(|(c, t)| (c.as_deref(), t.as_str())),
        );
        match damage {
            Some(damage) if !repaired => {
                let removed = cache::repair(dirs, &damage)?;
                if removed.is_empty() {
                    return Err(BuildError::Failed);
                }
                let files: Vec<String> = removed.iter().map(|f| f.display().to_string()).collect();
                out.line(&format!(
                    "nym: the build cache had damaged files; removed them, building again:\n  {}",
                    files.join("\n  ")
                ));
                repaired = true;
            }
            _ => return Err(BuildError::Failed),
        }
    }
}

/// What one cargo run said.
struct Run {
    success: bool,
    /// Its JSON messages other than the compiler's diagnostics.
    messages: Vec<serde_json::Value>,
    /// The compiler's errors: code and rendered text.
    errors: Vec<(Option<String>, String)>,
}

/// The toolchain's cargo and rustc, found once. Through rustup's proxies
/// each call costs about 20 ms more (a hot reload calls cargo, which calls
/// rustc twice), so nym asks rustup once which binaries the proxies would
/// run, here (its overrides follow this directory, as they would for the
/// proxy). `$CARGO` (set when cargo runs nym) wins; without rustup, the
/// `cargo` on the PATH.
fn toolchain() -> (&'static std::ffi::OsStr, Option<&'static Path>) {
    static FOUND: std::sync::OnceLock<(std::ffi::OsString, Option<PathBuf>)> =
        std::sync::OnceLock::new();
    let (cargo, rustc) = FOUND.get_or_init(|| {
        let cargo = std::env::var_os("CARGO").or_else(|| {
            let out = Command::new("rustup")
                .args(["which", "cargo"])
                .stderr(Stdio::null())
                .output()
                .ok()
                .filter(|o| o.status.success())?;
            let path = String::from_utf8(out.stdout).ok()?;
            Some(path.trim().into()).filter(|p: &std::ffi::OsString| !p.is_empty())
        });
        let Some(cargo) = cargo else {
            return ("cargo".into(), None);
        };
        // The rustc beside it, when there is one (a toolchain's bin/).
        let rustc = Path::new(&cargo)
            .parent()
            .map(|d| d.join("rustc"))
            .filter(|r| r.is_file());
        (cargo, rustc)
    });
    (cargo, rustc.as_deref())
}

fn run_cargo(
    krate: &Crate,
    dirs: &Dirs,
    options: Options<'_>,
    env: &[(&str, String)],
    out: &crate::Out,
) -> Result<Run, BuildError> {
    use std::io::{BufRead, IsTerminal};
    let (cargo, rustc) = toolchain();
    // nym renders the compiler's diagnostics itself (as cargo would), to
    // read their codes: in colour on a terminal that wants it.
    let colour = out.is_stderr()
        && std::io::stderr().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let format = if colour {
        "--message-format=json-diagnostic-rendered-ansi"
    } else {
        "--message-format=json"
    };
    let mut cmd = Command::new(cargo);
    if let Some(rustc) = rustc.filter(|_| std::env::var_os("RUSTC").is_none()) {
        cmd.env("RUSTC", rustc);
    }
    cmd.arg("build")
        .arg("--manifest-path")
        .arg(krate.dir.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&dirs.target)
        .arg(format)
        .stdout(Stdio::piped())
        .stderr(if out.is_stderr() {
            Stdio::inherit()
        } else {
            Stdio::piped()
        });
    if let Some(build) = &dirs.build {
        cmd.arg("--config")
            .arg(format!("build.build-dir={:?}", build.display().to_string()));
    }
    if options.release {
        cmd.arg("--release");
    }
    cmd.args(options.extra);
    // A nym run from inside `cargo test` or `cargo run` must not inherit the
    // outer build's settings for this unrelated crate.
    for var in [
        "CARGO_MANIFEST_DIR",
        "CARGO_PKG_NAME",
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_BUILD_TARGET",
    ] {
        cmd.env_remove(var);
    }
    cmd.envs(env.iter().map(|(k, v)| (k, v)));
    let mut child = cmd.spawn().map_err(BuildError::Spawn)?;
    // cargo's progress and errors, line by line as it prints them, to a
    // session's log (on the terminal they were inherited).
    let forward = child.stderr.take().map(|err| {
        let out = out.clone();
        crate::forward_lines(err, move |line| out.line(line))
    });
    let mut run = Run {
        success: false,
        messages: Vec::new(),
        errors: Vec::new(),
    };
    if let Some(stdout) = child.stdout.take() {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            let Ok(msg) = serde_json::from_str::<serde_json::Value>(&line) else {
                continue;
            };
            if msg["reason"] != "compiler-message" {
                run.messages.push(msg);
                continue;
            }
            let diagnostic = &msg["message"];
            let rendered = diagnostic["rendered"].as_str().unwrap_or_default();
            if !rendered.is_empty() {
                out.line(rendered.trim_end());
            }
            if diagnostic["level"] == "error" {
                let code = diagnostic["code"]["code"].as_str().map(str::to_owned);
                run.errors.push((code, rendered.to_owned()));
            }
        }
    }
    let status = child.wait().map_err(BuildError::Spawn)?;
    if let Some(t) = forward {
        let _ = t.join();
    }
    run.success = status.success();
    Ok(run)
}

/// The artifact of the kind asked for among cargo's messages.
fn find_artifact(
    messages: &[serde_json::Value],
    artifact: Artifact,
) -> Result<PathBuf, BuildError> {
    let mut found = None;
    for msg in messages {
        if msg["reason"] != "compiler-artifact" {
            continue;
        }
        let kinds = msg["target"]["kind"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        match artifact {
            Artifact::Cdylib if kinds.iter().any(|k| k == "cdylib") => {
                found = msg["filenames"]
                    .as_array()
                    .and_then(|f| {
                        f.iter()
                            .filter_map(|v| v.as_str())
                            .find(|f| f.ends_with(".so") || f.ends_with(".dylib"))
                    })
                    .map(PathBuf::from);
            }
            Artifact::Bin if kinds.iter().any(|k| k == "bin") => {
                found = msg["executable"].as_str().map(PathBuf::from);
            }
            _ => {}
        }
    }
    found.ok_or(BuildError::NoArtifact(match artifact {
        Artifact::Cdylib => "library",
        Artifact::Bin => "executable",
    }))
}

/// A `[dependencies]` line for a path dependency.
pub fn path_dep(name: &str, path: &Path, extra: &str) -> String {
    format!(
        "{name} = {{ path = {:?}{extra} }}\n",
        path.display().to_string()
    )
}

/// The Rust target of unikernel images.
pub const GUEST_TARGET: &str = "x86_64-unknown-none";

/// The `--cfg` switches that keep RustCrypto off SIMD on a guest.
pub const SOFT_CRYPTO: &[&str] = &[
    "aes_force_soft",
    "polyval_force_soft",
    "poly1305_force_soft",
    "chacha20_force_soft",
    "curve25519_dalek_backend=\"serial\"",
];

/// The linker script of guest images, which a generated crate holds a copy
/// of as [`LINK_SCRIPT`].
pub fn link_script() -> Result<String, BuildError> {
    let path = nym_src().join("targets/baremetal/link.ld");
    std::fs::read_to_string(&path).map_err(|source| BuildError::Read { path, source })
}

/// The name of the linker script in a guest's generated crate. rustc runs
/// the linker in the crate's directory (its workspace's root), so the flags
/// name it without a path: a path in `rustflags` would be in the hash cargo
/// gives every unit, and so in every symbol of the image, and an image would
/// depend on where nym's sources are.
pub const LINK_SCRIPT: &str = "link.ld";

/// The cargo arguments that build a guest image: the target, and the
/// flags that link it where it runs (no relocation, so gdb's symbols land
/// without offsets) with frame pointers (for crash backtraces). The target's
/// own code model (kernel) is kept: its sign-extended 32-bit addresses reach
/// an image at 1 MiB, and it matches the precompiled `core` under LTO. No
/// argument holds a path of this machine.
pub fn guest_args() -> Vec<String> {
    let flags = [
        format!("link-arg=-T{LINK_SCRIPT}"),
        // Segments stay page-aligned in memory (the linker script does that,
        // for W^X); in the file they need not be, as every loader (nym's
        // monitor, QEMU, Xen) copies them. Without it a small image is a
        // fifth padding.
        "link-arg=-zmax-page-size=16".into(),
        "relocation-model=static".into(),
        "force-frame-pointers=yes".into(),
    ];
    let mut list: Vec<String> = flags
        .iter()
        .flat_map(|f| ["\"-C\"".to_owned(), format!("{f:?}")])
        .collect();
    // The guest is soft-float without SSE: RustCrypto (TLS) must take its
    // portable paths, which these switches select (SHA-2 has a feature).
    for cfg in SOFT_CRYPTO {
        list.extend(["\"--cfg\"".to_owned(), format!("{cfg:?}")]);
    }
    vec![
        "--target".into(),
        GUEST_TARGET.into(),
        "--config".into(),
        format!("target.{GUEST_TARGET}.rustflags=[{}]", list.join(",")),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// CI builds libos and lints the guest runtime with TLS for the guest
    /// target by hand: with the same switches as a guest image.
    #[test]
    fn the_test_script_passes_guests_soft_crypto_switches() {
        let script = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/test.sh"),
        )
        .unwrap();
        for cfg in SOFT_CRYPTO {
            assert!(
                script.contains(&format!("--cfg {cfg}")),
                "scripts/test.sh lacks --cfg {cfg}"
            );
        }
        let args = guest_args().join(" ");
        assert!(
            args.contains(r#""--cfg","curve25519_dalek_backend=\"serial\"""#),
            "{args}"
        );
    }

    /// Where nym's sources or the user's home are must not change an
    /// image's bytes: cargo hashes the flags into every unit's symbols.
    #[test]
    fn guest_flags_name_no_path_of_this_machine() {
        let args = guest_args().join(" ");
        let src = nym_src().display().to_string();
        assert!(!args.contains(&src), "{args}");
        assert!(!args.contains("/"), "{args}");
    }
}
