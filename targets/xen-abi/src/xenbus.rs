//! The xenbus handshake: a frontend (in the guest) and a backend (in
//! dom0) each keep a `state` key in xenstore and move through these
//! states, reading what the other wrote at each step. Keys are written by
//! dom0 and are input: every value is parsed strictly.

numbered! {
    /// `enum xenbus_state`.
    pub enum State: u32 {
        /// Not yet known.
        Unknown = 0,
        /// Being set up.
        Initialising = 1,
        /// The backend waits for the frontend's details.
        InitWait = 2,
        /// The frontend has written its details.
        Initialised = 3,
        /// Both ends work.
        Connected = 4,
        /// Going away.
        Closing = 5,
        /// Gone.
        Closed = 6,
        /// Being reconfigured.
        Reconfiguring = 7,
        /// Reconfigured.
        Reconfigured = 8,
    }
}

impl State {
    /// Parses a `state` key's value; `None` if it is not a state.
    pub fn parse(text: &str) -> Option<State> {
        State::from_number(u32::try_from(number(text)?).ok()?)
    }

    /// Whether a backend in this state has gone or is going away.
    pub fn closing(self) -> bool {
        matches!(self, State::Closing | State::Closed)
    }
}

/// A non-negative decimal number as xenstore keys hold them: digits only,
/// at most 20 of them, and no overflow.
pub fn number(text: &str) -> Option<u64> {
    if text.is_empty() || text.len() > 20 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.bytes().try_fold(0u64, |n, d| {
        n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

/// A MAC address written `00:16:3e:01:02:03`.
pub fn mac(text: &str) -> Option<[u8; 6]> {
    let mut out = [0u8; 6];
    let mut parts = text.split(':');
    for byte in out.iter_mut() {
        let p = parts.next()?;
        if p.len() != 2 || !p.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        *byte = u8::from_str_radix(p, 16).ok()?;
    }
    parts.next().is_none().then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_parse_strictly() {
        assert_eq!(State::parse("4"), Some(State::Connected));
        assert_eq!(State::parse("2"), Some(State::InitWait));
        for bad in ["", "9", "-1", " 4", "4\n", "04x", "99999999999999999999999"] {
            assert_eq!(State::parse(bad), None, "{bad:?}");
        }
        assert_eq!(State::Initialised.decimal(), "3");
        assert_eq!(State::parse(State::Closed.decimal()), Some(State::Closed));
        // Past u32: not a state, not a wrapped one.
        assert_eq!(State::parse("4294967300"), None);
        assert_eq!(State::InitWait.name(), "InitWait");
        for n in 0..9 {
            let state = State::from_number(n).unwrap();
            assert_eq!(state as u32, n);
            assert_eq!(State::parse(state.decimal()), Some(state));
        }
    }

    #[test]
    fn numbers_and_macs_parse_strictly() {
        assert_eq!(number("0"), Some(0));
        assert_eq!(number("51712"), Some(51712));
        assert_eq!(number("18446744073709551615"), Some(u64::MAX));
        for bad in ["", "18446744073709551616", "1e3", "+1", "0x10", "1 "] {
            assert_eq!(number(bad), None, "{bad:?}");
        }
        assert_eq!(
            mac("00:16:3e:0a:ff:01"),
            Some([0, 0x16, 0x3e, 0x0a, 0xff, 0x01])
        );
        for bad in [
            "",
            "00:16:3e:0a:ff",
            "00:16:3e:0a:ff:01:02",
            "0:16:3e:0a:ff:01",
            "zz:16:3e:0a:ff:01",
            "+1:16:3e:0a:ff:01",
        ] {
            assert_eq!(mac(bad), None, "{bad:?}");
        }
    }
}
