//! Zones: the records this server answers from, read from text files, and
//! the lookup of a question in them.
//!
//! # The zone file format
//!
//! One file is one zone. A line is a directive, a record, or nothing:
//!
//! ```text
//! ; A comment runs from `;` to the end of the line.
//! $ORIGIN example.test.
//! @      3600 SOA   ns1 hostmaster 2026120701 7200 3600 1209600 300
//! @      3600 NS    ns1
//! ns1    3600 A     10.0.2.15
//! www     300 IN A  192.0.2.10
//! www     300 AAAA  2001:db8::10
//! alias   300 CNAME www
//! ```
//!
//! - `$ORIGIN NAME.` sets the origin that relative names are completed
//!   with; it must be absolute. No other directive exists (no `$TTL`, no
//!   `$INCLUDE`).
//! - A record is `NAME TTL [IN] TYPE DATA...`, every field on the line:
//!   no omitted owner or TTL, no parentheses across lines.
//! - A name ending in `.` is absolute; `@` is the origin; any other name is
//!   relative to the origin. Labels are letters, digits, `-` and `_`
//!   (no escapes, no wildcards); case does not matter.
//! - TTLs are seconds, at most 2147483647.
//! - Types and their data: `A` an IPv4 address, `AAAA` an IPv6 address,
//!   `CNAME` and `NS` a name, `SOA` the primary server's name, the
//!   mailbox as a name, then serial, refresh, retry, expire and minimum.
//!
//! A zone has exactly one SOA record, whose owner is the zone's apex, at
//! least one NS record at the apex, and every record at or under the apex.
//! A name with a CNAME has nothing else. NS records below the apex
//! delegate that subtree: questions there get a referral.
use crate::wire::{rcode, rtype, Name, Rdata, Record, Soa, WireError};
use alloc::collections::{BTreeMap, BTreeSet};
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

/// CNAMEs followed within the zone for one question.
const MAX_CHAIN: usize = 8;
/// The largest TTL (RFC 2181, 8).
const MAX_TTL: u32 = 0x7fff_ffff;

/// Why a zone file could not be read: the file, its line, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZoneError {
    /// The file (its key in the store).
    pub file: String,
    /// The 1-based line, or 0 for the file as a whole.
    pub line: usize,
    /// What is wrong.
    pub why: String,
}

impl fmt::Display for ZoneError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            0 => write!(f, "zone {}: {}", self.file, self.why),
            n => write!(f, "zone {} line {n}: {}", self.file, self.why),
        }
    }
}

/// One zone: its apex and records, names lowercased.
#[derive(Debug, Clone)]
pub struct Zone {
    apex: Name,
    soa: Record,
    /// Records by owner.
    records: BTreeMap<Name, Vec<Record>>,
    /// Every owner and every name between an owner and the apex: a name
    /// here exists (an empty non-terminal answers NODATA, not NXDOMAIN).
    exists: BTreeSet<Name>,
    /// Owners of NS records below the apex: where the zone delegates.
    cuts: BTreeSet<Name>,
}

/// The answer to a question, before it is written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Lookup {
    /// The response code ([`rcode`]).
    pub rcode: u16,
    /// Whether the answer is authoritative (AA).
    pub authoritative: bool,
    /// The answer section.
    pub answers: Vec<Record>,
    /// The authority section.
    pub authority: Vec<Record>,
    /// The additional section.
    pub additional: Vec<Record>,
}

/// The zones a server answers for.
#[derive(Debug, Clone, Default)]
pub struct Zones {
    zones: Vec<Zone>,
}

impl Zones {
    /// The zones of `files`, each `(name, text)`; two zones may not share
    /// an apex.
    pub fn parse<'a>(
        files: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Zones, ZoneError> {
        let mut zones: Vec<Zone> = Vec::new();
        for (file, text) in files {
            let zone = Zone::parse(file, text)?;
            if zones.iter().any(|z| z.apex == zone.apex) {
                return Err(ZoneError {
                    file: file.to_string(),
                    line: 0,
                    why: format!("a second zone for {}", zone.apex),
                });
            }
            zones.push(zone);
        }
        Ok(Zones { zones })
    }

    /// The apexes, for people: `example.test., other.test.`.
    pub fn describe(&self) -> String {
        let names: Vec<String> = self.zones.iter().map(|z| z.apex.to_string()).collect();
        names.join(", ")
    }

    /// Whether there is no zone.
    pub fn is_empty(&self) -> bool {
        self.zones.is_empty()
    }

