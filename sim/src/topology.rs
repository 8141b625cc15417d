//! The topology file: the nodes of a simulation, the network between them,
//! what happens to it and when, and what must hold.
//!
//! It is TOML, beside the graphs it names (each node is an existing nym
//! project, run as its unikernel would run: its graph checked for `kvm`):
//!
//! ```toml
//! seed  = 1          # the default seed (`--seed` overrides it)
//! until = "10m"      # how much simulated time a run lasts (`--until`)
//!
//! [nodes.server]
//! project = "../echo"                  # relative to this file
//! keys    = { ipv4 = "10.0.0.1/24" }   # the graph's keys
//!
//! [nodes.client]
//! project = "../echo"
//! keys    = { ipv4 = "10.0.0.2/24" }
//!
//! [network]              # every pair of nodes without a [[links]] entry
//! latency = "1ms"
//!
//! [[links]]              # frames between two nodes, each way
//! between   = ["server", "client"]
//! latency   = "20ms"
//! jitter    = "5ms"      # up to this much more, chosen per frame
//! kbps      = 10000      # bandwidth: frames queue behind each other
//! loss      = 10         # percent of frames lost
//! reorder   = 5          # percent held back behind later frames
//! duplicate = 1          # percent delivered twice
//!
//! [[events]]
//! at        = "30s"
//! partition = [["server"], ["client"]]   # or heal = true
//! [[events]]
//! at = "40s"
//! heal = true
//! # also: link_down = ["a", "b"], link_up = ["a", "b"],
//! #       crash = "a", restart = "a" (persistent devices kept, memory lost),
//! #       skew = "a", by = "+5s" (its wall clock jumps; "-5s" goes back)
//!
//! [[properties]]
//! name    = "the client reaches the server"
//! request = { from = "client.stack", to = "10.0.0.1:7", send = "ping", expect = "ping", at = "1s", within = "2s" }
//! [[properties]]
//! console = { node = "server", prints = "listening", within = "1s" }
//! [[properties]]
//! same    = { key = "runs", stores = ["a.store", "b.store"], at = "1min" }
//! ```
//!
//! Every name is checked against the nodes before anything runs; a mistake
//! is an error naming the file, the item and what is wrong.
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A topology file, read and checked.
#[derive(Debug, Clone)]
pub struct Topology {
    /// Where it was read from.
    pub path: PathBuf,
    /// The seed when `--seed` is not given.
    pub seed: u64,
    /// How much simulated time a run lasts when `--until` is not given.
    pub until: Duration,
    /// The nodes, in name order (the order their consoles and devices are
    /// made in, so a run does not depend on the file's order).
    pub nodes: Vec<Node>,
    /// The link between pairs that have no entry of their own.
    pub network: Link,
    /// Links of their own, by the pair of node indices (smaller first).
    pub links: BTreeMap<(usize, usize), Link>,
    /// What happens, in time order (ties in file order).
    pub events: Vec<Event>,
    /// What must hold.
    pub properties: Vec<Property>,
}

/// One node: a project and its keys.
#[derive(Debug, Clone)]
pub struct Node {
    /// Its name in the topology.
    pub name: String,
    /// The project's folder.
    pub project: PathBuf,
    /// The graph's keys, as `--name=value` arguments.
    pub keys: Vec<String>,
}

/// How frames cross between two nodes.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Link {
    /// Fixed delay.
    pub latency: Duration,
    /// Up to this much more, per frame.
    pub jitter: Duration,
    /// Bandwidth in kbit/s (0: unlimited).
    pub kbps: u64,
    /// Percent of frames lost.
    pub loss: u8,
    /// Percent of frames held back behind later ones.
    pub reorder: u8,
    /// Percent of frames delivered twice.
    pub duplicate: u8,
}

/// Something that happens at a simulated time.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// When, from the start of the run.
    pub at: Duration,
    /// What.
    pub action: Action,
}

/// What an [`Event`] does.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Frames cross no boundary between these groups (node indices).
    Partition(Vec<Vec<usize>>),
    /// Every partition ends.
    Heal,
    /// The link between two nodes carries nothing.
    LinkDown(usize, usize),
    /// It carries frames again.
    LinkUp(usize, usize),
    /// The node stops: jobs and tasks dropped, memory lost.
    Crash(usize),
    /// It starts again from its graph; its persistent devices kept.
    Restart(usize),
    /// Its wall clock jumps by this many nanoseconds (negative: back).
    Skew(usize, i64),
}

