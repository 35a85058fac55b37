//! AdamW as burn computes it, with an in-place update on libtorch.
//!
//! burn 0.22's `AdamW` updates each parameter in about fifteen tensor operations (the moments,
//! their bias corrections, the square root, the decay and the step, each its own pass over the
//! parameter). On libtorch [`adamw`] runs PyTorch's own sequence instead, nine in-place passes
//! (`mul_`, `lerp_`, `addcmul_`, `addcdiv_`, ...), on the same state: the moments are burn's
//! `AdamWState`, so checkpoints and resumed runs are interchangeable with burn's optimiser. Every
//! other backend runs burn's `AdamW` itself, bit for bit.

// burn marks its libtorch backend deprecated; it is still the fastest CPU backend here.
#![allow(deprecated)]

use burn::optim::{
    AdamW, AdamWConfig, AdamWState, LearningRate, ModuleOptimizer, Optimizer,
    grad_clipping::GradientClippingConfig,
};
use burn::prelude::*;
use serde::Deserialize;

/// The hyper-parameters of an [`AdamWConfig`] that the in-place update needs (the config's
/// fields are private; its serde form names them).
#[derive(Debug, Clone, Copy, Deserialize)]
#[cfg_attr(not(feature = "tch"), allow(dead_code))]
struct Hyper {
    beta_1: f32,
    beta_2: f32,
    epsilon: f32,
    weight_decay: f32,
    cautious_weight_decay: bool,
    amsgrad: bool,
}

/// The optimiser of `config` as a [`ModuleOptimizer`], like `config.init()` (gradient clipping
/// included), with the in-place update on libtorch. Configurations the in-place update does not
/// cover (AMSGrad, cautious weight decay) get burn's `AdamW` everywhere.
pub fn adamw(config: &AdamWConfig) -> ModuleOptimizer {
    let json = serde_json::to_value(config).expect("an AdamW config serialises");
    let hyper: Hyper = serde_json::from_value(json.clone()).expect("AdamW's fields");
    if hyper.amsgrad || hyper.cautious_weight_decay {
        return config.init();
    }
    let mut optim = ModuleOptimizer::from(InPlaceAdamW {
        burn: config.build(),
        hyper,
    });
    let clipping: Option<GradientClippingConfig> =
        serde_json::from_value(json["grad_clipping"].clone()).expect("a clipping config");
    if let Some(clipping) = clipping {
        optim = optim.with_grad_clipping(clipping.init());
    }
    optim
}

/// burn's [`AdamW`], or on libtorch the same update in place (see the module docs).
#[derive(Clone)]
pub struct InPlaceAdamW {
    burn: AdamW,
    #[cfg_attr(not(feature = "tch"), allow(dead_code))]
    hyper: Hyper,
}

impl std::fmt::Debug for InPlaceAdamW {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InPlaceAdamW")
            .field("hyper", &self.hyper)
            .finish()
    }
}

impl Optimizer for InPlaceAdamW {
    type State<const D: usize> = AdamWState<D>;

    fn step<const D: usize>(
        &self,
        lr: LearningRate,
        tensor: Tensor<D>,
        grad: Tensor<D>,
        state: Option<Self::State<D>>,
    ) -> (Tensor<D>, Option<Self::State<D>>) {
        #[cfg(feature = "tch")]
        if libtorch::is_libtorch(&tensor) {
            return libtorch::step(&self.hyper, lr, tensor, &grad, state);
        }
        self.burn.step(lr, tensor, grad, state)
    }

    fn to_device<const D: usize>(state: Self::State<D>, device: &Device) -> Self::State<D> {
        <AdamW as Optimizer>::to_device(state, device)
    }
}

#[cfg(feature = "tch")]
mod libtorch {
    use burn::backend::libtorch::TchTensor;
    use burn::backend::{
        BackendTensor, DispatchAutodiffContext, DispatchTensor, DispatchTensorKind,
    };
    use burn::optim::{AdamWState, AdaptiveMomentumState, LearningRate};
    use burn::prelude::*;

    use super::Hyper;

    /// Whether `t` lives on libtorch.
    pub(super) fn is_libtorch<const D: usize>(t: &Tensor<D>) -> bool {
        matches!(
            t.clone().into_dispatch().kind,
            DispatchTensorKind::LibTorch(BackendTensor::Float(_))
        )
    }

    /// The libtorch tensor behind `t` (a libtorch tensor), to be written in place: `t`'s own
    /// memory when nothing else holds it, else a copy; and `t`'s autodiff context.
    fn take<const D: usize>(t: Tensor<D>) -> (tch::Tensor, DispatchAutodiffContext) {
        let DispatchTensor { kind, autodiff } = t.into_dispatch();
        let DispatchTensorKind::LibTorch(BackendTensor::Float(x)) = kind else {
            unreachable!("a libtorch tensor")
        };
        let own = if x.can_mut() {
            x.tensor.shallow_clone()
        } else {
            x.tensor.copy()
        };
        (own, autodiff)
    }

    /// `x` as a libtorch tensor with the autodiff context `autodiff`.
    fn wrap<const D: usize>(x: tch::Tensor, autodiff: DispatchAutodiffContext) -> Tensor<D> {
        Tensor::from_dispatch(DispatchTensor {
            kind: DispatchTensorKind::LibTorch(BackendTensor::Float(TchTensor::new(x))),
            autodiff,
        })
    }

