//! SRUM post-training: a micro round end to end, the SFT baseline, the divergence guard, and a
//! run killed with SIGKILL and resumed ending with the same weights as an unbroken run.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use burn::prelude::*;
use trainer::srum::{
    Method, Scope, SrumConfig, SrumOptions, SrumRun, batch_indices, run, training_prompts,
};
use umm_model::checkpoint;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("srum-post-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// A round small enough for CI: 6 prompts, 2-step sampler, 6 training steps of batch 4.
fn micro(method: Method) -> SrumConfig {
    let mut c = SrumConfig {
        method,
        base: root().join("datasets/checkpoints/base-tiny.safetensors"),
        ..SrumConfig::default()
    };
    c.prompts.split = root().join("datasets/splits/train.tsv");
    c.prompts.count = 6;
    c.sampler.steps = 2;
    c.train.steps_per_round = 6;
    c.train.batch = 4;
    c.train.warmup_steps = 2;
    c.train.lr = 1e-3;
    c.train.checkpoint_every = 2;
    c.train.log_every = 2;
    c.samples.prompts = vec!["a red circle".into(), "two blue squares".into()];
    c.samples.images_per_prompt = 2;
    c
}

fn weights(path: &Path) -> Vec<f32> {
    let (m, _) = checkpoint::load(path, &Device::flex()).unwrap();
    let mut out = Vec::new();
    struct Collect<'a>(&'a mut Vec<f32>);
    impl burn::module::ModuleVisitor for Collect<'_> {
        fn visit_float<const D: usize>(&mut self, p: &burn::module::Param<Tensor<D>>) {
            self.0.extend(
                p.val()
                    .into_data()
                    .convert::<f32>()
                    .try_to_vec::<f32>()
                    .unwrap(),
            );
        }
    }
    burn::module::Module::visit(&m, &mut Collect(&mut out));
    out
}

fn quiet() -> SrumOptions {
    SrumOptions::default()
}

