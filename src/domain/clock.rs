//! The source of the current time, injected so tests control it.

use std::sync::atomic::{AtomicI64, Ordering};

use super::Timestamp;

/// Returns the current instant. Every rule that depends on time reads it here.
pub trait Clock: Send + Sync + 'static {
    /// Returns the current instant in UTC.
    fn now(&self) -> Timestamp;
}

/// The operating system's clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        let now = chrono::Utc::now();
        // The system clock reads a year between 1 and 9999 on any working host.
        Timestamp::from_unix(now.timestamp(), now.timestamp_subsec_nanos() as i32)
            .unwrap_or_else(|| Timestamp::from_micros(0).expect("the epoch is in range"))
    }
}

/// A clock that tests set and move by hand.
#[derive(Debug)]
pub struct ManualClock {
    micros: AtomicI64,
}

impl ManualClock {
    /// Creates a clock stopped at `start`.
    pub fn new(start: Timestamp) -> Self {
        Self {
            micros: AtomicI64::new(start.as_micros()),
        }
    }

    /// Sets the current instant.
    pub fn set(&self, now: Timestamp) {
        self.micros.store(now.as_micros(), Ordering::SeqCst);
    }

    /// Moves the clock forward by whole seconds.
    ///
    /// # Panics
    ///
    /// Panics when the result passes year 9999; only tests call this.
    pub fn advance_seconds(&self, seconds: i64) {
        let next = self
            .now()
            .checked_add_micros(seconds * 1_000_000)
            .expect("a test moved the clock past year 9999");
        self.set(next);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_micros(self.micros.load(Ordering::SeqCst))
            .expect("set from a valid Timestamp")
    }
}
