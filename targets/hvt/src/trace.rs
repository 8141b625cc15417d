//! The guest's scheduler log (`TRACE`, for `nym run --target kvm --trace
//! FILE`): the guest records its polls, wake-ups, sleeps and device calls
//! in a buffer of its own and hands them over in batches; the monitor
//! checks each batch against guest memory and keeps the events for the
//! caller, who writes them out once the guest has ended.
use crate::hypercall::Violation;
use crate::memory::{GuestMemory, GuestRange};
use nym_hvt_abi as abi;
use std::sync::{Arc, Mutex};

/// The most events kept; later ones are counted, not kept.
pub const MAX_EVENTS: usize = 4_000_000;

/// What a guest handed over.
#[derive(Debug, Default)]
pub struct GuestLog {
    /// Names by id (tracks and calls), as the guest gave them.
    pub names: Vec<String>,
    /// The events, in the order they were handed over ([`abi::TRACE_NAME`]
    /// events are kept in `names` instead).
    pub events: Vec<abi::TraceEvent>,
    /// Events past [`MAX_EVENTS`], dropped.
    pub dropped: u64,
    /// Batches handed over.
    pub batches: u64,
    /// The guest's buffer and the address of its count of waiting events,
    /// as the guest named them when it asked.
    pub buffer: Option<(u64, u64)>,
}

/// Where a monitor puts its guest's log: the caller keeps a clone and
/// reads it after [`crate::run`] returns.
pub type TraceSink = Arc<Mutex<GuestLog>>;

impl GuestLog {
    /// The name of id `id`, or a stand-in for one never given.
    pub fn name(&self, id: u64) -> String {
        usize::try_from(id)
            .ok()
            .and_then(|i| self.names.get(i))
            .filter(|n| !n.is_empty())
            .cloned()
            .unwrap_or_else(|| format!("#{id}"))
    }

    /// Takes the events still waiting in the guest's buffer, when the
    /// guest ended without handing them over (stopped from outside). What
    /// is not inside guest memory, or a count past the buffer's room, is
    /// left: the guest is gone, and its log ends there.
    pub(crate) fn drain(&mut self, mem: &GuestMemory) {
        let Some((data, pending)) = self.buffer.take() else {
            return;
        };
        let Ok(count) = mem.read::<u64>(pending) else {
            return;
        };
        let count = count.min(abi::TRACE_MAX);
        let size = std::mem::size_of::<abi::TraceEvent>() as u64;
        if let Ok(batch) = mem.range(data, count * size) {
            let _ = self.take(mem, batch, count);
        }
    }

