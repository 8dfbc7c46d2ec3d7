//! Time, passed in. Nodes read the time through a [`Clock`] they are given: the real one in
//! production ([`quorate_wire::clock::SystemClock`]), a [`ManualClock`] in tests, which lets
//! a test move a velocity window, a timelock or a nonce lifetime forward without sleeping.
//!
//! [`quorate_wire::clock::SystemClock`]: ../../quorate_wire/clock/struct.SystemClock.html

use std::sync::atomic::{AtomicU64, Ordering};

/// A source of time.
pub trait Clock: Send + Sync + 'static {
    /// Wall-clock time, Unix milliseconds: what intents, policies and ledgers are dated in.
    fn now_ms(&self) -> u64;
    /// Milliseconds on a monotonic clock from an arbitrary origin. Lifetimes that must never
    /// be extended by a clock step (a nonce's) run on this one.
    fn mono_ms(&self) -> u64;
}

/// A clock that moves only when told to. Both readings advance together; the wall clock can
/// also be set on its own (a clock step), the monotonic one never goes back.
#[derive(Debug)]
pub struct ManualClock {
    wall: AtomicU64,
    mono: AtomicU64,
}

impl ManualClock {
    /// A clock reading `wall_ms` (Unix ms), its monotonic reading at 0.
    pub fn new(wall_ms: u64) -> Self {
        Self {
            wall: AtomicU64::new(wall_ms),
            mono: AtomicU64::new(0),
        }
    }

    /// Moves both readings forward by `ms`.
    pub fn advance(&self, ms: u64) {
        self.wall.fetch_add(ms, Ordering::SeqCst);
        self.mono.fetch_add(ms, Ordering::SeqCst);
    }

    /// Sets the wall clock alone (a step, either way); the monotonic clock does not move.
    pub fn set_wall(&self, wall_ms: u64) {
        self.wall.store(wall_ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        self.wall.load(Ordering::SeqCst)
    }

    fn mono_ms(&self) -> u64 {
        self.mono.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_told() {
        let c = ManualClock::new(1_000);
        assert_eq!((c.now_ms(), c.mono_ms()), (1_000, 0));
        c.advance(250);
        assert_eq!((c.now_ms(), c.mono_ms()), (1_250, 250));
        // A step back of the wall clock leaves the monotonic reading where it was.
        c.set_wall(500);
        assert_eq!((c.now_ms(), c.mono_ms()), (500, 250));
    }
}
