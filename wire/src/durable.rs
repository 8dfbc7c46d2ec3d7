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
    /// The generation of the newest flush that succeeded.
    succeeded: u64,
    /// Whether a flush is running now.
    running: bool,
    /// The error of the newest finished flush, if it failed.
    error: Option<String>,
    /// Callers served (for metrics; the flushes run are `started`).
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
                st.started += 1;
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

    /// Flushes run and callers served so far.
    pub fn counts(&self) -> (u64, u64) {
        let st = self.lock();
        (st.started, st.callers)
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