    /// Takes a batch of `count` events at `batch` (checked to be inside
    /// guest memory by the decoder); a name that is not inside guest
    /// memory, too long, or an id past the names' bound breaks the ABI.
    pub(crate) fn take(
        &mut self,
        mem: &GuestMemory,
        batch: GuestRange,
        count: u64,
    ) -> Result<(), Violation> {
        let violation = |problem: String| Violation {
            call: "TRACE".into(),
            problem,
        };
        self.batches += 1;
        let size = std::mem::size_of::<abi::TraceEvent>() as u64;
        for i in 0..count {
            let e: abi::TraceEvent = mem
                .read(batch.start() + i * size)
                .map_err(|e| violation(e.to_string()))?;
            if e.kind == abi::TRACE_NAME {
                if e.dur > abi::TRACE_NAME_MAX || e.track >= abi::TRACE_MAX * 16 {
                    return Err(violation(format!(
                        "name {} of {} bytes: at most {} bytes and ids below {}",
                        e.track,
                        e.dur,
                        abi::TRACE_NAME_MAX,
                        abi::TRACE_MAX * 16
                    )));
                }
                let text = mem
                    .range(e.at, e.dur)
                    .map_err(|b| violation(format!("name {}: {b}", e.track)))?;
                let id = e.track as usize;
                if self.names.len() <= id {
                    self.names.resize(id + 1, String::new());
                }
                self.names[id] = String::from_utf8_lossy(&mem.to_vec(text)).into_owned();
                continue;
            }
            if self.events.len() < MAX_EVENTS {
                self.events.push(e);
            } else {
                self.dropped += 1;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hypercall::{decode, Call};
    use crate::memory::MIN_SIZE;
    use abi::nr;

    use abi::TraceEvent as E;

    /// Writes `events` at 0x4000 and a `Trace` naming `count` of them at
    /// 0x2000; what the decoder and the log make of it.
    fn hand_over(
        m: &mut GuestMemory,
        log: &mut GuestLog,
        events: &[abi::TraceEvent],
        count: u64,
    ) -> Result<(), Violation> {
        for (i, e) in events.iter().enumerate() {
            m.write(0x4000 + 40 * i as u64, e).unwrap();
        }
        let t = abi::Trace {
            data: 0x4000,
            count,
            ..Default::default()
        };
        m.write(0x2000, &t).unwrap();
        let port = abi::PORT_BASE + nr::TRACE;
        match decode(m, port, &0x2000u32.to_le_bytes())? {
            Call::Trace { batch, count, .. } => log.take(m, batch, count),
            other => panic!("decoded as {other:?}"),
        }
    }

    #[test]
    fn a_batch_is_kept_with_its_names_and_a_hostile_one_is_a_violation() {
        let mut m = GuestMemory::new(MIN_SIZE).unwrap();
        let mut log = GuestLog::default();
        m.write_from(m.range(0x3000, 9).unwrap(), b"job hello");
        let batch = [
            E::new(abi::TRACE_NAME, 1, 0x3000, 9, 0),
            E::new(abi::TRACE_POLL, 1, 100, 20, 0),
            E::new(abi::TRACE_CALL, 1, 105, 5, 7),
            E::new(abi::TRACE_WAKE, 0, 130, 0, 0),
        ];
        hand_over(&mut m, &mut log, &batch, 4).unwrap();
        assert_eq!(log.name(1), "job hello");
        assert_eq!(log.name(7), "#7", "a name never given keeps its id");
        assert_eq!(log.events, batch[1..].to_vec());
        // Asking (none handed over) keeps nothing more.
        hand_over(&mut m, &mut log, &[], 0).unwrap();
        assert_eq!((log.events.len(), log.batches), (3, 2));

        for (events, count, expect) in [
            (vec![], abi::TRACE_MAX + 1, "at most 1024 per call"),
            (
                vec![E::new(abi::TRACE_NAME, 2, MIN_SIZE - 4, 9, 0)],
                1,
                "name 2: ",
            ),
            (
                vec![E::new(abi::TRACE_NAME, 2, 0x3000, 4096, 0)],
                1,
                "at most 256 bytes",
            ),
            (
                vec![E::new(abi::TRACE_NAME, u64::MAX, 0x3000, 9, 0)],
                1,
                "ids below",
            ),
        ] {
            let err = hand_over(&mut m, &mut log, &events, count).unwrap_err();
            assert!(err.to_string().contains(expect), "{err}");
            assert!(err.to_string().starts_with("hypercall TRACE"), "{err}");
        }
        // A batch reaching past memory is refused by the decoder.
        m.write(
            0x2000,
            &abi::Trace {
                data: MIN_SIZE - 40,
                count: 2,
                ..Default::default()
            },
        )
        .unwrap();
        let err = decode(&m, abi::PORT_BASE + nr::TRACE, &0x2000u32.to_le_bytes()).unwrap_err();
        assert!(err.to_string().contains("reach past the end"), "{err}");
    }

    /// A guest stopped from outside leaves events in its buffer: the
    /// monitor reads as many as its count says, at most the buffer's room,
    /// and nothing from a count outside memory.
    #[test]
    fn a_stopped_guests_waiting_events_are_drained_from_its_buffer() {
        let mut m = GuestMemory::new(MIN_SIZE).unwrap();
        let mut log = GuestLog::default();
        for i in 0..3u64 {
            m.write(0x4000 + 40 * i, &E::new(abi::TRACE_POLL, 1, 10 * i, 5, 0))
                .unwrap();
        }
        m.write(0x3000, &2u64).unwrap();
        log.buffer = Some((0x4000, 0x3000));
        log.drain(&m);
        assert_eq!(log.events.len(), 2, "the count, not the buffer's room");
        assert_eq!(log.buffer, None, "drained once");
        log.drain(&m);
        assert_eq!(log.events.len(), 2);

        m.write(0x3000, &u64::MAX).unwrap();
        log.buffer = Some((MIN_SIZE - 80, 0x3000));
        log.drain(&m);
        assert_eq!(log.events.len(), 2, "a buffer past memory is left");
        log.buffer = Some((0x4000, MIN_SIZE + 8));
        log.drain(&m);
        assert_eq!(log.events.len(), 2, "a count outside memory is left");
    }
}
