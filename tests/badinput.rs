//! Bad input on every RPC, against real processes: every field empty, oversized, malformed
//! (every address form per chain, every amount form), messages above the size limit, raw
//! protobuf that is truncated, deeply nested or repeats fields. Each must get a clear error
//! (the right status code, a message that leads with a rule tag), store nothing, and leave the
//! node healthy: the same request done right still works afterwards.

use prost::Message;
use quorate_wire::{
    admin::{self as apb, admin_service_client::AdminServiceClient},
    audit::AuditExportRequest,
    policy as ppb,
    signer::{self as spb, coordinator_message::Body as Req, signer_message::Body as Ans},
    withdrawal::{self as wpb, withdrawal_service_client::WithdrawalServiceClient},
};
use tonic::{codec::Codec, Code};

use crate::{
    harness::{now_ms, signed_intent, Cluster},
    hostile::{session, take_over},
    scoreboard::Book,
};

const TO: &str = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed";

fn intent(id: &str) -> wpb::Intent {
    let now = now_ms();
    wpb::Intent {
        solana: None,
        id: id.into(),
        chain: "ethereum".into(),
        asset: "ETH".into(),
        destination: TO.into(),
        amount: "1000".into(),
        created_at_ms: now,
        expires_at_ms: now + 600_000,
        customer_ref: String::new(),
    }
}

/// Checks one answer: a status with one of `codes`, and a message that leads with a rule tag
/// (`tag: sentence`), never an internal error.
#[track_caller]
fn clear<T: std::fmt::Debug>(what: &str, r: Result<T, tonic::Status>, codes: &[Code]) -> String {
    let s = match r {
        Ok(v) => panic!("{what}: accepted: {v:?}"),
        Err(s) => s,
    };
    assert!(
        codes.contains(&s.code()),
        "{what}: expected one of {codes:?}, got {:?}: {}",
        s.code(),
        s.message()
    );
    let tag = s.message().split(':').next().unwrap_or_default();
    assert!(
        !tag.is_empty()
            && tag
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            || s.code() == Code::OutOfRange
            || s.code() == Code::ResourceExhausted && s.message().contains("too large")
            || s.code() == Code::NotFound,
        "{what}: the message does not lead with a rule tag: {}",
        s.message()
    );
    format!("{:?}", s.code())
}

/// Sends raw bytes as a request body, so the test can send what no generated client would.
#[derive(Default)]
struct Raw<U>(std::marker::PhantomData<U>);

struct RawEncoder;

impl tonic::codec::Encoder for RawEncoder {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn encode(
        &mut self,
        item: Vec<u8>,
        buf: &mut tonic::codec::EncodeBuf<'_>,
    ) -> Result<(), tonic::Status> {
        prost::bytes::BufMut::put_slice(buf, &item);
        Ok(())
    }
}

impl<U: Message + Default + Send + 'static> Codec for Raw<U> {
    type Encode = Vec<u8>;
    type Decode = U;
    type Encoder = RawEncoder;
    type Decoder = tonic_prost::ProstDecoder<U>;
    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }
    fn decoder(&mut self) -> Self::Decoder {
        tonic_prost::ProstCodec::<U, U>::default().decoder()
    }
}

async fn raw<U: Message + Default + Send + 'static>(
    ch: tonic::transport::Channel,
    path: &'static str,
    body: Vec<u8>,
) -> Result<U, tonic::Status> {
    let mut g = tonic::client::Grpc::new(ch);
    g.ready()
        .await
        .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
    g.unary(
        tonic::Request::new(body),
        tonic::codegen::http::uri::PathAndQuery::from_static(path),
        Raw::<U>::default(),
    )
    .await
    .map(tonic::Response::into_inner)
}

/// Protobuf field key.
fn field_key(field: u32, wire: u32) -> Vec<u8> {
    let mut out = Vec::new();
    prost::encoding::encode_varint(u64::from(field << 3 | wire), &mut out);
    out
}

