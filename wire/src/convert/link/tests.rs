use std::collections::BTreeMap;

use quorate_core::{
    audit::{Event, Head, Record},
    identity::IdentitySecret,
    link::*,
    policy::{doc::zero_hash, AdminSignature, PolicyStatus, StatusReceipt},
};

use super::*;

fn admin(n: u8) -> AdminSignature {
    let key = IdentitySecret::generate(&mut rand::rngs::OsRng);
    AdminSignature::sign(&key, "test", &[&[n]])
}

fn signed_policy() -> SignedPolicy {
    let key = IdentitySecret::generate(&mut rand::rngs::OsRng);
    let doc = PolicyDoc {
        format: quorate_core::policy::doc::FORMAT,
        version: 1,
        prev_hash: zero_hash(),
        assets: vec![],
        whitelist: vec![],
        velocity: vec![],
        backend_keys: vec![],
        admins: vec![key.public().to_string()],
        admin_quorum: 1,
        timelock_ms: 0,
        frozen: false,
        per_signer_budget: false,
        chains: vec![],
        solana: None,
        retired_signers: vec![],
    };
    let doc = PolicyDoc::decode(&doc.encode()).expect("a valid document");
    SignedPolicy {
        signatures: vec![AdminSignature::sign(&key, "test", &[&doc.hash()])],
        doc,
    }
}

fn sealed(sender: u16, recipient: u16) -> Sealed {
    Sealed {
        sender,
        recipient,
        nonce: [sender as u8; 12],
        ciphertext: vec![1, 2, 3],
        signature: vec![4, 5],
    }
}

fn round1(identifier: u16) -> SignedRound1 {
    SignedRound1 {
        identifier,
        package: vec![identifier as u8; 3],
        signature: vec![9],
    }
}

fn echo(from: u16) -> SignedEcho {
    SignedEcho {
        from,
        packages: vec![round1(1), round1(2)],
        signature: vec![7; 4],
    }
}

fn offer(from: u16) -> Offer {
    Offer {
        from,
        epoch: 2,
        public_key_package: vec![1; 5],
        commitments: BTreeMap::from([(1, vec![2; 3]), (3, vec![4; 3])]),
        signature: vec![6; 2],
    }
}

fn contribution(from: u16) -> Contribution {
    Contribution {
        from,
        offers: vec![offer(1), offer(3)],
        sigma: sealed(from, 2),
    }
}

fn session() -> RepairSession {
    RepairSession {
        session_id: [5; 16],
        manifest_hash: vec![6; 32],
        scheme: Scheme::Ed25519,
        target: 2,
        helpers: vec![1, 3],
    }
}

fn repair_result() -> RepairResult {
    RepairResult {
        group_public_key: vec![1; 33],
        verifying_share: vec![2; 33],
        epoch: 3,
        signature: vec![4; 64],
    }
}

fn status() -> PolicyStatus {
    PolicyStatus {
        version: 3,
        hash: "ab".repeat(32),
        frozen: true,
        pending_version: 4,
        pending_hash: "cd".repeat(32),
        pending_effective_at_ms: 1_700_000_000_000,
    }
}

