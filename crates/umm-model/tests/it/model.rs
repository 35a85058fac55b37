use burn::module::Module;
use burn::optim::{AdamWConfig, GradientsParams};
use burn::prelude::*;
use burn::tensor::{Distribution, TensorData};
use umm_model::tokenizer::{ANS, BOS, EOS, PAD};
use umm_model::{Tokenizer, Umm, UmmConfig, UmmInput, WordTokenizer, patchify, unpatchify};

fn text(rows: &[Vec<u32>], device: &Device) -> Tensor<2, Int> {
    let t = rows[0].len();
    let flat: Vec<i64> = rows.iter().flatten().map(|&i| i64::from(i)).collect();
    Tensor::from_data(TensorData::new(flat, [rows.len(), t]), device)
}

fn ids(s: &str) -> Vec<u32> {
    WordTokenizer::compworld().encode(s).unwrap()
}

fn randn(shape: [usize; 3], device: &Device) -> Tensor<3> {
    Tensor::random(shape, Distribution::Normal(0.0, 1.0), device)
}

fn max_diff<const D: usize>(a: Tensor<D>, b: Tensor<D>) -> f32 {
    (a - b).abs().max().into_scalar::<f32>()
}

struct Setup {
    model: Umm,
    text: Tensor<2, Int>,
    und: Tensor<3>,
    gen_img: Tensor<3>,
    time: Tensor<1>,
    device: Device,
}

fn setup() -> Setup {
    let device = Device::flex();
    let c = UmmConfig::micro();
    let model = Umm::init(&c, &device);
    let text = text(
        &[
            ids("a red circle on the left of a square"),
            ids("a small red circle inside a large blue square"),
        ],
        &device,
    );
    let n = c.image_tokens();
    Setup {
        model,
        text,
        und: randn([2, n, c.patch_dim()], &device),
        gen_img: randn([2, n, c.patch_dim()], &device),
        time: Tensor::from_data(TensorData::new(vec![0.3f32, 0.8], [2]), &device),
        device,
    }
}

fn run(
    s: &Setup,
    text: Tensor<2, Int>,
    und: Tensor<3>,
    gen_img: Tensor<3>,
) -> (Tensor<3>, Tensor<3>) {
    let out = s.model.forward(UmmInput {
        text,
        und_image: Some(und),
        gen_image: Some((gen_img, s.time.clone())),
    });
    (out.logits, out.velocity.unwrap())
}

#[test]
fn shapes() {
    let s = setup();
    let c = UmmConfig::micro();
    let (logits, vel) = run(&s, s.text.clone(), s.und.clone(), s.gen_img.clone());
    assert_eq!(logits.dims(), [2, 9, c.vocab_size]);
    assert_eq!(vel.dims(), [2, c.image_tokens(), c.patch_dim()]);
    // Text alone works too.
    let out = s.model.forward(UmmInput {
        text: s.text.clone(),
        und_image: None,
        gen_image: None,
    });
    assert_eq!(out.logits.dims(), [2, 9, c.vocab_size]);
    assert!(out.velocity.is_none());
}

