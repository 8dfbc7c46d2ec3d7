//! The audit log as an auditor receives it: exports verify, and any change to any byte, any
//! record removed, reordered or added, a head re-signed by another key, or a signature the
//! coordinator released without t share releases behind it is caught and located.

use proptest::prelude::*;
use quorate_core::{
    audit::{cross_check, kind, verify_export, Chain, Event, Head, Record},
    identity::IdentitySecret,
};

fn key(seed: u8) -> IdentitySecret {
    IdentitySecret::from_bytes(&[seed; 32]).unwrap()
}

/// The export text of a log of `events`, ending with the head `head` makes for its chain.
fn export(events: &[Event], head: impl Fn(&Chain) -> Head) -> String {
    let mut chain = Chain::resume(None);
    let mut text = String::new();
    for (i, e) in events.iter().enumerate() {
        let r = chain.prepare(1_000 + i as u64, e.clone());
        chain.advance(&r);
        text.push_str(&r.to_json());
        text.push('\n');
    }
    text.push_str(&head(&chain).to_json());
    text.push('\n');
    text
}

fn signer_log(name: &str, k: &IdentitySecret, events: &[Event]) -> String {
    export(events, |c| Head::signed(name, c, k, b"nonce-1"))
}

fn coordinator_log(events: &[Event], t: u16) -> String {
    export(events, |c| Head::coordinator(c, t, b"nonce-1"))
}

fn released(w: &str) -> Event {
    Event::new(kind::SHARE_RELEASED)
        .with("withdrawal", w)
        .with("digest", "ab".repeat(32))
}

fn signed(w: &str) -> Event {
    Event::new(kind::WITHDRAWAL_SIGNED)
        .with("withdrawal", w)
        .with("digest", "ab".repeat(32))
}

fn received(w: &str) -> Event {
    Event::new(kind::WITHDRAWAL_RECEIVED)
        .with("withdrawal", w)
        .with("digest", "ab".repeat(32))
}

fn sample() -> String {
    signer_log(
        "signer-1",
        &key(1),
        &[
            Event::new(kind::NODE_STARTED).with("node", "signer-1"),
            released("wd-1"),
            Event::refused(
                "sign",
                "policy-whitelist-destination",
                "not on the whitelist",
            )
            .with("withdrawal", "wd-2"),
            released("wd-3"),
        ],
    )
}

#[test]
fn an_export_verifies_against_the_pinned_key() {
    let text = sample();
    let log = verify_export(&text, Some(&key(1).public())).unwrap();
    assert_eq!(log.records.len(), 4);
    assert_eq!(log.key, Some(key(1).public()));
    assert_eq!(log.head.node, "signer-1");
}

#[test]
fn a_head_signed_by_another_key_is_refused() {
    let text = sample();
    let err = verify_export(&text, Some(&key(2).public())).unwrap_err();
    assert_eq!(err.line, Some(5), "{err}");
    // Re-signed by an attacker's key after rewriting: the pinned key does not match.
    let mut lines: Vec<&str> = text.lines().collect();
    let rewritten = Head::signed("signer-1", &chain_of(&text), &key(9), b"nonce-1").to_json();
    lines[4] = &rewritten;
    let err = verify_export(&lines.join("\n"), Some(&key(1).public())).unwrap_err();
    assert!(err.what.contains("pinned identity key"), "{err}");
}

fn chain_of(text: &str) -> Chain {
    let mut c = Chain::resume(None);
    for l in text.lines().filter(|l| !l.starts_with("{\"head\"")) {
        c.advance(&Record::from_json(l).unwrap());
    }
    c
}

#[test]
fn removed_reordered_added_or_cut_records_are_named() {
    let text = sample();
    let lines: Vec<&str> = text.lines().collect();

    let mut removed = lines.clone();
    removed.remove(1);
    let err = verify_export(&removed.join("\n"), None).unwrap_err();
    assert_eq!((err.line, err.seq), (Some(2), Some(3)), "{err}");

    let mut swapped = lines.clone();
    swapped.swap(1, 2);
    let err = verify_export(&swapped.join("\n"), None).unwrap_err();
    assert_eq!(err.line, Some(2), "{err}");

    // The last record dropped, head kept: the head names a record the log lacks.
    let mut cut = lines.clone();
    cut.remove(3);
    let err = verify_export(&cut.join("\n"), None).unwrap_err();
    assert_eq!(err.line, Some(4), "{err}");
    assert!(err.what.contains("head names record 4"), "{err}");

    // Head dropped too: incomplete.
    let err = verify_export(&lines[..4].join("\n"), None).unwrap_err();
    assert!(err.what.contains("no head"), "{err}");

    // A record appended after the head.
    let mut extra = lines.clone();
    extra.push(lines[1]);
    let err = verify_export(&extra.join("\n"), None).unwrap_err();
    assert_eq!(err.line, Some(6), "{err}");
}