/// One request of every kind, with every field set.
fn requests() -> Vec<Request> {
    vec![
        Request::DkgRound1(DkgRound1Request {
            session_id: vec![1; 16],
            manifest_hash: vec![2; 32],
            scheme: Scheme::Ed25519,
            refresh: Some(RefreshTerms {
                old_epoch: 4,
                participants: vec![1, 2, u16::MAX],
            }),
        }),
        Request::DkgRound2(DkgRound2Request {
            session_id: vec![1; 16],
            packages: vec![round1(1), round1(u16::MAX)],
            scheme: Scheme::Secp256k1,
        }),
        Request::DkgRound3(DkgRound3Request {
            session_id: vec![1; 16],
            packages: vec![sealed(2, 1), sealed(3, 1)],
            echoes: vec![echo(2), echo(3)],
            scheme: Scheme::Ed25519,
            refresh: true,
        }),
        Request::DkgConfirm(DkgConfirmRequest {
            session_id: vec![1; 16],
            results: vec![SignedResult {
                identifier: 2,
                group_key: vec![3; 33],
                transcript: vec![4; 32],
                signature: vec![5; 64],
            }],
            scheme: Scheme::Ed25519,
        }),
        Request::Commit(CommitRequest {
            session_id: [3; 16],
            scheme: Scheme::Ed25519,
        }),
        Request::Presign(PresignRequest {
            session_ids: vec![[1; 16], [2; 16]],
            scheme: Scheme::Ed25519,
        }),
        Request::Sign(Box::new(SignRequest {
            session_id: [4; 16],
            intent: vec![1; 40],
            backend_signature: vec![2; 64],
            signing_package: vec![3; 100],
            approvals: vec![admin(1), admin(2)],
            vault_action: Some(VaultActionRef {
                chain: "ethereum".into(),
                nonce: 7,
            }),
            scheme: Scheme::Ed25519,
            solana_void: Some(SolanaVoid {
                nonce_account: [8; 32],
                nonce_value: [9; 32],
                approval: Some(admin(3)),
            }),
            key_epoch: 2,
        })),
        Request::PolicyUpdate(signed_policy()),
        Request::PolicyVeto(PolicyVeto {
            policy_hash: [7; 32],
            veto: admin(4),
        }),
        Request::LedgerNotice(LedgerNotice {
            intent: vec![1; 40],
            signature: vec![2; 64],
            signed_at_ms: 1_700_000_000_000,
        }),
        Request::LedgerNotices(vec![
            LedgerNotice {
                intent: vec![1; 40],
                signature: vec![2; 64],
                signed_at_ms: 1_700_000_000_000,
            },
            LedgerNotice {
                intent: vec![3; 41],
                signature: vec![],
                signed_at_ms: 0,
            },
        ]),
        Request::AuditExport(AuditExportRequest {
            node: "signer-1".into(),
            from_seq: 5,
            limit: 100,
            nonce: vec![3; 16],
        }),
        Request::StatusChallenge {
            challenge: vec![4; 32],
        },
        Request::RepairOffer(RepairOfferRequest { session: session() }),
        Request::RepairContribute(RepairContributeRequest {
            session: session(),
            offers: vec![offer(1), offer(3)],
            deltas: vec![sealed(3, 1)],
        }),
        Request::RepairFinish(RepairFinishRequest {
            session: session(),
            offers: vec![offer(1), offer(3)],
            contributions: vec![contribution(1), contribution(3)],
        }),
        Request::RefreshActivate(RefreshActivate {
            session_id: vec![1; 16],
            scheme: Scheme::Ed25519,
            epoch: 3,
            transcript_hash: vec![2; 32],
            public_key_package_hash: vec![3; 32],
            acks: vec![RefreshAck {
                identifier: 2,
                signature: vec![4; 64],
            }],
        }),
        Request::AddHolder(AddHolder {
            session: session(),
            result: repair_result(),
        }),
        Request::Sync(SyncRequest {
            policy_version: 3,
            pending_hash: "ef".repeat(32),
        }),
    ]
}

