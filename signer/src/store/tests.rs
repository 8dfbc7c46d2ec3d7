//! The stores' unit tests: sled on disk and the in-memory store.

use super::*;

/// Whether `error` is sled saying another handle holds the database's file lock.
fn is_lock_held(error: &str) -> bool {
    error.contains("could not acquire lock")
}

/// Runs `open` after a handle in this process was dropped. sled's background flusher can
/// hold the file lock for a moment after that (a restarted process never meets this): wait
/// while that is the error, up to 10 s.
fn when_unlocked<T, E: std::fmt::Display>(open: impl Fn() -> Result<T, E>) -> Result<T, E> {
    for _ in 0..400 {
        match open() {
            Err(e) if is_lock_held(&e.to_string()) => {
                std::thread::sleep(std::time::Duration::from_millis(25))
            }
            other => return other,
        }
    }
    panic!("the database lock was never released");
}

/// Opens `dir` again after a handle in this process was dropped.
fn reopen(dir: &Path) -> SledStore {
    when_unlocked(|| SledStore::open(dir)).unwrap_or_else(|e| panic!("reopening: {e}"))
}

/// A process killed while sled writes a snapshot leaves `snap.<lsn>.generating`; sled then
/// refuses to open the database (it reads that file as the newest snapshot). Our open
/// removes it first and everything written before is still there.
#[test]
fn a_snapshot_cut_short_by_a_crash_does_not_lock_the_signer_out() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = SledStore::open(dir.path()).unwrap();
        s.put_meta_durable("policy/history/00000000000000000001", b"one")
            .unwrap();
        s.put_meta_durable("policy/history/00000000000000000002", b"two")
            .unwrap();
    }
    // What a kill between sled's write and rename leaves: a partial snapshot newer than any.
    let partial = dir.path().join("snap.FFFFFFFFFFFFFFF0.generating");
    std::fs::write(&partial, b"partial snapshot").unwrap();
    // (Past the moment the dropped handle's flusher still holds the lock.)
    let raw = when_unlocked(|| sled::Config::new().path(dir.path()).open());
    assert!(
        raw.is_err(),
        "sled itself cannot open it: the bug this guards against"
    );
    drop(raw);
    let s = reopen(dir.path());
    assert!(!partial.exists());
    let found = s
        .scan_meta("policy/history/", "policy/history/00000000000000000002", 8)
        .unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].1, b"two");
}

fn exercise(s: &dyn SignerStore) {
    assert_eq!(s.bind_withdrawal("w1", &[1; 32], 5).unwrap(), Binding::New);
    assert_eq!(s.bind_withdrawal("w1", &[1; 32], 6).unwrap(), Binding::Same);
    assert_eq!(
        s.bind_withdrawal("w1", &[2; 32], 7).unwrap(),
        Binding::Conflict
    );
    assert_eq!(s.get_meta("k").unwrap(), None);
    s.put_meta_durable("k", b"v").unwrap();
    assert_eq!(s.get_meta("k").unwrap().as_deref(), Some(&b"v"[..]));
    assert!(s.put_meta_once("share", b"1").unwrap());
    assert!(!s.put_meta_once("share", b"2").unwrap());
    assert_eq!(s.get_meta("share").unwrap().as_deref(), Some(&b"1"[..]));

    assert_eq!(s.last_audit().unwrap(), None);
    let mut chain = audit::Chain::resume(None);
    for i in 0..3u64 {
        let r = chain.prepare(10 + i, audit::Event::new("test").with("i", i.to_string()));
        s.append_audit(&r).unwrap();
        chain.advance(&r);
    }
    let r = chain.prepare(
        20,
        audit::Event::new(audit::kind::SHARE_RELEASED).with("withdrawal", "w2"),
    );
    let debit = Debit {
        at_ms: 20,
        records: vec![],
    };
    assert_eq!(
        s.bind_and_debit("w2", &[3; 32], 20, &debit, &r).unwrap(),
        Binding::New
    );
    chain.advance(&r);
    let all = s.audit_range(1, 100).unwrap();
    assert_eq!(all.len(), 4);
    audit::verify_chain(&all).unwrap();
    assert_eq!(s.audit_range(3, 1).unwrap()[0].seq, 3);
    assert_eq!(s.last_audit().unwrap().unwrap().seq, 4);
    // A conflicting bind writes no audit record either.
    let stray = chain.prepare(21, audit::Event::new("stray"));
    assert_eq!(
        s.bind_and_debit("w2", &[4; 32], 21, &debit, &stray)
            .unwrap(),
        Binding::Conflict
    );
    assert_eq!(s.last_audit().unwrap().unwrap().seq, 4);

    // A pruned bucket is gone from the persisted ledger; the others stay.
    let mut ledger = quorate_core::policy::Ledger::new();
    let chain: quorate_core::address::Chain = "ethereum".parse().unwrap();
    let to = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed";
    let amount = quorate_core::amount::Amount::new(5).unwrap();
    let old = ledger.debit(chain, "ETH", to, amount, 1_000);
    let r = chain_rec(s, "w-old");
    assert_eq!(
        s.bind_and_debit("w-old", &[5; 32], 1_000, &old, &r)
            .unwrap(),
        Binding::New
    );
    let (_, before) = s.load_ledger().unwrap();
    assert_eq!(before.len(), old.records.len());
    let keys: Vec<Vec<u8>> = old.records.iter().map(|r| r.key_bytes()).collect();
    s.forget_buckets(&keys[..1]).unwrap();
    let (_, after) = s.load_ledger().unwrap();
    assert_eq!(after.len(), before.len() - 1);
}

