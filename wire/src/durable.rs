//! Group commit: many writers, one flush.
//!
//! A node makes a write durable by flushing its database, and a flush costs a disk sync whatever
//! it carries. Under load, writers that ask for durability while a flush is running wait for the
//! next one, which then carries all of their writes: one sync for a group instead of one each.
//! The guarantee for each caller is unchanged: [`GroupCommit::sync`] returns only after a flush
//! that *started after the call* has finished, so every write the caller made before calling is
//! on disk.
//!
//! Callers block (it is a disk sync): call it from a blocking thread, never on the async reactor.
//! sled's own `flush_async` is not used: it deadlocks under concurrent callers (sled #1308).
//!
//! **Linger.** Under load, callers arrive one at a time while a flush runs, so the next flush
//! would start as soon as the first of them asks and carry only those that came during the
//! previous one. Instead the caller that starts a flush waits, at most [`LINGER`], until as many
//! callers have asked as the previous flush served. A lone caller (the previous flush served one)
//! never waits, so sequential latency is unchanged; under load each flush carries more writes,
//! and every flush costs a disk sync and a hop to sled's I/O thread whatever it carries.

use std::{
    sync::{Condvar, Mutex, MutexGuard},
    time::{Duration, Instant},
};

/// The longest a flush waits for callers to join it (see the module's documentation).
pub const LINGER: Duration = Duration::from_micros(500);

/// Coalesces concurrent flush requests. One per database.
pub struct GroupCommit {
    state: Mutex<State>,
    done: Condvar,
    /// Signalled when a caller asks while a flush is lingering.
    arrived: Condvar,
    linger: Duration,
}

impl Default for GroupCommit {
    fn default() -> Self {
        Self::with_linger(LINGER)
    }
}

#[derive(Default)]
struct State {
    /// Flushes started so far (the generation of the newest one).
    started: u64,
    /// The generation of the newest finished flush.
    finished: u64,
    /// The generation of the newest flush that succeeded.
    succeeded: u64,
    /// Whether a flush is running now.
    running: bool,
    /// The error of the newest finished flush, if it failed.
    error: Option<String>,
    /// Callers served (for metrics; the flushes run are `started`).
    callers: u64,
    /// Callers waiting for the next flush, not yet started.
    queued: u64,
    /// Callers the newest started flush carries: how many the next one lingers for.
    last_group: u64,
    /// Whether the next flush is lingering for callers (who then signal `arrived`).
    lingering: bool,
}

impl GroupCommit {
    /// A group commit with nothing flushed yet, lingering at most [`LINGER`].
    pub fn new() -> Self {
        Self::default()
    }