#[test]
fn the_attention_mask_holds() {
    let s = setup();
    let (logits, vel) = run(&s, s.text.clone(), s.und.clone(), s.gen_img.clone());

    // Text is causal: changing token 5 leaves positions 0..5 alone and changes position 5.
    let mut rows = vec![
        ids("a red circle on the left of a square"),
        ids("a small red circle inside a large blue square"),
    ];
    rows[0][5] = WordTokenizer::compworld().id("right").unwrap();
    let (l2, v2) = run(&s, text(&rows, &s.device), s.und.clone(), s.gen_img.clone());
    assert!(
        max_diff(
            logits.clone().slice([0..1, 0..5]),
            l2.clone().slice([0..1, 0..5])
        ) < 1e-5
    );
    assert!(max_diff(logits.clone().slice([0..1, 5..6]), l2.slice([0..1, 5..6])) > 1e-4);
    // Generation sees the text.
    assert!(max_diff(vel.clone(), v2) > 1e-4);

    // Text never sees the generation tokens; generation sees its own tokens.
    let (l3, v3) = run(
        &s,
        s.text.clone(),
        s.und.clone(),
        randn(s.gen_img.dims(), &s.device),
    );
    assert!(max_diff(logits.clone(), l3) < 1e-5);
    assert!(max_diff(vel.clone(), v3) > 1e-4);

    // Text sees the understanding image. (Generation does not attend to it directly, but
    // from the second layer on it sees text that has; the mask itself is checked below.)
    let (l4, _) = run(
        &s,
        s.text.clone(),
        randn(s.und.dims(), &s.device),
        s.gen_img.clone(),
    );
    assert!(max_diff(logits.clone(), l4) > 1e-4);

    // Padding at the end changes nothing that came before it, nor the generation.
    let padded: Vec<Vec<u32>> = [
        ids("a red circle on the left of a square"),
        ids("a small red circle inside a large blue square"),
    ]
    .into_iter()
    .map(|mut r| {
        r.extend([PAD, PAD, PAD]);
        r
    })
    .collect();
    let (l5, v5) = run(
        &s,
        text(&padded, &s.device),
        s.und.clone(),
        s.gen_img.clone(),
    );
    assert!(max_diff(logits, l5.slice([0..2, 0..9])) < 1e-5);
    assert!(max_diff(vel, v5) < 1e-5);
}

#[test]
fn the_mask_written_out() {
    // Text [w, w, pad], two understanding tokens, two generation tokens. 1 = may attend.
    let device = Device::flex();
    let t = text(&[vec![7, 8, PAD]], &device);
    let bias = umm_model::model::attention_bias(&t, 2, 2).reshape([7, 7]);
    let got: Vec<f32> = bias.to_data().try_to_vec::<f32>().unwrap();
    #[rustfmt::skip]
    let want = [
        // keys: t0 t1 pad u0 u1 g0 g1
        1, 0, 0, 1, 1, 0, 0, // t0: itself and the image
        1, 1, 0, 1, 1, 0, 0, // t1
        1, 1, 0, 1, 1, 0, 0, // pad (a query that nobody reads)
        0, 0, 0, 1, 1, 0, 0, // u0: the understanding image only
        0, 0, 0, 1, 1, 0, 0, // u1
        1, 1, 0, 0, 0, 1, 1, // g0: text (not padding) and the generation image
        1, 1, 0, 0, 0, 1, 1, // g1
    ];
    let got: Vec<i32> = got.iter().map(|&b| i32::from(b == 0.0)).collect();
    assert_eq!(got, want);
}

#[test]
fn the_mask_of_a_question_written_out() {
    // Text [q, <ans>, a, pad]: the question [q, <ans>] is a prefix; the answer a is causal.
    let device = Device::flex();
    let t = text(&[vec![7, ANS, 8, PAD]], &device);
    let bias = umm_model::model::attention_bias(&t, 2, 2).reshape([8, 8]);
    let got: Vec<f32> = bias.to_data().try_to_vec::<f32>().unwrap();
    #[rustfmt::skip]
    let want = [
        // keys: q ans a pad u0 u1 g0 g1
        1, 1, 0, 0, 1, 1, 0, 0, // q: the whole question (prefix) and the image
        1, 1, 0, 0, 1, 1, 0, 0, // <ans>
        1, 1, 1, 0, 1, 1, 0, 0, // a: causal
        1, 1, 1, 0, 1, 1, 0, 0, // pad
        1, 1, 0, 0, 1, 1, 0, 0, // u0: the question and the image, never the answer
        1, 1, 0, 0, 1, 1, 0, 0, // u1
        1, 1, 1, 0, 0, 0, 1, 1, // g0
        1, 1, 1, 0, 0, 0, 1, 1, // g1
    ];
    let got: Vec<i32> = got.iter().map(|&b| i32::from(b == 0.0)).collect();
    assert_eq!(got, want);
}