fn chain_rec(s: &dyn SignerStore, w: &str) -> audit::Record {
    let last = s.last_audit().unwrap();
    audit::Chain::resume(last.as_ref()).prepare(
        30,
        audit::Event::new(audit::kind::SHARE_RELEASED).with("withdrawal", w),
    )
}

/// A database written before the binary forms (JSON bindings and audit records) reads
/// unchanged, and what is written next is binary.
#[test]
fn a_store_written_in_json_reads_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let mut chain = audit::Chain::resume(None);
    let old = chain.prepare(10, audit::Event::new(audit::kind::NODE_STARTED));
    chain.advance(&old);
    {
        let db = sled::Config::new().path(dir.path()).open().unwrap();
        let json = format!(
            r#"{{"v":1,"digest":"{}","bound_at_ms":5}}"#,
            hex::encode([7u8; 32])
        );
        db.open_tree("withdrawals")
            .unwrap()
            .insert("w-old", json.as_bytes())
            .unwrap();
        db.open_tree("audit")
            .unwrap()
            .insert(1u64.to_be_bytes(), old.to_json().as_bytes())
            .unwrap();
        db.flush().unwrap();
    }
    let s = reopen(dir.path());
    assert_eq!(s.bound_digest("w-old").unwrap(), Some([7; 32]));
    assert_eq!(
        s.bind_withdrawal("w-old", &[7; 32], 9).unwrap(),
        Binding::Same
    );
    assert_eq!(
        s.bind_withdrawal("w-old", &[8; 32], 9).unwrap(),
        Binding::Conflict
    );
    assert_eq!(s.last_audit().unwrap(), Some(old));
    let next = chain.prepare(11, audit::Event::new("test").with("i", "2"));
    s.append_audit(&next).unwrap();
    assert_eq!(
        s.bind_withdrawal("w-new", &[9; 32], 12).unwrap(),
        Binding::New
    );
    audit::verify_chain(&s.audit_range(1, 10).unwrap()).unwrap();

    let raw_audit = s.audit.get(2u64.to_be_bytes()).unwrap().unwrap();
    assert_eq!(raw_audit[0], audit::FORMAT_BINARY_V1);
    let raw_binding = s.withdrawals.get("w-new").unwrap().unwrap();
    assert_eq!(raw_binding[0], FORMAT_BINDING_V1);
    assert_eq!(raw_binding.len(), 41);

    // Damage is reported against its key, not a panic.
    s.withdrawals
        .insert("w-bad", &[FORMAT_BINDING_V1, 1][..])
        .unwrap();
    match s.bound_digest("w-bad") {
        Err(StoreError::Corrupt { key, .. }) => assert_eq!(key, "w-bad"),
        other => panic!("expected a corrupt record, got {other:?}"),
    }
}

#[test]
fn memory_store() {
    exercise(&MemoryStore::default());
}

#[test]
fn sled_store_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = SledStore::open(dir.path()).unwrap();
        exercise(&s);
    }
    let s = reopen(dir.path());
    assert_eq!(
        s.bind_withdrawal("w1", &[2; 32], 8).unwrap(),
        Binding::Conflict
    );
    assert_eq!(s.get_meta("k").unwrap().as_deref(), Some(&b"v"[..]));
    let log = s.audit_range(1, 100).unwrap();
    assert_eq!(log.len(), 5);
    audit::verify_chain(&log).unwrap();
}