/// One answer of every kind, with every field set.
fn answers() -> Vec<Answer> {
    let head = Head {
        node: "signer-1".into(),
        role: "signer".into(),
        seq: 2,
        hash: "12".repeat(32),
        threshold: None,
        identity_key: Some("02".repeat(33)),
        signature: Some("34".repeat(64)),
        nonce: Some("56".repeat(16)),
    };
    let record = Record {
        seq: 2,
        at_ms: 1_700_000_000_000,
        prev: [1; 32],
        event: Event::new("share-released").with("withdrawal", "wd-1"),
        hash: [2; 32],
    };
    vec![
        Answer::DkgRound1(DkgRound1Response {
            package: vec![1; 10],
            signature: vec![2; 64],
        }),
        Answer::DkgRound2(DkgRound2Response {
            packages: vec![sealed(1, 2), sealed(1, 3)],
            echo: Some(echo(1)),
        }),
        Answer::DkgRound3(DkgRound3Response {
            group_public_key: vec![1; 33],
            public_key_package: vec![2; 200],
            transcript_hash: vec![3; 32],
            signature: vec![4; 64],
        }),
        Answer::DkgConfirm(DkgConfirmResponse {
            group_public_key: vec![1; 33],
            epoch: 2,
            stored_signature: vec![3; 64],
            public_key_package_hash: vec![4; 32],
        }),
        Answer::Commit {
            commitments: vec![1; 66],
        },
        Answer::Presign {
            commitments: vec![vec![1; 66], vec![2; 66]],
            ttl_ms: 60_000,
        },
        Answer::Sign { share: vec![3; 32] },
        Answer::PolicyStatus(status()),
        Answer::LedgerAck { debited: true },
        Answer::LedgerAcks(vec![
            Ok(true),
            Err(Refusal::permanent(Rule::LedgerNoticeInvalid, "forged")),
            Ok(false),
            Err(Refusal::temporary(Rule::SignerStorage, "disk").retry_at(Some(9))),
        ]),
        Answer::AuditPage {
            records: vec![record],
            head,
        },
        Answer::StatusReceipt(StatusReceipt {
            node: "signer-1".into(),
            challenge: vec![1; 16],
            version: 3,
            hash: "ab".repeat(32),
            frozen: true,
            locally_frozen: true,
            pending_version: 4,
            pending_hash: "cd".repeat(32),
            pending_effective_at_ms: 5,
            clock_ms: 6,
            signature: vec![7; 64],
        }),
        Answer::RepairOffer(RepairOfferResponse {
            offer: offer(1),
            deltas: vec![sealed(1, 3)],
        }),
        Answer::RepairContribution(contribution(3)),
        Answer::RepairResult(repair_result()),
        Answer::RefreshActivated {
            epoch: 3,
            group_public_key: vec![1; 33],
        },
        Answer::HolderAdded {
            identifier: 4,
            epoch: 1,
        },
        Answer::Sync(SyncAnswer {
            policy: Some(status()),
            updates: vec![signed_policy()],
            vetoes: vec![PolicyVeto {
                policy_hash: [7; 32],
                veto: admin(5),
            }],
            key_packages: vec![KeyPackageInfo {
                scheme: Scheme::Ed25519,
                key_epoch: 2,
                public_key_package: vec![1; 100],
            }],
        }),
        Answer::Refused {
            refusal: Refusal {
                rule: Rule::parse("policy-velocity-asset-amount-24h"),
                reason: "over the limit".into(),
                permanent: false,
                retry_at_ms: Some(1_700_000_000_000),
            },
            culprits: vec![2, u16::MAX],
        },
    ]
}

/// Tells the answer variants apart; a variant added to [`Answer`] fails to compile here
/// until [`answers`] has one.
fn answer_case(a: &Answer) -> usize {
    match a {
        Answer::DkgRound1(_) => 0,
        Answer::DkgRound2(_) => 1,
        Answer::DkgRound3(_) => 2,
        Answer::DkgConfirm(_) => 3,
        Answer::Commit { .. } => 4,
        Answer::Presign { .. } => 5,
        Answer::Sign { .. } => 6,
        Answer::PolicyStatus(_) => 7,
        Answer::LedgerAck { .. } => 8,
        Answer::AuditPage { .. } => 9,
        Answer::StatusReceipt(_) => 10,
        Answer::RepairOffer(_) => 11,
        Answer::RepairContribution(_) => 12,
        Answer::RepairResult(_) => 13,
        Answer::RefreshActivated { .. } => 14,
        Answer::HolderAdded { .. } => 15,
        Answer::Sync(_) => 16,
        Answer::Refused { .. } => 17,
        Answer::LedgerAcks(_) => 18,
    }
}

