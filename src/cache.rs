//! `nym cache`: where the shared build cache is, how big, and emptying it
//! (`nym_driver::cache`).
use crate::commands::CliError;
use nym_driver::cache;
use std::process::ExitCode;

/// What `nym cache` does.
#[derive(Debug, Clone, Copy, clap::Subcommand)]
pub enum CacheCommand {
    /// Print the cache's directory alone (for scripts).
    Dir,
    /// Remove the shared builds and the Rust cells' builds; the next build
    /// makes them again. Waits for builds that use the cache to finish.
    Clean,
}

/// `nym cache [dir|clean]`.
pub(crate) fn run(command: Option<CacheCommand>) -> Result<ExitCode, CliError> {
    let root = cache::dir();
    match command {
        Some(CacheCommand::Dir) => println!("{}", root.display()),
        None => {
            println!("{}", root.display());
            for part in cache::parts(&root) {
                let name = part.path.file_name().unwrap_or_default().to_string_lossy();
                println!("  {name:<11} {:>10}  {}", human(part.bytes), part.what);
            }
            if let Some(t) = std::env::var_os("CARGO_TARGET_DIR").filter(|t| !t.is_empty()) {
                println!(
                    "CARGO_TARGET_DIR is set: builds go to {}, not to the shared cache",
                    std::path::Path::new(&t).display()
                );
            }
            println!("`nym cache clean` empties it; the next build fills it again.");
        }
        Some(CacheCommand::Clean) => {
            let cleaned = cache::clean(&root, || {
                eprintln!("nym: waiting for the builds using the cache to finish...");
            })?;
            for dir in &cleaned.busy {
                eprintln!(
                    "nym: left {} alone: a session's Rust cells use it",
                    dir.display()
                );
            }
            println!("removed {} from {}", human(cleaned.bytes), root.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Bytes for a person: `1.2 GiB`.
fn human(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::human;

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(human(512), "512 B");
        assert_eq!(human(1536), "1.5 KiB");
        assert_eq!(human(3 << 30), "3.0 GiB");
    }
}
