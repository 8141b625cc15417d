//! Rust cells, evaluated by evcxr.
//!
//! evcxr compiles each cell into a small library and runs it in a child
//! process: the program that embeds it, re-executed with
//! `EVCXR_IS_RUNTIME` set, which is why `nym`'s `main` calls
//! [`evcxr::runtime_hook`] before anything else. Variables live in that
//! child; a cell cannot reach the session's running devices, but it can
//! use libos and the project's crate (both added as dependencies when the
//! context starts) to build devices of its own and call the application.
//!
//! The context starts at the first Rust cell. Its build directory is kept
//! per project in `~/.cache/nym/rust-cells` ([`build_dir`]), so libos and
//! the project's crate compile once, not once per session; a second session
//! in the same project, which would fight over it, gets a temporary one.
//! (Not under the project's `target/`: the crate evcxr writes there would
//! sit inside the project's own Cargo workspace.)
use crate::Reply;
use evcxr::{CommandContext, CompilationError, EvalContext};
use std::fmt::Write as _;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// The crate a cell may use besides libos: its Cargo package name and root.
pub type Krate<'a> = (&'a str, &'a Path);

/// The Rust cells' evaluation context.
#[derive(Default)]
pub struct Cells {
    ctx: Option<Context>,
    /// The program evcxr re-executes as its runtime; this one by default.
    runtime: Option<PathBuf>,
    /// The running child, while a cell evaluates, for Ctrl-C.
    busy: Interrupt,
}

struct Context {
    cmd: CommandContext,
    stdout: crossbeam_channel::Receiver<String>,
    stderr: crossbeam_channel::Receiver<String>,
    /// Held while the build directory is ours.
    _lock: Option<std::fs::File>,
    /// `:dep` lines for libos and the project's crate, sent with the first
    /// cell (one build instead of two) until a cell succeeds with them.
    deps: String,
}

/// Stops the cell being evaluated, from another thread (the session's
/// Ctrl-C handler).
#[derive(Clone, Default)]
pub struct Interrupt(Arc<Mutex<Option<Arc<Mutex<std::process::Child>>>>>);

impl Interrupt {
    /// Kills the child a cell runs in, if one is running. Its variables are
    /// lost; the next cell starts a new child.
    pub fn fire(&self) -> bool {
        let slot = self.0.lock().unwrap_or_else(|p| p.into_inner());
        match &*slot {
            Some(child) => {
                let _ = child.lock().unwrap_or_else(|p| p.into_inner()).kill();
                true
            }
            None => false,
        }
    }

    fn set(&self, child: Option<Arc<Mutex<std::process::Child>>>) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = child;
    }
}

/// Where the Rust cells of `project` are built:
/// `$XDG_CACHE_HOME/nym/rust-cells/PACKAGE-HASH` (or `~/.cache/...`), the
/// hash telling apart projects of the same name.
pub fn build_dir(project: &nym_driver::project::Project) -> Option<PathBuf> {
    use std::hash::{Hash, Hasher};
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    let mut h = std::collections::hash_map::DefaultHasher::new();
    project.root.hash(&mut h);
    let name = project.package.as_deref().unwrap_or("project");
    Some(
        cache
            .join("nym")
            .join("rust-cells")
            .join(format!("{name}-{:016x}", h.finish())),
    )
}

/// Serves Rust cells when this program was started as evcxr's runtime;
/// returns at once otherwise. Call it first in `main`.
pub fn runtime_hook() {
    evcxr::runtime_hook();
}

/// Serialises the moments the environment is changed to start a context.
static ENV: Mutex<()> = Mutex::new(());

impl Cells {
    /// The program to run cells in instead of this one (tests, whose own
    /// binary cannot serve as evcxr's runtime).
    pub fn set_runtime(&mut self, program: PathBuf) {
        self.runtime = Some(program);
    }

    /// The handle that interrupts the cell being evaluated.
    pub fn interrupt(&self) -> Interrupt {
        self.busy.clone()
    }

    /// Drops the context and its variables.
    pub fn reset(&mut self) {
        self.ctx = None;
    }