/// Something that must hold, with the name a violation reports.
#[derive(Debug, Clone, PartialEq)]
pub struct Property {
    /// Its name (given, or made from what it checks).
    pub name: String,
    /// What it checks.
    pub check: Check,
}

/// What a [`Property`] checks.
#[derive(Debug, Clone, PartialEq)]
pub enum Check {
    /// The node's console prints a line holding `text` within `within` of
    /// the start (of the run, or of `after`).
    Console {
        /// The node.
        node: usize,
        /// The text.
        text: String,
        /// From when.
        after: Duration,
        /// How long it may take.
        within: Duration,
    },
    /// From `at`, a TCP connection through a node's stack to `to` that
    /// sends `send` gets back `expect` within `within`; retried until then.
    Request {
        /// The node whose stack connects.
        node: usize,
        /// The stack's device label in that node's graph.
        device: String,
        /// The address.
        to: std::net::SocketAddrV4,
        /// What to send.
        send: String,
        /// What the answer must hold.
        expect: String,
        /// When to start.
        at: Duration,
        /// How long it may take.
        within: Duration,
    },
    /// At `at`, `key` holds the same value in every store named.
    Same {
        /// The key.
        key: String,
        /// The stores: node index and device label.
        stores: Vec<(usize, String)>,
        /// When.
        at: Duration,
    },
}

