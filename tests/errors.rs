//! Errors a program can act on: every refusal carries the standard `google.rpc` details in
//! `grpc-status-details-bin`, decoded here with the ecosystem's decoder (tonic-types): an
//! `ErrorInfo` whose reason is the rule tag, and a `RetryInfo` exactly when retrying can help,
//! with the time a velocity window really frees up. The `quorate-rule` trailer stays.

use std::time::Duration;

use quorate_wire::withdrawal as pb;
use tonic_types::StatusExt;

use crate::harness::{now_ms, Cluster};

fn eth(n: u128) -> String {
    (n * 1_000_000_000_000_000_000).to_string()
}

#[track_caller]
fn info(s: &tonic::Status, rule: &str, permanent: bool) -> tonic_types::ErrorInfo {
    let i = s
        .get_details_error_info()
        .unwrap_or_else(|| panic!("no ErrorInfo: {s:?}"));
    assert_eq!(
        (i.reason.as_str(), i.domain.as_str()),
        (rule, "quorate"),
        "{s:?}"
    );
    assert_eq!(
        i.metadata.get("permanent").map(String::as_str),
        Some(if permanent { "true" } else { "false" }),
        "{s:?}"
    );
    assert_eq!(
        s.metadata().get(quorate_wire::RULE_METADATA_KEY).unwrap(),
        rule,
        "the trailer stays"
    );
    assert!(s.message().starts_with(&format!("{rule}: ")), "{s:?}");
    i
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_carry_error_info_and_a_real_retry_delay() {
    let c = Cluster::start(3, 2).await;
    let mut w =
        pb::withdrawal_service_client::WithdrawalServiceClient::new(c.channel("backend").await);
    // 9 of the 10 ETH the development policy allows per 24 h.
    let (_, req) = c.eth_request("wd-e-1", &eth(9), 600_000, None);
    let signed = w.submit(req).await.unwrap().into_inner();
    assert_eq!(signed.status, pb::Status::Signed as i32);

    // 2 ETH more must wait for the window: RESOURCE_EXHAUSTED, and a RetryInfo whose delay is
    // when the 9 ETH leave the 24 h window (within the minute bucket they were counted in).
    let before = now_ms();
    let (_, req) = c.eth_request("wd-e-2", &eth(2), 600_000, None);
    let s = w.submit(req).await.unwrap_err();
    assert_eq!(s.code(), tonic::Code::ResourceExhausted, "{s:?}");
    let i = info(&s, "policy-velocity-asset-amount-24h", false);
    assert_eq!(i.metadata.get("window").map(String::as_str), Some("24h"));
    let at: u64 = i.metadata["retry_at_ms"].parse().unwrap();
    let day = 24 * 3_600_000;
    assert!(
        (before + day - 61_000..=now_ms() + day + 61_000).contains(&at),
        "{at}"
    );
    let delay = s
        .get_details_retry_info()
        .and_then(|r| r.retry_delay)
        .unwrap_or_else(|| panic!("no RetryInfo: {s:?}"));
    assert!(
        (Duration::from_secs(24 * 3600 - 62)..=Duration::from_secs(24 * 3600 + 61))
            .contains(&delay),
        "{delay:?}"
    );
    // The CLI says the same.
    let (code, v) = c.submit_eth("wd-e-3", &eth(2)).await;
    assert_eq!(code, 2, "{v}");
    assert_eq!(v["retryable"], true, "{v}");
    let ms = v["retry_after_ms"].as_u64().unwrap();
    assert!((day - 62_000..=day + 61_000).contains(&ms), "{v}");

    // Permanent refusals: ErrorInfo, and no RetryInfo.
    let (_, req) = c.eth_request("wd-e-4", &eth(11), 600_000, None);
    let s = w.submit(req).await.unwrap_err();
    assert_eq!(s.code(), tonic::Code::PermissionDenied, "{s:?}");
    info(&s, "policy-velocity-asset-amount-24h", true);
    assert!(s.get_details_retry_info().is_none(), "{s:?}");

    let (_, req) = c.eth_request("wd-e-1", &eth(1), 600_000, None);
    let s = w.submit(req).await.unwrap_err();
    assert_eq!(s.code(), tonic::Code::AlreadyExists, "{s:?}");
    info(&s, "withdrawal-id-conflict", true);
    assert!(s.get_details_retry_info().is_none(), "{s:?}");

    let s = w
        .submit(pb::SubmitRequest {
            intent: None,
            backend_signature: vec![],
        })
        .await
        .unwrap_err();
    assert_eq!(s.code(), tonic::Code::InvalidArgument, "{s:?}");
    info(&s, "intent-invalid", true);
    assert!(s.get_details_retry_info().is_none(), "{s:?}");

    // A destination sent in another form than its canonical one (here lower case) is hashed in
    // its canonical form, so a signature over the form as sent fails: the refusal says that.
    // (The backend's signature is over its own hash of the lower-case form: another digest.)
    let (_, mut req) = c.eth_request("wd-e-5", &eth(1), 600_000, None);
    let (_, other) = c.eth_request("wd-e-5", &eth(3), 600_000, None);
    req.backend_signature = other.backend_signature;
    let canonical = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed";
    let wire = req.intent.as_mut().unwrap();
    assert_eq!(wire.destination, canonical);
    wire.destination = canonical.to_lowercase();
    let s = w.submit(req).await.unwrap_err();
    info(&s, "backend-signature-invalid", true);
    assert!(
        s.message().contains(&format!(
            "sent as `{}` and its canonical form is `{canonical}`",
            canonical.to_lowercase()
        )),
        "{s:?}"
    );
}
