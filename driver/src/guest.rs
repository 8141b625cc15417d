//! A guest booted on a thread of its own, the way the session's `:boot`
//! runs one: its image built, then booted on nym's monitor (in this
//! process, its vCPU thread under the monitor's allowlist), under QEMU or
//! on Xen, its console lines going to a writer, and a [`Stop`] that ends
//! it from any thread. `nym run --target …` calls the same runners on its
//! own thread, with the terminal as the console.
use crate::build::{build_program, guest_cmdline, key_defaults};
use crate::project::Project;
use crate::{kvm, libvirt, qemu, xen, Error, Out};
use nym_graph::{Graph, Target};
use std::io::Write;
use std::path::PathBuf;
use std::process::Child;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Ends a booted guest from another thread, whatever runs it: nym's
/// monitor is stopped at its next exit, QEMU is killed.
#[derive(Clone, Default)]
pub struct Stop(Arc<StopInner>);

#[derive(Default)]
struct StopInner {
    requested: AtomicBool,
    monitor: nym_hvt::Stopper,
    /// QEMU, while it runs (taken back by its runner before it waits).
    child: Mutex<Option<Child>>,
}

impl Stop {
    /// Asks the guest to end. Safe to call again, and from any thread.
    pub fn stop(&self) {
        self.0.requested.store(true, Ordering::Release);
        self.0.monitor.stop();
        if let Some(child) = lock(&self.0.child).as_mut() {
            let _ = child.kill();
        }
    }

    /// Whether [`Stop::stop`] was called.
    pub fn requested(&self) -> bool {
        self.0.requested.load(Ordering::Acquire)
    }

    /// The monitor's stopper, for [`nym_hvt::Config::stop`].
    pub fn monitor(&self) -> nym_hvt::Stopper {
        self.0.monitor.clone()
    }

    /// Keeps `child` (QEMU) where [`Stop::stop`] can kill it; killed at
    /// once if a stop came first.
    pub(crate) fn hold(&self, mut child: Child) {
        if self.requested() {
            let _ = child.kill();
        }
        *lock(&self.0.child) = Some(child);
    }

    /// Takes the child back, to wait for it: from then on a stop cannot
    /// signal a process id that may have been reused.
    pub(crate) fn release(&self) -> Option<Child> {
        lock(&self.0.child).take()
    }
}

/// Stops the guest when this process gets SIGINT, SIGTERM or SIGHUP (the
/// terminal's Ctrl-C, a `kill`, a closed terminal), so that what it runs
/// outside this process (a libvirt domain) is removed too. The signals are
/// taken by a thread of their own and blocked in the calling thread (and
/// the threads it starts after): a handler must never run on a thread
/// under the monitor's allowlist, which is what the calling thread
/// becomes in `nym run --target kvm`.
///
/// It returns once the handlers are in place: a signal sent as soon as the
/// guest has started is never lost (nor ignored, for a process started
/// with SIGINT ignored, as a shell does for a job it puts in the
/// background).
pub fn stop_on_signals(stop: &Stop) {
    let stop = stop.clone();
    let (ready, in_place) = std::sync::mpsc::channel::<()>();
    std::thread::spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        rt.block_on(async {
            use tokio::signal::unix::{signal, SignalKind};
            let (Ok(mut int), Ok(mut term), Ok(mut hup)) = (
                signal(SignalKind::interrupt()),
                signal(SignalKind::terminate()),
                signal(SignalKind::hangup()),
            ) else {
                return;
            };
            let _ = ready.send(());
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
                _ = hup.recv() => {}
            }
        });
        stop.stop();
    });
    // Bounded: a thread that could not set them up says nothing.
    let _ = in_place.recv_timeout(Duration::from_secs(2));
    block_stop_signals();
}

