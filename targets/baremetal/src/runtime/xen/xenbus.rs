//! A PV device's frontend as xenbus sees it: its directory in xenstore
//! (`device/vif/0`), where its backend is, and the state handshake with
//! that backend. Every key dom0 wrote is parsed strictly; every failure
//! names the device and what went wrong ([`DeviceError`]).
use super::store::{self, StoreError};
use crate::runtime::kvmclock::monotime;
use alloc::format;
use alloc::string::String;
use nym_xen_abi::xenbus::{self, State};
use nym_xen_abi::DomId;

/// How long a backend may take to reach a state the frontend waits for.
pub const CONNECT_WITHIN: u64 = 30_000_000_000;

/// Why a PV device cannot be used: which one, and why.
pub struct DeviceError {
    /// `netfront (device/vif/0)`.
    pub device: String,
    /// What went wrong.
    pub why: String,
}

impl core::fmt::Display for DeviceError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}: {}", self.device, self.why)
    }
}

/// A frontend's place in xenstore.
pub struct Frontend {
    /// What the driver is called, `netfront`.
    pub driver: &'static str,
    /// Its directory, `device/vif/0`.
    pub dir: String,
    /// The backend's directory.
    pub backend: String,
    /// The backend's domain.
    pub backend_id: DomId,
}

impl Frontend {
    /// The first device of class `class` (`vif`, `vbd`) the toolstack
    /// gave this domain, driven by `driver`; `hint` says how to give it
    /// one when there is none.
    pub fn find(class: &str, driver: &'static str, hint: &str) -> Result<Frontend, DeviceError> {
        let dir = format!("device/{class}");
        let fail = |why: String| DeviceError {
            device: String::from(driver),
            why,
        };
        let entries = match store::directory(&dir) {
            Ok(e) => e,
            Err(e) if e.is_missing() => Default::default(),
            Err(e) => return Err(fail(format!("reading {dir}: {e}"))),
        };
        let Some(first) = entries.first() else {
            return Err(fail(format!("this domain has no {class} device ({hint})")));
        };
        let mut f = Frontend {
            driver,
            dir: format!("{dir}/{first}"),
            backend: String::new(),
            backend_id: 0,
        };
        f.backend = f.read("backend")?;
        let id = f.read("backend-id")?;
        f.backend_id = xenbus::number(&id)
            .and_then(|n| DomId::try_from(n).ok())
            .filter(|n| *n < nym_xen_abi::DOMID_SELF)
            .ok_or_else(|| f.malformed("backend-id", &id))?;
        Ok(f)
    }

    /// An error of this device.
    pub fn error(&self, why: String) -> DeviceError {
        DeviceError {
            device: format!("{} ({})", self.driver, self.dir),
            why,
        }
    }

    fn store_error(&self, what: &str, key: &str, e: StoreError) -> DeviceError {
        if e.is_missing() {
            self.error(format!("the key {key} is missing"))
        } else {
            self.error(format!("{what} {key}: {e}"))
        }
    }

    /// An error for a key holding something it should not.
    pub fn malformed(&self, key: &str, value: &str) -> DeviceError {
        // No `{:?}`: it would link core's escaping tables into every image.
        let shown: String = value
            .chars()
            .take(40)
            .map(|c| {
                if c.is_ascii_graphic() || c == ' ' {
                    c
                } else {
                    '?'
                }
            })
            .collect();
        self.error(format!("the key {key} is malformed: '{shown}'"))
    }

    /// The frontend's key `key`.
    pub fn read(&self, key: &str) -> Result<String, DeviceError> {
        let path = format!("{}/{key}", self.dir);
        store::read(&path).map_err(|e| self.store_error("reading", &path, e))
    }

    /// The backend's key `key`, `None` if it has none.
    pub fn backend_read(&self, key: &str) -> Result<Option<String>, DeviceError> {
        let path = format!("{}/{key}", self.backend);
        match store::read(&path) {
            Ok(v) => Ok(Some(v)),
            Err(e) if e.is_missing() => Ok(None),
            Err(e) => Err(self.store_error("reading", &path, e)),
        }
    }

    /// The backend's numeric key `key`, `None` if it has none.
    pub fn backend_number(&self, key: &str) -> Result<Option<u64>, DeviceError> {
        match self.backend_read(key)? {
            None => Ok(None),
            Some(v) => xenbus::number(&v)
                .map(Some)
                .ok_or_else(|| self.malformed(&format!("{}/{key}", self.backend), &v)),
        }
    }

    /// Writes the frontend's key `key`.
    pub fn write(&self, key: &str, value: &str) -> Result<(), DeviceError> {
        let path = format!("{}/{key}", self.dir);
        store::write(&path, value).map_err(|e| self.store_error("writing", &path, e))
    }

    /// Moves the frontend to `state`.
    pub fn switch(&self, state: State) -> Result<(), DeviceError> {
        self.write("state", state.decimal())
    }

    fn backend_state(&self) -> Result<Option<State>, DeviceError> {
        let key = format!("{}/state", self.backend);
        match self.backend_read("state")? {
            None => Ok(None),
            Some(v) => State::parse(&v)
                .map(Some)
                .ok_or_else(|| self.malformed(&key, &v)),
        }
    }

    /// Waits until the backend is in `want` (or past it), at most
    /// [`CONNECT_WITHIN`]; a backend that closes, or stays short of it, is
    /// an error naming its state.
    pub fn await_backend(&self, want: State) -> Result<(), DeviceError> {
        let key = format!("{}/state", self.backend);
        let token = format!("{}-state", self.driver);
        store::watch(&key, &token).map_err(|e| self.store_error("watching", &key, e))?;
        let until = monotime() + CONNECT_WITHIN;
        let result = loop {
            match self.backend_state() {
                Err(e) => break Err(e),
                Ok(Some(s)) if s.closing() => {
                    break Err(self.error(format!(
                        "the backend ({}) is {} instead of {}",
                        self.backend,
                        s.name(),
                        want.name()
                    )))
                }
                Ok(Some(s)) if s as u8 >= want as u8 => break Ok(()),
                Ok(state) => match store::wait_event(&token, until) {
                    Ok(true) => {}
                    Ok(false) => {
                        break Err(self.error(format!(
                            "the backend ({}) did not reach {} within {} s; it is {}",
                            self.backend,
                            want.name(),
                            CONNECT_WITHIN / 1_000_000_000,
                            state.map_or("without a state", State::name),
                        )))
                    }
                    Err(e) => break Err(self.store_error("watching", &key, e)),
                },
            }
        };
        let _ = store::unwatch(&key, &token);
        result
    }
}
