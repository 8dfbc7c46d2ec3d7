//! The rule-tag table of `docs/policy.md` against the code.

use std::collections::{BTreeMap, BTreeSet};

use quorate_core::{
    address::Chain,
    policy::{
        doc::zero_hash, form::parse_rfc3339, governance::POLICY_VETO_DOMAIN, AdminSignature,
        PolicyForm, PolicyState, Scope,
    },
    refusal::Rule,
};

use super::common::*;

// ---------------------------------------------------------------------------------------------
// docs/policy.md: the rule-tag table
// ---------------------------------------------------------------------------------------------

/// The documented form of every velocity tag.
const VELOCITY_PATTERN: &str = "policy-velocity-<scope>-<amount|count>-<window>";

fn read(rel: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every tag of [`Rule::ALL`] that starts with `policy-` or `ledger-`, and the documented
/// pattern of the velocity family.
fn code_tags() -> BTreeSet<String> {
    let mut out: BTreeSet<String> = Rule::ALL
        .iter()
        .map(Rule::to_string)
        .filter(|tag| tag.starts_with("policy-") || tag.starts_with("ledger-"))
        .collect();
    assert_eq!(Rule::VELOCITY_PREFIX, "policy-velocity-");
    assert!(VELOCITY_PATTERN.starts_with(Rule::VELOCITY_PREFIX));
    out.insert(VELOCITY_PATTERN.to_string());
    out
}

/// Splits a table row into cells at `|` not escaped as `\|` (the escape is removed).
fn cells(row: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = row.trim().trim_start_matches('|').chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'|') => {
                cur.push('|');
                chars.next();
            }
            '|' => out.push(std::mem::take(&mut cur).trim().to_string()),
            _ => cur.push(c),
        }
    }
    if !cur.trim().is_empty() {
        out.push(cur.trim().to_string());
    }
    out
}

/// The rule-tag table of docs/policy.md: tag → (permanence column, meaning).
fn doc_table(doc: &str) -> BTreeMap<String, (String, String)> {
    let mut lines = doc
        .lines()
        .skip_while(|l| !(l.starts_with('#') && l.contains("Rule tags")));
    assert!(
        lines.next().is_some(),
        "docs/policy.md has no \"Rule tags\" heading"
    );
    let rows: Vec<&str> = lines
        .skip_while(|l| !l.trim_start().starts_with('|'))
        .take_while(|l| l.trim_start().starts_with('|'))
        .collect();
    assert!(rows.len() > 2, "the rule-tag table is empty");
    assert!(
        cells(rows[1])
            .iter()
            .all(|c| c.chars().all(|x| matches!(x, '-' | ':'))),
        "{}",
        rows[1]
    );
    let mut out = BTreeMap::new();
    for row in &rows[2..] {
        let c = cells(row);
        assert_eq!(c.len(), 3, "{row}");
        let first = &c[0];
        let tags: Vec<&str> = first.split('`').skip(1).step_by(2).collect();
        assert_eq!(tags.len(), 1, "one backticked tag per row: {row}");
        assert!(
            c[1].starts_with("permanent") || c[1].starts_with("temporary"),
            "second column says permanent or temporary: {row}"
        );
        assert!(c[2].len() > 10, "a meaning: {row}");
        let dup = out.insert(tags[0].to_string(), (c[1].clone(), c[2].clone()));
        assert!(dup.is_none(), "{} listed twice", tags[0]);
    }
    out
}

#[test]
fn rule_tags_documented() {
    let doc = read("../docs/policy.md");
    let code = code_tags();
    assert!(code.contains("policy-frozen") && code.contains("ledger-notice-invalid"));
    assert!(code.contains(VELOCITY_PATTERN));
    let documented: BTreeSet<String> = doc_table(&doc).into_keys().collect();
    let undocumented: Vec<_> = code.difference(&documented).collect();
    let unknown: Vec<_> = documented.difference(&code).collect();
    assert!(
        undocumented.is_empty() && unknown.is_empty(),
        "in code but not in docs/policy.md: {undocumented:?}; documented but not in code: {unknown:?}"
    );
    // The pattern also appears verbatim (outside the table, where `|` needs no escape).
    assert!(doc.contains(&format!("`{VELOCITY_PATTERN}`")));
}