    /// The answer to a question for `qname` of type `qtype`: from the
    /// closest enclosing zone, or REFUSED when no zone holds the name.
    pub fn lookup(&self, qname: &Name, qtype: u16) -> Lookup {
        let qname = qname.lower();
        let zone = self
            .zones
            .iter()
            .filter(|z| qname.is_under(&z.apex))
            .max_by_key(|z| z.apex.wire().len());
        match zone {
            Some(z) => z.lookup(qname, qtype),
            None => Lookup {
                rcode: rcode::REFUSED,
                ..Lookup::default()
            },
        }
    }
}

impl Zone {
    /// The zone in `text`, read from file `file`.
    pub fn parse(file: &str, text: &str) -> Result<Zone, ZoneError> {
        let err = |line: usize, why: String| ZoneError {
            file: file.to_string(),
            line,
            why,
        };
        let mut origin: Option<Name> = None;
        let mut all: Vec<(usize, Record)> = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line_no = i + 1;
            let content = line.split(';').next().unwrap_or("");
            let fields: Vec<&str> = content.split_whitespace().collect();
            match fields.first() {
                None => continue,
                Some(&"$ORIGIN") => {
                    let [_, name] = fields[..] else {
                        return Err(err(line_no, "write `$ORIGIN name.`".to_string()));
                    };
                    if !name.ends_with('.') {
                        return Err(err(
                            line_no,
                            format!("the origin `{name}` must be absolute (end with `.`)"),
                        ));
                    }
                    origin = Some(parse_name(name, None).map_err(|e| err(line_no, e))?);
                }
                Some(d) if d.starts_with('$') => {
                    return Err(err(
                        line_no,
                        format!("`{d}` is not a directive here (only `$ORIGIN` is)"),
                    ));
                }
                Some(_) => {
                    let record =
                        parse_record(&fields, origin.as_ref()).map_err(|e| err(line_no, e))?;
                    all.push((line_no, record));
                }
            }
        }
        let mut soas = all.iter().filter(|(_, r)| r.rtype == rtype::SOA);
        let Some((_, soa)) = soas.next() else {
            return Err(err(0, "no SOA record: a zone starts with one".to_string()));
        };
        if let Some((line, _)) = soas.next() {
            return Err(err(*line, "a second SOA record".to_string()));
        }
        let soa = soa.clone();
        let apex = soa.name.clone();
        let mut records: BTreeMap<Name, Vec<Record>> = BTreeMap::new();
        let mut exists = BTreeSet::new();
        let mut cuts = BTreeSet::new();
        for (line, r) in all {
            if !r.name.is_under(&apex) {
                return Err(err(line, format!("{} is outside the zone {apex}", r.name)));
            }
            let at = records.entry(r.name.clone()).or_default();
            let cname = |rs: &[Record]| rs.iter().any(|x| x.rtype == rtype::CNAME);
            if !at.is_empty() && (r.rtype == rtype::CNAME || cname(at)) {
                return Err(err(
                    line,
                    format!("{} has a CNAME and other records", r.name),
                ));
            }
            if at.iter().any(|x| x.data == r.data) {
                return Err(err(line, format!("a repeated record for {}", r.name)));
            }
            if r.rtype == rtype::NS && r.name != apex {
                cuts.insert(r.name.clone());
            }
            let mut up = Some(r.name.clone());
            while let Some(n) = up.filter(|n| n.is_under(&apex)) {
                up = n.parent();
                exists.insert(n);
            }
            at.push(r);
        }
        let apex_ns = records
            .get(&apex)
            .is_some_and(|rs| rs.iter().any(|r| r.rtype == rtype::NS));
        if !apex_ns {
            return Err(err(0, format!("no NS record at the apex {apex}")));
        }
        Ok(Zone {
            apex,
            soa,
            records,
            exists,
            cuts,
        })
    }

    /// The answer to `qname` (lowercased, at or under the apex).
    fn lookup(&self, qname: Name, qtype: u16) -> Lookup {
        let mut out = Lookup {
            authoritative: true,
            ..Lookup::default()
        };
        let mut name = qname;
        for _ in 0..MAX_CHAIN {
            if let Some(cut) = self.cut_above(&name) {
                if out.answers.is_empty() {
                    // A referral: the child zone's servers answer.
                    out.authoritative = false;
                    out.authority = self.rrset(cut, rtype::NS);
                    out.additional = self.glue(&out.authority);
                }
                return out;
            }
            let here = self.records.get(&name).map_or(&[][..], Vec::as_slice);
            let matching: Vec<Record> = here
                .iter()
                .filter(|r| qtype == rtype::ANY || r.rtype == qtype)
                .cloned()
                .collect();
            if !matching.is_empty() {
                if qtype == rtype::NS {
                    out.additional = self.glue(&matching);
                }
                out.answers.extend(matching);
                return out;
            }
            let target = here.iter().find_map(|r| match &r.data {
                Rdata::Cname(t) => Some((r, t)),
                _ => None,
            });
            if let Some((r, target)) = target {
                out.answers.push(r.clone());
                let seen = out.answers.iter().any(|a| a.name == *target);
                if !target.is_under(&self.apex) || seen {
                    // Out of the zone (the resolver goes on), or a loop.
                    return out;
                }
                name = target.clone();
                continue;
            }
            if !self.exists.contains(&name) {
                out.rcode = rcode::NXDOMAIN;
            }
            out.authority.push(self.negative_soa());
            return out;
        }
        out
    }

    /// The highest delegation point at or above `name`, below the apex.
    fn cut_above(&self, name: &Name) -> Option<&Name> {
        let mut found = None;
        let mut at = Some(name.clone());
        while let Some(n) = at.filter(|n| *n != self.apex && n.is_under(&self.apex)) {
            if let Some(cut) = self.cuts.get(&n) {
                found = Some(cut);
            }
            at = n.parent();
        }
        found
    }

    /// The records of type `t` at `name`.
    fn rrset(&self, name: &Name, t: u16) -> Vec<Record> {
        let at = self.records.get(name).map_or(&[][..], Vec::as_slice);
        at.iter().filter(|r| r.rtype == t).cloned().collect()
    }

    /// The addresses in the zone of the servers that `ns` names.
    fn glue(&self, ns: &[Record]) -> Vec<Record> {
        let mut out: Vec<Record> = Vec::new();
        for r in ns {
            if let Rdata::Ns(server) = &r.data {
                for t in [rtype::A, rtype::AAAA] {
                    for g in self.rrset(server, t) {
                        if !out.contains(&g) {
                            out.push(g);
                        }
                    }
                }
            }
        }
        out
    }

    /// The SOA of a negative answer: its TTL the lower of its own and its
    /// minimum field (RFC 2308, 3).
    fn negative_soa(&self) -> Record {
        let mut soa = self.soa.clone();
        if let Rdata::Soa(s) = &soa.data {
            soa.ttl = soa.ttl.min(s.minimum);
        }
        soa
    }
}

