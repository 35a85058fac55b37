//! Softmax, layer norm and attention as single differentiable operations (a Burn backend
//! extension).
//!
//! Burn's autodiff backend (0.22) has no softmax of its own: it differentiates the composite
//! `exp(x - max) / sum(exp(x - max))`, five kernels forward and about ten backward, each a full
//! pass over the `[batch, heads, seq, seq]` attention scores. Here the forward pass is the
//! inner backend's own softmax (one fused kernel on libtorch and flex) and the backward pass is
//! written out, `dx = y * (g - sum(g * y))`: a multiply, a row sum, a multiply and a subtract.
//! On the tiny preset's training step this takes `tch-cpu` from 1.45x to about 1.2x the time of
//! PyTorch eager (README, Performance).
//!
//! Layer norm is one node as well: burn's composite layer norm is about ten kernels each way.
//! Its backward is written out ([`NormKernels`]) in about fifteen passes; on libtorch it is
//! libtorch's own fused backward kernel, reached through libtorch's autograd.
//!
//! Attention, `softmax(q k^T + bias) v` of pre-scaled queries, is one node too: forward and
//! backward are [`AttentionKernels`] of the inner backend. By default they are the matmuls and
//! the fused softmax (the backward keeps the probabilities and writes out `dv = p^T g`,
//! `ds = p * (g v^T - rowsum(g v^T * p))`, `dq = ds k`, `dk = ds^T q`); on libtorch's CPU they
//! are libtorch's own flash-attention kernels (`_scaled_dot_product_flash_attention_for_cpu`
//! and its backward), the ones PyTorch's `scaled_dot_product_attention` runs. The model's
//! packed attention hands those kernels the queries' scale rather than scaling the queries
//! first and their gradient after ([`AttentionKernels::attention_forward_scaled`]).

// burn marks its libtorch backend deprecated; it is still the fastest CPU backend here.
#![allow(deprecated)]

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind, unary};
use burn::backend::{
    Autodiff, Backend, Flex, TensorMetadata, backend_extension, tensor::FloatTensor,
};
use burn::prelude::*;
use burn::tensor::ops::AttentionModuleOptions;

/// Operations this crate fuses.
#[backend_extension(
    Flex,
    NdArray: cfg(feature = "ndarray"),
    LibTorch: cfg(feature = "tch"),
    Cube: cfg(feature = "wgpu"),
    Autodiff,
)]
pub trait FusedOps: Backend {
    /// Softmax along `dim`.
    fn fused_softmax(x: FloatTensor<Self>, dim: usize) -> FloatTensor<Self> {
        Self::softmax(x, dim)
    }

    /// Layer normalisation over the last dimension, with scale `gamma` and shift `beta`.
    fn fused_layer_norm(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
    ) -> FloatTensor<Self> {
        Self::layer_norm(x, gamma, Some(beta), epsilon)
    }

    /// GELU, `x Phi(x)` (the exact, erf form).
    fn fused_gelu(x: FloatTensor<Self>) -> FloatTensor<Self> {
        Self::gelu(x)
    }

    /// GELU's backward, `g (Phi(x) + x phi(x))`.
    fn fused_gelu_backward(x: FloatTensor<Self>, g: FloatTensor<Self>) -> FloatTensor<Self> {
        Self::gelu_backward(x, g)
    }

    /// Attention `softmax(q k^T + bias) v` of queries already scaled by `1/sqrt(head_dim)`.
    /// `q: [b, h, l, e]`, `k, v: [b, h, s, e]`, `bias: [b or 1, 1, l, s]` (additive mask).
    fn fused_attention(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
        bias: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        // Forward only (inference): the backend's own attention kernel.
        let options = AttentionModuleOptions {
            scale: Some(1.0),
            softcap: None,
            is_causal: false,
        };
        Self::attention(q, k, v, None, Some(bias), options)
    }

    /// Multi-head attention of packed projections `qkv: [b, s, 3 d]` (queries, keys and
    /// values side by side, the queries not yet scaled) under the additive mask
    /// `bias: [b or 1, 1, s, s]`. Returns `[b, s, d]`, the heads merged.
    fn fused_packed_attention(
        qkv: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        n_heads: usize,
    ) -> FloatTensor<Self> {
        let ([q, k, v], scale) = unpack::<Self>(vec![qkv], n_heads);
        let q = Self::float_mul_scalar(q, scale.into());
        merge_heads::<Self>(Self::fused_attention(q, k, v, bias))
    }

    /// [`FusedOps::fused_packed_attention`] of a sequence held as two segments, `first`
    /// `[b, s_1, 3 d]` then `second` `[b, s_2, 3 d]` (each projected by its own weights);
    /// `bias: [b or 1, 1, s_1 + s_2, s_1 + s_2]`. Returns `[b, s_1 + s_2, d]`.
    fn fused_packed_attention2(
        first: FloatTensor<Self>,
        second: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        n_heads: usize,
    ) -> FloatTensor<Self> {
        let ([q, k, v], scale) = unpack::<Self>(vec![first, second], n_heads);
        let q = Self::float_mul_scalar(q, scale.into());
        merge_heads::<Self>(Self::fused_attention(q, k, v, bias))
    }
}

/// Queries (not yet scaled), keys and values `[b, heads, s, head_dim]` of the whole sequence
/// from its packed segments (see [`FusedOps::fused_packed_attention`]), and the queries'
/// scale `1 / sqrt(head_dim)`.
fn unpack<B: Backend>(qkv: Vec<FloatTensor<B>>, n_heads: usize) -> ([FloatTensor<B>; 3], f32) {
    let d = qkv[0].shape()[2] / 3;
    let scale = 1.0 / ((d / n_heads) as f32).sqrt();
    let part = |i: usize| {
        let parts: Vec<FloatTensor<B>> = qkv
            .iter()
            .map(|t| narrow::<B>(t.clone(), 2, i * d, d))
            .collect();
        let whole = if parts.len() == 1 {
            parts.into_iter().next().expect("one segment")
        } else {
            B::float_cat(parts, 1)
        };
        split_heads::<B>(whole, n_heads)
    };
    ([part(0), part(1), part(2)], scale)
}

/// `len` entries of `t` from `start` along `dim`.
fn narrow<B: Backend>(t: FloatTensor<B>, dim: usize, start: usize, len: usize) -> FloatTensor<B> {
    let mut slices = vec![burn::tensor::Slice::full(); t.shape().num_dims()];
    slices[dim] = burn::tensor::Slice::new(start as isize, Some((start + len) as isize), 1);
    B::float_slice(t, &slices)
}

/// `[b, s, d]` to heads `[b, heads, s, d / heads]`.
fn split_heads<B: Backend>(t: FloatTensor<B>, n_heads: usize) -> FloatTensor<B> {
    let [b, s, d] = t.shape().dims();
    B::float_swap_dims(
        B::float_reshape(t, [b, s, n_heads, d / n_heads].into()),
        1,
        2,
    )
}

