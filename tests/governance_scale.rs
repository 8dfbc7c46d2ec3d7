//! Governance at scale: one admin filing 10,000 proposals, and a 100,000-entry whitelist,
//! leave every admin command working for everyone (bounded governance state).

use quorate_core::policy::SignedPolicy;
use quorate_wire::{
    admin::{self as pb, admin_service_client::AdminServiceClient},
    convert::policy::signed_to_proto,
};

use crate::{
    desk::{genesis, ATTACKER_ETH},
    harness::Cluster,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_proposals_leave_every_admin_command_working() {
    use futures::StreamExt;
    use prost::Message;
    let c = Cluster::start(3, 2).await;
    let g = genesis(&c);
    let key = |n: u32| {
        let t = std::fs::read_to_string(c.path(&format!("admin/admin-{n}.key"))).unwrap();
        quorate_core::identity::IdentitySecret::from_bytes(&hex::decode(t.trim()).unwrap()).unwrap()
    };
    let spammer = key(3);
    let mut a = AdminServiceClient::new(c.channel("admin").await);
    // Admin 3 files 10,000 proposals (each a different label), none of which any other admin
    // approves.
    let started = std::time::Instant::now();
    let filed = futures::stream::iter(0..10_000u32)
        .map(|i| {
            let mut a = a.clone();
            let mut d = g.doc.clone();
            d.version = 2;
            d.prev_hash = g.doc.hash_hex();
            d.whitelist[0].label = format!("spam {i}");
            let sig = quorate_core::policy::AdminSignature::sign(
                &spammer,
                quorate_core::policy::governance::POLICY_APPROVAL_DOMAIN,
                &[&d.hash()],
            );
            async move {
                a.propose_policy(pb::ProposePolicyRequest {
                    policy: Some(signed_to_proto(&SignedPolicy {
                        doc: d,
                        signatures: vec![sig],
                    })),
                })
                .await
                .is_ok()
            }
        })
        .buffer_unordered(8)
        .filter(|ok| futures::future::ready(*ok))
        .count()
        .await;
    assert_eq!(filed, 10_000);
    println!("10,000 proposals filed in {:?}", started.elapsed());
    let view = a
        .get_policy(pb::GetPolicyRequest::default())
        .await
        .unwrap()
        .into_inner();
    let open = view
        .proposals
        .iter()
        .filter(|p| p.state == "collecting")
        .count();
    assert_eq!(open, 8, "one admin holds at most 8 open proposals");
    assert!(
        view.encoded_len() < quorate_wire::MAX_MESSAGE_BYTES,
        "the policy view stays under the old 256 KiB answer limit: {} bytes",
        view.encoded_len()
    );
    // Every admin command still works for the other admins.
    let (code, v) = c.admin(1, &["show"]).await;
    assert_eq!((code, v["version"].as_u64()), (0, Some(1)), "{v}");
    let (code, v) = c.admin(1, &["pending"]).await;
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["proposals"].as_array().unwrap().len(), 8, "{v}");
    let newest = view
        .proposals
        .iter()
        .filter(|p| p.state == "collecting")
        .max_by_key(|p| p.hash.clone())
        .unwrap()
        .hash
        .clone();
    let vetoed_doc = a
        .get_policy(pb::GetPolicyRequest {
            proposal_hash: newest.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .proposals
        .into_iter()
        .find(|p| p.hash == newest)
        .and_then(|p| p.policy)
        .expect("the asked proposal comes with its document");
    let (code, v) = c.admin(2, &["veto", &newest]).await;
    assert_eq!((code, v["state"].as_str()), (0, Some("vetoed")), "{v}");
    // Filed again, even after 100 more proposals by the same admin, it stays vetoed.
    for i in 0..100u32 {
        let mut d = g.doc.clone();
        d.version = 2;
        d.prev_hash = g.doc.hash_hex();
        d.whitelist[0].label = format!("more spam {i}");
        let sig = quorate_core::policy::AdminSignature::sign(
            &spammer,
            quorate_core::policy::governance::POLICY_APPROVAL_DOMAIN,
            &[&d.hash()],
        );
        a.propose_policy(pb::ProposePolicyRequest {
            policy: Some(signed_to_proto(&SignedPolicy {
                doc: d,
                signatures: vec![sig],
            })),
        })
        .await
        .unwrap();
    }
    let again = a
        .propose_policy(pb::ProposePolicyRequest {
            policy: Some(vetoed_doc),
        })
        .await
        .unwrap_err();
    assert_eq!(
        again
            .metadata()
            .get(quorate_wire::RULE_METADATA_KEY)
            .unwrap(),
        "policy-update-vetoed",
        "{again:?}"
    );
    let (code, v) = c.admin(1, &["freeze"]).await;
    assert_eq!((code, v["state"].as_str()), (0, Some("applied")), "{v}");
    let (code, v) = c.admin(1, &["unfreeze"]).await;
    assert_eq!(code, 0, "{v}");
    let hash = v["hash"].as_str().unwrap().to_string();
    let (code, v) = c.admin(2, &["approve", &hash]).await;
    assert_eq!((code, v["state"].as_str()), (0, Some("applied")), "{v}");
    let (code, v) = c.submit_eth("wd-after-spam", "1000").await;
    assert_eq!((code, v["status"].as_str()), (0, Some("signed")), "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_thousand_entry_whitelist_leaves_every_admin_command_working() {
    let mut toml = String::from(include_str!("../cli/src/dev_policy.toml"));
    for i in 0..100_000u32 {
        toml.push_str(&format!(
            "\n[[whitelist]]\nchain = \"polygon\"\naddress = \"0x{:040x}\"\nlabel = \"customer {i}\"\n",
            i + 1
        ));
    }
    let c = Cluster::start_with_policy(3, 2, Some(&toml)).await;
    // Every signer holds the 100,000-entry genesis: proven by its signed receipt. Each gets
    // it from the coordinator once linked, and may still be reading it when DKG is over.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        let (code, v) = c.admin(1, &["show"]).await;
        assert_eq!(code, 0, "{v}");
        let holds = |s: &serde_json::Value| {
            (s["proven"].as_bool(), s["version"].as_u64()) == (Some(true), Some(1))
        };
        if v["signers"].as_array().unwrap().iter().all(holds) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not every signer proved the genesis: {v}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let started = std::time::Instant::now();
    let form = c.policy_toml().await;
    assert_eq!(form.matches("[[whitelist]]").count(), 100_000 + 7);
    let file = c.path("big.toml");
    std::fs::write(
        &file,
        format!("{form}\n[[whitelist]]\nchain = \"ethereum\"\naddress = \"{ATTACKER_ETH}\"\nlabel = \"new partner\"\n"),
    )
    .unwrap();
    let (code, v) = c.admin(1, &["propose", file.to_str().unwrap()]).await;
    assert_eq!(code, 0, "{v}");
    assert_eq!(
        v["changes"].as_array().unwrap().len(),
        1,
        "one line of diff: {v}"
    );
    let hash = v["hash"].as_str().unwrap().to_string();
    let (code, v) = c.admin(2, &["approve", &hash]).await;
    assert_eq!((code, v["state"].as_str()), (0, Some("timelocked")), "{v}");
    let (code, v) = c.admin(1, &["pending"]).await;
    assert_eq!(
        (code, v["proposals"][0]["hash"].as_str()),
        (0, Some(hash.as_str())),
        "{v}"
    );
    let (code, v) = c.admin(3, &["veto", &hash]).await;
    assert_eq!((code, v["state"].as_str()), (0, Some("vetoed")), "{v}");
    let (code, v) = c.admin(1, &["freeze"]).await;
    assert_eq!((code, v["state"].as_str()), (0, Some("applied")), "{v}");
    println!(
        "admin commands on a 100,000-entry whitelist took {:?}",
        started.elapsed()
    );
    let (code, v) = c.submit_eth("wd-big-frozen", "1000").await;
    assert_eq!(
        (code != 0, v["rule"].as_str()),
        (true, Some("policy-frozen")),
        "{v}"
    );
}
