//! The documentation names every rule tag the code defines: a caller matches on tags, so an
//! undocumented one is a defect. Reads the `rule` modules' sources and the rule tables of
//! docs/protocol.md and docs/policy.md.

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
    let docs = repo("docs/protocol.md") + &repo("docs/policy.md");
    let mut checked = 0;
    for (file, module) in [
        ("core/src/refusal.rs", "rule"),
        ("signer/src/node.rs", "link_rule"),
        ("coordinator/src/state.rs", "coord_rule"),
        ("cli/src/ceremony/mod.rs", "rule"),
    ] {
        let tags = tags_of(&repo(file), module);
        assert!(!tags.is_empty(), "{file}: no tags found in `{module}`");
        for tag in tags {
            // A prefix (`policy-velocity-`) is documented as the family it starts.
            let documented = if tag.ends_with('-') {
                docs.contains(&format!("`{tag}"))
            } else {
                docs.contains(&format!("`{tag}`"))
            };
            assert!(documented, "{file}: rule tag `{tag}` is in no rule table");
            checked += 1;
        }
    }
    assert!(
        checked > 50,
        "only {checked} tags found: the parser no longer reads the modules"
    );
}