/// The mask's rule for one (query, key) pair, read off the module docs: the reference the
/// row-filling `attention_bias` is checked against.
fn allowed_by_rule(row: &[u32], nu: usize, q: usize, k: usize) -> bool {
    let t = row.len();
    let seg = |i: usize| usize::from(i >= t) + usize::from(i >= t + nu);
    let ans = row.iter().position(|&i| i == ANS);
    let prefix = |i: usize| ans.is_some_and(|a| i <= a);
    let allowed = match (seg(q), seg(k)) {
        (0, 0) => k <= q || (prefix(q) && prefix(k)),
        (1, 0) => prefix(k),
        (0, 1) | (1, 1) | (2, 0) | (2, 2) => true,
        _ => false,
    };
    allowed && !(k < t && row[k] == PAD)
}

#[test]
fn the_mask_follows_the_rule_for_every_pair() {
    let device = Device::flex();
    // Questions with <ans> at different places, plain prompts, padding, an empty-ish row.
    let rows = [
        vec![7, 9, ANS, 8, PAD, PAD],
        vec![ANS, 8, 9, 10, 11, PAD],
        vec![7, 8, 9, 10, 11, ANS],
        vec![7, 8, 9, PAD, PAD, PAD],
        vec![7, PAD, PAD, PAD, PAD, PAD],
    ];
    for (nu, ng) in [(3, 0), (0, 4), (2, 3), (0, 0)] {
        let t = text(&rows, &device);
        let s = 6 + nu + ng;
        let got: Vec<f32> = umm_model::model::attention_bias(&t, nu, ng)
            .to_data()
            .try_to_vec::<f32>()
            .unwrap();
        for (b, row) in rows.iter().enumerate() {
            for q in 0..s {
                for k in 0..s {
                    let open = got[(b * s + q) * s + k] == 0.0;
                    assert_eq!(
                        open,
                        allowed_by_rule(row, nu, q, k),
                        "row {b}, nu {nu}, ng {ng}, query {q}, key {k}"
                    );
                }
            }
        }
    }
}

#[test]
fn answers_never_leak_into_the_question_or_the_image() {
    let s = setup();
    let tok = WordTokenizer::compworld();
    assert_eq!(tok.id("<ans>"), Some(ANS));
    let row = |answer: &str| {
        let mut r = vec![BOS];
        r.extend(ids("is there a red circle ?"));
        r.push(ANS);
        r.extend(ids(answer));
        r.push(EOS);
        r
    };
    let (yes, no) = (row("yes"), row("no"));
    let ans = yes.iter().position(|&i| i == ANS).unwrap();
    let logits = |r: &[u32], und: Tensor<3>| {
        s.model
            .forward(UmmInput {
                text: text(&[r.to_vec()], &s.device),
                und_image: Some(und.slice_dim(0, 0..1)),
                gen_image: None,
            })
            .logits
    };
    let (ly, ln) = (logits(&yes, s.und.clone()), logits(&no, s.und.clone()));
    // Everything up to <ans> is the same whatever the answer says...
    assert!(
        max_diff(
            ly.clone().slice([0..1, 0..ans + 1]),
            ln.clone().slice([0..1, 0..ans + 1])
        ) < 1e-5
    );
    // ...and the answer's own position sees it.
    assert!(
        max_diff(
            ly.clone().slice([0..1, ans + 1..ans + 2]),
            ln.slice([0..1, ans + 1..ans + 2])
        ) > 1e-4
    );
    // The question is a prefix: a later question word changes an earlier position.
    let mut other = yes.clone();
    other[4] = tok.id("blue").unwrap();
    let lo = logits(&other, s.und.clone());
    assert!(max_diff(ly.clone().slice([0..1, 1..2]), lo.slice([0..1, 1..2])) > 1e-4);
    // The image matters to the answer.
    let li = logits(&yes, randn(s.und.dims(), &s.device));
    assert!(
        max_diff(
            ly.slice([0..1, ans..ans + 1]),
            li.slice([0..1, ans..ans + 1])
        ) > 1e-4
    );
}

