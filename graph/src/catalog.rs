//! The device catalog: every implementation the graph can name, as data.
//!
//! The checker, completion, hover, `nym check`'s hints, code generation,
//! the in-process runner and the documentation all read this one table.
//! Each entry names its constructor in [`libos::make`] once ([`imp!`]): the
//! generated program calls it with concrete devices ([`Implementation::rust`])
//! and the in-process runner calls the same function with trait objects
//! ([`Implementation::build`]), so the two cannot build a device two ways.
use crate::types::{Kind, Target, ValueType};
use libos::abi::{Arg, Args};
use libos::platform::{DynPlatform, MakeError};
use libos::Value;
use std::ops::Range;
use std::sync::Arc;

/// What a parameter takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamType {
    /// A device of this kind (or one that fits it).
    Device(Kind),
    /// A value of this type.
    Value(ValueType),
}

impl std::fmt::Display for ParamType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ParamType::Device(k) => write!(f, "{k}"),
            ParamType::Value(v) => f.write_str(v.name()),
        }
    }
}

/// A parameter's default, for those that have one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Default {
    /// An integer.
    Int(i64),
    /// A string.
    Str(&'static str),
}

impl Default {
    /// The default as a value.
    pub fn value(self) -> Value {
        match self {
            Default::Int(i) => Value::Int(i),
            Default::Str(s) => Value::Str(s.into()),
        }
    }
}

/// One parameter of an implementation.
#[derive(Debug, Clone, Copy)]
pub struct Param {
    /// Its name, usable as `name = value`.
    pub name: &'static str,
    /// What it takes.
    pub ty: ParamType,
    /// Its default; a parameter without one is required.
    pub default: Option<Default>,
    /// The allowed range, for integers.
    pub range: Option<(i64, i64)>,
    /// One line of documentation.
    pub doc: &'static str,
}

impl Param {
    const fn new(name: &'static str, ty: ParamType, doc: &'static str) -> Param {
        Param {
            name,
            ty,
            default: None,
            range: None,
            doc,
        }
    }

    /// A required parameter taking a value of type `ty`.
    pub const fn value(name: &'static str, ty: ValueType, doc: &'static str) -> Param {
        Param::new(name, ParamType::Value(ty), doc)
    }

    /// A required parameter taking a device of `kind`.
    pub const fn device(name: &'static str, kind: Kind, doc: &'static str) -> Param {
        Param::new(name, ParamType::Device(kind), doc)
    }

    /// The parameter, optional: `default` when not given.
    pub const fn or(self, default: Default) -> Param {
        Param {
            default: Some(default),
            ..self
        }
    }

    /// The parameter, its integers allowed from `low` to `high`.
    pub const fn within(self, low: i64, high: i64) -> Param {
        Param {
            range: Some((low, high)),
            ..self
        }
    }
}

/// Builds an implementation's device in-process: the platform, and the
/// arguments in the catalog's parameter order.
pub type Build = fn(&DynPlatform, &mut Args) -> Result<Arg, MakeError>;

/// One implementation (MirageOS: a functor).
#[derive(Clone, Copy)]
pub struct Implementation {
    /// Its name in the language, `kv::dir`.
    pub name: &'static str,
    /// The kind it provides.
    pub provides: Kind,
    /// Its parameters, in positional order.
    pub params: &'static [Param],
    /// The targets that have it.
    pub targets: &'static [Target],
    /// What to use on a target that lacks it.
    pub instead: Option<&'static str>,
    /// Documentation, first line a summary.
    pub doc: &'static str,
    /// The Rust expression that builds it in generated code: a call of its
    /// `libos::make` constructor on the platform `p`, `{param}` standing
    /// for each argument.
    pub rust: &'static str,
    /// The same constructor over trait objects, for the in-process runner.
    pub build: Build,
    /// The constructor's parameters as the catalog entry declares them
    /// (name, kind or value type), for the test that holds them to `params`.
    pub make_params: &'static [(&'static str, &'static str)],
}

