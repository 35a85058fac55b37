//! Wall-clock timing of pretraining steps on several backends, alternated round by round (A B
//! A B ...) so that machine noise hits every backend alike; report medians. The fixed batches
//! and the step itself are shared with the `benchmarks` crate and its PyTorch race.

use std::time::Instant;

use burn::optim::{AdamWConfig, GradientsParams, ModuleOptimizer};
use burn::prelude::*;
use compworld::Rng;
use umm_model::{Umm, UmmConfig, WordTokenizer};

use crate::Result;
use crate::data::{DataStream, GenBatch, MixConfig, UndBatch, gen_batch, und_batch};
use crate::pretrain::{gen_loss, init_model, und_loss};

/// Seconds per training step (data drawing excluded: the batches are built once, up front;
/// the loss is read back every step, as in the training loop).
#[derive(Debug, Clone)]
pub struct StepTimes {
    pub backend: String,
    pub seconds: Vec<f64>,
}

impl StepTimes {
    /// The median step time.
    pub fn median(&self) -> f64 {
        let mut s = self.seconds.clone();
        s.sort_by(f64::total_cmp);
        s[s.len() / 2]
    }
}

/// The fixed examples every timing uses: `batch` understanding and `batch` generation
/// examples from the default mixture (stream seed 1, noise and times from seed 2).
pub fn fixed_batches(
    cfg: &UmmConfig,
    batch: usize,
    device: &Device,
) -> Result<(UndBatch, GenBatch)> {
    let tok = WordTokenizer::compworld();
    let mut stream = DataStream::new(&MixConfig::default(), cfg.resolution, Rng::new(1))?
        .with_max_text_len(cfg.max_text_len);
    let und = stream.und_examples(batch);
    let gen_ex = stream.gen_examples(batch);
    Ok((
        und_batch(&tok, cfg, &und, device)?,
        gen_batch(&tok, cfg, &gen_ex, &mut Rng::new(2), device)?,
    ))
}

/// The learning rate of the timed steps.
pub const BENCH_LR: f64 = 1e-4;

/// One pretraining step on fixed batches: both losses, the loss read back to the host (as the
/// training loop does; this also waits for an asynchronous device), backward, AdamW update.
/// Returns the updated model and the loss before the update.
pub fn train_step(
    model: Umm,
    optim: &mut ModuleOptimizer,
    ub: &UndBatch,
    gb: &GenBatch,
) -> (Umm, f32) {
    let (m, loss, _) = train_step_phases(model, optim, ub, gb);
    (m, loss)
}

/// [`train_step`], also returning the seconds of its three phases: forward (up to the loss on
/// the host), backward (gradients collected), optimiser update.
pub fn train_step_phases(
    model: Umm,
    optim: &mut ModuleOptimizer,
    ub: &UndBatch,
    gb: &GenBatch,
) -> (Umm, f32, [f64; 3]) {
    let t0 = Instant::now();
    let loss = und_loss(&model, ub) + gen_loss(&model, gb, crate::pretrain::DEFAULT_LOW_T_FLOOR);
    let value = loss.clone().into_scalar::<f32>();
    let t1 = Instant::now();
    let grads = GradientsParams::from_grads(loss.backward(), &model);
    let t2 = Instant::now();
    let model = optim.step(BENCH_LR, model, grads);
    let t3 = Instant::now();
    let s = |a: Instant, b: Instant| (b - a).as_secs_f64();
    (model, value, [s(t0, t1), s(t1, t2), s(t2, t3)])
}

/// Times `rounds x steps` training steps of `cfg` with `batch` generation and `batch`
/// understanding examples per step on each `(name, autodiff device)`, alternating backends
/// every round. Two warm-up steps per backend are not counted.
pub fn time_steps(
    cfg: &UmmConfig,
    batch: usize,
    devices: &[(String, Device)],
    rounds: usize,
    steps: usize,
) -> Result<Vec<StepTimes>> {
    let mut state = Vec::new();
    for (name, dev) in devices {
        let (ub, gb) = fixed_batches(cfg, batch, dev)?;
        let model = init_model(cfg, 0, dev);
        let optim = umm_model::optim::adamw(&AdamWConfig::new());
        state.push((name.clone(), ub, gb, Some(model), optim, Vec::new()));
    }
    for round in 0..=rounds {
        for (_, ub, gb, model, optim, times) in &mut state {
            // Round 0 warms up (two steps), the rest are measured.
            let n = if round == 0 { 2 } else { steps };
            for _ in 0..n {
                let t0 = Instant::now();
                let m = model.take().expect("the model is put back every step");
                let (m, _) = train_step(m, optim, ub, gb);
                *model = Some(m);
                if round > 0 {
                    times.push(t0.elapsed().as_secs_f64());
                }
            }
        }
    }
    Ok(state
        .into_iter()
        .map(|(backend, .., seconds)| StepTimes { backend, seconds })
        .collect())
}