#[test]
fn a_micro_srum_round_writes_a_complete_run_folder() {
    let cfg = micro(Method::Srum);
    let dir = tmp("micro");
    let out = run(&cfg, &dir, &Device::flex(), &quiet()).unwrap();
    let r = SrumRun(dir.clone());
    for p in [
        r.config(),
        r.metrics(),
        r.rounds_csv(),
        r.round(0).join("samples.png"),
        r.round(1).join("samples.png"),
        r.round(1).join("overlays.png"),
        r.round(1).join("candidates.jsonl"),
        r.round(1).join("stats.json"),
        r.round_model(1),
        r.final_model(),
    ] {
        assert!(p.exists(), "{} missing", p.display());
    }
    // config.toml reads back as the configuration that ran.
    assert_eq!(SrumConfig::from_file(&r.config()).unwrap(), cfg);
    // One candidate per prompt, each a PNG with its token weights (64 = 8 x 8 tokens).
    let lines: Vec<serde_json::Value> =
        std::fs::read_to_string(r.round(1).join("candidates.jsonl"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
    assert_eq!(lines.len(), 6);
    for l in &lines {
        let w = l["token_weights"].as_array().unwrap();
        assert_eq!(w.len(), 64);
        assert!(w.iter().all(|x| (0.0..=1.0).contains(&x.as_f64().unwrap())));
        assert!(
            r.round(1)
                .join("candidates")
                .join(l["file"].as_str().unwrap())
                .exists()
        );
        let g = l["global"].as_f64().unwrap();
        assert!((-1.0..=1.0).contains(&g));
    }
    // Three metrics rows (steps 2, 4, 6); the mean reward is the mean token weight of the
    // batches, below 1 (a unit map is 1 only where everything is judged perfect).
    let csv = std::fs::read_to_string(r.metrics()).unwrap();
    let rows: Vec<Vec<f64>> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').map(|x| x.parse().unwrap()).collect())
        .collect();
    assert_eq!(
        rows.iter().map(|r| r[1] as u64).collect::<Vec<_>>(),
        [2, 4, 6]
    );
    for row in &rows {
        let (loss, weighted, plain, reward) = (row[3], row[4], row[5], row[6]);
        assert!(reward > 0.0 && reward < 1.0, "mean reward {reward}");
        assert!(weighted < plain, "weighted {weighted} vs plain {plain}");
        assert!((loss - (weighted + 0.5 * plain)).abs() < 1e-4, "{row:?}");
    }
    // Checkpoints: the newest two of the round are kept, complete.
    let ck: Vec<u64> = r.round_checkpoints(1).iter().map(|(s, _)| *s).collect();
    assert_eq!(ck, [4, 6]);
    for (_, d) in r.round_checkpoints(1) {
        for f in [
            "model.safetensors",
            "model.meta.toml",
            "optim.bpk",
            "state.toml",
        ] {
            assert!(d.join(f).exists(), "{}/{f}", d.display());
        }
    }
    let s = &out.rounds[0];
    assert_eq!((s.candidates, s.prompts), (6, 6));
    assert!(s.mean_weight.unwrap() > 0.0 && s.regions_per_image.unwrap() > 0.0);
    // Training moved the weights away from the base.
    let (a, b) = (weights(&cfg.base), weights(&r.final_model()));
    assert_eq!(a.len(), b.len());
    assert!(a.iter().zip(&b).filter(|(x, y)| x != y).count() > a.len() / 2);
    // A second run into the same folder is refused unless it resumes; resuming a finished
    // run does nothing and returns the same weights.
    let err = run(&cfg, &dir, &Device::flex(), &quiet()).unwrap_err();
    assert!(err.to_string().contains("--resume"), "{err}");
    let again = SrumOptions {
        resume: true,
        ..quiet()
    };
    let t0 = Instant::now();
    run(&cfg, &dir, &Device::flex(), &again).unwrap();
    assert!(t0.elapsed() < Duration::from_secs(20));
    assert_eq!(weights(&r.final_model()), b);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn sft_uses_unit_weights_and_gen_expert_scope_keeps_understanding_fixed() {
    let mut cfg = micro(Method::Sft);
    cfg.train.scope = Scope::GenExpert;
    let dir = tmp("sft");
    run(&cfg, &dir, &Device::flex(), &quiet()).unwrap();
    let r = SrumRun(dir.clone());
    let csv = std::fs::read_to_string(r.metrics()).unwrap();
    for l in csv.lines().skip(1) {
        let f: Vec<f64> = l.split(',').map(|x| x.parse().unwrap()).collect();
        // SFT: every weight 1 and the loss is the plain loss.
        assert_eq!(f[6], 1.0);
        assert!((f[3] - f[5]).abs() < 1e-6);
    }
    // No rewards were computed.
    let first = std::fs::read_to_string(r.round(1).join("candidates.jsonl")).unwrap();
    let rec: serde_json::Value = serde_json::from_str(first.lines().next().unwrap()).unwrap();
    assert!(rec["token_weights"].is_null() && rec["global"].is_null());
    // Only the generation side moved: the understanding answers are unchanged, bit for bit.
    let device = Device::flex();
    let (base, _) = checkpoint::load(&cfg.base, &device).unwrap();
    let (tuned, meta) = checkpoint::load(&r.final_model(), &device).unwrap();
    let tok = umm_model::WordTokenizer::compworld();
    let img = compworld::Image::filled(32, 32, [0.9, 0.2, 0.2]);
    let q = vec![("what colour is the circle ?".to_string(), img)];
    let a = umm_model::understand::yes_no(&base, &meta.config, &tok, &q, &device).unwrap();
    let b = umm_model::understand::yes_no(&tuned, &meta.config, &tok, &q, &device).unwrap();
    assert_eq!(a, b);
    let moved = weights(&cfg.base)
        .iter()
        .zip(weights(&r.final_model()))
        .filter(|(x, y)| **x != *y)
        .count();
    assert!(moved > 1000, "{moved} weights moved");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_non_finite_loss_stops_the_run_and_keeps_the_last_good_checkpoint() {
    let cfg = micro(Method::Srum);
    let dir = tmp("nan");
    let opts = SrumOptions {
        poison_step: Some(3),
        ..quiet()
    };
    let err = run(&cfg, &dir, &Device::flex(), &opts)
        .unwrap_err()
        .to_string();
    assert!(err.contains("diverged") && err.contains("step 3"), "{err}");
    let r = SrumRun(dir.clone());
    let ck: Vec<u64> = r.round_checkpoints(1).iter().map(|(s, _)| *s).collect();
    assert_eq!(ck, [2], "only the checkpoint before the bad step is kept");
    assert!(!r.final_model().exists());
    // Resuming (without the fault) finishes the run from that checkpoint.
    let resumed = SrumOptions {
        resume: true,
        ..quiet()
    };
    run(&cfg, &dir, &Device::flex(), &resumed).unwrap();
    assert!(r.final_model().exists());
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn prompts_come_from_a_training_split_evenly_over_categories() {
    let mut cfg = micro(Method::Srum);
    cfg.prompts.count = 24;
    let p = training_prompts(&cfg).unwrap();
    assert_eq!(p.len(), 24);
    let mut per: std::collections::BTreeMap<&str, usize> = Default::default();
    for x in &p {
        *per.entry(x.category.name()).or_default() += 1;
    }
    assert_eq!(per.len(), 12, "{per:?}");
    assert!(per.values().all(|&n| n == 2), "{per:?}");
    // Another seed, another draw.
    cfg.train.seed = 1;
    assert_ne!(
        training_prompts(&cfg)
            .unwrap()
            .iter()
            .map(|x| &x.text)
            .collect::<Vec<_>>(),
        p.iter().map(|x| &x.text).collect::<Vec<_>>()
    );
    // An evaluation split is refused.
    for split in ["val", "test"] {
        cfg.prompts.split = root().join(format!("datasets/splits/{split}.tsv"));
        let e = training_prompts(&cfg).unwrap_err().to_string();
        assert!(e.contains("evaluation split"), "{e}");
    }
}

#[test]
fn every_epoch_visits_each_candidate_once() {
    let (n, batch) = (10, 4);
    let mut seen = vec![0; n];
    // Steps 0..5 cover positions 0..20: two whole epochs.
    for step in 0..5 {
        for i in batch_indices(n, batch, 3, 1, step) {
            seen[i] += 1;
        }
    }
    assert_eq!(seen, vec![2; n]);
    assert_eq!(
        batch_indices(n, batch, 3, 1, 2),
        batch_indices(n, batch, 3, 1, 2)
    );
    assert_ne!(
        batch_indices(n, batch, 3, 1, 0),
        batch_indices(n, batch, 4, 1, 0)
    );
}

#[test]
fn configs_round_trip_and_unsafe_ones_are_refused() {
    let c = SrumConfig::default();
    assert_eq!(SrumConfig::from_toml(&c.to_toml()).unwrap(), c);
    let bad = |edit: &dyn Fn(&mut SrumConfig), needle: &str| {
        let mut c = SrumConfig::default();
        edit(&mut c);
        let e = SrumConfig::from_toml(&c.to_toml()).unwrap_err().to_string();
        assert!(e.contains(needle), "{e}");
    };
    bad(&|c| c.rounds = 0, "rounds");
    bad(&|c| c.train.text_dropout = 1.0, "text_dropout");
    bad(
        &|c| {
            c.reward.map = reward_local::MapMode::Signed;
            c.reward.beta = 0.6;
        },
        "beta",
    );
    bad(&|c| c.train.lambda = -1.0, "lambda");
    bad(&|c| c.reward.keep_top = 0.0, "keep_top");
    bad(&|c| c.reward.keep_top = 1.5, "keep_top");
    bad(&|c| c.sampler.cfg_min_t = -0.5, "cfg_min_t");
    // Run folders written before `sampler.cfg_min_t` existed read as "guide every step".
    let before = c.to_toml().replace("cfg_min_t = 0.0\n", "");
    assert!(!before.contains("cfg_min_t"));
    assert_eq!(SrumConfig::from_toml(&before).unwrap(), c);
    // Run folders written before `reward.keep_top` existed read as "keep every candidate".
    let old = c.to_toml().replace("keep_top = 1.0\n", "");
    assert!(!old.contains("keep_top"));
    let mut edited = c.clone();
    edited.reward.keep_top = 0.5;
    assert_eq!(
        SrumConfig::from_toml(&edited.to_toml())
            .unwrap()
            .reward
            .keep_top,
        0.5
    );
    assert_eq!(SrumConfig::from_toml(&old).unwrap(), c);
    let e = SrumConfig::from_toml(&c.to_toml().replace("rounds = 1", "rounds = 1\nround = 2"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("unknown field") && e.contains("round"), "{e}");
}

/// Runs `srum train` in a child process and kills it with SIGKILL once `ready` holds.
fn run_and_kill(args: &[&str], ready: &dyn Fn() -> bool) -> bool {
    let mut child = Command::new(env!("CARGO_BIN_EXE_srum"))
        .args(args)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "srum {args:?} failed");
            return false; // finished before the kill point
        }
        if ready() {
            child.kill().unwrap(); // SIGKILL
            child.wait().unwrap();
            return true;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(300),
            "srum {args:?} hangs"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn a_run_killed_with_sigkill_and_resumed_ends_with_the_same_weights() {
    let mut cfg = micro(Method::Srum);
    cfg.prompts.count = 12;
    cfg.train.steps_per_round = 16;
    cfg.train.checkpoint_every = 1;
    cfg.rounds = 2;
    let base = tmp("kill");
    std::fs::create_dir_all(&base).unwrap();
    let config = base.join("config.toml");
    std::fs::write(&config, cfg.to_toml()).unwrap();
    let (whole, killed) = (base.join("whole"), base.join("killed"));
    let c = config.to_str().unwrap();
    let status = Command::new(env!("CARGO_BIN_EXE_srum"))
        .args(["train", "--config", c, "--out", whole.to_str().unwrap()])
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());

    // Kill 1: while the first round's candidates are being made (round-0 grid written, no
    // candidates.jsonl yet). Kill 2: in the middle of round 1's training. Kill 3: in round 2.
    let k = SrumRun(killed.clone());
    let kd = killed.to_str().unwrap();
    let first = ["train", "--config", c, "--out", kd];
    let resume = ["train", "--resume", kd];
    let k1 = k.clone();
    let hit1 = run_and_kill(&first, &|| k1.round(0).join("samples.png").exists());
    let k2 = k.clone();
    let hit2 = run_and_kill(&resume, &|| {
        k2.round_checkpoints(1).iter().any(|(s, _)| *s >= 7)
    });
    let k3 = k.clone();
    let hit3 = run_and_kill(&resume, &|| {
        k3.round_checkpoints(2).iter().any(|(s, _)| *s >= 5)
    });
    let status = Command::new(env!("CARGO_BIN_EXE_srum"))
        .args(resume)
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    assert!(hit1 && hit2 && hit3, "kills landed: {hit1} {hit2} {hit3}");
    let (a, b) = (
        weights(&whole.join("model.safetensors")),
        weights(&killed.join("model.safetensors")),
    );
    assert_eq!(a.len(), b.len());
    let differ = a.iter().zip(&b).filter(|(x, y)| x != y).count();
    assert_eq!(differ, 0, "{differ} of {} weights differ", a.len());
    // The loss curves agree too.
    let losses = |d: &Path| -> Vec<String> {
        std::fs::read_to_string(d.join("metrics.csv"))
            .unwrap()
            .lines()
            .map(|l| l.split(',').take(8).collect::<Vec<_>>().join(","))
            .collect()
    };
    assert_eq!(losses(&whole), losses(&killed));
    std::fs::remove_dir_all(base).unwrap();
}

/// Every tensor of a checkpoint by name.
fn named(path: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    let (m, _) = checkpoint::load(path, &Device::flex()).unwrap();
    burn::store::ModuleSnapshot::collect(&m, None, None, false)
        .into_iter()
        .map(|t| (t.name.clone(), t.to_bytes().unwrap().to_vec()))
        .collect()
}

#[test]
fn lora_moves_only_the_generation_expert_matrices_and_resumes_exactly() {
    let mut cfg = micro(Method::Srum);
    cfg.train.scope = Scope::GenExpert;
    cfg.train.lora_rank = 4;
    let whole = tmp("lora-whole");
    run(&cfg, &whole, &Device::flex(), &quiet()).unwrap();
    // The same run stopped by a bad step 3, resumed from its step-2 checkpoint (adapters and
    // their optimiser state come back from the checkpoint).
    let broken = tmp("lora-broken");
    let poison = SrumOptions {
        poison_step: Some(3),
        ..quiet()
    };
    assert!(run(&cfg, &broken, &Device::flex(), &poison).is_err());
    let resume = SrumOptions {
        resume: true,
        ..quiet()
    };
    run(&cfg, &broken, &Device::flex(), &resume).unwrap();
    let (a, b) = (SrumRun(whole.clone()), SrumRun(broken.clone()));
    assert_eq!(weights(&a.final_model()), weights(&b.final_model()));
    // The final model is a plain checkpoint (adapters merged) in which exactly the four
    // matrices of every layer's generation expert moved.
    let (before, after) = (named(&cfg.base), named(&a.final_model()));
    assert_eq!(
        before.keys().collect::<Vec<_>>(),
        after.keys().collect::<Vec<_>>()
    );
    let moved: Vec<&String> = before
        .iter()
        .filter(|(k, v)| after[*k] != **v)
        .map(|(k, _)| k)
        .collect();
    let layers = checkpoint::load_meta(&cfg.base).unwrap().config.n_layers;
    assert_eq!(moved.len(), 4 * layers, "{moved:?}");
    assert!(
        moved.iter().all(|k| k.contains("gen_expert")
            && k.ends_with(".weight")
            && ["qkv", "out", "fc1", "fc2"]
                .iter()
                .any(|m| k.contains(&format!(".{m}.")))),
        "{moved:?}"
    );
    // LoRA adapts the generation expert only, so it needs scope gen-expert.
    cfg.train.scope = Scope::All;
    assert!(
        cfg.validate()
            .unwrap_err()
            .to_string()
            .contains("gen-expert")
    );
    for d in [whole, broken] {
        std::fs::remove_dir_all(d).unwrap();
    }
}

#[test]
fn candidates_from_renders_are_compworlds_true_renders_of_the_prompts() {
    // The diagnostic source: no sampling, each candidate is the prompt's scene drawn with the
    // candidate's seed and rendered, so training on it is supervised training on ground truth.
    let mut cfg = micro(Method::Sft);
    cfg.candidates = trainer::srum::CandidateSource::Renders;
    cfg.train.steps_per_round = 2;
    cfg.train.checkpoint_every = 1;
    let dir = tmp("renders");
    run(&cfg, &dir, &Device::flex(), &quiet()).unwrap();
    let r = SrumRun(dir.clone());
    assert!(
        std::fs::read_to_string(r.config())
            .unwrap()
            .contains("candidates = \"renders\"")
    );
    let text = std::fs::read_to_string(r.round(1).join("candidates.jsonl")).unwrap();
    let mut seen = 0;
    for l in text.lines() {
        let rec: serde_json::Value = serde_json::from_str(l).unwrap();
        let prompt = compworld::Prompt::parse(rec["prompt"].as_str().unwrap()).unwrap();
        let mut rng = compworld::Rng::new(rec["seed"].as_u64().unwrap());
        let scene = compworld::sample_scene(&prompt.meaning, &prompt.text, &mut rng).unwrap();
        let want = compworld::render(&scene, 32).quantized();
        let file = r
            .round(1)
            .join("candidates")
            .join(rec["file"].as_str().unwrap());
        let got = compworld::Image::load_png(&file, 32).unwrap();
        assert_eq!(got.to_chw(), want.to_chw(), "{}", rec["prompt"]);
        assert!(rec["kept"].as_bool().unwrap() && rec["error"].is_null());
        seen += 1;
    }
    assert_eq!(seen, 6);
    std::fs::remove_dir_all(dir).unwrap();
}