impl std::fmt::Debug for Implementation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Implementation")
            .field("name", &self.name)
            .field("provides", &self.provides)
            .finish_non_exhaustive()
    }
}

impl PartialEq for Implementation {
    /// Implementations are identified by name.
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

impl Implementation {
    /// Whether `target` has this implementation.
    pub fn supports(&self, target: Target) -> bool {
        self.targets.contains(&target)
    }

    /// `kv::dir(path: string) -> Kv`
    pub fn signature(&self) -> String {
        self.signature_with_params().0
    }

    /// The signature and where each parameter's `name: type` is in it, as
    /// byte ranges (a default, ` = 1`, follows its range): signature help
    /// marks the parameter being given there.
    pub fn signature_with_params(&self) -> (String, Vec<Range<usize>>) {
        signature(self.name, self.params, self.provides)
    }

    /// The first line of the documentation.
    pub fn summary(&self) -> &'static str {
        self.doc.lines().next().unwrap_or("")
    }
}

/// `head(name: type = default, …) -> returns`, with where each
/// parameter's `name: type` is in it (see
/// [`Implementation::signature_with_params`]); device methods' too.
pub(crate) fn signature(
    head: impl std::fmt::Display,
    params: &[Param],
    returns: impl std::fmt::Display,
) -> (String, Vec<Range<usize>>) {
    let mut text = format!("{head}(");
    let mut ranges = Vec::with_capacity(params.len());
    for (i, p) in params.iter().enumerate() {
        if i > 0 {
            text.push_str(", ");
        }
        let start = text.len();
        text.push_str(&format!("{}: {}", p.name, p.ty));
        ranges.push(start..text.len());
        if let Some(d) = p.default {
            text.push_str(&format!(" = {}", d.value()));
        }
    }
    text.push_str(&format!(") -> {returns}"));
    (text, ranges)
}

/// How `imp!` takes each parameter type it names from `Args`: one function
/// per type, named as the type is (`taken::MonoClock(args)`). Every device
/// kind is listed, whether or not today's catalog has a parameter of it.
#[allow(non_snake_case, dead_code)]
mod taken {
    use libos::abi::{ArgError, Args};
    use libos::{Block, Console, MonoClock, Random, Time, WallClock};
    use libos::{Ipv4Cidr, Kv, KvRo, Netif, Stack};
    use std::sync::Arc;

    macro_rules! taken {
        ($($kind:ident -> $ty:ty = $method:ident($($arg:expr)?);)*) => {
            $(pub(super) fn $kind(a: &mut Args) -> Result<$ty, ArgError> {
                a.$method($($arg)?)
            })*
        };
    }

    taken! {
        Console -> Arc<dyn Console> = console();
        MonoClock -> Arc<dyn MonoClock> = mono_clock();
        WallClock -> Arc<dyn WallClock> = wall_clock();
        Time -> Arc<dyn Time> = time();
        Random -> Arc<dyn Random> = random();
        KvRo -> Arc<dyn KvRo> = kv_ro();
        Kv -> Arc<dyn Kv> = kv();
        Block -> Arc<dyn Block> = block();
        Netif -> Arc<dyn Netif> = netif();
        Stack -> Arc<dyn Stack> = stack();
        Int -> i64 = int("i64");
        Str -> String = string();
        Cidr -> Ipv4Cidr = cidr();
    }
}

/// One catalog entry whose device `libos::make::$make` builds, from its
/// parameters `$arg: $ty` in order: the generated call and the in-process
/// constructor both come from this one line.
macro_rules! imp {
    (
        $name:literal -> $kind:ident,
        params: [$($param:expr),* $(,)?],
        targets: $targets:expr,
        instead: $instead:expr,
        doc: $doc:literal,
        make: $make:ident($($arg:ident: $ty:ident),* $(,)?) $(,)?
    ) => {
        Implementation {
            name: $name,
            provides: Kind::$kind,
            params: &[$($param),*],
            targets: $targets,
            instead: $instead,
            doc: $doc,
            rust: concat!("libos::make::", stringify!($make), "(p", $(", {", stringify!($arg), "}",)* ")?"),
            build: |p, _a| Ok(Arg::$kind(Arc::new(libos::make::$make(p, $(taken::$ty(_a)?),*)?))),
            make_params: &[$((stringify!($arg), stringify!($ty))),*],
        }
    };
}

