use trainer::pretrain::{PretrainConfig, TrainConfig, learning_rate};

#[test]
fn run_configs_round_trip_and_bad_ones_fail_in_one_line() {
    let c = PretrainConfig::for_preset("tiny").unwrap();
    assert_eq!(PretrainConfig::from_toml(&c.to_toml()).unwrap(), c);

    let bad_preset = PretrainConfig::for_preset("huge").unwrap_err().to_string();
    assert!(bad_preset.contains("unknown preset 'huge'"), "{bad_preset}");

    let unknown = c.to_toml().replace("[train]", "[train]\nbatch = 3");
    let e = PretrainConfig::from_toml(&unknown).unwrap_err().to_string();
    assert!(
        e.contains("unknown field `batch`") && !e.contains('\n'),
        "{e}"
    );

    let malformed = c.to_toml().replace("steps = ", "steps = = ");
    let e = PretrainConfig::from_toml(&malformed)
        .unwrap_err()
        .to_string();
    assert!(!e.is_empty() && !e.contains('\n'), "{e}");

    let zero = c.to_toml().replace("lr = ", "lr = 0.0 #");
    let e = PretrainConfig::from_toml(&zero).unwrap_err().to_string();
    assert!(e.contains("train.lr"), "{e}");
}

#[test]
fn schedule_warms_up_then_decays_to_the_floor() {
    let t = TrainConfig {
        steps: 1000,
        warmup_steps: 100,
        lr: 1e-3,
        min_lr_ratio: 0.1,
        ..TrainConfig::default()
    };
    assert!((learning_rate(&t, 0) - 1e-5).abs() < 1e-12);
    assert!((learning_rate(&t, 99) - 1e-3).abs() < 1e-12);
    // Half-way through the decay: the midpoint of peak and floor.
    assert!((learning_rate(&t, 550) - 0.55e-3).abs() < 1e-9);
    assert!((learning_rate(&t, 1000) - 1e-4).abs() < 1e-12);
    let lrs: Vec<f64> = (100..1000).map(|s| learning_rate(&t, s)).collect();
    assert!(lrs.windows(2).all(|w| w[1] <= w[0]));
}
