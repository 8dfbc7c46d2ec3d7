//! The real clock, for the nodes' shells ([`quorate_core::clock`] says why time is passed in).

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use quorate_core::clock::Clock;

/// The system's wall clock and a monotonic clock started with it.
#[derive(Debug)]
pub struct SystemClock {
    started: Instant,
}

impl SystemClock {
    /// A clock whose monotonic reading starts at 0 now.
    pub fn new() -> Self {
        Self {
            started: Instant::now(),
        }
    }
}

impl Default for SystemClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        unix_ms()
    }

    fn mono_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }
}

/// Unix milliseconds now, from the system clock (0 before 1970).
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