const ALL_TARGETS: &[Target] = Target::ALL;
const UNIX: &[Target] = &[Target::Unix];

const FACTOR: Param = Param::value(
    "factor",
    ValueType::Int,
    "how many times faster than the wrapped device",
)
.within(1, 1_000_000);

const FRAMES: Param = Param::device(
    "netif",
    Kind::Netif,
    "the interface carrying the stack's Ethernet frames",
);

const WRAPPED: Param = Param::device(
    "stack",
    Kind::Stack,
    "the stack whose connections are wrapped",
);

/// The catalog.
pub static CATALOG: &[Implementation] = &[
    imp! {
        "console::default" -> Console,
        params: [],
        targets: ALL_TARGETS,
        instead: None,
        doc: "The platform's console.\nOn unix, standard output; in a unikernel, the monitor's console or the serial port.",
        make: console_default(),
    },
    imp! {
        "clock::mono" -> MonoClock,
        params: [],
        targets: ALL_TARGETS,
        instead: None,
        doc: "The platform's monotonic clock: nanoseconds since start.",
        make: clock_mono(),
    },
    imp! {
        "clock::wall" -> WallClock,
        params: [],
        targets: ALL_TARGETS,
        instead: None,
        doc: "The platform's wall clock: time since the Unix epoch.",
        make: clock_wall(),
    },
    imp! {
        "clock::scaled" -> MonoClock,
        params: [Param::device("clock", Kind::MonoClock, "the clock to speed up"), FACTOR],
        targets: ALL_TARGETS,
        instead: None,
        doc: "A monotonic clock running `factor` times faster than `clock`.\nFor testing expiry logic without waiting.",
        make: clock_scaled(clock: MonoClock, factor: Int),
    },
    imp! {
        "time::default" -> Time,
        params: [],
        targets: ALL_TARGETS,
        instead: None,
        doc: "The platform's sleep.\nOn unix, tokio's timer; in a unikernel, the executor blocks in the platform's wait with a deadline.",
        make: time_default(),
    },
    imp! {
        "time::scaled" -> Time,
        params: [Param::device("time", Kind::Time, "the sleeper to speed up"), FACTOR],
        targets: ALL_TARGETS,
        instead: None,
        doc: "Sleeps `factor` times shorter than asked.\nThe partner of `clock::scaled` for tests that wait.",
        make: time_scaled(time: Time, factor: Int),
    },
    imp! {
        "random::default" -> Random,
        params: [],
        targets: ALL_TARGETS,
        instead: None,
        doc: "The platform's entropy source.\nOn unix, /dev/urandom; in a unikernel, RDRAND/RDSEED or the monitor's.",
        make: random_default(),
    },
    imp! {
        "random::seeded" -> Random,
        params: [Param::value("seed", ValueType::Int, "the seed")],
        targets: ALL_TARGETS,
        instead: None,
        doc: "A deterministic generator (SplitMix64): the same seed gives the same bytes everywhere.\nFor reproducible runs and tests; never for secrets.",
        make: random_seeded(seed: Int),
    },
    imp! {
        "kv::mem" -> Kv,
        params: [],
        targets: ALL_TARGETS,
        instead: None,
        doc: "An in-memory key-value store.\nIts contents last as long as the program (and survive a hot reload).",
        make: kv_mem(),
    },
    // Baked at build time into a compiled program (codegen writes the files
    // as statics); read from the directory in-process.
    Implementation {
        name: "kv::baked",
        provides: Kind::KvRo,
        params: &[Param::value("dir", ValueType::Str, "the directory to bake in, relative to the project")],
        targets: ALL_TARGETS,
        instead: None,
        doc: "The files of a directory, read-only, baked into the program when it is built.\nKeys are paths relative to the directory, with `/` separators.",
        rust: "libos::kv::Baked::from_static({dir})",
        build: |p, a| Ok(Arg::KvRo(Arc::new(libos::make::kv_baked(p, a.string()?)?))),
        make_params: &[("dir", "Str")],
    },
    imp! {
        "kv::full" -> Kv,
        params: [Param::device("kv", Kind::Kv, "the store to wrap")],
        targets: ALL_TARGETS,
        instead: None,
        doc: "A chaos device: every write fails with \"no space\".\nReads and removals go to the wrapped store.",
        make: kv_full(kv: Kv),
    },
    imp! {
        "kv::history" -> Kv,
        params: [
            Param::device("kv", Kind::Kv, "the store whose changes are kept"),
            Param::value("bound", ValueType::Int, "how many changes it keeps, the newest").or(Default::Int(1000)).within(1, 1_000_000),
        ],
        targets: ALL_TARGETS,
        instead: None,
        doc: "A store that remembers its changes: every write and removal that reaches `kv`, with its time, key, old and new value, the newest `bound` kept.\nIn a session, `:history NAME`, `:diff NAME N M` and `:revert NAME N` read it and roll the store back (the revert itself recorded). A session records every store's changes anyway; this makes it part of the graph, with its bound.",
        make: kv_history(kv: Kv, bound: Int),
    },
    imp! {
        "kv::dir" -> Kv,
        params: [Param::value("path", ValueType::Str, "the directory holding one file per key")],
        targets: UNIX,
        instead: Some("kv::mem"),
        doc: "A key-value store in a host directory, one file per key.\nWrites are crash-safe (temporary file, fsync, rename): a value is old or new, never torn.",
        make: kv_dir(path: Str),
    },
    imp! {
        "kv::block" -> Kv,
        params: [Param::device("block", Kind::Block, "the block device to keep the store on")],
        targets: ALL_TARGETS,
        instead: None,
        doc: "A key-value store kept on a block device, read into memory on first use.\nEach write stores the whole store as one checksummed snapshot, alternately in the two halves of the device: a crash leaves every value old or new, never torn. It holds up to half the device, less a sector. A device of zeros is an empty store; one holding anything else that is not a store is refused, never overwritten.",
        make: kv_block(block: Block),
    },
    imp! {
        "block::file" -> Block,
        params: [
            Param::value("path", ValueType::Str, "the backing file"),
            Param::value("size", ValueType::Int, "the size of a new file, in bytes, a multiple of 512").or(Default::Int(1 << 20)).within(512, 1 << 40),
        ],
        targets: ALL_TARGETS,
        instead: None,
        doc: "A block device of 512-byte sectors backed by a host file.\nIn-process the file itself; on kvm the monitor serves it to the guest; under qemu and libvirt it is the guest's virtio-blk disk; on xen the domain's vbd (blkfront), which dom0's blkback serves from the file (`disk = [...]` in the xl config). A missing file is created with `size` bytes (`nym run --block FILE` names another file).",
        make: block_file(path: Str, size: Int),
    },
    imp! {
        "block::mem" -> Block,
        params: [Param::value("size", ValueType::Int, "the size in bytes, rounded down to a multiple of 512").or(Default::Int(1 << 20)).within(512, 1 << 30)],
        targets: ALL_TARGETS,
        instead: None,
        doc: "An in-memory block device of 512-byte sectors, all zeros at first.\nIts contents last as long as the program (and survive a hot reload); only sectors written with something other than zeros take memory.",
        make: block_mem(size: Int),
    },
    imp! {
        "stack::socket" -> Stack,
        params: [],
        targets: UNIX,
        instead: Some("stack::direct"),
        doc: "The host's own TCP/IP stack, through its sockets.\nListens on every address of the host. A listener stays bound across a hot reload.",
        make: stack_socket(),
    },
    imp! {
        "stack::direct" -> Stack,
        params: [
            FRAMES,
            Param::value("ipv4", ValueType::Cidr, "the stack's address and subnet, `10.0.0.2/24`"),
        ],
        targets: ALL_TARGETS,
        instead: None,
        doc: "A TCP/IP stack in the program (smoltcp) over any network interface.\nIt answers ARP, keeps its own TCP state and timers, and needs nothing of the host but frames: the same stack runs in-process over a tap device and in a unikernel.",
        make: stack_direct(netif: Netif, ipv4: Cidr),
    },
    imp! {
        "stack::dhcp" -> Stack,
        params: [FRAMES],
        targets: ALL_TARGETS,
        instead: None,
        doc: "`stack::direct` with its address, subnet and router from a DHCP server on the link.\nUntil a lease arrives the stack listens but cannot connect; a lost lease takes the address away (`:inspect` shows the lease). QEMU's user network (`--target qemu -p`) runs a DHCP server that hands out 10.0.2.15.",
        make: stack_dhcp(netif: Netif),
    },
    imp! {
        "netif::tap" -> Netif,
        params: [Param::value("name", ValueType::Str, "the tap device, `tap0`")],
        targets: UNIX,
        instead: Some("netif::pair"),
        doc: "A Linux tap device: Ethernet frames to and from the host's network.\nThe device must exist (`ip tuntap add tap0 mode tap user $USER`) or nym must run as root; the host configures its side of the link.",
        make: netif_tap(name: Str),
    },
    imp! {
        "netif::default" -> Netif,
        params: [],
        targets: &[Target::Kvm, Target::Qemu, Target::Libvirt, Target::Xen],
        instead: Some("netif::tap"),
        doc: "The platform's network interface.\nOn kvm, a virtual Ethernet link to nym's monitor (10.0.2.2), which forwards host ports to the guest (`nym run --target kvm -p 8080:80`); under qemu and libvirt, a virtio-net device on QEMU's user network, which does the same (`-p 8080:80`); on xen, the domain's vif (netfront) on dom0's bridge `xenbr0`, to which `nym run --target xen -p 8080:80` forwards. The guest takes 10.0.2.15/24 by convention.",
        make: netif_default(),
    },
    imp! {
        "netif::pair" -> Netif,
        params: [Param::value("name", ValueType::Str, "the link; the two ends share it")],
        targets: ALL_TARGETS,
        instead: None,
        doc: "One end of an in-memory Ethernet link: the two `netif::pair` with the same name are wired to each other.\nTwo stacks over a pair talk inside one program, for tests and demos.",
        make: netif_pair(name: Str),
    },
    imp! {
        "netif::lossy" -> Netif,
        params: [
            Param::device("netif", Kind::Netif, "the interface to make lossy"),
            Param::value("percent", ValueType::Int, "the share of frames lost, each way").within(0, 100),
            Param::value("seed", ValueType::Int, "the seed choosing which frames are lost: a failing run can be replayed").or(Default::Int(1)),
        ],
        targets: ALL_TARGETS,
        instead: None,
        doc: "A chaos device: loses `percent` % of the frames sent and received through `netif`.\nTCP over it must still deliver every byte, in order.",
        make: netif_lossy(netif: Netif, percent: Int, seed: Int),
    },
    imp! {
        "tls::server" -> Stack,
        params: [
            WRAPPED,
            Param::device("certs", Kind::KvRo, "holds `cert.pem` (the certificate chain, leaf first) and `key.pem` (its PKCS#8 private key)"),
        ],
        targets: ALL_TARGETS,
        instead: None,
        doc: "A stack whose listeners hand out TLS 1.3 sessions (rustls, RustCrypto): an application written for a `Stack` serves TLS unchanged.\nThe certificate and key are read from `certs` at every `listen` (`kv::baked(\"tls\")` bakes them into an image). Each handshake runs on the connection's first read or write, so a slow or hostile client holds up only itself. Outgoing connections pass through in the clear.",
        make: tls_server(stack: Stack, certs: KvRo),
    },
    imp! {
        "tls::client" -> Stack,
        params: [
            WRAPPED,
            Param::device("roots", Kind::KvRo, "holds `ca.pem`, the certificates to trust"),
            Param::value("name", ValueType::Str, "the name servers must prove, `example.com` or an IP address"),
        ],
        targets: ALL_TARGETS,
        instead: None,
        doc: "A stack whose connections are TLS 1.3 sessions with servers that prove to be `name` by a chain to a root in `ca.pem`.\n`connect` returns once the handshake is done and the certificate checked against the wall clock; a failure names its reason. Listeners pass through in the clear.",
        make: tls_client(stack: Stack, roots: KvRo, name: Str),
    },
];