/// A record line's fields: `NAME TTL [IN] TYPE DATA...`.
fn parse_record(fields: &[&str], origin: Option<&Name>) -> Result<Record, String> {
    let (name, ttl, rest) = match fields {
        [name, ttl, rest @ ..] => (*name, *ttl, rest),
        _ => return Err("write a record as `NAME TTL TYPE DATA`".to_string()),
    };
    let owner = parse_name(name, origin)?;
    let ttl: u32 = ttl
        .parse()
        .ok()
        .filter(|&t| t <= MAX_TTL)
        .ok_or_else(|| format!("`{ttl}` is not a TTL (seconds, 0 to {MAX_TTL})"))?;
    let rest = match rest {
        [class, rest @ ..] if class.eq_ignore_ascii_case("IN") => rest,
        _ => rest,
    };
    let Some((kind, data)) = rest.split_first() else {
        return Err("the record has no type".to_string());
    };
    let want = |n: usize| {
        if data.len() == n {
            Ok(())
        } else {
            Err(format!(
                "{kind} takes {n} field{} of data, not {}",
                if n == 1 { "" } else { "s" },
                data.len()
            ))
        }
    };
    let data = match kind.to_ascii_uppercase().as_str() {
        "A" => {
            want(1)?;
            Rdata::A(
                data[0]
                    .parse()
                    .map_err(|_| format!("`{}` is not an IPv4 address", data[0]))?,
            )
        }
        "AAAA" => {
            want(1)?;
            Rdata::Aaaa(
                data[0]
                    .parse()
                    .map_err(|_| format!("`{}` is not an IPv6 address", data[0]))?,
            )
        }
        "CNAME" => {
            want(1)?;
            Rdata::Cname(parse_name(data[0], origin)?)
        }
        "NS" => {
            want(1)?;
            Rdata::Ns(parse_name(data[0], origin)?)
        }
        "SOA" => {
            want(7)?;
            let mut n = [0u32; 5];
            for (slot, text) in n.iter_mut().zip(&data[2..]) {
                *slot = text
                    .parse()
                    .map_err(|_| format!("`{text}` is not a number of the SOA"))?;
            }
            Rdata::Soa(Soa {
                mname: parse_name(data[0], origin)?,
                rname: parse_name(data[1], origin)?,
                serial: n[0],
                refresh: n[1],
                retry: n[2],
                expire: n[3],
                minimum: n[4],
            })
        }
        other => {
            return Err(format!(
                "type `{other}` is not served (A, AAAA, CNAME, NS and SOA are)"
            ))
        }
    };
    Ok(Record::new(owner, ttl, data))
}

