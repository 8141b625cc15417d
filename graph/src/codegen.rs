//! Code generation: the compiled mode of a graph (MirageOS's generated
//! `main.ml`), and the shim that exposes an application's jobs to the
//! in-process runner.
//!
//! The generated `main.rs` builds the concrete implementations in
//! dependency order — monomorphised, so an image links only what the graph
//! uses — and runs the registered jobs on the target's runtime.
use crate::catalog::ParamType;
use crate::check::{GArg, Graph, JobNode};
use crate::types::{Kind, Target};
use libos::Value;
use std::fmt::Write;
use std::path::{Path, PathBuf};

/// Why code could not be generated.
#[derive(Debug, thiserror::Error)]
pub enum CodegenError {
    /// A `kv::baked` directory cannot be read.
    #[error("cannot bake {}: {source}", dir.display())]
    Bake {
        /// The directory.
        dir: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// The module whose `main` runs a program on `target`, handing the build
/// closure its `libos::platform::Platform`.
fn platform(target: Target) -> &'static str {
    if target.is_guest() {
        "nym_baremetal::platform"
    } else {
        "nym_unix::platform"
    }
}

/// A Rust expression for a literal value.
fn value_expr(v: &Value) -> String {
    match v {
        Value::Str(s) => format!("alloc::string::String::from({s:?})"),
        Value::Int(i) => format!("{i}i64"),
        Value::Bool(b) => b.to_string(),
        Value::Duration(d) => format!("core::time::Duration::from_nanos({}u64)", d.as_nanos()),
        Value::Cidr(c) => {
            let [a, b, cc, d] = c.addr.octets();
            format!("libos::Ipv4Cidr {{ addr: core::net::Ipv4Addr::new({a}, {b}, {cc}, {d}), prefix: {} }}", c.prefix)
        }
    }
}

fn key_getter(ty: libos::ValueType) -> &'static str {
    match ty {
        libos::ValueType::Str => "string",
        libos::ValueType::Int => "int",
        libos::ValueType::Bool => "bool",
        libos::ValueType::Duration => "duration",
        libos::ValueType::Cidr => "cidr",
    }
}

fn arg_expr(g: &Graph, a: &GArg) -> String {
    match a {
        GArg::Node(n) => format!("n{n}.clone()"),
        GArg::Value(v) => value_expr(v),
        GArg::Key(k) => {
            let key = &g.keys[*k];
            format!("keys.{}({:?})?", key_getter(key.ty), key.name)
        }
    }
}

/// Files under `dir`, as (key with `/` separators, absolute path), sorted:
/// what `kv::baked(dir)` serves, in a build and in-process alike.
pub fn baked_files(dir: &Path) -> Result<Vec<(String, PathBuf)>, CodegenError> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, PathBuf)>) -> std::io::Result<()> {
        for entry in std::fs::read_dir(dir)? {
            let path = entry?.path();
            if path.is_dir() {
                walk(root, &path, out)?;
            } else {
                let rel = path.strip_prefix(root).unwrap_or(&path);
                let key = rel
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy())
                    .collect::<Vec<_>>()
                    .join("/");
                out.push((key, path.canonicalize()?));
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out).map_err(|source| CodegenError::Bake {
        dir: dir.to_owned(),
        source,
    })?;
    out.sort();
    Ok(out)
}

/// The `main.rs` of a standalone program for `g.target` running the
/// application crate `krate` (its Rust name) found at `project`.
pub fn main_rs(g: &Graph, krate: &str, project: &Path) -> Result<String, CodegenError> {
    let platform = platform(g.target);
    let mut statics = String::new();
    let mut body = String::new();
    for (i, n) in g.nodes.iter().enumerate() {
        let mut expr = n.imp.rust.to_owned();
        for (p, a) in n.imp.params.iter().zip(&n.args) {
            let text = match (n.imp.name, a) {
                ("kv::baked", GArg::Value(Value::Str(dir))) => {
                    let _ = writeln!(statics, "static BAKED_{i}: &[(&str, &[u8])] = &[");
                    for (key, path) in baked_files(&project.join(dir))? {
                        let _ = writeln!(
                            statics,
                            "    ({key:?}, include_bytes!({:?})),",
                            path.display().to_string()
                        );
                    }
                    statics.push_str("];\n");
                    format!("BAKED_{i}")
                }
                _ => arg_expr(g, a),
            };
            expr = expr.replace(&format!("{{{}}}", p.name), &text);
        }
        let _ = writeln!(body, "        // {} = {}", n.label, n.imp.name);
        let _ = writeln!(body, "        let n{i} = alloc::sync::Arc::new({expr});");
    }
    let mut jobs = String::new();
    for (j, job) in g.jobs.iter().enumerate() {
        let _ = writeln!(body, "        let job{j}: libos::abi::JobFuture = {{");
        let mut names = Vec::new();
        for (a, (arg, p)) in job.args.iter().zip(&job.sig.params).enumerate() {
            let expr = match (p.ty, p.int_ty) {
                (ParamType::Value(_), Some(int)) => {
                    format!("{int}::try_from({})?", arg_expr(g, arg))
                }
                _ => arg_expr(g, arg),
            };
            let _ = writeln!(body, "            let a{a} = {expr};");
            names.push(format!("a{a}"));
        }
        let _ = writeln!(body, "            {}", job_future(krate, job, &names));
        body.push_str("        };\n");
        let _ = write!(jobs, "({:?}, job{j}), ", job.label);
    }
    let keys: Vec<String> = g
        .keys
        .iter()
        .map(|k| format!("({:?}, {})", k.name, value_ctor(&k.default)))
        .collect();
    let header = format!(
        "// Generated by nym from the graph of {:?} for {}. Do not edit:\n\
         // `nym build` writes it again from unikernel.nym.\n",
        g.name,
        // One image serves every guest target: its code must not differ
        // by the target's name alone.
        if g.target.is_guest() {
            "a unikernel image"
        } else {
            "unix"
        }
    );
    let run = format!(
        "{platform}::main({name:?}, alloc::vec![{keys}], |keys, p| {{\n{body}        Ok(alloc::vec![{jobs}])\n    }})",
        name = g.name,
        keys = keys.join(", "),
    );
    Ok(match g.target {
        Target::Unix => format!(
            "{header}#![allow(unused_imports, unused_variables, clippy::all)]\nextern crate alloc;\n\n{statics}\n\
             fn main() -> std::process::ExitCode {{\n    {run}\n}}\n"
        ),
        _ => {
            let block = g.nodes.iter().any(|n| n.imp.name == "block::file");
            let net = g.nodes.iter().any(|n| n.imp.name == "netif::default");
            format!(
                "{header}#![no_std]\n#![no_main]\n#![allow(unused_imports, unused_variables, clippy::all)]\nextern crate alloc;\n\n\
                 nym_baremetal::manifest!(block: {block}, net: {net});\n\n{statics}\n\
                 #[no_mangle]\npub fn nym_main() -> i32 {{\n    {run}\n}}\n"
            )
        }
    })
}

