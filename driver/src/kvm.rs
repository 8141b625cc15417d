//! The kvm target: an image booted in nym's own monitor. What the graph
//! and the command line say about the guest (its block file, its address
//! on the monitor's link, forwarded ports, a tap, a gdb listener) becomes
//! the monitor's [`nym_hvt::Config`], with every host resource taken (ports
//! bound, tap opened) before anything is built, so a port in use is
//! reported at once.
use crate::build::{build_program, guest_cmdline, key_defaults};
use crate::guest::{PortForward, Protocol};
use crate::project::Project;
use crate::{Error, Out};
use nym_graph::check::GArg;
use nym_graph::Graph;
use nym_unix::keys::Keys;
use std::path::Path;

/// How to boot a graph's image, besides the graph.
#[derive(Debug, Default)]
pub struct Options<'a> {
    /// Key arguments, `--count 2`.
    pub key_args: &'a [String],
    /// Guest memory in bytes.
    pub mem: u64,
    /// Host ports forwarded to guest ports (TCP or UDP).
    pub forwards: &'a [PortForward],
    /// A tap device for the guest's network instead of forwards.
    pub tap: Option<&'a str>,
    /// Connections each forward has open at once (`None`:
    /// [`nym_hvt::net::MAX_CONNS`]); more wait in the host port's queue.
    pub max_conns: Option<usize>,
    /// A listener for gdb: the guest waits for it before its first instruction.
    pub gdb: Option<std::net::TcpListener>,
    /// The host file for the graph's `block::file`, instead of its own.
    pub block: Option<&'a Path>,
    /// Build the image with optimisations.
    pub release: bool,
}

/// Checks `options`, takes the host resources they name, builds the image
/// of `graph` (a debug build) and returns the monitor's configuration.
pub fn prepare(
    cwd: &Path,
    project: &Project,
    graph: &Graph,
    options: Options,
    out: &Out,
) -> Result<nym_hvt::Config, Error> {
    let cmdline = guest_cmdline(graph, options.key_args)?;
    let keys = Keys::parse(key_defaults(graph), options.key_args)?;
    let max_conns = options.max_conns.unwrap_or(nym_hvt::net::MAX_CONNS);
    let net = net_config(
        options.forwards,
        guest_ip(graph, &keys),
        options.tap,
        max_conns,
    )?;
    let block = block_file(project, graph, &keys, options.block)?;
    if let Some(b) = &block {
        create_block_file(b)?;
    }
    let image = build_program(cwd, project, graph, options.release, out)?;
    Ok(nym_hvt::Config {
        image,
        mem_size: options.mem,
        cmdline,
        block,
        seccomp: true,
        gdb: options.gdb,
        net,
        stop: None,
        trace: None,
        stats: None,
    })
}

/// The value an argument has at boot: a literal, or a key's value.
pub fn boot_value(graph: &Graph, a: &GArg, keys: &Keys) -> Option<libos::Value> {
    match a {
        GArg::Value(v) => Some(v.clone()),
        GArg::Key(k) => keys.get(&graph.keys[*k].name).cloned(),
        GArg::Node(_) => None,
    }
}

/// The host file behind the graph's `block::file`, if it has one: the
/// path it names (relative to the project), or `instead` (`--block FILE`),
/// with the size a new file gets.
pub fn block_file(
    project: &Project,
    graph: &Graph,
    keys: &Keys,
    instead: Option<&Path>,
) -> Result<Option<nym_hvt::BlockFile>, Error> {
    let Some(node) = graph.nodes.iter().find(|n| n.imp.name == "block::file") else {
        return match instead {
            Some(file) => Err(Error::NoBlock(file.to_owned())),
            None => Ok(None),
        };
    };
    let path = match (instead, boot_value(graph, &node.args[0], keys)) {
        (Some(file), _) => file.to_owned(),
        (None, Some(libos::Value::Str(p))) => project.root.join(p),
        _ => return Ok(None),
    };
    let size = match boot_value(graph, &node.args[1], keys) {
        Some(libos::Value::Int(s)) => u64::try_from(s).unwrap_or(0),
        _ => return Ok(None),
    };
    Ok(Some(nym_hvt::BlockFile { path, size }))
}