#[test]
fn the_coordinators_released_signatures_need_t_signers_shares() {
    let coord = coordinator_log(
        &[
            received("wd-1"),
            received("wd-3"),
            signed("wd-1"),
            signed("wd-3"),
        ],
        2,
    );
    let s1 = signer_log("signer-1", &key(1), &[released("wd-1"), released("wd-3")]);
    let s2 = signer_log("signer-2", &key(2), &[released("wd-1")]);
    let s3 = signer_log("signer-3", &key(3), &[released("wd-3")]);
    let v = |t: &str| verify_export(t, None).unwrap();
    let ok = cross_check(&v(&coord), &[v(&s1), v(&s2), v(&s3)], None, 0).unwrap();
    assert_eq!((ok.signed, ok.threshold), (2, 2));

    // Without signer 3's log, wd-3 has one share release behind it.
    let err = cross_check(&v(&coord), &[v(&s1), v(&s2)], None, 0).unwrap_err();
    assert_eq!(err.seq, Some(4), "{err}");
    assert!(err.what.contains("wd-3"), "{err}");

    // The same signer's log twice counts once.
    let err = cross_check(&v(&coord), &[v(&s1), v(&s1), v(&s2)], None, 0).unwrap_err();
    assert!(err.what.contains("wd-3"), "{err}");

    // A share for another digest does not match.
    let other = signer_log(
        "signer-3",
        &key(3),
        &[Event::new(kind::SHARE_RELEASED)
            .with("withdrawal", "wd-3")
            .with("digest", "cd".repeat(32))],
    );
    assert!(cross_check(&v(&coord), &[v(&s1), v(&s2), v(&other)], None, 0).is_err());

    // A coordinator head that claims t = 1 does not lower the pinned threshold.
    let lax = coordinator_log(
        &[
            received("wd-1"),
            received("wd-3"),
            signed("wd-1"),
            signed("wd-3"),
        ],
        1,
    );
    assert!(cross_check(&v(&lax), &[v(&s1)], None, 0).is_ok());
    assert!(cross_check(&v(&lax), &[v(&s1)], Some(2), 0).is_err());
}

#[test]
fn every_share_a_signer_released_must_be_shown_by_the_coordinators_log() {
    let v = |t: &str| verify_export(t, None).unwrap();
    // Records are 1 ms apart from 1,000 ms: the coordinator's log below ends at 1,003 ms.
    let coord = coordinator_log(
        &[
            received("wd-1"),
            signed("wd-1"),
            received("wd-2"),
            Event::new(kind::WITHDRAWAL_FAILED).with("withdrawal", "wd-2"),
        ],
        2,
    );
    let s1 = signer_log("signer-1", &key(1), &[released("wd-1"), released("wd-2")]);
    let s2 = signer_log("signer-2", &key(2), &[released("wd-1"), released("wd-2")]);
    let ok = cross_check(&v(&coord), &[v(&s1), v(&s2)], None, 0).unwrap();
    assert_eq!((ok.signed, ok.releases, ok.unjudged), (1, 4, 0));
    // wd-2 failed after two signers released shares, naming no culprit: for a person to look at.
    assert_eq!(ok.failed_after_release, vec!["wd-2".to_string()]);

    // A share for a withdrawal the coordinator never recorded receiving.
    let s3 = signer_log("signer-3", &key(3), &[released("wd-secret")]);
    let err = cross_check(&v(&coord), &[v(&s1), v(&s2), v(&s3)], None, 0).unwrap_err();
    assert!(
        err.what.contains("signer-3")
            && err.what.contains("wd-secret")
            && err.what.contains("never shows it received"),
        "{err}"
    );

    // Harvesting: t signers released shares for a withdrawal the coordinator received, and its
    // log says nothing more — no signature, no failure, no culprit.
    let quiet = coordinator_log(&[received("wd-1"), received("wd-9"), received("wd-8")], 2);
    let h1 = signer_log("signer-1", &key(1), &[released("wd-1")]);
    let h2 = signer_log("signer-2", &key(2), &[released("wd-1")]);
    let err = cross_check(&v(&quiet), &[v(&h1), v(&h2)], None, 0).unwrap_err();
    assert!(err.what.contains("harvested"), "{err}");
    assert!(err.what.contains("signer-1, signer-2"), "{err}");
    // One signer's share alone makes no signature: not an alarm.
    assert!(cross_check(&v(&quiet), &[v(&h1)], None, 0).is_ok());
    // A refusal of the withdrawal after the shares (a retry that found it expired) settles it
    // as a warning, like a failure.
    let refused_later = coordinator_log(
        &[
            received("wd-1"),
            Event::refused("submit", "intent-expired", "expired").with("withdrawal", "wd-1"),
        ],
        2,
    );
    let ok = cross_check(&v(&refused_later), &[v(&h1), v(&h2)], None, 0).unwrap();
    assert_eq!(ok.failed_after_release, vec!["wd-1".to_string()]);

    // Releases newer than the coordinator's last record, less the clock skew allowed, were in
    // flight when it exported: not judged.
    let early = coordinator_log(&[received("wd-1")], 2);
    let ok = cross_check(&v(&early), &[v(&h1), v(&h2)], None, 1).unwrap();
    assert_eq!((ok.releases, ok.unjudged), (0, 2));
    assert!(cross_check(&v(&early), &[v(&h1), v(&h2)], None, 0).is_err());
}