#[test]
fn patches_round_trip_and_dense_is_smaller() {
    let device = Device::flex();
    let img: Tensor<4> = Tensor::random([2, 3, 32, 32], Distribution::Uniform(0.0, 1.0), &device);
    let p = patchify(img.clone(), 4);
    assert_eq!(p.dims(), [2, 64, 48]);
    assert_eq!(max_diff(unpatchify(p.clone(), 4, 32), img.clone()), 0.0);
    // Patch 0 holds the top-left 4x4 pixels, channel-major.
    let first = img.slice([0..1, 0..1, 0..4, 0..4]).reshape([16]);
    assert_eq!(
        max_diff(p.slice([0..1, 0..1, 0..16]).reshape([16]), first),
        0.0
    );

    let mot = Umm::init(&UmmConfig::tiny(), &device).num_params();
    let dense = Umm::init(
        &UmmConfig {
            dense: true,
            ..UmmConfig::tiny()
        },
        &device,
    )
    .num_params();
    assert!(
        mot > dense && mot > 1_000_000 && mot < 1_300_000,
        "MoT {mot}, dense {dense}"
    );
}

#[test]
fn a_micro_model_learns() {
    // Overfit one batch: velocity regression through every part of the model.
    let s = setup();
    let device = s.device.clone().autodiff();
    let (_, losses) = overfit(&s, Umm::init(&UmmConfig::micro(), &device), &device, true);
    assert!(losses[29] < 0.5 * losses[0], "{losses:?}");
}

/// 30 AdamW steps regressing the setup's velocity on `und * 0.5` (with the understanding image
/// in the sequence when `with_und`); the trained model and the loss of each step.
fn overfit(s: &Setup, mut model: Umm, device: &Device, with_und: bool) -> (Umm, Vec<f32>) {
    let mut optim = AdamWConfig::new().init();
    let target = s.und.clone().to_device(device) * 0.5;
    let mut losses = Vec::new();
    for _ in 0..30 {
        let out = model.forward(UmmInput {
            text: s.text.clone().to_device(device),
            und_image: with_und.then(|| s.und.clone().to_device(device)),
            gen_image: Some((
                s.gen_img.clone().to_device(device),
                s.time.clone().to_device(device),
            )),
        });
        let loss = (out.velocity.unwrap() - target.clone())
            .powf_scalar(2.0)
            .mean();
        losses.push(loss.clone().into_scalar::<f32>());
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = optim.step(3e-3, model, grads);
    }
    (model, losses)
}

#[test]
fn generation_is_seeded_and_in_range() {
    use umm_model::sampler::{SampleConfig, Solver, generate};
    let device = Device::flex();
    let c = UmmConfig::micro();
    let model = Umm::init(&c, &device);
    let tok = WordTokenizer::compworld();
    let prompts = ["a red circle", "two blue squares"];
    let cfg = SampleConfig {
        steps: 3,
        solver: Solver::Heun,
        cfg_scale: 2.0,
        cfg_min_t: 0.0,
        seed: 4,
    };
    let a = generate(&model, &c, &tok, &prompts, cfg, &device).unwrap();
    assert_eq!(a.dims(), [2, 3, 32, 32]);
    let (lo, hi) = (
        a.clone().min().into_scalar::<f32>(),
        a.clone().max().into_scalar::<f32>(),
    );
    assert!((0.0..=1.0).contains(&lo) && (0.0..=1.0).contains(&hi) && hi > lo);
    let b = generate(&model, &c, &tok, &prompts, cfg, &device).unwrap();
    assert_eq!(max_diff(a.clone(), b), 0.0);
    let other = generate(
        &model,
        &c,
        &tok,
        &prompts,
        SampleConfig { seed: 5, ..cfg },
        &device,
    )
    .unwrap();
    assert!(max_diff(a, other) > 1e-3);
    let e = generate(&model, &c, &tok, &["a red unicorn"], cfg, &device)
        .unwrap_err()
        .to_string();
    assert!(e.contains("'unicorn'"), "{e}");
}

