//! The methods of each device kind's trait, as data: what a session may
//! call on a live device (`store.get("k")` in `nym repl` or a notebook
//! cell), with parameters the checker matches arguments against, and, for
//! a method that cannot be called from a session, why not.
//!
//! The table follows the traits in `libos` (a test holds every trait
//! method to an entry); `libos::call` runs the callable ones on a device.
use crate::catalog::{Default, Param};
use crate::types::{Kind, ValueType};

/// One method of a device kind's trait.
#[derive(Debug, Clone, Copy)]
pub struct Method {
    /// The trait that declares it (`KvRo` for `get`, which a `Kv` has too).
    pub kind: Kind,
    /// Its name.
    pub name: &'static str,
    /// Its parameters as a session writes them (a buffer to fill is asked
    /// as a length), in positional order.
    pub params: &'static [Param],
    /// What it answers.
    pub returns: &'static str,
    /// One line of documentation.
    pub doc: &'static str,
    /// Why a session cannot call it, for those it cannot.
    pub not_callable: Option<&'static str>,
}

impl PartialEq for Method {
    /// Methods are identified by their trait and name.
    fn eq(&self, other: &Self) -> bool {
        self.kind == other.kind && self.name == other.name
    }
}

impl Method {
    /// The signature with where each parameter's `name: type` is in it,
    /// for signature help.
    pub fn signature_with_params(&self) -> (String, Vec<std::ops::Range<usize>>) {
        if self.not_callable.is_some() {
            // Its parameters are the trait's, which a session cannot give.
            return (format!("{}::{}(…)", self.kind, self.name), Vec::new());
        }
        crate::catalog::signature(
            format_args!("{}::{}", self.kind, self.name),
            self.params,
            self.returns,
        )
    }

    /// `Kv::set(key: string, value: string) -> ()`
    pub fn signature(&self) -> String {
        self.signature_with_params().0
    }
}

const KEY: Param = Param::value("key", ValueType::Str, "the key");
const SECTOR: Param =
    Param::value("sector", ValueType::Int, "the first sector").within(0, i64::MAX);

const fn method(
    kind: Kind,
    name: &'static str,
    params: &'static [Param],
    returns: &'static str,
    doc: &'static str,
) -> Method {
    Method {
        kind,
        name,
        params,
        returns,
        doc,
        not_callable: None,
    }
}

const fn uncallable(
    kind: Kind,
    name: &'static str,
    doc: &'static str,
    why: &'static str,
) -> Method {
    Method {
        kind,
        name,
        params: &[],
        returns: "()",
        doc,
        not_callable: Some(why),
    }
}

/// Every method of every device kind's trait.
pub static METHODS: &[Method] = &[
    method(
        Kind::Console,
        "write",
        &[Param::value("text", ValueType::Str, "the text, as it is")],
        "()",
        "Writes text to the console.",
    ),
    method(
        Kind::Console,
        "log",
        &[Param::value(
            "line",
            ValueType::Str,
            "the line, without its newline",
        )],
        "()",
        "Writes a line to the console.",
    ),
    method(
        Kind::MonoClock,
        "elapsed_ns",
        &[],
        "int",
        "Nanoseconds since the clock started.",
    ),
    method(
        Kind::WallClock,
        "now_unix_ns",
        &[],
        "int",
        "Nanoseconds since the Unix epoch.",
    ),
    method(
        Kind::Time,
        "sleep",
        &[Param::value(
            "duration",
            ValueType::Duration,
            "how long, `500ms`",
        )],
        "()",
        "Waits for a duration (on this device: a scaled sleeper sleeps shorter).",
    ),
    method(
        Kind::Random,
        "fill",
        &[Param::value("len", ValueType::Int, "how many bytes")
            .or(Default::Int(16))
            .within(1, 4096)],
        "bytes",
        "Random bytes.",
    ),
    method(
        Kind::Random,
        "next_u64",
        &[],
        "int",
        "A random 64-bit number.",
    ),
    method(Kind::KvRo, "get", &[KEY], "bytes", "The value of a key."),
    method(
        Kind::KvRo,
        "list",
        &[
            Param::value("prefix", ValueType::Str, "only keys starting with it")
                .or(Default::Str("")),
        ],
        "list",
        "The keys starting with a prefix, in order.",
    ),
    method(
        Kind::Kv,
        "set",
        &[KEY, Param::value("value", ValueType::Str, "the value")],
        "()",
        "Sets a key's value.",
    ),
    method(Kind::Kv, "remove", &[KEY], "()", "Removes a key."),
    method(
        Kind::Block,
        "info",
        &[],
        "info",
        "The sector size, the number of sectors, whether it is writable.",
    ),
    method(
        Kind::Block,
        "read",
        &[
            SECTOR,
            Param::value("count", ValueType::Int, "how many sectors")
                .or(Default::Int(1))
                .within(1, 64),
        ],
        "bytes",
        "Reads whole sectors.",
    ),
    method(
        Kind::Block,
        "write",
        &[
            SECTOR,
            Param::value(
                "data",
                ValueType::Str,
                "whole sectors of it (a multiple of the sector size)",
            ),
        ],
        "()",
        "Writes whole sectors.",
    ),
    method(
        Kind::Block,
        "flush",
        &[],
        "()",
        "Makes the writes so far durable.",
    ),
    method(
        Kind::Netif,
        "mac",
        &[],
        "text",
        "The interface's Ethernet address.",
    ),
    method(
        Kind::Netif,
        "mtu",
        &[],
        "int",
        "The largest frame payload it carries.",
    ),
    method(
        Kind::Netif,
        "reliable",
        &[],
        "bool",
        "Whether it never loses a frame.",
    ),
    uncallable(
        Kind::Netif,
        "send",
        "Sends one Ethernet frame.",
        "it takes a raw Ethernet frame, which cannot be written as a literal",
    ),
    uncallable(
        Kind::Netif,
        "recv",
        "Receives one Ethernet frame.",
        "it would take a frame away from the running stack",
    ),
    uncallable(
        Kind::Stack,
        "listen",
        "Listens on a TCP port.",
        "it answers a listener, which a session cannot hold (a job listens)",
    ),
    uncallable(
        Kind::Stack,
        "connect",
        "Opens a TCP connection.",
        "it answers a connection (a `Flow`), which a session cannot hold",
    ),
    uncallable(
        Kind::Stack,
        "udp",
        "Binds a UDP socket.",
        "it answers a socket, which a session cannot hold",
    ),
    method(
        Kind::Stack,
        "describe",
        &[],
        "lines",
        "The stack's state: address, listeners, connections.",
    ),
    uncallable(
        Kind::Stack,
        "record_changes",
        "Starts recording the stack's neighbours and sockets.",
        "a session records them itself: `:history NAME` reads them",
    ),
    uncallable(
        Kind::Flow,
        "read",
        "Reads bytes.",
        "a flow is a connection a job holds; no binding is one",
    ),
    uncallable(
        Kind::Flow,
        "write",
        "Writes bytes.",
        "a flow is a connection a job holds; no binding is one",
    ),
    uncallable(
        Kind::Flow,
        "write_all",
        "Writes all the bytes.",
        "a flow is a connection a job holds; no binding is one",
    ),
    uncallable(
        Kind::Flow,
        "close",
        "Closes the connection.",
        "a flow is a connection a job holds; no binding is one",
    ),
];