/// Heads `[b, heads, s, e]` to `[b, s, heads * e]`.
fn merge_heads<B: Backend>(t: FloatTensor<B>) -> FloatTensor<B> {
    let [b, h, s, e] = t.shape().dims();
    B::float_reshape(B::float_swap_dims(t, 1, 2), [b, s, h * e].into())
}

/// `softmax(q k^T + bias) v` from the backend's matmuls and softmax: (output, probabilities).
fn composite_attention<B: Backend>(
    q: FloatTensor<B>,
    k: FloatTensor<B>,
    v: FloatTensor<B>,
    bias: FloatTensor<B>,
) -> (FloatTensor<B>, FloatTensor<B>) {
    let s = B::float_add(B::float_matmul(q, B::float_swap_dims(k, 2, 3)), bias);
    let p = B::softmax(s, 3);
    (B::float_matmul(p.clone(), v), p)
}

/// The forward and backward kernels of [`FusedOps::fused_attention`] on an inner backend.
pub trait AttentionKernels: Backend {
    /// The output and what the backward needs besides the inputs (by default the
    /// probabilities).
    fn attention_forward(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
        bias: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        composite_attention::<Self>(q, k, v, bias)
    }

    /// `[dq, dk, dv]` from the output gradient `g`.
    #[allow(clippy::too_many_arguments)]
    fn attention_backward(
        g: FloatTensor<Self>,
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
        _bias: FloatTensor<Self>,
        _out: FloatTensor<Self>,
        p: FloatTensor<Self>,
    ) -> [FloatTensor<Self>; 3] {
        composite_attention_backward::<Self>(g, q, k, v, p)
    }

    /// [`AttentionKernels::attention_forward`] of queries not yet scaled: `softmax(scale q k^T +
    /// bias) v`. Returns the output, the auxiliary tensor and the queries the backward is to be
    /// given. By default the queries are scaled first (one pass over them) and kept scaled.
    fn attention_forward_scaled(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        scale: f32,
    ) -> [FloatTensor<Self>; 3] {
        scaled::<Self>(q, scale, |q| Self::attention_forward(q, k, v, bias))
    }

    /// The backward of [`AttentionKernels::attention_forward_scaled`], given the queries it
    /// returned: `[dq, dk, dv]`, `dq` with respect to the queries before scaling.
    #[allow(clippy::too_many_arguments)]
    fn attention_backward_scaled(
        g: FloatTensor<Self>,
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        out: FloatTensor<Self>,
        aux: FloatTensor<Self>,
        scale: f32,
    ) -> [FloatTensor<Self>; 3] {
        scale_dq::<Self>(Self::attention_backward(g, q, k, v, bias, out, aux), scale)
    }
}

/// `attend` of the queries scaled by `scale`: its output and auxiliary tensor, and the scaled
/// queries (what the backward of pre-scaled attention is given).
fn scaled<B: Backend>(
    q: FloatTensor<B>,
    scale: f32,
    attend: impl FnOnce(FloatTensor<B>) -> (FloatTensor<B>, FloatTensor<B>),
) -> [FloatTensor<B>; 3] {
    let q = B::float_mul_scalar(q, scale.into());
    let (out, aux) = attend(q.clone());
    [out, aux, q]
}

/// Gradients of pre-scaled attention turned into those of the queries before scaling.
fn scale_dq<B: Backend>([dq, dk, dv]: [FloatTensor<B>; 3], scale: f32) -> [FloatTensor<B>; 3] {
    [B::float_mul_scalar(dq, scale.into()), dk, dv]
}

/// The backward of [`composite_attention`] given its probabilities `p`: `[dq, dk, dv]`.
fn composite_attention_backward<B: Backend>(
    g: FloatTensor<B>,
    q: FloatTensor<B>,
    k: FloatTensor<B>,
    v: FloatTensor<B>,
    p: FloatTensor<B>,
) -> [FloatTensor<B>; 3] {
    let dv = B::float_matmul(B::float_swap_dims(p.clone(), 2, 3), g.clone());
    let dp = B::float_matmul(g, B::float_swap_dims(v, 2, 3));
    let row = B::float_sum_dim(B::float_mul(dp.clone(), p.clone()), 3);
    let ds = B::float_mul(p, B::float_sub(dp, row));
    let dq = B::float_matmul(ds.clone(), k);
    let dk = B::float_matmul(B::float_swap_dims(ds, 2, 3), q);
    [dq, dk, dv]
}

/// The default kernels of each trait for every backend but libtorch, which has its own.
macro_rules! default_kernels {
    ($($kernels:ident),*) => {$(
        impl $kernels for Flex {}
        #[cfg(feature = "ndarray")]
        impl $kernels for burn::backend::NdArray {}
        #[cfg(feature = "wgpu")]
        impl $kernels for burn::backend::Cube {}
    )*};
}

default_kernels!(AttentionKernels, NormKernels);

#[cfg(feature = "ndarray")]
impl FusedOps for burn::backend::NdArray {}
#[cfg(feature = "wgpu")]
impl FusedOps for burn::backend::Cube {}

/// Flex's own GELU calls libm's scalar `erff` (and `expf` in the backward) element by
/// element: 9% of a tiny-preset training step in a profile. With the `fast-gelu` feature flex
/// runs [`flex_gelu_fast`] and [`flex_gelu_backward_fast`] instead: the same functions from
/// branch-free polynomials that the compiler vectorises, accurate to a few 1e-7 ([`erf_fast`],
/// [`exp_neg_fast`]); the training step is about 13% faster (README, Performance). Off by
/// default: values move in the 7th digit, and the committed results were made without it.
impl FusedOps for Flex {
    #[cfg(feature = "fast-gelu")]
    fn fused_gelu(x: FloatTensor<Self>) -> FloatTensor<Self> {
        flex_gelu_fast(x)
    }

    #[cfg(feature = "fast-gelu")]
    fn fused_gelu_backward(x: FloatTensor<Self>, g: FloatTensor<Self>) -> FloatTensor<Self> {
        flex_gelu_backward_fast(x, g)
    }
}

/// GELU on flex through [`erf_fast`] (f64 tensors through libm).
pub fn flex_gelu_fast(x: FloatTensor<Flex>) -> FloatTensor<Flex> {
    burn::backend::flex::ops::unary::unary_op(x, gelu_fast, |x: f64| {
        0.5 * x * (1.0 + libm::erf(x * std::f64::consts::FRAC_1_SQRT_2))
    })
}