/// Through the wire and back, as bytes: what a coordinator sends, a signer reads.
fn over_the_wire_request(r: Request) -> Request {
    let msg = pb::CoordinatorMessage {
        request_id: 1,
        body: Some(r.into()),
    };
    let back = pb::CoordinatorMessage::decode(msg.encode_to_vec().as_slice()).unwrap();
    Request::try_from(back.body.unwrap()).unwrap()
}

fn over_the_wire_answer(a: Answer) -> Answer {
    let msg = pb::SignerMessage {
        request_id: 1,
        body: Some(a.into()),
    };
    let back = pb::SignerMessage::decode(msg.encode_to_vec().as_slice()).unwrap();
    Answer::try_from(back.body.unwrap()).unwrap()
}

#[test]
fn every_request_round_trips() {
    let all = requests();
    let kinds: std::collections::HashSet<_> = all.iter().map(Request::kind).collect();
    assert_eq!(kinds.len(), 19, "one request of each kind");
    for r in all {
        assert_eq!(over_the_wire_request(r.clone()), r);
    }
}

#[test]
fn every_answer_round_trips() {
    let all = answers();
    let cases: std::collections::HashSet<_> = all.iter().map(answer_case).collect();
    assert_eq!(cases.len(), 19, "one answer of each kind");
    for a in all {
        assert_eq!(over_the_wire_answer(a.clone()), a);
    }
}

#[test]
fn the_hello_round_trips() {
    let h = Hello {
        name: "signer-1".into(),
        identifier: 1,
        version: "0.1.0".into(),
        manifest_hash: vec![1; 32],
        group_public_key: vec![2; 33],
        policy: status(),
        ed25519_group_public_key: vec![3; 32],
        key_epoch: 1,
        ed25519_key_epoch: 2,
        pending_key_epoch: 3,
        ed25519_pending_key_epoch: 4,
    };
    assert_eq!(Hello::try_from(pb::Hello::from(h.clone())).unwrap(), h);
    let far = pb::Hello {
        identifier: 70_000,
        ..pb::Hello::default()
    };
    assert_eq!(Hello::try_from(far).unwrap_err().field, "identifier");
}

fn refused(body: Req) -> Malformed {
    Request::try_from(body).expect_err("refused")
}

#[test]
fn a_session_id_that_is_not_16_bytes_is_refused_naming_the_field() {
    let e = refused(Req::Commit(pb::CommitRequest {
        session_id: vec![1; 15],
        scheme: 0,
    }));
    assert_eq!((e.request, e.field), (RequestKind::Commit, "session_id"));
    let r = e.refusal();
    assert_eq!(r.rule, Rule::BadRequest);
    assert_eq!(r.reason, "session id must be 16 bytes");
    assert!(r.permanent);
    let e = refused(Req::Sign(pb::SignRequest {
        session_id: vec![1; 15],
        ..Default::default()
    }));
    assert_eq!((e.request, e.field), (RequestKind::Sign, "session_id"));
    let e = refused(Req::Presign(pb::PresignRequest {
        session_ids: vec![vec![1; 16], vec![1; 15]],
        scheme: 0,
    }));
    assert_eq!(e.field, "session_ids");
    let mut s = repair_session_to_proto(session());
    s.session_id = vec![1; 15];
    let e = refused(Req::RepairOffer(pb::RepairOfferRequest {
        session: Some(s),
    }));
    assert_eq!(e.field, "session.session_id");
    assert_eq!(e.refusal().rule, Rule::BadRequest);
}

#[test]
fn an_unknown_scheme_is_refused_naming_the_field() {
    let e = refused(Req::Commit(pb::CommitRequest {
        session_id: vec![1; 16],
        scheme: 7,
    }));
    assert_eq!(e.field, "scheme");
    assert_eq!(e.refusal().rule, Rule::BadRequest);
    assert_eq!(e.reason, "unknown key scheme 7");
    // Before any DKG step: bad-request, not an abort.
    let e = refused(Req::DkgRound2(pb::DkgRound2Request {
        scheme: 7,
        ..Default::default()
    }));
    assert_eq!(e.field, "scheme");
    assert_eq!(e.refusal().rule, Rule::BadRequest);
    let mut s = repair_session_to_proto(session());
    s.scheme = 9;
    let e = refused(Req::AddHolder(pb::AddHolder {
        session: Some(s),
        result: None,
    }));
    assert_eq!(e.field, "session.scheme");
}

