//! The types of the graph language: device kinds, value types, targets.
pub use libos::ValueType;
use std::fmt;

/// A device kind: the trait a device implements (MirageOS: a module type).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// `libos::Console`
    Console,
    /// `libos::MonoClock`
    MonoClock,
    /// `libos::WallClock`
    WallClock,
    /// `libos::Time`
    Time,
    /// `libos::Random`
    Random,
    /// `libos::KvRo`
    KvRo,
    /// `libos::Kv` (also fits where a `KvRo` is expected)
    Kv,
    /// `libos::Block`
    Block,
    /// `libos::Flow`
    Flow,
    /// `libos::Netif`
    Netif,
    /// `libos::Stack`
    Stack,
    /// An application entry point made with `job`.
    Job,
}

impl Kind {
    /// Every kind, in documentation order.
    pub const ALL: &'static [Kind] = &[
        Kind::Console,
        Kind::MonoClock,
        Kind::WallClock,
        Kind::Time,
        Kind::Random,
        Kind::KvRo,
        Kind::Kv,
        Kind::Block,
        Kind::Flow,
        Kind::Netif,
        Kind::Stack,
        Kind::Job,
    ];

    /// The trait's name, `Console`.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Console => "Console",
            Kind::MonoClock => "MonoClock",
            Kind::WallClock => "WallClock",
            Kind::Time => "Time",
            Kind::Random => "Random",
            Kind::KvRo => "KvRo",
            Kind::Kv => "Kv",
            Kind::Block => "Block",
            Kind::Flow => "Flow",
            Kind::Netif => "Netif",
            Kind::Stack => "Stack",
            Kind::Job => "Job",
        }
    }

    /// The kind whose trait is named `name`.
    pub fn from_trait_name(name: &str) -> Option<Kind> {
        Kind::ALL
            .iter()
            .copied()
            .find(|k| k.name() == name && *k != Kind::Job)
    }

    /// Whether a device of kind `self` can be passed where `expected` is asked.
    pub fn fits(self, expected: Kind) -> bool {
        self == expected || (self == Kind::Kv && expected == Kind::KvRo)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What an expression evaluates to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Type {
    /// A device of a kind.
    Device(Kind),
    /// A value.
    Value(ValueType),
    /// A list (only `register` takes one).
    List,
    /// Unknown because of an earlier error: fits everything, reports nothing.
    Error,
}

impl fmt::Display for Type {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Type::Device(k) => write!(f, "{k}"),
            Type::Value(v) => f.write_str(v.name()),
            Type::List => f.write_str("list"),
            Type::Error => f.write_str("{unknown}"),
        }
    }
}

/// Where a graph runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Target {
    /// In-process on Unix (and standalone Unix executables).
    Unix,
    /// A unikernel in nym's KVM monitor.
    Kvm,
    /// A PVH unikernel under QEMU (microvm: virtio-mmio).
    Qemu,
    /// A PVH unikernel on a q35 machine under libvirt (virtio-pci).
    Libvirt,
    /// A PVH unikernel under Xen.
    Xen,
}

impl Target {
    /// Every target.
    pub const ALL: &'static [Target] = &[
        Target::Unix,
        Target::Kvm,
        Target::Qemu,
        Target::Libvirt,
        Target::Xen,
    ];

    /// The name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Target::Unix => "unix",
            Target::Kvm => "kvm",
            Target::Qemu => "qemu",
            Target::Libvirt => "libvirt",
            Target::Xen => "xen",
        }
    }

    /// Whether the target boots an image (everything but unix).
    pub fn is_guest(self) -> bool {
        self != Target::Unix
    }

    /// The target named `name`.
    pub fn from_name(name: &str) -> Option<Target> {
        Target::ALL.iter().copied().find(|t| t.name() == name)
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