#[test]
fn guidance_applies_only_above_its_interval() {
    // Euler, 4 steps: velocities at t = 1, 0.75, 0.5, 0.25. With cfg_min_t = 1 no step is
    // guided, which is plain conditional sampling (scale 1) exactly; with 0.6 the first two
    // are, which is neither that nor guidance everywhere.
    use umm_model::sampler::{SampleConfig, Solver, generate};
    let device = Device::flex();
    let c = UmmConfig::micro();
    let model = Umm::init(&c, &device);
    let tok = WordTokenizer::compworld();
    let prompts = ["a red circle", "two blue squares"];
    let base = SampleConfig {
        steps: 4,
        solver: Solver::Euler,
        cfg_scale: 4.0,
        cfg_min_t: 0.0,
        seed: 9,
    };
    let draw = |s: SampleConfig| generate(&model, &c, &tok, &prompts, s, &device).unwrap();
    let everywhere = draw(base);
    let nowhere = draw(SampleConfig {
        cfg_scale: 1.0,
        ..base
    });
    let never = draw(SampleConfig {
        cfg_min_t: 1.0,
        ..base
    });
    let interval = draw(SampleConfig {
        cfg_min_t: 0.6,
        ..base
    });
    assert_eq!(max_diff(never, nowhere.clone()), 0.0);
    assert!(max_diff(everywhere.clone(), nowhere.clone()) > 1e-3);
    assert!(max_diff(interval.clone(), nowhere) > 1e-4);
    assert!(max_diff(interval, everywhere) > 1e-4);
    for bad in [-0.1, 1.5, f32::NAN] {
        let e = generate(
            &model,
            &c,
            &tok,
            &prompts,
            SampleConfig {
                cfg_min_t: bad,
                ..base
            },
            &device,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("cfg_min_t") && e.contains("[0, 1]"), "{e}");
    }
}

#[test]
fn image_tokens_see_each_other() {
    // Changing one generation patch changes the velocity of the other patches (not only its
    // own), and changing one understanding patch changes what the text predicts.
    let s = setup();
    let (logits, vel) = run(&s, s.text.clone(), s.und.clone(), s.gen_img.clone());
    let n = s.gen_img.dims()[1];
    let bump = |t: Tensor<3>, i: usize| {
        let mut delta = vec![0.0f32; t.dims().iter().product()];
        let d = t.dims()[2];
        for b in 0..t.dims()[0] {
            for k in 0..d {
                delta[(b * n + i) * d + k] = 1.0;
            }
        }
        t.clone() + Tensor::<3>::from_data(TensorData::new(delta, t.dims()), &t.device())
    };
    let (_, v2) = run(
        &s,
        s.text.clone(),
        s.und.clone(),
        bump(s.gen_img.clone(), 5),
    );
    let others =
        |v: Tensor<3>| Tensor::cat(vec![v.clone().slice_dim(1, 0..5), v.slice_dim(1, 6..n)], 1);
    assert!(max_diff(others(vel.clone()), others(v2)) > 1e-4);
    let (l2, _) = run(
        &s,
        s.text.clone(),
        bump(s.und.clone(), 5),
        s.gen_img.clone(),
    );
    assert!(max_diff(logits, l2) > 1e-4);
}

/// The model's next-token distribution at `<ans>` for one question about one image, by a
/// forward pass written out here (what `understand` must agree with).
fn softmax_at_ans(
    model: &Umm,
    c: &UmmConfig,
    tok: &WordTokenizer,
    q: &(String, compworld::Image),
    device: &Device,
) -> Vec<f32> {
    let ids = umm_model::understand::question_ids(tok, &q.0).unwrap();
    let n = ids.len();
    let logits = model
        .forward(UmmInput {
            text: text(&[ids], device),
            und_image: Some(patchify(
                umm_model::understand::images_tensor(&[&q.1], device),
                c.patch,
            )),
            gen_image: None,
        })
        .logits
        .slice_dim(1, n - 1..n);
    burn::tensor::activation::softmax(logits, 2)
        .to_data()
        .try_to_vec::<f32>()
        .unwrap()
}

