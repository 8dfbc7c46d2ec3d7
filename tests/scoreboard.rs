//! What the red-team, bad-input and crash-injection tests report to `tests/scoreboard`: each
//! writes one JSON file into `$QUORATE_SCOREBOARD_DIR` when it is set (and nothing otherwise).
//! A [`Book`] records named attacks: each must be refused under its rule, and each refusal must
//! then be found in the audit log of the node that refused it.

use std::collections::BTreeMap;

use quorate_core::audit::{kind, Record};
use quorate_wire::signer::signer_message::Body as Ans;
use serde_json::{json, Value};

/// Writes `value` as `<name>.json` into the scoreboard directory, if one is set.
pub fn record(name: &str, value: &Value) {
    if let Ok(dir) = std::env::var("QUORATE_SCOREBOARD_DIR") {
        let dir = std::path::PathBuf::from(dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{name}.json")), value.to_string()).unwrap();
    }
}

struct Case {
    attack: String,
    node: String,
    rule: String,
    withdrawal: Option<String>,
    /// `None`: refused before any node's code runs (a TLS handshake), so there is no audit
    /// record to look for.
    audited: Option<bool>,
}

/// Named attacks of one suite.
pub struct Book {
    suite: &'static str,
    kind: &'static str,
    cases: Vec<Case>,
}

impl Book {
    /// A book of attacks.
    pub fn attacks(suite: &'static str) -> Self {
        Self {
            suite,
            kind: "attacks",
            cases: Vec::new(),
        }
    }

    /// A book of bad inputs.
    pub fn bad_inputs(suite: &'static str) -> Self {
        Self {
            suite,
            kind: "bad_inputs",
            cases: Vec::new(),
        }
    }

    /// Asserts that `answer` is a refusal under `rule` and records the case, to be looked up
    /// in `node`'s audit log.
    #[track_caller]
    pub fn refused(
        &mut self,
        attack: &str,
        node: &str,
        answer: &Ans,
        rule: &str,
        withdrawal: Option<&str>,
    ) {
        match answer {
            Ans::Refusal(r) => {
                assert_eq!(r.rule, rule, "{attack}: refused for another reason: {r:?}")
            }
            other => panic!("{attack}: expected refusal `{rule}`, got {other:?}"),
        }
        self.blocked(attack, node, rule, withdrawal);
    }

    /// Records a case the caller has already seen refused under `rule` by `node`.
    pub fn blocked(&mut self, attack: &str, node: &str, rule: &str, withdrawal: Option<&str>) {
        self.cases.push(Case {
            attack: attack.to_string(),
            node: node.to_string(),
            rule: rule.to_string(),
            withdrawal: withdrawal.map(str::to_string),
            audited: Some(false),
        });
    }

    /// Records a case refused before any node's code could see it (no audit record exists).
    pub fn blocked_at_handshake(&mut self, attack: &str, node: &str) {
        self.cases.push(Case {
            attack: attack.to_string(),
            node: node.to_string(),
            rule: "tls-handshake".into(),
            withdrawal: None,
            audited: None,
        });
    }

    /// Looks each of `node`'s cases up in its (verified) audit log: a `refused` record under
    /// the same rule (and withdrawal, where the case names one), as many as there are cases.
    pub fn audit(&mut self, node: &str, log: &[Record]) {
        let mut found: BTreeMap<(String, Option<String>), usize> = BTreeMap::new();
        for r in log.iter().filter(|r| r.event.kind == kind::REFUSED) {
            let rule = r.event.field("rule").unwrap_or_default().to_string();
            let w = r.event.field("withdrawal").map(str::to_string);
            *found.entry((rule, w)).or_default() += 1;
        }
        // Cases without a withdrawal match any record under their rule.
        let mut by_rule: BTreeMap<String, usize> = BTreeMap::new();
        for r in log.iter().filter(|r| r.event.kind == kind::REFUSED) {
            *by_rule
                .entry(r.event.field("rule").unwrap_or_default().to_string())
                .or_default() += 1;
        }
        for c in self
            .cases
            .iter_mut()
            .filter(|c| c.node == node && c.audited.is_some())
        {
            let left = match &c.withdrawal {
                Some(w) => found.get_mut(&(c.rule.clone(), Some(w.clone()))),
                None => by_rule.get_mut(&c.rule),
            };
            if let Some(n) = left.filter(|n| **n > 0) {
                *n -= 1;
                c.audited = Some(true);
            }
        }
    }

    /// Asserts every case was blocked and audited, and reports the book.
    pub fn finish(self) {
        let cases: Vec<Value> = self
            .cases
            .iter()
            .map(|c| {
                json!({
                    "attack": c.attack,
                    "node": c.node,
                    "rule": c.rule,
                    "blocked": true,
                    "audited": c.audited,
                })
            })
            .collect();
        record(self.suite, &json!({ self.kind: cases }));
        let missing: Vec<&str> = self
            .cases
            .iter()
            .filter(|c| c.audited == Some(false))
            .map(|c| c.attack.as_str())
            .collect();
        assert!(
            missing.is_empty(),
            "{}: refusals missing from the refusing node's audit log: {missing:?}",
            self.suite
        );
    }
}