/// Blocks SIGINT, SIGTERM and SIGHUP in the calling thread.
#[allow(unsafe_code)] // pthread_sigmask
fn block_stop_signals() {
    // SAFETY: `set` is a local signal set, initialised by sigemptyset
    // before use; pthread_sigmask only changes this thread's mask.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
            libc::sigaddset(&mut set, sig);
        }
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// How to boot a graph's image: what `:boot` and `nym run` take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Key arguments, `--count 2`.
    pub key_args: Vec<String>,
    /// Guest memory in bytes.
    pub mem: u64,
    /// Host ports forwarded to guest ports (kvm, qemu, libvirt; xen: TCP
    /// only).
    pub forwards: Vec<PortForward>,
    /// A tap device for a kvm guest's network instead of forwards.
    pub tap: Option<String>,
    /// Connections each of a kvm guest's forwards has open at once
    /// (`None`: [`nym_hvt::net::MAX_CONNS`]).
    pub max_conns: Option<usize>,
    /// The host file of the graph's `block::file`, instead of the one the
    /// graph names.
    pub block: Option<PathBuf>,
    /// The machine a qemu guest runs on.
    pub machine: qemu::Machine,
    /// Build the image with optimisations.
    pub release: bool,
    /// How long a xen guest may run before its domain is destroyed.
    pub timeout: Option<Duration>,
    /// Record the scheduler's log into this file (unix, kvm).
    pub trace: Option<PathBuf>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            key_args: Vec::new(),
            mem: 32 << 20,
            forwards: Vec::new(),
            tap: None,
            max_conns: None,
            block: None,
            machine: qemu::Machine::default(),
            release: false,
            timeout: None,
            trace: None,
        }
    }
}

impl Options {
    /// Reads the options of `:boot`: `-p HOST:GUEST[/udp]` (repeated), `-m SIZE`,
    /// `--tap NAME`, `--block FILE`, `--machine microvm|q35`, then `--` and
    /// the key arguments.
    pub fn parse(text: &str) -> Result<Options, String> {
        let mut o = Options::default();
        let mut words = text.split_whitespace();
        while let Some(w) = words.next() {
            let mut value = |flag: &str| {
                words
                    .next()
                    .ok_or_else(|| format!("`{flag}` needs a value"))
            };
            match w {
                "-p" | "--publish" => o.forwards.push(parse_forward(value(w)?)?),
                "-m" | "--mem" => o.mem = parse_mem(value(w)?)?,
                "--tap" => o.tap = Some(value(w)?.to_owned()),
                "--block" => o.block = Some(PathBuf::from(value(w)?)),
                "--machine" => o.machine = parse_machine(value(w)?)?,
                "--" => {
                    o.key_args = words.by_ref().map(str::to_owned).collect();
                }
                other => {
                    return Err(format!(
                    "`{other}`: :boot takes -p HOST:GUEST[/udp], -m SIZE, --tap NAME, then -- and keys"
                ))
                }
            }
        }
        Ok(o)
    }
}

/// A guest as the engines that run an image as a domain describe it
/// (libvirt's XML, `xl`'s config).
#[derive(Debug, Clone, Copy)]
pub struct Domain<'a> {
    /// Its name (`virsh list`, `xl list`).
    pub name: &'a str,
    /// The PVH image, a path on the host that runs the domain.
    pub image: &'a std::path::Path,
    /// Memory in bytes.
    pub mem: u64,
    /// The guest's command line (its keys).
    pub cmdline: &'a str,
    /// Whether the guest has a network device.
    pub net: bool,
    /// The disk's host file, if the graph has one.
    pub disk: Option<&'a std::path::Path>,
}

/// What the host prepares for a guest under QEMU, libvirt or Xen before
/// its image builds: the command line, the keys, and the disk's file
/// (created if missing); a forward nothing can serve is refused first.
fn host_side(
    project: &Project,
    graph: &Graph,
    options: &Options,
) -> Result<(String, nym_unix::keys::Keys, Option<nym_hvt::BlockFile>), Error> {
    let cmdline = guest_cmdline(graph, &options.key_args)?;
    let keys = nym_unix::keys::Keys::parse(key_defaults(graph), &options.key_args)?;
    let block = kvm::block_file(project, graph, &keys, options.block.as_deref())?;
    if let Some(b) = &block {
        kvm::create_block_file(b)?;
    }
    qemu::check_forwards(&options.forwards)?;
    Ok((cmdline, keys, block))
}

/// The protocol a port forward carries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Protocol {
    /// TCP: each connection copied to one to the guest (no suffix, or `/tcp`).
    #[default]
    Tcp,
    /// UDP: each datagram sent on to the guest, its answers sent back
    /// (`/udp`).
    Udp,
}

