//! A stable, deterministic fuzz run of every target for `cargo test`: seeds of every valid
//! form, then mutated inputs (bit flips, byte changes, insertions, deletions, duplicated and
//! spliced chunks, truncation). A panic is a finding; the failing input is printed in hex.
//! `QUORATE_FUZZ_ITERS` sets the mutations per target (default 20,000). Coverage-guided runs
//! with libFuzzer: docs/fuzzing.md.

use prost::Message;
use quorate_core::{
    audit::{Chain as AuditChain, Event, Head},
    identity::IdentitySecret,
    intent::WithdrawalIntent,
    policy::PolicyForm,
};
use rand::{rngs::StdRng, Rng, SeedableRng};

const POLICY: &str = r#"
admin_quorum = 2
admins = [
  "0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798",
  "02c6047f9441ed7d6d3045406e95c07cd85c778e4b8cef3ca7abac09b95c709ee5",
  "02f9308a019258c31049344f85f89d5229b531c845836f99b08601f113bce036f9",
]
backend_keys = ["02e493dbf1c10d80f3581e4904930b1404cc6c13900ee0758474fa94abe8c4cd13"]
timelock = "24h"

[[assets]]
chain = "ethereum"
asset = "ETH"
decimals = 18
max_per_withdrawal = "5"
approval_threshold = "2"
approvals_required = 1

[[whitelist]]
chain = "ethereum"
address = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"
label = "cold wallet"
active_from = "2026-12-01T09:00:00Z"

[[velocity]]
chain = "ethereum"
asset = "ETH"
scope = "asset"
window = "24h"
max_amount = "10"
max_count = 50
"#;

fn intent(id: &str, chain: &str, asset: &str, to: &str) -> WithdrawalIntent {
    WithdrawalIntent::from_parts(id, chain, asset, to, "1000", 1, 2, Some("ref-1")).unwrap()
}

fn seeds(target: &str) -> Vec<Vec<u8>> {
    let eth = intent(
        "wd-1",
        "ethereum",
        "ETH",
        "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
    );
    let btc = intent(
        "wd-2",
        "bitcoin",
        "BTC",
        "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4",
    );
    let doc = PolicyForm::parse(POLICY)
        .unwrap()
        .to_doc(1, &quorate_core::policy::doc::zero_hash())
        .unwrap();
    let key = IdentitySecret::from_bytes(&[3; 32]).unwrap();
    let mut chain = AuditChain::resume(None);
    let mut records = Vec::new();
    let mut export = String::new();
    for i in 0..3 {
        let r = chain.prepare(
            10 + i,
            Event::new("share-released")
                .with("withdrawal", format!("wd-{i}"))
                .with("digest", "ab".repeat(32)),
        );
        chain.advance(&r);
        export.push_str(&r.to_json());
        export.push('\n');
        records.push(r);
    }
    let head = Head::signed("signer-1", &chain, &key, b"nonce");
    export.push_str(&head.to_json());
    match target {
        "intent_decode" => vec![eth.encode(), btc.encode()],
        "amount_parse" => ["0", "1", "1000", &u128::MAX.to_string()]
            .iter()
            .map(|s| s.as_bytes().to_vec())
            .collect(),
        "address_parse" => quorate_core::address::Chain::ALL
            .iter()
            .zip([
                "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
                "0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed",
                "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4",
                "tb1qw508d6qejxtdg4y5r3zarvary0c5xw7kxpjzsx",
                "TJEh7TX8sNj5uq4hXKyYdTrnGmeeG48top",
                "11111111111111111111111111111111",
            ])
            .map(|(c, a)| [vec![c.code()], a.as_bytes().to_vec()].concat())
            .collect(),
        "policy_parse" => {
            // Regression: an activation time past year 9999 was valid but had no TOML form.
            let mut far = doc.clone();
            far.whitelist[0].active_from_ms = 17_961_796_115_600_000;
            vec![doc.encode(), POLICY.as_bytes().to_vec(), far.encode()]
        }
        "proto_convert" => vec![
            quorate_wire::withdrawal::SubmitRequest {
                intent: Some(quorate_wire::convert::intent_to_proto(&eth)),
                backend_signature: vec![1; 64],
            }
            .encode_to_vec(),
            quorate_wire::policy::SignedPolicy {
                document: doc.encode(),
                signatures: vec![],
            }
            .encode_to_vec(),
            quorate_wire::convert::audit::page_to_proto(&records, &head).encode_to_vec(),
        ],
        "audit_verify" => vec![export.into_bytes()],
        "link_convert" => {
            use quorate_core::link::{Answer, LedgerNotice, Request};
            use quorate_core::refusal::{Refusal, Rule};
            use quorate_wire::signer::{CoordinatorMessage, SignerMessage};
            let notice = |i: &WithdrawalIntent| LedgerNotice {
                intent: i.encode(),
                signature: vec![2; 64],
                signed_at_ms: 1_700_000_000_000,
            };
            let request = |r: Request| {
                CoordinatorMessage {
                    request_id: 9,
                    body: Some(r.into()),
                }
                .encode_to_vec()
            };
            let answer = |a: Answer| {
                SignerMessage {
                    request_id: 9,
                    body: Some(a.into()),
                }
                .encode_to_vec()
            };
            vec![
                request(Request::LedgerNotices(vec![notice(&eth), notice(&btc)])),
                request(Request::StatusChallenge {
                    challenge: vec![5; 16],
                }),
                answer(Answer::LedgerAcks(vec![
                    Ok(true),
                    Err(Refusal::permanent(Rule::LedgerNoticeInvalid, "forged")),
                ])),
                answer(Answer::refused(Refusal::temporary(
                    Rule::PolicyMissing,
                    "no policy installed",
                ))),
            ]
        }
        "stored_records" => {
            use quorate_coordinator::store::{codec, Record, Status};
            let record = Record {
                v: 1,
                seq: 41,
                id: eth.id.clone(),
                intent: hex_of(&eth.encode()),
                backend_signature: hex_of(&[0x5a; 64]),
                digest: eth.digest_hex(),
                status: Status::Signed,
                signature: Some(hex_of(&[0x02; 65])),
                signers: vec![1, 3],
                rule: Some("policy-amount-max".into()),
                reason: Some("too much".into()),
                created_ms: 1_700_000_000_100,
                updated_ms: 1_700_000_000_900,
                approvals: vec![(hex_of(&[3; 33]), hex_of(&[4; 64]))],
                message: Some(hex_of(&[9; 32])),
                evm_call: Some((
                    "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed".into(),
                    hex_of(&[1, 2, 3]),
                )),
                solana_transaction: None,
                retry_at_ms: Some(1_700_000_060_000),
            };
            vec![
                records[0].encode(),
                quorate_signer::store::binding::encode(&[7; 32], 1_700_000_000_250),
                codec::encode(&record).unwrap(),
                serde_json::to_vec(&record).unwrap(),
            ]
        }
        other => panic!("no seeds for {other}"),
    }
}