#[test]
fn documented_toml_example_is_a_valid_policy() {
    let doc = read("../docs/policy.md");
    let start = doc.find("```toml\n").expect("a TOML example") + "```toml\n".len();
    let text = &doc[start..start + doc[start..].find("```").expect("closed")];
    let form = PolicyForm::parse(text).unwrap_or_else(|e| panic!("{e}"));
    let p = form
        .to_doc(1, &zero_hash())
        .unwrap_or_else(|e| panic!("{e}"));
    let eth = p.asset(Chain::Ethereum, "ETH").expect("ETH");
    assert_eq!((eth.decimals, eth.enabled), (18, true));
    assert_eq!(eth.max_per_withdrawal.get(), 5 * ETH);
    assert_eq!(eth.approval_threshold.get(), 2 * ETH);
    assert_eq!(eth.approvals_required, 1);
    assert_eq!(
        p.whitelisted(Chain::Ethereum, COLD).unwrap().active_from_ms,
        0
    );
    assert_eq!(
        p.whitelisted(Chain::Ethereum, OTHER)
            .unwrap()
            .active_from_ms,
        parse_rfc3339("2026-12-01T09:00:00Z").unwrap()
    );
    assert!(p.velocity.iter().any(|v| v.scope == Scope::Asset
        && v.window_ms == DAY
        && v.max_amount == Some(amount(10 * ETH))));
    assert_eq!(
        (p.admins.len(), p.admin_quorum, p.timelock_ms, p.frozen),
        (3, 2, DAY, false)
    );
    assert_eq!(p.backend_keys.len(), 1);
}

#[test]
fn documented_permanence_matches_governance_refusals() {
    let table = doc_table(&read("../docs/policy.md"));
    let (a, mut st) = setup();
    let outsider = keys(1).remove(0);
    let mut seen = Vec::new();
    let v2 = next(&st, |d| d.admin_quorum = 1);
    let mut bad = v2.clone();
    bad.version = 0;
    seen.push(st.offer(signed(&bad, &[&a[0], &a[1]]), T0).unwrap_err());
    let mut skip = v2.clone();
    skip.version = 3;
    seen.push(st.offer(signed(&skip, &[&a[0], &a[1]]), T0).unwrap_err());
    let mut unchained = v2.clone();
    unchained.prev_hash = "ab".repeat(32);
    seen.push(
        st.offer(signed(&unchained, &[&a[0], &a[1]]), T0)
            .unwrap_err(),
    );
    seen.push(st.offer(signed(&v2, &[&a[0]]), T0).unwrap_err());
    let h = v2.hash();
    seen.push(
        st.veto(
            &h,
            &AdminSignature::sign(&outsider, POLICY_VETO_DOMAIN, &[&h]),
            T0,
        )
        .unwrap_err(),
    );
    st.veto(
        &h,
        &AdminSignature::sign(&a[0], POLICY_VETO_DOMAIN, &[&h]),
        T0,
    )
    .unwrap();
    seen.push(st.offer(signed(&v2, &[&a[0], &a[1]]), T0).unwrap_err());
    let v1 = st.active().clone();
    seen.push(PolicyState::genesis(&pinned(&a[..2]), 2, signed(&v1, &[&a[0], &a[1]])).unwrap_err());
    let tags: BTreeSet<String> = seen.iter().map(|r| r.rule.to_string()).collect();
    assert_eq!(tags.len(), 7, "{tags:?}");
    for r in &seen {
        let (perm, _) = table
            .get(&*r.rule.as_str())
            .unwrap_or_else(|| panic!("{} not documented", r.rule));
        let documented_permanent = perm.starts_with("permanent");
        assert_eq!(
            r.permanent, documented_permanent,
            "{}: code {} vs doc {perm}",
            r.rule, r.permanent
        );
    }
}