/// GELU's backward on flex, `g (Phi(x) + x phi(x))`, through [`erf_fast`] and
/// [`exp_neg_fast`].
pub fn flex_gelu_backward_fast(x: FloatTensor<Flex>, g: FloatTensor<Flex>) -> FloatTensor<Flex> {
    burn::backend::flex::ops::binary::binary_op(
        x,
        g,
        |x: f32, g| g * gelu_slope_fast(x),
        |x: f64, g| {
            let cdf = 0.5 * (1.0 + libm::erf(x * std::f64::consts::FRAC_1_SQRT_2));
            let pdf = (-0.5 * x * x).exp() / (2.0 * std::f64::consts::PI).sqrt();
            g * (cdf + x * pdf)
        },
        None,
    )
}

/// `erf(x)` without branches or library calls (Abramowitz and Stegun 7.1.26: `1 - t (a1 + a2 t
/// + ... + a5 t^4) e^(-x^2)`, `t = 1 / (1 + p x)`, for `x >= 0`, odd; absolute error under
/// 1.5e-7 in exact arithmetic), with `e^(-x^2)` from [`exp_neg_fast`].
#[inline(always)]
pub fn erf_fast(x: f32) -> f32 {
    erf_with(x, exp_neg_fast(-x * x))
}

/// [`erf_fast`] given `e = exp(-x^2)` (GELU's backward has it already).
#[inline(always)]
fn erf_with(x: f32, e: f32) -> f32 {
    let a = x.abs();
    let t = 1.0 / (1.0 + 0.327_591_1 * a);
    let poly = t
        * (0.254_829_6
            + t * (-0.284_496_74 + t * (1.421_413_7 + t * (-1.453_152 + t * 1.061_405_4))));
    (1.0 - poly * e).copysign(x)
}

/// `exp(x)` for `x <= 0` without library calls: `2^n e^r` with `n` the nearest integer to
/// `x / ln 2` and a degree-6 polynomial for `e^r`, `|r| <= ln 2 / 2` (relative error about
/// 2e-7); `x` below -87 gives `exp(-87)`.
#[inline(always)]
pub fn exp_neg_fast(x: f32) -> f32 {
    let x = x.clamp(-87.0, 0.0);
    // Round to nearest by the 1.5 * 2^23 trick (no rounding call, so it vectorises).
    let n = (x * std::f32::consts::LOG2_E + 12_582_912.0) - 12_582_912.0;
    // ln 2 in two parts (Cephes): the first has few bits, so n times it is exact.
    let r = (x - n * 0.693_359_4) + n * 2.121_944_4e-4;
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0))))));
    p * f32::from_bits(((n as i32 + 127) as u32) << 23)
}

/// GELU, `0.5 x (1 + erf(x / sqrt 2))`, through [`erf_fast`].
#[inline(always)]
fn gelu_fast(x: f32) -> f32 {
    0.5 * x * (1.0 + erf_fast(x * std::f32::consts::FRAC_1_SQRT_2))
}

/// GELU's derivative, `Phi(x) + x phi(x)`: one [`exp_neg_fast`], `exp(-x^2 / 2)`, serves both
/// the erf of `x / sqrt 2` and the density.
#[inline(always)]
fn gelu_slope_fast(x: f32) -> f32 {
    let e = exp_neg_fast(-0.5 * x * x);
    let cdf = 0.5 * (1.0 + erf_with(x * std::f32::consts::FRAC_1_SQRT_2, e));
    // 1 / sqrt(2 pi)
    cdf + x * 0.398_942_3 * e
}

/// libtorch's flash attention on the CPU (the composite elsewhere, e.g. on CUDA). The
/// kernels take the queries' scale themselves, so the scaled variants pass it in rather than
/// scaling the queries forward and their gradient backward (two passes a layer saved).
#[cfg(feature = "tch")]
impl AttentionKernels for burn::backend::LibTorch {
    fn attention_forward(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
        bias: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        if q.tensor.device() != tch::Device::Cpu {
            return composite_attention::<Self>(q, k, v, bias);
        }
        flash_forward(&q, &k, &v, &bias, 1.0)
    }

    fn attention_backward(
        g: FloatTensor<Self>,
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        out: FloatTensor<Self>,
        aux: FloatTensor<Self>,
    ) -> [FloatTensor<Self>; 3] {
        if q.tensor.device() != tch::Device::Cpu {
            return composite_attention_backward::<Self>(g, q, k, v, aux);
        }
        flash_backward([&g, &q, &k, &v, &bias, &out, &aux], 1.0)
    }

    fn attention_forward_scaled(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        scale: f32,
    ) -> [FloatTensor<Self>; 3] {
        if q.tensor.device() != tch::Device::Cpu {
            return scaled::<Self>(q, scale, |q| composite_attention::<Self>(q, k, v, bias));
        }
        let (out, lse) = flash_forward(&q, &k, &v, &bias, scale);
        [out, lse, q]
    }

    fn attention_backward_scaled(
        g: FloatTensor<Self>,
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        out: FloatTensor<Self>,
        aux: FloatTensor<Self>,
        scale: f32,
    ) -> [FloatTensor<Self>; 3] {
        if q.tensor.device() != tch::Device::Cpu {
            let grads = composite_attention_backward::<Self>(g, q, k, v, aux);
            return scale_dq::<Self>(grads, scale);
        }
        flash_backward([&g, &q, &k, &v, &bias, &out, &aux], scale)
    }
}

/// libtorch's CPU flash attention, `softmax(scale q k^T + bias) v`: the output and the
/// log-sum-exp of each row, which its backward needs.
#[cfg(feature = "tch")]
fn flash_forward(
    q: &burn::backend::libtorch::TchTensor,
    k: &burn::backend::libtorch::TchTensor,
    v: &burn::backend::libtorch::TchTensor,
    bias: &burn::backend::libtorch::TchTensor,
    scale: f32,
) -> (
    burn::backend::libtorch::TchTensor,
    burn::backend::libtorch::TchTensor,
) {
    use burn::backend::libtorch::TchTensor;
    let (out, lse) = tch::Tensor::internal_scaled_dot_product_flash_attention_for_cpu(
        &q.tensor,
        &k.tensor,
        &v.tensor,
        0.0,
        false,
        Some(&bias.tensor),
        f64::from(scale),
    );
    (TchTensor::new(out), TchTensor::new(lse))
}

/// The backward of [`flash_forward`] from `[g, q, k, v, bias, out, lse]`: `[dq, dk, dv]`.
#[cfg(feature = "tch")]
fn flash_backward(
    t: [&burn::backend::libtorch::TchTensor; 7],
    scale: f32,
) -> [burn::backend::libtorch::TchTensor; 3] {
    use burn::backend::libtorch::TchTensor;
    let [g, q, k, v, bias, out, lse] = t.map(|t| &t.tensor);
    let (dq, dk, dv) = tch::Tensor::internal_scaled_dot_product_flash_attention_for_cpu_backward(
        g,
        q,
        k,
        v,
        out,
        lse,
        0.0,
        false,
        Some(bias),
        f64::from(scale),
    );
    [TchTensor::new(dq), TchTensor::new(dk), TchTensor::new(dv)]
}