/// The methods a device of `kind` has (a `Kv` has the `KvRo` ones too).
pub fn of(kind: Kind) -> impl Iterator<Item = &'static Method> {
    METHODS.iter().filter(move |m| kind.fits(m.kind))
}

/// Method `name` of a device of `kind`.
pub fn lookup(kind: Kind, name: &str) -> Option<&'static Method> {
    of(kind).find(|m| m.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The trait's methods as libos declares them, read from its source.
    fn trait_methods(file: &str, name: &str) -> Vec<String> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../libos/src")
            .join(file);
        let text = std::fs::read_to_string(&path).unwrap();
        let parsed = syn::parse_file(&text).unwrap();
        parsed
            .items
            .iter()
            .find_map(|item| match item {
                syn::Item::Trait(t) if t.ident == name => Some(
                    t.items
                        .iter()
                        .filter_map(|i| match i {
                            syn::TraitItem::Fn(f) => Some(f.sig.ident.to_string()),
                            _ => None,
                        })
                        .collect(),
                ),
                _ => None,
            })
            .unwrap_or_else(|| panic!("no trait {name} in {file}"))
    }

    /// Every method of every device trait has its entry, and no entry
    /// names a method the trait lacks.
    #[test]
    fn the_table_holds_every_method_of_every_device_trait() {
        let traits = [
            (Kind::Console, "console.rs"),
            (Kind::MonoClock, "clock.rs"),
            (Kind::WallClock, "clock.rs"),
            (Kind::Time, "time.rs"),
            (Kind::Random, "random.rs"),
            (Kind::KvRo, "kv.rs"),
            (Kind::Kv, "kv.rs"),
            (Kind::Block, "block.rs"),
            (Kind::Netif, "net.rs"),
            (Kind::Stack, "net.rs"),
            (Kind::Flow, "flow.rs"),
        ];
        for (kind, file) in traits {
            let mut declared = trait_methods(file, kind.name());
            declared.sort();
            let mut listed: Vec<String> = METHODS
                .iter()
                .filter(|m| m.kind == kind)
                .map(|m| m.name.to_owned())
                .collect();
            listed.sort();
            assert_eq!(listed, declared, "{kind}");
        }
        assert_eq!(of(Kind::Job).count(), 0);
    }

    /// What a session may call is what `libos::call` runs.
    #[test]
    fn the_callable_methods_are_what_libos_calls() {
        let mut callable: Vec<(&str, &str)> = METHODS
            .iter()
            .filter(|m| m.not_callable.is_none())
            .map(|m| (m.kind.name(), m.name))
            .collect();
        callable.sort();
        let mut runs = libos::call::CALLABLE.to_vec();
        runs.sort();
        assert_eq!(callable, runs);
    }

    #[test]
    fn a_kv_has_the_read_only_methods_too_and_signatures_read_right() {
        let kv: Vec<&str> = of(Kind::Kv).map(|m| m.name).collect();
        assert_eq!(kv, ["get", "list", "set", "remove"]);
        assert!(lookup(Kind::KvRo, "set").is_none());
        assert_eq!(
            lookup(Kind::Kv, "list").unwrap().signature(),
            "KvRo::list(prefix: string = \"\") -> list"
        );
        assert_eq!(
            lookup(Kind::Block, "read").unwrap().signature(),
            "Block::read(sector: int, count: int = 1) -> bytes"
        );
    }
}
