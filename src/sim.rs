//! `nym sim TOPOLOGY`: many graphs on one simulated network, on virtual
//! time, reproducible from a seed.
use crate::commands::CliError;
use nym_driver::Out;
use nym_sim::topology::{duration, Topology};
use nym_sim::{Outcome, RunOptions};
use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

/// What `nym sim` was asked.
pub(crate) struct Args<'a> {
    pub(crate) topology: &'a Path,
    pub(crate) seed: Option<u64>,
    pub(crate) seeds: Option<&'a str>,
    pub(crate) until: Option<&'a str>,
    pub(crate) pcaps: &'a [String],
    pub(crate) trace: Option<&'a Path>,
}

fn other(message: String) -> CliError {
    CliError::Other(message.into())
}

/// `A..B` (B included), as `--seeds 1..100`.
fn seed_range(text: &str) -> Result<std::ops::RangeInclusive<u64>, CliError> {
    let bad = || other(format!("--seeds {text}: write a range of seeds, `1..100`"));
    let (a, b) = text.split_once("..").ok_or_else(bad)?;
    let (a, b): (u64, u64) = (
        a.trim().parse().map_err(|_| bad())?,
        b.trim().parse().map_err(|_| bad())?,
    );
    if a > b {
        return Err(bad());
    }
    Ok(a..=b)
}

/// Runs `nym sim`.
pub(crate) fn run(cwd: &Path, args: Args<'_>) -> Result<ExitCode, CliError> {
    let path = cwd.join(args.topology);
    let topology = Topology::load(&path).map_err(|e| other(e.to_string()))?;
    let until = match args.until {
        Some(t) => duration(t).map_err(|e| other(format!("--until: {e}")))?,
        None => topology.until,
    };
    let mut pcaps = Vec::new();
    for p in args.pcaps {
        let (node, file) = p
            .split_once('=')
            .ok_or_else(|| other(format!("--pcap {p}: write NODE=FILE, `server=server.pcap`")))?;
        let index = topology
            .nodes
            .iter()
            .position(|n| n.name == node)
            .ok_or_else(|| {
                let names: Vec<&str> = topology.nodes.iter().map(|n| n.name.as_str()).collect();
                other(format!(
                    "--pcap {p}: no node `{node}` (nodes: {})",
                    names.join(", ")
                ))
            })?;
        pcaps.push((index, cwd.join(file)));
    }
    let seeds: Vec<u64> = match (args.seed, args.seeds) {
        (Some(_), Some(_)) => return Err(other("give --seed or --seeds, not both".into())),
        (_, Some(_)) if args.trace.is_some() => {
            return Err(other(
                "--trace records one run: give --seed, not --seeds".into(),
            ))
        }
        (_, Some(range)) => seed_range(range)?.collect(),
        (Some(s), None) => vec![s],
        (None, None) => vec![topology.seed],
    };
    let programs = nym_sim::prepare(&topology, &Out::stderr()).map_err(|e| other(e.to_string()))?;
    let stem = path
        .file_stem()
        .map_or("sim".into(), |s| s.to_string_lossy().into_owned());
    let state = path
        .parent()
        .unwrap_or(cwd)
        .join("target/nym/sim")
        .join(stem);
    let shown = path
        .strip_prefix(cwd)
        .unwrap_or(&path)
        .display()
        .to_string();
    let many = seeds.len() > 1;
    let mut failed = Vec::new();
    for &seed in &seeds {
        let options = RunOptions {
            seed,
            until,
            pcaps: if many { Vec::new() } else { pcaps.clone() },
            state: state.clone(),
            trace: args.trace.is_some() && !many,
            // The run's thread is held by the node: nothing to wait for.
            stuck: Some(std::sync::Arc::new(|message: &str| {
                eprintln!("{message}");
                std::process::exit(2);
            })),
        };
        let wall = Instant::now();
        let outcome = if many {
            nym_sim::run(&topology, &programs, &options, |_| {}, None)
        } else {
            let show = |line: &str| println!("{line}");
            nym_sim::run(&topology, &programs, &options, show, None)
        }
        .map_err(|e| other(e.to_string()))?;
        report(&outcome, wall.elapsed(), &shown, many);
        if let (Some(file), Some(trace)) = (args.trace, &outcome.trace) {
            let file = cwd.join(file);
            std::fs::write(&file, trace.json(&format!("nym sim {shown} --seed {seed}")))
                .map_err(|e| other(format!("cannot write {}: {e}", file.display())))?;
            eprintln!("{}", trace.written(&file));
        }
        if outcome.violation.is_some() {
            failed.push(seed);
        }
    }
    if many {
        if failed.is_empty() {
            eprintln!("sim: all {} seeds held every property", seeds.len());
        } else {
            let list: Vec<String> = failed.iter().map(u64::to_string).collect();
            eprintln!(
                "sim: {} of {} seeds failed: {}",
                failed.len(),
                seeds.len(),
                list.join(", ")
            );
        }
    }
    Ok(if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn report(o: &Outcome, wall: std::time::Duration, topology: &str, brief: bool) {
    match (&o.violation, brief) {
        (None, true) => eprintln!(
            "seed {}: {} properties held ({})",
            o.seed,
            o.held,
            nym_sim::run::secs(o.simulated)
        ),
        (Some(v), true) => eprintln!(
            "seed {}: property `{}` violated at {}: {}",
            o.seed,
            v.property,
            nym_sim::run::secs(v.at),
            v.why
        ),
        (_, false) => eprintln!("{}", o.summary(wall, &format!("nym sim {topology}"))),
    }
}