/// The forward and backward kernels of [`FusedOps::fused_layer_norm`] on an inner backend.
pub trait NormKernels: Backend {
    /// The output and what the backward needs (by default the input and the scale).
    fn layer_norm_forward(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
    ) -> (FloatTensor<Self>, Vec<FloatTensor<Self>>) {
        let y = Self::layer_norm(x.clone(), gamma.clone(), Some(beta), epsilon);
        (y, vec![x, gamma])
    }

    /// `[dx, dgamma, dbeta]` from the output gradient `g` and what the forward saved.
    fn layer_norm_backward(
        g: FloatTensor<Self>,
        saved: Vec<FloatTensor<Self>>,
        epsilon: f64,
    ) -> [FloatTensor<Self>; 3] {
        let [x, gamma]: [FloatTensor<Self>; 2] = saved.try_into().expect("input and scale");
        composite_layer_norm_backward::<Self>(g, x, gamma, epsilon)
    }
}

/// The layer norm's gradients written out from the input: the normalised input and the
/// reciprocal deviation are recomputed, then `dbeta = sum(g)`, `dgamma = sum(g xhat)` over the
/// rows and `dx = r (g' - mean(g') - xhat mean(g' xhat))` with `g' = g gamma`.
fn composite_layer_norm_backward<B: Backend>(
    g: FloatTensor<B>,
    x: FloatTensor<B>,
    gamma: FloatTensor<B>,
    epsilon: f64,
) -> [FloatTensor<B>; 3] {
    let shape = x.shape();
    let last = shape.num_dims() - 1;
    let centred = B::float_sub(x.clone(), B::float_mean_dim(x, last));
    let var = B::float_mean_dim(B::float_mul(centred.clone(), centred.clone()), last);
    let r = B::float_recip(B::float_sqrt(B::float_add_scalar(var, epsilon.into())));
    let xhat = B::float_mul(centred, r.clone());
    let dbeta = sum_rows::<B>(g.clone());
    let dgamma = sum_rows::<B>(B::float_mul(g.clone(), xhat.clone()));
    let mut bshape = vec![1; shape.num_dims()];
    bshape[last] = shape[last];
    let gx = B::float_mul(g, B::float_reshape(gamma, bshape.into()));
    let m1 = B::float_mean_dim(gx.clone(), last);
    let m2 = B::float_mean_dim(B::float_mul(gx.clone(), xhat.clone()), last);
    let inner = B::float_sub(B::float_sub(gx, m1), B::float_mul(xhat, m2));
    [B::float_mul(inner, r), dgamma, dbeta]
}

/// libtorch's own layer norm backward (one fused kernel for the three gradients, as PyTorch
/// runs it), reached through libtorch's autograd: the forward runs on leaves that track
/// gradients, and the backward asks for the gradients of the dot product of `y` and `g`
/// (flattened): autograd hands `y` the gradient `g` and runs libtorch's layer-norm backward.
#[cfg(feature = "tch")]
impl NormKernels for burn::backend::LibTorch {
    fn layer_norm_forward(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
    ) -> (FloatTensor<Self>, Vec<FloatTensor<Self>>) {
        use burn::backend::libtorch::TchTensor;
        let leaf = |t: &TchTensor| t.tensor.detach().set_requires_grad(true);
        let (xl, gl, bl) = (leaf(&x), leaf(&gamma), leaf(&beta));
        let d = *x.tensor.size().last().expect("a last dimension");
        let y = xl.layer_norm([d], Some(&gl), Some(&bl), epsilon, false);
        let out = TchTensor::new(y.detach());
        // The leaves share the inputs' memory: `x`, `gamma` and `beta` are kept too, so burn
        // sees that memory as shared and never writes into it in place before the backward.
        let saved = vec![
            TchTensor::new(y),
            TchTensor::new(xl),
            TchTensor::new(gl),
            TchTensor::new(bl),
            x,
            gamma,
            beta,
        ];
        (out, saved)
    }

    fn layer_norm_backward(
        g: FloatTensor<Self>,
        saved: Vec<FloatTensor<Self>>,
        _epsilon: f64,
    ) -> [FloatTensor<Self>; 3] {
        use burn::backend::libtorch::TchTensor;
        let [y, xl, gl, bl, ..] = &saved[..] else {
            unreachable!("layer_norm_forward saves seven tensors")
        };
        // One reduction over both tensors (a dot product) rather than a product written out
        // and then summed: its backward hands `y` the gradient `g` in one pass.
        let target = y.tensor.reshape([-1]).dot(&g.tensor.reshape([-1]));
        let grads = tch::Tensor::run_backward(
            &[target],
            &[&xl.tensor, &gl.tensor, &bl.tensor],
            false,
            false,
        );
        let [dx, dgamma, dbeta]: [tch::Tensor; 3] = grads.try_into().expect("three gradients");
        [
            TchTensor::new(dx),
            TchTensor::new(dgamma),
            TchTensor::new(dbeta),
        ]
    }
}

#[cfg(feature = "tch")]
impl FusedOps for burn::backend::LibTorch {
    fn fused_attention(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
        bias: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        // burn-tch's own attention takes the composite path when given a bias.
        <Self as AttentionKernels>::attention_forward(q, k, v, bias).0
    }

    fn fused_packed_attention(
        qkv: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        n_heads: usize,
    ) -> FloatTensor<Self> {
        let ([q, k, v], scale) = unpack::<Self>(vec![qkv], n_heads);
        let [out, ..] = Self::attention_forward_scaled(q, k, v, bias, scale);
        merge_heads::<Self>(out)
    }

    fn fused_packed_attention2(
        first: FloatTensor<Self>,
        second: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        n_heads: usize,
    ) -> FloatTensor<Self> {
        let ([q, k, v], scale) = unpack::<Self>(vec![first, second], n_heads);
        let [out, ..] = Self::attention_forward_scaled(q, k, v, bias, scale);
        merge_heads::<Self>(out)
    }
}

