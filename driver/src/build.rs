//! From a checked graph to something that runs: the in-process shim
//! library, compiled programs and images, and key values.
use crate::cargo::{self, Artifact, Crate};
use crate::project::Project;
use crate::{Error, Out};
use nym_graph::codegen;
use nym_graph::{Graph, Target};
use nym_unix::keys::Keys;
use nym_unix::runner::Library;
use std::path::{Path, PathBuf};

pub fn rust_name(project: &Project) -> Result<(String, String), Error> {
    match (&project.package, project.rust_name()) {
        (Some(p), Some(r)) => Ok((p.clone(), r)),
        _ => Err(Error::NoCrate(project.graph_path.clone())),
    }
}

/// Builds the shim library exposing the graph's jobs to the in-process runner.
pub fn build_shim(project: &Project, graph: &Graph, out: &Out) -> Result<PathBuf, Error> {
    let (package, krate) = rust_name(project)?;
    let src = cargo::nym_src();
    let jobs: Vec<_> = graph.registered.iter().map(|&j| &graph.jobs[j]).collect();
    // The library is linked without the debug information of what it
    // holds (symbols stay, and a panic still names its file and line):
    // linking it was most of a hot reload's rebuild, 11 MB written each
    // time, and each reload copies and loads it. The application and the
    // shim, rebuilt at each save, make none to begin with.
    let manifest = format!(
        "[package]\nname = \"nym-shim-{package}\"\nversion = \"0.0.0\"\nedition = \"2021\"\npublish = false\n\n\
         [lib]\ncrate-type = [\"cdylib\"]\npath = \"lib.rs\"\n\n[dependencies]\n{}{}\n[workspace]\n\n\
         [profile.dev.package.nym-shim-{package}]\nstrip = \"debuginfo\"\ndebug = 0\n\n\
         [profile.dev.package.{package}]\ndebug = 0\n",
        cargo::path_dep(&package, &project.root, ""),
        cargo::path_dep("libos", &src.join("libos"), ""),
    );
    let shim = Crate {
        dir: project.nym_dir(Target::Unix).join("shim"),
        manifest,
        files: vec![("lib.rs", codegen::shim_rs(&jobs, &krate))],
    };
    let options = cargo::Options {
        artifact: Artifact::Cdylib,
        release: false,
        extra: &[],
        reproducible: false,
    };
    Ok(cargo::build(&shim, &project.dirs(), options, out)?)
}

/// Loads a fresh copy of the library: `dlopen` caches by path, and a copy
/// lets the next build overwrite the original while this one runs.
pub fn load_copy(project: &Project, so: &Path) -> Result<Library, Error> {
    let dir = project.nym_dir(Target::Unix).join("loaded");
    let io = |what: String| move |source| Error::Io { what, source };
    std::fs::create_dir_all(&dir).map_err(io(format!("creating {}", dir.display())))?;
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let copy = dir.join(format!("app-{}-{stamp}.so", std::process::id()));
    std::fs::copy(so, &copy).map_err(io(format!("copying {}", so.display())))?;
    let lib = Library::load(&copy);
    // The mapping outlives the file; removing it now leaves nothing behind.
    let _ = std::fs::remove_file(&copy);
    Ok(lib?)
}

/// The multi-threaded tokio runtime the in-process jobs run on.
pub fn runtime() -> Result<tokio::runtime::Runtime, Error> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|source| Error::Io {
            what: "starting the runtime".into(),
            source,
        })
}

/// The values of the graph's keys: its defaults, overridden by `key_args`.
pub fn key_values(graph: &Graph, key_args: &[String]) -> Result<Keys, Error> {
    let defaults = graph
        .keys
        .iter()
        .map(|k| (k.name.as_str(), k.default.clone()))
        .collect();
    Ok(Keys::parse(defaults, key_args)?)
}

/// The cargo profiles of a guest image. Debug builds optimise what is too
/// slow unoptimised (libos, smoltcp and the large blocks' allocator cannot
/// answer a SYN in time; a TLS handshake's arithmetic takes minutes) and
/// leave the rest steppable in gdb, the runtime's size classes included
/// (a few dozen instructions a call unoptimised).
fn guest_profile(tls: bool) -> String {
    let mut fast = vec!["smoltcp", "linked_list_allocator", "libos"];
    if tls {
        fast.extend(TLS_CRATES);
    }
    let mut profile = String::from("\n[profile.dev]\npanic = \"abort\"\n\n");
    for krate in fast {
        profile.push_str(&format!("[profile.dev.package.{krate}]\nopt-level = 2\n"));
    }
    profile.push_str(
        "\n[profile.release]\npanic = \"abort\"\nopt-level = \"s\"\nlto = true\ncodegen-units = 1\ndebug = true\n",
    );
    profile
}

/// The crates doing a TLS session's work, optimised in a guest's debug build.
const TLS_CRATES: &[&str] = &[
    "rustls",
    "rustls-rustcrypto",
    "rustls-webpki",
    "sha2",
    "hmac",
    "chacha20",
    "poly1305",
    "chacha20poly1305",
    "aes",
    "aes-gcm",
    "ghash",
    "polyval",
    "x25519-dalek",
    "curve25519-dalek",
    "ed25519-dalek",
    "p256",
    "p384",
    "ecdsa",
    "elliptic-curve",
    "primeorder",
    "crypto-bigint",
    "rsa",
    "num-bigint-dig",
];

