//! The production path for a signer operator: keys made on the signer host with
//! `quorate-signer init`, only the CSR and identity public key handed out, the CA signing the
//! CSR with the role it decides.

use quorate_wire::tls::{identity_of, Role};
use rustls::pki_types::{pem::PemObject, CertificateDer};

use crate::harness::{quorate, Cluster};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signer_init_then_ca_signs_the_csr() {
    let c = Cluster::create(3, 2).await;
    let host = tempfile::tempdir().unwrap();
    let cfg = host.path().join("signer.toml");
    std::fs::write(
        &cfg,
        r#"
name = "signer-9"
coordinator = "127.0.0.1:7443"
coordinator_server_name = "localhost"
manifest = "manifest.toml"
data_dir = "data"
[tls]
ca = "ca.pem"
cert = "tls/signer.pem"
key = "tls/signer.key"
[keys]
identity = "keys/identity.key"
kek_file = "keys/kek"
"#,
    )
    .unwrap();
    let cfg_s = cfg.to_str().unwrap();
    let (code, out, err) = quorate(&["signer", "init", "--config", cfg_s]).await;
    assert_eq!(code, 0, "{out}{err}");
    let identity_line = out
        .lines()
        .find(|l| l.starts_with("identity_key = "))
        .unwrap_or_else(|| panic!("{out}"))
        .to_string();
    for f in [
        "keys/kek",
        "keys/identity.key",
        "tls/signer.key",
        "tls/signer.csr",
    ] {
        assert!(host.path().join(f).exists(), "{f}");
    }
    // The identity key is stored sealed, not in the clear.
    let sealed = std::fs::read(host.path().join("keys/identity.key")).unwrap();
    assert!(sealed.starts_with(b"QRT1"));
    // Secret files are readable by their owner only.
    #[cfg(unix)]
    for f in ["keys/kek", "keys/identity.key", "tls/signer.key"] {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(host.path().join(f))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "{f} mode {mode:o}");
    }
    // A second init changes nothing and reports the same identity.
    let (code, out2, _) = quorate(&["signer", "init", "--config", cfg_s]).await;
    assert_eq!(code, 0);
    assert!(out2.contains(&identity_line), "{out2}");
    assert_eq!(
        std::fs::read(host.path().join("keys/identity.key")).unwrap(),
        sealed
    );

    // The CA signs the CSR, as a signer, whatever the CSR asked for.
    let csr = host.path().join("tls/signer.csr");
    let sign_csr = |role: &'static str, out: std::path::PathBuf| {
        let (dir, csr) = (c.dir_str().to_string(), csr.clone());
        async move {
            quorate(&[
                "sign-csr",
                "--dir",
                &dir,
                "--csr",
                csr.to_str().unwrap(),
                "--name",
                "signer-9",
                "--role",
                role,
                "--out",
                out.to_str().unwrap(),
            ])
            .await
        }
    };
    let cert = host.path().join("tls/signer.pem");
    let (code, out, err) = sign_csr("signer", cert.clone()).await;
    assert_eq!(code, 0, "{out}{err}");
    let der = CertificateDer::from_pem_file(&cert).unwrap();
    let id = identity_of(der.as_ref()).unwrap();
    assert_eq!((id.role, id.name.as_str()), (Role::Signer, "signer-9"));
    // The certificate is for the key made on the host.
    let tls = quorate_wire::tls::TlsMaterial::load(
        &c.path("ca/ca.pem"),
        &cert,
        &host.path().join("tls/signer.key"),
    )
    .unwrap();
    tls.client_config()
        .expect("certificate matches the host's key");
    // Refuses to overwrite, and a coordinator certificate without the names it is dialled by.
    let (code, _, _) = sign_csr("signer", cert.clone()).await;
    assert_ne!(code, 0);
    let (code, _, err) = sign_csr("coordinator", host.path().join("x.pem")).await;
    assert_ne!(code, 0, "{err}");
    assert!(err.contains("--host"), "{err}");
    assert!(!host.path().join("x.pem").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coordinator_stops_cleanly_on_sigterm_with_signers_attached() {
    let mut c = crate::harness::Cluster::start(3, 2).await;
    // A Watch stream is open too.
    let mut w = quorate_wire::withdrawal::withdrawal_service_client::WithdrawalServiceClient::new(
        c.channel("backend").await,
    );
    let _watch = w
        .watch(quorate_wire::withdrawal::WatchRequest { id: String::new() })
        .await
        .unwrap();
    // SIGHUP ends neither the coordinator nor a signer: each says so and goes on serving.
    let pids = [
        ("coordinator", c.coordinator.as_ref().unwrap().id().unwrap()),
        ("signer-1", c.signers["signer-1"].id().unwrap()),
    ];
    for (_, pid) in pids {
        let ok = std::process::Command::new("kill")
            .args(["-HUP", &pid.to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
    }
    for (name, _) in pids {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
        while !c.read_log(name).contains("SIGHUP received and ignored") {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{name}: {}",
                c.read_log(name)
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }
    assert!(c
        .coordinator
        .as_mut()
        .unwrap()
        .try_wait()
        .unwrap()
        .is_none());
    assert!(c
        .signers
        .get_mut("signer-1")
        .unwrap()
        .try_wait()
        .unwrap()
        .is_none());
    let (code, w) = c.submit_eth("wd-after-hup", "1").await;
    assert_eq!((code, w["status"].as_str()), (0, Some("signed")), "{w}");
    let status = c.stop_coordinator().await;
    assert!(status.success(), "coordinator exit: {status:?}");
    let log = c.read_log("coordinator");
    assert!(log.contains("closing signer links"), "{log}");
}

/// A signer without a key share says so: a WARN line at start, a metric, and `quorate status`
/// shows who can sign, before and after DKG.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signer_without_a_key_says_so_and_status_shows_who_can_sign() {
    use quorate_wire::metrics::sample;
    let mut c = Cluster::create(3, 2).await;
    c.start_all().await;
    let status = |c: &Cluster| {
        let (dir, addr) = (c.dir_str().to_string(), c.addr.clone());
        async move {
            let (code, out, err) =
                quorate(&["status", "--dir", &dir, "--coordinator", &addr, "--json"]).await;
            assert_eq!(code, 0, "{out}{err}");
            serde_json::from_str::<serde_json::Value>(out.trim()).unwrap()
        }
    };
    let before = status(&c).await;
    let able = |v: &serde_json::Value| {
        v["signers"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["can_sign"] == true)
            .count()
    };
    assert_eq!(able(&before), 0, "{before}");
    assert!(
        c.read_log("signer-2").contains("holds no key share"),
        "a WARN line says the signer cannot sign"
    );
    // The metric, from the signer's own metrics file (it opens no port).
    let gauge = |c: &Cluster, scheme: &str| {
        let t = std::fs::read_to_string(c.path("signer-2/metrics.prom")).unwrap_or_default();
        sample(
            &t,
            &format!("quorate_signer_key_share{{scheme=\"{scheme}\"}}"),
        )
    };
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
    while gauge(&c, "secp256k1").is_none() {
        assert!(tokio::time::Instant::now() < deadline, "no metrics file");
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    assert_eq!(gauge(&c, "secp256k1"), Some(0.0));

    c.dkg().await;
    let after = status(&c).await;
    assert_eq!(able(&after), 3, "{after}");
    let (code, out, _) = quorate(&["status", "--dir", c.dir_str(), "--coordinator", &c.addr]).await;
    assert_eq!(code, 0);
    assert!(out.contains("can sign    yes: 3 of 3"), "{out}");
    while gauge(&c, "secp256k1") != Some(1.0) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the key-share gauge never turned to 1"
        );
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    assert_eq!(gauge(&c, "ed25519"), Some(0.0));
    // Two of three stopped: below the threshold, and status says so.
    c.kill_signer("signer-2").await;
    c.kill_signer("signer-3").await;
    c.wait_connected(1).await;
    let (_, out, _) = quorate(&["status", "--dir", c.dir_str(), "--coordinator", &c.addr]).await;
    assert!(out.contains("can sign    NO: 1 of 3"), "{out}");
}

/// A lost disk: signer-3's data directory and identity key are gone; its operator restores the
/// backup made earlier (sealed to a passphrase, without the KEK) and it signs again, with both
/// group keys unchanged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signer_restored_from_its_backup_on_a_fresh_directory_signs_again() {
    let mut c = Cluster::start(3, 2).await;
    c.dkg_ed25519().await;
    let before = c.status().await;
    let config = c.path("signer-3/signer.toml");
    let cfg = quorate_signer::config::SignerConfig::load(&config).unwrap();
    let pass = c.path("backup-passphrase.txt");
    std::fs::write(&pass, "correct horse battery staple\n").unwrap();
    let backup = c.path("signer-3.backup");
    let run = |args: Vec<String>| async move {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        quorate(&args).await
    };
    let cmd = |verb: &str, file_flag: &str, file: &std::path::Path| {
        vec![
            "signer".to_string(),
            verb.into(),
            "--config".into(),
            config.to_str().unwrap().into(),
            file_flag.into(),
            file.to_str().unwrap().into(),
            "--passphrase-file".into(),
            pass.to_str().unwrap().into(),
        ]
    };

    // Backed up with the signer stopped (its store is single-process).
    c.kill_signer("signer-3").await;
    c.wait_connected(2).await;
    let (code, out, err) = run(cmd("backup", "--out", &backup)).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("secp256k1, ed25519"), "{out}");
    let text = std::fs::read_to_string(&backup).unwrap();
    let kek = std::fs::read_to_string(cfg.keys.kek_file.as_ref().unwrap()).unwrap();
    assert!(!text.contains(kek.trim()), "the backup never holds the KEK");
    let (code, _, err) = run(cmd("backup", "--out", &backup)).await;
    assert_ne!(code, 0, "an existing backup is never overwritten: {err}");

    // The disk is lost, KEK included: the new host has a KEK of its own.
    std::fs::remove_dir_all(&cfg.data_dir).unwrap();
    std::fs::remove_file(&cfg.keys.identity).unwrap();
    let new_kek = quorate_core::atrest::Kek::generate(&mut rand::rngs::OsRng);
    std::fs::write(
        cfg.keys.kek_file.as_ref().unwrap(),
        new_kek.to_hex().as_bytes(),
    )
    .unwrap();
    assert_ne!(new_kek.to_hex().as_str(), kek.trim());
    std::fs::write(&pass, "wrong horse battery staple\n").unwrap();
    let (code, _, err) = run(cmd("restore", "--from", &backup)).await;
    assert_ne!(code, 0);
    assert!(err.contains("wrong passphrase"), "{err}");
    assert!(
        !cfg.keys.identity.exists(),
        "a refused restore writes no key"
    );
    std::fs::write(&pass, "correct horse battery staple\n").unwrap();
    let (code, out, err) = run(cmd("restore", "--from", &backup)).await;
    assert_eq!(code, 0, "{out}{err}");
    let (code, _, err) = run(cmd("restore", "--from", &backup)).await;
    assert_ne!(code, 0);
    assert!(err.contains("already holds"), "{err}");

    // Back: the same keys, and it signs (signer-1 stopped, so every quorum includes it).
    c.start_signer("signer-3");
    c.wait_connected(3).await;
    let after = c.status().await;
    let three = |s: &quorate_wire::admin::ClusterStatus| {
        s.signers
            .iter()
            .find(|x| x.name == "signer-3")
            .map(|x| {
                (
                    x.group_public_key.clone(),
                    x.ed25519_group_public_key.clone(),
                )
            })
            .unwrap()
    };
    assert_eq!(three(&after), three(&before));
    assert_eq!(after.group_public_key, before.group_public_key);
    c.kill_signer("signer-1").await;
    c.wait_connected(2).await;
    let (code, w) = c.submit_eth("wd-after-restore", "1").await;
    assert_eq!((code, w["status"].as_str()), (0, Some("signed")), "{w}");
    assert_eq!(w["signers"], serde_json::json!([2, 3]), "{w}");
    assert!(crate::harness::rfc9591_verify(
        &before.group_public_key,
        &crate::harness::hexf(&w, "message"),
        &crate::harness::hexf(&w, "signature")
    ));
    // Its Ed25519 share signs too: a Solana withdrawal, by signers 2 and 3, under the same key.
    let (code, w) = c.submit_sol("1000000").await;
    assert_eq!((code, w["status"].as_str()), (0, Some("signed")), "{w}");
    assert_eq!(w["signers"], serde_json::json!([2, 3]), "{w}");
    assert_eq!(
        hex::decode(w["group_public_key"].as_str().unwrap()).unwrap(),
        three(&before).1
    );
}

/// Health that tells the truth: the process is SERVING from the start, the withdrawal service
/// only while t signers holding the key are connected (before DKG, below the threshold: not);
/// the metrics show each signer's link, key and last contact, and the build.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_follows_the_quorum_and_metrics_show_each_signer() {
    use quorate_wire::metrics::sample;
    use tonic_health::pb::{
        health_check_response::ServingStatus, health_client::HealthClient, HealthCheckRequest,
    };
    let mut c = Cluster::create(3, 2).await;
    c.start_coordinator(None).await;
    let mut h = HealthClient::new(c.channel("backend").await);
    let ask = |service: &str| HealthCheckRequest {
        service: service.into(),
    };
    let withdrawals = "quorate.withdrawal.v1.WithdrawalService";
    let mut watch = h.watch(ask(withdrawals)).await.unwrap().into_inner();
    // Each change of the withdrawal service's status, as the stream reports it (no polling).
    async fn next(
        w: &mut tonic::Streaming<tonic_health::pb::HealthCheckResponse>,
        was: ServingStatus,
    ) -> ServingStatus {
        tokio::time::timeout(std::time::Duration::from_secs(120), async {
            loop {
                let s =
                    ServingStatus::try_from(w.message().await.unwrap().unwrap().status).unwrap();
                if s != was {
                    return s;
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("the health status stayed {was:?} for 120 s"))
    }
    let first = tokio::time::timeout(std::time::Duration::from_secs(60), watch.message())
        .await
        .expect("the health watch's first status");
    let first = ServingStatus::try_from(first.unwrap().unwrap().status).unwrap();
    assert_eq!(first, ServingStatus::NotServing, "no signer connected");
    let process = h.check(ask("")).await.unwrap().into_inner().status;
    assert_eq!(process, ServingStatus::Serving as i32, "the process is up");
    for name in c.names.clone() {
        c.start_signer(&name);
    }
    c.wait_connected(3).await;
    let before_dkg = h.check(ask(withdrawals)).await.unwrap().into_inner().status;
    assert_eq!(before_dkg, ServingStatus::NotServing as i32, "no key yet");
    c.dkg().await;
    assert_eq!(next(&mut watch, first).await, ServingStatus::Serving);
    c.kill_signer("signer-2").await;
    c.kill_signer("signer-3").await;
    assert_eq!(
        next(&mut watch, ServingStatus::Serving).await,
        ServingStatus::NotServing,
        "one signer of a 2-of-3 cluster cannot sign"
    );
    c.start_signer("signer-2");
    assert_eq!(
        next(&mut watch, ServingStatus::NotServing).await,
        ServingStatus::Serving
    );
    c.wait_connected(2).await;

    let addr = c.metrics.clone().expect("the dev config turns metrics on");
    let (code, text, err) = quorate(&["--dir", c.dir_str(), "metrics", "--addr", &addr]).await;
    assert_eq!(code, 0, "{err}");
    let get = |k: &str| sample(&text, k);
    assert_eq!(
        get("quorate_signer_up{signer=\"signer-1\"}"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        get("quorate_signer_up{signer=\"signer-3\"}"),
        Some(0.0),
        "{text}"
    );
    assert_eq!(
        get("quorate_signer_has_key{signer=\"signer-2\",scheme=\"secp256k1\"}"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        get("quorate_signer_has_key{signer=\"signer-2\",scheme=\"ed25519\"}"),
        Some(0.0),
        "{text}"
    );
    assert_eq!(
        get("quorate_signer_key_epoch{signer=\"signer-1\",scheme=\"secp256k1\"}"),
        Some(0.0)
    );
    // Its hello a moment ago at the latest (the link came up in this test).
    let contact = get("quorate_signer_last_contact_seconds{signer=\"signer-1\"}").unwrap();
    assert!((0.0..600.0).contains(&contact), "{text}");
    assert_eq!(
        get("quorate_signer_last_contact_seconds{signer=\"signer-3\"}"),
        None
    );
    assert_eq!(
        get("quorate_signer_policy_version{signer=\"signer-1\"}"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        get(&format!(
            "quorate_build_info{{version=\"{}\"}}",
            env!("CARGO_PKG_VERSION")
        )),
        Some(1.0),
        "{text}"
    );
    // Each egress-only signer's textfile says its link is up and when it last heard from the
    // coordinator.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let t = std::fs::read_to_string(c.path("signer-1/metrics.prom")).unwrap_or_default();
        let link = format!("{{coordinator=\"{}\"}}", c.addr);
        let up = sample(&t, &format!("quorate_signer_link_up{link}"));
        let contact = sample(
            &t,
            &format!("quorate_signer_last_contact_timestamp_seconds{link}"),
        );
        if up == Some(1.0) && contact.is_some_and(|s| s > 1.7e9) {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{t}");
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
}

/// A malformed address or server name in a config stops the node at start, with exit code 64
/// and the field named, instead of a link that retries forever; so does the client's file. A
/// renamed signer is told that its name is the problem.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_address_or_server_name_fails_at_start_naming_the_field() {
    let c = Cluster::create(3, 2).await;
    let cfg = c.path("signer-1/signer.toml");
    let good = std::fs::read_to_string(&cfg).unwrap();
    let set = |key: &str, value: &str| {
        let text: String = good
            .lines()
            .map(|l| {
                if l.starts_with(&format!("{key} = ")) {
                    format!("{key} = \"{value}\"\n")
                } else {
                    format!("{l}\n")
                }
            })
            .collect();
        assert_ne!(text, good, "{key} is in the config");
        std::fs::write(&cfg, text).unwrap();
    };
    for (key, value) in [
        ("coordinator", "not a host:port"),
        ("coordinator", "bad_name!:7443"),
        ("coordinator_server_name", "bad name!"),
    ] {
        set(key, value);
        let (code, _, err) = quorate(&["signer", "run", "--config", cfg.to_str().unwrap()]).await;
        assert_eq!(code, 64, "{key} = {value}: {err}");
        assert!(err.contains(&format!("{key}: `")), "{key} = {value}: {err}");
    }
    // A renamed signer is told the real cause, not that its key-encryption key is wrong.
    set("name", "signer-renamed");
    let (code, _, err) = quorate(&["signer", "run", "--config", cfg.to_str().unwrap()]).await;
    assert_eq!(code, 64, "{err}");
    assert!(
        err.contains("`signer-renamed` is not a signer of the manifest")
            && err.contains("certificate is for `signer-1`"),
        "{err}"
    );
    std::fs::write(&cfg, &good).unwrap();
    let (code, _, err) = quorate(&[
        "signer",
        "run",
        "--config",
        cfg.to_str().unwrap(),
        "--coordinator",
        "nowhere",
    ])
    .await;
    assert_eq!(code, 64, "{err}");
    assert!(err.contains("--coordinator"), "{err}");
    // The client's file: the command says which field.
    let client = c.path("client.toml");
    let text = std::fs::read_to_string(&client).unwrap();
    std::fs::write(
        &client,
        text.replace("server_name = \"localhost\"", "server_name = \"bad name!\""),
    )
    .unwrap();
    let (code, _, err) = quorate(&["status", "--dir", c.dir_str()]).await;
    assert_ne!(code, 0);
    assert!(err.contains("server_name: `bad name!`"), "{err}");
}

/// Certificates have sensible lifetimes (a node's: one year by default, the CA's ten) and are
/// renewed without a new manifest: the manifest pins the key, the operator asks for a request
/// for the key it has, the CA signs it, the signer restarts with the new certificate and signs.
/// A coordinator certificate needs the names it is dialled by.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_renewed_for_the_same_key_needs_no_new_manifest() {
    let days_valid = |pem: &str| {
        let der = CertificateDer::from_pem_slice(pem.as_bytes()).unwrap();
        let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref()).unwrap();
        let v = cert.validity();
        (v.not_after.timestamp() - v.not_before.timestamp()) as f64 / 86_400.0
    };
    let mut c = Cluster::start(3, 2).await;
    let cert = c.path("signer-1/cert.pem");
    let old = std::fs::read_to_string(&cert).unwrap();
    let life = days_valid(&old);
    assert!((365.0..=365.1).contains(&life), "{life} days");
    let ca_life = days_valid(&std::fs::read_to_string(c.path("ca/ca.pem")).unwrap());
    assert!((3650.0..=3650.1).contains(&ca_life), "{ca_life} days");

    // The operator's renewal: a request for the existing key (no KEK needed), signed by the
    // CA for 30 days.
    let cfg = c.path("signer-1/signer.toml");
    let (code, out, err) = quorate(&["signer", "csr", "--config", cfg.to_str().unwrap()]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("have the cluster CA sign it"), "{out}");
    let renewed = c.path("signer-1/cert-renewed.pem");
    let sign = |role: &str, hosts: &[&str], out: &std::path::Path| {
        let mut args = vec![
            "sign-csr".to_string(),
            "--dir".into(),
            c.dir_str().into(),
            "--csr".into(),
            c.path("signer-1/cert.csr").to_str().unwrap().into(),
            "--name".into(),
            "signer-1".into(),
            "--role".into(),
            role.into(),
            "--days".into(),
            "30".into(),
            "--out".into(),
            out.to_str().unwrap().into(),
        ];
        for h in hosts {
            args.push("--host".into());
            args.push((*h).into());
        }
        async move {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            quorate(&args).await
        }
    };
    let (code, _, err) = sign("signer", &[], &renewed).await;
    assert_eq!(code, 0, "{err}");
    let new = std::fs::read_to_string(&renewed).unwrap();
    assert_ne!(new, old);
    let life = days_valid(&new);
    assert!((30.0..=30.1).contains(&life), "{life} days");
    // A coordinator certificate without the names it is dialled by is refused; a host is only
    // for a coordinator.
    let (code, _, err) = sign("coordinator", &[], &c.path("x.pem")).await;
    assert_ne!(code, 0);
    assert!(err.contains("--host"), "{err}");
    let (code, _, err) = sign("signer", &["signer-1.example"], &c.path("y.pem")).await;
    assert_ne!(code, 0);
    assert!(err.contains("--host is for a coordinator"), "{err}");
    let (code, _, err) = sign(
        "coordinator",
        &["coordinator.exchange.internal", "10.0.0.7"],
        &c.path("coordinator-renewed.pem"),
    )
    .await;
    assert_eq!(code, 0, "{err}");

    // The signer restarts with its renewed certificate and, with signer-2 stopped, signs.
    std::fs::rename(&renewed, &cert).unwrap();
    c.kill_signer("signer-1").await;
    c.kill_signer("signer-2").await;
    c.wait_connected(1).await;
    c.start_signer("signer-1");
    c.wait_connected(2).await;
    let (code, w) = c.submit_eth("wd-renewed-cert", "1").await;
    assert_eq!((code, w["status"].as_str()), (0, Some("signed")), "{w}");
    assert_eq!(w["signers"], serde_json::json!([1, 3]), "{w}");
}

/// A node whose own certificate has expired stops at start and says so (every peer would
/// refuse it anyway), instead of a link that retries forever; one that is valid reports its
/// `notAfter` in the metrics, and the coordinator each signer's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_certificate_stops_the_node_at_start_and_expiry_is_a_metric() {
    use quorate_wire::metrics::sample;
    let mut c = Cluster::create(3, 2).await;
    let ca = quorate_wire::pki::Authority::load(
        &std::fs::read_to_string(c.path("ca/ca.pem")).unwrap(),
        &std::fs::read_to_string(c.path("ca/ca.key")).unwrap(),
    )
    .unwrap();
    let swap = |dir: &str, role: Role, name: &str, hosts: &[String]| {
        let old = issued_files(&c.path(dir));
        let expired = ca
            .issue_between(role, name, hosts, (2020, 1, 1), (2021, 1, 1))
            .unwrap();
        std::fs::write(c.path(dir).join("cert.pem"), &expired.cert_pem).unwrap();
        std::fs::write(c.path(dir).join("key.pem"), &expired.key_pem).unwrap();
        old
    };
    let signer_files = swap("signer-1", Role::Signer, "signer-1", &[]);
    let cfg = c.path("signer-1/signer.toml");
    let (code, _, err) = quorate(&["signer", "run", "--config", cfg.to_str().unwrap()]).await;
    assert_eq!(code, 64, "{err}");
    assert!(err.contains("tls.cert: the certificate expired"), "{err}");
    restore(&c.path("signer-1"), signer_files);

    let coordinator_files = swap(
        "coordinator",
        Role::Coordinator,
        "coordinator",
        &quorate_wire::pki::loopback_hosts(),
    );
    let (code, _, err) = quorate(&[
        "coordinator",
        "run",
        "--config",
        c.path("coordinator/coordinator.toml").to_str().unwrap(),
    ])
    .await;
    assert_ne!(code, 0, "{err}");
    assert!(err.contains("tls.cert: the certificate expired"), "{err}");
    restore(&c.path("coordinator"), coordinator_files);

    // Valid certificates: a year from now, in the metrics.
    c.start_coordinator(None).await;
    c.start_signer("signer-1");
    c.wait_connected(1).await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as f64;
    let year = (now + 300.0 * 86_400.0)..(now + 366.0 * 86_400.0);
    let addr = c.metrics.clone().expect("the dev config turns metrics on");
    let (code, text, err) = quorate(&["--dir", c.dir_str(), "metrics", "--addr", &addr]).await;
    assert_eq!(code, 0, "{err}");
    for series in [
        "quorate_certificate_expiry_timestamp_seconds",
        "quorate_signer_certificate_expiry_timestamp_seconds{signer=\"signer-1\"}",
    ] {
        let v = sample(&text, series).unwrap_or_else(|| panic!("{series}: {text}"));
        assert!(year.contains(&v), "{series} = {v}");
    }
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let t = std::fs::read_to_string(c.path("signer-1/metrics.prom")).unwrap_or_default();
        if let Some(v) = sample(&t, "quorate_certificate_expiry_timestamp_seconds") {
            assert!(year.contains(&v), "{v}");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{t}");
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
}

fn issued_files(dir: &std::path::Path) -> (Vec<u8>, Vec<u8>) {
    (
        std::fs::read(dir.join("cert.pem")).unwrap(),
        std::fs::read(dir.join("key.pem")).unwrap(),
    )
}

fn restore(dir: &std::path::Path, (cert, key): (Vec<u8>, Vec<u8>)) {
    std::fs::write(dir.join("cert.pem"), cert).unwrap();
    std::fs::write(dir.join("key.pem"), key).unwrap();
}

/// Server reflection (what grpcurl and friends use) lists every service the coordinator
/// serves, gRPC health included, to any certificate of the cluster.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reflection_lists_every_service_and_health() {
    use tonic_reflection::pb::v1::{
        server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
        ServerReflectionRequest,
    };
    let mut c = Cluster::create(3, 2).await;
    c.start_coordinator(None).await;
    let mut r = ServerReflectionClient::new(c.channel("backend").await);
    let ask = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut answers = r
        .server_reflection_info(tokio_stream::iter([ask]))
        .await
        .unwrap()
        .into_inner();
    let answer = answers.message().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = answer.message_response else {
        panic!("{answer:?}");
    };
    let names: std::collections::BTreeSet<String> =
        list.service.into_iter().map(|s| s.name).collect();
    for want in [
        "quorate.withdrawal.v1.WithdrawalService",
        "quorate.admin.v1.AdminService",
        "quorate.signer.v1.SignerLink",
        "grpc.health.v1.Health",
    ] {
        assert!(names.contains(want), "{want} not in {names:?}");
    }
}
