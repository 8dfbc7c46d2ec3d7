//! deploy/README.md's "Setting up a cluster, step by step", executed as written, so the guide
//! cannot rot: every host gets its own directory (its config directory), every `on=HOST` block
//! runs there with `sh -eu`, every `carry` line copies a public file from one host to another,
//! and the `values` block is the only thing replaced (a loopback name, a free port, `data`
//! directories). A `start` block is not run: the test starts what the systemd units run
//! (`quorate-coordinator run --config coordinator.toml`, `quorate-signer run --config
//! signer.toml`) in that host's directory. The binaries on the blocks' PATH are the `quorate`
//! under test and two wrappers, `quorate-signer` and `quorate-coordinator`, that run its
//! `signer` and `coordinator` subcommands (the same entry points as those binaries).
//!
//! Then it checks what the operators care about: the backend's first withdrawal is signed and
//! the signature verifies (RFC 9591, independently) under the group key the DKG printed, every
//! host holds only its own secrets, the admin desks verify the policy from the genesis they
//! pinned, and the manifest hash the ceremony printed is the one the coordinator runs with.

use std::{
    collections::{BTreeMap, BTreeSet},
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};

use serde_json::Value;
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::{Child, Command},
};

use crate::harness::{exe, hexf, rfc9591_verify};

const SIGNERS: [&str; 3] = ["signer-1", "signer-2", "signer-3"];
const ADMINS: [&str; 3] = ["admin-1", "admin-2", "admin-3"];
const OTHER_HOSTS: [&str; 3] = ["ca", "coordinator", "backend"];

/// One labelled block of the guide.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    /// `sh values`: NAME=value lines.
    Values(Vec<(String, String)>),
    /// `sh on=HOST`: a script run in each matching host's directory.
    Run {
        on: String,
        script: String,
        line: usize,
    },
    /// `sh on=HOST start`: starts that host's daemon.
    Start {
        on: String,
        script: String,
        line: usize,
    },
    /// `text carry`: `FROM:PATH -> TO:PATH` lines.
    Carry { lines: Vec<String>, line: usize },
}

/// Extracts the labelled blocks; unlabelled blocks (examples, production-only steps) are
/// skipped, and a label this parser does not know is an error, not a skipped step.
/// `first_line` is the README line `text` starts on, so messages name README lines.
fn parse_guide(text: &str, first_line: usize) -> Vec<Step> {
    let mut steps = Vec::new();
    let mut lines = text.lines().enumerate();
    while let Some((n, l)) = lines.next() {
        let Some(info) = l.strip_prefix("```") else {
            continue;
        };
        let mut body = Vec::new();
        for (_, b) in lines.by_ref() {
            if b.trim_end() == "```" {
                break;
            }
            body.push(b);
        }
        let tokens: Vec<&str> = info.split_whitespace().collect();
        let labelled = tokens
            .iter()
            .any(|t| t.starts_with("on=") || *t == "carry" || *t == "values" || *t == "start");
        if !labelled {
            continue;
        }
        let line = first_line + n;
        let body_text = body.join("\n");
        let on = tokens.iter().find_map(|t| t.strip_prefix("on="));
        match (tokens.as_slice(), on) {
            (["sh", "values"], None) => steps.push(Step::Values(
                body.iter()
                    .map(|l| l.trim())
                    .filter(|l| !l.is_empty() && !l.starts_with('#'))
                    .map(|l| {
                        let (k, v) = l.split_once('=').unwrap_or_else(|| {
                            panic!("README line {line}: `{l}` is not NAME=value")
                        });
                        (k.to_string(), v.to_string())
                    })
                    .collect(),
            )),
            (["text", "carry"], None) => steps.push(Step::Carry {
                lines: body
                    .iter()
                    .map(|l| l.trim().to_string())
                    .filter(|l| !l.is_empty())
                    .collect(),
                line,
            }),
            (["sh", _], Some(on)) => steps.push(Step::Run {
                on: on.to_string(),
                script: body_text,
                line,
            }),
            (["sh", _, "start"], Some(on)) => steps.push(Step::Start {
                on: on.to_string(),
                script: body_text,
                line,
            }),
            _ => panic!("README line {line}: unknown block label ```{info}"),
        }
    }
    steps
}