/// Generates the compiled program of `graph` for its target and builds it:
/// a standalone executable on unix, an ELF image on kvm.
pub fn build_program(
    cwd: &Path,
    project: &Project,
    graph: &Graph,
    release: bool,
    out: &Out,
) -> Result<PathBuf, Error> {
    let target = graph.target;
    let (package, krate) = rust_name(project)?;
    let src = cargo::nym_src();
    let main = codegen::main_rs(graph, &krate, &project.root)?;
    // The TLS devices compile rustls and RustCrypto: only for graphs that
    // use them.
    let tls = graph.nodes.iter().any(|n| n.imp.name.starts_with("tls::"));
    let features = if tls { ", features = [\"tls\"]" } else { "" };
    let (runtime, extra, profile, file) = if target.is_guest() {
        (
            cargo::path_dep("nym-baremetal", &src.join("targets/baremetal"), features),
            cargo::guest_args(),
            guest_profile(tls),
            format!("{}.elf", graph.name),
        )
    } else {
        (
            cargo::path_dep("nym-unix", &src.join("targets/unix"), features),
            vec![],
            String::new(),
            graph.name.clone(),
        )
    };
    let manifest = format!(
        "[package]\nname = \"nym-main-{package}\"\nversion = \"0.0.0\"\nedition = \"2021\"\npublish = false\n\n\
         [[bin]]\nname = \"{}\"\npath = \"main.rs\"\ntest = false\nbench = false\n\n[dependencies]\n{}{}{runtime}{profile}\n[workspace]\n",
        graph.name,
        cargo::path_dep(&package, &project.root, ""),
        cargo::path_dep("libos", &src.join("libos"), ""),
    );
    let dir = project.nym_dir(target);
    let mut files = vec![("main.rs", main)];
    if target.is_guest() {
        // The image's linker script, beside main.rs (`cargo::LINK_SCRIPT`);
        // its hash in main.rs links the image again when it changes.
        let script = cargo::link_script()?;
        files[0].1.push_str(&format!(
            "\n// Linked with {} (sha256 {}).\n",
            cargo::LINK_SCRIPT,
            sha256_hex(script.as_bytes())
        ));
        files.push((cargo::LINK_SCRIPT, script));
    }
    let gen = Crate {
        dir: project.build_dir(target),
        manifest,
        files,
    };
    // A release image is the same bytes wherever it is built.
    let options = cargo::Options {
        artifact: Artifact::Bin,
        release,
        extra: &extra,
        reproducible: release && target.is_guest(),
    };
    let out_file = dir.join(&file);
    let exe = match cargo::build(&gen, &project.dirs(), options, out) {
        Ok(exe) => exe,
        Err(e) => {
            if out_file.exists() {
                out.line(&format!(
                    "nym: {} is left as it was, the last one that built",
                    out_path_display(cwd, &out_file)
                ));
            }
            return Err(e.into());
        }
    };
    std::fs::create_dir_all(&dir).map_err(|source| Error::Io {
        what: format!("creating {}", dir.display()),
        source,
    })?;
    // Whole or not at all: a copy cut short never replaces the last image.
    // A hard link where it can be (cargo replaces its file rather than
    // writing into it, so the link keeps this build's bytes).
    let part = dir.join(format!(".{file}.{}.part", std::process::id()));
    let _ = std::fs::remove_file(&part);
    std::fs::hard_link(&exe, &part)
        .or_else(|_| std::fs::copy(&exe, &part).map(|_| ()))
        .and_then(|()| std::fs::rename(&part, &out_file))
        .map_err(|source| {
            let _ = std::fs::remove_file(&part);
            Error::Io {
                what: format!("copying {} to {}", exe.display(), out_file.display()),
                source,
            }
        })?;
    let sha = sha256_file(&out_file).map_err(|source| Error::Io {
        what: format!("reading {}", out_file.display()),
        source,
    })?;
    out.line(&format!(
        "built {} (generated code: {})\nsha256 {sha}",
        out_path_display(cwd, &out_file),
        project.build_dir(target).join("main.rs").display()
    ));
    Ok(out_file)
}

/// The SHA-256 of a file, in hex.
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    Ok(sha256_hex(&std::fs::read(path)?))
}

/// The SHA-256 of `bytes`, in hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn out_path_display(cwd: &Path, p: &Path) -> String {
    p.strip_prefix(cwd).unwrap_or(p).display().to_string()
}

pub fn key_defaults(graph: &Graph) -> Vec<(&str, libos::Value)> {
    graph
        .keys
        .iter()
        .map(|k| (k.name.as_str(), k.default.clone()))
        .collect()
}

/// Checks the key arguments here (clear errors before a build) and joins
/// them into a guest command line.
pub fn guest_cmdline(graph: &Graph, key_args: &[String]) -> Result<String, Error> {
    if let Some(bad) = key_args.iter().find(|a| a.chars().any(char::is_whitespace)) {
        return Err(Error::GuestArg(bad.clone()));
    }
    Keys::parse(key_defaults(graph), key_args)?;
    Ok(key_args.join(" "))
}