/// A Rust expression building the `libos::Value` of a literal.
fn value_ctor(v: &Value) -> String {
    let variant = match v.ty() {
        libos::ValueType::Str => "Str",
        libos::ValueType::Int => "Int",
        libos::ValueType::Bool => "Bool",
        libos::ValueType::Duration => "Duration",
        libos::ValueType::Cidr => "Cidr",
    };
    format!("libos::Value::{variant}({})", value_expr(v))
}

fn taker(p: &crate::jobs::JobParam) -> String {
    match (p.ty, p.int_ty) {
        (ParamType::Device(k), _) => match k {
            Kind::Console => "args.console()?".into(),
            Kind::MonoClock => "args.mono_clock()?".into(),
            Kind::WallClock => "args.wall_clock()?".into(),
            Kind::Time => "args.time()?".into(),
            Kind::Random => "args.random()?".into(),
            Kind::KvRo => "args.kv_ro()?".into(),
            Kind::Kv => "args.kv()?".into(),
            Kind::Block => "args.block()?".into(),
            Kind::Netif => "args.netif()?".into(),
            Kind::Stack => "args.stack()?".into(),
            // Flows and jobs are never job arguments; the checker refuses them.
            Kind::Flow | Kind::Job => {
                "return Err(libos::abi::ArgError::Missing { index: 0, expected: \"device\" })"
                    .into()
            }
        },
        (ParamType::Value(_), Some(int)) => format!("args.int::<{int}>({int:?})?"),
        (ParamType::Value(v), None) => match v {
            libos::ValueType::Str => "args.string()?".into(),
            libos::ValueType::Int => "args.int::<i64>(\"i64\")?".into(),
            libos::ValueType::Bool => "args.bool()?".into(),
            libos::ValueType::Duration => "args.duration()?".into(),
            libos::ValueType::Cidr => "args.cidr()?".into(),
        },
    }
}

/// The expression that calls `job`'s function in the application crate
/// `krate` with the argument variables `names`: a boxed future of its
/// outcome.
fn job_future(krate: &str, job: &JobNode, names: &[String]) -> String {
    let function = job.sig.path.split_once("::").map_or("", |p| p.1);
    let args = names.join(", ");
    format!(
        "alloc::boxed::Box::pin(async move {{ libos::Outcome::into_outcome({krate}::{function}({args}).await) }})"
    )
}

/// The `lib.rs` of the shim library that exposes the jobs of `g` to the
/// in-process runner through [`libos::abi`]. It depends only on the jobs'
/// signatures, so editing the graph does not rebuild it.
pub fn shim_rs(jobs: &[&JobNode], krate: &str) -> String {
    let mut seen = Vec::new();
    let mut entries = String::new();
    let mut fns = String::new();
    for job in jobs {
        if seen.contains(&job.sig.path) {
            continue;
        }
        let i = seen.len();
        seen.push(job.sig.path.clone());
        let _ = writeln!(
            entries,
            "    libos::abi::JobSpec {{ path: {:?}, entry: job{i} }},",
            job.sig.path
        );
        let _ = writeln!(fns, "fn job{i}(mut args: libos::abi::Args) -> Result<libos::abi::JobFuture, libos::abi::ArgError> {{");
        let mut names = Vec::new();
        for (a, p) in job.sig.params.iter().enumerate() {
            let _ = writeln!(fns, "    let a{a} = {};", taker(p));
            names.push(format!("a{a}"));
        }
        fns.push_str("    args.finish()?;\n");
        let _ = writeln!(fns, "    Ok({})\n}}\n", job_future(krate, job, &names));
    }
    format!(
        "// Generated by nym: the in-process runner's view of the application's jobs. Do not edit.\n\
         #![allow(clippy::all)]\nextern crate alloc;\n\n\
         #[no_mangle]\n\
         pub extern \"C\" fn nym_abi_fingerprint() -> *const core::ffi::c_char {{\n    \
             libos::abi::FINGERPRINT.as_ptr().cast()\n\
         }}\n\n\
         #[no_mangle]\n\
         pub static nym_job_table: libos::abi::JobTable = libos::abi::JobTable {{ jobs: &[\n{entries}] }};\n\n\
         {fns}"
    )
}
