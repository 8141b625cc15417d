//! Rust cells and the running stack. A cell runs in a process of its own
//! (evcxr's), so it cannot reach the stack's devices; it can have a copy:
//! `inspect!(store)` in a cell is replaced, before the cell compiles, by a
//! `libos::snapshot::Snapshot` of the device as it is at that moment. A
//! cell that names a device of the graph as if it were a variable is told
//! why that cannot work.
use super::supervisor::Request;
use super::{Reply, Session};
use tokio::sync::oneshot;

/// What a cell writes to copy a device's state.
const MACRO: &str = "inspect!(";

impl Session {
    /// `code` with each `inspect!(NAME)` replaced by the device's snapshot,
    /// on the same line (errors keep their places), or why it cannot be.
    pub(super) fn expand_snapshots(&mut self, code: &str) -> Result<String, Reply> {
        let mut out = String::with_capacity(code.len());
        let mut rest = code;
        while let Some(at) = rest.find(MACRO) {
            let args = &rest[at + MACRO.len()..];
            let Some(close) = args.find(')') else {
                return Err(Reply::err("`inspect!(NAME)` needs its `)`"));
            };
            let name = args[..close].trim().trim_matches('"').trim();
            out.push_str(&rest[..at]);
            out.push_str(&self.snapshot_literal(name)?);
            rest = &args[close + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }

    fn snapshot_literal(&mut self, name: &str) -> Result<String, Reply> {
        self.poll();
        let Some(running) = &self.running else {
            return Err(Reply::err(format!(
                "`inspect!({name})` copies a device of the running stack, and nothing runs: `:run` starts it"
            )));
        };
        let label = name.to_owned();
        let (tx, rx) = oneshot::channel();
        let _ = running.requests.send(Request::Snapshot(label, tx));
        match self.wait(rx) {
            Ok(Ok(s)) => Ok(rust_literal(&s)),
            Ok(Err(e)) => Err(Reply::err(format!("`inspect!({name})`: {e}"))),
            Err(e) => Err(Reply::err(format!("`inspect!({name})`: {e}"))),
        }
    }

    /// A note for a cell that failed naming a device of the graph as a
    /// variable, if it did.
    pub(super) fn device_hint(&self, error: &str) -> Option<String> {
        let analysis = self.analysis();
        let named = analysis.checked.bindings.iter().find(|b| {
            matches!(b.ty, nym_graph::Type::Device(k) if k != nym_graph::Kind::Job)
                && error.contains(&format!("cannot find value `{}`", b.name.name))
        })?;
        let name = &named.name.name;
        Some(format!(
            "note: `{name}` is a device of the graph: Rust cells run in a process of their own and cannot reach the running stack's devices. \
             Call it from a nym cell (`{name}.get(\"k\")`), or take a copy here with `inspect!({name})` (a libos::snapshot::Snapshot)."
        ))
    }
}

/// `s` as a Rust expression on one line.
fn rust_literal(s: &libos::snapshot::Snapshot) -> String {
    let bytes = |v: &[u8]| {
        let escaped: String = v
            .iter()
            .flat_map(|b| std::ascii::escape_default(*b))
            .map(char::from)
            .collect();
        format!("b\"{escaped}\".to_vec()")
    };
    let lines: Vec<String> = s.lines.iter().map(|l| format!("{l:?}.into()")).collect();
    let entries: Vec<String> = s
        .entries
        .iter()
        .map(|(k, v)| format!("({k:?}.into(), {})", bytes(v)))
        .collect();
    format!(
        "libos::snapshot::Snapshot {{ name: {:?}.into(), kind: {:?}.into(), lines: vec![{}], entries: vec![{}] }}",
        s.name,
        s.kind,
        lines.join(", "),
        entries.join(", ")
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_snapshot_becomes_one_line_of_rust() {
        let s = libos::snapshot::Snapshot {
            name: "state".into(),
            kind: "Kv".into(),
            lines: vec!["1 key(s)".into()],
            entries: vec![("k\"".into(), b"v\n\xff".to_vec())],
        };
        assert_eq!(
            super::rust_literal(&s),
            r#"libos::snapshot::Snapshot { name: "state".into(), kind: "Kv".into(), lines: vec!["1 key(s)".into()], entries: vec![("k\"".into(), b"v\n\xff".to_vec())] }"#
        );
    }
}