#[test]
fn an_identifier_over_u16_max_is_refused_naming_the_field() {
    let far = u32::from(u16::MAX) + 1;
    let e = refused(Req::DkgRound2(pb::DkgRound2Request {
        session_id: vec![1; 16],
        packages: vec![pb::SignedRound1 {
            identifier: far,
            ..Default::default()
        }],
        scheme: 0,
    }));
    assert_eq!(e.field, "packages");
    assert_eq!(e.reason, format!("identifier {far} out of range"));
    // Inside a DKG round, as the round refused it before: an abort naming nobody.
    assert_eq!(e.refusal().rule, Rule::DkgAborted);
    let e = refused(Req::DkgRound1(pb::DkgRound1Request {
        refresh: Some(pb::RefreshTerms {
            old_epoch: 0,
            participants: vec![1, far],
        }),
        ..Default::default()
    }));
    assert_eq!(e.field, "refresh.participants");
    assert_eq!(e.refusal().rule, Rule::BadRequest);
    let mut s = repair_session_to_proto(session());
    s.helpers.push(far);
    let e = refused(Req::RepairOffer(pb::RepairOfferRequest {
        session: Some(s),
    }));
    assert_eq!(e.field, "session.helpers");
    let mut s = repair_session_to_proto(session());
    s.target = far;
    let e = refused(Req::RepairOffer(pb::RepairOfferRequest {
        session: Some(s),
    }));
    assert_eq!(e.field, "session.target");
    let e = refused(Req::DkgConfirm(pb::DkgConfirmRequest {
        results: vec![pb::DkgResult {
            identifier: far,
            ..Default::default()
        }],
        ..Default::default()
    }));
    assert_eq!(e.field, "results");
    let e = refused(Req::RefreshActivate(pb::RefreshActivate {
        acks: vec![pb::RefreshAck {
            identifier: far,
            signature: vec![],
        }],
        ..Default::default()
    }));
    assert_eq!(e.field, "acks");
    assert_eq!(e.refusal().rule, Rule::BadRequest);
}

#[test]
fn other_malformed_fields_are_named_with_their_handlers_rule() {
    let e = refused(Req::PolicyUpdate(crate::policy::SignedPolicy::default()));
    assert_eq!(e.field, "document");
    assert_eq!(e.refusal().rule, Rule::PolicyUpdateInvalid);
    let e = refused(Req::PolicyVeto(pb::PolicyVeto {
        policy_hash: vec![1; 31],
        veto: None,
    }));
    assert_eq!(e.field, "policy_hash");
    assert_eq!(e.refusal().rule, Rule::PolicyVetoInvalid);
    let e = refused(Req::PolicyVeto(pb::PolicyVeto {
        policy_hash: vec![1; 32],
        veto: None,
    }));
    assert_eq!((e.field, e.reason.as_str()), ("veto", "veto: missing"));
    let e = refused(Req::Sign(pb::SignRequest {
        session_id: vec![1; 16],
        approvals: vec![crate::policy::AdminSignature {
            admin: vec![1; 5],
            signature: vec![],
        }],
        ..Default::default()
    }));
    assert_eq!(e.field, "approvals");
    assert_eq!(e.refusal().rule, Rule::BadRequest);
    let e = refused(Req::Sign(pb::SignRequest {
        session_id: vec![1; 16],
        solana_void: Some(pb::SolanaVoid {
            nonce_account: vec![1; 31],
            ..Default::default()
        }),
        ..Default::default()
    }));
    assert_eq!(e.field, "solana_void.nonce_account");
    let e = refused(Req::DkgRound3(pb::DkgRound3Request {
        packages: vec![pb::SealedRound2 {
            nonce: vec![1; 11],
            ..Default::default()
        }],
        ..Default::default()
    }));
    assert_eq!(e.field, "packages");
    assert_eq!(e.refusal().rule, Rule::DkgAborted);
    let mut o = offer_to_proto(offer(1));
    o.commitments.push(o.commitments[0].clone());
    let e = refused(Req::RepairContribute(pb::RepairContributeRequest {
        session: Some(repair_session_to_proto(session())),
        offers: vec![o],
        deltas: vec![],
    }));
    assert_eq!(
        (e.field, e.reason.as_str()),
        ("offers", "an offer commits twice to one helper")
    );
    let e = refused(Req::AddHolder(pb::AddHolder {
        session: None,
        result: None,
    }));
    assert_eq!(
        (e.field, e.reason.as_str()),
        ("session", "an enrolment without its session")
    );
}