impl<B: Backend + FusedOps + AttentionKernels + NormKernels, C: CheckpointStrategy> FusedOps
    for Autodiff<B, C>
{
    fn fused_softmax(x: FloatTensor<Self>, dim: usize) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct Softmax;

        impl<B: Backend> Backward<B, 1> for Softmax {
            /// The output and the dimension.
            type State = (FloatTensor<B>, usize);

            fn backward(
                self,
                ops: Ops<Self::State, 1>,
                grads: &mut Gradients,
                _checkpointer: &mut Checkpointer,
            ) {
                let (y, dim) = ops.state;
                unary::<B, _>(ops.parents, ops.node, grads, |g| {
                    let gy = B::float_mul(g, y.clone());
                    let row = B::float_sum_dim(gy.clone(), dim);
                    B::float_sub(gy, B::float_mul(y, row))
                });
            }
        }

        let guard = x.node();
        match Softmax.prepare::<C>([guard]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let y = B::fused_softmax(x.into_primitive(), dim);
                prep.finish((y.clone(), dim), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::fused_softmax(x.into_primitive(), dim)),
        }
    }

    fn fused_layer_norm(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
    ) -> FloatTensor<Self> {
        layer_norm_autodiff::<B, C>(x, gamma, beta, epsilon)
    }

    fn fused_gelu(x: FloatTensor<Self>) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct Gelu;

        impl<B: Backend + FusedOps> Backward<B, 1> for Gelu {
            /// The input.
            type State = FloatTensor<B>;

            fn backward(
                self,
                ops: Ops<Self::State, 1>,
                grads: &mut Gradients,
                _checkpointer: &mut Checkpointer,
            ) {
                let x = ops.state;
                unary::<B, _>(ops.parents, ops.node, grads, |g| {
                    B::fused_gelu_backward(x, g)
                });
            }
        }

        let guard = x.node();
        match Gelu.prepare::<C>([guard]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let x = x.into_primitive();
                let y = B::fused_gelu(x.clone());
                prep.finish(x, y)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::fused_gelu(x.into_primitive())),
        }
    }

    fn fused_attention(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
        bias: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct Attention;

        impl<B: Backend + AttentionKernels> Backward<B, 3> for Attention {
            /// q, k, v, the mask, the output and the forward's auxiliary tensor.
            type State = [FloatTensor<B>; 6];

            fn backward(
                self,
                ops: Ops<Self::State, 3>,
                grads: &mut Gradients,
                _checkpointer: &mut Checkpointer,
            ) {
                let [node_q, node_k, node_v] = ops.parents;
                let g = grads.consume::<B>(&ops.node);
                let [q, k, v, bias, out, aux] = ops.state;
                let [dq, dk, dv] = B::attention_backward(g, q, k, v, bias, out, aux);
                for (node, d) in [(node_q, dq), (node_k, dk), (node_v, dv)] {
                    if let Some(node) = node {
                        grads.register::<B>(node.id, d);
                    }
                }
            }
        }

        let nodes = [q.node(), k.node(), v.node()];
        let (q, k, v, bias) = (
            q.into_primitive(),
            k.into_primitive(),
            v.into_primitive(),
            bias.into_primitive(),
        );
        match Attention.prepare::<C>(nodes).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let (out, aux) =
                    B::attention_forward(q.clone(), k.clone(), v.clone(), bias.clone());
                prep.finish([q, k, v, bias, out.clone(), aux], out)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::fused_attention(q, k, v, bias)),
        }
    }

    fn fused_packed_attention(
        qkv: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        n_heads: usize,
    ) -> FloatTensor<Self> {
        packed_attention_autodiff::<B, C, 1>([qkv], bias, n_heads)
    }

    fn fused_packed_attention2(
        first: FloatTensor<Self>,
        second: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        n_heads: usize,
    ) -> FloatTensor<Self> {
        packed_attention_autodiff::<B, C, 2>([first, second], bias, n_heads)
    }
}

/// [`FusedOps::fused_packed_attention`] on the autodiff backend over `N` segments: one node
/// whose forward and backward are the inner backend's [`AttentionKernels`]. The gradient of
/// each segment's packed projections is `[dq | dk | dv]` of its rows, so the model's QKV
/// projection stays one matrix product forward and backward, with no slice of the
/// activations (whose backward would zero-fill and scatter) on the way.
fn packed_attention_autodiff<
    B: Backend + FusedOps + AttentionKernels,
    C: CheckpointStrategy,
    const N: usize,
>(
    qkv: [FloatTensor<Autodiff<B, C>>; N],
    bias: FloatTensor<Autodiff<B, C>>,
    n_heads: usize,
) -> FloatTensor<Autodiff<B, C>> {
    #[derive(Debug)]
    struct PackedAttention<const N: usize>;

    impl<B: Backend + AttentionKernels, const N: usize> Backward<B, N> for PackedAttention<N> {
        /// q (as [`AttentionKernels::attention_forward_scaled`] returned it), k, v, the mask,
        /// the output and the forward's auxiliary tensor; each segment's length; the queries'
        /// scale.
        type State = ([FloatTensor<B>; 6], [usize; N], f32);

        fn backward(
            self,
            ops: Ops<Self::State, N>,
            grads: &mut Gradients,
            _checkpointer: &mut Checkpointer,
        ) {
            let g = grads.consume::<B>(&ops.node);
            let ([q, k, v, bias, out, aux], lens, scale) = ops.state;
            let n_heads = q.shape()[1];
            let g = split_heads::<B>(g, n_heads);
            let [dq, dk, dv] = B::attention_backward_scaled(g, q, k, v, bias, out, aux, scale);
            let [dq, dk, dv] = [dq, dk, dv].map(merge_heads::<B>);
            let mut start = 0;
            for (node, len) in ops.parents.into_iter().zip(lens) {
                if let Some(node) = node {
                    let rows = |t: &FloatTensor<B>| {
                        if N == 1 {
                            t.clone()
                        } else {
                            narrow::<B>(t.clone(), 1, start, len)
                        }
                    };
                    let d = B::float_cat(vec![rows(&dq), rows(&dk), rows(&dv)], 2);
                    grads.register::<B>(node.id, d);
                }
                start += len;
            }
        }
    }

    let nodes = qkv.each_ref().map(|t| t.node());
    let lens = qkv.each_ref().map(|t| t.shape()[1]);
    let bias = bias.into_primitive();
    let ([q, k, v], scale) = unpack::<B>(
        qkv.into_iter().map(|t| t.into_primitive()).collect(),
        n_heads,
    );
    match PackedAttention::<N>
        .prepare::<C>(nodes)
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => {
            let [out, aux, q] =
                B::attention_forward_scaled(q, k.clone(), v.clone(), bias.clone(), scale);
            let y = merge_heads::<B>(out.clone());
            prep.finish(([q, k, v, bias, out, aux], lens, scale), y)
        }
        OpsKind::UnTracked(prep) => {
            let q = B::float_mul_scalar(q, scale.into());
            prep.finish(merge_heads::<B>(B::fused_attention(q, k, v, bias)))
        }
    }
}

/// `[..., d]` viewed as `[rows, d]`.
fn rows<B: Backend>(t: FloatTensor<B>) -> FloatTensor<B> {
    let shape = t.shape();
    let d = shape[shape.num_dims() - 1];
    let n = shape.num_elements() / d;
    B::float_reshape(t, [n, d].into())
}

/// The sum over every row of `t: [..., d]`, as `[d]`.
fn sum_rows<B: Backend>(t: FloatTensor<B>) -> FloatTensor<B> {
    let d = t.shape()[t.shape().num_dims() - 1];
    B::float_reshape(B::float_sum_dim(rows::<B>(t), 0), [d].into())
}