    /// One AdamW step in place, in PyTorch's order (`torch.optim.AdamW`, single tensor):
    /// `p *= 1 - lr wd`; `m = lerp(m, g, 1 - b1)`; `v = b2 v + (1 - b2) g^2`;
    /// `p -= lr / bc1 * m / (sqrt(v) / sqrt(bc2) + eps)`, with `bc_i = 1 - b_i^t`: the same
    /// update as burn's `AdamW` (its `m / bc1 / (sqrt(v / bc2) + eps)`), rounded differently.
    pub(super) fn step<const D: usize>(
        h: &Hyper,
        lr: LearningRate,
        tensor: Tensor<D>,
        grad: &Tensor<D>,
        state: Option<AdamWState<D>>,
    ) -> (Tensor<D>, Option<AdamWState<D>>) {
        let grad = grad.clone().into_dispatch();
        let DispatchTensorKind::LibTorch(BackendTensor::Float(g)) = &grad.kind else {
            panic!("the gradient of a libtorch parameter is on libtorch")
        };
        let g = &g.tensor;
        let (mut p, autodiff) = take(tensor);
        let (b1, b2) = (h.beta_1 as f64, h.beta_2 as f64);
        let (mut m, mut v, time) = match state {
            Some(s) => (
                take(s.momentum.moment_1).0,
                take(s.momentum.moment_2).0,
                s.momentum.time + 1,
            ),
            None => (g.zeros_like(), g.zeros_like(), 1),
        };
        let _ = p.g_mul_scalar_(1.0 - lr * h.weight_decay as f64);
        let _ = m.lerp_(g, 1.0 - b1);
        let _ = v.g_mul_scalar_(b2);
        let _ = v.addcmul_(&(g * (1.0 - b2)), g);
        let bc1 = 1.0 - b1.powi(time as i32);
        let bc2 = 1.0 - b2.powi(time as i32);
        // p += m / d, with d = -(sqrt(v) / sqrt(bc2) + eps) * bc1 / lr.
        let mut d = v.sqrt();
        let _ = d.g_mul_scalar_(-bc1 / (lr * bc2.sqrt()));
        let _ = d.g_add_scalar_(-(h.epsilon as f64) * bc1 / lr);
        let _ = p.addcdiv_(&m, &d);
        let momentum = AdaptiveMomentumState::new(time, wrap(m, autodiff), wrap(v, autodiff));
        (wrap(p, autodiff), Some(AdamWState::new(momentum)))
    }
}

#[cfg(test)]
mod tests {
    use burn::optim::GradientsParams;

    use super::*;

    /// A one-layer model, a fixed loss, and `steps` updates with `optim`; returns the weights.
    fn train(dev: &Device, mut optim: ModuleOptimizer, steps: usize) -> Vec<f32> {
        let dev = dev.clone().autodiff();
        let mut layer = burn::nn::LinearConfig::new(6, 3).init(&dev);
        // The same start on every device and run: weights and bias from fixed data.
        let w: Vec<f32> = (0..18).map(|i| ((i * 7 % 11) as f32 - 5.0) / 7.0).collect();
        let b: Vec<f32> = (0..3).map(|i| i as f32 / 4.0 - 0.3).collect();
        layer.weight = burn::module::Param::from_tensor(Tensor::<2>::from_data(
            TensorData::new(w, [6, 3]),
            &dev,
        ));
        layer.bias = Some(burn::module::Param::from_tensor(Tensor::<1>::from_data(
            TensorData::new(b, [3]),
            &dev,
        )));
        let x: Vec<f32> = (0..24).map(|i| ((i * 5 % 13) as f32 - 6.0) / 5.0).collect();
        let x = Tensor::<2>::from_data(TensorData::new(x, [4, 6]), &dev);
        for _ in 0..steps {
            let y = layer.forward(x.clone());
            let loss = (y.clone() * y).sum();
            let grads = GradientsParams::from_grads(loss.backward(), &layer);
            layer = optim.step(1e-2, layer, grads);
        }
        let mut out = layer.weight.val().into_data().to_vec::<f32>().unwrap();
        out.extend(
            layer
                .bias
                .unwrap()
                .val()
                .into_data()
                .to_vec::<f32>()
                .unwrap(),
        );
        out
    }

    #[cfg(feature = "tch")]
    fn gap(a: &[f32], b: &[f32]) -> f32 {
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max)
    }

    fn config() -> AdamWConfig {
        AdamWConfig::new()
            .with_beta_1(0.8)
            .with_beta_2(0.95)
            .with_weight_decay(0.1)
    }

    /// Off libtorch the optimiser is burn's AdamW, bit for bit, clipping included.
    #[test]
    fn off_libtorch_it_is_burns_adamw() {
        let dev = Device::flex();
        let c = config().with_grad_clipping(Some(GradientClippingConfig::Norm(0.5)));
        let ours = train(&dev, adamw(&c), 5);
        assert_eq!(ours, train(&dev, c.init(), 5));
        // The clipping is applied: without it the weights differ.
        assert_ne!(ours, train(&dev, adamw(&config()), 5));
    }

    /// On libtorch the in-place update gives burn's AdamW's weights (to rounding) over several
    /// steps, where the moments and the bias corrections matter; a wrong beta, epsilon, decay or
    /// bias correction moves the weights by far more.
    #[cfg(feature = "tch")]
    #[test]
    fn on_libtorch_it_matches_burns_adamw() {
        let dev = Device::from(burn::backend::libtorch::LibTorchDevice::Cpu);
        let ours = train(&dev, adamw(&config()), 8);
        let burns = train(&dev, config().init(), 8);
        assert!(gap(&ours, &burns) < 1e-5, "{}", gap(&ours, &burns));
        let start = train(&dev, config().init(), 0);
        assert!(gap(&burns, &start) > 0.05, "the steps move the weights");
        for other in [
            config().with_beta_1(0.9),
            config().with_beta_2(0.999),
            config().with_weight_decay(0.0),
        ] {
            let g = gap(&ours, &train(&dev, other.init(), 8));
            assert!(
                g > 1e-4,
                "a different setting gives different weights ({g})"
            );
        }
    }
}
