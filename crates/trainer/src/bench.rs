//! Wall-clock timing of pretraining steps on several backends, alternated round by round (A B
//! A B ...) so that machine noise hits every backend alike; report medians.

use std::time::Instant;

use burn::optim::{AdamWConfig, GradientsParams};
use burn::prelude::*;
use compworld::Rng;
use umm_model::{UmmConfig, WordTokenizer};

use crate::Result;
use crate::data::{DataStream, MixConfig, gen_batch, und_batch};
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
    let tok = WordTokenizer::compworld();
    let mut stream = DataStream::new(&MixConfig::default(), cfg.resolution, Rng::new(1))?
        .with_max_text_len(cfg.max_text_len);
    let und = stream.und_examples(batch);
    let gen_ex = stream.gen_examples(batch);
    let mut state = Vec::new();
    for (name, dev) in devices {
        let ub = und_batch(&tok, cfg, &und, dev)?;
        let gb = gen_batch(&tok, cfg, &gen_ex, &mut Rng::new(2), dev)?;
        let model = init_model(cfg, 0, dev);
        let optim = AdamWConfig::new().init();
        state.push((name.clone(), ub, gb, Some(model), optim, Vec::new()));
    }
    for round in 0..=rounds {
        for (_, ub, gb, model, optim, times) in &mut state {
            // Round 0 warms up (two steps), the rest are measured.
            let n = if round == 0 { 2 } else { steps };
            for _ in 0..n {
                let t0 = Instant::now();
                let m = model.take().expect("the model is put back every step");
                let loss =
                    und_loss(&m, ub) + gen_loss(&m, gb, crate::pretrain::DEFAULT_LOW_T_FLOOR);
                // Read the loss back, as the training loop does (this also waits for an
                // asynchronous device).
                let _ = loss.clone().into_scalar::<f32>();
                let grads = GradientsParams::from_grads(loss.backward(), &m);
                *model = Some(optim.step(1e-4, m, grads));
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
