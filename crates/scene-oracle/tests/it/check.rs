//! A small, fixed-seed run of the acceptance check (the full 2,000-prompt run is
//! `cargo xtask oracle-check`, committed as results/oracle-check.json). The bars here sit a
//! little under the acceptance bars because 240 prompts are noisier than 2,000.

#[test]
fn oracle_check_on_240_prompts() {
    let r = scene_oracle::check::oracle_check(11, 240, 32);
    eprintln!(
        "true {:.4} (min cat {:.4}), violation lower {:.4} below-half {:.4}, noisy {:.4}",
        r.true_mean,
        r.true_min_category,
        r.violation_lower_frac,
        r.violation_below_half_frac,
        r.noisy_mean
    );
    assert!(r.true_mean >= 0.98, "true renders: {}", r.true_mean);
    assert!(
        r.true_min_category >= 0.9,
        "worst category: {}",
        r.true_min_category
    );
    assert!(
        r.violation_lower_frac >= 0.97,
        "violations lower: {}",
        r.violation_lower_frac
    );
    assert!(r.noisy_mean >= 0.93, "blur + noise: {}", r.noisy_mean);
    // Violations of attribute, relation and presence constraints land near zero.
    for kind in ["colour_swap", "shape_change", "object_missing"] {
        if let Some(g) = r.per_violation_kind.get(kind) {
            assert!(
                g.violation_below_half_frac >= 0.95,
                "{kind}: {}",
                g.violation_below_half_frac
            );
        }
    }
}