/// The implementation named `name`.
pub fn lookup(name: &str) -> Option<&'static Implementation> {
    CATALOG.iter().find(|i| i.name == name)
}

/// The implementations that provide a device fitting `kind`.
pub fn providing(kind: Kind) -> impl Iterator<Item = &'static Implementation> {
    CATALOG.iter().filter(move |i| i.provides.fits(kind))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_names_only_its_parameters_and_alternatives_exist() {
        for imp in CATALOG {
            let mut rest = imp.rust;
            while let Some(open) = rest.find('{') {
                let close = rest[open..].find('}').expect("unclosed placeholder") + open;
                let name = &rest[open + 1..close];
                assert!(
                    imp.params.iter().any(|p| p.name == name),
                    "{}: unknown placeholder {{{name}}}",
                    imp.name
                );
                rest = &rest[close + 1..];
            }
            if let Some(alt) = imp.instead {
                assert!(
                    lookup(alt).is_some(),
                    "{}: alternative {alt} is not in the catalog",
                    imp.name
                );
            }
            assert!(!imp.targets.is_empty());
        }
    }

    /// The constructor an entry names takes the entry's parameters, in
    /// order, each of the declared kind or type.
    #[test]
    fn every_constructor_takes_its_entrys_parameters_in_order() {
        for imp in CATALOG {
            let declared: Vec<(&str, String)> = imp
                .params
                .iter()
                .map(|p| {
                    let ty = match p.ty {
                        ParamType::Device(k) => k.name().to_owned(),
                        ParamType::Value(ValueType::Int) => "Int".into(),
                        ParamType::Value(ValueType::Str) => "Str".into(),
                        ParamType::Value(ValueType::Cidr) => "Cidr".into(),
                        ParamType::Value(other) => other.name().into(),
                    };
                    (p.name, ty)
                })
                .collect();
            let made: Vec<(&str, String)> = imp
                .make_params
                .iter()
                .map(|(n, t)| (*n, (*t).to_owned()))
                .collect();
            assert_eq!(declared, made, "{}", imp.name);
        }
    }

    /// Signature help marks each parameter where the signature writes it.
    #[test]
    fn each_parameter_is_placed_at_its_name_and_type_in_the_signature() {
        for imp in CATALOG {
            let (label, places) = imp.signature_with_params();
            assert_eq!(label, imp.signature());
            let marked: Vec<&str> = places.iter().map(|r| &label[r.clone()]).collect();
            let written: Vec<String> = imp
                .params
                .iter()
                .map(|p| format!("{}: {}", p.name, p.ty))
                .collect();
            assert_eq!(marked, written, "{label}");
        }
    }

    /// An entry for a target its constructor cannot serve is refused by
    /// the checker, not discovered at boot: the platform devices a guest
    /// lacks are never listed for a guest.
    #[test]
    fn host_only_devices_are_listed_for_unix_only() {
        for name in ["kv::dir", "stack::socket", "netif::tap"] {
            assert_eq!(lookup(name).unwrap().targets, UNIX, "{name}");
        }
        for t in [Target::Kvm, Target::Qemu, Target::Libvirt] {
            assert!(lookup("netif::default").unwrap().supports(t), "{t}");
        }
    }
}
