//! The example backend clients (`clients/python`, `clients/typescript`) as an exchange would
//! run them: each encodes and signs intents with its own code (docs/intent.md) and talks to a
//! real cluster over mutual TLS. Their dependencies are pinned (`clients/python/requirements.txt`,
//! `clients/typescript/package-lock.json`) and installed on first use, once per lock file.

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    sync::Mutex,
    time::Duration,
};

use serde_json::Value;
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, BufReader},
    process::Command,
};

use crate::harness::{now_ms, quorate, rfc9591_verify, Cluster};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn run_ok(cmd: &mut std::process::Command, what: &str) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: the client tests need Python 3.11+ with venv and pip, and Node.js 20.19+ with npm: {e}"));
    assert!(
        out.status.success(),
        "{what} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The Python client's venv (`target/clients-python-venv`), with exactly the pinned packages.
fn python() -> PathBuf {
    crate::python::venv_python(
        &repo().join("clients/python/requirements.txt"),
        &repo().join("target/clients-python-venv"),
    )
}

static TS_BUILD: Mutex<bool> = Mutex::new(false);

/// `clients/typescript/dist/cli.js`: `npm ci` once per lock file, compiled once per run.
fn typescript() -> PathBuf {
    let mut built = TS_BUILD.lock().unwrap_or_else(|p| p.into_inner());
    let dir = repo().join("clients/typescript");
    crate::install::once(
        &dir.join("package-lock.json"),
        &dir.join("node_modules/.quorate-installed"),
        &dir.join(".npm-ci.lock"),
        || {
            run_ok(
                std::process::Command::new("npm")
                    .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
                    .current_dir(&dir),
                "npm ci in clients/typescript",
            )
        },
    );
    if !*built {
        // The compiler also type-checks the client.
        run_ok(
            std::process::Command::new("node")
                .args(["node_modules/typescript/bin/tsc", "-p", "."])
                .current_dir(&dir),
            "tsc -p clients/typescript",
        );
        *built = true;
    }
    dir.join("dist/cli.js")
}

#[derive(Clone, Copy, Debug)]
enum Lang {
    Python,
    TypeScript,
}

const BOTH: [Lang; 2] = [Lang::Python, Lang::TypeScript];

impl Lang {
    fn command(self, args: &[&str]) -> Command {
        let mut c = match self {
            Lang::Python => {
                let mut c = Command::new(tokio::task::block_in_place(python));
                c.args(["-m", "quorate_client"])
                    .current_dir(repo().join("clients/python"));
                c
            }
            Lang::TypeScript => {
                let mut c = Command::new("node");
                c.arg(tokio::task::block_in_place(typescript));
                c
            }
        };
        c.args(args).kill_on_drop(true).stdin(Stdio::null());
        c
    }

    /// Runs the client; returns its exit code and the one JSON object it prints.
    async fn run(self, args: &[&str]) -> (i32, Value) {
        let out = tokio::time::timeout(Duration::from_secs(120), self.command(args).output())
            .await
            .unwrap_or_else(|_| panic!("{self:?} client {args:?}: no answer in 120 s"))
            .expect("run the client");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let v = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
            panic!(
                "{self:?} client {args:?} printed no JSON ({e}):\n{stdout}{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
        (out.status.code().unwrap_or(-1), v)
    }
}

fn vector_count(dir: &Path) -> usize {
    let v1: Value =
        serde_json::from_str(&crate::harness::read_to_string(&dir.join("intent_v1.json"))).unwrap();
    let v2: Value =
        serde_json::from_str(&crate::harness::read_to_string(&dir.join("intent_v2.json"))).unwrap();
    v1.as_array().unwrap().len() + v2["cases"].as_array().unwrap().len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_pass_every_intent_vector_and_catch_a_wrong_one() {
    let vectors = repo().join("core/tests/vectors");
    let want = vector_count(&vectors);
    assert!(want >= 14, "{want}");
    // A copy with one wrong digest (v1) and one wrong encoding (v2).
    let tmp = tempfile::tempdir().unwrap();
    let mut v1: Value = serde_json::from_str(&crate::harness::read_to_string(
        &vectors.join("intent_v1.json"),
    ))
    .unwrap();
    let mut v2: Value = serde_json::from_str(&crate::harness::read_to_string(
        &vectors.join("intent_v2.json"),
    ))
    .unwrap();
    v1[3]["digest_hex"] = Value::from("00".repeat(32));
    let enc = v2["cases"][1]["encoding"].as_str().unwrap().to_string();
    v2["cases"][1]["encoding"] = Value::from(format!("{}00", &enc[..enc.len() - 2]));
    std::fs::write(tmp.path().join("intent_v1.json"), v1.to_string()).unwrap();
    std::fs::write(tmp.path().join("intent_v2.json"), v2.to_string()).unwrap();
    let tampered = tmp.path().to_str().unwrap();
    for lang in BOTH {
        let (code, r) = lang
            .run(&["vectors", "--dir", vectors.to_str().unwrap()])
            .await;
        assert_eq!(code, 0, "{lang:?}: {r}");
        assert_eq!(r["checked"], want, "{lang:?}: every vector: {r}");
        assert_eq!(r["failures"], Value::Array(vec![]), "{lang:?}");

        let (code, r) = lang.run(&["vectors", "--dir", tampered]).await;
        assert_eq!(code, 1, "{lang:?}: a wrong vector fails the check: {r}");
        let failed: Vec<(&str, &str)> = r["failures"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| {
                (
                    f["vector"].as_str().unwrap(),
                    f["field"].as_str().unwrap_or(""),
                )
            })
            .collect();
        assert_eq!(
            failed,
            [
                ("v1 wd-0004", "digest"),
                (
                    "v2 recent blockhash, create, both compute options",
                    "encoding"
                )
            ],
            "{lang:?}: {r}"
        );
    }
}

/// A cluster directory for the clients whose first coordinator cannot be reached (a port
/// nobody listens on) and whose `other_coordinators` names the real one.
fn failover_dir(c: &Cluster, under: &Path) -> PathBuf {
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .to_string();
    let mut doc: toml::Table =
        toml::from_str(&crate::harness::read_to_string(&c.path("client.toml"))).unwrap();
    let abs =
        |v: &toml::Value| toml::Value::from(c.dir.join(v.as_str().unwrap()).to_str().unwrap());
    let server_name = doc["server_name"].clone();
    doc.insert("coordinator".into(), dead.into());
    let mut other = toml::Table::new();
    other.insert("address".into(), c.addr.clone().into());
    other.insert("server_name".into(), server_name);
    doc.insert(
        "other_coordinators".into(),
        vec![toml::Value::from(other)].into(),
    );
    let ca = abs(&doc["ca"]);
    doc.insert("ca".into(), ca);
    let backend = doc["backend"].as_table_mut().unwrap();
    for k in ["cert", "key", "signing_key"] {
        let p = abs(&backend[k]);
        backend.insert(k.into(), p);
    }
    let dir = under.join("failover");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("client.toml"), toml::to_string(&doc).unwrap()).unwrap();
    dir
}

/// The intent a client reported, rebuilt with the Rust core from the same fields.
fn core_intent(
    r: &Value,
    chain: &str,
    asset: &str,
    to: &str,
    amount: &str,
) -> quorate_core::intent::WithdrawalIntent {
    quorate_core::intent::WithdrawalIntent::from_parts(
        r["id"].as_str().unwrap(),
        chain,
        asset,
        to,
        amount,
        r["created_at_ms"].as_u64().unwrap(),
        r["expires_at_ms"].as_u64().unwrap(),
        None,
    )
    .unwrap()
}

/// A permanent refusal, reported with its gRPC code and rule, exit code 2.
#[track_caller]
fn assert_refused(lang: Lang, code: i32, r: &Value, grpc: &str, rule: &str) {
    assert_eq!(code, 2, "{lang:?}: {r}");
    assert_eq!(
        (
            r["outcome"].as_str(),
            r["code"].as_str(),
            r["rule"].as_str(),
            r["class"].as_str()
        ),
        (Some("refused"), Some(grpc), Some(rule), Some("permanent")),
        "{lang:?}: {r}"
    );
}

fn assert_signed(lang: Lang, r: &Value) {
    assert_eq!(r["outcome"], "signed", "{lang:?}: {r}");
    let key = hex::decode(r["group_public_key"].as_str().unwrap()).unwrap();
    let msg = hex::decode(r["message"].as_str().unwrap()).unwrap();
    let sig = hex::decode(r["signature"].as_str().unwrap()).unwrap();
    assert!(
        rfc9591_verify(&key, &msg, &sig),
        "{lang:?}: the group signature verifies: {r}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_sign_fail_over_retry_and_report_each_refusal_rule() {
    let c = Cluster::start(3, 2).await;
    let failover = failover_dir(&c, c.tmp.path());
    let failover = failover.to_str().unwrap();
    // The whitelisted address typed in lower case: the clients must sign its EIP-55 form.
    let lower = "0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed";
    let canonical = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed";
    let created = now_ms().to_string();
    let submit = |lang: Lang,
                  id: &'static str,
                  to: &'static str,
                  amount: &'static str,
                  extra: Vec<String>| {
        let created = created.clone();
        async move {
            let mut args = vec![
                "submit",
                "--dir",
                failover,
                "--id",
                id,
                "--chain",
                "ethereum",
                "--asset",
                "ETH",
                "--to",
                to,
                "--amount",
                amount,
                "--created-at-ms",
                &created,
            ];
            args.extend(extra.iter().map(String::as_str));
            lang.run(&args).await
        }
    };

    // Signed, after failing over from the unreachable coordinator.
    let (py, ts) = tokio::join!(
        submit(Lang::Python, "py-1", lower, "1000", vec![]),
        submit(Lang::TypeScript, "ts-1", lower, "1000", vec![])
    );
    for (lang, (code, r)) in [(Lang::Python, &py), (Lang::TypeScript, &ts)] {
        assert_eq!(*code, 0, "{lang:?}: {r}");
        assert_signed(lang, r);
        let attempts = r["attempts"].as_array().unwrap();
        assert_eq!(attempts.len(), 2, "{lang:?}: {r}");
        assert_eq!(
            attempts[0]["code"], "UNAVAILABLE",
            "{lang:?}: the dead coordinator first: {r}"
        );
        assert_eq!(
            (
                attempts[1]["endpoint"].as_str(),
                attempts[1]["code"].as_str()
            ),
            (Some(c.addr.as_str()), Some("OK")),
            "{lang:?}"
        );
        // The bytes the client signed are the Rust core's, and the group signed their digest.
        let i = core_intent(r, "ethereum", "ETH", canonical, "1000");
        assert_eq!(r["encoding"], hex::encode(i.encode()), "{lang:?}");
        assert_eq!(r["digest"], i.digest_hex(), "{lang:?}");
        assert_eq!(
            r["message"],
            i.digest_hex(),
            "{lang:?}: no vault: the group signs the digest"
        );
    }

    // The same id with the byte-identical intent (timestamps included): the same withdrawal.
    for (lang, id, first) in [
        (Lang::Python, "py-1", &py.1),
        (Lang::TypeScript, "ts-1", &ts.1),
    ] {
        let (code, again) = submit(lang, id, lower, "1000", vec![]).await;
        assert_eq!(code, 0, "{lang:?}: {again}");
        for k in ["digest", "signature", "group_public_key", "message"] {
            assert_eq!(again[k], first[k], "{lang:?}: {k}");
        }
    }

    // The same id with another intent: permanent, ALREADY_EXISTS, withdrawal-id-conflict.
    // A destination off the whitelist: permanent, PERMISSION_DENIED, its policy rule.
    let not_listed = "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359";
    for (lang, id) in [(Lang::Python, "py-1"), (Lang::TypeScript, "ts-1")] {
        let (code, r) = submit(lang, id, lower, "2000", vec![]).await;
        assert_refused(lang, code, &r, "ALREADY_EXISTS", "withdrawal-id-conflict");
        let (code, r) = submit(
            lang,
            if id == "py-1" { "py-2" } else { "ts-2" },
            not_listed,
            "1000",
            vec![],
        )
        .await;
        assert_refused(
            lang,
            code,
            &r,
            "PERMISSION_DENIED",
            "policy-whitelist-destination",
        );
        // Refused without a retry: one attempt after the dead coordinator.
        assert_eq!(r["attempts"].as_array().unwrap().len(), 2, "{lang:?}: {r}");
    }

    // A velocity window (10 ETH per 24 h) that is full: RESOURCE_EXHAUSTED with the server's
    // google.rpc details, decoded by each client: ErrorInfo naming the rule, and RetryInfo
    // with the real wait (about 24 h, when the 6 ETH leave the window). That is past the
    // client's patience and the intent's expiry, so it reports retry-later at once instead of
    // resending to no purpose.
    let (code, v) = c.submit_eth("fill", "6000000000000000000").await;
    assert_eq!(code, 0, "{v}");
    for (lang, id) in [(Lang::Python, "py-3"), (Lang::TypeScript, "ts-3")] {
        let extra = vec!["--give-up-after-s".to_string(), "1.5".to_string()];
        let (code, r) = submit(lang, id, canonical, "5000000000000000000", extra).await;
        assert_eq!(code, 3, "{lang:?}: not final: {r}");
        assert_eq!(
            (
                r["outcome"].as_str(),
                r["code"].as_str(),
                r["class"].as_str()
            ),
            (
                Some("retry-later"),
                Some("RESOURCE_EXHAUSTED"),
                Some("wait")
            ),
            "{lang:?}: {r}"
        );
        assert!(
            r["rule"].as_str().unwrap().starts_with("policy-velocity-"),
            "{lang:?}: {r}"
        );
        assert_eq!(r["error_info"]["reason"], r["rule"], "{lang:?}: {r}");
        assert_eq!(r["error_info"]["domain"], "quorate", "{lang:?}: {r}");
        assert_eq!(
            r["error_info"]["metadata"]["window"], "24h",
            "{lang:?}: {r}"
        );
        let day = 24 * 3_600_000u64;
        let delay = r["retry_delay_ms"]
            .as_u64()
            .unwrap_or_else(|| panic!("{lang:?}: {r}"));
        assert!(
            (day - 120_000..=day + 61_000).contains(&delay),
            "{lang:?}: {delay} ms: {r}"
        );
        let tried: Vec<&str> = r["attempts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["code"].as_str().unwrap())
            .collect();
        assert_eq!(
            tried.iter().filter(|c| **c == "RESOURCE_EXHAUSTED").count(),
            1,
            "{lang:?}: a wait past the intent's expiry is not waited for: {r}"
        );
    }
}

/// Reads the client's stderr until it has reported `n` Watch subscriptions for a non-final
/// withdrawal.
async fn await_watching(
    lines: &mut tokio::io::Lines<BufReader<tokio::process::ChildStderr>>,
    n: usize,
) {
    let mut seen = 0;
    tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(l) = lines.next_line().await.unwrap() {
            if l.contains("\"event\"") && l.contains("watching") {
                seen += 1;
                if seen == n {
                    return;
                }
            }
        }
        panic!("the client ended before watching {n} times");
    })
    .await
    .expect("the client watches");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_follow_a_withdrawal_over_watch_with_resumption_until_admins_approve() {
    let c = Cluster::start(3, 2).await;
    // Above 1 BTC the devnet policy waits for two admins' approvals.
    let cases = [
        (
            Lang::Python,
            "py-big",
            "bitcoin",
            "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4",
        ),
        (
            Lang::TypeScript,
            "ts-big",
            "bitcoin-testnet",
            "tb1qw508d6qejxtdg4y5r3zarvary0c5xw7kxpjzsx",
        ),
    ];
    for (lang, id, chain, to) in cases {
        let mut child = lang
            .command(&[
                "submit",
                "--dir",
                c.dir_str(),
                "--coordinator",
                &c.addr,
                "--id",
                id,
                "--chain",
                chain,
                "--asset",
                "BTC",
                "--to",
                to,
                "--amount",
                "150000000",
                // Long enough that both approvals and the signing run land inside the stream
                // opened just before them (a final state that landed between two streams would
                // be read by the `Get` of the resubscription instead).
                "--watch-stream-s",
                "10",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the client");
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        // Watching, and once more after its stream's deadline passed (a resumption): the
        // second report comes just after the new stream is subscribed.
        await_watching(&mut lines, 2).await;
        for admin in [1, 2] {
            let key = c.path(&format!("admin/admin-{admin}.key"));
            let (code, out, err) = quorate(&[
                "admin",
                "--dir",
                c.dir_str(),
                "--coordinator",
                &c.addr,
                "--json",
                "--key",
                key.to_str().unwrap(),
                "--yes",
                "approve-withdrawal",
                id,
            ])
            .await;
            assert_eq!(code, 0, "approval {admin} of {id}: {out}{err}");
        }
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let mut stdout = String::new();
        let mut out = child.stdout.take().unwrap();
        let status = tokio::time::timeout(Duration::from_secs(60), async {
            out.read_to_string(&mut stdout).await.unwrap();
            child.wait().await
        })
        .await
        .unwrap_or_else(|_| panic!("{lang:?}: the client did not end within 60 s"))
        .unwrap();
        let r: Value = serde_json::from_str(stdout.trim())
            .unwrap_or_else(|e| panic!("{lang:?}: {e}: {stdout}"));
        assert_eq!(status.code(), Some(0), "{lang:?}: {r}");
        assert_signed(lang, &r);
        assert_eq!(
            r["via"], "watch",
            "{lang:?}: the outcome came over Watch: {r}"
        );
        assert!(
            r["watch_resumptions"].as_u64().unwrap_or(0) >= 1,
            "{lang:?}: {r}"
        );
        assert_eq!(
            r["attempts"].as_array().unwrap().len(),
            1,
            "{lang:?}: one Submit: {r}"
        );
        let i = core_intent(&r, chain, "BTC", to, "150000000");
        assert_eq!(r["message"], i.digest_hex(), "{lang:?}");
    }
}

/// `google.rpc.Status` and the details the clients read, as the standard protos define them
/// (field numbers from googleapis `google/rpc/status.proto` and `error_details.proto`).
mod rpc {
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Status {
        #[prost(int32, tag = "1")]
        pub code: i32,
        #[prost(string, tag = "2")]
        pub message: String,
        #[prost(message, repeated, tag = "3")]
        pub details: Vec<Any>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Any {
        #[prost(string, tag = "1")]
        pub type_url: String,
        #[prost(bytes = "vec", tag = "2")]
        pub value: Vec<u8>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ErrorInfo {
        #[prost(string, tag = "1")]
        pub reason: String,
        #[prost(string, tag = "2")]
        pub domain: String,
        #[prost(btree_map = "string, string", tag = "3")]
        pub metadata: std::collections::BTreeMap<String, String>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct RetryInfo {
        #[prost(message, optional, tag = "1")]
        pub retry_delay: Option<Duration>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Duration {
        #[prost(int64, tag = "1")]
        pub seconds: i64,
        #[prost(int32, tag = "2")]
        pub nanos: i32,
    }
}

/// The clients' decoding of `grpc-status-details-bin` on exact bytes, edge cases included (the
/// server's own details are decoded in the signing test above): the rule from
/// `ErrorInfo.reason`, the delay from `RetryInfo`, and nothing from details that contradict
/// the call's code.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_decode_standard_status_details() {
    use prost::Message;
    let message = "policy-velocity-asset-amount-24h: the window is full";
    let any = |name: &str, value: Vec<u8>| rpc::Any {
        type_url: format!("type.googleapis.com/google.rpc.{name}"),
        value,
    };
    let details = |code: i32| {
        rpc::Status {
            code,
            message: message.into(),
            details: vec![
                any(
                    "ErrorInfo",
                    rpc::ErrorInfo {
                        reason: "policy-velocity-asset-amount-24h".into(),
                        domain: "quorate".into(),
                        metadata: [("window".to_string(), "24h".to_string())].into(),
                    }
                    .encode_to_vec(),
                ),
                any(
                    "RetryInfo",
                    rpc::RetryInfo {
                        retry_delay: Some(rpc::Duration {
                            seconds: 90,
                            nanos: 250_000_000,
                        }),
                    }
                    .encode_to_vec(),
                ),
            ],
        }
        .encode_to_vec()
    };
    for lang in BOTH {
        // RESOURCE_EXHAUSTED is code 8.
        let hex_details = hex::encode(details(8));
        let (code, r) = lang
            .run(&[
                "decode-status",
                "--code",
                "RESOURCE_EXHAUSTED",
                "--message",
                message,
                "--details-hex",
                &hex_details,
            ])
            .await;
        assert_eq!(code, 0, "{lang:?}: {r}");
        assert_eq!(
            r["rule"], "policy-velocity-asset-amount-24h",
            "{lang:?}: {r}"
        );
        assert_eq!(r["error_info"]["domain"], "quorate", "{lang:?}: {r}");
        assert_eq!(
            r["error_info"]["metadata"]["window"], "24h",
            "{lang:?}: {r}"
        );
        assert_eq!(r["retry_delay_ms"], 90_250, "{lang:?}: {r}");
        assert_eq!(r["class"], "wait", "{lang:?}: {r}");
        // Details claiming another code than the call's are not this call's: ignored.
        let (_, r) = lang
            .run(&[
                "decode-status",
                "--code",
                "UNAVAILABLE",
                "--message",
                message,
                "--details-hex",
                &hex_details,
            ])
            .await;
        assert_eq!(
            (r["error_info"].is_null(), r["retry_delay_ms"].is_null()),
            (true, true),
            "{lang:?}: {r}"
        );
        assert_eq!(
            (r["rule"].as_str(), r["class"].as_str()),
            (Some("policy-velocity-asset-amount-24h"), Some("resend")),
            "{lang:?}: from the message: {r}"
        );
    }
}
