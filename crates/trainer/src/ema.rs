//! An exponential moving average (EMA) of a model's weights, kept beside training, as
//! diffusion models keep one for sampling (DDPM, DiT, SD): the average of the last
//! `1 / (1 - decay)` or so steps' weights, which averages out the step-to-step noise of the
//! optimiser that otherwise shows in the samples.
//!
//! After optimiser step `n` (counted from 1) the average becomes
//! `ema = d_n * ema + (1 - d_n) * weights`, with `d_n = min(decay, (1 + n) / (10 + n))`: the
//! warm-up keeps the first steps' (random) weights from lingering in the average.
//! The average lives on the plain (non-autodiff) device and is saved beside each checkpoint,
//! so a resumed run continues it exactly.

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::prelude::*;
use umm_model::Umm;

/// The moving average of a model's weights.
#[derive(Debug, Clone)]
pub struct Ema {
    /// The averaged weights (plain device, no gradients).
    pub model: Umm,
    decay: f64,
}

impl Ema {
    /// Starts the average at `model`'s weights (a fresh model's, or an average saved earlier).
    pub fn new(model: &Umm, decay: f64) -> Self {
        Ema {
            model: model.valid(),
            decay,
        }
    }

    /// The weight of the old average after optimiser step `n` (counted from 1).
    pub fn decay_at(&self, n: u64) -> f64 {
        self.decay.min((1.0 + n as f64) / (10.0 + n as f64))
    }

    /// Folds the weights after optimiser step `n` (counted from 1) into the average.
    pub fn update(&mut self, model: &Umm, n: u64) {
        let mut current = Flat(Vec::new());
        model.valid().visit(&mut current);
        let d = self.decay_at(n);
        self.model = self.model.clone().map(&mut Blend {
            current: current.0.into_iter(),
            keep: d as f32,
        });
    }
}

/// Every float parameter, flattened, in visiting order.
struct Flat(Vec<Tensor<1>>);

impl ModuleVisitor for Flat {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let t = param.val();
        let n = t.shape().num_elements();
        self.0.push(t.reshape([n]));
    }
}

/// `keep * average + (1 - keep) * current`, parameter by parameter in visiting order (the two
/// models have the same structure, so the orders agree).
struct Blend {
    current: std::vec::IntoIter<Tensor<1>>,
    keep: f32,
}

impl ModuleMapper for Blend {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let cur = self
            .current
            .next()
            .expect("the averaged and trained models have the same parameters");
        let keep = self.keep;
        param.map(|avg| {
            let cur = cur.reshape(avg.dims());
            avg.mul_scalar(keep) + cur.mul_scalar(1.0 - keep)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use umm_model::UmmConfig;

    fn first_weight(m: &Umm) -> Vec<f32> {
        let mut f = Flat(Vec::new());
        m.visit(&mut f);
        f.0[0].to_data().try_to_vec::<f32>().unwrap()
    }

    #[test]
    fn the_average_follows_the_warmed_up_decay() {
        let device = Device::flex();
        let c = UmmConfig::preset("micro").unwrap();
        let a = crate::init::seeded(Umm::init(&c, &device), 1);
        let b = crate::init::seeded(Umm::init(&c, &device), 2);
        let mut ema = Ema::new(&a, 0.9);
        // Warm-up: step 1 keeps 2/11 of the old average, step 100 the full 0.9.
        assert!((ema.decay_at(1) - 2.0 / 11.0).abs() < 1e-12);
        assert_eq!(ema.decay_at(100), 0.9);
        ema.update(&b, 1);
        let (wa, wb, we) = (first_weight(&a), first_weight(&b), first_weight(&ema.model));
        assert!(wa.iter().zip(&wb).any(|(x, y)| (x - y).abs() > 1e-3));
        let k = 2.0f32 / 11.0;
        for ((x, y), e) in wa.iter().zip(&wb).zip(&we) {
            assert!(
                (e - (k * x + (1.0 - k) * y)).abs() < 1e-6,
                "{e} vs {x}, {y}"
            );
        }
        // Averaging a model with itself changes nothing.
        let mut same = Ema::new(&b, 0.9);
        same.update(&b, 50);
        for (x, y) in first_weight(&same.model).iter().zip(&wb) {
            assert!((x - y).abs() < 1e-6);
        }
    }
}
