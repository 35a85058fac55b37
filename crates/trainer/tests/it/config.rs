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

    // The focus keys replaced by out-of-range ones.
    let without_focus: String = c
        .to_toml()
        .lines()
        .filter(|l| !l.starts_with("gen_t_focus"))
        .map(|l| format!("{l}\n"))
        .collect();
    for (share, range) in [
        ("1.5", "[0.6, 0.95]"),
        ("0.5", "[0.9, 0.6]"),
        ("0.5", "[0.0, 0.5]"),
    ] {
        let focus = without_focus.replace(
            "[train]",
            &format!("[train]\ngen_t_focus = {share}\ngen_t_focus_range = {range}"),
        );
        let e = PretrainConfig::from_toml(&focus).unwrap_err().to_string();
        assert!(e.contains("train.gen_t_focus") && !e.contains('\n'), "{e}");
    }
}

/// `--preset tiny` is the shipped model's recipe; the first base model's recipe (the tiny model
/// with the default schedule and mixture, 8,500 steps) and the third's (both batches on every
/// step, 10,500 steps) are kept as files.
#[test]
fn the_tiny_preset_is_the_shipped_recipe_and_v1_and_v3_are_kept_as_files() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let tiny = PretrainConfig::for_preset("tiny").unwrap();
    let file = PretrainConfig::from_file(&root.join("configs/pretrain/tiny.toml")).unwrap();
    assert_eq!(tiny, file);
    assert_eq!(tiny.model, umm_model::UmmConfig::tiny());
    assert!(tiny.train.und_patch_words > 0.0 && tiny.mix.presence_alike);
    assert!(tiny.train.und_patch_attrs && tiny.train.und_step_share.is_some());
    let v3 = PretrainConfig::from_file(&root.join("configs/pretrain/tiny-v3.toml")).unwrap();
    assert_eq!((v3.train.steps, v3.train.und_step_share), (10_500, None));
    assert_eq!(v3.model, tiny.model);
    let v3_split = TrainConfig {
        steps: tiny.train.steps,
        und_patch_attrs: true,
        und_step_share: tiny.train.und_step_share,
        gen_t_focus: tiny.train.gen_t_focus,
        gen_t_focus_range: tiny.train.gen_t_focus_range,
        checkpoint_every: tiny.train.checkpoint_every,
        ..v3.train.clone()
    };
    assert_eq!(
        v3_split, tiny.train,
        "tiny.toml is tiny-v3.toml with the step split, the patch words and the time focus"
    );
    assert!(v3.mix.gen_sources["single"] < tiny.mix.gen_sources["single"]);
    assert_eq!(v3.mix.gen_sources.len(), tiny.mix.gen_sources.len());
    let v1 = PretrainConfig::from_file(&root.join("configs/pretrain/tiny-v1.toml")).unwrap();
    let old = PretrainConfig {
        model: umm_model::UmmConfig::tiny(),
        train: TrainConfig {
            steps: 8500,
            ..TrainConfig::default()
        },
        mix: trainer::data::MixConfig::default(),
    };
    assert_eq!(v1, old);

    // The second stage continues the tiny run: same model and data mixture, its own seed,
    // three quarters understanding steps.
    let stage2 =
        PretrainConfig::from_file(&root.join("configs/pretrain/tiny-stage2.toml")).unwrap();
    assert_eq!((&stage2.model, &stage2.mix), (&tiny.model, &tiny.mix));
    assert_eq!(
        stage2.train.init.as_deref(),
        Some(std::path::Path::new("runs/base-tiny/model.safetensors"))
    );
    assert_ne!(stage2.train.seed, tiny.train.seed);
    assert_eq!(
        (stage2.train.steps, stage2.train.und_step_share),
        (2_000, Some(0.75))
    );
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

/// Every pretraining configuration kept under configs/pretrain (probes included) still reads:
/// a file a README paragraph points to must run as written.
#[test]
fn every_kept_pretraining_config_reads() {
    fn walk(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "toml") {
                out.push(p);
            }
        }
    }
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs/pretrain");
    let mut files = Vec::new();
    walk(&root, &mut files);
    assert!(files.len() >= 10, "{files:?}");
    for f in &files {
        if let Err(e) = PretrainConfig::from_file(f) {
            panic!("{}: {e}", f.display());
        }
    }
    // The position probes switch the side words on, and one of them the 2D code.
    let sides = PretrainConfig::from_file(&root.join("probe-positions/stage3-sides.toml")).unwrap();
    assert!(sides.train.und_patch_sides && sides.mix.und_kinds["position"] == 5.0);
    let only = PretrainConfig::from_file(&root.join("probe-positions/relation-only.toml")).unwrap();
    assert!(only.model.und_pos_2d);
}
