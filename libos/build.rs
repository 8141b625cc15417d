//! Computes the ABI fingerprint that the in-process runner compares before it
//! loads an application library: the compiler's version plus a hash of
//! libos's own sources. Two builds agree only if both match.
use std::{env, fs, path::Path, process::Command};

fn main() {
    let rustc = env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let version = Command::new(&rustc)
        .arg("-vV")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("commit-hash: ").map(str::to_owned))
                .or_else(|| s.lines().next().map(str::to_owned))
        })
        .unwrap_or_else(|| "unknown-rustc".into());

    let mut files = Vec::new();
    collect(Path::new("src"), &mut files);
    files.sort();
    // FNV-1a over the file names and contents: stable, dependency-free.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for f in &files {
        println!("cargo:rerun-if-changed={}", f.display());
        let bytes = fs::read(f).unwrap_or_default();
        for b in f.to_string_lossy().bytes().chain(bytes) {
            hash ^= u64::from(b);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    println!("cargo:rerun-if-env-changed=RUSTC");
    println!(
        "cargo:rustc-env=NYM_ABI_FINGERPRINT=libos-{}-{hash:016x}-rustc-{version}",
        env::var("CARGO_PKG_VERSION").unwrap_or_default()
    );
}

fn collect(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    let Ok(rd) = fs::read_dir(dir) else { return };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            collect(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}
