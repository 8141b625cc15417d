//! Values that a graph passes to implementations and jobs, besides the
//! primitive ones.
use core::{fmt, net::Ipv4Addr, str::FromStr};

/// An IPv4 address with its prefix length, `10.0.0.2/24`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv4Cidr {
    /// The address.
    pub addr: Ipv4Addr,
    /// The prefix length, 0 to 32.
    pub prefix: u8,
}

/// Why a string is not an IPv4 CIDR.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CidrError {
    /// No `/prefix` part.
    #[error("missing `/prefix` (write it like 10.0.0.2/24)")]
    MissingPrefix,
    /// The address part is not a dotted-quad IPv4 address.
    #[error("the address is not a dotted-quad IPv4 address")]
    BadAddress,
    /// The prefix is not a number from 0 to 32.
    #[error("the prefix must be a number from 0 to 32")]
    BadPrefix,
}

impl Ipv4Cidr {
    /// The netmask, `255.255.255.0` for `/24`.
    pub fn netmask(&self) -> Ipv4Addr {
        let bits = u32::MAX
            .checked_shl(32 - u32::from(self.prefix))
            .unwrap_or(0);
        Ipv4Addr::from(bits)
    }
}

impl FromStr for Ipv4Cidr {
    type Err = CidrError;
    fn from_str(s: &str) -> Result<Self, CidrError> {
        let (addr, prefix) = s.split_once('/').ok_or(CidrError::MissingPrefix)?;
        let addr = Ipv4Addr::from_str(addr).map_err(|_| CidrError::BadAddress)?;
        let prefix = match u8::from_str(prefix) {
            Ok(p) if p <= 32 && !prefix.starts_with('+') => p,
            _ => return Err(CidrError::BadPrefix),
        };
        Ok(Self { addr, prefix })
    }
}

impl fmt::Display for Ipv4Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    #[test]
    fn strings_print_as_the_graph_language_writes_them() {
        let v = Value::Str("a\"b\\c\nd\te é".into());
        assert_eq!(v.to_string(), r#""a\"b\\c\nd\te é""#);
        assert_eq!(Value::Str("".into()).to_string(), r#""""#);
    }

    #[test]
    fn parses_and_prints_cidrs() {
        let c: Ipv4Cidr = "10.0.0.2/24".parse().unwrap();
        assert_eq!(c.addr, Ipv4Addr::new(10, 0, 0, 2));
        assert_eq!(c.netmask(), Ipv4Addr::new(255, 255, 255, 0));
        assert_eq!(c.to_string(), "10.0.0.2/24");
        assert_eq!(
            "10.0.0.2".parse::<Ipv4Cidr>(),
            Err(CidrError::MissingPrefix)
        );
        assert_eq!(
            "10.0.0.256/8".parse::<Ipv4Cidr>(),
            Err(CidrError::BadAddress)
        );
        assert_eq!("10.0.0.1/33".parse::<Ipv4Cidr>(), Err(CidrError::BadPrefix));
        assert_eq!(
            "0.0.0.0/0".parse::<Ipv4Cidr>().unwrap().netmask(),
            Ipv4Addr::UNSPECIFIED
        );
    }
}

/// The type of a graph value or a `key()`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ValueType {
    /// UTF-8 text.
    Str,
    /// A 64-bit signed integer (sizes like `4MiB` are integers).
    Int,
    /// `true` or `false`.
    Bool,
    /// A span of time, `500ms`.
    Duration,
    /// An IPv4 address with prefix, `10.0.0.2/24`.
    Cidr,
}

impl ValueType {
    /// The name users see.
    pub fn name(self) -> &'static str {
        match self {
            ValueType::Str => "string",
            ValueType::Int => "int",
            ValueType::Bool => "bool",
            ValueType::Duration => "duration",
            ValueType::Cidr => "ipv4 cidr",
        }
    }
}

/// A value of one of the [`ValueType`]s.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// Text.
    Str(alloc::string::String),
    /// An integer.
    Int(i64),
    /// A boolean.
    Bool(bool),
    /// A duration.
    Duration(core::time::Duration),
    /// An IPv4 CIDR.
    Cidr(Ipv4Cidr),
}

impl Value {
    /// The value's type.
    pub fn ty(&self) -> ValueType {
        match self {
            Value::Str(_) => ValueType::Str,
            Value::Int(_) => ValueType::Int,
            Value::Bool(_) => ValueType::Bool,
            Value::Duration(_) => ValueType::Duration,
            Value::Cidr(_) => ValueType::Cidr,
        }
    }
}

impl fmt::Display for Value {
    /// Prints the value the way the graph language writes it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Str(s) => write_quoted(s, f),
            Value::Int(i) => write!(f, "{i}"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Duration(d) => fmt_duration(*d, f),
            Value::Cidr(c) => write!(f, "{c}"),
        }
    }
}

/// `s` as a string literal of the graph language, with its four escapes
/// (`\n \t \\ \"`); other characters as they are. (Not `{:?}`: that links
/// `core`'s Unicode escaping tables into every guest image.)
fn write_quoted(s: &str, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    f.write_str("\"")?;
    let mut rest = s;
    // Checked slicing (the found characters are one byte): see
    // `parse_duration`.
    while let Some((head, tail)) = rest
        .find(['\n', '\t', '\\', '"'])
        .and_then(|i| rest.split_at_checked(i))
    {
        f.write_str(head)?;
        f.write_str(match tail.as_bytes().first() {
            Some(b'\n') => "\\n",
            Some(b'\t') => "\\t",
            Some(b'\\') => "\\\\",
            _ => "\\\"",
        })?;
        rest = tail.get(1..).unwrap_or("");
    }
    f.write_str(rest)?;
    f.write_str("\"")
}

