//! Where builds go and what they make: the build cache every project
//! shares (`nym cache`, no shared artifact in a project, two builds at once,
//! a damaged cache repaired), and release images that are the same bytes
//! whichever folder they are built in.
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Mutex;

mod common;
use common::{nym, run, shared_target, stderr, stdout};

/// The tests sharing [`cache_dir`] take turns: one of them damages it.
static CACHE: Mutex<()> = Mutex::new(());

/// A build cache of the suite's own, kept between runs like a user's
/// `~/.cache/nym` (the first run of the suite on a machine fills it).
fn cache_dir() -> PathBuf {
    shared_target().with_file_name("e2e-cache")
}

/// `nym` as a user runs it: no `CARGO_TARGET_DIR`, the cache at
/// [`cache_dir`].
fn nym_cached(dir: &Path) -> Command {
    let mut c = nym(dir);
    c.env_remove("CARGO_TARGET_DIR")
        .env("NYM_CACHE_DIR", cache_dir());
    c
}

/// A new project `name` from `template` in `parent`.
fn new_project(parent: &Path, name: &str, template: &str) -> PathBuf {
    std::fs::create_dir_all(parent).unwrap();
    let out = run(nym(parent).args(["new", name, "--template", template]));
    assert!(out.status.success(), "nym new failed");
    parent.join(name)
}

/// Every file under `dir`, as paths.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let p = entry.path();
        if p.is_dir() && !p.is_symlink() {
            out.extend(files(&p));
        } else {
            out.push(p);
        }
    }
    out
}

fn ran_hello(out: &Output) {
    assert!(out.status.success(), "{}", stderr(out));
    assert_eq!(
        stdout(out),
        "hello from nym #1\n1 greetings; the clock agrees: ok\n"
    );
}

#[test]
fn projects_share_one_build_cache_and_keep_none_of_it() {
    let _turn = CACHE.lock().unwrap_or_else(|p| p.into_inner());
    let tmp = tempfile::tempdir().unwrap();
    let first = new_project(tmp.path(), "first", "hello");
    ran_hello(&run(nym_cached(&first).args(["run", "--", "--count", "1"])));

    // A second project builds its own crate and nothing of libos's.
    let second = new_project(tmp.path(), "second", "hello");
    let out = run(nym_cached(&second).args(["run", "--", "--count", "1"]));
    ran_hello(&out);
    let log = stderr(&out);
    assert!(log.contains("Compiling second"), "{log}");
    assert!(
        !log.contains("Compiling libos"),
        "libos was built again:\n{log}"
    );
    for project in [&first, &second] {
        let shared: Vec<_> = files(project)
            .into_iter()
            .filter(|f| {
                let name = f.file_name().unwrap().to_string_lossy();
                name.contains("libos") || name.ends_with(".rlib") || name.ends_with(".rmeta")
            })
            .collect();
        assert!(
            shared.is_empty(),
            "shared artifacts in a project: {shared:?}"
        );
    }

    // `nym cache` shows where the cache is and what it holds.
    let shown = run(nym_cached(tmp.path()).arg("cache"));
    assert!(shown.status.success());
    let text = stdout(&shown);
    assert!(
        text.starts_with(&format!("{}\n", cache_dir().display())),
        "{text}"
    );
    assert!(
        text.contains("build ") && text.contains("rust-cells"),
        "{text}"
    );
    let dir = run(nym_cached(tmp.path()).args(["cache", "dir"]));
    assert_eq!(stdout(&dir).trim(), cache_dir().display().to_string());
}