/// The layer norm of [`FusedOps`] on the autodiff backend: one node, whose forward and
/// backward are the inner backend's [`NormKernels`].
fn layer_norm_autodiff<B: Backend + FusedOps + NormKernels, C: CheckpointStrategy>(
    x: FloatTensor<Autodiff<B, C>>,
    gamma: FloatTensor<Autodiff<B, C>>,
    beta: FloatTensor<Autodiff<B, C>>,
    epsilon: f64,
) -> FloatTensor<Autodiff<B, C>> {
    #[derive(Debug)]
    struct LayerNorm;

    impl<B: Backend + NormKernels> Backward<B, 3> for LayerNorm {
        /// What the forward saved, and epsilon.
        type State = (Vec<FloatTensor<B>>, f64);

        fn backward(
            self,
            ops: Ops<Self::State, 3>,
            grads: &mut Gradients,
            _checkpointer: &mut Checkpointer,
        ) {
            let g = grads.consume::<B>(&ops.node);
            let (saved, epsilon) = ops.state;
            let ds = B::layer_norm_backward(g, saved, epsilon);
            for (node, d) in ops.parents.into_iter().zip(ds) {
                if let Some(node) = node {
                    grads.register::<B>(node.id, d);
                }
            }
        }
    }

    let nodes = [x.node(), gamma.node(), beta.node()];
    let (x, gamma, beta) = (
        x.into_primitive(),
        gamma.into_primitive(),
        beta.into_primitive(),
    );
    match LayerNorm.prepare::<C>(nodes).compute_bound().stateful() {
        OpsKind::Tracked(prep) => {
            let (y, saved) = B::layer_norm_forward(x, gamma, beta, epsilon);
            prep.finish((saved, epsilon), y)
        }
        OpsKind::UnTracked(prep) => prep.finish(B::fused_layer_norm(x, gamma, beta, epsilon)),
    }
}

/// Softmax along `dim`, one operation forward and backward (see the module docs).
pub fn softmax<const D: usize>(x: Tensor<D>, dim: usize) -> Tensor<D> {
    Tensor::from_dispatch(<burn::backend::Dispatch as FusedOps>::fused_softmax(
        x.into_dispatch(),
        dim,
    ))
}

/// Attention `softmax(q k^T + bias) v` of pre-scaled queries as one operation (see the module
/// docs). `q: [b, h, l, e]`, `k, v: [b, h, s, e]`, `bias: [b or 1, 1, l, s]`.
pub fn attention(q: Tensor<4>, k: Tensor<4>, v: Tensor<4>, bias: Tensor<4>) -> Tensor<4> {
    Tensor::from_dispatch(<burn::backend::Dispatch as FusedOps>::fused_attention(
        q.into_dispatch(),
        k.into_dispatch(),
        v.into_dispatch(),
        bias.into_dispatch(),
    ))
}

/// Multi-head attention of packed projections as one operation (see
/// [`FusedOps::fused_packed_attention`]): `first` and `second` the sequence's segments in
/// order, each `[b, s_i, 3 d]` with unscaled queries, `bias: [b or 1, 1, s, s]`; returns
/// `[b, s, d]`.
pub fn packed_attention(
    first: Tensor<3>,
    second: Option<Tensor<3>>,
    bias: Tensor<4>,
    n_heads: usize,
) -> Tensor<3> {
    type D = burn::backend::Dispatch;
    let (first, bias) = (first.into_dispatch(), bias.into_dispatch());
    Tensor::from_dispatch(match second {
        None => <D as FusedOps>::fused_packed_attention(first, bias, n_heads),
        Some(second) => {
            <D as FusedOps>::fused_packed_attention2(first, second.into_dispatch(), bias, n_heads)
        }
    })
}

/// GELU (the exact, erf form) as one operation forward and backward: the inner backend's
/// GELU and GELU backward (bit for bit burn's), or on flex with the `fast-gelu` feature
/// vectorisable polynomials instead of libm's scalar `erff` (see `impl FusedOps for Flex`).
pub fn gelu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    Tensor::from_dispatch(<burn::backend::Dispatch as FusedOps>::fused_gelu(
        x.into_dispatch(),
    ))
}

/// The epsilon of every layer norm in the model (burn's `LayerNormConfig` default).
pub const LN_EPSILON: f64 = 1e-5;

/// `norm` applied over the last dimension, one operation forward and backward: the inner
/// backend's own layer norm forward (one kernel on libtorch and flex), the backward written
/// out, or libtorch's own backward kernel on libtorch ([`NormKernels`]). The norm must have a shift (`beta`) and burn's default epsilon, as every norm here has.
pub fn layer_norm<const D: usize>(norm: &burn::nn::LayerNorm, x: Tensor<D>) -> Tensor<D> {
    let beta = norm
        .beta
        .as_ref()
        .expect("the model's norms all have a shift")
        .val();
    Tensor::from_dispatch(<burn::backend::Dispatch as FusedOps>::fused_layer_norm(
        x.into_dispatch(),
        norm.gamma.val().into_dispatch(),
        beta.into_dispatch(),
        LN_EPSILON,
    ))
}

#[cfg(test)]
mod tests {
    use burn::tensor::Distribution;
    use burn::tensor::activation;

    use super::*;

    /// The fused softmax and Burn's composite agree, values and gradients, with a mask.
    #[test]
    fn matches_the_composite_forward_and_backward() {
        let dev = Device::flex().autodiff();
        let x = Tensor::<4>::random([2, 3, 5, 7], Distribution::Normal(0.0, 2.0), &dev);
        let bias = Tensor::<4>::random([2, 1, 5, 7], Distribution::Uniform(0.0, 1.0), &dev)
            .greater_elem(0.7)
            .float()
            .mul_scalar(-1e9);
        // A loss that weighs every output differently, so the gradient is not trivially zero.
        let w = Tensor::<4>::random([2, 3, 5, 7], Distribution::Normal(0.0, 1.0), &dev);
        let grad_of = |fused: bool| {
            let x = x.clone().require_grad();
            let s = x.clone() + bias.clone();
            let y = if fused {
                softmax(s, 3)
            } else {
                activation::softmax(s, 3)
            };
            let g = (y.clone() * w.clone()).sum().backward();
            (y.inner(), x.grad(&g).unwrap())
        };
        let (yf, gf) = grad_of(true);
        let (yc, gc) = grad_of(false);
        let dy = (yf - yc).abs().max().into_scalar::<f32>();
        let dg = (gf.clone() - gc).abs().max().into_scalar::<f32>();
        assert!(dy < 1e-6 && dg < 1e-5, "{dy} {dg}");
        // Rows of a softmax gradient sum to zero; a wrong backward would not.
        let row_sums = gf.clone().sum_dim(3).abs().max().into_scalar::<f32>();
        assert!(row_sums < 1e-5, "{row_sums}");
        assert!(gf.abs().max().into_scalar::<f32>() > 1e-2);
    }

