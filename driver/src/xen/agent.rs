//! The host's end of a run on dom0's agent (`dom0/agent`): one TCP
//! connection per guest. The host sends the run (`key value` lines, then
//! `go`); the agent answers with `c TEXT` for each line of the guest's
//! console and `a WHAT ...` for its own news. Closing the connection
//! destroys the domain.
use super::XenError;
use std::io::{BufRead, BufReader, ErrorKind, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::Duration;

/// A run, as the agent takes it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Request {
    /// The domain's name.
    pub name: String,
    /// The xl config, as dom0 sees it.
    pub cfg: String,
    /// dom0's address on the guests' bridge, `10.0.2.2/24`.
    pub bridge: Option<String>,
    /// dom0's port (the host's, forwarded) to the guest's address and port.
    pub forwards: Vec<(u16, Ipv4Addr, u16)>,
    /// Destroy the domain after this many seconds (0: never).
    pub timeout: u64,
    /// A command dom0 runs before it unpauses the domain (`$DOMID` set).
    pub before: Option<String>,
}

impl Request {
    /// The lines sent to the agent.
    pub fn text(&self) -> Result<String, XenError> {
        let mut t = String::new();
        let mut line = |key: &str, value: &str| -> Result<(), XenError> {
            if value.contains(['\n', '\r']) {
                return Err(XenError::Io(format!("a run's {key} cannot span lines")));
            }
            t.push_str(key);
            t.push(' ');
            t.push_str(value);
            t.push('\n');
            Ok(())
        };
        line("name", &self.name)?;
        line("cfg", &self.cfg)?;
        if let Some(b) = &self.bridge {
            line("bridge", b)?;
        }
        for (port, addr, gport) in &self.forwards {
            line("forward", &format!("{port} {addr} {gport}"))?;
        }
        line("timeout", &self.timeout.to_string())?;
        if let Some(b) = &self.before {
            line("before", b)?;
        }
        t.push_str("go\n");
        Ok(t)
    }
}

/// What the agent says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Another guest runs: this one waits its turn.
    Queued,
    /// `xl create` made the domain (paused), with this id.
    Created(u32),
    /// A line of the agent's or `xl`'s output.
    Log(String),
    /// The run failed before the guest ran.
    Failed(String),
    /// A line of the guest's console.
    Console(String),
    /// The domain is gone: `poweroff`, `crash`, `reboot`, `timeout`,
    /// `destroyed`.
    Ended(String),
}

impl Event {
    /// Parses one line from the agent.
    pub fn parse(line: &str) -> Option<Event> {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if let Some(text) = line.strip_prefix("c ") {
            return Some(Event::Console(text.to_owned()));
        }
        let news = line.strip_prefix("a ")?;
        let (what, rest) = news.split_once(' ').unwrap_or((news, ""));
        Some(match what {
            "queued" => Event::Queued,
            "created" => Event::Created(rest.trim().parse().ok()?),
            "log" => Event::Log(rest.to_owned()),
            "failed" => Event::Failed(rest.to_owned()),
            "ended" => Event::Ended(rest.trim().to_owned()),
            _ => return None,
        })
    }
}

/// A run in progress.
pub struct Session {
    reader: BufReader<TcpStream>,
    partial: Vec<u8>,
}

impl Session {
    /// Connects to the agent at `ctl` and sends `request`.
    pub fn start(ctl: SocketAddr, request: &Request) -> Result<Session, XenError> {
        let fail = |e: std::io::Error| XenError::Agent(ctl, e.to_string());
        let mut s = TcpStream::connect_timeout(&ctl, Duration::from_secs(10)).map_err(fail)?;
        s.write_all(request.text()?.as_bytes()).map_err(fail)?;
        s.set_read_timeout(Some(Duration::from_millis(200)))
            .map_err(fail)?;
        Ok(Session {
            reader: BufReader::new(s),
            partial: Vec::new(),
        })
    }

    /// The next event; `Ok(None)` if none came within 200 ms. The
    /// connection closing early is an error.
    pub fn next_event(&mut self) -> Result<Option<Event>, XenError> {
        loop {
            match self.reader.read_until(b'\n', &mut self.partial) {
                Ok(0) => {
                    return Err(XenError::Io(
                        "dom0's agent closed the connection before the guest ended".into(),
                    ))
                }
                Ok(_) if self.partial.ends_with(b"\n") => {
                    let line = String::from_utf8_lossy(&self.partial[..self.partial.len() - 1])
                        .into_owned();
                    self.partial.clear();
                    if let Some(e) = Event::parse(&line) {
                        return Ok(Some(e));
                    }
                }
                Ok(_) => {}
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    return Ok(None)
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(XenError::Io(format!("reading from dom0's agent: {e}"))),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_is_lines_ending_in_go() {
        let r = Request {
            name: "web".into(),
            cfg: "/host/p/web.cfg".into(),
            bridge: Some("10.0.2.2/24".into()),
            forwards: vec![(8080, Ipv4Addr::new(10, 0, 2, 15), 80)],
            timeout: 30,
            before: None,
        };
        assert_eq!(
            r.text().unwrap(),
            "name web\ncfg /host/p/web.cfg\nbridge 10.0.2.2/24\nforward 8080 10.0.2.15 80\ntimeout 30\ngo\n"
        );
        let bad = Request {
            name: "a\nb".into(),
            ..r
        };
        assert!(bad.text().is_err());
    }

    #[test]
    fn events_parse_and_junk_is_skipped() {
        assert_eq!(
            Event::parse("c hello"),
            Some(Event::Console("hello".into()))
        );
        assert_eq!(Event::parse("c "), Some(Event::Console(String::new())));
        assert_eq!(Event::parse("a created 7\r"), Some(Event::Created(7)));
        assert_eq!(
            Event::parse("a ended poweroff"),
            Some(Event::Ended("poweroff".into()))
        );
        assert_eq!(Event::parse("a queued"), Some(Event::Queued));
        assert_eq!(Event::parse("a created x"), None);
        assert_eq!(Event::parse("a nonsense"), None);
        assert_eq!(Event::parse("garbage"), None);
    }
}
