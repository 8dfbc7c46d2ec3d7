//! A cluster of real processes for tests.

#![allow(dead_code)]

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};

use quorate_wire::{admin, tls::TlsMaterial};
use serde_json::Value;
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::{Child, Command},
};

/// The `quorate` binary under test.
pub fn exe() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_quorate"))
}

/// Runs `quorate ARGS` to completion; returns (exit code, stdout, stderr).
pub async fn quorate(args: &[&str]) -> (i32, String, String) {
    quorate_in(None, args).await
}

/// Runs `quorate ARGS` to completion in `dir` (the test's own directory if `None`).
pub async fn quorate_in(dir: Option<&Path>, args: &[&str]) -> (i32, String, String) {
    let mut cmd = Command::new(exe());
    if let Some(d) = dir {
        cmd.current_dir(d);
    }
    let out = cmd
        .args(args)
        .stdin(Stdio::null())
        .output()
        .await
        .expect("run quorate");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A running `quorate devnet`. Dropped, it is asked to stop (SIGTERM), so it stops the
/// coordinator and signers it started (up to 10 s each, one after another); killed outright
/// only if it has not stopped in 60 s. (A SIGKILL alone would leave its processes running
/// after the test.)
pub struct Devnet(Child);

impl std::ops::Deref for Devnet {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for Devnet {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for Devnet {
    fn drop(&mut self) {
        let Some(pid) = self.0.id() else { return };
        if matches!(self.0.try_wait(), Ok(Some(_))) {
            return;
        }
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status();
        for _ in 0..1_200 {
            if matches!(self.0.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Starts `quorate devnet ARGS` in `cwd` and waits until it says it is ready; returns the
/// process (stopped on drop, with its nodes) and everything it printed until then.
pub async fn start_devnet(args: &[&str], cwd: &Path) -> (Devnet, String) {
    let mut devnet = Command::new(exe())
        .arg("devnet")
        .args(args)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(devnet.stdout.take().unwrap()).lines();
    let mut banner = String::new();
    tokio::time::timeout(Duration::from_secs(180), async {
        while let Some(l) = lines.next_line().await.unwrap() {
            banner.push_str(&l);
            banner.push('\n');
            if l.starts_with("devnet ready") {
                return;
            }
        }
        panic!("devnet exited early:\n{banner}");
    })
    .await
    .expect("devnet ready");
    // Keep reading what it prints, so it never writes into a closed pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (Devnet(devnet), banner)
}

/// A cluster directory with its running processes. Everything is killed on drop.
pub struct Cluster {
    pub tmp: tempfile::TempDir,
    pub dir: PathBuf,
    pub addr: String,
    /// The coordinator's metrics endpoint, once started.
    pub metrics: Option<String>,
    pub coordinator: Option<Child>,
    pub signers: BTreeMap<String, Child>,
    pub names: Vec<String>,
}

impl Cluster {
    /// Creates the cluster's files (`quorate certs`); starts nothing.
    pub async fn create(n: u16, t: u16) -> Self {
        Self::create_with_policy(n, t, None).await
    }

    /// Like [`Cluster::create`], with a genesis policy in TOML form.
    pub async fn create_with_policy(n: u16, t: u16, policy: Option<&str>) -> Self {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("cluster");
        let policy_file = tmp.path().join("genesis.toml");
        let mut args = vec![
            "certs".to_string(),
            "--dir".into(),
            dir.to_str().unwrap().into(),
            "--signers".into(),
            n.to_string(),
            "--threshold".into(),
            t.to_string(),
            "--coordinator-addr".into(),
            "127.0.0.1:0".into(),
        ];
        if let Some(p) = policy {
            std::fs::write(&policy_file, p).unwrap();
            args.push("--policy".into());
            args.push(policy_file.to_str().unwrap().into());
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (code, out, err) = quorate(&args).await;
        assert_eq!(code, 0, "quorate certs failed: {out}{err}");
        Self {
            tmp,
            dir,
            addr: String::new(),
            metrics: None,
            coordinator: None,
            signers: BTreeMap::new(),
            names: (1..=n).map(|i| format!("signer-{i}")).collect(),
        }
    }

    /// Creates and starts a coordinator and all signers, and runs DKG.
    pub async fn start(n: u16, t: u16) -> Self {
        Self::start_with_policy(n, t, None).await
    }

    /// Like [`Cluster::start`], with a genesis policy in TOML form.
    pub async fn start_with_policy(n: u16, t: u16, policy: Option<&str>) -> Self {
        let mut c = Self::create_with_policy(n, t, policy).await;
        c.start_all().await;
        c.dkg().await;
        c
    }

    /// Starts the coordinator (on a fresh port) and every signer, and waits until all are
    /// linked.
    pub async fn start_all(&mut self) {
        self.start_coordinator(None).await;
        for name in self.names.clone() {
            self.start_signer(&name);
        }
        self.wait_connected(self.names.len()).await;
    }

    pub fn dir_str(&self) -> &str {
        self.dir.to_str().unwrap()
    }

    fn log(&self, name: &str) -> std::fs::File {
        std::fs::create_dir_all(self.dir.join("logs")).unwrap();
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("logs").join(format!("{name}.log")))
            .unwrap()
    }

    /// Starts the coordinator on `listen` (a fresh port if `None`) and records its address.
    pub async fn start_coordinator(&mut self, listen: Option<&str>) {
        let mut child = Command::new(exe())
            .args(["coordinator", "run", "--config"])
            .arg(self.dir.join("coordinator/coordinator.toml"))
            .args(["--listen", listen.unwrap_or("127.0.0.1:0")])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(self.log("coordinator"))
            .kill_on_drop(true)
            .spawn()
            .expect("spawn coordinator");
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let mut metrics = None;
        let addr = tokio::time::timeout(Duration::from_secs(60), async {
            while let Some(l) = lines.next_line().await.unwrap() {
                if let Some(a) = l.strip_prefix("metrics on ") {
                    metrics = Some(a.trim().to_string());
                }
                if let Some(a) = l.strip_prefix("listening on ") {
                    return a.trim().to_string();
                }
            }
            panic!("coordinator exited: {}", self.read_log("coordinator"));
        })
        .await
        .expect("coordinator start");
        self.addr = addr;
        self.metrics = metrics;
        self.coordinator = Some(child);
    }

    pub fn read_log(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.join("logs").join(format!("{name}.log")))
            .unwrap_or_default()
    }

    /// Kills the coordinator (SIGKILL) and waits for it to be gone.
    pub async fn kill_coordinator(&mut self) {
        if let Some(mut c) = self.coordinator.take() {
            c.kill().await.unwrap();
        }
    }

    /// Asks the coordinator to stop (SIGTERM) and returns its exit status.
    pub async fn stop_coordinator(&mut self) -> std::process::ExitStatus {
        let mut c = self.coordinator.take().expect("coordinator running");
        let pid = c.id().expect("pid").to_string();
        let ok = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap();
        assert!(ok.success());
        tokio::time::timeout(std::time::Duration::from_secs(120), c.wait())
            .await
            .expect("the coordinator stops after SIGTERM")
            .unwrap()
    }

    /// Starts (or restarts) a signer process dialling the current coordinator address.
    pub fn start_signer(&mut self, name: &str) {
        let child = Command::new(exe())
            .args(["signer", "run", "--config"])
            .arg(self.dir.join(name).join("signer.toml"))
            .args(["--coordinator", &self.addr])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(self.log(name))
            .kill_on_drop(true)
            .spawn()
            .expect("spawn signer");
        self.signers.insert(name.to_string(), child);
    }

    /// Kills a signer (SIGKILL).
    pub async fn kill_signer(&mut self, name: &str) {
        let mut c = self.signers.remove(name).expect("signer running");
        c.kill().await.unwrap();
    }

    /// An admin channel's status call.
    pub async fn status(&self) -> admin::ClusterStatus {
        let mut a =
            admin::admin_service_client::AdminServiceClient::new(self.channel("admin").await);
        a.get_cluster_status(admin::GetClusterStatusRequest {})
            .await
            .expect("status")
            .into_inner()
    }

    /// Waits until exactly `count` signers are connected (60 s cap; a slow machine passes).
    pub async fn wait_connected(&self, count: usize) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let s = self.status().await;
            let n = s.signers.iter().filter(|x| x.connected).count();
            if n == count {
                return;
            }
            if tokio::time::Instant::now() >= deadline {
                // What each process said last: the reason a signer is missing is there.
                let mut tails = String::new();
                for name in self.names.iter().map(String::as_str).chain(["coordinator"]) {
                    let log = self.read_log(name);
                    let lines: Vec<&str> = log.lines().collect();
                    let tail = lines[lines.len().saturating_sub(15)..].join("\n");
                    tails.push_str(&format!("\n--- {name} (last lines) ---\n{tail}"));
                }
                panic!("expected {count} connected signers, have {n}{tails}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Runs DKG through the CLI and returns the group key.
    pub async fn dkg(&self) -> Vec<u8> {
        let (code, out, err) =
            quorate(&["dkg", "--dir", self.dir_str(), "--coordinator", &self.addr]).await;
        assert_eq!(code, 0, "dkg failed: {out}{err}");
        let s = self.status().await;
        assert_eq!(s.group_public_key.len(), 33);
        s.group_public_key
    }

    /// Runs the Ed25519 group's DKG through the CLI and returns its key (the Solana wallet).
    pub async fn dkg_ed25519(&self) -> Vec<u8> {
        let (code, out, err) = quorate(&[
            "dkg",
            "--scheme",
            "ed25519",
            "--dir",
            self.dir_str(),
            "--coordinator",
            &self.addr,
        ])
        .await;
        assert_eq!(code, 0, "ed25519 dkg failed: {out}{err}");
        let s = self.status().await;
        let key = s
            .group_keys
            .iter()
            .find(|k| k.scheme == "ed25519")
            .map(|k| k.public_key.clone())
            .expect("the ed25519 group key in the status");
        assert_eq!(key.len(), 32);
        key
    }

    /// A mutual-TLS channel to the coordinator with the credentials in `dir/<who>/`.
    pub async fn channel(&self, who: &str) -> tonic::transport::Channel {
        let tls = TlsMaterial::load(
            &self.dir.join("ca/ca.pem"),
            &self.dir.join(who).join("cert.pem"),
            &self.dir.join(who).join("key.pem"),
        )
        .unwrap();
        quorate_wire::tls::connect(&self.addr, "localhost", tls.client_config().unwrap())
            .await
            .expect("connect")
    }

    /// `quorate submit --json` with extra flags; returns (exit code, JSON).
    pub async fn submit(&self, extra: &[&str]) -> (i32, Value) {
        let mut args = vec![
            "submit",
            "--dir",
            self.dir_str(),
            "--coordinator",
            &self.addr,
            "--json",
        ];
        args.extend_from_slice(extra);
        let (code, out, err) = quorate(&args).await;
        let v: Value = serde_json::from_str(out.trim())
            .unwrap_or_else(|e| panic!("submit printed no JSON ({e}): {out}{err}"));
        (code, v)
    }

    /// Submits a 1 ETH withdrawal to the sample address with `id`.
    pub async fn submit_eth(&self, id: &str, amount: &str) -> (i32, Value) {
        self.submit(&[
            "--id",
            id,
            "--chain",
            "ethereum",
            "--asset",
            "ETH",
            "--to",
            "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
            "--amount",
            amount,
        ])
        .await
    }

    /// Submits `amount` lamports of SOL to the whitelisted devnet wallet (a fresh id).
    pub async fn submit_sol(&self, amount: &str) -> (i32, Value) {
        self.submit(&[
            "--chain",
            "solana",
            "--asset",
            "SOL",
            "--to",
            "GmaDrppBC7P5ARKV8g3djiwP89vz1jLK23V2GBjuAEGB",
            "--amount",
            amount,
        ])
        .await
    }

    /// Submits `amount` satoshi of BTC to the sample bitcoin address with `id` (above 1 BTC
    /// it waits for two admins' approvals on the devnet policy).
    pub async fn submit_btc(&self, id: &str, amount: &str) -> (i32, Value) {
        self.submit(&[
            "--id",
            id,
            "--chain",
            "bitcoin",
            "--asset",
            "BTC",
            "--to",
            "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4",
            "--amount",
            amount,
        ])
        .await
    }

    /// Asserts the coordinator process is alive and its health service reports the process
    /// serving (the empty service name; the withdrawal service's own status follows whether a
    /// quorum of signers is connected: tests/operator.rs).
    pub async fn assert_serving(&mut self) {
        assert!(
            self.coordinator
                .as_mut()
                .expect("coordinator started")
                .try_wait()
                .unwrap()
                .is_none(),
            "the coordinator died"
        );
        let mut h =
            tonic_health::pb::health_client::HealthClient::new(self.channel("backend").await);
        let s = h
            .check(tonic_health::pb::HealthCheckRequest {
                service: String::new(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            s.status,
            tonic_health::pb::health_check_response::ServingStatus::Serving as i32
        );
    }

    /// The coordinator's audit log through the admin service, chain verified.
    pub async fn coordinator_audit(&self) -> Vec<quorate_core::audit::Record> {
        self.audit_of("coordinator", None).await
    }

    /// A node's audit log through the admin service, verified: the chain, and for a signer
    /// its head signed by `key` over this export's nonce.
    pub async fn audit_of(
        &self,
        node: &str,
        key: Option<&quorate_core::identity::IdentityPublic>,
    ) -> Vec<quorate_core::audit::Record> {
        use quorate_wire::convert::audit as conv;
        let mut a =
            admin::admin_service_client::AdminServiceClient::new(self.channel("admin").await);
        let nonce = b"harness-audit-nonce".to_vec();
        let mut text = String::new();
        let mut from = 1;
        loop {
            let page = a
                .export_audit(quorate_wire::audit::AuditExportRequest {
                    node: node.into(),
                    from_seq: from,
                    limit: 0,
                    nonce: nonce.clone(),
                })
                .await
                .expect("audit export")
                .into_inner();
            let head = conv::head_from_proto(page.head.as_ref().expect("head")).unwrap();
            for r in &page.records {
                let r = conv::record_from_proto(r).unwrap();
                text.push_str(&r.to_json());
                text.push('\n');
                from = r.seq + 1;
            }
            if page.records.is_empty() || from > head.seq {
                text.push_str(&head.to_json());
                text.push('\n');
                return quorate_core::audit::verify_export(&text, key)
                    .unwrap_or_else(|e| panic!("{node}'s audit log does not verify: {e}"))
                    .records;
            }
        }
    }

    /// The policy in force in its editable TOML form (`quorate admin show --toml`).
    pub async fn policy_toml(&self) -> String {
        let (code, toml, err) = quorate(&[
            "admin",
            "--dir",
            self.dir_str(),
            "--coordinator",
            &self.addr,
            "show",
            "--toml",
        ])
        .await;
        assert_eq!(code, 0, "admin show --toml: {err}");
        toml
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.join(rel)
    }
}

/// Independent RFC 9591 FROST(secp256k1, SHA-256) verification written from the RFC with k256
/// primitives only (no frost code): z·G == R + c·PK with c = H2(R ‖ PK ‖ msg), where H2 is
/// hash_to_field with expand_message_xmd(SHA-256) and DST "FROST-secp256k1-SHA256-v1chal".
pub fn rfc9591_verify(group_key: &[u8], msg: &[u8], sig: &[u8]) -> bool {
    use k256::{
        elliptic_curve::{
            group::GroupEncoding,
            hash2curve::{hash_to_field, ExpandMsgXmd},
            sec1::FromEncodedPoint,
            PrimeField,
        },
        AffinePoint, EncodedPoint, ProjectivePoint, Scalar,
    };
    fn point(b: &[u8]) -> Option<ProjectivePoint> {
        let ep = EncodedPoint::from_bytes(b).ok()?;
        Option::<AffinePoint>::from(AffinePoint::from_encoded_point(&ep)).map(Into::into)
    }
    if group_key.len() != 33 || sig.len() != 65 {
        return false;
    }
    let (Some(pk), Some(r)) = (point(group_key), point(&sig[..33])) else {
        return false;
    };
    let mut zb = k256::FieldBytes::default();
    zb.copy_from_slice(&sig[33..]);
    let Some(z) = Option::<Scalar>::from(Scalar::from_repr(zb)) else {
        return false;
    };
    let mut input = Vec::new();
    input.extend_from_slice(&r.to_affine().to_bytes());
    input.extend_from_slice(&pk.to_affine().to_bytes());
    input.extend_from_slice(msg);
    let mut c = [Scalar::ZERO];
    hash_to_field::<ExpandMsgXmd<sha2::Sha256>, Scalar>(
        &[&input],
        &[b"FROST-secp256k1-SHA256-v1chal"],
        &mut c,
    )
    .unwrap();
    ProjectivePoint::GENERATOR * z == r + pk * c[0]
}

/// Hex field of a JSON object.
pub fn hexf(v: &Value, k: &str) -> Vec<u8> {
    hex::decode(v[k].as_str().unwrap_or_else(|| panic!("no {k} in {v}"))).unwrap()
}

pub fn read_to_string(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap()
}

/// Unix milliseconds now.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// An intent created now that expires in ten minutes, and the backend's signature over it.
pub fn signed_intent(
    key: &k256::ecdsa::SigningKey,
    id: &str,
    (chain, asset, to): (&str, &str, &str),
    amount: &str,
) -> (quorate_core::intent::WithdrawalIntent, Vec<u8>) {
    let now = now_ms();
    let i = quorate_core::intent::WithdrawalIntent::from_parts(
        id,
        chain,
        asset,
        to,
        amount,
        now,
        now + 600_000,
        None,
    )
    .unwrap();
    let sig = quorate_core::backend::sign(key, &i.digest());
    (i, sig)
}

impl Cluster {
    /// The backend's intent-signing key from the cluster directory.
    pub fn backend_key(&self) -> k256::ecdsa::SigningKey {
        let text = std::fs::read_to_string(self.path("backend/signing.key")).unwrap();
        k256::ecdsa::SigningKey::from_slice(&hex::decode(text.trim()).unwrap()).unwrap()
    }

    /// A backend-signed request for `amount` wei of ETH to the sample address, valid from now
    /// for `ttl_ms`.
    pub fn eth_request(
        &self,
        id: &str,
        amount: &str,
        ttl_ms: u64,
        customer_ref: Option<&str>,
    ) -> (
        quorate_core::intent::WithdrawalIntent,
        quorate_wire::withdrawal::SubmitRequest,
    ) {
        let now = now_ms();
        let intent = quorate_core::intent::WithdrawalIntent::from_parts(
            id,
            "ethereum",
            "ETH",
            "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
            amount,
            now,
            now + ttl_ms,
            customer_ref,
        )
        .unwrap();
        let req = quorate_wire::withdrawal::SubmitRequest {
            intent: Some(quorate_wire::convert::intent_to_proto(&intent)),
            backend_signature: quorate_core::backend::sign(&self.backend_key(), &intent.digest()),
        };
        (intent, req)
    }
}
