//! The documentation names every rule tag the code defines: a caller matches on tags, so an
//! undocumented one is a defect. Takes the wire tags from `quorate_core::refusal::Rule` (every
//! unit variant and the velocity family), the ceremony's tags from the source of its `rule`
//! module, and looks for each in the rule tables of docs/protocol.md and docs/policy.md.

use std::path::Path;

fn repo(rel: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(rel))
        .unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// The string constants of `pub mod <name> { … }` in `source`.
fn tags_of(source: &str, module: &str) -> Vec<String> {
    let start = source
        .find(&format!("pub mod {module} {{"))
        .unwrap_or_else(|| panic!("no `pub mod {module}`"));
    let mut depth = 0usize;
    let mut end = start;
    for (i, ch) in source[start..].char_indices() {
        match ch {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    end = start + i;
                    break;
                }
            }
            _ => {}
        }
    }
    source[start..end]
        .lines()
        .filter_map(|l| {
            let l = l.trim();
            l.strip_prefix("pub const ")?;
            let value = l.split_once("&str = \"")?.1;
            Some(value.split_once('"')?.0.to_string())
        })
        .collect()
}

#[test]
fn every_rule_tag_the_code_defines_is_documented() {
    use quorate_core::refusal::Rule;

    let docs = repo("docs/protocol.md") + &repo("docs/policy.md");
    let mut checked = 0;
    // A family (`policy-velocity-`) is documented as the prefix it starts with.
    let documented = |tag: &str| {
        if tag.ends_with('-') {
            docs.contains(&format!("`{tag}"))
        } else {
            docs.contains(&format!("`{tag}`"))
        }
    };
    let wire = Rule::ALL
        .iter()
        .map(Rule::to_string)
        .chain([Rule::VELOCITY_PREFIX.to_string()]);
    for tag in wire {
        assert!(
            documented(&tag),
            "Rule: rule tag `{tag}` is in no rule table"
        );
        checked += 1;
    }
    let (file, module) = ("cli/src/ceremony/mod.rs", "rule");
    let tags = tags_of(&repo(file), module);
    assert!(!tags.is_empty(), "{file}: no tags found in `{module}`");
    for tag in tags {
        assert!(
            documented(&tag),
            "{file}: rule tag `{tag}` is in no rule table"
        );
        checked += 1;
    }
    assert!(
        checked > 50,
        "only {checked} tags checked: `Rule::ALL` or the ceremony parser lost tags"
    );
}