/// The hosts a pattern names, with the variables each instance's blocks get.
fn instances(pattern: &str) -> Vec<(String, Vec<(&'static str, String)>)> {
    let signer = |s: &str| {
        let id = s.trim_start_matches("signer-").to_string();
        (s.to_string(), vec![("SIGNER", s.to_string()), ("ID", id)])
    };
    let admin = |a: &str| (a.to_string(), vec![("ADMIN", a.to_string())]);
    match pattern {
        "signer-*" => SIGNERS.iter().map(|s| signer(s)).collect(),
        "admin-*" => ADMINS.iter().map(|a| admin(a)).collect(),
        s if SIGNERS.contains(&s) => vec![signer(s)],
        a if ADMINS.contains(&a) => vec![admin(a)],
        h if OTHER_HOSTS.contains(&h) => vec![(h.to_string(), vec![])],
        other => panic!("the guide names an unknown host `{other}`"),
    }
}

fn all_hosts() -> Vec<String> {
    OTHER_HOSTS
        .iter()
        .chain(SIGNERS.iter())
        .chain(ADMINS.iter())
        .map(|s| s.to_string())
        .collect()
}

fn is_secret(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o077 == 0)
}

struct Ceremony {
    root: tempfile::TempDir,
    bin: PathBuf,
    values: BTreeMap<String, String>,
    /// (host, block line, stdout) of every block run.
    outputs: Vec<(String, usize, String)>,
    coordinator: Option<Child>,
    signers: Vec<Child>,
    /// Holds the coordinator's port until the coordinator binds it.
    port_guard: Option<std::net::TcpListener>,
}