/// A length-delimited field.
fn ld(field: u32, body: &[u8]) -> Vec<u8> {
    let mut out = field_key(field, 2);
    prost::encoding::encode_varint(body.len() as u64, &mut out);
    out.extend_from_slice(body);
    out
}

async fn stored(c: &Cluster) -> usize {
    let mut w = WithdrawalServiceClient::new(c.channel("backend").await);
    let mut n = 0;
    let mut token = String::new();
    loop {
        let page = w
            .list(wpb::ListRequest {
                limit: 100,
                page_token: token.clone(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        n += page.withdrawals.len();
        if page.next_page_token.is_empty() {
            return n;
        }
        token = page.next_page_token;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_withdrawal_rpc_field_refuses_bad_input_and_stores_nothing() {
    let mut c = Cluster::start(3, 2).await;
    let mut book = Book::bad_inputs("badinput-withdrawal");
    let key = c.backend_key();
    let mut w = WithdrawalServiceClient::new(c.channel("backend").await)
        .max_decoding_message_size(quorate_wire::MAX_MESSAGE_BYTES);
    let before = stored(&c).await;
    let invalid = [Code::InvalidArgument];

    // Each intent field broken on its own; the rest is a valid intent. A valid-looking
    // signature by the backend over a digest is impossible for an invalid intent, so each
    // carries 64 arbitrary bytes: validation must come first and name the field.
    let long = |n: usize| "a".repeat(n);
    type Edit = Box<dyn Fn(&mut wpb::Intent)>;
    let mut cases: Vec<(String, Edit)> = Vec::new();
    for (name, v) in [
        ("empty", String::new()),
        ("129 bytes", long(129)),
        ("space", "wd 1".into()),
        ("newline", "wd\n1".into()),
        ("non-ASCII", "wd-é".into()),
        ("slash", "wd/1".into()),
    ] {
        cases.push((format!("id {name}"), Box::new(move |i| i.id = v.clone())));
    }
    for (name, v) in [
        ("empty", String::new()),
        ("unknown", "dogecoin".into()),
        ("upper case", "ETHEREUM".into()),
        ("oversized", long(10_000)),
    ] {
        cases.push((
            format!("chain {name}"),
            Box::new(move |i| i.chain = v.clone()),
        ));
    }
    for (name, v) in [
        ("empty", String::new()),
        ("lower case", "eth".into()),
        ("space", "E TH".into()),
        ("oversized", "A".repeat(100)),
    ] {
        cases.push((
            format!("asset {name}"),
            Box::new(move |i| i.asset = v.clone()),
        ));
    }
    for (chain, asset, bad) in [
        ("ethereum", "ETH", ""),
        ("ethereum", "ETH", "0x"),
        (
            "ethereum",
            "ETH",
            "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAe",
        ),
        (
            "ethereum",
            "ETH",
            "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed00",
        ),
        (
            "ethereum",
            "ETH",
            "5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
        ),
        (
            "ethereum",
            "ETH",
            "0xZaAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
        ),
        (
            "ethereum",
            "ETH",
            "0x5AAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
        ),
        (
            "ethereum",
            "ETH",
            " 0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
        ),
        (
            "polygon",
            "POL",
            "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAeD",
        ),
        (
            "bitcoin",
            "BTC",
            "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t5",
        ),
        (
            "bitcoin",
            "BTC",
            "tb1qw508d6qejxtdg4y5r3zarvary0c5xw7kxpjzsx",
        ),
        (
            "bitcoin",
            "BTC",
            "BC1QW508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4",
        ),
        ("bitcoin", "BTC", "1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN2"),
        ("bitcoin", "BTC", "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7k"),
        ("bitcoin", "BTC", "bc1"),
        (
            "bitcoin-testnet",
            "BTC",
            "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4",
        ),
        ("tron", "TRX", "TJEh7TX8sNj5uq4hXKyYdTrnGmeeG48tom"),
        ("tron", "TRX", "TJEh7TX8sNj5uq4hXKyYdTrnGmeeG48to"),
        ("tron", "TRX", "415aaeb6053f3e94c9b9a09f33669435e7ef1beaed"),
        ("tron", "TRX", "0JEh7TX8sNj5uq4hXKyYdTrnGmeeG48top"),
        ("solana", "SOL", "1111111111111111111111111111111"),
        ("solana", "SOL", "0OIl111111111111111111111111111111"),
        (
            "solana",
            "SOL",
            "4Nd1mBQtrMJVYVfKf2PJy9NZUZdTAsp7D4xWLs4gDB4T4Nd1mBQ",
        ),
    ] {
        cases.push((
            format!("destination on {chain}: {bad:?}"),
            Box::new(move |i| {
                i.chain = chain.into();
                i.asset = asset.into();
                i.destination = bad.into();
            }),
        ));
    }
    for bad in [
        "",
        "0",
        "-1",
        "1.5",
        "1e3",
        " 1",
        "+1",
        "0x10",
        "1_000",
        "007",
        "٣",
        "340282366920938463463374607431768211456",
        "99999999999999999999999999999999999999999999",
    ] {
        cases.push((
            format!("amount {bad:?}"),
            Box::new(move |i| i.amount = bad.into()),
        ));
    }
    cases.push((
        "created_at_ms zero".into(),
        Box::new(|i| i.created_at_ms = 0),
    ));
    cases.push((
        "expires_at_ms before created_at_ms".into(),
        Box::new(|i| i.expires_at_ms = i.created_at_ms - 1),
    ));
    cases.push((
        "expires_at_ms equal to created_at_ms".into(),
        Box::new(|i| i.expires_at_ms = i.created_at_ms),
    ));
    cases.push((
        "lifetime over 24 h".into(),
        Box::new(|i| i.expires_at_ms = i.created_at_ms + 25 * 3_600_000),
    ));
    cases.push((
        "customer_ref oversized".into(),
        Box::new(|i| i.customer_ref = "r".repeat(1000)),
    ));
    cases.push((
        "customer_ref control character".into(),
        Box::new(|i| i.customer_ref = "ref\u{7}".into()),
    ));
    // Solana terms: malformed, contradictory, or on another chain.
    let solana = |t: wpb::SolanaTerms| -> Box<dyn Fn(&mut wpb::Intent)> {
        Box::new(move |i| {
            i.chain = "solana".into();
            i.asset = "SOL".into();
            i.destination = "GmaDrppBC7P5ARKV8g3djiwP89vz1jLK23V2GBjuAEGB".into();
            i.solana = Some(t.clone());
        })
    };
    let hash = "CktRuQ2mttgRGkXJtyksdKHjUdc2C4TgDzyB98oEzy8";
    for (name, t) in [
        ("neither nonce nor blockhash", wpb::SolanaTerms::default()),
        (
            "both nonce and blockhash",
            wpb::SolanaTerms {
                nonce_account: hash.into(),
                nonce_value: hash.into(),
                recent_blockhash: hash.into(),
                ..Default::default()
            },
        ),
        (
            "a nonce account without its value",
            wpb::SolanaTerms {
                nonce_account: hash.into(),
                ..Default::default()
            },
        ),
        (
            "a blockhash that is not base58",
            wpb::SolanaTerms {
                recent_blockhash: "0OIl".into(),
                ..Default::default()
            },
        ),
        (
            "a blockhash of 31 bytes",
            wpb::SolanaTerms {
                recent_blockhash: "1111111111111111111111111111111".into(),
                ..Default::default()
            },
        ),
    ] {
        cases.push((format!("solana terms: {name}"), solana(t)));
    }
    cases.push((
        "solana terms on an ethereum intent".into(),
        Box::new(move |i| {
            i.solana = Some(wpb::SolanaTerms {
                recent_blockhash: hash.into(),
                ..Default::default()
            })
        }),
    ));
    for (k, (name, edit)) in cases.iter().enumerate() {
        let mut i = intent(&format!("wd-bad-{k}"));
        edit(&mut i);
        let r = w
            .submit(wpb::SubmitRequest {
                intent: Some(i),
                backend_signature: vec![1; 64],
            })
            .await;
        let got = clear(name, r, &invalid);
        book.handled(&format!("submit: {name}"), &got);
    }

    // The intent is fine, the request around it is not.
    let r = w
        .submit(wpb::SubmitRequest {
            intent: None,
            backend_signature: vec![1; 64],
        })
        .await;
    book.handled("submit: intent missing", &clear("no intent", r, &invalid));
    let valid = intent("wd-bad-sig");
    for (name, sig) in [
        ("empty", vec![]),
        ("one byte", vec![1]),
        ("64 zero bytes", vec![0; 64]),
        ("65 bytes", vec![1; 65]),
        (
            "over another digest",
            quorate_core::backend::sign(&key, &[7; 32]),
        ),
    ] {
        let r = w
            .submit(wpb::SubmitRequest {
                intent: Some(valid.clone()),
                backend_signature: sig,
            })
            .await;
        let got = clear(name, r, &[Code::PermissionDenied, Code::InvalidArgument]);
        book.handled(&format!("submit: backend signature {name}"), &got);
    }
    // u128::MAX parses, and is refused by policy as above the per-withdrawal maximum.
    let mut max = intent("wd-bad-max");
    max.amount = u128::MAX.to_string();
    let d = quorate_wire::convert::intent_from_proto(&max)
        .unwrap()
        .digest();
    let r = w
        .submit(wpb::SubmitRequest {
            intent: Some(max),
            backend_signature: quorate_core::backend::sign(&key, &d),
        })
        .await;
    let got = clear("u128::MAX", r, &[Code::PermissionDenied]);
    book.handled("submit: amount u128::MAX (policy-amount-max)", &got);

    // Above the message size limit.
    let r = w
        .submit(wpb::SubmitRequest {
            intent: Some(intent("wd-bad-big")),
            backend_signature: vec![1; quorate_wire::MAX_MESSAGE_BYTES + 1],
        })
        .await;
    let got = clear(
        "oversized message",
        r,
        &[Code::OutOfRange, Code::ResourceExhausted],
    );
    book.handled("submit: message above the size limit", &got);

    // Raw protobuf no client would send.
    let ch = c.channel("backend").await;
    let submit = "/quorate.withdrawal.v1.WithdrawalService/Submit";
    let good = wpb::SubmitRequest {
        intent: Some(intent("wd-bad-raw")),
        backend_signature: vec![1; 64],
    }
    .encode_to_vec();
    let mut nested = vec![];
    for _ in 0..200 {
        nested = ld(15, &nested);
    }
    // Groups are skipped recursively: past prost's recursion limit this cannot decode.
    let groups: Vec<u8> = [field_key(15, 3).repeat(200), field_key(15, 4).repeat(200)].concat();
    let mut dup_intent = good.clone();
    dup_intent.extend(ld(1, &intent("wd-bad-raw-2").encode_to_vec()));
    for (name, body) in [
        ("truncated", good[..good.len() - 3].to_vec()),
        (
            "wrong wire type for intent",
            [field_key(1, 0), vec![5]].concat(),
        ),
        (
            "200 levels of nested unknown fields",
            [good.clone(), nested.clone()].concat(),
        ),
        ("200 levels nested inside the intent", ld(1, &nested)),
        ("200 nested groups", [good.clone(), groups].concat()),
        ("intent given twice (merged)", dup_intent),
        ("garbage", vec![0xff; 64]),
        ("empty message", vec![]),
    ] {
        let r = raw::<wpb::Withdrawal>(ch.clone(), submit, body).await;
        let got = clear(name, r, &[Code::InvalidArgument, Code::PermissionDenied]);
        book.handled(&format!("submit: raw protobuf, {name}"), &got);
    }

    // Get, List and Watch.
    for (name, id) in [("empty", String::new()), ("oversized", long(200))] {
        let r = w.get(wpb::GetRequest { id }).await;
        book.handled(&format!("get: id {name}"), &clear(name, r, &invalid));
    }
    // (An empty Watch id means every withdrawal.)
    let r = w
        .watch(wpb::WatchRequest { id: long(200) })
        .await
        .map(|_| ());
    book.handled(
        "watch: id oversized",
        &clear("watch oversized", r, &invalid),
    );
    let r = w
        .get(wpb::GetRequest {
            id: "wd-never".into(),
        })
        .await;
    book.handled(
        "get: unknown id",
        &clear("unknown id", r, &[Code::NotFound]),
    );
    for (name, q) in [
        (
            "page_token not hex",
            wpb::ListRequest {
                page_token: "zz".into(),
                ..Default::default()
            },
        ),
        (
            "unknown chain",
            wpb::ListRequest {
                chain: "dogecoin".into(),
                ..Default::default()
            },
        ),
        (
            "oversized asset",
            wpb::ListRequest {
                asset: "A".repeat(100),
                ..Default::default()
            },
        ),
        (
            "unknown status",
            wpb::ListRequest {
                status: 99,
                ..Default::default()
            },
        ),
    ] {
        let r = w.list(q).await;
        book.handled(&format!("list: {name}"), &clear(name, r, &invalid));
    }

    // Nothing was stored, and the node still works: the valid request is signed.
    assert_eq!(
        stored(&c).await,
        before,
        "a refused request stored something"
    );
    c.assert_serving().await;
    let (code, v) = c.submit_eth("wd-bad-control", "1000").await;
    assert_eq!((code, v["status"].as_str()), (0, Some("signed")), "{v}");
    book.finish();
}

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signer_refuses_malformed_link_requests() {
    let mut c = Cluster::start(3, 2).await;
    let (mut signers, _links) = take_over(&mut c, 3).await;
    let mut book = Book::bad_inputs("badinput-signer-link");
    let d = signers.get_mut(&1).unwrap();
    let mut check = |name: &str, a: Ans, rule: &str| {
        match &a {
            Ans::Refusal(r) => assert_eq!(r.rule, rule, "{name}: {r:?}"),
            other => panic!("{name}: accepted: {other:?}"),
        }
        book.handled(&format!("signer link: {name}"), rule);
    };
    for len in [0usize, 15, 17, 1000] {
        let a = d
            .call(Req::Commit(spb::CommitRequest {
                scheme: Default::default(),
                session_id: vec![1; len],
            }))
            .await;
        check(
            &format!("commit, session id of {len} bytes"),
            a,
            "bad-request",
        );
    }
    // A key group that does not exist; one this signer does not hold yet (no ed25519 DKG ran).
    for (name, scheme, rule) in [
        ("commit, unknown key scheme 7", 7, "bad-request"),
        ("commit, ed25519 before its DKG", 1, "no-key-share"),
    ] {
        let a = d
            .call(Req::Commit(spb::CommitRequest {
                scheme,
                session_id: vec![1; 16],
            }))
            .await;
        check(name, a, rule);
    }
    // Pre-generated commitments: the batch is bounded, every id is 16 bytes, none repeats,
    // and a bad batch leaves nothing outstanding.
    for (name, ids, rule) in [
        ("presign, empty batch", vec![], "bad-request"),
        (
            "presign, 257 session ids",
            vec![vec![2u8; 16]; 257],
            "bad-request",
        ),
        (
            "presign, a 15-byte session id",
            vec![vec![3u8; 16], vec![3u8; 15]],
            "bad-request",
        ),
        (
            "presign, one session id twice",
            vec![vec![4u8; 16], vec![4u8; 16]],
            "nonce-unknown",
        ),
    ] {
        let a = d
            .call(Req::Presign(spb::PresignRequest {
                scheme: Default::default(),
                session_ids: ids,
            }))
            .await;
        check(name, a, rule);
    }
    // The rejected batches left no nonce behind: their sessions cannot be signed in.
    let a = d
        .call(Req::Presign(spb::PresignRequest {
            scheme: Default::default(),
            session_ids: vec![vec![3u8; 16], vec![4u8; 16]],
        }))
        .await;
    match a {
        Ans::Presign(p) => assert_eq!(p.commitments.len(), 2, "{p:?}"),
        other => panic!("a good batch after bad ones was refused: {other:?}"),
    }
    let (i, bsig) = signed_intent(
        &c.backend_key(),
        "wd-bad-link",
        ("ethereum", "ETH", TO),
        "1000",
    );
    let sign = |sid: Vec<u8>, intent: Vec<u8>, package: Vec<u8>, approvals| {
        Req::Sign(spb::SignRequest {
            key_epoch: 0,
            scheme: Default::default(),
            session_id: sid,
            intent,
            backend_signature: bsig.clone(),
            signing_package: package,
            approvals,
            vault_action: None,
            solana_void: None,
        })
    };
    // Each sign request spends the session's nonce first, so each gets a fresh commitment.
    async fn fresh(d: &mut crate::hostile::Driven) -> Vec<u8> {
        let s = session();
        d.commit(s).await;
        s.to_vec()
    }
    let s = fresh(d).await;
    let a = d.call(sign(s, vec![7; 40], vec![1; 10], vec![])).await;
    check("sign, intent garbage", a, "intent-malformed");
    let s = fresh(d).await;
    let a = d.call(sign(s, i.encode(), vec![1; 10], vec![])).await;
    check("sign, signing package garbage", a, "package-malformed");
    let s = fresh(d).await;
    let bad_approval = vec![ppb::AdminSignature {
        admin: vec![1; 5],
        signature: vec![],
    }];
    let a = d.call(sign(s, i.encode(), vec![1; 10], bad_approval)).await;
    check("sign, approval with a 5-byte admin key", a, "bad-request");
    let a = d.call(sign(vec![1; 3], i.encode(), vec![], vec![])).await;
    check("sign, session id of 3 bytes", a, "bad-request");
    let a = d
        .call(Req::PolicyUpdate(ppb::SignedPolicy::default()))
        .await;
    check("policy update, empty", a, "policy-update-invalid");
    let a = d
        .call(Req::PolicyVeto(spb::PolicyVeto {
            policy_hash: vec![1; 31],
            veto: None,
        }))
        .await;
    check("policy veto, 31-byte hash", a, "policy-veto-invalid");
    let a = d
        .call(Req::PolicyVeto(spb::PolicyVeto {
            policy_hash: vec![1; 32],
            veto: None,
        }))
        .await;
    check("policy veto, no signature", a, "policy-veto-invalid");
    let a = d
        .call(Req::LedgerNotice(spb::LedgerNotice {
            intent: vec![0; 100],
            signature: vec![1; 65],
            signed_at_ms: 0,
        }))
        .await;
    check("ledger notice, intent garbage", a, "intent-malformed");
    let a = d
        .call(Req::LedgerNotice(spb::LedgerNotice {
            intent: i.encode(),
            signature: vec![],
            signed_at_ms: 0,
        }))
        .await;
    check("ledger notice, empty signature", a, "ledger-notice-invalid");
    let notice = |intent: Vec<u8>, signature: Vec<u8>| spb::LedgerNotice {
        intent,
        signature,
        signed_at_ms: 0,
    };
    let a = d
        .call(Req::LedgerNotices(spb::LedgerNotices { notices: vec![] }))
        .await;
    check("ledger notices, none", a, "bad-request");
    let too_many = vec![notice(i.encode(), vec![]); quorate_core::link::MAX_NOTICES + 1];
    let a = d
        .call(Req::LedgerNotices(spb::LedgerNotices { notices: too_many }))
        .await;
    check("ledger notices, 257", a, "bad-request");
    // A batch of bad notices: each refused under its own rule, as it would be alone.
    let a = d
        .call(Req::LedgerNotices(spb::LedgerNotices {
            notices: vec![
                notice(vec![0; 100], vec![1; 65]),
                notice(i.encode(), vec![]),
                notice(i.encode(), vec![7; 65]),
            ],
        }))
        .await;
    let Ans::LedgerAcks(acks) = &a else {
        panic!("ledger notices, all bad: {a:?}");
    };
    let expected = [
        ("intent garbage", "intent-malformed"),
        ("empty signature", "ledger-notice-invalid"),
        ("signature garbage", "ledger-notice-invalid"),
    ];
    assert_eq!(acks.results.len(), expected.len(), "{acks:?}");
    for (r, (what, rule)) in acks.results.iter().zip(expected) {
        let Some(spb::ledger_notice_result::Result::Refusal(r)) = &r.result else {
            panic!("ledger notices, {what}: accepted: {r:?}");
        };
        check(
            &format!("ledger notices, batch of 3, {what}"),
            Ans::Refusal(r.clone()),
            rule,
        );
    }
    let a = d
        .call(Req::DkgRound1(spb::DkgRound1Request {
            refresh: None,
            scheme: Default::default(),
            session_id: vec![1; 3],
            manifest_hash: vec![],
        }))
        .await;
    check("DKG round 1 over an existing share", a, "dkg-key-exists");
    let a = d
        .call(Req::DkgRound2(spb::DkgRound2Request {
            scheme: Default::default(),
            session_id: vec![1; 16],
            packages: vec![],
        }))
        .await;
    check("DKG round 2 out of order", a, "dkg-aborted");
    let a = d
        .call(Req::DkgConfirm(spb::DkgConfirmRequest {
            scheme: Default::default(),
            session_id: vec![],
            results: vec![],
        }))
        .await;
    check("DKG confirmation with nothing", a, "dkg-aborted");
    for (name, challenge) in [("empty", vec![]), ("65 bytes", vec![3; 65])] {
        let a = d
            .call(Req::StatusChallenge(spb::StatusChallenge { challenge }))
            .await;
        check(&format!("status challenge {name}"), a, "bad-request");
    }

    // The signer is healthy, released no share for any of it, and signs a proper request.
    for (name, child) in c.signers.iter_mut() {
        assert!(child.try_wait().unwrap().is_none(), "{name} died");
    }
    let manifest = quorate_wire::manifest::Manifest::load(&c.path("manifest.toml")).unwrap();
    let key = manifest.signer(1).unwrap().identity_key;
    let log = signers.get_mut(&1).unwrap().verified_audit(&key).await;
    assert!(
        !log.iter()
            .any(|r| r.event.kind == quorate_core::audit::kind::SHARE_RELEASED),
        "a share was released"
    );
    let s = session();
    let c1 = signers.get_mut(&1).unwrap().commit(s).await;
    let c2 = signers.get_mut(&2).unwrap().commit(s).await;
    let pkg = frost_secp256k1::SigningPackage::new(
        std::collections::BTreeMap::from([
            (crate::hostile::id(1), c1),
            (crate::hostile::id(2), c2),
        ]),
        &i.digest(),
    );
    let a = signers
        .get_mut(&1)
        .unwrap()
        .sign(s, &i.encode(), &bsig, &pkg)
        .await;
    assert!(matches!(a, Ans::Sign(_)), "{a:?}");
    book.finish();
}
