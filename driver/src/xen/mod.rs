//! The xen target: the image as a PVH domU that `xl create` starts under
//! a Linux dom0, the way Xen hosts run guests. On this machine the Xen
//! host is itself emulated: Xen 4.17 and Debian's dom0 in QEMU
//! ([`dom0`]); on a real Xen host, `nym build --target xen` writes the
//! image and an `xl` config ([`config`]) to give to `xl create`.
//!
//! `nym run --target xen` uses the dom0 `nym dom0` keeps running, if
//! there is one, or boots one for the run (in the background while the
//! image builds). It writes the config dom0's `xl` reads (paths under
//! `/host`, where dom0 sees the host's files), adds the `-p` forwards to
//! QEMU, and asks dom0's agent ([`agent`]) to run the guest: `xl create`
//! with the domain paused, the console attached, then unpaused. dom0
//! forwards each port on to the guest over the bridge its vif is on, with
//! an address of its own on the guest's subnet. The guest's console comes
//! back line by line; Xen cannot pass an exit status on, so the guest
//! prints it last (`nym: exit status N`) and that becomes nym's.
//!
//! Limits, all documented in the README: a guest must print its first
//! line within [`START_WITHIN`] of `xl create` or it is destroyed; `--timeout`
//! destroys a guest that has not shut down after that long (nym then
//! exits with 124); stopping nym (Ctrl-C, a signal, a killed process)
//! closes the agent's connection, and dom0 destroys the domain. One guest
//! runs on a dom0 at a time; others wait their turn.
//!
//! For tests, `$NYM_XEN_BEFORE` is a shell command dom0 runs after the
//! domain is made and before it is unpaused (`$DOMID` is its id): it can
//! spoil what the guest will read from xenstore.
pub mod agent;
pub mod config;
mod cpio;
pub mod dom0;

use crate::guest::Stop;
use crate::Out;
use agent::{Event, Request, Session};
use dom0::{Booted, Host, Image};
use libos::value::Ipv4Cidr;
use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How long a guest may take from `xl create` to its first console line.
pub const START_WITHIN: Duration = Duration::from_secs(60);

/// The exit status when `--timeout` ended the guest (as `timeout(1)`).
pub const EXIT_TIMEOUT: u8 = 124;

/// Why a guest could not be run under Xen.
#[derive(Debug, thiserror::Error)]
pub enum XenError {
    /// No hypervisor image.
    #[error("no Xen hypervisor at {}\n  hint: scripts/install.sh extracts Debian's xen-hypervisor-4.17-amd64 there, or set NYM_XEN", .0.display())]
    NoXen(PathBuf),
    /// No dom0 image.
    #[error("no dom0 image in {} (vmlinuz and initrd.gz)\n  hint: scripts/install.sh builds it from Debian's packages (or set NYM_XEN_DOM0_IMAGE to a directory holding one)", .0.display())]
    NoDom0(PathBuf),
    /// QEMU is missing.
    #[error("cannot start qemu-system-x86_64: {0}\n  hint: scripts/install.sh installs QEMU")]
    Spawn(std::io::Error),
    /// The QEMU that would run Xen is missing or too old.
    #[error(transparent)]
    Qemu(crate::qemu::QemuError),
    /// The domain cannot be written as an xl config.
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    /// Xen or dom0 did not come up.
    #[error("{0}; the last lines of its console:\n{1}")]
    Dom0(String, String),
    /// dom0's agent cannot be reached.
    #[error("cannot reach dom0's agent at {0}: {1}")]
    Agent(SocketAddr, String),
    /// QEMU's monitor failed.
    #[error("QEMU's monitor: {0}")]
    Qmp(String),
    /// A port cannot be forwarded.
    #[error("cannot forward port {0} into dom0: {1}")]
    Forward(u16, String),
    /// `xl create` failed.
    #[error("xl create failed in dom0:\n{0}")]
    Create(String),
    /// The guest ended without its status line.
    #[error("the guest ended ({0}) without an exit status; its output is above")]
    NoStatus(String),
    /// The guest printed nothing in time.
    #[error("the guest printed nothing within {} s of xl create; its domain was destroyed", START_WITHIN.as_secs())]
    NoStart,
    /// dom0 cannot take an address on the guest's subnet.
    #[error(
        "the guest's subnet {0} leaves no address for dom0 on its bridge (use a /30 or larger)"
    )]
    Subnet(Ipv4Cidr),
    /// A forward dom0 cannot take.
    #[error("host port {0} cannot be forwarded to a xen guest (dom0's agent listens there)")]
    AgentPort(u16),
    /// A UDP forward (`-p HOST:GUEST/udp`): dom0 relays TCP only.
    #[error("-p {0}: a xen guest's forwards are TCP only (dom0 relays each connection with nc, which has no way to send a datagram's answer back to its client)\n  hint: forward TCP (-p {1}:{2}), or run the guest with --target kvm or --target qemu, which forward UDP")]
    UdpForward(String, u16, u16),
    /// Stopped before the guest ran.
    #[error("stopped")]
    Stopped,
    /// Files, sockets.
    #[error("{0}")]
    Io(String),
}

