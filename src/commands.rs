//! The subcommands. Each opens the project, asks `nym-graph` for the
//! checked graph, and hands it to a target.
use crate::cli::ProjectArgs;
use crate::new::{self, Template};
use nym_driver::build::{build_program, guest_cmdline, key_defaults, key_values, runtime};
use nym_driver::kvm::{self, block_file, listen};
use nym_driver::live::Live;
use nym_driver::project::Project;
use nym_driver::Out;
use nym_graph::{analyze, diagnostic, print, Graph, Severity, Target};
use nym_unix::jobs::Ended;
use nym_unix::keys::Keys;
use std::io::IsTerminal;
use std::path::Path;
use std::process::ExitCode;

pub use nym_driver::Error as CliError;

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
    let project = Project::open_in(cwd, args.file.as_deref(), args.root.as_deref())?;
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
pub(crate) fn new(cwd: &Path, name: &str, template: Template) -> Result<ExitCode, CliError> {
    let dir = new::create(cwd, name, template).map_err(|e| CliError::Other(Box::new(e)))?;
    eprintln!(
        "created {} from the {template:?} template",
        dir.strip_prefix(cwd).unwrap_or(&dir).display()
    );
    eprintln!("next: cd {name} && nym run");
    Ok(ExitCode::SUCCESS)
}

