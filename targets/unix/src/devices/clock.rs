//! The host's clocks: monotonic time from `Instant`, wall time from `SystemTime`.
use super::InitError;
use libos::{MonoClock, WallClock};
use std::time::{Duration, Instant, SystemTime};

/// A monotonic clock counting from the moment it was made (`clock::mono()`).
pub struct Mono {
    origin: Instant,
}

impl Mono {
    /// A clock whose origin is now.
    pub fn new() -> Result<Self, InitError> {
        Ok(Self {
            origin: Instant::now(),
        })
    }
}

impl MonoClock for Mono {
    fn elapsed_ns(&self) -> u64 {
        nanos(self.origin.elapsed())
    }
}

/// The host's time of day (`clock::wall()`).
pub struct Wall {
    _private: (),
}

impl Wall {
    /// The host's real-time clock.
    pub fn new() -> Result<Self, InitError> {
        Ok(Self { _private: () })
    }
}

impl WallClock for Wall {
    fn now_unix_ns(&self) -> u64 {
        // A host clock set before 1970 has no unsigned reading; 0 is the
        // nearest one.
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, nanos)
    }
}

/// `d` in nanoseconds, saturating after 584 years.
fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mono_never_goes_backwards_and_starts_near_zero() {
        let clock = Mono::new().unwrap();
        let first = clock.elapsed_ns();
        assert!(
            first < 1_000_000_000,
            "the origin is the moment of construction"
        );
        let mut last = first;
        for _ in 0..10_000 {
            let now = clock.elapsed_ns();
            assert!(now >= last, "{now} < {last}");
            last = now;
        }
        std::thread::sleep(Duration::from_millis(2));
        assert!(clock.elapsed_ns() >= first + 2_000_000);
    }

    #[test]
    fn wall_is_after_2020_and_close_to_system_time() {
        const JAN_1_2020_NS: u64 = 1_577_836_800 * 1_000_000_000;
        let now = Wall::new().unwrap().now_unix_ns();
        assert!(now > JAN_1_2020_NS, "{now}");
        let std_now = nanos(
            SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap(),
        );
        assert!(std_now.abs_diff(now) < 5_000_000_000, "{std_now} vs {now}");
    }

    #[test]
    fn durations_saturate_instead_of_wrapping() {
        assert_eq!(nanos(Duration::from_secs(3)), 3_000_000_000);
        assert_eq!(nanos(Duration::MAX), u64::MAX);
    }
}