fn mutate(rng: &mut StdRng, input: &mut Vec<u8>, other: &[u8]) {
    for _ in 0..rng.gen_range(1..=4) {
        let len = input.len();
        match rng.gen_range(0..7) {
            0 if len > 0 => {
                let i = rng.gen_range(0..len);
                input[i] ^= 1 << rng.gen_range(0..8);
            }
            1 if len > 0 => {
                let i = rng.gen_range(0..len);
                input[i] = rng.gen();
            }
            2 => {
                let i = rng.gen_range(0..=len);
                input.insert(i, rng.gen());
            }
            3 if len > 0 => {
                let i = rng.gen_range(0..len);
                input.remove(i);
            }
            4 if len > 1 => {
                let a = rng.gen_range(0..len);
                let b = rng.gen_range(a..len.min(a + 32) + 1).min(len);
                let chunk = input[a..b].to_vec();
                let at = rng.gen_range(0..=input.len());
                input.splice(at..at, chunk);
            }
            5 if !other.is_empty() => {
                let at = rng.gen_range(0..=len);
                let from = rng.gen_range(0..other.len());
                input.truncate(at);
                input.extend_from_slice(&other[from..]);
            }
            _ if len > 0 => input.truncate(rng.gen_range(0..len)),
            _ => input.push(rng.gen()),
        }
    }
}

#[test]
fn every_target_survives_seeds_and_mutations() {
    let iters: usize = std::env::var("QUORATE_FUZZ_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    for (name, target) in quorate_fuzz::TARGETS {
        let seeds = seeds(name);
        for s in &seeds {
            target(s);
        }
        let mut rng = StdRng::seed_from_u64(0x5eed ^ name.len() as u64);
        for n in 0..iters {
            let mut input = seeds[n % seeds.len()].clone();
            let other = &seeds[rng.gen_range(0..seeds.len())];
            mutate(&mut rng, &mut input, other);
            let run = std::panic::catch_unwind(|| target(&input));
            assert!(
                run.is_ok(),
                "{name} panicked on input {} (mutation {n})",
                hex_of(&input)
            );
        }
        println!("{name}: {} seeds, {iters} mutations", seeds.len());
    }
}

/// The committed seed corpus (`fuzz/seeds/<target>/`) for libFuzzer runs: every target runs
/// over it here too. `QUORATE_FUZZ_WRITE_SEEDS=1` rewrites it from the seeds above.
#[test]
fn committed_seeds_run_and_match() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds");
    for (name, target) in quorate_fuzz::TARGETS {
        let dir = root.join(name);
        if std::env::var_os("QUORATE_FUZZ_WRITE_SEEDS").is_some() {
            std::fs::create_dir_all(&dir).unwrap();
            for (i, s) in seeds(name).iter().enumerate() {
                std::fs::write(dir.join(format!("seed-{i}")), s).unwrap();
            }
        }
        let files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .collect();
        assert!(!files.is_empty(), "no seeds for {name}");
        for f in files {
            target(&std::fs::read(&f).unwrap());
        }
    }
}

fn hex_of(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