    /// Evaluates `code`: Rust statements, items and expressions, and evcxr's
    /// own commands (`:dep`, `:vars`, `:explain`...). The reply holds what
    /// the cell printed, then the value of its final expression; a compile
    /// error is rendered as rustc does, with its place in the cell.
    pub fn eval(
        &mut self,
        code: &str,
        krate: Option<Krate<'_>>,
        build_dir: Option<&Path>,
    ) -> Reply {
        if let Some(line) = code
            .lines()
            .map(str::trim)
            .find(|l| *l == ":quit" || l.starts_with(":quit "))
        {
            return Reply::err(format!(
                "`{line}` would end nym from inside Rust: use `:nym` to go back, then `:quit`"
            ));
        }
        let ctx = match &mut self.ctx {
            Some(ctx) => ctx,
            slot => match start(self.runtime.as_deref(), krate, build_dir) {
                Ok(ctx) => slot.insert(ctx),
                Err(e) => return Reply::err(format!("cannot start the Rust context: {e}")),
            },
        };
        self.busy.set(Some(ctx.cmd.process_handle()));
        let sent = format!("{}{code}", ctx.deps);
        let offset = ctx.deps.lines().count();
        let (result, printed) = run_draining(ctx, &sent);
        self.busy.set(None);
        if matches!(result, Ok(Ok(_))) {
            ctx.deps.clear();
        }
        let mut text = printed;
        let error = match result {
            Ok(Ok(outputs)) => {
                if let Some(value) = outputs.get("text/plain") {
                    text.push(value.to_owned());
                }
                false
            }
            Ok(Err(evcxr::Error::CompilationErrors(errors))) => {
                text.extend(errors.iter().map(|e| render(e, &sent, offset)));
                true
            }
            Ok(Err(evcxr::Error::SubprocessTerminated(why))) => {
                text.push(format!(
                    "{why}\nthe Rust context restarts at the next cell; its variables are lost"
                ));
                true
            }
            Ok(Err(e)) => {
                text.push(e.to_string());
                true
            }
            Err(panic) => {
                // evcxr itself failed; a fresh context is the safe way on.
                self.ctx = None;
                text.push(format!(
                    "evcxr failed ({panic}); the Rust context restarts at the next cell"
                ));
                true
            }
        };
        Reply {
            text: text.join("\n").trim_end().to_owned(),
            error,
            quit: false,
        }
    }
}

/// Starts evcxr's context in `runtime` (this program when `None`), with
/// its build directory in `build_dir` if no other session holds it.
fn start(
    runtime: Option<&Path>,
    krate: Option<Krate<'_>>,
    build_dir: Option<&Path>,
) -> Result<Context, String> {
    let program = match runtime {
        Some(p) => p.to_owned(),
        None => std::env::current_exe().map_err(|e| format!("finding this program: {e}"))?,
    };
    let mut child = std::process::Command::new(program);
    // Its own process group: Ctrl-C at the terminal must not end the
    // child and lose the cells' variables; `Interrupt` ends it on
    // purpose when a cell is being evaluated.
    child.process_group(0);
    // Cells link std dynamically and find it through a RUNPATH relative
    // to where rustc wrote them, which is not where cargo leaves them:
    // point the loader at the toolchain's libraries instead.
    let libdir = toolchain_libdir()?;
    let mut path = std::ffi::OsString::from(&libdir);
    if let Some(old) = std::env::var_os("LD_LIBRARY_PATH").filter(|p| !p.is_empty()) {
        path.push(":");
        path.push(old);
    }
    child.env("LD_LIBRARY_PATH", path);
    let lock = build_dir.and_then(|dir| claim(dir).ok());
    let (eval, outputs) = {
        let _env = ENV.lock().unwrap_or_else(|p| p.into_inner());
        let previous = std::env::var_os("EVCXR_TMPDIR");
        if let (Some(dir), Some(_)) = (build_dir, &lock) {
            std::env::set_var("EVCXR_TMPDIR", dir);
        }
        let started = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
            EvalContext::with_subprocess_command(child)
        }));
        match previous {
            Some(v) => std::env::set_var("EVCXR_TMPDIR", v),
            None => std::env::remove_var("EVCXR_TMPDIR"),
        }
        started
            .map_err(|p| panic_text(&p))?
            .map_err(|e| e.to_string())?
    };
    let mut deps = format!(
        ":dep libos = {{ path = {:?}, features = [\"std\"] }}\n",
        nym_driver::cargo::nym_src().join("libos")
    );
    if let Some((name, root)) = krate {
        deps += &format!(":dep {name} = {{ path = {root:?} }}\n");
    }
    Ok(Context {
        cmd: CommandContext::with_eval_context(eval),
        stdout: outputs.stdout,
        stderr: outputs.stderr,
        _lock: lock,
        deps,
    })
}