#[test]
fn yes_no_reads_the_answer_position_whatever_the_padding() {
    use umm_model::understand::yes_no;
    let device = Device::flex();
    let c = UmmConfig::micro();
    let model = Umm::init(&c, &device);
    let tok = WordTokenizer::compworld();
    let img = |v: f32| compworld::Image::filled(c.resolution, c.resolution, [v, 0.2, 0.9]);
    let short = ("is there a circle ?".to_string(), img(0.1));
    let long = (
        "does this image show : a red circle left of a blue square ?".to_string(),
        img(0.7),
    );
    let both = yes_no(&model, &c, &tok, &[short.clone(), long.clone()], &device).unwrap();
    let alone = yes_no(&model, &c, &tok, std::slice::from_ref(&short), &device).unwrap();
    // The short question, padded in the batch, gets the same probabilities as alone.
    assert!((both[0].0 - alone[0].0).abs() < 1e-5 && (both[0].1 - alone[0].1).abs() < 1e-5);
    // And they are the softmax at <ans>, computed here by hand.
    let p = softmax_at_ans(&model, &c, &tok, &long, &device);
    let yes = tok.id("yes").unwrap() as usize;
    assert!(
        (p[yes] - both[1].0).abs() < 1e-5,
        "{} vs {}",
        p[yes],
        both[1].0
    );
    // A wrong-sized image is refused with a message.
    let bad = (
        "is there a circle ?".to_string(),
        compworld::Image::filled(8, 8, [0.0; 3]),
    );
    let e = yes_no(&model, &c, &tok, &[bad], &device)
        .unwrap_err()
        .to_string();
    assert!(e.contains("8x8"), "{e}");
}

#[test]
fn adaln_starts_closed_then_opens_with_training() {
    let s = setup();
    let c = UmmConfig {
        gen_adaln: true,
        ..UmmConfig::micro()
    };
    let plain = Umm::init(&UmmConfig::micro(), &s.device).num_params();
    let d = c.d_model;
    assert_eq!(
        Umm::init(&c, &s.device).num_params(),
        plain + c.n_layers * 6 * d * (d + 1)
    );
    let other_text = text(
        &[ids("a green triangle"), ids("two yellow crosses")],
        &s.device,
    );
    // How much the velocity moves when only the prompt changes.
    let text_effect = |m: &Umm, device: &Device| {
        let v = |t: Tensor<2, Int>| {
            m.forward(UmmInput {
                text: t.to_device(device),
                und_image: None,
                gen_image: Some((
                    s.gen_img.clone().to_device(device),
                    s.time.clone().to_device(device),
                )),
            })
            .velocity
            .unwrap()
        };
        max_diff(v(s.text.clone()), v(other_text.clone()))
    };
    // Zero-initialised gates: no layer changes the generation tokens yet, so the prompt
    // cannot reach them (the plain model reads it from the first step).
    assert!(text_effect(&s.model, &s.device) > 1e-3);
    let device = s.device.clone().autodiff();
    let model = Umm::init(&c, &device);
    assert_eq!(text_effect(&model, &device), 0.0);
    let (model, losses) = overfit(&s, model, &device, false);
    assert!(losses[29] < 0.5 * losses[0], "{losses:?}");
    assert!(text_effect(&model, &device) > 1e-3);
}