#[test]
fn two_projects_build_at_once() {
    let _turn = CACHE.lock().unwrap_or_else(|p| p.into_inner());
    let tmp = tempfile::tempdir().unwrap();
    let dirs: Vec<PathBuf> = ["left", "right"]
        .iter()
        .map(|n| new_project(tmp.path(), n, "hello"))
        .collect();
    let children: Vec<_> = dirs
        .iter()
        .map(|d| {
            nym_cached(d)
                .args(["run", "--", "--count", "1"])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        ran_hello(&child.wait_with_output().unwrap());
    }
}

#[test]
fn a_damaged_cache_is_rebuilt_not_trusted() {
    let _turn = CACHE.lock().unwrap_or_else(|p| p.into_inner());
    let tmp = tempfile::tempdir().unwrap();
    let dir = new_project(tmp.path(), "mended", "hello");
    ran_hello(&run(nym_cached(&dir).args(["run", "--", "--count", "1"])));
    // libos, as a disk error or a killed copy would leave it: cut short.
    let deps = cache_dir().join("build/debug/deps");
    let libos: Vec<PathBuf> = std::fs::read_dir(&deps)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let n = p.file_name().unwrap().to_string_lossy();
            n.starts_with("liblibos-") && n.ends_with(".rlib")
        })
        .collect();
    assert!(!libos.is_empty(), "no libos in {}", deps.display());
    for f in &libos {
        let len = std::fs::metadata(f).unwrap().len();
        std::fs::OpenOptions::new()
            .write(true)
            .open(f)
            .unwrap()
            .set_len(len / 2)
            .unwrap();
    }
    // An edit makes the shim link again, against the damaged library.
    let lib = dir.join("src/lib.rs");
    let text = std::fs::read_to_string(&lib).unwrap();
    std::fs::write(&lib, text.replace("hello from nym", "hello again from nym")).unwrap();
    let out = run(nym_cached(&dir).args(["run", "--", "--count", "1"]));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).starts_with("hello again from nym #1"));
    let log = stderr(&out);
    assert!(
        log.contains("the build cache had damaged files") && log.contains("liblibos-"),
        "{log}"
    );
}

#[test]
fn cache_clean_empties_the_cache() {
    // A cache of its own: the shared one stays warm.
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    std::fs::create_dir_all(cache.join("build/debug/deps")).unwrap();
    std::fs::write(cache.join("build/debug/deps/libx-0.rlib"), [0u8; 2048]).unwrap();
    let out = run(nym(tmp.path())
        .args(["cache", "clean"])
        .env("NYM_CACHE_DIR", &cache));
    assert!(out.status.success());
    assert_eq!(
        stdout(&out),
        format!("removed 2.0 KiB from {}\n", cache.display())
    );
    assert!(!cache.join("build").exists());
}

/// The image `nym build --target kvm --release` makes of `template` in a
/// project under `parent`, and the sha256 it printed.
fn release_image(parent: &Path, template: &str) -> (Vec<u8>, String) {
    let dir = new_project(parent, "same", template);
    let out = run(nym(&dir).args(["build", "--target", "kvm", "--release"]));
    assert!(out.status.success(), "{}", stderr(&out));
    let image = PathBuf::from(stdout(&out).trim());
    assert_eq!(image, dir.join("target/nym/kvm/same.elf"));
    let log = stderr(&out);
    let sha = log
        .lines()
        .find_map(|l| l.strip_prefix("sha256 "))
        .unwrap_or_else(|| panic!("no sha256 printed:\n{log}"))
        .to_owned();
    let bytes = std::fs::read(&image).unwrap();
    use sha2::Digest;
    let actual: String = sha2::Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(sha, actual, "the sha256 printed is the image's");
    (bytes, sha)
}

#[test]
fn release_images_are_the_same_bytes_in_any_folder() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let b_deeper = b.path().join("somewhere/else/entirely");
    for template in ["hello", "http"] {
        let (one, sha_one) = release_image(&a.path().join(template), template);
        let (two, sha_two) = release_image(&b_deeper.join(template), template);
        assert_eq!(sha_one, sha_two, "{template}: the printed sha256 differ");
        assert!(one == two, "{template}: the images differ");
        // No path of the machine it was built on.
        let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
        let nym_src = env!("CARGO_MANIFEST_DIR");
        let built_in = a.path().display().to_string();
        for needle in [built_in.as_str(), home.as_str(), nym_src] {
            assert!(
                !one.windows(needle.len()).any(|w| w == needle.as_bytes()),
                "{template}'s image holds {needle}"
            );
        }
    }
}