/// Duration units, longest suffix first so `ms` is not read as `m` + `s`.
const UNITS: &[(&str, u64)] = &[
    ("min", 60_000_000_000),
    ("ns", 1),
    ("us", 1_000),
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
    ("h", 3_600_000_000_000),
];

fn fmt_duration(d: core::time::Duration, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    let ns = d.as_nanos();
    for (unit, scale) in [
        ("h", 3_600_000_000_000u128),
        ("min", 60_000_000_000),
        ("s", 1_000_000_000),
        ("ms", 1_000_000),
        ("us", 1_000),
    ] {
        if ns != 0 && ns.is_multiple_of(scale) {
            return write!(f, "{}{unit}", ns / scale);
        }
    }
    write!(f, "{ns}ns")
}

/// Why a text is not a value of the type asked for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    /// Not a decimal integer (with an optional `KiB`/`MiB`/`GiB` suffix).
    #[error("not an integer (write it like 42 or 4MiB)")]
    BadInt,
    /// Not `true` or `false`.
    #[error("not a boolean (write true or false)")]
    BadBool,
    /// Not a number followed by a unit.
    #[error("not a duration (write it like 500ms, 2s, 1min; units: ns us ms s min h)")]
    BadDuration,
    /// Not an IPv4 CIDR.
    #[error("not an IPv4 CIDR: {0}")]
    BadCidr(#[from] CidrError),
}

/// Parses an integer with an optional size suffix: `42`, `4KiB`, `1MiB`, `2GiB`.
pub fn parse_int(text: &str) -> Result<i64, ValueError> {
    let (digits, scale) = [("KiB", 1i64 << 10), ("MiB", 1 << 20), ("GiB", 1 << 30)]
        .iter()
        .find_map(|(sfx, scale)| text.strip_suffix(sfx).map(|d| (d, *scale)))
        .unwrap_or((text, 1));
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ValueError::BadInt);
    }
    digits
        .parse::<i64>()
        .ok()
        .and_then(|v| v.checked_mul(scale))
        .ok_or(ValueError::BadInt)
}

/// Parses a duration: digits then a unit, `500ms`, `2s`, `1min`.
pub fn parse_duration(text: &str) -> Result<core::time::Duration, ValueError> {
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    // Checked, though `split` is a char boundary: a panicking split links
    // core's slicing panic, with its char escaping tables, into images.
    let (digits, unit) = text
        .split_at_checked(split)
        .ok_or(ValueError::BadDuration)?;
    let scale = UNITS
        .iter()
        .find(|(u, _)| *u == unit)
        .map(|(_, s)| *s)
        .ok_or(ValueError::BadDuration)?;
    let n: u64 = digits.parse().map_err(|_| ValueError::BadDuration)?;
    n.checked_mul(scale)
        .map(core::time::Duration::from_nanos)
        .ok_or(ValueError::BadDuration)
}

/// Parses `text` as a value of type `ty`: how keys given on a command line
/// (`--count 5`) become values.
pub fn parse_value(ty: ValueType, text: &str) -> Result<Value, ValueError> {
    Ok(match ty {
        ValueType::Str => Value::Str(text.into()),
        ValueType::Int => Value::Int(parse_int(text)?),
        ValueType::Bool => match text {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            _ => return Err(ValueError::BadBool),
        },
        ValueType::Duration => Value::Duration(parse_duration(text)?),
        ValueType::Cidr => Value::Cidr(text.parse()?),
    })
}

#[cfg(test)]
mod value_tests {
    use super::*;
    use alloc::string::ToString;
    use core::time::Duration;

    #[test]
    fn parses_values_of_each_type() {
        assert_eq!(parse_value(ValueType::Int, "4MiB"), Ok(Value::Int(4 << 20)));
        assert_eq!(parse_value(ValueType::Int, "-1"), Err(ValueError::BadInt));
        assert_eq!(
            parse_value(ValueType::Int, "99999999999999999999"),
            Err(ValueError::BadInt)
        );
        assert_eq!(
            parse_value(ValueType::Duration, "1min"),
            Ok(Value::Duration(Duration::from_secs(60)))
        );
        assert_eq!(
            parse_value(ValueType::Duration, "250ms"),
            Ok(Value::Duration(Duration::from_millis(250)))
        );
        assert_eq!(
            parse_value(ValueType::Duration, "5"),
            Err(ValueError::BadDuration)
        );
        assert_eq!(
            parse_value(ValueType::Bool, "yes"),
            Err(ValueError::BadBool)
        );
        assert!(matches!(
            parse_value(ValueType::Cidr, "1.2.3.4"),
            Err(ValueError::BadCidr(_))
        ));
    }

    #[test]
    fn values_print_as_the_language_writes_them() {
        assert_eq!(
            Value::Duration(Duration::from_millis(1500)).to_string(),
            "1500ms"
        );
        assert_eq!(
            Value::Duration(Duration::from_secs(120)).to_string(),
            "2min"
        );
        assert_eq!(Value::Str("a\"b".into()).to_string(), "\"a\\\"b\"");
    }
}