#[test]
fn scored_answers_keep_the_distribution_each_word_was_chosen_from() {
    use umm_model::understand::{answer, answer_with_probs};
    let device = Device::flex();
    let c = UmmConfig::micro();
    let tok = WordTokenizer::compworld();
    let img = |v: f32| compworld::Image::filled(c.resolution, c.resolution, [v, 0.5, 0.2]);
    let qs = vec![
        ("what is this ?".to_string(), img(0.1)),
        ("what colour is the circle ?".to_string(), img(0.9)),
    ];
    // An unseeded untrained model now and then answers <eos> at once (CI drew one); such
    // an answer has no word distribution to check, so draw inits until both answers say
    // something. Every check below still runs on the model that was kept.
    let (model, scored) = (0..20)
        .map(|_| {
            let model = Umm::init(&c, &device);
            let scored = answer_with_probs(&model, &c, &tok, &qs, 4, &device).unwrap();
            (model, scored)
        })
        .find(|(_, s)| s.iter().all(|a| !a.ids.is_empty()))
        .expect("20 untrained models in a row answered nothing");
    let plain = answer(&model, &c, &tok, &qs, 4, &device).unwrap();
    for (s, p) in scored.iter().zip(&plain) {
        // The same greedy answer, and one distribution per word.
        assert_eq!(&s.text, p);
        assert_eq!(s.probs.len(), s.ids.len());
        for (id, probs) in s.ids.iter().zip(&s.probs) {
            let sum: f32 = probs.iter().sum();
            let best = (0..probs.len())
                .max_by(|&a, &b| probs[a].total_cmp(&probs[b]))
                .unwrap();
            assert!(
                (sum - 1.0).abs() < 1e-4 && best == *id as usize,
                "{sum} {best} {id}"
            );
        }
    }
    // The first word's distribution is the softmax at <ans>, computed here by hand.
    let p = softmax_at_ans(&model, &c, &tok, &qs[1], &device);
    let d = p
        .iter()
        .zip(&scored[1].probs[0])
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(d < 1e-5, "{d}");
}

/// The two QKV paths of a layer compute the same: the packed one (libtorch's) and the sliced
/// one (every other backend's), with both segments, with one, with adaLN and a mask; the
/// outputs and the gradients of the input and of every weight agree.
#[test]
fn the_packed_and_sliced_qkv_paths_agree() {
    use umm_model::Block;
    let device = Device::flex().autodiff();
    let c = UmmConfig {
        gen_adaln: true,
        ..UmmConfig::micro()
    };
    let block = Block::init(&c, &device);
    let d = c.d_model;
    let (b, su, sg) = (3, 5, 4);
    let und = Tensor::<3>::random([b, su, d], Distribution::Normal(0.0, 1.0), &device);
    let gen_x = Tensor::<3>::random([b, sg, d], Distribution::Normal(0.0, 1.0), &device);
    let cond = Tensor::<2>::random([b, d], Distribution::Normal(0.0, 1.0), &device);
    let s = su + sg;
    // Every query keeps its first key; about a third of the rest are masked.
    let mask = Tensor::<4>::random([b, 1, s, s], Distribution::Uniform(0.0, 1.0), &device)
        .greater_elem(0.66)
        .float()
        .slice_assign(
            [0..b, 0..1, 0..s, 0..1],
            Tensor::zeros([b, 1, s, 1], &device),
        )
        .mul_scalar(-1e9);
    let w = Tensor::<3>::random([b, s, d], Distribution::Normal(0.0, 1.0), &device);
    let run = |packed: bool, both: bool| {
        let (u, g) = (und.clone().require_grad(), gen_x.clone().require_grad());
        let (ou, og) = if both {
            block.forward_segments_with(
                Some(u.clone()),
                Some(g.clone()),
                Some(&mask),
                Some(&cond),
                packed,
            )
        } else {
            let m = mask.clone().slice([0..b, 0..1, 0..su, 0..su]);
            block.forward_segments_with(Some(u.clone()), None, Some(&m), None, packed)
        };
        let y = Tensor::cat(ou.into_iter().chain(og).collect(), 1);
        let n = y.dims()[1];
        let loss = (y.clone() * w.clone().slice_dim(1, 0..n)).sum();
        let grads = loss.backward();
        let mut gs = vec![u.grad(&grads).unwrap().flatten::<1>(0, 2)];
        if both {
            gs.push(g.grad(&grads).unwrap().flatten::<1>(0, 2));
        }
        // Every weight of the layer.
        let weights = GradientsParams::from_grads(grads, &block);
        (y.inner(), gs, weights)
    };
    for both in [true, false] {
        let (yp, gp, wp) = run(true, both);
        let (ys, gs, ws) = run(false, both);
        let dy = max_diff(yp, ys);
        assert!(dy < 1e-5, "outputs differ by {dy}");
        for (a, z) in gp.into_iter().zip(gs) {
            assert!(a.clone().abs().max().into_scalar::<f32>() > 1e-3);
            let dg = max_diff(a, z);
            assert!(dg < 1e-4, "input gradients differ by {dg}");
        }
        // The 2-D weights (projections, MLP, adaLN) with a gradient in both runs.
        struct Ids(Vec<burn::module::ParamId>);
        impl burn::module::ModuleVisitor for Ids {
            fn visit_float<const D: usize>(&mut self, p: &burn::module::Param<Tensor<D>>) {
                if D == 2 {
                    self.0.push(p.id);
                }
            }
        }
        let mut ids = Ids(Vec::new());
        block.visit(&mut ids);
        let mut compared = 0;
        for id in ids.0 {
            let (Some(a), Some(z)) = (wp.get::<2>(id), ws.get::<2>(id)) else {
                continue;
            };
            let dw = max_diff(a, z);
            assert!(dw < 1e-4, "weight gradients differ by {dw}");
            compared += 1;
        }
        // Both experts' four projections, and adaLN, when both segments run.
        assert!(compared >= if both { 9 } else { 4 }, "{compared} compared");
    }
}

