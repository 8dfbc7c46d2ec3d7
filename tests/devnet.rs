//! `quorate devnet` from nothing: it comes up, signs a withdrawal submitted with no flags but
//! the withdrawal's own, and stops all its children on an interrupt.

use std::time::Duration;

use crate::harness::{exe, hexf, quorate, rfc9591_verify, start_devnet};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devnet_comes_up_signs_and_stops_cleanly() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut devnet, banner) = start_devnet(&[], tmp.path()).await;
    assert!(banner.contains("fingerprint"), "{banner}");
    let dir = tmp.path().join(".quorate-devnet");

    // In "a second terminal", with the default directory, from the same working directory.
    let out = tokio::process::Command::new(exe())
        .args([
            "submit",
            "--chain",
            "ethereum",
            "--asset",
            "ETH",
            "--to",
            "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
            "--amount",
            "1000000000000000000",
            "--json",
        ])
        .current_dir(tmp.path())
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let w: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(w["status"], "signed");
    assert!(rfc9591_verify(
        &hexf(&w, "group_public_key"),
        &hexf(&w, "message"),
        &hexf(&w, "signature")
    ));
    let (code, out, err) = quorate(&["status", "--dir", dir.to_str().unwrap()]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("signer-3") && out.contains("connected"),
        "{out}"
    );

    // The devnet pins its genesis policy for the admin desk: `admin show` verifies the chain
    // from it and every signer proves its policy with a signed receipt.
    let (code, out, err) =
        quorate(&["admin", "--dir", dir.to_str().unwrap(), "--json", "show"]).await;
    assert_eq!(code, 0, "{out}{err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["verified"], true, "{v}");
    let signers = v["signers"].as_array().unwrap();
    assert_eq!(signers.len(), 3, "{v}");
    assert!(signers.iter().all(|s| s["proven"] == true), "{v}");

    // Ctrl-C: everything stops, cleanly.
    let client = std::fs::read_to_string(dir.join("client.toml")).unwrap();
    let addr = client
        .lines()
        .find_map(|l| l.strip_prefix("coordinator = "))
        .unwrap()
        .trim_matches('"')
        .to_string();
    let pid = devnet.id().unwrap().to_string();
    assert!(std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap()
        .success());
    let status = tokio::time::timeout(Duration::from_secs(60), devnet.wait())
        .await
        .expect("devnet stops")
        .unwrap();
    assert!(status.success(), "devnet exit: {status:?}");
    assert!(
        tokio::net::TcpStream::connect(&addr).await.is_err(),
        "coordinator still listening after devnet stopped"
    );
}