impl Protocol {
    /// `tcp` or `udp`, as QEMU's `hostfwd` and `-p`'s suffix spell it.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }
}

/// A port forward: `-p HOST:GUEST`, `HOST:GUEST/tcp` or `HOST:GUEST/udp`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortForward {
    /// The port on the host's loopback.
    pub host: u16,
    /// The guest's port.
    pub guest: u16,
    /// What it carries.
    pub protocol: Protocol,
}

impl std::fmt::Display for PortForward {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}/{}", self.host, self.guest, self.protocol.name())
    }
}

/// Parses a port forward, `HOST:GUEST` (TCP), `HOST:GUEST/tcp` or
/// `HOST:GUEST/udp`.
pub fn parse_forward(text: &str) -> Result<PortForward, String> {
    let bad = || {
        format!(
            "`{text}` is not a port forward; -p takes HOST:GUEST (TCP), HOST:GUEST/tcp or HOST:GUEST/udp, like 8080:80 or 5300:53/udp"
        )
    };
    let (ports, protocol) = match text.split_once('/') {
        None => (text, Protocol::Tcp),
        Some((ports, p)) if p.eq_ignore_ascii_case("tcp") => (ports, Protocol::Tcp),
        Some((ports, p)) if p.eq_ignore_ascii_case("udp") => (ports, Protocol::Udp),
        Some((_, p)) => {
            let what = match p {
                "" => "and nothing follows `/`".to_owned(),
                p => format!("not `{p}`"),
            };
            return Err(format!(
                "`{text}` is not a port forward: -p forwards tcp or udp, {what}; write HOST:GUEST/tcp or HOST:GUEST/udp (no suffix is TCP), like 5300:53/udp"
            ));
        }
    };
    let (host, guest) = ports.split_once(':').ok_or_else(bad)?;
    let port = |p: &str| p.parse::<u16>().ok().filter(|&p| p != 0).ok_or_else(bad);
    Ok(PortForward {
        host: port(host)?,
        guest: port(guest)?,
        protocol,
    })
}

/// Parses a QEMU machine: `microvm` or `q35`.
pub fn parse_machine(text: &str) -> Result<qemu::Machine, String> {
    [qemu::Machine::Microvm, qemu::Machine::Q35]
        .into_iter()
        .find(|m| m.name() == text)
        .ok_or_else(|| format!("`{text}` is not a machine; qemu runs microvm or q35"))
}

/// Parses a duration: `90s`, `5m`, `1h`, or seconds alone (`30`).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let (digits, scale) = match text.char_indices().last() {
        Some((i, 's')) => (&text[..i], 1),
        Some((i, 'm')) => (&text[..i], 60),
        Some((i, 'h')) => (&text[..i], 3600),
        _ => (text, 1),
    };
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(scale))
        .filter(|s| *s > 0)
        .map(Duration::from_secs)
        .ok_or_else(|| format!("`{text}` is not a duration; write it like 90s, 5m or 1h"))
}

/// Parses a memory size: `32M`, `1G`, `512MiB`, `4096K`.
pub fn parse_mem(text: &str) -> Result<u64, String> {
    let t = text.trim_end_matches("iB").trim_end_matches('B');
    let (digits, scale) = match t.char_indices().last() {
        Some((i, 'K' | 'k')) => (&t[..i], 1u64 << 10),
        Some((i, 'M' | 'm')) => (&t[..i], 1 << 20),
        Some((i, 'G' | 'g')) => (&t[..i], 1 << 30),
        _ => (t, 1),
    };
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(scale))
        .ok_or_else(|| format!("`{text}` is not a size; write it like 32M or 1G"))
}