/// Creates `b`'s file with its size if it does not exist (QEMU opens, it
/// does not create), before anything is built; an existing file is left as
/// it is. The monitor's own rules, so that what it would refuse is refused
/// here first: a regular file named directly (a symbolic link is refused),
/// not locked by a running monitor, whole sectors (an empty or odd-sized
/// file is refused, never resized).
pub fn create_block_file(b: &nym_hvt::BlockFile) -> Result<(), Error> {
    // Opened, checked and locked, then closed: the lock goes with it.
    b.open().map(drop).map_err(|source| Error::BlockFile {
        path: b.path.clone(),
        source,
    })
}

/// The address the graph gives the stack over the monitor's link, if any.
pub fn guest_ip(graph: &Graph, keys: &Keys) -> Option<std::net::Ipv4Addr> {
    guest_cidr(graph, keys).map(|c| c.addr)
}

/// The address and subnet the graph gives the stack over the platform's
/// network interface (`netif::default`), if any.
pub fn guest_cidr(graph: &Graph, keys: &Keys) -> Option<libos::value::Ipv4Cidr> {
    graph.nodes.iter().find_map(|n| {
        let on_link = n.imp.name == "stack::direct"
            && matches!(n.args.first(), Some(GArg::Node(i)) if graph.nodes[*i].imp.name == "netif::default");
        match boot_value(graph, n.args.get(1)?, keys)? {
            libos::Value::Cidr(c) if on_link => Some(c),
            _ => None,
        }
    })
}

/// The guest's network: `forwards` bound on the host's loopback now (so a
/// port in use is reported before anything boots), to `guest_ip` or the
/// conventional 10.0.2.15, each TCP one with at most `max_conns`
/// connections open at once. `None` without forwards.
pub fn net_config(
    forwards: &[PortForward],
    guest_ip: Option<std::net::Ipv4Addr>,
    tap: Option<&str>,
    max_conns: usize,
) -> Result<Option<nym_hvt::NetConfig>, Error> {
    let guest_ip = guest_ip.unwrap_or(nym_hvt::abi::NET_GUEST_IP.into());
    if let Some(name) = tap {
        if !forwards.is_empty() {
            return Err(Error::TapUse(
                "its hosts reach the guest's ports directly, so -p has nothing to forward",
            ));
        }
        let fd = nym_unix::devices::tap::open_fd(name).map_err(|e| Error::Tap(e.to_string()))?;
        return Ok(Some(nym_hvt::NetConfig {
            forwards: Vec::new(),
            guest_ip,
            tap: Some(fd),
        }));
    }
    if forwards.is_empty() {
        return Ok(None);
    }
    let forwards = forwards
        .iter()
        .map(|f| {
            let listener = match f.protocol {
                Protocol::Tcp => nym_hvt::net::Listener::Tcp {
                    socket: bind_forward(f.host)?,
                    max_conns: max_conns.max(1),
                },
                Protocol::Udp => nym_hvt::net::Listener::Udp {
                    socket: bind_udp_forward(f.host)?,
                },
            };
            Ok(nym_hvt::Forward {
                listener,
                guest_port: f.guest,
            })
        })
        .collect::<Result<_, Error>>()?;
    Ok(Some(nym_hvt::NetConfig {
        forwards,
        guest_ip,
        tap: None,
    }))
}

/// Listens on 127.0.0.1:`port` for a forward to a guest; an error names
/// the port (a port in use).
pub fn bind_forward(port: u16) -> Result<std::net::TcpListener, Error> {
    std::net::TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, port))
        .map_err(|source| Error::Forward { port, source })
}

/// Binds 127.0.0.1:`port` (UDP) for a forward to a guest; an error names
/// the port and the protocol (a port in use).
pub fn bind_udp_forward(port: u16) -> Result<std::net::UdpSocket, Error> {
    std::net::UdpSocket::bind((std::net::Ipv4Addr::LOCALHOST, port)).map_err(|e| Error::Forward {
        port,
        source: std::io::Error::new(e.kind(), format!("127.0.0.1:{port}/udp: {e}")),
    })
}