/// Why a topology file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TopologyError {
    /// It cannot be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// It is not a topology: bad TOML, an unknown field, a wrong type.
    #[error("{}: {message}", path.display())]
    Syntax {
        /// The file.
        path: PathBuf,
        /// The parser's message, with the line and column.
        message: String,
    },
    /// It parses, but something in it is wrong.
    #[error("{}: {what}: {message}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The item, `events[2]`.
        what: String,
        /// What is wrong.
        message: String,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    seed: Option<u64>,
    until: Option<String>,
    nodes: BTreeMap<String, FileNode>,
    network: Option<FileLink>,
    #[serde(default)]
    links: Vec<FileLink>,
    #[serde(default)]
    events: Vec<FileEvent>,
    #[serde(default)]
    properties: Vec<FileProperty>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileNode {
    project: String,
    #[serde(default)]
    keys: BTreeMap<String, toml::Value>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileLink {
    between: Option<[String; 2]>,
    latency: Option<String>,
    jitter: Option<String>,
    kbps: Option<u64>,
    loss: Option<u8>,
    reorder: Option<u8>,
    duplicate: Option<u8>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileEvent {
    at: String,
    partition: Option<Vec<Vec<String>>>,
    heal: Option<bool>,
    link_down: Option<[String; 2]>,
    link_up: Option<[String; 2]>,
    crash: Option<String>,
    restart: Option<String>,
    skew: Option<String>,
    by: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileProperty {
    name: Option<String>,
    console: Option<FileConsole>,
    request: Option<FileRequest>,
    same: Option<FileSame>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConsole {
    node: String,
    prints: String,
    after: Option<String>,
    within: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileRequest {
    from: String,
    to: String,
    send: String,
    expect: String,
    at: Option<String>,
    within: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSame {
    key: String,
    stores: Vec<String>,
    at: String,
}

/// A duration as the graph language writes it (`500ms`, `2s`, `1min`),
/// and `10m` for minutes as `--until` is usually written.
pub fn duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let spelled = match text.strip_suffix('m') {
        Some(n) if !n.ends_with(['m', 'u', 'n']) && !n.is_empty() => format!("{n}min"),
        _ => text.to_owned(),
    };
    libos::value::parse_duration(&spelled)
        .map_err(|_| format!("`{text}` is not a duration (500ms, 2s, 10m, 1h)"))
}

impl Topology {
    /// Reads and checks the topology at `path`.
    pub fn load(path: &Path) -> Result<Topology, TopologyError> {
        let text = std::fs::read_to_string(path).map_err(|source| TopologyError::Read {
            path: path.to_owned(),
            source,
        })?;
        Topology::parse(path, &text)
    }

    /// Checks the topology `text`, read from `path` (node projects are
    /// relative to its folder).
    pub fn parse(path: &Path, text: &str) -> Result<Topology, TopologyError> {
        let file: File = toml::from_str(text).map_err(|e| TopologyError::Syntax {
            path: path.to_owned(),
            message: e.to_string().trim_end().to_owned(),
        })?;
        let invalid = |what: String, message: String| TopologyError::Invalid {
            path: path.to_owned(),
            what,
            message,
        };
        let base = path.parent().unwrap_or(Path::new("."));
        if file.nodes.is_empty() {
            return Err(invalid("nodes".into(), "a simulation needs a node".into()));
        }
        let names: Vec<String> = file.nodes.keys().cloned().collect();
        let index = |what: &str, name: &str| {
            names.iter().position(|n| n == name).ok_or_else(|| {
                invalid(
                    what.to_owned(),
                    format!("no node `{name}` (nodes: {})", names.join(", ")),
                )
            })
        };
        // `node.device`, as properties name devices.
        let device = |what: &str, text: &str| match text.split_once('.') {
            Some((n, d)) if !d.is_empty() => Ok((index(what, n)?, d.to_owned())),
            _ => Err(invalid(
                what.to_owned(),
                format!("`{text}` is not NODE.DEVICE (`server.store`)"),
            )),
        };
        let time = |what: &str, text: &str| duration(text).map_err(|m| invalid(what.to_owned(), m));
        // A time that may be left out: from the start.
        let since = |what: &str, text: &Option<String>| {
            text.as_deref()
                .map_or(Ok(Duration::ZERO), |t| time(what, t))
        };
        let mut nodes = Vec::new();
        for (name, n) in &file.nodes {
            let mut keys = Vec::new();
            for (k, v) in &n.keys {
                let text = match v {
                    toml::Value::String(s) => s.clone(),
                    toml::Value::Integer(i) => i.to_string(),
                    toml::Value::Boolean(b) => b.to_string(),
                    other => {
                        return Err(invalid(
                            format!("nodes.{name}.keys.{k}"),
                            format!("a key is a string, a number or a boolean, not {other}"),
                        ))
                    }
                };
                keys.push(format!("--{k}={text}"));
            }
            nodes.push(Node {
                name: name.clone(),
                project: base.join(&n.project),
                keys,
            });
        }
        let link = |what: &str, l: &FileLink| -> Result<Link, TopologyError> {
            let percent = |field: &str, v: Option<u8>| match v {
                Some(p) if p > 100 => Err(invalid(
                    format!("{what}.{field}"),
                    format!("{p} is not a percentage (0 to 100)"),
                )),
                p => Ok(p.unwrap_or(0)),
            };
            Ok(Link {
                latency: l
                    .latency
                    .as_deref()
                    .map_or(Ok(Duration::ZERO), |t| time(what, t))?,
                jitter: l
                    .jitter
                    .as_deref()
                    .map_or(Ok(Duration::ZERO), |t| time(what, t))?,
                kbps: l.kbps.unwrap_or(0),
                loss: percent("loss", l.loss)?,
                reorder: percent("reorder", l.reorder)?,
                duplicate: percent("duplicate", l.duplicate)?,
            })
        };
        let network = match &file.network {
            Some(l) if l.between.is_some() => {
                return Err(invalid(
                    "network".into(),
                    "the default link joins every pair: `between` belongs in [[links]]".into(),
                ))
            }
            Some(l) => link("network", l)?,
            None => Link::default(),
        };
        let pair = |what: &str, [a, b]: &[String; 2]| -> Result<(usize, usize), TopologyError> {
            let (a, b) = (index(what, a)?, index(what, b)?);
            if a == b {
                return Err(invalid(what.to_owned(), "a link joins two nodes".into()));
            }
            Ok((a.min(b), a.max(b)))
        };
        let mut links = BTreeMap::new();
        for (i, l) in file.links.iter().enumerate() {
            let what = format!("links[{i}]");
            let Some(between) = &l.between else {
                return Err(invalid(
                    what,
                    "a link names its two nodes: `between`".into(),
                ));
            };
            let p = pair(&what, between)?;
            if links.insert(p, link(&what, l)?).is_some() {
                return Err(invalid(what, "these two nodes already have a link".into()));
            }
        }
        let mut events = Vec::new();
        for (i, e) in file.events.iter().enumerate() {
            let what = format!("events[{i}]");
            let mut actions = Vec::new();
            if let Some(groups) = &e.partition {
                let groups = groups
                    .iter()
                    .map(|g| g.iter().map(|n| index(&what, n)).collect())
                    .collect::<Result<Vec<Vec<usize>>, _>>()?;
                actions.push(Action::Partition(groups));
            }
            if e.heal == Some(true) {
                actions.push(Action::Heal);
            }
            if let Some(p) = &e.link_down {
                let (a, b) = pair(&what, p)?;
                actions.push(Action::LinkDown(a, b));
            }
            if let Some(p) = &e.link_up {
                let (a, b) = pair(&what, p)?;
                actions.push(Action::LinkUp(a, b));
            }
            if let Some(n) = &e.crash {
                actions.push(Action::Crash(index(&what, n)?));
            }
            if let Some(n) = &e.restart {
                actions.push(Action::Restart(index(&what, n)?));
            }
            match (&e.skew, &e.by) {
                (Some(n), Some(by)) => {
                    let (sign, amount) = match by.strip_prefix('-') {
                        Some(rest) => (-1, rest),
                        None => (1, by.strip_prefix('+').unwrap_or(by)),
                    };
                    let d = time(&what, amount)?;
                    let ns = i64::try_from(d.as_nanos()).map_err(|_| {
                        invalid(what.clone(), format!("a skew of {by} is too large"))
                    })?;
                    actions.push(Action::Skew(index(&what, n)?, sign * ns));
                }
                (None, None) => {}
                _ => {
                    return Err(invalid(
                        what,
                        "a skew names its node and how much: `skew = \"a\"`, `by = \"+5s\"`".into(),
                    ))
                }
            }
            let at = time(&what, &e.at)?;
            match actions.len() {
                1 => events.push(Event {
                    at,
                    action: actions.remove(0),
                }),
                0 => return Err(invalid(what, "an event says what happens: partition, heal, link_down, link_up, crash, restart or skew".into())),
                _ => return Err(invalid(what, "one event does one thing; split it".into())),
            }
        }
        events.sort_by_key(|e| e.at);
        let mut properties = Vec::new();
        for (i, p) in file.properties.iter().enumerate() {
            let what = format!("properties[{i}]");
            let mut checks = Vec::new();
            if let Some(c) = &p.console {
                checks.push(Check::Console {
                    node: index(&what, &c.node)?,
                    text: c.prints.clone(),
                    after: since(&what, &c.after)?,
                    within: time(&what, &c.within)?,
                });
            }
            if let Some(r) = &p.request {
                let (node, device) = device(&what, &r.from)?;
                let to = r.to.parse().map_err(|_| {
                    invalid(what.clone(), format!("`{}` is not ADDRESS:PORT", r.to))
                })?;
                checks.push(Check::Request {
                    node,
                    device,
                    to,
                    send: r.send.clone(),
                    expect: r.expect.clone(),
                    at: since(&what, &r.at)?,
                    within: time(&what, &r.within)?,
                });
            }
            if let Some(s) = &p.same {
                if s.stores.len() < 2 {
                    return Err(invalid(what, "`same` compares two stores or more".into()));
                }
                checks.push(Check::Same {
                    key: s.key.clone(),
                    stores: s
                        .stores
                        .iter()
                        .map(|t| device(&what, t))
                        .collect::<Result<_, _>>()?,
                    at: time(&what, &s.at)?,
                });
            }
            let check = match checks.len() {
                1 => checks.remove(0),
                0 => {
                    return Err(invalid(
                        what,
                        "a property checks something: console, request or same".into(),
                    ))
                }
                _ => {
                    return Err(invalid(
                        what,
                        "one property checks one thing; split it".into(),
                    ))
                }
            };
            let name = p.name.clone().unwrap_or_else(|| describe(&check, &names));
            properties.push(Property { name, check });
        }
        let until = match &file.until {
            Some(t) => time("until", t)?,
            None => Duration::from_secs(60),
        };
        Ok(Topology {
            path: path.to_owned(),
            seed: file.seed.unwrap_or(1),
            until,
            nodes,
            network,
            links,
            events,
            properties,
        })
    }

    /// The link between nodes `a` and `b`.
    pub fn link(&self, a: usize, b: usize) -> Link {
        let key = (a.min(b), a.max(b));
        self.links.get(&key).copied().unwrap_or(self.network)
    }
}

/// A property's name made from what it checks.
fn describe(check: &Check, names: &[String]) -> String {
    match check {
        Check::Console { node, text, .. } => format!("{} prints {text:?}", names[*node]),
        Check::Request { node, to, .. } => format!("{} reaches {to}", names[*node]),
        Check::Same { key, stores, .. } => {
            let stores: Vec<String> = stores
                .iter()
                .map(|(n, d)| format!("{}.{d}", names[*n]))
                .collect();
            format!("{key:?} is the same in {}", stores.join(", "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Topology, String> {
        Topology::parse(Path::new("/t/sim.toml"), text).map_err(|e| e.to_string())
    }

    const TWO: &str = r#"
        [nodes.b]
        project = "echo"
        keys = { ipv4 = "10.0.0.2/24", port = 7 }
        [nodes.a]
        project = "echo"
    "#;

    #[test]
    fn nodes_are_in_name_order_with_their_keys_as_arguments() {
        let t = parse(TWO).unwrap();
        let names: Vec<&str> = t.nodes.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
        assert_eq!(t.nodes[1].keys, ["--ipv4=10.0.0.2/24", "--port=7"]);
        assert_eq!(t.nodes[0].project, Path::new("/t/echo"));
        assert_eq!((t.seed, t.until), (1, Duration::from_secs(60)));
    }

    #[test]
    fn links_events_and_properties_are_read_and_events_sorted() {
        let t = parse(&format!(
            r#"until = "10m"
            {TWO}
            [[links]]
            between = ["b", "a"]
            latency = "20ms"
            loss = 10
            [[events]]
            at = "2s"
            heal = true
            [[events]]
            at = "1s"
            partition = [["a"], ["b"]]
            [[events]]
            at = "3s"
            skew = "b"
            by = "-5s"
            [[properties]]
            request = {{ from = "b.stack", to = "10.0.0.1:7", send = "x", expect = "x", within = "1s" }}
            "#
        ))
        .unwrap();
        assert_eq!(t.until, Duration::from_secs(600));
        assert_eq!(t.link(1, 0).loss, 10);
        assert_eq!(t.link(0, 1).latency, Duration::from_millis(20));
        let actions: Vec<&Action> = t.events.iter().map(|e| &e.action).collect();
        assert_eq!(
            actions,
            [
                &Action::Partition(vec![vec![0], vec![1]]),
                &Action::Heal,
                &Action::Skew(1, -5_000_000_000)
            ]
        );
        assert_eq!(t.properties[0].name, "b reaches 10.0.0.1:7");
    }

    #[test]
    fn mistakes_name_the_item_and_what_is_wrong() {
        let cases = [
            ("", "nodes"),
            (
                &format!("{TWO}\n[[events]]\nat = \"1s\"\ncrash = \"c\""),
                "events[0]: no node `c` (nodes: a, b)",
            ),
            (
                &format!("{TWO}\n[[events]]\nat = \"1s\"\ncrash = \"a\"\nrestart = \"a\""),
                "one event does one thing",
            ),
            (
                &format!("{TWO}\n[[events]]\nat = \"soon\"\nheal = true"),
                "`soon` is not a duration",
            ),
            (
                &format!("{TWO}\n[[links]]\nbetween = [\"a\", \"a\"]"),
                "links[0]: a link joins two nodes",
            ),
            (
                &format!("{TWO}\n[[links]]\nbetween = [\"a\", \"b\"]\nloss = 101"),
                "links[0].loss: 101 is not a percentage",
            ),
            (
                &format!("{TWO}\n[[properties]]\nsame = {{ key = \"k\", stores = [\"a\"], at = \"1s\" }}"),
                "compares two stores or more",
            ),
            (
                &format!("{TWO}\n[[properties]]\nsame = {{ key = \"k\", stores = [\"a\", \"b\"], at = \"1s\" }}"),
                "`a` is not NODE.DEVICE",
            ),
            (&format!("{TWO}\nspeed = 3"), "unknown field `speed`"),
        ];
        for (text, want) in cases {
            let err = parse(text).unwrap_err();
            assert!(err.contains(want), "{err:?} should say {want:?}");
            assert!(err.starts_with("/t/sim.toml"), "{err}");
        }
    }

    #[test]
    fn minutes_are_written_m_or_min() {
        assert_eq!(duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(duration("10min"), Ok(Duration::from_secs(600)));
        assert_eq!(duration("5ms"), Ok(Duration::from_millis(5)));
        assert!(duration("m").is_err());
    }
}