    /// A group commit whose flushes wait at most `linger` for callers to join them.
    pub fn with_linger(linger: Duration) -> Self {
        Self {
            state: Mutex::default(),
            done: Condvar::new(),
            arrived: Condvar::new(),
            linger,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Returns once a flush that started after this call has finished: every write made
    /// before the call is then durable. `flush` is the database's own (blocking) flush; at most
    /// one runs at a time, and one run serves every caller waiting for it. A failed flush
    /// fails every caller it would have served.
    pub fn sync<E: std::fmt::Display>(
        &self,
        flush: impl Fn() -> Result<(), E>,
    ) -> Result<(), String> {
        let mut st = self.lock();
        st.callers += 1;
        // The first flush that starts from now on covers our writes.
        let needed = st.started + 1;
        st.queued += 1;
        if st.lingering {
            self.arrived.notify_one();
        }
        loop {
            // Any successful flush that started after our call covers our writes; if every
            // flush since then failed, so do we.
            if st.succeeded >= needed {
                return Ok(());
            }
            if st.finished >= needed {
                return Err(st.error.clone().unwrap_or_else(|| "flush failed".into()));
            }
            if !st.running {
                st.running = true;
                st = self.linger(st);
                st.started += 1;
                st.last_group = st.queued;
                st.queued = 0;
                let generation = st.started;
                drop(st);
                // Ends the run even if `flush` panics, so that no caller waits forever.
                let mut ending = Ending {
                    gc: self,
                    generation,
                    result: Err("flush panicked".into()),
                };
                ending.result = flush().map_err(|e| e.to_string());
                drop(ending);
                st = self.lock();
                continue;
            }
            st = self.done.wait(st).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// Waits, at most the linger, until as many callers are queued for the next flush as the
    /// previous one carried.
    fn linger<'a>(&'a self, mut st: MutexGuard<'a, State>) -> MutexGuard<'a, State> {
        if st.queued >= st.last_group || self.linger.is_zero() {
            return st;
        }
        // A linger too long to add to the clock waits without a deadline of its own.
        let deadline = Instant::now().checked_add(self.linger);
        st.lingering = true;
        while st.queued < st.last_group {
            let left =
                deadline.map_or(self.linger, |d| d.saturating_duration_since(Instant::now()));
            if left.is_zero() {
                break;
            }
            st = match self.arrived.wait_timeout(st, left) {
                Ok((st, _)) => st,
                Err(p) => p.into_inner().0,
            };
        }
        st.lingering = false;
        st
    }

    /// Flushes run and callers served so far.
    pub fn counts(&self) -> (u64, u64) {
        let st = self.lock();
        (st.started, st.callers)
    }

    /// Callers queued for the next flush, and whether it is lingering for more (for tests).
    #[cfg(test)]
    fn queue(&self) -> (u64, bool) {
        let st = self.lock();
        (st.queued, st.lingering)
    }
}

/// Records the end of one flush run and wakes everyone waiting for it.
struct Ending<'a> {
    gc: &'a GroupCommit,
    generation: u64,
    result: Result<(), String>,
}

impl Drop for Ending<'_> {
    fn drop(&mut self) {
        let mut st = self.gc.lock();
        st.running = false;
        st.finished = self.generation;
        match &self.result {
            Ok(()) => st.succeeded = self.generation,
            Err(e) => st.error = Some(e.clone()),
        }
        self.gc.done.notify_all();
    }
}

/// Removes the incomplete snapshot files sled 0.34 may leave in `dir` when its process is
/// killed, before the database is opened, and returns them.
///
/// sled writes a snapshot to `snap.<lsn>.generating`, syncs it, renames it to `snap.<lsn>`, and
/// only then reclaims the log it covers. On open it reads the newest `snap.*` file, a
/// `.generating` one included, so a process killed while writing one leaves a database that
/// no longer opens ("Read corrupted data"; sled issues #1527, #1533). Such a file is incomplete
/// by construction and the log it would cover is still there, so removing it loses nothing.
pub fn remove_incomplete_snapshots(
    dir: &std::path::Path,
) -> std::io::Result<Vec<std::path::PathBuf>> {
    let mut removed = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(removed),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let path = entry?.path();
        let incomplete = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("snap.") && n.ends_with(".generating"));
        if incomplete {
            std::fs::remove_file(&path)?;
            removed.push(path);
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    };

    /// A fake disk: `written` counts writes made; a flush makes everything written so far
    /// durable, slowly, so that callers pile up behind it.
    #[derive(Default)]
    struct Disk {
        written: AtomicU64,
        durable: AtomicU64,
    }

    impl Disk {
        fn flush(&self) -> Result<(), String> {
            let upto = self.written.load(Ordering::SeqCst);
            std::thread::sleep(std::time::Duration::from_millis(2));
            self.durable.fetch_max(upto, Ordering::SeqCst);
            Ok(())
        }
    }

    #[test]
    fn every_caller_returns_after_its_write_is_durable_and_flushes_are_shared() {
        for linger in [LINGER, Duration::ZERO, Duration::from_millis(5)] {
            every_caller_durable_with(linger);
        }
    }

    fn every_caller_durable_with(linger: Duration) {
        let disk = Arc::new(Disk::default());
        let gc = Arc::new(GroupCommit::with_linger(linger));
        let threads: Vec<_> = (0..16)
            .map(|_| {
                let (disk, gc) = (disk.clone(), gc.clone());
                std::thread::spawn(move || {
                    for _ in 0..20 {
                        let mine = disk.written.fetch_add(1, Ordering::SeqCst) + 1;
                        gc.sync(|| disk.flush()).unwrap();
                        // Our write (number `mine`) must be covered by a finished flush.
                        assert!(
                            disk.durable.load(Ordering::SeqCst) >= mine,
                            "sync returned before write {mine} was durable"
                        );
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let (flushes, callers) = gc.counts();
        assert_eq!(callers, 320);
        assert!(
            flushes < callers,
            "no flush was shared: {flushes} flushes for {callers} callers (linger {linger:?})"
        );
    }

    /// Polls `cond` until it holds (a minute at most: only a broken implementation waits).
    fn wait_until(what: &str, cond: impl Fn() -> bool) {
        let give_up = Instant::now() + Duration::from_secs(60);
        while !cond() {
            assert!(Instant::now() < give_up, "never happened: {what}");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Makes the flushes of `gc` carry two callers: one flush is held open while two more
    /// callers queue behind it, and those two then share the next.
    fn serve_a_group_of_two(gc: &Arc<GroupCommit>) {
        let release = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let held = {
            let (gc, release) = (gc.clone(), release.clone());
            std::thread::spawn(move || {
                gc.sync(|| {
                    wait_until("the held flush is released", || {
                        release.load(Ordering::SeqCst)
                    });
                    Ok::<(), String>(())
                })
            })
        };
        wait_until("the held flush runs", || gc.counts().0 == 1);
        let two: Vec<_> = (0..2)
            .map(|_| {
                let gc = gc.clone();
                std::thread::spawn(move || gc.sync(|| Ok::<(), String>(())))
            })
            .collect();
        wait_until("two callers queue", || gc.queue().0 == 2);
        release.store(true, Ordering::SeqCst);
        for t in two.into_iter().chain([held]) {
            t.join().unwrap().unwrap();
        }
        assert_eq!(
            gc.counts(),
            (2, 3),
            "the two queued callers shared one flush"
        );
    }

    #[test]
    fn a_lone_caller_never_lingers() {
        // A linger long enough that waiting for it could not go unnoticed.
        let linger = Duration::from_secs(30);
        let gc = GroupCommit::with_linger(linger);
        let started = Instant::now();
        for _ in 0..3 {
            gc.sync(|| Ok::<(), String>(())).unwrap();
        }
        assert_eq!(gc.counts(), (3, 3));
        assert!(
            started.elapsed() < linger,
            "sequential callers waited for a linger"
        );
    }

    #[test]
    fn a_flush_lingers_for_as_many_callers_as_the_previous_one_carried() {
        let gc = Arc::new(GroupCommit::with_linger(Duration::MAX));
        serve_a_group_of_two(&gc);
        // One caller now waits for a second before its flush starts ...
        let first = {
            let gc = gc.clone();
            std::thread::spawn(move || gc.sync(|| Ok::<(), String>(())))
        };
        wait_until("the next flush lingers", || gc.queue() == (1, true));
        assert_eq!(gc.counts().0, 2, "no flush started while lingering");
        // ... and the second one's write rides on the same flush.
        gc.sync(|| Ok::<(), String>(())).unwrap();
        first.join().unwrap().unwrap();
        assert_eq!(gc.counts(), (3, 5));
    }

    #[test]
    fn a_flush_nobody_joins_starts_when_the_linger_ends() {
        let linger = Duration::from_millis(20);
        let gc = Arc::new(GroupCommit::with_linger(linger));
        serve_a_group_of_two(&gc);
        let started = Instant::now();
        gc.sync(|| Ok::<(), String>(())).unwrap();
        // It waited out the linger for a second caller that never came, then flushed alone.
        assert!(started.elapsed() >= linger, "it did not linger");
        assert_eq!(gc.counts(), (3, 4));
        // It carried one caller: the next one does not linger.
        assert_eq!(gc.queue(), (0, false));
        gc.sync(|| Ok::<(), String>(())).unwrap();
        assert_eq!(gc.counts(), (4, 5));
    }

    #[test]
    fn a_failed_flush_fails_its_callers_and_the_next_one_can_succeed() {
        let gc = GroupCommit::new();
        let fail = std::sync::atomic::AtomicBool::new(true);
        let flush = || {
            if fail.load(Ordering::SeqCst) {
                Err("disk full")
            } else {
                Ok(())
            }
        };
        assert_eq!(gc.sync(flush), Err("disk full".to_string()));
        fail.store(false, Ordering::SeqCst);
        assert_eq!(gc.sync(flush), Ok(()));
        assert_eq!(gc.counts(), (2, 2));
    }

    #[test]
    fn a_panicking_flush_fails_its_caller_and_does_not_wedge_the_next() {
        let gc = GroupCommit::new();
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _ = gc.sync(|| -> Result<(), String> { panic!("disk on fire") });
        }));
        assert!(panicked.is_err());
        // The next caller runs its own flush instead of waiting for the dead one.
        assert_eq!(gc.sync(|| Ok::<(), String>(())), Ok(()));
    }
}
