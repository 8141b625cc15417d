//! The checks that run the learner's program: on a copy of their sources
//! (never in their folder, so a check cannot clobber their `data/` or a
//! server they left running), through the same `nym` they use, on ports
//! the engine picks, each wait bounded.
#![allow(unsafe_code)] // sends SIGINT to the `nym` a check started, so it stops its guest
use crate::check::{EchoCheck, Failure, HttpCheck, ReloadCheck, Request, RunCheck, SimCheck};
use crate::engine::Context;
use crate::files;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The longest a build may take (a first guest build compiles libos for
/// the bare-metal target).
const BUILD: Duration = Duration::from_secs(30 * 60);
/// The longest a run may take once built, unless the check says.
const RUN: Duration = Duration::from_secs(5 * 60);
/// The longest a server may take to listen once built.
const LISTEN: Duration = Duration::from_secs(120);

/// A copy of `files` at `target/nym-tutorial/NAME`, in step with them.
fn scratch(
    cx: &Context<'_>,
    name: &str,
    files: &BTreeMap<String, Vec<u8>>,
) -> Result<PathBuf, Failure> {
    let dir = cx.dir.join("target").join("nym-tutorial").join(name);
    files::sync(&dir, files)
        .map_err(|e| Failure::new("a copy of the lesson to run", e.to_string()))?;
    Ok(dir)
}

/// The learner's sources now.
fn current(cx: &Context<'_>) -> BTreeMap<String, Vec<u8>> {
    files::tree(cx.dir)
}

/// A free port on loopback.
fn free_port() -> Result<u16, Failure> {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| Failure::new("a free port on 127.0.0.1", e.to_string()))
}

/// A `nym` the check started, its output (stdout and stderr) collected.
struct Proc {
    child: Child,
    out: Arc<Mutex<String>>,
    /// When cargo said it had finished building.
    built: Arc<Mutex<Option<Instant>>>,
    what: String,
}