/// A name as a zone file writes it, lowercased: absolute if it ends with
/// `.`, the origin if `@`, else relative to the origin.
fn parse_name(text: &str, origin: Option<&Name>) -> Result<Name, String> {
    if text == "@" {
        return origin
            .cloned()
            .ok_or_else(|| "`@` before any `$ORIGIN`".to_string());
    }
    if text == "." {
        return Ok(Name::root());
    }
    let (body, absolute) = match text.strip_suffix('.') {
        Some(body) => (body, true),
        None => (text, false),
    };
    if let Some(c) = body
        .chars()
        .find(|&c| !(c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.'))
    {
        return Err(format!(
            "`{text}` is not a name: `{c}` (labels are letters, digits, `-` and `_`)"
        ));
    }
    let lower = body.to_ascii_lowercase();
    let relative = Name::from_labels(lower.split('.').map(str::as_bytes))
        .map_err(|e| format!("`{text}` is not a name: {e}"))?;
    if absolute {
        return Ok(relative);
    }
    let origin = origin.ok_or_else(|| {
        format!("`{text}` is relative but no `$ORIGIN` came before (end it with `.`)")
    })?;
    relative
        .join(origin)
        .map_err(|e: WireError| format!("`{text}` is not a name: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;
    use core::net::Ipv4Addr;

    const ZONE: &str = "\
; a test zone
$ORIGIN example.test.
@      3600 IN SOA ns1 hostmaster 1 7200 3600 1209600 300
@      3600 NS    ns1
@      3600 NS    ns2.elsewhere.test.
ns1    3600 A     10.0.2.15
www     300 A     192.0.2.10
www     300 AAAA  2001:db8::10
alias   300 CNAME www
chain   300 CNAME alias
away    300 CNAME www.elsewhere.test.
dead    300 CNAME nothing
loop1   300 CNAME loop2
loop2   300 CNAME loop1
a.b.deep 60 A 192.0.2.20
sub    3600 NS    ns.sub
ns.sub 3600 A     192.0.2.53
";

    fn name(text: &str) -> Name {
        parse_name(text, None).expect("a valid name")
    }

    fn zones() -> Zones {
        Zones::parse([("example.test.zone", ZONE)]).expect("the zone parses")
    }

    fn types(rs: &[Record]) -> Vec<u16> {
        rs.iter().map(|r| r.rtype).collect()
    }

    #[test]
    fn each_type_is_answered_with_authority() {
        let z = zones();
        let l = z.lookup(&name("WWW.Example.Test."), rtype::A);
        assert_eq!(l.rcode, rcode::NOERROR);
        assert!(l.authoritative);
        assert_eq!(l.answers[0].data, Rdata::A(Ipv4Addr::new(192, 0, 2, 10)));
        assert_eq!(
            types(&z.lookup(&name("www.example.test."), rtype::AAAA).answers),
            [28]
        );
        let soa = z.lookup(&name("example.test."), rtype::SOA);
        assert_eq!(types(&soa.answers), [rtype::SOA]);
        let ns = z.lookup(&name("example.test."), rtype::NS);
        assert_eq!(types(&ns.answers), [rtype::NS, rtype::NS]);
        // Glue for the server inside the zone only.
        assert_eq!(types(&ns.additional), [rtype::A]);
        let cname = z.lookup(&name("alias.example.test."), rtype::CNAME);
        assert_eq!(types(&cname.answers), [rtype::CNAME]);
        assert_eq!(
            z.lookup(&name("www.example.test."), rtype::ANY)
                .answers
                .len(),
            2
        );
    }

    #[test]
    fn cnames_are_chased_within_the_zone_and_stop_at_loops() {
        let z = zones();
        let l = z.lookup(&name("chain.example.test."), rtype::A);
        assert_eq!(types(&l.answers), [rtype::CNAME, rtype::CNAME, rtype::A]);
        let l = z.lookup(&name("away.example.test."), rtype::A);
        assert_eq!(types(&l.answers), [rtype::CNAME]);
        assert_eq!(l.rcode, rcode::NOERROR);
        let l = z.lookup(&name("dead.example.test."), rtype::A);
        assert_eq!(l.rcode, rcode::NXDOMAIN);
        assert_eq!(types(&l.answers), [rtype::CNAME]);
        let l = z.lookup(&name("loop1.example.test."), rtype::A);
        assert_eq!(types(&l.answers), [rtype::CNAME, rtype::CNAME]);
    }

    #[test]
    fn missing_names_and_types_carry_the_soa() {
        let z = zones();
        let nx = z.lookup(&name("nope.example.test."), rtype::A);
        assert_eq!(nx.rcode, rcode::NXDOMAIN);
        assert!(nx.answers.is_empty());
        assert_eq!(types(&nx.authority), [rtype::SOA]);
        assert_eq!(nx.authority[0].ttl, 300, "the negative TTL");
        let nodata = z.lookup(&name("www.example.test."), rtype::NS);
        assert_eq!(nodata.rcode, rcode::NOERROR);
        assert!(nodata.answers.is_empty());
        assert_eq!(types(&nodata.authority), [rtype::SOA]);
        // An empty non-terminal exists.
        let ent = z.lookup(&name("b.deep.example.test."), rtype::A);
        assert_eq!(ent.rcode, rcode::NOERROR);
        let other = z.lookup(&name("www.example.org."), rtype::A);
        assert_eq!(other.rcode, rcode::REFUSED);
        assert!(!other.authoritative);
    }

    #[test]
    fn delegated_names_get_a_referral_with_glue() {
        let z = zones();
        for q in [
            "sub.example.test.",
            "www.sub.example.test.",
            "ns.sub.example.test.",
        ] {
            let l = z.lookup(&name(q), rtype::A);
            assert!(!l.authoritative, "{q}");
            assert!(l.answers.is_empty(), "{q}");
            assert_eq!(types(&l.authority), [rtype::NS], "{q}");
            assert_eq!(types(&l.additional), [rtype::A], "{q}");
        }
    }

    #[test]
    fn bad_zones_name_the_file_line_and_problem() {
        let bad = |text: &str| {
            Zone::parse("z.zone", text)
                .expect_err("a bad zone")
                .to_string()
        };
        let head = "$ORIGIN example.test.\n@ 60 SOA ns h 1 2 3 4 5\n@ 60 NS ns\n";
        assert_eq!(
            bad("www 60 A 1.2.3.4\n"),
            "zone z.zone line 1: `www` is relative but no `$ORIGIN` came before (end it with `.`)"
        );
        assert_eq!(
            bad("$ORIGIN example.test.\n"),
            "zone z.zone: no SOA record: a zone starts with one"
        );
        assert!(bad(&format!("{head}www 60 A 1.2.3\n"))
            .contains("line 4: `1.2.3` is not an IPv4 address"));
        assert!(bad(&format!("{head}www 60 MX 10 mail\n")).contains("type `MX` is not served"));
        assert!(bad(&format!("{head}www 60 A\n")).contains("A takes 1 field of data, not 0"));
        assert!(bad(&format!("{head}www 99999999999 A 1.2.3.4\n")).contains("is not a TTL"));
        assert!(bad(&format!("{head}www 60 A 1.2.3.4\nwww 60 CNAME x\n"))
            .contains("line 5: www.example.test. has a CNAME and other records"));
        assert!(bad(&format!("{head}www.other. 60 A 1.2.3.4\n")).contains("outside the zone"));
        assert!(bad(&format!("{head}@ 60 SOA ns h 1 2 3 4 5\n")).contains("line 4: a second SOA"));
        assert!(bad(&format!("{head}w*w 60 A 1.2.3.4\n")).contains("`*`"));
        assert!(bad(&format!("{head}a..b 60 A 1.2.3.4\n")).contains("a label of 0 bytes"));
        assert!(bad(&format!("{head}{} 60 A 1.2.3.4\n", "a".repeat(64)))
            .contains("a label of 64 bytes"));
        assert!(bad(&format!("{head}$TTL 60\n")).contains("only `$ORIGIN`"));
        assert!(bad("$ORIGIN example.test.\n@ 60 SOA ns h 1 2 3 4 5\n")
            .contains("no NS record at the apex"));
        let twice = Zones::parse([("a", head), ("b", head)]).expect_err("two apexes");
        assert_eq!(twice.to_string(), "zone b: a second zone for example.test.");
    }

    #[test]
    fn absolute_names_need_no_origin() {
        let z = Zone::parse(
            "abs",
            "x.test. 60 SOA ns.x.test. h.x.test. 1 2 3 4 5\nx.test. 60 NS ns.x.test.\n",
        )
        .expect("parses");
        assert_eq!(z.apex, name("x.test."));
        assert_eq!(
            vec![z.apex.clone()],
            z.exists.iter().cloned().collect::<Vec<_>>()
        );
    }
}
