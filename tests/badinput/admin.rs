//! Bad input on every field of the admin service.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_admin_rpc_field_refuses_bad_input() {
    let mut c = Cluster::start(3, 2).await;
    let mut book = Book::bad_inputs("badinput-admin");
    let mut a = AdminServiceClient::new(c.channel("admin").await);
    let invalid = [Code::InvalidArgument];
    let version_before = a
        .get_policy(apb::GetPolicyRequest::default())
        .await
        .unwrap()
        .into_inner()
        .status
        .unwrap()
        .version;

    let r = a
        .propose_policy(apb::ProposePolicyRequest { policy: None })
        .await;
    book.handled("propose: policy missing", &clear("no policy", r, &invalid));
    let r = a
        .propose_policy(apb::ProposePolicyRequest {
            policy: Some(ppb::SignedPolicy::default()),
        })
        .await;
    book.handled("propose: empty policy", &clear("empty", r, &invalid));
    let sig = |admin: Vec<u8>, signature: Vec<u8>| ppb::AdminSignature { admin, signature };
    let admin_key = hex::decode(
        quorate_core::identity::IdentitySecret::from_bytes(
            &hex::decode(
                std::fs::read_to_string(c.path("admin/admin-1.key"))
                    .unwrap()
                    .trim(),
            )
            .unwrap(),
        )
        .unwrap()
        .public()
        .to_string(),
    )
    .unwrap();
    let good_hash = "ab".repeat(32);
    for (name, hash, approval) in [
        (
            "hash empty",
            String::new(),
            Some(sig(admin_key.clone(), vec![1; 64])),
        ),
        (
            "hash not hex",
            "zz".repeat(32),
            Some(sig(admin_key.clone(), vec![1; 64])),
        ),
        (
            "hash upper case",
            "AB".repeat(32),
            Some(sig(admin_key.clone(), vec![1; 64])),
        ),
        (
            "hash 63 digits",
            "a".repeat(63),
            Some(sig(admin_key.clone(), vec![1; 64])),
        ),
        ("signature missing", good_hash.clone(), None),
        (
            "admin key 32 bytes",
            good_hash.clone(),
            Some(sig(vec![2; 32], vec![1; 64])),
        ),
        (
            "admin key not on the curve",
            good_hash.clone(),
            Some(sig(vec![2; 33], vec![1; 64])),
        ),
        (
            "signature garbage",
            good_hash.clone(),
            Some(sig(admin_key.clone(), vec![1; 3])),
        ),
        (
            "unknown proposal",
            good_hash.clone(),
            Some(sig(admin_key.clone(), vec![1; 64])),
        ),
    ] {
        let codes = [
            Code::InvalidArgument,
            Code::NotFound,
            Code::PermissionDenied,
            Code::FailedPrecondition,
        ];
        let r = a
            .approve_policy(apb::ApprovePolicyRequest {
                hash: hash.clone(),
                approval: approval.clone(),
            })
            .await;
        book.handled(&format!("approve policy: {name}"), &clear(name, r, &codes));
        let r = a
            .veto_policy(apb::VetoPolicyRequest {
                hash,
                veto: approval,
            })
            .await;
        book.handled(&format!("veto policy: {name}"), &clear(name, r, &codes));
    }
    for (name, id, approval, codes) in [
        (
            "id empty",
            String::new(),
            Some(sig(admin_key.clone(), vec![1; 64])),
            &invalid[..],
        ),
        (
            "id oversized",
            "w".repeat(200),
            Some(sig(admin_key.clone(), vec![1; 64])),
            &invalid[..],
        ),
        ("approval missing", "wd-x".into(), None, &invalid[..]),
        (
            "unknown id",
            "wd-x".into(),
            Some(sig(admin_key.clone(), vec![1; 64])),
            &[Code::NotFound][..],
        ),
    ] {
        let r = a
            .approve_withdrawal(apb::ApproveWithdrawalRequest { id, approval })
            .await;
        book.handled(
            &format!("approve withdrawal: {name}"),
            &clear(name, r, codes),
        );
    }
    for (name, node) in [
        ("unknown node", "signer-9".to_string()),
        ("empty node", String::new()),
        ("oversized node", "n".repeat(100_000)),
    ] {
        let r = a
            .export_audit(AuditExportRequest {
                node,
                from_seq: 1,
                limit: 10,
                nonce: vec![],
            })
            .await;
        book.handled(&format!("export audit: {name}"), &clear(name, r, &invalid));
    }
    let r = a
        .export_audit(AuditExportRequest {
            node: "coordinator".into(),
            from_seq: 1,
            limit: 10,
            nonce: vec![1; 65],
        })
        .await;
    book.handled(
        "export audit: nonce over 64 bytes",
        &clear("nonce", r, &invalid),
    );
    for (name, hash) in [
        ("not hex", "zz".repeat(32)),
        ("short", "ab".to_string()),
        ("upper case", "AB".repeat(32)),
    ] {
        let r = a
            .get_policy(apb::GetPolicyRequest {
                proposal_hash: hash,
            })
            .await;
        book.handled(
            &format!("get policy: proposal hash {name}"),
            &clear(name, r, &invalid),
        );
    }
    let r = a
        .get_policy_chain(apb::GetPolicyChainRequest {
            from_version: 0,
            limit: 1,
        })
        .await;
    book.handled(
        "policy chain: from version 0",
        &clear("from 0", r, &invalid),
    );
    for (name, challenge) in [
        ("empty", vec![]),
        ("15 bytes", vec![1; 15]),
        ("65 bytes", vec![1; 65]),
    ] {
        let r = a
            .get_signer_receipts(apb::GetSignerReceiptsRequest { challenge })
            .await;
        book.handled(
            &format!("signer receipts: challenge {name}"),
            &clear(name, r, &invalid),
        );
    }
    // Vault actions: a chain that does not exist, and one without a vault in the policy (no
    // signer is asked: the coordinator's own copy answers first).
    for (name, chain, codes) in [
        ("unknown chain", "dogecoin", &invalid[..]),
        ("empty chain", "", &invalid[..]),
        (
            "no vault on the chain",
            "ethereum",
            &[Code::PermissionDenied][..],
        ),
    ] {
        let r = a
            .sign_vault_action(apb::SignVaultActionRequest {
                chain: chain.into(),
                nonce: 0,
            })
            .await;
        book.handled(
            &format!("sign vault action: {name}"),
            &clear(name, r, codes),
        );
    }
    // Solana voids: malformed accounts, values and approvals; a DKG for a scheme that does
    // not exist.
    let hash = "CktRuQ2mttgRGkXJtyksdKHjUdc2C4TgDzyB98oEzy8";
    let approval = quorate_wire::policy::AdminSignature {
        admin: vec![2; 33],
        signature: vec![1; 64],
    };
    for (name, account, value, approval) in [
        ("account not base58", "0OIl", hash, Some(approval.clone())),
        (
            "value of 31 bytes",
            hash,
            "1111111111111111111111111111111",
            Some(approval.clone()),
        ),
        ("no approval", hash, hash, None),
        (
            "approval by a key that is not a key",
            hash,
            hash,
            Some(quorate_wire::policy::AdminSignature {
                admin: vec![9; 3],
                signature: vec![],
            }),
        ),
    ] {
        let r = a
            .void_solana_nonce(apb::VoidSolanaNonceRequest {
                nonce_account: account.into(),
                nonce_value: value.into(),
                approval,
            })
            .await;
        book.handled(
            &format!("void solana nonce: {name}"),
            &clear(name, r, &invalid),
        );
    }
    let r = a
        .start_dkg(apb::StartDkgRequest {
            scheme: "rsa".into(),
        })
        .await;
    book.handled("start dkg: unknown scheme", &clear("scheme", r, &invalid));
    let ch = c.channel("admin").await;
    for (name, path) in [
        (
            "sign vault action",
            "/quorate.admin.v1.AdminService/SignVaultAction",
        ),
        (
            "void solana nonce",
            "/quorate.admin.v1.AdminService/VoidSolanaNonce",
        ),
        ("propose", "/quorate.admin.v1.AdminService/ProposePolicy"),
        ("approve", "/quorate.admin.v1.AdminService/ApprovePolicy"),
    ] {
        let r = raw::<apb::Proposal>(ch.clone(), path, vec![0xff; 32]).await;
        book.handled(&format!("{name}: raw garbage"), &clear(name, r, &invalid));
    }

    // Nothing changed and the node works: the policy is where it was, a freeze still applies.
    let p = a
        .get_policy(apb::GetPolicyRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(p.status.unwrap().version, version_before);
    c.assert_serving().await;
    let (code, v) = c.submit_eth("wd-bad-admin-control", "1000").await;
    assert_eq!((code, v["status"].as_str()), (0, Some("signed")), "{v}");
    book.finish();
}