/// The hypervisor, when everything a xen run needs is installed (it and
/// the dom0 image).
pub fn hypervisor() -> Result<PathBuf, XenError> {
    Image::find().map(|i| i.xen)
}

/// The dom0 a run uses.
pub enum Dom0 {
    /// The one `nym dom0` keeps.
    Shared(Host),
    /// One booted for this run, ended with it.
    Private(Box<Booted>),
}

impl Dom0 {
    /// The shared dom0 if one runs, else a dom0 booting for this run
    /// (booting goes on while the caller builds the image).
    pub fn start(out: &Out) -> Result<Dom0, XenError> {
        let dir = dom0::state_dir();
        if let Some(host) = Host::shared(&dir) {
            return Ok(Dom0::Shared(host));
        }
        let image = Image::find()?;
        crate::qemu::check_version().map_err(XenError::Qemu)?;
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let tmp = std::env::temp_dir().join(format!("nym-xen-{}-{nanos}", std::process::id()));
        out.line("nym: booting Xen 4.17 and a Linux dom0 in QEMU for this run (about 30 s; `nym dom0` keeps one up for the next runs)");
        Ok(Dom0::Private(Box::new(Booted::start(&image, &tmp, true)?)))
    }
}

/// A guest to run.
#[derive(Debug, Clone, Copy)]
pub struct Run<'a> {
    /// The domain, its image and disk as paths on this host (its `net`
    /// is whether [`Run::address`] is given).
    pub domain: config::Domain<'a>,
    /// Its address and subnet when it has a network (a vif).
    pub address: Option<Ipv4Cidr>,
    /// Host ports forwarded to guest ports.
    pub forwards: &'a [(u16, u16)],
    /// Destroy it after this long.
    pub timeout: Option<Duration>,
}

/// Refuses UDP forwards ([`XenError::UdpForward`]): dom0's relay copies
/// TCP connections only.
pub fn refuse_udp(forwards: &[crate::guest::PortForward]) -> Result<(), XenError> {
    match forwards
        .iter()
        .find(|f| f.protocol == crate::guest::Protocol::Udp)
    {
        Some(f) => Err(XenError::UdpForward(f.to_string(), f.host, f.guest)),
        None => Ok(()),
    }
}

/// The address dom0 takes on the guest's subnet: `.2` of the network
/// (what nym's monitor is to a kvm guest), or `.1` if the guest is `.2`.
pub fn bridge_address(guest: Ipv4Cidr) -> Result<Ipv4Cidr, XenError> {
    if guest.prefix > 30 {
        return Err(XenError::Subnet(guest));
    }
    let mask = u32::MAX << (32 - u32::from(guest.prefix));
    let net = u32::from(guest.addr) & mask;
    let mine = if net + 2 == u32::from(guest.addr) {
        net + 1
    } else {
        net + 2
    };
    Ok(Ipv4Cidr {
        addr: Ipv4Addr::from(mine),
        prefix: guest.prefix,
    })
}

/// Where dom0 sees a host path.
fn in_dom0(path: &Path) -> Result<PathBuf, XenError> {
    let abs = std::fs::canonicalize(path)
        .map_err(|e| XenError::Io(format!("{}: {e}", path.display())))?;
    Ok(Path::new("/host").join(abs.strip_prefix("/").unwrap_or(&abs)))
}

/// Removes a run's forwards from QEMU when the run ends, however.
struct Forwards<'a> {
    host: &'a Host,
    ports: Vec<u16>,
}

impl Drop for Forwards<'_> {
    fn drop(&mut self) {
        for p in &self.ports {
            self.host.unforward(*p);
        }
    }
}