#[test]
fn a_veto_is_kept_as_its_wire_encoding() {
    let v = PolicyVeto {
        policy_hash: [3; 32],
        veto: admin(1),
    };
    let bytes = encode_veto(&v);
    assert_eq!(bytes, veto_to_proto(&v).encode_to_vec());
    assert_eq!(decode_veto(&bytes).unwrap(), v);
    let p = signed_policy();
    assert_eq!(
        policy::decode_signed(&policy::encode_signed(&p)).unwrap(),
        p
    );
    let add = AddHolder {
        session: session(),
        result: repair_result(),
    };
    assert_eq!(decode_add_holder(&encode_add_holder(&add)).unwrap(), add);
    let Some(Request::RefreshActivate(a)) = requests()
        .into_iter()
        .find(|r| r.kind() == RequestKind::RefreshActivate)
    else {
        panic!("no refresh activation sample");
    };
    assert_eq!(
        decode_refresh_activate(&encode_refresh_activate(&a)).unwrap(),
        a
    );
}

#[test]
fn a_sync_answer_keeps_what_converts() {
    let mut bad_veto = veto_to_proto(&PolicyVeto {
        policy_hash: [7; 32],
        veto: admin(5),
    });
    bad_veto.policy_hash.pop();
    let good = signed_policy();
    let body = Ans::Sync(pb::SyncAnswer {
        policy: None,
        updates: vec![
            crate::policy::SignedPolicy::default(),
            policy::signed_to_proto(&good),
        ],
        vetoes: vec![bad_veto],
        key_packages: vec![
            pb::KeyPackageInfo {
                scheme: 9,
                key_epoch: 1,
                public_key_package: vec![1],
            },
            pb::KeyPackageInfo {
                scheme: 1,
                key_epoch: 2,
                public_key_package: vec![2],
            },
        ],
    });
    let Answer::Sync(a) = Answer::try_from(body).unwrap() else {
        panic!("not a sync answer");
    };
    assert_eq!(a.policy, None);
    assert_eq!(a.updates, vec![good]);
    assert!(a.vetoes.is_empty());
    assert_eq!(
        a.key_packages,
        vec![KeyPackageInfo {
            scheme: Scheme::Ed25519,
            key_epoch: 2,
            public_key_package: vec![2],
        }]
    );
}

#[test]
fn a_batch_of_too_many_notices_is_refused_at_the_edge() {
    let notice = pb::LedgerNotice::default();
    let e = refused(Req::LedgerNotices(pb::LedgerNotices {
        notices: vec![notice; MAX_NOTICES + 1],
    }));
    assert_eq!(
        (e.request, e.field),
        (RequestKind::LedgerNotices, "notices")
    );
    assert_eq!(e.refusal().rule, Rule::BadRequest);
}

#[test]
fn a_notice_result_with_neither_outcome_is_refused_naming_the_field() {
    let body = Ans::LedgerAcks(pb::LedgerAcks {
        results: vec![
            pb::LedgerNoticeResult {
                result: Some(pb::ledger_notice_result::Result::Ack(pb::LedgerAck {
                    debited: true,
                })),
            },
            pb::LedgerNoticeResult { result: None },
        ],
    });
    let e = Answer::try_from(body).expect_err("refused");
    assert_eq!(e.field, "results");
}
