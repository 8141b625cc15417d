//! What a run cost (`nym boot --stats`): the guest's exits to the monitor,
//! by kind, and the time the vCPU spent inside `KVM_RUN`, that is, the
//! guest's own run time with the exits' cost in the kernel.
use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Counted for every run; handed to [`Config::stats`](crate::Config::stats)
/// when the guest ends.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Exits by kind: a hypercall's name (`PUTS`), or what else stopped
    /// the vCPU (`interrupted`, `other`).
    pub exits: BTreeMap<&'static str, u64>,
    /// Time inside `KVM_RUN`, summed.
    pub in_guest: Duration,
}

/// Where a run's [`Stats`] go.
pub type StatsSink = Arc<Mutex<Stats>>;

impl Stats {
    /// All exits, of every kind.
    pub fn total(&self) -> u64 {
        self.exits.values().sum()
    }
}

/// `3 exits (EXIT 1, PUTS 2), 5.07 ms in the guest`.
impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let total = self.total();
        write!(f, "{total} exit{}", if total == 1 { "" } else { "s" })?;
        if !self.exits.is_empty() {
            let kinds: Vec<String> = self.exits.iter().map(|(k, n)| format!("{k} {n}")).collect();
            write!(f, " ({})", kinds.join(", "))?;
        }
        write!(
            f,
            ", {:.2} ms in the guest",
            self.in_guest.as_secs_f64() * 1e3
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_reads_as_its_exits_by_kind_and_its_time() {
        let mut s = Stats::default();
        assert_eq!(s.to_string(), "0 exits, 0.00 ms in the guest");
        s.exits.insert("PUTS", 2);
        s.exits.insert("EXIT", 1);
        s.in_guest = Duration::from_micros(5070);
        assert_eq!(
            s.to_string(),
            "3 exits (EXIT 1, PUTS 2), 5.07 ms in the guest"
        );
        s.exits.clear();
        s.exits.insert("EXIT", 1);
        assert_eq!(s.to_string(), "1 exit (EXIT 1), 5.07 ms in the guest");
    }
}
