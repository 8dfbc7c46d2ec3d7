//! Installing what a test needs on first use, once per lock file: a marker holds the hash of
//! the lock file it was installed from, and a lock directory keeps concurrent test processes
//! from installing at the same time.

use std::{path::Path, path::PathBuf, time::Duration};

use sha2::{Digest, Sha256};

/// Runs `install` unless `marker` already names `lock_file`'s hash, with `guard` (a directory)
/// held while it runs; writes the marker after. A guard older than ten minutes is stale.
pub fn once(lock_file: &Path, marker: &Path, guard: &Path, install: impl FnOnce()) {
    let want = hex::encode(Sha256::digest(
        std::fs::read(lock_file).unwrap_or_else(|e| panic!("{}: {e}", lock_file.display())),
    ));
    let ready = || std::fs::read_to_string(marker).ok().as_deref() == Some(want.as_str());
    if ready() {
        return;
    }
    let mut waited = 0;
    while std::fs::create_dir(guard).is_err() {
        // Another test process is installing.
        let stale = std::fs::metadata(guard)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > Duration::from_secs(600));
        if stale {
            let _ = std::fs::remove_dir(guard);
            continue;
        }
        std::thread::sleep(Duration::from_millis(500));
        waited += 1;
        if ready() {
            return;
        }
        assert!(
            waited < 2400,
            "waited 20 minutes for another install ({})",
            guard.display()
        );
    }
    struct Unlock(PathBuf);
    impl Drop for Unlock {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir(&self.0);
        }
    }
    let _unlock = Unlock(guard.to_path_buf());
    // Another process may have finished just before we took the lock.
    if ready() {
        return;
    }
    install();
    std::fs::write(marker, want).expect("install marker");
}