/// Runs `r` on `dom0` until the guest ends or `stop` is used; the
/// guest's exit status (130 when stopped, [`EXIT_TIMEOUT`] after
/// `--timeout`).
pub fn run(
    mut dom0: Dom0,
    r: &Run,
    console: &mut dyn Write,
    out: &Out,
    stop: &Stop,
) -> Result<u8, XenError> {
    if let Some(&(port, _)) = r.forwards.iter().find(|(h, _)| *h == dom0::AGENT_PORT) {
        return Err(XenError::AgentPort(port));
    }
    let host = match &mut dom0 {
        Dom0::Shared(h) => h.clone(),
        Dom0::Private(b) => match b.wait_ready(&|| stop.requested()) {
            Ok(_) => b.host.clone(),
            Err(XenError::Stopped) => return Ok(130),
            Err(e) => return Err(e),
        },
    };
    let d = &r.domain;
    let cfg_path = d.image.with_extension("dom0.cfg");
    let image = in_dom0(d.image)?;
    let disk = d.disk.map(in_dom0).transpose()?;
    let text = config::xl_config(&config::Domain {
        image: &image,
        net: r.address.is_some(),
        disk: disk.as_deref(),
        ..*d
    })?;
    std::fs::write(&cfg_path, text)
        .map_err(|e| XenError::Io(format!("writing {}: {e}", cfg_path.display())))?;
    let mut forwards = Forwards {
        host: &host,
        ports: Vec::new(),
    };
    let mut request = Request {
        name: d.name.to_owned(),
        cfg: in_dom0(&cfg_path)?.display().to_string(),
        bridge: None,
        forwards: Vec::new(),
        timeout: r.timeout.map_or(0, |t| t.as_secs().max(1)),
        before: std::env::var("NYM_XEN_BEFORE").ok(),
    };
    if let Some(guest) = r.address {
        request.bridge = Some(bridge_address(guest)?.to_string());
        for &(h, g) in r.forwards {
            host.forward(h)?;
            forwards.ports.push(h);
            request.forwards.push((h, guest.addr, g));
        }
    }
    let times = std::env::var_os("NYM_XEN_TRACE").is_some();
    let asked = Instant::now();
    let mut session = Session::start(host.ctl, &request)?;
    let mut logs: Vec<String> = Vec::new();
    let mut created: Option<Instant> = None;
    let mut started = false;
    let mut status: Option<u8> = None;
    loop {
        if stop.requested() {
            // Dropping the session closes the connection: dom0 destroys
            // the domain.
            return Ok(130);
        }
        if created.is_some_and(|t| !started && t.elapsed() > START_WITHIN) {
            return Err(XenError::NoStart);
        }
        let Some(event) = session.next_event()? else {
            continue;
        };
        if times {
            out.line(&format!("nym: xen: {event:?}"));
        }
        match event {
            Event::Queued => {
                out.line("nym: another guest runs on this dom0; this one waits its turn")
            }
            Event::Created(id) => {
                created = Some(Instant::now());
                if times {
                    out.line(&format!(
                        "nym: xen: domain {id} created {:.2} s after the request",
                        asked.elapsed().as_secs_f64()
                    ));
                }
            }
            Event::Log(l) => {
                if times {
                    out.line(&format!("nym: xen: {l}"));
                }
                logs.push(l)
            }
            Event::Failed(why) => {
                logs.push(why);
                return Err(XenError::Create(logs.join("\n")));
            }
            Event::Console(text) => {
                if !started {
                    started = text.ends_with("nym: guest started");
                    if started && times {
                        if let Some(t) = created {
                            out.line(&format!(
                                "nym: xen: first guest line {:.2} s after xl create",
                                t.elapsed().as_secs_f64()
                            ));
                        }
                    }
                    continue;
                }
                if let Some(s) = text.strip_prefix(crate::qemu::STATUS_MARKER) {
                    status = Some(s.trim().parse::<i32>().map_or(1, |s| s.clamp(0, 255)) as u8);
                    continue;
                }
                if let Some(fault) = text.strip_prefix("nym-fault: ") {
                    out.line(&format!(
                        "nym: {}",
                        crate::qemu::fault_report(d.image, fault)
                    ));
                    continue;
                }
                let _ = console.write_all(text.as_bytes());
                let _ = console.write_all(b"\n");
                let _ = console.flush();
            }
            Event::Ended(reason) => {
                return match (status, reason.as_str()) {
                    (Some(s), _) => Ok(s),
                    (None, "timeout") => {
                        out.line(&format!(
                            "nym: the guest did not shut down within {} s: its domain was destroyed",
                            request.timeout
                        ));
                        Ok(EXIT_TIMEOUT)
                    }
                    (None, other) => Err(XenError::NoStatus(other.to_owned())),
                };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cidr(s: &str) -> Ipv4Cidr {
        s.parse().unwrap()
    }

    #[test]
    fn dom0_takes_an_address_beside_the_guest() {
        assert_eq!(
            bridge_address(cidr("10.0.2.15/24")).unwrap(),
            cidr("10.0.2.2/24")
        );
        assert_eq!(
            bridge_address(cidr("10.0.0.2/24")).unwrap(),
            cidr("10.0.0.1/24")
        );
        assert_eq!(
            bridge_address(cidr("192.168.5.77/16")).unwrap(),
            cidr("192.168.0.2/16")
        );
        assert!(bridge_address(cidr("10.0.0.1/31")).is_err());
    }

    #[test]
    fn dom0_sees_host_files_under_host() {
        let here = std::env::current_dir().unwrap();
        let seen = in_dom0(&here).unwrap();
        assert!(seen.starts_with("/host/"), "{}", seen.display());
        assert!(seen.ends_with(here.strip_prefix("/").unwrap()));
        assert!(in_dom0(Path::new("/no/such/file")).is_err());
    }
}