/// `nym check`.
pub(crate) fn check(cwd: &Path, args: &ProjectArgs, short: bool) -> Result<ExitCode, CliError> {
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
pub(crate) fn fmt(cwd: &Path, file: Option<&Path>, check: bool) -> Result<ExitCode, CliError> {
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
pub(crate) fn graph(cwd: &Path, args: &ProjectArgs, dot: bool) -> Result<ExitCode, CliError> {
    let (_, g) = load(cwd, args)?;
    print!("{}", if dot { print::dot(&g) } else { print::text(&g) });
    Ok(ExitCode::SUCCESS)
}

/// `nym run`: in-process on unix, or the image booted on its target.
pub(crate) fn run(
    cwd: &Path,
    args: &ProjectArgs,
    gdb: Option<&str>,
    gdb_remote: bool,
    options: nym_driver::guest::Options,
) -> Result<ExitCode, CliError> {
    let target: Target = args.target.into();
    if options.tap.is_some() && target != Target::Kvm {
        return Err(CliError::TapUse(
            "other targets reach a tap through the graph (netif::tap on unix)",
        ));
    }
    if gdb.is_some() && target != Target::Kvm {
        return Err(CliError::GdbTarget(target));
    }
    if options.release && target == Target::Unix {
        return Err(CliError::ReleaseTarget);
    }
    if options.block.is_some() && target == Target::Unix {
        return Err(CliError::BlockTarget);
    }
    if !options.forwards.is_empty()
        && !matches!(
            target,
            Target::Kvm | Target::Qemu | Target::Libvirt | Target::Xen
        )
    {
        return Err(CliError::ForwardTarget(target));
    }
    let (project, graph) = load(cwd, args)?;
    let trace = options.trace.as_deref().map(trace_file).transpose()?;
    let graph_name = graph.name.clone();
    match target {
        Target::Kvm => {
            let kvm_options = kvm::Options {
                key_args: &options.key_args,
                mem: options.mem,
                forwards: &options.forwards,
                tap: options.tap.as_deref(),
                max_conns: options.max_conns,
                gdb: listen(gdb, gdb_remote)?,
                block: options.block.as_deref(),
                release: options.release,
            };
            let mut config = kvm::prepare(cwd, &project, &graph, kvm_options, &Out::stderr())?;
            let sink = trace.map(|file| (file, nym_hvt::trace::TraceSink::default()));
            config.trace = sink.as_ref().map(|(_, s)| s.clone());
            // Ctrl-C (or a kill) stops the guest at its next exit, and a
            // trace is still written; so too where SIGINT came ignored (a
            // job a script put in the background).
            let stop = nym_driver::guest::Stop::default();
            nym_driver::guest::stop_on_signals(&stop);
            config.stop = Some(stop.monitor());
            let code = boot(config)?;
            if let Some((file, sink)) = sink {
                let log = sink.lock().unwrap_or_else(|p| p.into_inner());
                let process = format!("nym run --target kvm: {graph_name}");
                write_trace(file, &kvm::guest_trace(&log), &process)?;
            }
            return Ok(code);
        }
        Target::Qemu | Target::Libvirt | Target::Xen => {
            let stop = nym_driver::guest::Stop::default();
            nym_driver::guest::stop_on_signals(&stop);
            let status = nym_driver::guest::run(
                &project,
                &graph,
                &options,
                &mut std::io::stdout(),
                &Out::stderr(),
                &stop,
            )?;
            return Ok(ExitCode::from(status));
        }
        Target::Unix => {}
    }
    let key_args = &options.key_args;
    let keys = key_values(&graph, key_args)?;
    if trace.is_some() {
        nym_unix::trace::start();
    }
    let runtime = runtime()?;
    let ended = runtime.block_on(async {
        // Watched from before the build: a Ctrl-C at any point is an
        // interruption, never the process killed half-way.
        let stop = nym_unix::jobs::interrupted();
        tokio::pin!(stop);
        let out = Out::stderr();
        let Some(mut live) =
            start_unless_interrupted(&project, graph, keys, &out, &mut stop).await?
        else {
            return Ok(Ended::Interrupted);
        };
        let ended = tokio::select! {
            ended = live.ended() => ended,
            () = &mut stop => {
                live.stop().await;
                Ended::Interrupted
            }
        };
        // The jobs are done or stopped: their code may go with `live`.
        Ok::<_, CliError>(ended)
    })?;
    nym_unix::jobs::report("nym", &ended);
    if let (Some(file), Some(t)) = (trace, nym_unix::trace::stop()) {
        write_trace(file, &t, &format!("nym run: {}", graph_name))?;
    }
    Ok(ended.exit_code())
}

/// `--trace FILE`: the file, opened now: one that cannot be written is
/// said before anything runs, and a guest's monitor (whose allowlist
/// opens no files) writes through the handle at the end.
fn trace_file(file: &Path) -> Result<(&Path, std::fs::File), CliError> {
    let handle = std::fs::File::create(file).map_err(|source| CliError::Io {
        what: format!("writing the trace to {}", file.display()),
        source,
    })?;
    Ok((file, handle))
}

/// Writes `trace` of `process` into the trace file and says so.
fn write_trace(
    (file, mut handle): (&Path, std::fs::File),
    trace: &nym_unix::trace::Trace,
    process: &str,
) -> Result<(), CliError> {
    use std::io::Write as _;
    handle
        .write_all(trace.json(process).as_bytes())
        .map_err(|source| CliError::Io {
            what: format!("writing the trace to {}", file.display()),
            source,
        })?;
    for line in trace.written(file).lines() {
        eprintln!("nym: {line}");
    }
    Ok(())
}

/// [`Live::start`] watched by `stop` (from [`nym_unix::jobs::interrupted`],
/// made before): `None` when a Ctrl-C came meanwhile, whatever started
/// stopped again.
pub(crate) async fn start_unless_interrupted(
    project: &Project,
    graph: Graph,
    keys: Keys,
    out: &Out,
    stop: &mut (impl std::future::Future<Output = ()> + Unpin),
) -> Result<Option<Live>, CliError> {
    let started = Live::start(project, graph, keys, None, out).await;
    let interrupted = match &started {
        Ok(_) => nym_unix::jobs::fired(stop).await,
        // Ctrl-C at a terminal ends cargo as it reaches this process: the
        // build can be seen failing a moment before the signal is, so a
        // failed build waits that moment for it.
        Err(_) => tokio::time::timeout(std::time::Duration::from_millis(250), &mut *stop)
            .await
            .is_ok(),
    };
    if interrupted {
        // At the terminal, Ctrl-C stopped cargo too: that is why a build
        // failed, if it did.
        if let Ok(mut live) = started {
            live.stop().await;
        }
        return Ok(None);
    }
    Ok(Some(started?))
}

/// `nym build`: prints the program's path; for qemu the command that boots
/// it (and a libvirt domain is written next to it, as for libvirt); for xen
/// the path of the `xl` domain config written next to it.
pub(crate) fn build(
    cwd: &Path,
    args: &ProjectArgs,
    release: bool,
    key_args: &[String],
) -> Result<ExitCode, CliError> {
    let (project, graph) = load(cwd, args)?;
    let cmdline = guest_cmdline(&graph, key_args)?;
    let keys = Keys::parse(key_defaults(&graph), key_args)?;
    let block = kvm::block_file(&project, &graph, &keys, None)?;
    let block = block.as_ref().map(|b| b.path.as_path());
    let out = build_program(cwd, &project, &graph, release, &Out::stderr())?;
    let net = graph.nodes.iter().any(|n| n.imp.name == "netif::default");
    let write = |path: &Path, text: String| {
        std::fs::write(path, text).map_err(|source| CliError::Io {
            what: format!("writing {}", path.display()),
            source,
        })
    };
    match graph.target {
        Target::Qemu | Target::Libvirt => {
            let name = nym_driver::libvirt::domain_name(&graph.name);
            let (xml, console) = nym_driver::libvirt::files(&out);
            write(
                &xml,
                nym_driver::libvirt::domain_xml(&nym_driver::libvirt::Domain {
                    guest: nym_driver::guest::Domain {
                        name: &name,
                        image: &out,
                        mem: 32 << 20,
                        cmdline: &cmdline,
                        net,
                        disk: block,
                    },
                    forwards: &[],
                    console: &console,
                }),
            )?;
            eprintln!(
                "wrote {} (define it with `virsh define`, or `nym run --target libvirt`)",
                xml.display()
            );
            if graph.target == Target::Qemu {
                println!(
                    "{}",
                    nym_driver::qemu::command_line(&nym_driver::qemu::Vm {
                        image: &out,
                        mem: 32 << 20,
                        cmdline: &cmdline,
                        forwards: &[],
                        block,
                        machine: nym_driver::qemu::Machine::Microvm,
                    })
                );
            } else {
                println!("{}", xml.display());
            }
        }
        Target::Xen => {
            let cfg = out.with_extension("cfg");
            let text = nym_driver::xen::config::xl_config(&nym_driver::xen::config::Domain {
                name: &graph.name,
                image: &out,
                mem: 32 << 20,
                cmdline: &cmdline,
                net,
                disk: block,
            })
            .map_err(nym_driver::xen::XenError::from)?;
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

/// nym's gdb extension: `break JOB` and `nym-break JOB` stop at the first
/// line of a job's async body, `info nym-tasks` lists the executor's tasks.
const GDB_EXTENSION: &str = include_str!("../gdb/nym-gdb.py");

/// Its name beside the image.
const GDB_EXTENSION_FILE: &str = "nym-gdb.py";

/// `nym debug`: the monitor with its stub on a free loopback port, and a
/// stock gdb attached with the image's symbols, nym's extension and a
/// first breakpoint.
pub(crate) fn debug(
    cwd: &Path,
    args: &ProjectArgs,
    key_args: &[String],
    mem: u64,
    break_at: Option<String>,
) -> Result<ExitCode, CliError> {
    let (project, graph) = load(
        cwd,
        &ProjectArgs {
            target: crate::cli::TargetArg::Kvm,
            ..args.clone()
        },
    )?;
    let cmdline = guest_cmdline(&graph, key_args)?;
    let keys = Keys::parse(key_defaults(&graph), key_args)?;
    let image = build_program(cwd, &project, &graph, false, &Out::stderr())?;
    let listener = listen(Some("127.0.0.1:0"), false)?.ok_or(CliError::Listen {
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
        block: block_file(&project, &graph, &keys, None)?,
        seccomp: true,
        gdb: Some(listener),
        net: None,
        stop: None,
        trace: None,
        stats: None,
    };
    // nym's gdb extension (`break JOB`, `info nym-tasks`), beside the
    // image so that a gdb started by hand can load it too (`-x`).
    let extension = image.with_file_name(GDB_EXTENSION_FILE);
    std::fs::write(&extension, GDB_EXTENSION).map_err(|source| CliError::Io {
        what: format!("writing {}", extension.display()),
        source,
    })?;
    let monitor = std::thread::spawn(move || nym_hvt::run(&config, &mut std::io::stdout()));
    let gdb = std::process::Command::new("gdb")
        .arg("-q")
        .arg(&image)
        .arg("-x")
        .arg(&extension)
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

/// Boots an image in nym's monitor; the guest's status becomes nym's.
/// With `config.stats`, what the run cost is printed last (`--stats`).
pub(crate) fn boot(config: nym_hvt::Config) -> Result<ExitCode, CliError> {
    let outcome = nym_hvt::run(&config, &mut std::io::stdout())?;
    report(&outcome);
    if let Some(stats) = &config.stats {
        eprintln!("nym: {}", stats.lock().unwrap_or_else(|p| p.into_inner()));
    }
    Ok(ExitCode::from(outcome.status().clamp(0, 255) as u8))
}

/// Tells the user how a guest ended, when it did not end by itself.
fn report(outcome: &nym_hvt::Outcome) {
    if let Some(text) = nym_driver::guest::describe(outcome) {
        eprintln!("{text}");
    }
}

/// `nym dom0`: Xen and a Linux dom0 in QEMU, kept up for `nym run
/// --target xen` until Ctrl-C (or, when standard input is a pipe, until
/// it closes: a program that starts it ends it by closing the pipe or by
/// dying).
pub(crate) fn dom0() -> Result<ExitCode, CliError> {
    use std::os::unix::fs::FileTypeExt;
    let stop = nym_driver::guest::Stop::default();
    nym_driver::guest::stop_on_signals(&stop);
    let piped = std::fs::metadata("/proc/self/fd/0").is_ok_and(|m| m.file_type().is_fifo());
    if piped {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
            stop.stop();
        });
    }
    let dir = nym_driver::xen::dom0::state_dir();
    nym_driver::xen::dom0::serve(&dir, &Out::stderr(), &|| stop.requested())?;
    Ok(ExitCode::SUCCESS)
}
