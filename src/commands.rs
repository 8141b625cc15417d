//! The subcommands. Each opens the project, asks `nym-graph` for the
//! checked graph, and hands it to a target.
use crate::cargo::{self, Artifact, BuildError, Crate};
use crate::new::{self, NewError, Template};
use crate::project::{Project, ProjectError};
use crate::ProjectArgs;
use nym_graph::check::GArg;
use nym_graph::codegen::{self, CodegenError};
use nym_graph::{analyze, diagnostic, print, Graph, Severity, Target};
use nym_unix::keys::{KeyError, Keys};
use nym_unix::runner::{Devices, Library, RunError};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The project cannot be opened.
    #[error(transparent)]
    Project(#[from] ProjectError),
    /// `nym new` failed.
    #[error(transparent)]
    New(#[from] NewError),
    /// The graph has errors (already printed).
    #[error("{file} has {errors} error(s); nothing was run")]
    Invalid {
        /// The graph file.
        file: String,
        /// How many.
        errors: usize,
    },
    /// Code generation failed.
    #[error(transparent)]
    Codegen(#[from] CodegenError),
    /// cargo failed.
    #[error(transparent)]
    Build(#[from] BuildError),
    /// Bad key arguments.
    #[error("{0}\n  hint: `nym graph` lists the keys and their defaults")]
    Keys(#[from] KeyError),
    /// Starting the graph failed.
    #[error(transparent)]
    Run(#[from] RunError),
    /// The graph has no application crate.
    #[error("{} has no Cargo.toml next to it: there is no application to build", .0.display())]
    NoCrate(PathBuf),
    /// The monitor could not boot the guest.
    #[error(transparent)]
    Monitor(#[from] nym_hvt::MonitorError),
    /// The gdb address cannot be listened on.
    #[error("cannot listen for gdb on {addr}: {source}")]
    Listen {
        /// The address.
        addr: String,
        /// Why (a port in use, a bad address).
        source: std::io::Error,
    },
    /// A forwarded port cannot be listened on.
    #[error("cannot forward port {port}: {source}")]
    Forward {
        /// The host port.
        port: u16,
        /// Why (a port in use).
        source: std::io::Error,
    },
    /// `-p` with a target that has no forwarding.
    #[error("-p forwards host ports to a unikernel on kvm; with --target {0} the stack uses the host's ports directly")]
    ForwardTarget(Target),
    /// `--gdb` with a target that has no stub.
    #[error("--gdb works with --target kvm (nym's monitor), not {0}")]
    GdbTarget(Target),
    /// `--watch` with a target that does not run in-process.
    #[error("--watch reloads the application in-process, so it needs --target unix (not {0}); an image is rebuilt by running again")]
    WatchTarget(Target),
    /// A key value that cannot travel on a guest command line.
    #[error("`{0}`: key values for a guest cannot contain white space")]
    GuestArg(String),
    /// QEMU could not run the guest.
    #[error(transparent)]
    Qemu(#[from] crate::qemu::QemuError),
    /// Xen could not run the guest.
    #[error(transparent)]
    Xen(#[from] crate::xen::XenError),

    /// A host operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// Why it failed.
        source: std::io::Error,
    },
}

impl CliError {
    /// The exit status: 2 for usage mistakes, 1 for everything else.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            CliError::Keys(_) | CliError::GuestArg(_) => ExitCode::from(2),
            _ => ExitCode::from(1),
        }
    }
}

fn color() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}

/// Opens the project, checks its graph and prints every diagnostic.
/// Returns the project, and the graph when there are no errors.
pub(crate) fn checked(
    cwd: &Path,
    args: &ProjectArgs,
    short: bool,
) -> Result<(Project, Option<Graph>, usize, usize), CliError> {
    let project = Project::open(cwd, args.file.as_deref())?;
    let krate = project.krate();
    let analysis = analyze(&project.source, args.target.into(), krate.as_ref());
    let name = project.display_path(cwd);
    let diags = analysis.diagnostics();
    if !diags.is_empty() {
        let text = if short {
            diagnostic::render_short(diags, &name, &project.source)
        } else {
            diagnostic::render(diags, &name, &project.source, color())
        };
        eprint!("{text}");
    }
    let errors = diags
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .count();
    let warnings = diags.len() - errors;
    let graph = analysis.checked.graph;
    Ok((project, graph, errors, warnings))
}

pub(crate) fn load(cwd: &Path, args: &ProjectArgs) -> Result<(Project, Graph), CliError> {
    let (project, graph, errors, _) = checked(cwd, args, false)?;
    match graph {
        Some(g) => Ok((project, g)),
        None => Err(CliError::Invalid {
            file: project.display_path(cwd),
            errors: errors.max(1),
        }),
    }
}

/// `nym new`.
pub fn new(cwd: &Path, name: &str, template: Template) -> Result<ExitCode, CliError> {
    let dir = new::create(cwd, name, template)?;
    eprintln!(
        "created {} from the {template:?} template",
        dir.strip_prefix(cwd).unwrap_or(&dir).display()
    );
    eprintln!("next: cd {name} && nym run");
    Ok(ExitCode::SUCCESS)
}

/// `nym check`.
pub fn check(cwd: &Path, args: &ProjectArgs, short: bool) -> Result<ExitCode, CliError> {
    let (project, _, errors, warnings) = checked(cwd, args, short)?;
    let target: Target = args.target.into();
    eprintln!(
        "checked {} for {target}: {errors} error(s), {warnings} warning(s)",
        project.display_path(cwd)
    );
    Ok(if errors > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// `nym fmt`.
pub fn fmt(cwd: &Path, file: Option<&Path>, check: bool) -> Result<ExitCode, CliError> {
    let project = Project::open(cwd, file)?;
    let name = project.display_path(cwd);
    let formatted = match nym_graph::format::format(&project.source) {
        Ok(f) => f,
        Err(errors) => {
            eprint!(
                "{}",
                diagnostic::render(&errors, &name, &project.source, color())
            );
            return Err(CliError::Invalid {
                file: name,
                errors: errors.len(),
            });
        }
    };
    if formatted == project.source {
        eprintln!("{name} is formatted");
        return Ok(ExitCode::SUCCESS);
    }
    if check {
        eprintln!("{name} is not formatted; `nym fmt` formats it");
        return Ok(ExitCode::from(1));
    }
    std::fs::write(&project.graph_path, formatted).map_err(|source| CliError::Io {
        what: format!("writing {name}"),
        source,
    })?;
    eprintln!("formatted {name}");
    Ok(ExitCode::SUCCESS)
}

/// `nym graph`.
pub fn graph(cwd: &Path, args: &ProjectArgs, dot: bool) -> Result<ExitCode, CliError> {
    let (_, g) = load(cwd, args)?;
    print!("{}", if dot { print::dot(&g) } else { print::text(&g) });
    Ok(ExitCode::SUCCESS)
}

fn rust_name(project: &Project) -> Result<(String, String), CliError> {
    match (&project.package, project.rust_name()) {
        (Some(p), Some(r)) => Ok((p.clone(), r)),
        _ => Err(CliError::NoCrate(project.graph_path.clone())),
    }
}

/// Builds the shim library exposing the graph's jobs to the in-process runner.
pub(crate) fn build_shim(project: &Project, graph: &Graph) -> Result<PathBuf, CliError> {
    let (package, krate) = rust_name(project)?;
    let src = cargo::nym_src();
    let jobs: Vec<_> = graph.registered.iter().map(|&j| &graph.jobs[j]).collect();
    let manifest = format!(
        "[package]\nname = \"nym-shim-{package}\"\nversion = \"0.0.0\"\nedition = \"2021\"\npublish = false\n\n\
         [lib]\ncrate-type = [\"cdylib\"]\npath = \"lib.rs\"\n\n[dependencies]\n{}{}\n[workspace]\n",
        cargo::path_dep(&package, &project.root, ""),
        cargo::path_dep("libos", &src.join("libos"), ""),
    );
    let shim = Crate {
        dir: project.nym_dir(Target::Unix).join("shim"),
        manifest,
        files: vec![("lib.rs", codegen::shim_rs(&jobs, &krate))],
    };
    Ok(cargo::build(
        &shim,
        &project.target_dir(),
        Artifact::Cdylib,
        false,
        &[],
    )?)
}

/// Loads a fresh copy of the library: `dlopen` caches by path, and a copy
/// lets the next build overwrite the original while this one runs.
pub(crate) fn load_copy(project: &Project, so: &Path) -> Result<Library, CliError> {
    let dir = project.nym_dir(Target::Unix).join("loaded");
    let io = |what: String| move |source| CliError::Io { what, source };
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
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|source| CliError::Io {
            what: "starting the runtime".into(),
            source,
        })
}

/// The values of the graph's keys: its defaults, overridden by `key_args`.
pub(crate) fn key_values(graph: &Graph, key_args: &[String]) -> Result<Keys, CliError> {
    let defaults = graph
        .keys
        .iter()
        .map(|k| (k.name.as_str(), k.default.clone()))
        .collect();
    Ok(Keys::parse(defaults, key_args)?)
}

/// `nym run`.
pub fn run(
    cwd: &Path,
    args: &ProjectArgs,
    key_args: &[String],
    mem: u64,
    gdb: Option<&str>,
    forwards: &[(u16, u16)],
) -> Result<ExitCode, CliError> {
    let target: Target = args.target.into();
    if gdb.is_some() && target != Target::Kvm {
        return Err(CliError::GdbTarget(target));
    }
    if !forwards.is_empty() && target != Target::Kvm {
        return Err(CliError::ForwardTarget(target));
    }
    let (project, graph) = load(cwd, args)?;
    match target {
        Target::Kvm => {
            let gdb = listen(gdb)?;
            return run_kvm(cwd, &project, &graph, key_args, mem, gdb, forwards);
        }
        Target::Qemu => {
            let cmdline = guest_cmdline(&graph, key_args)?;
            let image = build_program(cwd, &project, &graph, false)?;
            return Ok(crate::qemu::run(&image, mem, &cmdline)?);
        }
        Target::Xen => {
            let cmdline = guest_cmdline(&graph, key_args)?;
            let image = build_program(cwd, &project, &graph, false)?;
            return Ok(crate::xen::run(&image, mem, &cmdline)?);
        }
        _ => {}
    }
    let keys = key_values(&graph, key_args)?;
    let so = build_shim(&project, &graph)?;
    let library = load_copy(&project, &so)?;
    let runtime = runtime()?;
    let ended = runtime.block_on(async {
        let devices = Devices::instantiate(&graph, &keys, &project.root)?;
        let jobs = library.start_jobs(&graph, &devices, &keys)?;
        Ok::<_, CliError>(nym_unix::jobs::run(jobs, nym_unix::jobs::interrupted()).await)
    })?;
    nym_unix::jobs::report("nym", &ended);
    // Jobs are done or aborted; their futures are dropped with the runtime
    // before the library's code is unloaded.
    drop(runtime);
    drop(library);
    Ok(ended.exit_code())
}

/// Generates the compiled program of `graph` for its target and builds it:
/// a standalone executable on unix, an ELF image on kvm.
fn build_program(
    cwd: &Path,
    project: &Project,
    graph: &Graph,
    release: bool,
) -> Result<PathBuf, CliError> {
    let target = graph.target;
    let (package, krate) = rust_name(project)?;
    let src = cargo::nym_src();
    let main = codegen::main_rs(graph, &krate, &project.root)?;
    let (runtime, extra, profile, file) = match target {
        Target::Unix => (cargo::path_dep("nym-unix", &src.join("targets/unix"), ""), vec![], String::new(), graph.name.clone()),
        Target::Kvm | Target::Qemu | Target::Xen => (
            cargo::path_dep("nym-baremetal", &src.join("targets/baremetal"), ""),
            cargo::guest_args(),
            "\n[profile.dev]\npanic = \"abort\"\n\n\
             # libos, smoltcp and the allocator optimised: unoptimised they are\n\
             # too slow to answer a SYN in time. The rest stays steppable in gdb.\n\
             [profile.dev.package.smoltcp]\nopt-level = 2\n\
             [profile.dev.package.linked_list_allocator]\nopt-level = 2\n\
             [profile.dev.package.libos]\nopt-level = 2\n\n\
             [profile.release]\npanic = \"abort\"\nopt-level = \"z\"\nlto = true\ncodegen-units = 1\ndebug = true\n"
                .to_owned(),
            format!("{}.elf", graph.name),
        ),
    };
    let manifest = format!(
        "[package]\nname = \"nym-main-{package}\"\nversion = \"0.0.0\"\nedition = \"2021\"\npublish = false\n\n\
         [[bin]]\nname = \"{}\"\npath = \"main.rs\"\ntest = false\nbench = false\n\n[dependencies]\n{}{}{runtime}{profile}\n[workspace]\n",
        graph.name,
        cargo::path_dep(&package, &project.root, ""),
        cargo::path_dep("libos", &src.join("libos"), ""),
    );
    let dir = project.nym_dir(target);
    let gen = Crate {
        dir: dir.join("main"),
        manifest,
        files: vec![("main.rs", main)],
    };
    let exe = cargo::build(&gen, &project.target_dir(), Artifact::Bin, release, &extra)?;
    let out = dir.join(file);
    std::fs::copy(&exe, &out).map_err(|source| CliError::Io {
        what: format!("copying {} to {}", exe.display(), out.display()),
        source,
    })?;
    eprintln!(
        "built {} (generated code: {})",
        out.strip_prefix(cwd).unwrap_or(&out).display(),
        dir.join("main/main.rs").display()
    );
    Ok(out)
}

/// `nym build`: prints the program's path; for qemu the command that boots
/// it; for xen the path of the `xl` domain config written next to it.
pub fn build(
    cwd: &Path,
    args: &ProjectArgs,
    release: bool,
    key_args: &[String],
) -> Result<ExitCode, CliError> {
    let (project, graph) = load(cwd, args)?;
    let cmdline = guest_cmdline(&graph, key_args)?;
    let out = build_program(cwd, &project, &graph, release)?;
    match graph.target {
        Target::Qemu => println!("{}", crate::qemu::command_line(&out, 32 << 20, &cmdline)),
        Target::Xen => {
            let cfg = out.with_extension("cfg");
            let text = crate::xen::xl_config(&graph.name, &out, 32 << 20, &cmdline);
            std::fs::write(&cfg, text).map_err(|source| CliError::Io {
                what: format!("writing {}", cfg.display()),
                source,
            })?;
            eprintln!(
                "wrote {} (boot it on a Xen host with `xl create`)",
                cfg.display()
            );
            println!("{}", cfg.display());
        }
        _ => println!("{}", out.display()),
    }
    Ok(ExitCode::SUCCESS)
}

/// The value an argument has at boot: a literal, or a key's value.
fn boot_value(graph: &Graph, a: &GArg, keys: &Keys) -> Option<libos::Value> {
    match a {
        GArg::Value(v) => Some(v.clone()),
        GArg::Key(k) => keys.get(&graph.keys[*k].name).cloned(),
        GArg::Node(_) => None,
    }
}

/// The host file behind the graph's `block::file`, if it has one.
fn block_file(project: &Project, graph: &Graph, keys: &Keys) -> Option<nym_hvt::BlockFile> {
    let node = graph.nodes.iter().find(|n| n.imp.name == "block::file")?;
    let path = match boot_value(graph, &node.args[0], keys)? {
        libos::Value::Str(p) => project.root.join(p),
        _ => return None,
    };
    let size = match boot_value(graph, &node.args[1], keys)? {
        libos::Value::Int(s) => u64::try_from(s).ok()?,
        _ => return None,
    };
    Some(nym_hvt::BlockFile { path, size })
}

/// `nym run --target kvm`: builds the image and boots it in nym's monitor.
fn run_kvm(
    cwd: &Path,
    project: &Project,
    graph: &Graph,
    key_args: &[String],
    mem: u64,
    gdb: Option<std::net::TcpListener>,
    forwards: &[(u16, u16)],
) -> Result<ExitCode, CliError> {
    let cmdline = guest_cmdline(graph, key_args)?;
    let keys = Keys::parse(key_defaults(graph), key_args)?;
    let net = net_config(forwards, guest_ip(graph, &keys))?;
    let image = build_program(cwd, project, graph, false)?;
    boot(nym_hvt::Config {
        image,
        mem_size: mem,
        cmdline,
        block: block_file(project, graph, &keys),
        seccomp: true,
        gdb,
        net,
    })
}

/// The address the graph gives the stack over the monitor's link, if any.
fn guest_ip(graph: &Graph, keys: &Keys) -> Option<std::net::Ipv4Addr> {
    graph.nodes.iter().find_map(|n| {
        let on_link = n.imp.name == "stack::direct"
            && matches!(n.args.first(), Some(GArg::Node(i)) if graph.nodes[*i].imp.name == "netif::default");
        match boot_value(graph, n.args.get(1)?, keys)? {
            libos::Value::Cidr(c) if on_link => Some(c.addr),
            _ => None,
        }
    })
}

/// The guest's network: `forwards` bound on the host's loopback now (so a
/// port in use is reported before anything boots), to `guest_ip` or the
/// conventional 10.0.2.15. `None` without forwards.
pub fn net_config(
    forwards: &[(u16, u16)],
    guest_ip: Option<std::net::Ipv4Addr>,
) -> Result<Option<nym_hvt::NetConfig>, CliError> {
    if forwards.is_empty() {
        return Ok(None);
    }
    let forwards = forwards
        .iter()
        .map(|&(host, guest)| {
            let listener = std::net::TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, host))
                .map_err(|source| CliError::Forward { port: host, source })?;
            Ok(nym_hvt::Forward {
                listener,
                guest_port: guest,
            })
        })
        .collect::<Result<_, CliError>>()?;
    Ok(Some(nym_hvt::NetConfig {
        forwards,
        guest_ip: guest_ip.unwrap_or(nym_hvt::abi::NET_GUEST_IP.into()),
    }))
}

/// Listens for gdb on `addr`, if given.
pub fn listen(addr: Option<&str>) -> Result<Option<std::net::TcpListener>, CliError> {
    addr.map(|a| {
        std::net::TcpListener::bind(a).map_err(|source| CliError::Listen {
            addr: a.to_owned(),
            source,
        })
    })
    .transpose()
}

/// `nym debug`: the monitor with its stub on a free loopback port, and a
/// stock gdb attached with the image's symbols and a first breakpoint.
pub fn debug(
    cwd: &Path,
    args: &ProjectArgs,
    key_args: &[String],
    mem: u64,
    break_at: Option<String>,
) -> Result<ExitCode, CliError> {
    let (project, graph) = load(
        cwd,
        &ProjectArgs {
            target: crate::TargetArg::Kvm,
            ..args.clone()
        },
    )?;
    let cmdline = guest_cmdline(&graph, key_args)?;
    let keys = Keys::parse(key_defaults(&graph), key_args)?;
    let image = build_program(cwd, &project, &graph, false)?;
    let listener = listen(Some("127.0.0.1:0"))?.ok_or(CliError::Listen {
        addr: "127.0.0.1:0".into(),
        source: std::io::Error::other("no listener"),
    })?;
    let addr = listener.local_addr().map_err(|source| CliError::Listen {
        addr: "127.0.0.1:0".into(),
        source,
    })?;
    // By default the first statement of the first job: a job is generic
    // (its devices are type parameters) and async, so a source line finds
    // its body where a name would not.
    let location = break_at.unwrap_or_else(|| {
        graph.registered.first().map_or_else(
            || "nym_main".into(),
            |&j| {
                format!(
                    "{}:{}",
                    graph.jobs[j].sig.file.display(),
                    graph.jobs[j].sig.body_line
                )
            },
        )
    });
    let config = nym_hvt::Config {
        image: image.clone(),
        mem_size: mem,
        cmdline,
        block: block_file(&project, &graph, &keys),
        seccomp: false,
        gdb: Some(listener),
        net: None,
    };
    let monitor = std::thread::spawn(move || nym_hvt::run(&config, &mut std::io::stdout()));
    let gdb = std::process::Command::new("gdb")
        .arg("-q")
        .arg(&image)
        .args([
            "-ex",
            &format!("target remote {addr}"),
            "-ex",
            &format!("break {location}"),
        ])
        .status();
    let outcome = monitor.join().map_err(|_| CliError::Io {
        what: "the monitor thread".into(),
        source: std::io::Error::other("panicked"),
    })??;
    if let Err(source) = gdb {
        return Err(CliError::Io {
            what: "starting gdb (is it installed?)".into(),
            source,
        });
    }
    report(&outcome);
    Ok(ExitCode::from(outcome.status().clamp(0, 255) as u8))
}

fn key_defaults(graph: &Graph) -> Vec<(&str, libos::Value)> {
    graph
        .keys
        .iter()
        .map(|k| (k.name.as_str(), k.default.clone()))
        .collect()
}

/// Checks the key arguments here (clear errors before a build) and joins
/// them into a guest command line.
fn guest_cmdline(graph: &Graph, key_args: &[String]) -> Result<String, CliError> {
    if let Some(bad) = key_args.iter().find(|a| a.chars().any(char::is_whitespace)) {
        return Err(CliError::GuestArg(bad.clone()));
    }
    Keys::parse(key_defaults(graph), key_args)?;
    Ok(key_args.join(" "))
}

/// Boots an image in nym's monitor; the guest's status becomes nym's.
pub fn boot(config: nym_hvt::Config) -> Result<ExitCode, CliError> {
    let outcome = nym_hvt::run(&config, &mut std::io::stdout())?;
    report(&outcome);
    Ok(ExitCode::from(outcome.status().clamp(0, 255) as u8))
}

/// Tells the user how a guest ended, when it did not end by itself.
fn report(outcome: &nym_hvt::Outcome) {
    match &outcome {
        nym_hvt::Outcome::Exited(_) => {}
        nym_hvt::Outcome::Violation(v) => {
            eprintln!("nym: the guest broke the hypercall ABI and was stopped: {v}")
        }
        // Empty when it was already shown (during a gdb session).
        nym_hvt::Outcome::Crashed(report) if report.is_empty() => {}
        nym_hvt::Outcome::Crashed(report) => eprint!("nym: {report}"),
    }
}