#[test]
fn a_signers_log_relabelled_as_the_coordinators_is_refused() {
    // A hostile relay rewrites signer 1's log and gives it an unsigned coordinator head.
    let forged = export(&[released("wd-forged")], |c| {
        let mut h = Head::coordinator(c, 2, b"n");
        h.node = "signer-1".into();
        h
    });
    let err = verify_export(&forged, None).unwrap_err();
    assert!(
        err.what
            .contains("only the coordinator's log may be unsigned"),
        "{err}"
    );
    // Nor may the role be changed under a real signature: the role is signed.
    let text = sample();
    let relabelled = text.replace("\"role\":\"signer\"", "\"role\":\"coordinator\"");
    assert!(verify_export(&relabelled, Some(&key(1).public())).is_err());
}

#[test]
fn a_head_replayed_from_an_earlier_export_is_stale() {
    // The relay kept signer 1's head from an export of its first two records and serves that
    // prefix again: the log verifies on its own, but the head answers the old nonce.
    let events = [released("wd-1"), released("wd-2"), released("wd-3")];
    let old = export(&events[..2], |c| {
        Head::signed("signer-1", c, &key(1), b"old-nonce")
    });
    let log = verify_export(&old, Some(&key(1).public())).unwrap();
    assert_eq!(log.records.len(), 2);
    assert!(log.head.check_fresh(b"new-nonce").is_err());
    assert!(log.head.check_fresh(b"old-nonce").is_ok());
    // And the nonce cannot be swapped without breaking the signature.
    let swapped = old.replace(&hex::encode(b"old-nonce"), &hex::encode(b"new-nonce"));
    assert!(verify_export(&swapped, Some(&key(1).public())).is_err());
}

#[test]
fn a_record_has_one_spelling() {
    let text = sample();
    let first = text.lines().next().unwrap();
    // The same record with a JSON escape for one character: same value, other bytes.
    let escaped = first.replacen("signer-1", "signer\\u002d1", 1);
    assert_ne!(escaped, first);
    assert!(Record::from_json(&escaped).is_err());
    let spaced = first.replacen(",", ", ", 1);
    assert!(Record::from_json(&spaced).is_err());
}

#[test]
fn garbage_is_an_error_not_a_panic() {
    for text in [
        "",
        "\n\n",
        "{",
        "{\"head\":{}}",
        "null",
        "[]",
        "{\"v\":1}",
        "{\"v\":2,\"seq\":1,\"at_ms\":0,\"prev\":\"\",\"kind\":\"\",\"fields\":{},\"hash\":\"\"}",
        "\u{0}\u{ffff}",
    ] {
        assert!(verify_export(text, None).is_err(), "{text:?}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Any one byte of an export changed (to another printable ASCII character) fails
    /// verification, and the error names the line that was changed.
    #[test]
    fn every_one_byte_change_is_caught_where_it_was_made(pos in any::<prop::sample::Index>(), c in 0x20u8..0x7f) {
        let text = sample();
        let bytes = text.as_bytes();
        let i = pos.index(bytes.len());
        prop_assume!(bytes[i] != b'\n' && bytes[i] != c);
        let mut changed = bytes.to_vec();
        changed[i] = c;
        let changed = String::from_utf8(changed).unwrap();
        let line = text[..i].matches('\n').count() + 1;
        let err = verify_export(&changed, Some(&key(1).public()));
        prop_assert!(err.is_err(), "a change at byte {} went unnoticed", i);
        let err = err.unwrap_err();
        prop_assert!(err.line == Some(line) || err.line.is_none() && line == 5,
            "changed line {}, error names {:?}: {}", line, err.line, err);
    }
}
