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

use std::sync::{Condvar, Mutex, MutexGuard};

/// Coalesces concurrent flush requests. One per database.
#[derive(Default)]
pub struct GroupCommit {
    state: Mutex<State>,
    done: Condvar,
}

#[derive(Default)]
struct State {
    /// Flushes started so far (the generation of the newest one).
    started: u64,
    /// The generation of the newest finished flush.
    finished: u64,
    /// Whether a flush is running now.
    running: bool,
    /// The error of the newest finished flush, if it failed.
    error: Option<String>,
    /// Flushes actually run, and callers served (for metrics).
    flushes: u64,
    callers: u64,
}

impl GroupCommit {
    /// A group commit with nothing flushed yet.
    pub fn new() -> Self {
        Self::default()
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
        loop {
            if st.finished >= needed {
                return match &st.error {
                    None => Ok(()),
                    Some(e) => Err(e.clone()),
                };
            }
            if !st.running {
                st.running = true;
                st.started += 1;
                st.flushes += 1;
                let generation = st.started;
                drop(st);
                let result = flush().map_err(|e| e.to_string());
                st = self.lock();
                st.running = false;
                st.finished = generation;
                st.error = result.err();
                self.done.notify_all();
                continue;
            }
            st = self.done.wait(st).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// Flushes run and callers served so far.
    pub fn counts(&self) -> (u64, u64) {
        let st = self.lock();
        (st.flushes, st.callers)
    }
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
        let disk = Arc::new(Disk::default());
        let gc = Arc::new(GroupCommit::new());
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
            "no flush was shared: {flushes} flushes for {callers} callers"
        );
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
}
