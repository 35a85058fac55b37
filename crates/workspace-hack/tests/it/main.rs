//! The job of this crate, checked: a single-package build resolves every dependency with the
//! features the whole-workspace test build gives it, so neither build invalidates the other's
//! compiled burn stack. Fails when a new dependency (or a dev-dependency of any member) turns on
//! a feature that this crate's `Cargo.toml` does not also ask for; the message names the crate
//! and the features to add there.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

/// `name version` -> the union of its enabled features, from `cargo tree -e features` output
/// printed as `{p} {f}` without prefixes.
fn features(args: &[&str]) -> BTreeMap<String, BTreeSet<String>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .current_dir(&root)
        .args(["tree", "--offline", "--prefix", "none", "-f", "{p} {f}"])
        .args(args)
        .output()
        .expect("cargo runs");
    assert!(
        out.status.success(),
        "cargo tree {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut map: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        // Package lines are `name vX.Y.Z [(path)] [features] [(*)]`; feature-edge lines
        // (`name feature "x"`) are skipped.
        if words.len() < 2 || !words[1].starts_with('v') {
            continue;
        }
        let feats = words[2..]
            .iter()
            .rfind(|w| !w.starts_with('(') && !w.ends_with(')'))
            .map(|w| w.split(',').map(str::to_string).collect::<BTreeSet<_>>())
            .unwrap_or_default();
        map.entry(format!("{} {}", words[0], words[1]))
            .or_default()
            .extend(feats);
    }
    map
}

#[test]
fn single_package_builds_resolve_the_workspace_features() {
    let workspace = features(&["--workspace", "-e", "normal,build,dev", "-e", "features"]);
    assert!(
        workspace.keys().any(|k| k.starts_with("burn-core ")),
        "the workspace tree lists burn-core: the parsing is wrong"
    );
    for package in ["trainer", "umm-model", "reward-local", "xtask"] {
        let single = features(&["-p", package, "-e", "normal,build", "-e", "features"]);
        let differ: Vec<String> = single
            .iter()
            .filter_map(|(k, f)| {
                let w = workspace.get(k)?;
                (w != f).then(|| {
                    let missing: Vec<&String> = w.difference(f).collect();
                    format!("{k}: the workspace build adds {missing:?}")
                })
            })
            .collect();
        assert!(
            differ.is_empty(),
            "`cargo build -p {package}` would compile these with other features than the \
             workspace build (and rebuild what depends on them); ask for the features in \
             crates/workspace-hack/Cargo.toml:\n{}",
            differ.join("\n")
        );
    }
}