    /// The fused attention and the composite (matmul, mask, softmax, matmul) agree: output and
    /// the gradients of q, k and v, on `dev`.
    fn attention_matches_the_composite_on(dev: &Device) {
        let dev = dev.clone().autodiff();
        let (b, h, l, s, e) = (2, 3, 5, 9, 4);
        let q = Tensor::<4>::random([b, h, l, e], Distribution::Normal(0.0, 1.0), &dev);
        let k = Tensor::<4>::random([b, h, s, e], Distribution::Normal(0.0, 1.0), &dev);
        let v = Tensor::<4>::random([b, h, s, e], Distribution::Normal(0.0, 1.0), &dev);
        // Every query keeps its first key; about a third of the rest are masked.
        let mask = Tensor::<4>::random([b, 1, l, s], Distribution::Uniform(0.0, 1.0), &dev)
            .greater_elem(0.66)
            .float()
            .slice_assign([0..b, 0..1, 0..l, 0..1], Tensor::zeros([b, 1, l, 1], &dev))
            .mul_scalar(-1e9);
        let w = Tensor::<4>::random([b, h, l, e], Distribution::Normal(0.0, 1.0), &dev);
        let run = |fused: bool| {
            let (q, k, v) = (
                q.clone().require_grad(),
                k.clone().require_grad(),
                v.clone().require_grad(),
            );
            let y = if fused {
                attention(q.clone(), k.clone(), v.clone(), mask.clone())
            } else {
                let s = q.clone().matmul(k.clone().swap_dims(2, 3)) + mask.clone();
                activation::softmax(s, 3).matmul(v.clone())
            };
            let g = (y.clone() * w.clone()).sum().backward();
            let grads = [
                q.grad(&g).unwrap(),
                k.grad(&g).unwrap(),
                v.grad(&g).unwrap(),
            ];
            (y.inner(), grads)
        };
        let ((yf, gf), (yc, gc)) = (run(true), run(false));
        let diff = |a: Tensor<4>, b: Tensor<4>| (a - b).abs().max().into_scalar::<f32>();
        assert!(diff(yf.clone(), yc) < 1e-5);
        // Forward only, on the plain device (the inference path: the backend's own kernel).
        let inference = attention(q.inner(), k.inner(), v.inner(), mask.inner());
        assert!(diff(inference, yf) < 1e-5);
        for (a, b) in gf.into_iter().zip(gc) {
            assert!(a.clone().abs().max().into_scalar::<f32>() > 1e-2);
            let d = diff(a, b);
            assert!(d < 1e-4, "{d}");
        }
    }

    /// A test on flex, and (with `tch`) the same on libtorch's CPU, where the fused
    /// operations run libtorch's own kernels (flash attention, the layer norm's backward).
    macro_rules! on_flex_and_libtorch {
        ($check:ident, $flex:ident, $tch:ident) => {
            #[test]
            fn $flex() {
                $check(&Device::flex());
            }

            #[cfg(feature = "tch")]
            #[test]
            fn $tch() {
                $check(&Device::from(burn::backend::libtorch::LibTorchDevice::Cpu));
            }
        };
    }

    on_flex_and_libtorch!(
        attention_matches_the_composite_on,
        attention_matches_the_composite,
        attention_matches_the_composite_on_libtorch
    );

    /// Packed attention over two segments and the same written out with burn's own ops
    /// (slices of the projections, heads, scaled queries, masked softmax) agree: the output
    /// and the gradients of both segments' packed projections, on `dev`; one segment alone
    /// too, and the forward-only path.
    fn packed_attention_matches_the_composite_on(dev: &Device) {
        let dev = dev.clone().autodiff();
        let (b, heads, s1, s2, d) = (2, 2, 5, 4, 8);
        let s = s1 + s2;
        let qkv1 = Tensor::<3>::random([b, s1, 3 * d], Distribution::Normal(0.0, 1.0), &dev);
        let qkv2 = Tensor::<3>::random([b, s2, 3 * d], Distribution::Normal(0.0, 1.0), &dev);
        // Every query keeps its first key; about a third of the rest are masked.
        let mask = Tensor::<4>::random([b, 1, s, s], Distribution::Uniform(0.0, 1.0), &dev)
            .greater_elem(0.66)
            .float()
            .slice_assign([0..b, 0..1, 0..s, 0..1], Tensor::zeros([b, 1, s, 1], &dev))
            .mul_scalar(-1e9);
        let w = Tensor::<3>::random([b, s, d], Distribution::Normal(0.0, 1.0), &dev);
        let composite = |qkv: Tensor<3>, mask: Tensor<4>| {
            let [b, s, _] = qkv.dims();
            let heads_of = |i: usize| {
                qkv.clone()
                    .slice_dim(2, i * d..(i + 1) * d)
                    .reshape([b, s, heads, d / heads])
                    .swap_dims(1, 2)
            };
            let q = heads_of(0).div_scalar(((d / heads) as f32).sqrt());
            let scores = q.matmul(heads_of(1).swap_dims(2, 3)) + mask;
            let out = activation::softmax(scores, 3).matmul(heads_of(2));
            out.swap_dims(1, 2).reshape([b, s, d])
        };
        let run = |packed: bool| {
            let (a, c) = (qkv1.clone().require_grad(), qkv2.clone().require_grad());
            let y = if packed {
                packed_attention(a.clone(), Some(c.clone()), mask.clone(), heads)
            } else {
                composite(Tensor::cat(vec![a.clone(), c.clone()], 1), mask.clone())
            };
            let g = (y.clone() * w.clone()).sum().backward();
            (y.inner(), [a.grad(&g).unwrap(), c.grad(&g).unwrap()])
        };
        let ((yp, gp), (yc, gc)) = (run(true), run(false));
        let diff = |a: Tensor<3>, b: Tensor<3>| (a - b).abs().max().into_scalar::<f32>();
        let dy = diff(yp.clone(), yc);
        assert!(dy < 1e-5, "{dy}");
        for (a, b) in gp.into_iter().zip(gc) {
            // Every part of the packed gradient (queries, keys, values) is nonzero.
            for i in 0..3 {
                let part = a.clone().slice_dim(2, i * d..(i + 1) * d);
                assert!(part.abs().max().into_scalar::<f32>() > 1e-2, "part {i}");
            }
            let g = diff(a, b);
            assert!(g < 1e-4, "{g}");
        }
        // Forward only (the inference path), and one segment alone.
        let inference = packed_attention(
            qkv1.clone().inner(),
            Some(qkv2.clone().inner()),
            mask.clone().inner(),
            heads,
        );
        assert!(diff(inference, yp) < 1e-5);
        let m1 = mask.slice([0..b, 0..1, 0..s1, 0..s1]);
        let one = packed_attention(qkv1.clone(), None, m1.clone(), heads);
        assert!(diff(one, composite(qkv1, m1)) < 1e-5);
    }

