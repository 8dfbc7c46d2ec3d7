//! Fuzz targets. Each takes arbitrary bytes, must never panic on them, and checks a property
//! of what it accepts (a panic is a finding): what decodes re-encodes to the same bytes, what
//! parses prints back to what it parsed, what normalises is a fixed point, and a verifier never
//! accepts what it cannot explain.
#![forbid(unsafe_code)]

use prost::Message;
use quorate_core::{
    address::{normalize_address, Chain},
    amount::Amount,
    audit,
    intent::WithdrawalIntent,
    policy::{PolicyDoc, PolicyForm},
};
use quorate_wire::{convert, policy as ppb, withdrawal as wpb};

/// A fuzz target.
pub type Target = fn(&[u8]);

/// Every target, by name, for the smoke driver.
pub const TARGETS: &[(&str, Target)] = &[
    ("intent_decode", intent_decode),
    ("amount_parse", amount_parse),
    ("address_parse", address_parse),
    ("policy_parse", policy_parse),
    ("proto_convert", proto_convert),
    ("audit_verify", audit_verify),
    ("link_convert", link_convert),
    ("stored_records", stored_records),
];

/// The canonical intent decoder is strict: what it accepts re-encodes byte for byte, and the
/// digest of the decoded intent is the digest of those bytes' intent.
pub fn intent_decode(data: &[u8]) {
    if let Ok(i) = WithdrawalIntent::decode(data) {
        assert_eq!(i.encode(), data, "decode accepted a non-canonical encoding");
        let again = WithdrawalIntent::decode(&i.encode()).expect("re-decodes");
        assert_eq!(again.digest(), i.digest());
    }
}

/// Amounts: a parsed amount prints back as exactly the input (no second spelling).
pub fn amount_parse(data: &[u8]) {
    if let Ok(s) = std::str::from_utf8(data) {
        if let Ok(a) = Amount::parse(s) {
            assert_eq!(a.to_string(), s, "amount has two spellings");
        }
    }
}

/// Addresses: the first byte picks the chain; a normalised address is a fixed point, and is
/// accepted as an intent destination.
pub fn address_parse(data: &[u8]) {
    let Some((first, rest)) = data.split_first() else {
        return;
    };
    let Some(chain) = Chain::from_code(first % 8) else {
        return;
    };
    let Ok(s) = std::str::from_utf8(rest) else {
        return;
    };
    if let Ok(n) = normalize_address(chain, s) {
        assert_eq!(
            normalize_address(chain, &n).as_deref(),
            Ok(n.as_str()),
            "normalisation is not idempotent"
        );
    }
}

/// Policy documents: the canonical JSON decoder accepts only canonical bytes; the TOML form
/// never panics, and a document it produces survives the round trip through TOML.
pub fn policy_parse(data: &[u8]) {
    if let Ok(doc) = PolicyDoc::decode(data) {
        assert_eq!(
            doc.encode(),
            data,
            "policy decode accepted non-canonical bytes"
        );
        let back = PolicyForm::from_doc(&doc)
            .to_doc(doc.version, &doc.prev_hash)
            .expect("a valid document's TOML form converts back");
        // The TOML form works in whole seconds (docs/policy.md); compare on that footing.
        if doc.timelock_ms % 1000 == 0 && doc.whitelist.iter().all(|w| w.active_from_ms % 1000 == 0)
        {
            assert_eq!(back, doc, "TOML round trip changed the document");
        }
    }
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(form) = PolicyForm::parse(text) {
            let _ = form.to_doc(1, &quorate_core::policy::doc::zero_hash());
        }
    }
}

