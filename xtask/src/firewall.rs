//! The honesty firewall: only the benchmark crates (`bench-*`), `scene-oracle` itself and
//! `xtask` may depend on `scene-oracle`, directly or through other workspace crates. Everything
//! that trains or rewards a model must stay blind to the judge.
//!
//! The check reads every workspace crate's `Cargo.toml` (all dependency tables, including dev-
//! and build-dependencies and target-specific ones) and follows path/workspace dependencies
//! between workspace crates transitively.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use anyhow::{Context, Result};

/// The judge.
pub const ORACLE: &str = "scene-oracle";

/// Whether a crate is allowed to see the judge.
pub fn allowed(name: &str) -> bool {
    name == ORACLE || name == "xtask" || name.starts_with("bench-")
}

/// Workspace crate name -> names of the dependencies it declares (any table).
pub type Graph = BTreeMap<String, BTreeSet<String>>;

fn deps_of(manifest: &toml::Table) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut take = |t: &toml::Table| {
        for key in ["dependencies", "dev-dependencies", "build-dependencies"] {
            if let Some(deps) = t.get(key).and_then(|d| d.as_table()) {
                for (name, spec) in deps {
                    // `foo = { package = "bar" }` renames: the real crate is `bar`.
                    let real = spec.get("package").and_then(|p| p.as_str()).unwrap_or(name);
                    out.insert(real.to_string());
                }
            }
        }
    };
    take(manifest);
    if let Some(targets) = manifest.get("target").and_then(|t| t.as_table()) {
        for cfg in targets.values().filter_map(|v| v.as_table()) {
            take(cfg);
        }
    }
    out
}

/// Reads the dependency graph of the workspace crates under `root/crates` and `root/xtask`
/// (and `root/benchmarks` when present).
pub fn workspace_graph(root: &Path) -> Result<Graph> {
    let mut dirs = Vec::new();
    let crates = root.join("crates");
    for entry in
        std::fs::read_dir(&crates).with_context(|| format!("reading {}", crates.display()))?
    {
        dirs.push(entry?.path());
    }
    for extra in ["xtask", "benchmarks"] {
        if root.join(extra).join("Cargo.toml").exists() {
            dirs.push(root.join(extra));
        }
    }
    let mut graph = Graph::new();
    for dir in dirs {
        let path = dir.join("Cargo.toml");
        if !path.exists() {
            continue;
        }
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let manifest: toml::Table =
            toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        let name = manifest
            .get("package")
            .and_then(|p| p.get("name"))
            .and_then(|n| n.as_str())
            .with_context(|| format!("{}: no [package] name", path.display()))?
            .to_string();
        graph.insert(name, deps_of(&manifest));
    }
    Ok(graph)
}

/// Crates that reach the oracle but may not, each with the path by which it does.
pub fn violations(graph: &Graph) -> Vec<(String, Vec<String>)> {
    let mut out = Vec::new();
    for start in graph.keys().filter(|n| !allowed(n)) {
        // Depth-first search for a path to the oracle through workspace crates.
        let mut stack = vec![vec![start.clone()]];
        let mut seen = BTreeSet::new();
        while let Some(path) = stack.pop() {
            let last = path.last().unwrap().clone();
            if !seen.insert(last.clone()) {
                continue;
            }
            for dep in graph.get(&last).into_iter().flatten() {
                let mut p = path.clone();
                p.push(dep.clone());
                if dep == ORACLE {
                    out.push((start.clone(), p));
                    stack.clear();
                    break;
                }
                if graph.contains_key(dep) {
                    stack.push(p);
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(edges: &[(&str, &[&str])]) -> Graph {
        edges
            .iter()
            .map(|(n, ds)| (n.to_string(), ds.iter().map(|d| d.to_string()).collect()))
            .collect()
    }

    #[test]
    fn finds_direct_and_transitive_paths() {
        let graph = g(&[
            ("scene-oracle", &["compworld"]),
            ("compworld", &[]),
            ("bench-compbench", &["scene-oracle"]),
            ("reward-local", &["umm-model"]),
            ("umm-model", &["helper"]),
            ("helper", &["scene-oracle"]),
            ("trainer", &["reward-local", "serde"]),
        ]);
        let v = violations(&graph);
        let names: Vec<&str> = v.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["helper", "reward-local", "trainer", "umm-model"]);
        let (_, path) = v.iter().find(|(n, _)| n == "trainer").unwrap();
        assert_eq!(
            path,
            &[
                "trainer",
                "reward-local",
                "umm-model",
                "helper",
                "scene-oracle"
            ]
        );
    }

    #[test]
    fn reads_renamed_and_dev_dependencies() {
        let m: toml::Table = toml::from_str(
            "[dev-dependencies]\njudge = { package = \"scene-oracle\", path = \"x\" }\n\
             [target.'cfg(unix)'.dependencies]\nfoo = \"1\"\n",
        )
        .unwrap();
        let d = deps_of(&m);
        assert!(d.contains("scene-oracle") && d.contains("foo"), "{d:?}");
    }

    #[test]
    fn this_workspace_keeps_the_firewall() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let graph = workspace_graph(root).unwrap();
        assert!(
            graph.contains_key("compworld") && graph.contains_key(ORACLE),
            "{graph:?}"
        );
        let v = violations(&graph);
        assert!(v.is_empty(), "crates that reach the oracle: {v:?}");
    }
}