impl Proc {
    fn start(cx: &Context<'_>, dir: &Path, args: &[String]) -> Result<Proc, Failure> {
        let what = format!("nym {}", args.join(" "));
        let mut command = Command::new(cx.nym);
        if let Some(t) = &cx.target_dir {
            command.env("CARGO_TARGET_DIR", t);
        }
        let mut child = command
            .args(args)
            .current_dir(dir)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| Failure::new(format!("`{what}` to start"), e.to_string()))?;
        let out = Arc::new(Mutex::new(String::new()));
        let built = Arc::new(Mutex::new(None));
        let pipes: [Box<dyn Read + Send>; 2] = [
            Box::new(child.stdout.take().expect("piped")),
            Box::new(child.stderr.take().expect("piped")),
        ];
        for pipe in pipes {
            let (out, built) = (out.clone(), built.clone());
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    if line.trim_start().starts_with("Finished `") {
                        *built.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
                    }
                    let mut o = out.lock().unwrap_or_else(|p| p.into_inner());
                    o.push_str(&line);
                    o.push('\n');
                }
            });
        }
        Ok(Proc {
            child,
            out,
            built,
            what,
        })
    }

    fn output(&self) -> String {
        self.out.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn built_at(&self) -> Option<Instant> {
        *self.built.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits until the output after byte `from` holds one of `needles`
    /// (which one), the process ends, or `limit` passes since it was built.
    fn wait_for(
        &mut self,
        from: usize,
        needles: &[&str],
        limit: Duration,
    ) -> Result<usize, Failure> {
        let started = Instant::now();
        loop {
            let out = self.output();
            let tail = out.get(from..).unwrap_or("");
            if let Some(i) = needles.iter().position(|n| tail.contains(n)) {
                return Ok(i);
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                // Let the readers catch the last lines.
                std::thread::sleep(Duration::from_millis(100));
                let out = self.output();
                let tail = out.get(from..).unwrap_or("");
                if let Some(i) = needles.iter().position(|n| tail.contains(n)) {
                    return Ok(i);
                }
                return Err(Failure::new(
                    format!("`{}` to say {:?}", self.what, needles[0]),
                    format!("it ended ({status}) saying:\n{}", last_lines(&out, 25)),
                ));
            }
            let since = self.built_at().unwrap_or(started);
            let limit = if self.built_at().is_some() {
                limit
            } else {
                BUILD
            };
            if since.elapsed() > limit {
                return Err(Failure::new(
                    format!(
                        "`{}` to say {:?} within {} s",
                        self.what,
                        needles[0],
                        limit.as_secs()
                    ),
                    format!("it had said:\n{}", last_lines(&self.output(), 25)),
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits for the end: its status, and the time since the build ended.
    fn finish(&mut self, limit: Duration) -> Result<(ExitStatus, Duration), Failure> {
        let spawned = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                std::thread::sleep(Duration::from_millis(100));
                let ran = self.built_at().unwrap_or(spawned).elapsed();
                return Ok((status, ran));
            }
            let (since, limit) = match self.built_at() {
                Some(t) => (t, limit),
                None => (spawned, BUILD),
            };
            if since.elapsed() > limit {
                self.stop();
                return Err(Failure::new(
                    format!("`{}` to end within {} s", self.what, limit.as_secs()),
                    format!(
                        "it was still running, having said:\n{}",
                        last_lines(&self.output(), 15)
                    ),
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Interrupts it as Ctrl-C would (so it stops its guest), then kills
    /// it if it has not ended within ten seconds.
    fn stop(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        if let Ok(pid) = i32::try_from(self.child.id()) {
            // SAFETY: kill(2) on the pid of our own child, not yet reaped
            // (try_wait said it runs), so the pid is still ours.
            unsafe { libc::kill(pid, libc::SIGINT) };
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop();
    }
}

fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// `nym run`'s arguments for `target`, with forwards and keys.
fn run_args(target: &str, forward: Option<(u16, u16)>, keys: &[String]) -> Vec<String> {
    let mut a = vec!["run".to_owned()];
    if target != "unix" {
        a.extend(["--target".to_owned(), target.to_owned()]);
        if let Some((host, guest)) = forward {
            a.extend(["-p".to_owned(), format!("{host}:{guest}")]);
        }
    }
    if !keys.is_empty() {
        a.push("--".to_owned());
        a.extend(keys.iter().cloned());
    }
    a
}

fn parse_duration(s: &str) -> Result<Duration, Failure> {
    libos::value::parse_duration(s).map_err(|_| {
        Failure::new(
            "a duration the lesson names",
            format!("{s:?} (a bug in the lesson)"),
        )
    })
}

pub(crate) fn run(cx: &mut Context<'_>, c: &RunCheck) -> Result<(), Failure> {
    let target = c.target.as_deref().unwrap_or("unix");
    let within = c.within.as_deref().map(parse_duration).transpose()?;
    let dir = scratch(cx, "run", &current(cx))?;
    let mut last = String::new();
    for i in 0..c.runs {
        let n = if c.runs > 1 {
            format!(" ({} of {})", i + 1, c.runs)
        } else {
            String::new()
        };
        (cx.say)(&format!("running it on {target}{n}"));
        let mut p = Proc::start(cx, &dir, &run_args(target, None, &c.args))?;
        let (status, took) = p.finish(within.map_or(RUN, |w| w + Duration::from_secs(2)))?;
        last = p.output();
        if let Some(w) = within {
            if took > w {
                return Err(Failure::new(
                    format!("the run to end within {} s", w.as_secs_f64()),
                    format!("it took {:.1} s", took.as_secs_f64()),
                ));
            }
        }
        ended(&p.what, status, &last, c.fails)?;
    }
    said(&last, &c.contains, &c.lacks)
}

/// `nym sim` on a copy of the lesson: how the simulation ends.
pub(crate) fn sim(cx: &mut Context<'_>, c: &SimCheck) -> Result<(), Failure> {
    let dir = scratch(cx, "sim", &current(cx))?;
    (cx.say)(&format!("simulating {}", c.topology));
    let mut args = vec!["sim".to_owned(), c.topology.clone()];
    args.extend(c.args.iter().cloned());
    let mut p = Proc::start(cx, &dir, &args)?;
    let (status, _) = p.finish(RUN)?;
    let out = p.output();
    ended(&p.what, status, &out, c.fails)?;
    said(&out, &c.contains, &c.lacks)
}

/// Whether a run ended as the check wants: failing if `fails`, else well.
fn ended(what: &str, status: ExitStatus, out: &str, fails: bool) -> Result<(), Failure> {
    if fails != status.success() {
        return Ok(());
    }
    Err(Failure::new(
        match fails {
            true => format!("`{what}` to fail"),
            false => format!("`{what}` to succeed"),
        },
        format!("it ended ({status}) saying:\n{}", last_lines(out, 20)),
    ))
}

/// Whether a run's output (cargo's lines aside) holds each of `contains`
/// and none of `lacks`.
fn said(out: &str, contains: &[String], lacks: &[String]) -> Result<(), Failure> {
    let out = program_output(out);
    if let Some(missing) = contains.iter().find(|s| !out.contains(s.as_str())) {
        return Err(Failure::new(
            format!("the output to hold {missing:?}"),
            format!("it said:\n{}", last_lines(&out, 20)),
        ));
    }
    if let Some(there) = lacks.iter().find(|s| out.contains(s.as_str())) {
        return Err(Failure::new(
            format!("the output not to hold {there:?}"),
            format!("it said:\n{}", last_lines(&out, 20)),
        ));
    }
    Ok(())
}

/// The output without cargo's lines (so `contains` never matches a path).
fn program_output(out: &str) -> String {
    out.lines()
        .filter(|l| {
            let t = l.trim_start();
            ![
                "Compiling ",
                "Finished `",
                "Building ",
                "Blocking ",
                "Running `",
                "warning: ",
            ]
            .iter()
            .any(|p| t.starts_with(p))
        })
        .map(|l| format!("{l}\n"))
        .collect()
}

/// A server started on a copy: `nym run` with a free host port.
fn serve(
    cx: &mut Context<'_>,
    target: &str,
    port: u16,
    watch: bool,
) -> Result<(Proc, u16), Failure> {
    let host = free_port()?;
    let args = if target == "unix" {
        let mut a = vec!["run".to_owned()];
        if watch {
            a.push("--watch".to_owned());
        }
        a.extend(["--".to_owned(), "--port".to_owned(), host.to_string()]);
        a
    } else {
        run_args(target, Some((host, port)), &[])
    };
    let name = if watch { "reload" } else { "serve" };
    let dir = cx.dir.join("target").join("nym-tutorial").join(name);
    (cx.say)(&format!("starting a copy of your server on {target}"));
    let mut p = Proc::start(cx, &dir, &args)?;
    let guest = if target == "unix" { host } else { port };
    p.wait_for(0, &[&format!("listening on port {guest}")], LISTEN)?;
    Ok((p, host))
}

pub(crate) fn http(cx: &mut Context<'_>, c: &HttpCheck) -> Result<(), Failure> {
    let target = c.target.as_deref().unwrap_or("unix");
    scratch(cx, "serve", &current(cx))?;
    let (p, host) = serve(cx, target, c.port, false)?;
    let scheme = if c.cacert.is_some() { "https" } else { "http" };
    let cacert = c.cacert.as_ref().map(|f| cx.dir.join(f));
    for r in &c.requests {
        let url = format!("{scheme}://localhost:{host}{}", r.path);
        expect(&p, &url, r, cacert.as_deref())?;
    }
    Ok(())
}

/// Sends `r` to `url` and holds the answer to what it expects.
fn expect(p: &Proc, url: &str, r: &Request, cacert: Option<&Path>) -> Result<String, Failure> {
    let method = r.method.as_deref().unwrap_or("GET");
    let (status, body) = curl(method, url, r.body.as_deref(), cacert)?;
    let want = r.status.unwrap_or(200);
    let shown = format!("{method} {}", r.path);
    if status != want {
        return Err(Failure::new(
            format!("{shown} to answer {want}"),
            format!(
                "{status} {}\n(the server said:\n{})",
                body.trim(),
                last_lines(&p.output(), 10)
            ),
        ));
    }
    if let Some(missing) = r.contains.iter().find(|s| !body.contains(s.as_str())) {
        return Err(Failure::new(
            format!("{shown} to answer with {missing:?}"),
            format!("{status} {}", body.trim()),
        ));
    }
    Ok(body)
}

/// One request with curl: the status (0 when there was no answer) and body.
fn curl(
    method: &str,
    url: &str,
    body: Option<&str>,
    cacert: Option<&Path>,
) -> Result<(u16, String), Failure> {
    let mut c = Command::new("curl");
    c.args([
        "-sS",
        "--max-time",
        "20",
        "-X",
        method,
        "-w",
        "\n%{http_code}",
    ]);
    if let Some(b) = body {
        c.args(["--data-binary", b]);
    }
    if let Some(ca) = cacert {
        c.arg("--cacert").arg(ca);
    }
    let out = c
        .arg(url)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| Failure::new("curl to run", e.to_string()))?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
    let code: u16 = code.trim().parse().unwrap_or(0);
    if code == 0 {
        return Err(Failure::new(
            format!("an answer to {method} {url}"),
            String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        ));
    }
    Ok((code, body.to_owned()))
}

pub(crate) fn echo(cx: &mut Context<'_>, c: &EchoCheck) -> Result<(), Failure> {
    let target = c.target.as_deref().unwrap_or("unix");
    scratch(cx, "serve", &current(cx))?;
    let (p, host) = serve(cx, target, c.port, false)?;
    (cx.say)(&format!("sending {} bytes through it", c.bytes));
    let sent: Vec<u8> = (0..c.bytes).map(|i| (i * 7 + i / 251) as u8).collect();
    let back = exchange(host, &sent).map_err(|e| {
        Failure::new(
            format!("{} bytes back from port {}", c.bytes, c.port),
            format!("{e}\n(the server said:\n{})", last_lines(&p.output(), 10)),
        )
    })?;
    if back != sent {
        let at = back
            .iter()
            .zip(&sent)
            .position(|(a, b)| a != b)
            .unwrap_or(back.len().min(sent.len()));
        return Err(Failure::new(
            format!("the {} bytes sent, back exactly", c.bytes),
            format!("{} bytes, the first difference at byte {at}", back.len()),
        ));
    }
    Ok(())
}

/// Writes `sent` to the echo server on `port` while reading it back.
fn exchange(port: u16, sent: &[u8]) -> std::io::Result<Vec<u8>> {
    let stream = TcpStream::connect((Ipv4Addr::LOCALHOST, port))?;
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    stream.set_write_timeout(Some(Duration::from_secs(60)))?;
    let mut writer = stream.try_clone()?;
    let data = sent.to_vec();
    let w = std::thread::spawn(move || writer.write_all(&data));
    let mut back = vec![0; sent.len()];
    let mut reader = stream;
    reader.read_exact(&mut back)?;
    w.join()
        .map_err(|_| std::io::Error::other("the writer panicked"))??;
    Ok(back)
}

pub(crate) fn reload(cx: &mut Context<'_>, c: &ReloadCheck) -> Result<(), Failure> {
    let before = match &c.from {
        Some(step) => cx.solution(step),
        None => cx.before(&cx.step.id),
    };
    let now = current(cx);
    let changed: Vec<&String> = now
        .iter()
        .filter(|(p, b)| before.get(*p) != Some(*b))
        .map(|(p, _)| p)
        .collect();
    if changed.is_empty() {
        return Err(Failure::new(
            "an edit to reload (this check starts your server as the step began, then applies your changes)",
            "your files are as the step began",
        ));
    }
    scratch(cx, "reload", &before)?;
    let (mut p, host) = serve(cx, "unix", c.port, true)?;
    let token = format!(
        "planted-{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    );
    let put = Request {
        method: Some("PUT".to_owned()),
        body: Some(token.clone()),
        status: Some(204),
        ..get("/kv/planted")
    };
    (cx.say)("planting a value in the running server");
    let base = format!("http://localhost:{host}");
    expect(&p, &format!("{base}/kv/planted"), &put, None)?;
    let page_before = expect(&p, &format!("{base}/"), &get("/"), None)?;
    let mark = p.output().len();
    (cx.say)(&format!(
        "applying your edit ({})",
        changed
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    ));
    scratch(cx, "reload", &now)?;
    let keep = "keeps running";
    let which = p.wait_for(mark, &["reloaded:", keep], Duration::from_secs(600))?;
    let out = p.output();
    let said = last_lines(out.get(mark..).unwrap_or(""), 20);
    match (c.broken, which) {
        (true, 0) => {
            return Err(Failure::new(
                "the edit to break the build (a type error), so the old version keeps serving",
                format!("it built and reloaded:\n{said}"),
            ))
        }
        (false, 1) => {
            return Err(Failure {
                diagnostics: Some(said),
                expected: "the edit to build and reload".into(),
                seen: "the build failed; the previous version keeps running".into(),
            })
        }
        _ => {}
    }
    let page = expect(&p, &format!("{base}/"), &get("/"), None)?;
    if c.broken {
        if page != page_before {
            return Err(Failure::new("the old page, still served", page));
        }
    } else if let Some(missing) = c.page.iter().find(|s| !page.contains(s.as_str())) {
        return Err(Failure::new(
            format!("the page to hold {missing:?} after the reload"),
            page,
        ));
    }
    let mut want = get("/kv/planted");
    want.contains = vec![token.clone()];
    expect(&p, &format!("{base}/kv/planted"), &want, None).map_err(|f| Failure {
        expected: "the value planted before the edit, still there after it (a reload keeps the store; a restart would not)".into(),
        ..f
    })?;
    Ok(())
}

fn get(path: &str) -> Request {
    Request {
        method: None,
        path: path.into(),
        body: None,
        status: None,
        contains: vec![],
    }
}
