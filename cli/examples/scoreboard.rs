//! Reads the results the red-team, bad-input and crash-injection tests wrote into a directory
//! (`QUORATE_SCOREBOARD_DIR`) and prints the scoreboard; run through `tests/scoreboard`.
//! Exit 1 if any attack got through or went unrecorded, any bad input was mishandled, anything
//! was lost, debited twice, reused or stuck, or a suite did not report.

use std::{collections::BTreeMap, process::ExitCode};

use serde_json::{json, Value};

/// Suites that must have reported.
const SUITES: &[&str] = &[
    "redteam-hostile-coordinator",
    "redteam-vault-messages",
    "redteam-solana-messages",
    "redteam-governance",
    "redteam-rotation",
    "redteam-malicious-signer",
    "redteam-dkg",
    "redteam-dkg-signer",
    "redteam-dkg-equivocation",
    "redteam-dkg-garbage-share",
    "redteam-repair-delta",
    "redteam-repair-sigma",
    "redteam-repair-target",
    "redteam-transport",
    "redteam-rotation-compromised",
    "redteam-audit-harvest",
    "redteam-admin-desk-policy",
    "redteam-admin-desk-withdrawal",
    "redteam-admin-desk-freeze",
    "redteam-admin-desk-in-force",
    "badinput-withdrawal",
    "badinput-admin",
    "badinput-signer-link",
    "crash",
];

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let Some(dir) = args.next() else {
        eprintln!("usage: scoreboard DIR [--json]");
        return ExitCode::from(64);
    };
    let as_json = args.any(|a| a == "--json");
    let mut suites: BTreeMap<String, Value> = BTreeMap::new();
    if let Ok(entries) = std::fs::read_dir(&dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.extension().is_some_and(|x| x == "json") {
                let name = p
                    .file_stem()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned();
                match std::fs::read_to_string(&p)
                    .ok()
                    .and_then(|t| serde_json::from_str(&t).ok())
                {
                    Some(v) => {
                        suites.insert(name, v);
                    }
                    None => eprintln!("scoreboard: {} does not parse", p.display()),
                }
            }
        }
    }
    let missing: Vec<&str> = SUITES
        .iter()
        .copied()
        .filter(|s| !suites.contains_key(*s))
        .collect();

    let held = |c: &Value| c["blocked"] == true && c["audited"] != false;
    let mut rows = Vec::new();
    let (mut tried, mut blocked, mut bad_tried, mut bad_handled) = (0, 0, 0, 0);
    let mut failures: Vec<String> = Vec::new();
    for (name, v) in &suites {
        for (key, is_attack) in [("attacks", true), ("bad_inputs", false)] {
            let Some(cases) = v[key].as_array() else {
                continue;
            };
            let ok = cases.iter().filter(|c| held(c)).count();
            for c in cases.iter().filter(|c| !held(c)) {
                failures.push(format!("{name}: {}", c["attack"]));
            }
            if is_attack {
                tried += cases.len();
                blocked += ok;
            } else {
                bad_tried += cases.len();
                bad_handled += ok;
            }
            let audited = cases.iter().filter(|c| c["audited"] == true).count();
            rows.push((name.clone(), cases.len(), ok, audited));
        }
    }
    let crash = suites.get("crash").cloned().unwrap_or(Value::Null);
    let n = |k: &str| crash[k].as_u64().unwrap_or(0);
    let losses = ["lost", "double_debits", "nonce_reuse", "stuck"];
    for k in losses {
        if n(k) > 0 {
            failures.push(format!("crash injection: {k} = {}", n(k)));
        }
    }
    let summary = json!({
        "attacks_tried": tried,
        "attacks_blocked": blocked,
        "bad_inputs_tried": bad_tried,
        "bad_inputs_handled": bad_handled,
        "crash_injections": n("crash_injections"),
        "lost": n("lost"),
        "double_debits": n("double_debits"),
        "nonce_reuse": n("nonce_reuse"),
        "stuck": n("stuck"),
        "withdrawals_acked_signed": n("withdrawals_acked_signed"),
        "suites_missing": missing,
        "failures": failures,
    });
    if as_json {
        println!("{summary}");
    } else {
        println!(
            "{:<30} {:>6} {:>8} {:>8}",
            "suite", "tried", "held", "audited"
        );
        for (name, t, ok, audited) in &rows {
            println!("{name:<30} {t:>6} {ok:>8} {audited:>8}");
        }
        println!();
        println!("attacks             {blocked} of {tried} blocked");
        println!("bad inputs          {bad_handled} of {bad_tried} handled");
        println!(
            "crash injections    {} SIGKILLs survived ({} coordinator, {} signer), {} withdrawals acknowledged as signed",
            n("crash_injections"),
            n("coordinator_kills"),
            n("signer_kills"),
            n("withdrawals_acked_signed")
        );
        println!(
            "losses              lost {}, double debits {}, nonce reuse {}, stuck {}",
            n("lost"),
            n("double_debits"),
            n("nonce_reuse"),
            n("stuck")
        );
        for m in &missing {
            println!("MISSING  suite {m} did not report");
        }
        for f in &failures {
            println!("FAILED   {f}");
        }
    }
    if missing.is_empty() && failures.is_empty() && tried > 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