/// Builds `graph`'s image and boots it on its target, on the calling
/// thread, until the guest ends or `stop` is used; the guest's exit
/// status (130 when stopped).
/// Host resources (forwarded ports, a tap) are taken before the build.
pub fn run(
    project: &Project,
    graph: &Graph,
    options: &Options,
    console: &mut dyn Write,
    out: &Out,
    stop: &Stop,
) -> Result<u8, Error> {
    let cwd = &project.root;
    match graph.target {
        Target::Kvm => {
            let mut config = kvm::prepare(
                cwd,
                project,
                graph,
                kvm::Options {
                    key_args: &options.key_args,
                    mem: options.mem,
                    forwards: &options.forwards,
                    tap: options.tap.as_deref(),
                    max_conns: options.max_conns,
                    gdb: None,
                    block: options.block.as_deref(),
                    release: options.release,
                },
                out,
            )?;
            if stop.requested() {
                return Ok(130);
            }
            config.stop = Some(stop.monitor());
            let outcome = nym_hvt::run(&config, console)?;
            if let Some(report) = describe(&outcome) {
                out.line(&report);
            }
            Ok(outcome.status().clamp(0, 255) as u8)
        }
        Target::Qemu | Target::Libvirt => {
            let (cmdline, _, block) = host_side(project, graph, options)?;
            if graph.target == Target::Qemu {
                // libvirt's daemon runs its own QEMU.
                qemu::check_version()?;
            }
            let image = build_program(cwd, project, graph, options.release, out)?;
            if stop.requested() {
                return Ok(130);
            }
            let block = block.as_ref().map(|b| b.path.as_path());
            if graph.target == Target::Libvirt {
                let name = libvirt::domain_name(&graph.name);
                let (xml, console_file) = libvirt::files(&image);
                let domain = libvirt::Domain {
                    guest: Domain {
                        name: &name,
                        image: &image,
                        mem: options.mem,
                        cmdline: &cmdline,
                        net: !options.forwards.is_empty(),
                        disk: block,
                    },
                    forwards: &options.forwards,
                    console: &console_file,
                };
                return libvirt::run(&domain, &xml, console, out, stop);
            }
            let vm = qemu::Vm {
                image: &image,
                mem: options.mem,
                cmdline: &cmdline,
                forwards: &options.forwards,
                block,
                machine: options.machine,
            };
            Ok(qemu::run(&vm, console, out, stop)?)
        }
        Target::Xen => {
            // dom0 relays TCP only: refused before anything starts.
            xen::refuse_udp(&options.forwards)?;
            let tcp: Vec<(u16, u16)> = options.forwards.iter().map(|f| (f.host, f.guest)).collect();
            let (cmdline, keys, block) = host_side(project, graph, options)?;
            let net = graph.nodes.iter().any(|n| n.imp.name == "netif::default");
            // dom0 boots (if none is up) while the image builds.
            let dom0 = xen::Dom0::start(out)?;
            let image = build_program(cwd, project, graph, options.release, out)?;
            if stop.requested() {
                return Ok(130);
            }
            let conventional = libos::value::Ipv4Cidr {
                addr: nym_hvt::abi::NET_GUEST_IP.into(),
                prefix: 24,
            };
            let run = xen::Run {
                domain: Domain {
                    name: &graph.name,
                    image: &image,
                    mem: options.mem,
                    cmdline: &cmdline,
                    net,
                    disk: block.as_ref().map(|b| b.path.as_path()),
                },
                address: net.then(|| kvm::guest_cidr(graph, &keys).unwrap_or(conventional)),
                forwards: &tcp,
                timeout: options.timeout,
            };
            Ok(xen::run(dom0, &run, console, out, stop)?)
        }
        Target::Unix => Err(Error::BootTarget(Target::Unix)),
    }
}

/// How a monitor's guest ended, when it did not end by itself.
pub fn describe(outcome: &nym_hvt::Outcome) -> Option<String> {
    match outcome {
        nym_hvt::Outcome::Exited(_) => None,
        nym_hvt::Outcome::Violation(v) => Some(format!(
            "nym: the guest broke the hypercall ABI and was stopped: {v}"
        )),
        // Empty when it was already shown (during a gdb session).
        nym_hvt::Outcome::Crashed(report) if report.is_empty() => None,
        nym_hvt::Outcome::Crashed(report) => Some(format!("nym: {}", report.trim_end())),
        nym_hvt::Outcome::Stopped => Some("nym: the guest was stopped".into()),
    }
}

