//! How many refusal records a node writes: junk is counted, not recorded one by one.

use std::collections::BTreeMap;

use super::Event;

/// Refusal records of one kind (request and rule) a node writes one by one in a second; the
/// rest of that second are counted into one record.
pub const REFUSALS_PER_SECOND: u32 = 32;

/// What to do with a refusal about to be recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admit {
    /// Record it.
    Record,
    /// Counted only: written later, in one record per kind and second, by
    /// [`RefusalThrottle::drain`] (see [`RefusalThrottle::arm`]).
    Counted,
}

/// Keeps a coordinator that sends junk from buying one audit record (and one disk sync) per
/// message, without losing count: each kind of refusal gets [`REFUSALS_PER_SECOND`] records a
/// second, and the refusals past that are written as one `refused` record with a `count` once
/// the second is over ([`RefusalThrottle::drain`]). A kind is the request, the rule and the
/// withdrawal the refusal names, so refusals of real withdrawals are never buried under junk
/// or under each other.
///
/// The caller runs one timer at a time: after each refusal it asks [`RefusalThrottle::arm`],
/// which says whether to start one; the timer waits until the second is over, drains, and goes
/// on while [`RefusalThrottle::drain`] says counts are still owed (the node's clock stood still,
/// or runs behind the timer's). So every count is written, however the clock moves.
#[derive(Debug, Default)]
pub struct RefusalThrottle {
    /// (request, rule, withdrawal) → (second, recorded in it, counted in it).
    slots: BTreeMap<(String, String, String), (u64, u32, u64)>,
    /// Counts of seconds that ended before a drain ran.
    owed: Vec<Event>,
    /// Whether the caller's timer is running (until a drain leaves nothing owed).
    armed: bool,
    /// The second of the latest refusal: slots of other seconds are retired when it changes,
    /// so `slots` holds one second's kinds, however many withdrawals were ever refused.
    second: u64,
}

fn counted_event(
    (request, rule, withdrawal): &(String, String, String),
    second: u64,
    n: u64,
) -> Event {
    let mut e = Event::refused(request, rule, "repeated refusals, counted")
        .with("count", n.to_string())
        .with("second", second.to_string());
    if !withdrawal.is_empty() {
        e = e.with("withdrawal", withdrawal);
    }
    e
}

impl RefusalThrottle {
    /// A throttle with nothing counted.
    pub fn new() -> Self {
        Self::default()
    }

    /// Decides about one refusal of `request` under `rule` (naming `withdrawal`, or "") at
    /// `now_ms`.
    pub fn admit(&mut self, request: &str, rule: &str, withdrawal: &str, now_ms: u64) -> Admit {
        let second = now_ms / 1000;
        if second != self.second {
            self.retire(second);
            self.second = second;
        }
        let key = (
            request.to_string(),
            rule.to_string(),
            withdrawal.to_string(),
        );
        let slot = self.slots.entry(key).or_insert((second, 0, 0));
        if slot.1 < REFUSALS_PER_SECOND {
            slot.1 += 1;
            Admit::Record
        } else {
            slot.2 += 1;
            Admit::Counted
        }
    }

    /// Whether counts are owed and no timer is running: if true, the caller starts one (and
    /// it counts as running from now). Asked after a refusal was counted: only a count can
    /// make anything owed, and a timer runs until nothing is.
    pub fn arm(&mut self) -> bool {
        if self.armed || !self.owes() {
            return false;
        }
        self.armed = true;
        true
    }

    /// Whether any refusal is counted and not yet written.
    fn owes(&self) -> bool {
        !self.owed.is_empty() || self.slots.values().any(|slot| slot.2 > 0)
    }

    /// The records owed for seconds that are over: one `refused` event per kind with the
    /// number of refusals counted and not recorded one by one. Run by the caller's timer; the
    /// flag is true while counts are still owed (of the second `now_ms` is in), and the timer
    /// then runs again after that second; false ends it.
    pub fn drain(&mut self, now_ms: u64) -> (Vec<Event>, bool) {
        self.retire(now_ms / 1000);
        let out = std::mem::take(&mut self.owed);
        self.armed = self.owes();
        (out, self.armed)
    }

