//! What the red-team, bad-input and crash-injection tests report to `tests/scoreboard`: each
//! writes one JSON file into `$QUORATE_SCOREBOARD_DIR` when it is set (and nothing otherwise).
//! A [`Book`] records named attacks: each must be refused under its rule, and each refusal must
//! then be found in the audit log of the node that refused it.

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
    /// The audit record that must show it: of this kind, with `field` = `value`.
    kind: String,
    field: String,
    value: String,
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
        self.blocked_as(
            attack,
            node,
            rule,
            withdrawal,
            (kind::REFUSED, "rule", rule),
        );
    }

    /// Records a case the caller has seen blocked, shown in `node`'s audit log by a record of
    /// `kind` whose `field` is `value` (for example a `culprit` record).
    pub fn blocked_as(
        &mut self,
        attack: &str,
        node: &str,
        rule: &str,
        withdrawal: Option<&str>,
        (kind, field, value): (&str, &str, &str),
    ) {
        self.cases.push(Case {
            attack: attack.to_string(),
            node: node.to_string(),
            rule: rule.to_string(),
            kind: kind.to_string(),
            field: field.to_string(),
            value: value.to_string(),
            withdrawal: withdrawal.map(str::to_string),
            audited: Some(false),
        });
    }

    /// Records a bad input the caller has seen answered with a clear error (`outcome`: the
    /// status code or rule). Bad inputs are not looked up in audit logs.
    pub fn handled(&mut self, input: &str, outcome: &str) {
        self.cases.push(Case {
            attack: input.to_string(),
            node: String::new(),
            rule: outcome.to_string(),
            kind: String::new(),
            field: String::new(),
            value: String::new(),
            withdrawal: None,
            audited: None,
        });
    }

    /// Records a case the admin's own tool refused before signing anything: nothing reached a
    /// node, so there is no audit record to look for (the test checks that nothing was signed).
    pub fn blocked_at_desk(&mut self, attack: &str) {
        self.cases.push(Case {
            attack: attack.to_string(),
            node: "admin-desk".into(),
            rule: "admin-desk-refused".into(),
            kind: String::new(),
            field: String::new(),
            value: String::new(),
            withdrawal: None,
            audited: None,
        });
    }

    /// Records a case refused before any node's code could see it (no audit record exists).
    pub fn blocked_at_handshake(&mut self, attack: &str, node: &str) {
        self.cases.push(Case {
            attack: attack.to_string(),
            node: node.to_string(),
            rule: "tls-handshake".into(),
            kind: String::new(),
            field: String::new(),
            value: String::new(),
            withdrawal: None,
            audited: None,
        });
    }

    /// Looks each of `node`'s cases up in its (verified) audit log: a record of the case's
    /// kind and field value (and withdrawal, where the case names one), one record per case.
    pub fn audit(&mut self, node: &str, log: &[Record]) {
        let mut used = vec![false; log.len()];
        // Cases naming a withdrawal first: they can match fewer records.
        let mut order: Vec<usize> = (0..self.cases.len())
            .filter(|i| self.cases[*i].node == node && self.cases[*i].audited.is_some())
            .collect();
        order.sort_by_key(|i| self.cases[*i].withdrawal.is_none());
        for i in order {
            let c = &mut self.cases[i];
            let hit = log.iter().enumerate().position(|(i, r)| {
                !used[i]
                    && r.event.kind == c.kind
                    && r.event.field(&c.field) == Some(c.value.as_str())
                    && c.withdrawal
                        .as_deref()
                        .is_none_or(|w| r.event.field("withdrawal") == Some(w))
            });
            if let Some(i) = hit {
                used[i] = true;
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
