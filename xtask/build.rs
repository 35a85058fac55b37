//! Records the commit the xtask binary is built from (`SRUM_BUILD_COMMIT`), so a long grid run
//! that outlives later commits still writes the commit of the code that produced its rows.
//! `-dirty` is appended when code or configuration differed from that commit at build time.

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    // From the workspace root, whatever the build's working directory.
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let o = Command::new("git")
        .arg("-C")
        .arg(root)
        .args(args)
        .output()
        .ok()?;
    o.status
        .success()
        .then(|| String::from_utf8_lossy(&o.stdout).trim().to_string())
}

fn main() {
    let commit = git(&["rev-parse", "--short", "HEAD"]).unwrap_or_else(|| "unknown".into());
    // Only what changes results counts: code, manifests, configurations.
    let paths = [
        "crates",
        "xtask",
        "benchmarks",
        "configs",
        "Cargo.toml",
        "Cargo.lock",
    ];
    let mut args = vec!["status", "--porcelain", "--untracked-files=no", "--"];
    args.extend(paths);
    let dirty = git(&args).is_some_and(|s| !s.is_empty());
    let tag = if dirty {
        format!("{commit}-dirty")
    } else {
        commit
    };
    println!("cargo:rustc-env=SRUM_BUILD_COMMIT={tag}");
    // A commit moves the branch's ref file (a directory's mtime would not change).
    let mut watch = vec!["../.git/HEAD".to_string(), "../.git/index".to_string()];
    if let Some(r) = git(&["symbolic-ref", "-q", "HEAD"]) {
        watch.push(format!("../.git/{r}"));
    }
    for p in watch {
        println!("cargo:rerun-if-changed={p}");
    }
}
