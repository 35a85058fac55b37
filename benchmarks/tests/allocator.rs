//! `trainer::device::keep_freed_memory` (glibc's allocator keeps freed memory) removes the page
//! faults that sampling otherwise pays on every freshly mapped activation: `burn-speed sample`
//! on flex counts the process's minor page faults during its timed batch, once with glibc's
//! defaults (`SRUM_MALLOC_DEFAULTS=1`) and once with the setting. Linux with glibc only.

use std::process::Command;

/// The `minor_faults` of one small `burn-speed sample` run (8 images, 4 Euler steps).
fn sample_faults(glibc_defaults: bool) -> Option<u64> {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_burn-speed"));
    cmd.args([
        "sample",
        "--device",
        "cpu",
        "--batch",
        "8",
        "--euler-steps",
        "4",
        "--warmup",
        "1",
        "--reps",
        "1",
    ]);
    if glibc_defaults {
        cmd.env("SRUM_MALLOC_DEFAULTS", "1");
    } else {
        cmd.env_remove("SRUM_MALLOC_DEFAULTS");
    }
    let out = cmd.output().expect("burn-speed runs");
    assert!(
        out.status.success(),
        "burn-speed failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON line");
    v["minor_faults"].as_u64()
}

#[test]
fn keeping_freed_memory_removes_the_samplers_page_faults() {
    if !cfg!(all(target_os = "linux", target_env = "gnu")) {
        eprintln!("SKIPPED: the allocator setting is glibc's");
        return;
    }
    let (Some(defaults), Some(kept)) = (sample_faults(true), sample_faults(false)) else {
        eprintln!("SKIPPED: no /proc/self/stat");
        return;
    };
    // Measured here: about 21,000 faults with glibc's defaults, 0 with the setting.
    assert!(
        defaults > 2_000,
        "glibc's defaults gave only {defaults} faults: the test no longer measures anything"
    );
    assert!(
        kept * 20 < defaults,
        "{kept} page faults with the setting against {defaults} without"
    );
}