impl Ceremony {
    fn new() -> Self {
        let root = tempfile::tempdir().expect("tempdir");
        for h in all_hosts() {
            std::fs::create_dir_all(root.path().join("hosts").join(h)).unwrap();
        }
        std::fs::create_dir_all(root.path().join("logs")).unwrap();
        let bin = root.path().join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        std::os::unix::fs::symlink(exe(), bin.join("quorate")).unwrap();
        for (name, sub) in [
            ("quorate-signer", "signer"),
            ("quorate-coordinator", "coordinator"),
        ] {
            let p = bin.join(name);
            std::fs::write(
                &p,
                format!("#!/bin/sh\nexec '{}' {sub} \"$@\"\n", exe().display()),
            )
            .unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        Self {
            root,
            bin,
            values: BTreeMap::new(),
            outputs: Vec::new(),
            coordinator: None,
            signers: Vec::new(),
            port_guard: None,
        }
    }

    fn host(&self, h: &str) -> PathBuf {
        self.root.path().join("hosts").join(h)
    }

    fn log(&self, name: &str) -> std::fs::File {
        std::fs::File::create(self.root.path().join("logs").join(format!("{name}.log"))).unwrap()
    }

    fn read_log(&self, name: &str) -> String {
        std::fs::read_to_string(self.root.path().join("logs").join(format!("{name}.log")))
            .unwrap_or_default()
    }

    fn path_env(&self) -> String {
        format!(
            "{}:{}",
            self.bin.display(),
            std::env::var("PATH").unwrap_or_default()
        )
    }

    /// Replaces the guide's values with loopback ones; every value the guide names must be
    /// one the test knows how to replace.
    fn set_values(&mut self, guide: &[(String, String)]) {
        let guard = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = guard.local_addr().unwrap().port();
        self.port_guard = Some(guard);
        let ours: BTreeMap<&str, String> = [
            ("COORDINATOR_NAME", "localhost".to_string()),
            ("COORDINATOR_PORT", port.to_string()),
            ("COORDINATOR_LISTEN", format!("127.0.0.1:{port}")),
            ("SIGNER_DATA_DIR", "data".to_string()),
            ("COORDINATOR_DATA_DIR", "data".to_string()),
        ]
        .into();
        for (k, _) in guide {
            let v = ours.get(k.as_str()).unwrap_or_else(|| {
                panic!("the guide's values block has `{k}`, which this test does not replace")
            });
            self.values.insert(k.clone(), v.clone());
        }
        assert_eq!(
            self.values.len(),
            ours.len(),
            "the values block lacks some of {:?}",
            ours.keys()
        );
    }

    async fn run(&mut self, on: &str, script: &str, line: usize) {
        for (host, vars) in instances(on) {
            let mut cmd = Command::new("sh");
            // Public files readable by others, as on a host with the usual umask: what the
            // secrets check below tells apart from the owner-only secrets.
            cmd.arg("-euc")
                .arg(format!("umask 022\n{script}"))
                .current_dir(self.host(&host))
                .env("PATH", self.path_env())
                .stdin(Stdio::null())
                .kill_on_drop(true);
            for (k, v) in self.values.iter() {
                cmd.env(k, v);
            }
            for (k, v) in &vars {
                cmd.env(k, v);
            }
            let out = tokio::time::timeout(Duration::from_secs(300), cmd.output())
                .await
                .unwrap_or_else(|_| panic!("README line {line} on {host}: no end in 300 s"))
                .expect("run sh");
            let (stdout, stderr) = (
                String::from_utf8_lossy(&out.stdout).into_owned(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            );
            assert!(
                out.status.success(),
                "README line {line}: the block on {host} ({vars:?}) failed with {}:\n{script}\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}",
                out.status
            );
            self.outputs.push((host, line, stdout));
        }
    }

    fn carry(&self, lines: &[String], line: usize) {
        for l in lines {
            let (from, to) = l
                .split_once(" -> ")
                .unwrap_or_else(|| panic!("README line {line}: `{l}` is not FROM:PATH -> TO:PATH"));
            let side = |s: &str| {
                let (h, p) = s
                    .split_once(':')
                    .unwrap_or_else(|| panic!("README line {line}: `{s}` is not HOST:PATH"));
                (h.to_string(), p.to_string())
            };
            let ((fh, fp), (th, tp)) = (side(from), side(to));
            let pattern = match (fh.ends_with("-*"), th.ends_with("-*")) {
                (true, false) => Some(fh.clone()),
                (false, true) => Some(th.clone()),
                (false, false) => None,
                (true, true) => panic!("README line {line}: `{l}` has two host patterns"),
            };
            let runs = match &pattern {
                Some(p) => instances(p),
                None => vec![(String::new(), vec![])],
            };
            for (inst, vars) in runs {
                let expand = |s: &str| {
                    vars.iter().fold(s.to_string(), |acc, (k, v)| {
                        acc.replace(&format!("${k}"), v)
                    })
                };
                let host = |h: &str| {
                    if h.ends_with("-*") {
                        inst.clone()
                    } else {
                        h.to_string()
                    }
                };
                let (fh, th) = (host(&fh), host(&th));
                instances(&fh);
                instances(&th);
                let (src, dst) = (
                    self.host(&fh).join(expand(&fp)),
                    self.host(&th).join(expand(&tp)),
                );
                assert!(
                    src.is_file(),
                    "README line {line}: `{l}`: {fh} has no {}",
                    expand(&fp)
                );
                let name = src.file_name().unwrap().to_string_lossy().into_owned();
                assert!(
                    !is_secret(&src) && !name.ends_with(".key") && name != "kek",
                    "README line {line}: `{l}` carries a secret ({})",
                    src.display()
                );
                assert!(
                    !dst.exists(),
                    "README line {line}: `{l}` would overwrite {th}'s {}",
                    expand(&tp)
                );
                std::fs::create_dir_all(dst.parent().unwrap()).unwrap();
                std::fs::copy(&src, &dst).unwrap();
            }
        }
    }

    async fn start(&mut self, on: &str, script: &str, line: usize) {
        match on {
            "coordinator" => {
                assert!(
                    script.contains("quorate-coordinator"),
                    "README line {line}: the coordinator's start block does not start quorate-coordinator"
                );
                // The port the guide's configs name is free from here on.
                drop(self.port_guard.take());
                let mut child = Command::new(self.bin.join("quorate-coordinator"))
                    .args(["run", "--config", "coordinator.toml"])
                    .current_dir(self.host("coordinator"))
                    .stdin(Stdio::null())
                    .stdout(Stdio::piped())
                    .stderr(self.log("coordinator"))
                    .kill_on_drop(true)
                    .spawn()
                    .expect("spawn coordinator");
                let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
                let started = tokio::time::timeout(Duration::from_secs(120), async {
                    while let Ok(Some(l)) = lines.next_line().await {
                        if l.starts_with("listening on ") {
                            return true;
                        }
                    }
                    false
                })
                .await;
                assert_eq!(
                    started,
                    Ok(true),
                    "README line {line}: the coordinator did not start from the guide's config:\n{}",
                    self.read_log("coordinator")
                );
                tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
                self.coordinator = Some(child);
            }
            "signer-*" => {
                assert!(
                    script.contains("quorate-signer"),
                    "README line {line}: the signers' start block does not start quorate-signer"
                );
                for s in SIGNERS {
                    let child = Command::new(self.bin.join("quorate-signer"))
                        .args(["run", "--config", "signer.toml"])
                        .current_dir(self.host(s))
                        .stdin(Stdio::null())
                        .stdout(Stdio::null())
                        .stderr(self.log(s))
                        .kill_on_drop(true)
                        .spawn()
                        .expect("spawn signer");
                    self.signers.push(child);
                }
                self.wait_connected(line).await;
            }
            other => panic!("README line {line}: the test cannot start `{other}`"),
        }
    }

    /// `quorate ARGS` on a host, in its directory.
    async fn quorate(&self, host: &str, args: &[&str]) -> (i32, String, String) {
        crate::harness::quorate_in(Some(&self.host(host)), args).await
    }

    /// Waits until every signer is connected, as admin-1's desk sees it (the guide's "when
    /// `quorate status` shows all n signers connected").
    async fn wait_connected(&mut self, line: usize) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
        loop {
            let (code, out, err) = self
                .quorate("admin-1", &["--dir", ".", "status", "--json"])
                .await;
            let connected = (code == 0)
                .then(|| serde_json::from_str::<Value>(out.trim()).ok())
                .flatten()
                .and_then(|v| {
                    v["signers"]
                        .as_array()
                        .map(|s| s.iter().filter(|x| x["connected"] == true).count())
                });
            if connected == Some(SIGNERS.len()) {
                return;
            }
            for (i, s) in self.signers.iter_mut().enumerate() {
                if let Ok(Some(status)) = s.try_wait() {
                    panic!(
                        "README line {line}: {} exited ({status}):\n{}",
                        SIGNERS[i],
                        self.read_log(SIGNERS[i])
                    );
                }
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "README line {line}: the signers did not all connect in 120 s: {out}{err}\ncoordinator: {}",
                self.read_log("coordinator")
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Every file under a host's directory, relative to it.
    fn files(&self, host: &str) -> Vec<PathBuf> {
        fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
            for e in std::fs::read_dir(dir).unwrap().flatten() {
                let p = e.path();
                if p.is_dir() {
                    walk(&p, out);
                } else if p.is_file() {
                    out.push(p);
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.host(host), &mut out);
        out.into_iter()
            .map(|p| p.strip_prefix(self.host(host)).unwrap().to_path_buf())
            .collect()
    }

    /// The stdout lines of every block run on `host` whose script ran at README line `line`.
    fn stdout_of(&self, pred: impl Fn(&str, usize) -> bool) -> Vec<&str> {
        self.outputs
            .iter()
            .filter(|(h, l, _)| pred(h, *l))
            .map(|(_, _, o)| o.as_str())
            .collect()
    }
}

fn value_of<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.lines().rev().find_map(|l| {
        l.strip_prefix(key)
            .and_then(|r| r.trim().strip_prefix('='))
            .map(|r| r.trim().trim_matches('"'))
    })
}

#[test]
fn the_guide_parser_reads_labels_and_refuses_unknown_ones() {
    let text = "intro\n```sh values\n# c\nA=1\n```\n```sh\nignored\n```\n```sh on=signer-*\necho $SIGNER\n```\n```text carry\nca:a -> signer-*:b\n```\n```sh on=coordinator start\nsystemctl start x\n```\n";
    assert_eq!(
        parse_guide(text, 1),
        vec![
            Step::Values(vec![("A".into(), "1".into())]),
            Step::Run {
                on: "signer-*".into(),
                script: "echo $SIGNER".into(),
                line: 9
            },
            Step::Carry {
                lines: vec!["ca:a -> signer-*:b".into()],
                line: 12
            },
            Step::Start {
                on: "coordinator".into(),
                script: "systemctl start x".into(),
                line: 15
            },
        ]
    );
    let bad = std::panic::catch_unwind(|| parse_guide("```bash on=ca go\nx\n```\n", 1));
    assert!(bad.is_err());
    assert_eq!(instances("admin-*").len(), 3);
    assert!(std::panic::catch_unwind(|| instances("signer-9")).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guide_setting_up_a_cluster_step_by_step() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/README.md"))
            .expect("deploy/README.md");
    let start = readme
        .find("\n## Setting up a cluster, step by step\n")
        .expect("the guide has a section \"Setting up a cluster, step by step\"")
        + 1;
    let section = &readme[start..];
    let section = section[3..]
        .find("\n## ")
        .map_or(section, |end| &section[..end + 3]);
    let steps = parse_guide(section, readme[..start].lines().count() + 1);
    let values: Vec<_> = steps
        .iter()
        .filter_map(|s| match s {
            Step::Values(v) => Some(v.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(values.len(), 1, "the guide has exactly one values block");

    let mut c = Ceremony::new();
    c.set_values(&values[0]);
    for step in &steps {
        match step {
            Step::Values(_) => {}
            Step::Run { on, script, line } => c.run(on, script, *line).await,
            Step::Carry { lines, line } => c.carry(lines, *line),
            Step::Start { on, script, line } => c.start(on, script, *line).await,
        }
    }
    assert!(
        c.coordinator.is_some() && c.signers.len() == SIGNERS.len(),
        "the guide starts the coordinator and the signers"
    );

    // The DKG printed the group key; the backend's withdrawal is signed under it and the
    // signature verifies without any Quorate code.
    let dkg_out = c.stdout_of(|_, _| true).join("\n");
    let group_key = dkg_out
        .lines()
        .find_map(|l| l.strip_prefix("group key"))
        .and_then(|r| r.split_whitespace().next())
        .map(|h| hex::decode(h).unwrap())
        .expect("the guide runs `quorate dkg`, which prints the group key");
    let backend_out = c.stdout_of(|h, _| h == "backend");
    let w: Value = backend_out
        .last()
        .and_then(|o| o.lines().rev().find(|l| l.trim_start().starts_with('{')))
        .and_then(|l| serde_json::from_str(l).ok())
        .expect("the guide's last backend block submits a withdrawal with --json");
    assert_eq!(w["status"], "signed", "{w}");
    let (gk, msg, sig) = (
        hexf(&w, "group_public_key"),
        hexf(&w, "message"),
        hexf(&w, "signature"),
    );
    assert_eq!(gk, group_key, "signed under the key the DKG made");
    assert_eq!(
        msg,
        hexf(&w, "digest"),
        "the group signed the intent's digest"
    );
    assert!(
        rfc9591_verify(&gk, &msg, &sig),
        "independent RFC 9591 check: {w}"
    );

    // Every host holds exactly its own secrets, and no file anywhere holds another host's.
    let expected: BTreeMap<String, BTreeSet<&str>> = all_hosts()
        .into_iter()
        .map(|h| {
            let own: BTreeSet<&str> = match h.as_str() {
                "ca" => ["ca.key"].into(),
                "coordinator" => ["tls/coordinator.key"].into(),
                "backend" => ["keys/backend.key", "keys/signing.key"].into(),
                s if s.starts_with("signer-") => {
                    ["keys/kek", "keys/identity.key", "tls/signer.key"].into()
                }
                _ => ["keys/admin.key", "keys/signing.key"].into(),
            };
            (h, own)
        })
        .collect();
    let mut secrets: Vec<(String, PathBuf, Vec<u8>)> = Vec::new();
    for (h, own) in &expected {
        let found: BTreeSet<String> = c
            .files(h)
            .into_iter()
            .filter(|p| !p.starts_with("data") && is_secret(&c.host(h).join(p)))
            .map(|p| p.to_string_lossy().into_owned())
            .collect();
        let want: BTreeSet<String> = own.iter().map(|s| s.to_string()).collect();
        assert_eq!(found, want, "{h}'s secret (owner-only) files");
        for f in own {
            secrets.push((
                h.clone(),
                f.into(),
                std::fs::read(c.host(h).join(f)).unwrap(),
            ));
        }
    }
    for h in all_hosts() {
        for p in c.files(&h) {
            let bytes = std::fs::read(c.host(&h).join(&p)).unwrap();
            for (owner, f, secret) in &secrets {
                if *owner != h {
                    assert!(
                        !bytes.windows(secret.len()).any(|w| w == secret.as_slice()),
                        "{h}:{} holds {owner}'s secret {}",
                        p.display(),
                        f.display()
                    );
                }
            }
        }
    }
    // Nothing any block printed shows a secret: no line of a key file, no key in hex.
    let printed = c.stdout_of(|_, _| true).join("\n");
    for (owner, f, secret) in &secrets {
        if let Ok(text) = std::str::from_utf8(secret) {
            for line in text.lines().map(str::trim).filter(|l| l.len() >= 32) {
                assert!(
                    !printed.contains(line),
                    "a block printed part of {owner}'s secret {}",
                    f.display()
                );
            }
        }
    }
    // The backend host has no admin credentials, the admin desks no backend credentials.
    let client = |h: &str| -> toml::Value {
        toml::from_str(&std::fs::read_to_string(c.host(h).join("client.toml")).unwrap()).unwrap()
    };
    assert!(client("backend").get("admin").is_none());
    for a in ADMINS {
        assert!(client(a).get("backend").is_none(), "{a}");
    }
    let (code, _, err) = c.quorate("backend", &["--dir", ".", "admin", "show"]).await;
    assert_ne!(code, 0);
    assert!(err.contains("[admin]"), "{err}");

    // Each admin desk verifies the policy in force from the genesis hash it pinned itself.
    for a in ADMINS {
        let (code, out, err) = c
            .quorate(a, &["--dir", ".", "admin", "show", "--json"])
            .await;
        assert_eq!(code, 0, "{a}: quorate admin show: {out}{err}");
        let v: Value = serde_json::from_str(out.trim()).unwrap();
        let pinned = client(a)["policy_genesis"].as_str().unwrap().to_string();
        assert_eq!(
            (
                v["verified"].as_bool(),
                v["version"].as_u64(),
                v["hash"].as_str()
            ),
            (Some(true), Some(1), Some(pinned.as_str())),
            "{a}: {v}"
        );
    }
    // `genesis combine` printed the same pin.
    let ca_out = c.stdout_of(|h, _| h == "ca").join("\n");
    assert_eq!(
        value_of(&ca_out, "policy_genesis"),
        client("admin-1")["policy_genesis"].as_str()
    );
    // The manifest hash the ceremony printed is the coordinator's.
    let (code, out, err) = c
        .quorate("admin-2", &["--dir", ".", "status", "--json"])
        .await;
    assert_eq!(code, 0, "{out}{err}");
    let status: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(
        value_of(&ca_out, "manifest_hash"),
        status["manifest_hash"].as_str(),
        "manifest build printed the hash the coordinator runs with"
    );
}
