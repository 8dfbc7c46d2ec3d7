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

mod admin;
mod signer_link;