/// Runs `code` while draining the child's output (evcxr waits until its
/// output channel is empty), and returns the result with what was printed.
fn run_draining(
    ctx: &mut Context,
    code: &str,
) -> (
    Result<Result<evcxr::EvalOutputs, evcxr::Error>, String>,
    Vec<String>,
) {
    let (done_tx, done_rx) = crossbeam_channel::bounded::<()>(0);
    let (stdout, stderr) = (ctx.stdout.clone(), ctx.stderr.clone());
    std::thread::scope(|scope| {
        let drain = scope.spawn(move || {
            let mut lines = Vec::new();
            loop {
                crossbeam_channel::select! {
                    recv(stdout) -> l => match l { Ok(l) => lines.push(l), Err(_) => break },
                    recv(stderr) -> l => match l { Ok(l) => lines.push(l), Err(_) => break },
                    recv(done_rx) -> _ => break,
                }
            }
            lines.extend(stdout.try_iter());
            lines.extend(stderr.try_iter());
            lines
        });
        let cmd = &mut ctx.cmd;
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| cmd.execute(code)))
            .map_err(|p| panic_text(&p));
        drop(done_tx);
        let printed = drain.join().unwrap_or_default();
        (result, printed)
    })
}

fn panic_text(p: &Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic".into())
}

/// The directory of the toolchain's `libstd-*.so`, as rustc reports it.
fn toolchain_libdir() -> Result<PathBuf, String> {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let out = std::process::Command::new(&rustc)
        .args(["--print", "target-libdir"])
        .output()
        .map_err(|e| format!("running {}: {e}", rustc.to_string_lossy()))?;
    let dir = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    if !out.status.success() || dir.is_empty() {
        return Err(format!(
            "`{} --print target-libdir` failed: {}",
            rustc.to_string_lossy(),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(dir.into())
}

/// Takes the build directory for this session, or fails if another holds it.
fn claim(dir: &Path) -> std::io::Result<std::fs::File> {
    std::fs::create_dir_all(dir)?;
    let file = std::fs::File::create(dir.join(".nym-lock"))?;
    file.try_lock().map_err(std::io::Error::other)?;
    Ok(file)
}

/// An error as rustc renders one, placed in the cell (`cell:LINE:COL`)
/// when it comes from the cell's code, as rustc rendered it otherwise.
/// `code` is what was sent: `offset` lines of `:dep` before the cell's.
fn render(e: &CompilationError, code: &str, offset: usize) -> String {
    let lines: Vec<&str> = code.lines().collect();
    let mut out = String::new();
    let head = match e.code() {
        Some(c) => format!("{}[{c}]: {}", e.level(), e.message()),
        None => format!("{}: {}", e.level(), e.message()),
    };
    let spanned: Vec<_> = e
        .spanned_messages()
        .iter()
        .filter_map(|m| Some((m.span.as_ref()?, m)))
        .filter(|(s, _)| s.start_line > offset && s.start_line <= lines.len())
        .collect();
    if !e.is_from_user_code() || spanned.is_empty() {
        let rendered = e.rendered();
        return if rendered.trim().is_empty() {
            head
        } else {
            rendered.trim_end().to_owned()
        };
    }
    out.push_str(&head);
    let width = spanned
        .iter()
        .map(|(s, _)| (s.end_line - offset).to_string().len())
        .max()
        .unwrap_or(1);
    let pad = " ".repeat(width);
    let (at, _) = spanned
        .iter()
        .find(|(_, m)| m.is_primary)
        .unwrap_or(&spanned[0]);
    let _ = write!(
        out,
        "\n{pad}--> cell:{}:{}\n{pad} |",
        at.start_line - offset,
        at.start_column
    );
    let mut spanned = spanned;
    // By line, the primary label first on its line, as rustc orders them.
    spanned.sort_by_key(|(s, m)| (s.start_line, !m.is_primary, s.start_column));
    let mut shown = 0;
    for (span, m) in &spanned {
        let text = lines[span.start_line - 1];
        if shown != span.start_line {
            let _ = write!(out, "\n{:>width$} | {text}", span.start_line - offset);
            shown = span.start_line;
        }
        let start = span.start_column.saturating_sub(1);
        let end = if span.end_line == span.start_line {
            span.end_column.saturating_sub(1).max(start + 1)
        } else {
            text.chars().count().max(start + 1)
        };
        let mark = if m.is_primary { '^' } else { '-' };
        let _ = write!(
            out,
            "\n{pad} | {}{} {}",
            " ".repeat(start),
            mark.to_string().repeat(end - start),
            m.label
        );
    }
    for help in e.help() {
        let _ = write!(
            out,
            "\n{pad} = help: {}",
            help.replace('\n', &format!("\n{pad}   "))
        );
    }
    if let Some(hint) = e.evcxr_extra_hint() {
        let _ = write!(out, "\n{pad} = note: {hint}");
    }
    out
}