#[test]
fn prompt_matches_with_reasons_read_the_verdict_and_stay_within_the_positions() {
    use umm_model::understand::{
        answer_with_probs, prompt_match_question, prompt_match_yes_no, question_ids,
        verdict_yes_no, yes_no,
    };
    let device = Device::flex();
    let plain = UmmConfig::micro();
    let reasons = UmmConfig {
        prompt_match_rationale: true,
        ..plain.clone()
    };
    let model = Umm::init(&plain, &device);
    let tok = WordTokenizer::compworld();
    let img = |v: f32| compworld::Image::filled(plain.resolution, plain.resolution, [v, 0.4, 0.6]);
    let (a, b) = (img(0.1), img(0.8));
    let prompts = [
        "a red circle",
        "two blue squares on the left of a green triangle",
    ];
    let items: Vec<(&str, &compworld::Image)> = vec![(prompts[0], &a), (prompts[1], &b)];
    let qs: Vec<(String, compworld::Image)> = items
        .iter()
        .map(|(p, i)| (prompt_match_question(p), (*i).clone()))
        .collect();
    // Without reasons: the answer at <ans>.
    assert_eq!(
        prompt_match_yes_no(&model, &plain, &tok, &items, &device).unwrap(),
        yes_no(&model, &plain, &tok, &qs, &device).unwrap()
    );
    // With reasons: the verdict of the greedy answer, which (an untrained model rarely says
    // <eos>) is cut where the model's positions end instead of running past them.
    let long = answer_with_probs(&model, &reasons, &tok, &qs, 1000, &device).unwrap();
    for (q, ans) in qs.iter().zip(&long) {
        let asked = question_ids(&tok, &q.0).unwrap().len();
        assert!(
            asked + ans.ids.len() <= reasons.max_text_len,
            "{asked} + {} words",
            ans.ids.len()
        );
    }
    let want: Vec<(f32, f32)> = long
        .iter()
        .map(|a| verdict_yes_no(&tok, a).unwrap())
        .collect();
    assert_eq!(
        prompt_match_yes_no(&model, &reasons, &tok, &items, &device).unwrap(),
        want
    );
}