/// A guest booting or running on a thread of its own.
pub struct Booted {
    stop: Stop,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Booted {
    /// Starts [`run`] on a new thread; `ended` gets its result.
    pub fn spawn(
        project: Project,
        graph: Graph,
        options: Options,
        mut console: Box<dyn Write + Send>,
        out: Out,
        ended: impl FnOnce(Result<u8, Error>) + Send + 'static,
    ) -> Booted {
        let stop = Stop::default();
        let theirs = stop.clone();
        let thread = std::thread::Builder::new()
            .name("nym-boot".into())
            .spawn(move || {
                let result = run(&project, &graph, &options, &mut *console, &out, &theirs);
                ended(result)
            })
            .ok();
        Booted { stop, thread }
    }

    /// Whether the guest has ended (or never started).
    pub fn finished(&self) -> bool {
        self.thread.as_ref().is_none_or(|t| t.is_finished())
    }

    /// Stops the guest and waits up to `grace` for its thread; false if it
    /// is still running then (a build in progress finishes on its own,
    /// then boots nothing).
    pub fn stop(&mut self, grace: Duration) -> bool {
        let deadline = Instant::now() + grace;
        loop {
            // Again and again: a kick that lands just before the vCPU
            // enters KVM_RUN is lost.
            self.stop.stop();
            if self.finished() {
                if let Some(t) = self.thread.take() {
                    let _ = t.join();
                }
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwards_are_tcp_unless_they_say_udp_and_bad_ones_say_what_is_taken() {
        let fwd = |host, guest, protocol| PortForward {
            host,
            guest,
            protocol,
        };
        assert_eq!(parse_forward("8080:80"), Ok(fwd(8080, 80, Protocol::Tcp)));
        assert_eq!(
            parse_forward("8080:80/tcp"),
            Ok(fwd(8080, 80, Protocol::Tcp))
        );
        assert_eq!(
            parse_forward("5300:53/udp"),
            Ok(fwd(5300, 53, Protocol::Udp))
        );
        assert_eq!(
            parse_forward("5300:53/UDP"),
            Ok(fwd(5300, 53, Protocol::Udp))
        );
        for bad in [
            "5300:53/sctp",
            "/",
            "5300:53/UDPX",
            "5300:53/",
            "/udp",
            "0:53/udp",
            "80",
        ] {
            let err = parse_forward(bad).unwrap_err();
            assert!(
                err.contains(&format!("`{bad}` is not a port forward")),
                "{err}"
            );
            assert!(err.contains("-p") && err.contains("/udp"), "{err}");
        }
        assert!(parse_forward("5300:53/sctp")
            .unwrap_err()
            .contains("not `sctp`"));
        assert_eq!(fwd(5300, 53, Protocol::Udp).to_string(), "5300:53/udp");
        let boot = Options::parse("-p 8080:80 -p 5300:53/udp").unwrap();
        assert_eq!(
            boot.forwards,
            [fwd(8080, 80, Protocol::Tcp), fwd(5300, 53, Protocol::Udp)]
        );
    }

    #[test]
    fn qemu_forwards_udp_with_a_udp_hostfwd_and_xen_refuses_it() {
        let forwards = [
            PortForward {
                host: 8080,
                guest: 80,
                protocol: Protocol::Tcp,
            },
            PortForward {
                host: 5300,
                guest: 53,
                protocol: Protocol::Udp,
            },
        ];
        assert_eq!(
            qemu::user_netdev(&forwards),
            "user,id=net0,hostfwd=tcp:127.0.0.1:8080-:80,hostfwd=udp:127.0.0.1:5300-:53"
        );
        let xml = libvirt::domain_xml(&libvirt::Domain {
            guest: Domain {
                name: "dns",
                image: std::path::Path::new("/tmp/dns.elf"),
                mem: 32 << 20,
                cmdline: "",
                net: true,
                disk: None,
            },
            forwards: &forwards,
            console: std::path::Path::new("/tmp/dns.console"),
        });
        assert!(
            xml.contains("hostfwd=udp:127.0.0.1:5300-:53"),
            "libvirt's qemu:commandline: {xml}"
        );
        assert!(xen::refuse_udp(&forwards[..1]).is_ok());
        let err = xen::refuse_udp(&forwards).unwrap_err().to_string();
        assert!(
            err.starts_with("-p 5300:53/udp: a xen guest's forwards are TCP only"),
            "{err}"
        );
    }
}