    /// Drops the slots of seconds other than `second`, setting their counts aside as owed.
    fn retire(&mut self, second: u64) {
        let owed = &mut self.owed;
        self.slots.retain(|key, slot| {
            if slot.0 == second {
                return true;
            }
            if slot.2 > 0 {
                owed.push(counted_event(key, slot.0, slot.2));
            }
            false
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_past_the_rate_are_counted_not_lost() {
        let mut t = RefusalThrottle::new();
        let at = 5_000_000;
        for _ in 0..REFUSALS_PER_SECOND {
            assert_eq!(t.admit("commit", "bad-request", "", at), Admit::Record);
        }
        assert!(!t.arm(), "nothing counted, no timer");
        assert_eq!(
            t.admit("commit", "bad-request", "", at + 10),
            Admit::Counted
        );
        assert!(t.arm(), "the first count starts the timer");
        for _ in 0..99 {
            assert_eq!(
                t.admit("commit", "bad-request", "", at + 20),
                Admit::Counted
            );
            assert!(!t.arm(), "one timer at a time");
        }
        // Another request, or the same refusal of a real withdrawal, has its own allowance.
        assert_eq!(t.admit("sign", "bad-request", "", at), Admit::Record);
        assert_eq!(
            t.admit("commit", "bad-request", "wd-1", at + 30),
            Admit::Record
        );
        // Nothing written while the second lasts, and the timer goes on.
        assert_eq!(t.drain(at + 999), (vec![], true));
        // A new second before the drain: the old count is kept aside, and the new second has
        // its allowance again, no more.
        for _ in 0..REFUSALS_PER_SECOND {
            assert_eq!(
                t.admit("commit", "bad-request", "", at + 1_500),
                Admit::Record
            );
        }
        assert_eq!(
            t.admit("commit", "bad-request", "", at + 1_500),
            Admit::Counted
        );
        assert!(!t.arm(), "the timer still runs");
        let (owed, again) = t.drain(at + 1_500);
        assert!(again, "the count of second 5001 is still owed");
        assert_eq!(owed.len(), 1);
        assert_eq!(owed[0].field("count"), Some("100"));
        assert_eq!(owed[0].field("rule"), Some("bad-request"));
        assert_eq!(owed[0].field("request"), Some("commit"));
        assert_eq!(owed[0].field("second"), Some("5000"));
        let (owed, again) = t.drain(at + 3_000);
        assert!(!again, "nothing owed: the timer ends");
        assert_eq!(owed.len(), 1);
        assert_eq!(owed[0].field("count"), Some("1"));
        assert_eq!(t.drain(at + 4_000), (vec![], false), "counted once");
        assert!(!t.arm());
    }

    /// Refusals under the rate, each naming its own withdrawal, leave only the latest
    /// second's kinds behind: the throttle does not grow with every id ever refused.
    #[test]
    fn the_slots_hold_one_second() {
        let mut t = RefusalThrottle::new();
        for k in 0..1_000u64 {
            let id = format!("wd-{k}");
            let at = 9_000_000 + k * 500;
            assert_eq!(
                t.admit("ledger-notice", "ledger-notice-invalid", &id, at),
                Admit::Record
            );
        }
        assert_eq!(t.slots.len(), 2, "the two refusals of the last second");
        assert!(!t.arm(), "nothing counted, nothing owed");
    }

    /// A drain that finds its second not over (the node's clock stood still, or runs behind
    /// the timer's) keeps the timer going until the count is written; a later count then
    /// starts a new timer.
    #[test]
    fn a_count_is_written_however_the_clock_moves() {
        let mut t = RefusalThrottle::new();
        let at = 7_000_500;
        for _ in 0..=REFUSALS_PER_SECOND {
            t.admit("presign", "bad-request", "", at);
        }
        assert!(t.arm());
        // The timer fires, but the node's clock still reads the same second, twice.
        assert_eq!(t.drain(at + 1), (vec![], true));
        assert_eq!(t.drain(at + 499), (vec![], true));
        let (owed, again) = t.drain(at + 1_000);
        assert_eq!((owed.len(), again), (1, false));
        assert_eq!(owed[0].field("count"), Some("1"));
        for _ in 0..=REFUSALS_PER_SECOND {
            t.admit("presign", "bad-request", "", at + 5_000);
        }
        assert!(t.arm(), "a new timer once the last one ended");
    }
}