    on_flex_and_libtorch!(
        packed_attention_matches_the_composite_on,
        packed_attention_matches_the_composite,
        packed_attention_matches_the_composite_on_libtorch
    );

    on_flex_and_libtorch!(
        layer_norm_matches_burns_on,
        layer_norm_matches_burns,
        layer_norm_matches_burns_on_libtorch
    );

    /// The fused layer norm and burn's `LayerNorm` agree: values and the gradients of the
    /// input, the scale and the shift.
    fn layer_norm_matches_burns_on(dev: &Device) {
        let dev = dev.clone().autodiff();
        let mut norm = burn::nn::LayerNormConfig::new(6).init(&dev);
        // A scale and shift away from 1 and 0, so their gradients matter.
        norm.gamma = burn::module::Param::from_tensor(Tensor::random(
            [6],
            Distribution::Normal(1.0, 0.5),
            &dev,
        ));
        norm.beta = Some(burn::module::Param::from_tensor(Tensor::random(
            [6],
            Distribution::Normal(0.0, 0.5),
            &dev,
        )));
        let x = Tensor::<3>::random([2, 4, 6], Distribution::Normal(1.0, 3.0), &dev);
        let w = Tensor::<3>::random([2, 4, 6], Distribution::Normal(0.0, 1.0), &dev);
        let run = |fused: bool| {
            let x = x.clone().require_grad();
            let y = if fused {
                layer_norm(&norm, x.clone())
            } else {
                norm.forward(x.clone())
            };
            let g = (y.clone() * w.clone()).sum().backward();
            let gamma = norm.gamma.val().grad(&g).unwrap();
            let beta = norm.beta.as_ref().unwrap().val().grad(&g).unwrap();
            (y.inner(), x.grad(&g).unwrap(), gamma, beta)
        };
        let (a, b) = (run(true), run(false));
        let diff = |p: Tensor<3>, q: Tensor<3>| (p - q).abs().max().into_scalar::<f32>();
        let diff1 = |p: Tensor<1>, q: Tensor<1>| (p - q).abs().max().into_scalar::<f32>();
        let (dy, dx) = (diff(a.0, b.0), diff(a.1.clone(), b.1));
        let (dg, db) = (diff1(a.2.clone(), b.2), diff1(a.3, b.3));
        assert!(
            dy < 1e-5 && dx < 1e-4 && dg < 1e-4 && db < 1e-4,
            "{dy} {dx} {dg} {db}"
        );
        assert!(a.1.abs().max().into_scalar::<f32>() > 1e-2);
        assert!(a.2.abs().max().into_scalar::<f32>() > 1e-2);
    }

    /// The polynomial erf and exp against libm's in double precision, on dense grids.
    #[test]
    fn the_fast_erf_and_exp_are_accurate() {
        let mut worst = 0.0f64;
        for i in -8000..=8000 {
            let x = i as f32 * 1e-3;
            let e = (f64::from(erf_fast(x)) - libm::erf(f64::from(x))).abs();
            worst = worst.max(e);
        }
        assert!(worst < 5e-7, "erf: {worst}");
        assert_eq!(erf_fast(f32::INFINITY), 1.0);
        assert_eq!(erf_fast(f32::NEG_INFINITY), -1.0);
        assert!(erf_fast(f32::NAN).is_nan());
        let mut worst = 0.0f64;
        // Down to -86.999: below -87 the input is clamped (documented).
        for i in 0..=86_999 {
            let x = -(i as f32) * 1e-3;
            let exact = f64::from(x).exp();
            worst = worst.max((f64::from(exp_neg_fast(x)) - exact).abs() / exact);
        }
        assert!(worst < 5e-7, "exp: {worst}");
    }

    /// The model's GELU against burn's: the same values and gradients through autodiff (exactly
    /// the same without `fast-gelu`), and flex's polynomial kernels, which `fast-gelu` selects,
    /// against flex's own (libm's erf), forward and backward.
    #[test]
    fn the_fused_gelu_matches_burns() {
        use burn::backend::flex::FlexTensor;
        use burn::tensor::TensorData;
        let dev = Device::flex().autodiff();
        let x = Tensor::<3>::random([4, 9, 33], Distribution::Normal(0.0, 3.0), &dev);
        let w = Tensor::<3>::random([4, 9, 33], Distribution::Normal(0.0, 1.0), &dev);
        let run = |fused: bool| {
            let x = x.clone().require_grad();
            let y = if fused {
                gelu(x.clone())
            } else {
                activation::gelu(x.clone())
            };
            let g = (y.clone() * w.clone()).sum().backward();
            (y.inner(), x.grad(&g).unwrap())
        };
        let (a, b) = (run(true), run(false));
        let dy = (a.0.clone() - b.0).abs().max().into_scalar::<f32>();
        let dx = (a.1.clone() - b.1).abs().max().into_scalar::<f32>();
        assert!(dy < 5e-6 && dx < 5e-6, "{dy} {dx}");
        if !cfg!(feature = "fast-gelu") {
            assert!(dy == 0.0 && dx == 0.0, "{dy} {dx}");
        }
        assert!(a.1.abs().max().into_scalar::<f32>() > 1.0);
        // Inference (no autodiff) takes the same kernel.
        let plain = gelu(x.clone().inner());
        assert_eq!((plain - a.0).abs().max().into_scalar::<f32>(), 0.0);

        // The polynomial kernels on flex tensors, against flex's own.
        let vals = |t: &Tensor<3>| -> Vec<f32> { t.to_data().try_to_vec().unwrap() };
        let (xs, gs) = (vals(&x.inner()), vals(&w.inner()));
        let flex = |v: &[f32]| FlexTensor::from_data(TensorData::new(v.to_vec(), [v.len()]));
        let out = |t: FlexTensor| -> Vec<f32> { t.into_data().try_to_vec().unwrap() };
        let gap = |p: &[f32], q: &[f32]| {
            p.iter()
                .zip(q)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0f32, f32::max)
        };
        let fwd = gap(
            &out(flex_gelu_fast(flex(&xs))),
            &out(<Flex as burn::backend::ops::ActivationOps<Flex>>::gelu(
                flex(&xs),
            )),
        );
        let bwd = gap(
            &out(flex_gelu_backward_fast(flex(&xs), flex(&gs))),
            &out(
                <Flex as burn::backend::ops::ActivationOps<Flex>>::gelu_backward(
                    flex(&xs),
                    flex(&gs),
                ),
            ),
        );
        assert!(fwd < 5e-6 && bwd < 5e-6, "{fwd} {bwd}");
        // They are other functions (a kernel that fell back to libm would give 0 here).
        assert!(fwd > 0.0 || bwd > 0.0);
    }
}
