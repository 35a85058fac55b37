//! Integration tests of the CompBench-style harness.

mod harness;
mod layout;
mod official_files;

use std::path::PathBuf;

/// `../shared/datasets` next to the workspace (or `$SRUM_SHARED/datasets`), or `None` with a
/// line saying the test skipped: a fresh clone has no `../shared`.
pub fn shared_datasets(test: &str) -> Option<PathBuf> {
    let root = std::env::var_os("SRUM_SHARED").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared"),
        PathBuf::from,
    );
    let d = root.join("datasets");
    if d.is_dir() {
        Some(d)
    } else {
        println!(
            "SKIPPED {test}: {} not found (set SRUM_SHARED to the folder holding datasets/)",
            d.display()
        );
        None
    }
}

/// A fresh empty folder under the target directory.
pub fn scratch(name: &str) -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}