/// Listens for gdb on `addr`, if given.
///
/// gdb's remote protocol reads and writes all of the guest's memory and
/// registers without authentication, so the address must be loopback
/// unless `remote` (`--gdb-allow-remote`) says the network may have it.
pub fn listen(addr: Option<&str>, remote: bool) -> Result<Option<std::net::TcpListener>, Error> {
    let Some(a) = addr else { return Ok(None) };
    let listener = std::net::TcpListener::bind(a).map_err(|source| Error::Listen {
        addr: a.to_owned(),
        source,
    })?;
    let bound = listener.local_addr().map_err(|source| Error::Listen {
        addr: a.to_owned(),
        source,
    })?;
    if !remote && !bound.ip().is_loopback() {
        return Err(Error::GdbRemote(a.to_owned()));
    }
    Ok(Some(listener))
}

/// A guest's scheduler log, collected by its monitor, as a trace: its
/// tracks (the jobs, the background tasks, the executor) and their polls,
/// wake-ups, sleeps and device calls. An event on a track the guest
/// never named keeps its id as its name.
pub fn guest_trace(log: &nym_hvt::trace::GuestLog) -> nym_unix::trace::Trace {
    use nym_hvt::abi;
    use nym_unix::trace::Event;
    let mut names: std::collections::HashMap<u64, std::sync::Arc<str>> = Default::default();
    let events = log
        .events
        .iter()
        .filter_map(|e| {
            let track = u32::try_from(e.track).ok()?;
            Some(match e.kind {
                abi::TRACE_POLL => Event::Poll {
                    track,
                    at: e.at,
                    dur: e.dur,
                },
                abi::TRACE_WAKE => Event::Wake { track, at: e.at },
                abi::TRACE_CALL => Event::Call {
                    track,
                    name: names
                        .entry(e.name)
                        .or_insert_with(|| log.name(e.name).into())
                        .clone(),
                    at: e.at,
                    dur: e.dur,
                    done: true,
                },
                _ => return None,
            })
        })
        .collect::<Vec<_>>();
    // Every id the guest named or an event uses.
    let ids = (events.iter().map(|e| e.track() as usize + 1)).fold(log.names.len(), usize::max);
    let tracks = (0..ids as u64).map(|id| log.name(id)).collect();
    nym_unix::trace::Trace::from_events(tracks, events, log.dropped)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_udp_forward_binds_a_udp_port_and_one_in_use_is_named() {
        let taken = std::net::UdpSocket::bind((std::net::Ipv4Addr::LOCALHOST, 0)).unwrap();
        let port = taken.local_addr().unwrap().port();
        let udp = |host| PortForward {
            host,
            guest: 53,
            protocol: Protocol::Udp,
        };
        let err = net_config(&[udp(port)], None, None, 64)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with(&format!(
                "cannot forward port {port}: 127.0.0.1:{port}/udp: "
            )),
            "{err}"
        );
        drop(taken);
        let net = net_config(&[udp(port)], None, None, 64).unwrap().unwrap();
        assert!(matches!(
            net.forwards[..],
            [nym_hvt::Forward {
                listener: nym_hvt::net::Listener::Udp { .. },
                guest_port: 53
            }]
        ));
        // A tap takes no forwards, UDP ones included.
        assert!(net_config(&[udp(port)], None, Some("tap0"), 64).is_err());
    }

    #[test]
    fn block_files_are_refused_before_a_build_as_the_monitor_would() {
        // No tempfile here: a directory of this process's own.
        let dir = std::env::temp_dir().join(format!("nym-block-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).unwrap();
        let file = |name: &str| nym_hvt::BlockFile {
            path: dir.join(name),
            size: 4096,
        };
        let refused = |name: &str| create_block_file(&file(name)).unwrap_err().to_string();
        create_block_file(&file("disk.img")).unwrap();
        assert_eq!(std::fs::metadata(dir.join("disk.img")).unwrap().len(), 4096);
        std::os::unix::fs::symlink("disk.img", dir.join("link.img")).unwrap();
        let err = refused("link.img");
        assert!(
            err.starts_with(&format!("block file {}", dir.join("link.img").display()))
                && err.contains("symbolic link"),
            "{err}"
        );
        std::fs::write(dir.join("empty.img"), b"").unwrap();
        assert!(refused("empty.img").contains("its size, 0 bytes"));
        assert_eq!(std::fs::metadata(dir.join("empty.img")).unwrap().len(), 0);
        // A running monitor holds its file.
        let (_held, _) = file("disk.img").open().unwrap();
        assert!(refused("disk.img").contains("another monitor is using it"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