/// The edge conversions from protobuf: a submit request, a signed policy, an audit page.
pub fn proto_convert(data: &[u8]) {
    if let Ok(req) = wpb::SubmitRequest::decode(data) {
        if let Some(i) = req.intent.as_ref() {
            if let Ok(intent) = convert::intent_from_proto(i) {
                let back = convert::intent_from_proto(&convert::intent_to_proto(&intent))
                    .expect("a converted intent converts again");
                assert_eq!(back, intent);
            }
        }
    }
    if let Ok(p) = ppb::SignedPolicy::decode(data) {
        if let Ok(s) = convert::policy::signed_from_proto(&p) {
            let again = convert::policy::signed_from_proto(&convert::policy::signed_to_proto(&s))
                .expect("a converted policy converts again");
            assert_eq!(again.doc, s.doc);
        }
    }
    if let Ok(page) = quorate_wire::audit::AuditPage::decode(data) {
        for r in &page.records {
            if let Ok(rec) = convert::audit::record_from_proto(r) {
                assert_eq!(
                    convert::audit::record_from_proto(&convert::audit::record_to_proto(&rec)),
                    Ok(rec)
                );
            }
        }
        if let Some(h) = &page.head {
            let _ = convert::audit::head_from_proto(h);
        }
    }
}

/// The audit-log verifier: never panics, and what it accepts is an unbroken chain ending at
/// its head.
pub fn audit_verify(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(log) = audit::verify_export(text, None) {
        audit::verify_chain(&log.records).expect("an accepted log is a chain");
        assert_eq!(log.head.seq, log.records.len() as u64);
    }
}

/// The signer link's edge: a coordinator's message body that converts to a typed request, and
/// a signer's that converts to a typed answer, convert back and again to the same value.
pub fn link_convert(data: &[u8]) {
    use quorate_core::link::{Answer, Request};
    use quorate_wire::signer::{self as spb, coordinator_message, signer_message};
    if let Ok(spb::CoordinatorMessage {
        body: Some(body), ..
    }) = spb::CoordinatorMessage::decode(data)
    {
        if let Ok(request) = Request::try_from(body) {
            let again = Request::try_from(coordinator_message::Body::from(request.clone()))
                .expect("a converted request converts again");
            assert_eq!(again, request, "a request changed on its way back");
        }
    }
    if let Ok(spb::SignerMessage {
        body: Some(body), ..
    }) = spb::SignerMessage::decode(data)
    {
        if let Ok(answer) = Answer::try_from(body) {
            let again = Answer::try_from(signer_message::Body::from(answer.clone()))
                .expect("a converted answer converts again");
            assert_eq!(again, answer, "an answer changed on its way back");
        }
    }
}

/// The records the nodes keep on disk (docs/storage.md): an audit record, a signer's binding
/// of a withdrawal id, a coordinator's withdrawal record. Each decoder is strict: what it
/// accepts in the binary form re-encodes byte for byte; what it accepts in the JSON form of
/// earlier versions re-encodes in the binary form, which reads back the same.
pub fn stored_records(data: &[u8]) {
    use quorate_coordinator::store::codec;
    use quorate_signer::store::binding;
    if let Ok(r) = audit::Record::decode(data) {
        if data.first() == Some(&b'{') {
            assert_eq!(audit::Record::decode(&r.encode()), Ok(r));
        } else {
            assert_eq!(r.encode(), data, "an audit record has two binary forms");
        }
    }
    if let Ok(digest) = binding::digest(data) {
        if data.first() == Some(&b'{') {
            assert_eq!(binding::digest(&binding::encode(&digest, 0)), Ok(digest));
        } else {
            let at: [u8; 8] = data[33..].try_into().expect("a binary binding is 41 bytes");
            assert_eq!(
                binding::encode(&digest, u64::from_be_bytes(at)),
                data,
                "a binding has two binary forms"
            );
        }
    }
    if let Ok(record) = codec::decode(data) {
        if data.first() == Some(&b'{') {
            // A JSON record whose hex fields are not hex has no binary form; it is kept as read.
            if let Ok(bytes) = codec::encode(&record) {
                assert_eq!(codec::decode(&bytes), Ok(record));
            }
        } else {
            assert_eq!(
                codec::encode(&record).as_deref(),
                Ok(data),
                "a withdrawal record has two binary forms"
            );
        }
    }
}
