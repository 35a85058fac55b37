//! The Mixture-of-Transformers backbone (DESIGN.md section 4, after BAGEL).
//!
//! One token sequence `[text | understanding-image patches | noisy generation patches]` goes
//! through shared self-attention; norms, QKV/O projections and MLPs are per expert: the
//! understanding expert for text and clean-image tokens, the generation expert for noisy
//! patches (`dense = true` shares one set of weights). Positions are learned, one table per
//! segment; with `und_pos_2d` a fixed 2D code ([`grid_code`]) is added to the understanding
//! patches' positions.
//!
//! The understanding image is encoded before it joins the sequence: an optional
//! convolutional stem (`und_stem`) under the patch embedding, and optional image-only layers
//! (`und_encoder_layers`), a small vision encoder as BAGEL has its ViT. Generation patches
//! enter as plain pixel patches, with the flow time's embedding added; with `gen_adaln` the
//! time embedding also shifts, scales and gates each layer's generation branches (adaLN-Zero).
//!
//! The generation head predicts the clean patches when `predict_clean` is set (the default;
//! x-prediction as in JiT) and the returned velocity is derived from them,
//! `v = (x_t - x0_hat) / max(t, 0.05)`; otherwise it predicts the velocity itself.
//!
//! Attention mask (who may attend to whom):
//! - text tokens: earlier and current text (causal) and the whole understanding image; in a
//!   question `[BOS] question <ans>`, the question is a prefix that sees itself both ways
//!   (prefix LM, as in T5 and PaLI), and the answer after `<ans>` stays causal;
//! - understanding-image tokens: the whole understanding image (bidirectional) and the
//!   question up to and including `<ans>`, never the answer. Image tokens that know the
//!   question can each check "am I part of a green circle?" where they are; without this the
//!   question had to learn to find small objects by attention alone, and the tiny model never
//!   did: trained on presence questions only, its answer did not depend on the image at all;
//! - generation tokens: all text and the whole generation image (bidirectional);
//! - text never sees generation tokens; padded text positions are never attended to.
//!
//! A row without `<ans>` (a generation prompt) is plain causal text, and the understanding
//! image, if any, sees no text.

use burn::module::{Module, ModuleVisitor, Param, ParamId};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{
    Embedding, EmbeddingConfig, LayerNorm, LayerNormConfig, Linear, LinearConfig, PaddingConfig2d,
};
use burn::prelude::*;
use burn::tensor::TensorData;
use burn::tensor::activation::silu;
use burn::tensor::module::linear;

use crate::UmmConfig;
use crate::config::MIN_FLOW_TIME;
use crate::fused::{attention as fused_attention, gelu, layer_norm, packed_attention};
use crate::tokenizer::{ANS, PAD};

/// Per-expert weights of one layer.
#[derive(Module, Debug)]
pub struct Expert {
    norm1: LayerNorm,
    qkv: Linear,
    out: Linear,
    norm2: LayerNorm,
    fc1: Linear,
    fc2: Linear,
}

impl Expert {
    fn init(c: &UmmConfig, device: &Device) -> Self {
        let d = c.d_model;
        Expert {
            norm1: LayerNormConfig::new(d).init(device),
            qkv: LinearConfig::new(d, 3 * d).init(device),
            out: LinearConfig::new(d, d).init(device),
            norm2: LayerNormConfig::new(d).init(device),
            fc1: LinearConfig::new(d, c.mlp_ratio * d).init(device),
            fc2: LinearConfig::new(c.mlp_ratio * d, d).init(device),
        }
    }
}

/// The convolutional stem of the understanding image path (see [`UmmConfig::und_stem`]).
#[derive(Module, Debug)]
pub struct UndStem {
    conv1: Conv2d,
    conv2: Conv2d,
    patch: usize,
}

impl UndStem {
    fn init(c: &UmmConfig, device: &Device) -> Self {
        let conv = |i: usize, o: usize| {
            Conv2dConfig::new([i, o], [3, 3])
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .init(device)
        };
        UndStem {
            conv1: conv(3, c.und_stem),
            conv2: conv(c.und_stem, c.und_stem),
            patch: c.patch,
        }
    }

    /// Pixel patches `[batch, n, 3 p^2]` to stem features per patch `[batch, n, c p^2]`.
    fn forward(&self, patches: Tensor<3>) -> Tensor<3> {
        let side = (patches.dims()[1] as f64).sqrt().round() as usize * self.patch;
        let img = unpatchify(patches, self.patch, side);
        let h = gelu(self.conv2.forward(gelu(self.conv1.forward(img))));
        patchify(h, self.patch)
    }
}

/// One layer: shared attention over the whole sequence, expert weights per segment.
#[derive(Module, Debug)]
pub struct Block {
    und: Expert,
    /// `None` in the dense design: the understanding weights serve every token.
    gen_expert: Option<Expert>,
    /// adaLN-Zero of the generation tokens ([`UmmConfig::gen_adaln`]): time embedding `[b, d]`
    /// to shift, scale and gate of the attention branch, then of the MLP branch, `[b, 6 d]`.
    gen_mod: Option<Linear>,
    n_heads: usize,
}

/// Shift, scale and gate of one branch, each `[batch, 1, d]`.
type Modulation = [Tensor<3>; 3];

impl Block {
    /// A freshly initialised layer (public for the micro-benchmarks).
    pub fn init(c: &UmmConfig, device: &Device) -> Self {
        Block {
            und: Expert::init(c, device),
            gen_expert: (!c.dense).then(|| Expert::init(c, device)),
            gen_mod: c.gen_adaln.then(|| {
                LinearConfig::new(c.d_model, 6 * c.d_model)
                    .with_initializer(burn::nn::Initializer::Zeros)
                    .init(device)
            }),
            n_heads: c.n_heads,
        }
    }

    /// The two branches' modulations for the generation tokens, from the time embedding
    /// `cond: [batch, d]`; `None` without adaLN.
    fn modulation(&self, cond: Option<&Tensor<2>>) -> Option<[Modulation; 2]> {
        let (m, cond) = (self.gen_mod.as_ref()?, cond?);
        let d = cond.dims()[1];
        let all = m.forward(silu(cond.clone())).unsqueeze_dim::<3>(1); // [b, 1, 6d]
        let part = |i: usize| all.clone().slice_dim(2, i * d..(i + 1) * d);
        Some([[part(0), part(1), part(2)], [part(3), part(4), part(5)]])
    }

    /// # Shapes
    /// - `x`: `[batch, seq, d_model]`, the first `split` tokens understanding, the rest generation
    /// - `bias`: `[batch, 1, seq, seq]` additive attention mask (0 or a large negative number)
    pub fn forward(&self, x: Tensor<3>, split: usize, bias: Tensor<4>) -> Tensor<3> {
        let s = x.dims()[1];
        let und = (split > 0).then(|| x.clone().slice_dim(1, 0..split));
        let gen_x = (split < s).then(|| x.slice_dim(1, split..s));
        let (u, g) = self.forward_segments(und, gen_x, Some(&bias), None);
        Tensor::cat(u.into_iter().chain(g).collect(), 1)
    }

    /// The layer on the sequence kept as its two segments: the understanding tokens `und`
    /// (`[batch, split, d]`) and the generation tokens `gen_x` (`[batch, seq - split, d]`),
    /// either possibly absent; `bias` is the additive mask `[batch or 1, 1, seq, seq]` of the
    /// whole sequence (`None`: every token sees every other). Each segment's projections and
    /// MLP run on its own expert; the segments meet only in the shared attention, so the
    /// backward pass never scatters a gradient into a slice of the whole sequence. How the
    /// QKV projections reach the attention depends on the backend ([`packs_qkv`]). `gen_cond`
    /// is the time embedding `[batch, d]` that modulates the generation tokens when the layer
    /// has adaLN ([`UmmConfig::gen_adaln`]); otherwise it is ignored.
    pub fn forward_segments(
        &self,
        und: Option<Tensor<3>>,
        gen_x: Option<Tensor<3>>,
        bias: Option<&Tensor<4>>,
        gen_cond: Option<&Tensor<2>>,
    ) -> (Option<Tensor<3>>, Option<Tensor<3>>) {
        let device = und.as_ref().or(gen_x.as_ref()).expect("a segment").device();
        let packed = packs_qkv(&device);
        self.forward_segments_with(und, gen_x, bias, gen_cond, packed)
    }

    /// [`Block::forward_segments`] with the QKV path chosen: `packed` (one projection per
    /// expert and one attention operation, [`Block::attention_packed`]) or sliced weights
    /// ([`Block::attention_sliced`]). The two compute the same (a test checks outputs and
    /// gradients); which is faster depends on the backend.
    pub fn forward_segments_with(
        &self,
        und: Option<Tensor<3>>,
        gen_x: Option<Tensor<3>>,
        bias: Option<&Tensor<4>>,
        gen_cond: Option<&Tensor<2>>,
        packed: bool,
    ) -> (Option<Tensor<3>>, Option<Tensor<3>>) {
        let gen_e = self.gen_expert.as_ref().unwrap_or(&self.und);
        let experts = [&self.und, gen_e];
        let mods = [None, self.modulation(gen_cond)];
        // Layer norm, then (generation tokens with adaLN) `* (1 + scale) + shift`.
        let norm = |n: &LayerNorm, x: Tensor<3>, m: Option<&Modulation>| {
            let h = layer_norm(n, x);
            match m {
                Some([shift, scale, _]) => h * (scale.clone() + 1.0) + shift.clone(),
                None => h,
            }
        };
        // A branch's output, gated with adaLN.
        let gate = |y: Tensor<3>, m: Option<&Modulation>| match m {
            Some([_, _, g]) => y * g.clone(),
            None => y,
        };
        let xs = [und, gen_x];
        let lens = xs.clone().map(|x| x.map_or(0, |x| x.dims()[1]));
        // Each segment after its first norm.
        let hs: Vec<Option<Tensor<3>>> = xs
            .iter()
            .zip(&mods)
            .zip(experts)
            .map(|((x, m), e)| Some(norm(&e.norm1, x.clone()?, m.as_ref().map(|m| &m[0]))))
            .collect();
        let s: usize = lens.iter().sum();
        let device = xs.iter().flatten().next().expect("a segment").device();
        let bias = match bias {
            Some(bias) => bias.clone(),
            None => Tensor::zeros([1, 1, s, s], &device),
        };
        let atts: [Option<Tensor<3>>; 2] = if packed {
            self.attention_packed(&hs, experts, &lens, bias)
        } else {
            self.attention_sliced(&hs, experts, &lens, bias)
        };
        let mut out = [None, None];
        for (j, ((x, e), att)) in xs.into_iter().zip(experts).zip(atts).enumerate() {
            let (Some(x), Some(att)) = (x, att) else {
                continue;
            };
            let m = mods[j].as_ref();
            let x = x + gate(dense(&e.out, att), m.map(|m| &m[0]));
            let h = norm(&e.norm2, x.clone(), m.map(|m| &m[1]));
            let y = dense(&e.fc2, gelu(dense(&e.fc1, h)));
            out[j] = Some(x + gate(y, m.map(|m| &m[1])));
        }
        let [u, g] = out;
        (u, g)
    }

    /// Attention of the two segments (`hs`: each normalised, or absent) with their QKV
    /// projections packed: one `[rows, d] x [d, 3 d]` product per expert and one
    /// [`packed_attention`] over the whole sequence, whose output is cut back into the
    /// segments. The libtorch path ([`packs_qkv`]).
    fn attention_packed(
        &self,
        hs: &[Option<Tensor<3>>],
        experts: [&Expert; 2],
        lens: &[usize; 2],
        bias: Tensor<4>,
    ) -> [Option<Tensor<3>>; 2] {
        let mut qkv = hs
            .iter()
            .zip(experts)
            .filter_map(|(h, e)| Some(dense(&e.qkv, h.clone()?)));
        let first = qkv.next().expect("at least one segment");
        let att = packed_attention(first, qkv.next(), bias, self.n_heads); // [b, s, d]
        let [b, s, d] = att.dims();
        let mut start = 0;
        [0, 1].map(|j| {
            hs[j].as_ref()?;
            let part = if lens[j] == s {
                att.clone()
            } else {
                att.clone().slice([0..b, start..start + lens[j], 0..d])
            };
            start += lens[j];
            Some(part)
        })
    }

    /// Attention of the two segments with each segment's queries, keys and values from
    /// slices of its expert's packed QKV weights (slicing the small weights, not the
    /// activations) and the shared keys and values joined; each segment's queries attend
    /// through its rows of the mask. The path of every backend but libtorch ([`packs_qkv`]).
    fn attention_sliced(
        &self,
        hs: &[Option<Tensor<3>>],
        experts: [&Expert; 2],
        lens: &[usize; 2],
        bias: Tensor<4>,
    ) -> [Option<Tensor<3>>; 2] {
        let d = hs.iter().flatten().next().map_or(0, |h| h.dims()[2]);
        let scale = 1.0 / ((d / self.n_heads) as f32).sqrt();
        let qkv: Vec<Option<[Tensor<3>; 3]>> = hs
            .iter()
            .zip(experts)
            .map(|(h, e)| {
                h.as_ref().map(|h| {
                    let w = e.qkv.weight.val();
                    let b = e.qkv.bias.as_ref().map(|b| b.val());
                    let part = |i: usize| {
                        let r = i * d..(i + 1) * d;
                        linear_rows(
                            h.clone(),
                            w.clone().slice_dim(1, r.clone()),
                            b.clone().map(|b| b.slice_dim(0, r)),
                        )
                    };
                    [part(0).mul_scalar(scale), part(1), part(2)]
                })
            })
            .collect();
        let joined = |i: usize| {
            let parts: Vec<Tensor<3>> = qkv.iter().flatten().map(|p| p[i].clone()).collect();
            split_heads(Tensor::cat(parts, 1), self.n_heads)
        };
        let (k, v) = (joined(1), joined(2));
        let mut start = 0;
        [0, 1].map(|j| {
            let p = qkv[j].as_ref()?;
            let rows = bias.clone().slice_dim(2, start..start + lens[j]);
            start += lens[j];
            let q = split_heads(p[0].clone(), self.n_heads);
            Some(merge_heads(fused_attention(q, k.clone(), v.clone(), rows)))
        })
    }
}

/// Whether the layers pack their QKV projections ([`Block::attention_packed`]): on libtorch,
/// where one wider matrix product and one attention call over the sequence save more than the
/// copies that cut the output back into segments cost (tiny training step 1.8% faster, 12
/// alternated rounds, 2026-12-06); on flex those copies cost more (2.5% slower), so every
/// other backend slices the weights instead ([`Block::attention_sliced`]).
fn packs_qkv(device: &Device) -> bool {
    #[cfg(feature = "tch")]
    {
        matches!(
            device.clone().inner().as_dispatch(),
            burn::backend::DispatchDevice::LibTorch(_)
        )
    }
    #[cfg(not(feature = "tch"))]
    {
        let _ = device;
        false
    }
}

/// `x @ w + b` over the last dimension of `x: [batch, seq, d_in]`, as one `[batch * seq, d_in]`
/// matrix product. Burn's `linear` keeps a 3D input batched when the rows per batch fill its
/// tiles (64 generation tokens do), and on libtorch a weight broadcast over the batch becomes
/// `batch` small matrix products, in the forward pass and again for the input's gradient;
/// PyTorch's `F.linear` folds the batch into the rows, and so does this.
fn linear_rows(x: Tensor<3>, w: Tensor<2>, b: Option<Tensor<1>>) -> Tensor<3> {
    let [n, s, d] = x.dims();
    let y = linear(x.reshape([n * s, d]), w, b);
    let out = y.dims()[1];
    y.reshape([n, s, out])
}

/// A [`Linear`] layer through [`linear_rows`].
fn dense(l: &Linear, x: Tensor<3>) -> Tensor<3> {
    linear_rows(x, l.weight.val(), l.bias.as_ref().map(|b| b.val()))
}

/// `[batch, seq, d]` to heads `[batch, heads, seq, d / heads]`.
fn split_heads(t: Tensor<3>, n_heads: usize) -> Tensor<4> {
    let [b, s, d] = t.dims();
    t.reshape([b, s, n_heads, d / n_heads]).swap_dims(1, 2)
}

/// Inverse of [`split_heads`].
fn merge_heads(t: Tensor<4>) -> Tensor<3> {
    let [b, h, s, hd] = t.dims();
    t.swap_dims(1, 2).reshape([b, s, h * hd])
}

/// Multi-head scaled dot-product attention of packed projections `qkv: [batch, seq, 3 d]`
/// (queries, keys, values side by side) under an additive mask `bias: [batch, 1, seq, seq]`;
/// returns `[batch, seq, d]`. (The model's layers run the same on their two segments, in
/// [`Block::forward_segments`].)
pub fn attention(qkv: Tensor<3>, n_heads: usize, bias: Tensor<4>) -> Tensor<3> {
    packed_attention(qkv, None, bias, n_heads)
}

/// What the model is given. Every part but the text is optional.
#[derive(Debug, Clone)]
pub struct UmmInput {
    /// Token ids `[batch, text_len]`, padded with [`PAD`].
    pub text: Tensor<2, Int>,
    /// Patches of a clean image to understand, `[batch, image_tokens, patch_dim]`.
    pub und_image: Option<Tensor<3>>,
    /// Noisy patches to denoise and their flow times in [0, 1]:
    /// `([batch, image_tokens, patch_dim], [batch])`.
    pub gen_image: Option<(Tensor<3>, Tensor<1>)>,
}

/// What the model returns.
#[derive(Debug, Clone)]
pub struct UmmOutput {
    /// Next-token logits at every text position, `[batch, text_len, vocab]`.
    pub logits: Tensor<3>,
    /// Predicted velocity for every generation patch, `[batch, image_tokens, patch_dim]`.
    pub velocity: Option<Tensor<3>>,
    /// The last layer's hidden states of the understanding image tokens,
    /// `[batch, image_tokens, d_model]` (before the final norm); `None` without an image.
    /// [`Umm::word_logits`] reads words off them (the auxiliary patch-word loss).
    pub und_hidden: Option<Tensor<3>>,
}

/// The unified model.
#[derive(Module, Debug)]
pub struct Umm {
    tok: Embedding,
    text_pos: Embedding,
    und_pos: Embedding,
    gen_pos: Embedding,
    /// `None` when `und_stem = 0`: understanding patches are embedded linearly.
    und_stem: Option<UndStem>,
    und_in: Linear,
    /// Normalises the embedded understanding patches before the position codes are added:
    /// behind the stem their scale was about a tenth of the codes', and a model trained on
    /// presence questions learnt to ignore the image.
    und_in_norm: LayerNorm,
    /// Layers over the understanding image alone, before the shared stack.
    und_encoder: Vec<Block>,
    gen_in: Linear,
    time1: Linear,
    time2: Linear,
    blocks: Vec<Block>,
    und_norm: LayerNorm,
    gen_norm: LayerNorm,
    lm_head: Linear,
    velocity_head: Linear,
    time_freq_dim: usize,
    predict_clean: bool,
    /// [`UmmConfig::und_pos_2d`]: a fixed 2D code added to the understanding positions.
    und_pos_2d: bool,
}

impl Umm {
    /// A freshly initialised model.
    pub fn init(c: &UmmConfig, device: &Device) -> Self {
        let d = c.d_model;
        let n = c.image_tokens();
        Umm {
            tok: EmbeddingConfig::new(c.vocab_size, d).init(device),
            text_pos: EmbeddingConfig::new(c.max_text_len, d).init(device),
            und_pos: EmbeddingConfig::new(n, d).init(device),
            gen_pos: EmbeddingConfig::new(n, d).init(device),
            und_stem: (c.und_stem > 0).then(|| UndStem::init(c, device)),
            und_in: LinearConfig::new(
                if c.und_stem > 0 {
                    c.und_stem * c.patch * c.patch
                } else {
                    c.patch_dim()
                },
                d,
            )
            .init(device),
            und_in_norm: LayerNormConfig::new(d).init(device),
            und_encoder: {
                // Image-only layers: one set of weights, and no generation tokens to modulate.
                let one = UmmConfig {
                    dense: true,
                    gen_adaln: false,
                    ..c.clone()
                };
                (0..c.und_encoder_layers)
                    .map(|_| Block::init(&one, device))
                    .collect()
            },
            gen_in: LinearConfig::new(c.patch_dim(), d).init(device),
            time1: LinearConfig::new(c.time_freq_dim, d).init(device),
            time2: LinearConfig::new(d, d).init(device),
            blocks: (0..c.n_layers).map(|_| Block::init(c, device)).collect(),
            und_norm: LayerNormConfig::new(d).init(device),
            gen_norm: LayerNormConfig::new(d).init(device),
            lm_head: LinearConfig::new(d, c.vocab_size).init(device),
            velocity_head: LinearConfig::new(d, c.patch_dim()).init(device),
            time_freq_dim: c.time_freq_dim,
            predict_clean: c.predict_clean,
            und_pos_2d: c.und_pos_2d,
        }
    }

    /// Sinusoidal features of flow times in [0, 1], `[batch] -> [batch, time_freq_dim]`.
    fn time_features(&self, t: Tensor<1>) -> Tensor<2> {
        let half = self.time_freq_dim / 2;
        let device = t.device();
        let freqs: Vec<f32> = (0..half)
            .map(|i| (-(10_000f32).ln() * i as f32 / half as f32).exp())
            .collect();
        let freqs = Tensor::<1>::from_data(TensorData::new(freqs, [half]), &device);
        let angles = t.mul_scalar(1000.0).unsqueeze_dim::<2>(1) * freqs.unsqueeze_dim::<2>(0); // [b, half]
        Tensor::cat(vec![angles.clone().cos(), angles.sin()], 1)
    }

    /// The flow velocity of noisy generation patches `x` (`[b, tokens, patch_dim]`) at flow
    /// times `t` (`[b]`) for the prompts `text` (`[b, len]`): a forward pass with no
    /// understanding image.
    pub fn velocity(&self, text: Tensor<2, Int>, x: Tensor<3>, t: Tensor<1>) -> Tensor<3> {
        self.forward(UmmInput {
            text,
            und_image: None,
            gen_image: Some((x, t)),
        })
        .velocity
        .expect("a generation segment was given")
    }

    /// # Shapes
    /// See [`UmmInput`] and [`UmmOutput`]; `seq = text_len + und tokens + gen tokens`.
    pub fn forward(&self, input: UmmInput) -> UmmOutput {
        let t = input.text.dims()[1];
        // The first `n` rows of a position table, `[1, n, d]`, broadcast over the batch (a
        // slice, not a per-example lookup: its gradient is one sum over the batch).
        let positions = |table: &Embedding, n: usize| {
            table.weight.val().slice_dim(0, 0..n).unsqueeze_dim::<3>(0)
        };
        // Embed each part: [b, len, d]. Text and the understanding image form the
        // understanding segment, the noisy patches the generation segment.
        let mut parts = vec![self.tok.forward(input.text.clone()) + positions(&self.text_pos, t)];
        let nu = input.und_image.as_ref().map_or(0, |x| x.dims()[1]);
        if let Some(img) = input.und_image {
            let img = match &self.und_stem {
                Some(stem) => stem.forward(img),
                None => img,
            };
            let mut h = layer_norm(&self.und_in_norm, dense(&self.und_in, img))
                + positions(&self.und_pos, nu);
            if self.und_pos_2d {
                let d = h.dims()[2];
                let side = (nu as f64).sqrt().round() as usize;
                let code = TensorData::new(grid_code(side, d), [nu, d]);
                let code = Tensor::<2>::from_data(code, &h.device()).unsqueeze_dim::<3>(0);
                h = h + code;
            }
            // Every image token sees every other: no mask.
            for block in &self.und_encoder {
                h = block
                    .forward_segments(Some(h), None, None, None)
                    .0
                    .expect("und in");
            }
            parts.push(h);
        }
        let ng = input.gen_image.as_ref().map_or(0, |(x, _)| x.dims()[1]);
        let gen_input = input.gen_image.clone();
        let temb = input.gen_image.as_ref().map(|(_, time)| {
            self.time2
                .forward(silu(self.time1.forward(self.time_features(time.clone())))) // [b, d]
        });
        let mut xg = input.gen_image.zip(temb.clone()).map(|((img, _), temb)| {
            dense(&self.gen_in, img) + positions(&self.gen_pos, ng) + temb.unsqueeze_dim::<3>(1)
        });
        let mut xu = Some(if parts.len() == 1 {
            parts.pop().expect("the text part")
        } else {
            Tensor::cat(parts, 1)
        }); // [b, t + nu, d]
        let bias = attention_bias(&input.text, nu, ng); // [b, 1, seq, seq]
        for block in &self.blocks {
            (xu, xg) = block.forward_segments(xu, xg, Some(&bias), temb.as_ref());
        }
        let xu = xu.expect("the understanding segment always has the text");
        let und_hidden = (nu > 0).then(|| xu.clone().slice_dim(1, t..t + nu));
        let text_out = if nu > 0 { xu.slice_dim(1, 0..t) } else { xu };
        let logits = self.word_logits(text_out);
        let velocity = gen_input.zip(xg).map(|((xt, time), xg)| {
            let head = dense(&self.velocity_head, layer_norm(&self.gen_norm, xg));
            if self.predict_clean {
                // x-prediction: the head gives the clean patches; v = (x_t - x0) / t.
                let t = time
                    .clamp_min(MIN_FLOW_TIME)
                    .unsqueeze_dim::<2>(1)
                    .unsqueeze_dim::<3>(2);
                (xt - head) / t
            } else {
                head
            }
        });
        UmmOutput {
            logits,
            velocity,
            und_hidden,
        }
    }

    /// Word logits of hidden states of the understanding segment, through the same final norm
    /// and language head as the text: `[batch, n, d_model] -> [batch, n, vocab]`.
    pub fn word_logits(&self, hidden: Tensor<3>) -> Tensor<3> {
        dense(&self.lm_head, layer_norm(&self.und_norm, hidden))
    }

    /// Ids of the generation side's parameters: the generation expert of every layer, the
    /// patch and time embeddings, the generation positions, the final generation norm and the
    /// velocity head. Post-training with scope `gen-expert` updates these alone. In the dense
    /// design there is no separate expert: only the embeddings, norm and head are listed.
    pub fn generation_param_ids(&self) -> Vec<ParamId> {
        struct Ids(Vec<ParamId>);
        impl ModuleVisitor for Ids {
            fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
                self.0.push(param.id);
            }
        }
        let mut ids = Ids(Vec::new());
        for b in &self.blocks {
            if let Some(g) = &b.gen_expert {
                g.visit(&mut ids);
            }
            if let Some(m) = &b.gen_mod {
                m.visit(&mut ids);
            }
        }
        self.gen_in.visit(&mut ids);
        self.gen_pos.visit(&mut ids);
        self.time1.visit(&mut ids);
        self.time2.visit(&mut ids);
        self.gen_norm.visit(&mut ids);
        self.velocity_head.visit(&mut ids);
        ids.0
    }
}

impl Umm {
    /// Ids of the weight matrices of the generation expert (QKV, output, both MLP layers of
    /// every layer): where post-training's LoRA attaches its adapters. Empty in the dense
    /// design, which has no generation expert.
    pub fn generation_expert_matrix_ids(&self) -> Vec<ParamId> {
        struct Ids(Vec<ParamId>);
        impl ModuleVisitor for Ids {
            fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
                if D == 2 {
                    self.0.push(param.id);
                }
            }
        }
        let mut ids = Ids(Vec::new());
        for g in self.blocks.iter().filter_map(|b| b.gen_expert.as_ref()) {
            g.visit(&mut ids);
        }
        ids.0
    }
}

/// The additive attention mask of the module docs, `[batch, 1, seq, seq]`: 0 where a query
/// may attend to a key, -1e9 where it may not.
///
/// Built on the CPU every forward pass, so it is written as row fills rather than a rule per
/// query-key pair (which took about 1% of a training step and 4% of sampling on libtorch);
/// a test checks it against the rule-by-rule reading of the module docs.
pub fn attention_bias(text: &Tensor<2, Int>, nu: usize, ng: usize) -> Tensor<4> {
    let [b, t] = text.dims();
    let s = t + nu + ng;
    let ids: Vec<i64> = text
        .to_data()
        .convert::<i64>()
        .try_to_vec::<i64>()
        .expect("int token ids");
    let (text_keys, und_keys, gen_keys) = (0..t, t..t + nu, t + nu..s);
    let mut bias = vec![MASKED; b * s * s];
    for (row, m) in ids.chunks(t.max(1)).zip(bias.chunks_mut(s * s)).take(b) {
        // The question prefix is `[BOS] .. <ans>`: keys `0..prefix` (empty without `<ans>`).
        let prefix = row
            .iter()
            .position(|&i| i == i64::from(ANS))
            .map_or(0, |a| a + 1);
        let pads: Vec<usize> = (0..t).filter(|&k| row[k] == i64::from(PAD)).collect();
        for (q, r) in m.chunks_mut(s).enumerate() {
            if q < t {
                // Text: causal, the prefix both ways, and the understanding image.
                r[..if q < prefix { prefix } else { q + 1 }].fill(0.0);
                r[und_keys.clone()].fill(0.0);
            } else if q < t + nu {
                // Understanding image: the question prefix and the whole image.
                r[..prefix].fill(0.0);
                r[und_keys.clone()].fill(0.0);
            } else {
                // Generation: all text and the whole generation image.
                r[text_keys.clone()].fill(0.0);
                r[gen_keys.clone()].fill(0.0);
            }
            for &k in &pads {
                r[k] = MASKED;
            }
        }
    }
    Tensor::<4>::from_data(TensorData::new(bias, [b, 1, s, s]), &text.device())
}

/// The additive mask's value where attention is not allowed.
const MASKED: f32 = -1e9;

/// Cuts images `[batch, 3, side, side]` into patch tokens `[batch, (side/p)^2, 3 p^2]`
/// (row-major over patches, channel-major inside a patch).
pub fn patchify(images: Tensor<4>, p: usize) -> Tensor<3> {
    let [b, c, h, w] = images.dims();
    let (gh, gw) = (h / p, w / p);
    images
        .reshape([b, c, gh, p, gw, p])
        .permute([0, 2, 4, 1, 3, 5]) // [b, gh, gw, c, p, p]
        .reshape([b, gh * gw, c * p * p])
}

/// The fixed 2D position code of a `side x side` patch grid in row-major order (the order of
/// [`patchify`]), `side^2 x d` values ([`UmmConfig::und_pos_2d`]): the first half of each row
/// codes the patch's column, the second half its row, each as `sin` and `cos` of `pi f u` for
/// `d / 4` frequencies `f` from 0.5 to 8 (geometric), where `u = (index + 0.5) / side` is the
/// patch centre in [0, 1]. At `f = 0.5` both are monotonic across the image.
pub fn grid_code(side: usize, d: usize) -> Vec<f32> {
    let nf = d / 4;
    let freq = |j: usize| {
        if nf == 1 {
            0.5
        } else {
            0.5 * 16f64.powf(j as f64 / (nf - 1) as f64)
        }
    };
    let mut out = Vec::with_capacity(side * side * d);
    for row in 0..side {
        for col in 0..side {
            for u in [col, row].map(|i| (i as f64 + 0.5) / side as f64) {
                for j in 0..nf {
                    let a = std::f64::consts::PI * freq(j) * u;
                    out.push(a.sin() as f32);
                    out.push(a.cos() as f32);
                }
            }
        }
    }
    out
}

/// Inverse of [`patchify`].
pub fn unpatchify(patches: Tensor<3>, p: usize, side: usize) -> Tensor<4> {
    let [b, _, dim] = patches.dims();
    let c = dim / (p * p);
    let g = side / p;
    patches
        .reshape([b, g, g, c, p, p])
        .permute([0, 3, 1, 4, 2, 5]) // [b, c, gh, p, gw, p]
        .reshape([b, c, side, side])
}

#[cfg(test)]
mod tests {
    use burn::tensor::Distribution;

    use super::*;

    /// The folded product equals burn's batched `linear`, values and gradients.
    #[test]
    fn folded_rows_match_the_batched_linear() {
        let dev = Device::flex().autodiff();
        let x = Tensor::<3>::random([3, 64, 8], Distribution::Normal(0.0, 1.0), &dev);
        let w = Tensor::<2>::random([8, 5], Distribution::Normal(0.0, 1.0), &dev);
        let b = Tensor::<1>::random([5], Distribution::Normal(0.0, 1.0), &dev);
        let weights = Tensor::<3>::random([3, 64, 5], Distribution::Normal(0.0, 1.0), &dev);
        let run = |folded: bool| {
            let (x, w, b) = (
                x.clone().require_grad(),
                w.clone().require_grad(),
                b.clone().require_grad(),
            );
            let y = if folded {
                linear_rows(x.clone(), w.clone(), Some(b.clone()))
            } else {
                linear(x.clone(), w.clone(), Some(b.clone()))
            };
            let g = (y.clone() * weights.clone()).sum().backward();
            let flat = |t: Tensor<1>| t.to_data().try_to_vec::<f32>().unwrap();
            [
                flat(y.inner().flatten(0, 2)),
                flat(x.grad(&g).unwrap().flatten(0, 2)),
                flat(w.grad(&g).unwrap().flatten(0, 1)),
                flat(b.grad(&g).unwrap()),
            ]
        };
        let (a, z) = (run(true), run(false));
        for (p, q) in a.iter().zip(&z) {
            assert_eq!(p.len(), q.len());
            let gap = p
                .iter()
                .zip(q)
                .map(|(u, v)| (u - v).abs())
                .fold(0.0, f32::max);
            assert!(gap < 1e-4, "{gap}");
        }
        // The output is [3, 64, 5]: a fold that mixed up rows would not match.
        assert_eq!(a[0].len(), 3 * 64 * 5);
    }

    /// The 2D code: row-major, the column in the first half and the row in the second, its
    /// lowest frequency rising left to right (top to bottom), and the whole code changes
    /// what the model reads only when switched on.
    #[test]
    fn grid_code_names_column_and_row() {
        let (side, d) = (8, 16);
        let code = grid_code(side, d);
        assert_eq!(code.len(), side * side * d);
        let at = |row: usize, col: usize| &code[(row * side + col) * d..(row * side + col + 1) * d];
        for row in 0..side {
            for col in 1..side {
                // sin(pi/2 u) of the column rises; the row's half is the same along a row.
                assert!(at(row, col)[0] > at(row, col - 1)[0]);
                assert_eq!(at(row, col)[d / 2..], at(row, 0)[d / 2..]);
            }
        }
        for col in 0..side {
            for row in 1..side {
                assert!(at(row, col)[d / 2] > at(row - 1, col)[d / 2]);
                assert_eq!(at(row, col)[..d / 2], at(0, col)[..d / 2]);
            }
        }
        // Patch (row 0, col 0) has centre u = 1/16: sin(pi/2 * 1/16).
        let want = (std::f32::consts::PI / 32.0).sin();
        assert!((at(0, 0)[0] - want).abs() < 1e-6);
        // Every patch has its own code.
        for a in 0..side * side {
            for b in a + 1..side * side {
                let gap: f32 = code[a * d..(a + 1) * d]
                    .iter()
                    .zip(&code[b * d..(b + 1) * d])
                    .map(|(x, y)| (x - y).abs())
                    .sum();
                assert!(gap > 1e-2, "patches {a} and {b}");
            }
        }
    }

    #[test]
    fn und_pos_2d_changes_understanding_only_when_on() {
        let dev = Device::flex();
        let c = UmmConfig::micro();
        let model = Umm::init(&c, &dev);
        let on = Umm {
            und_pos_2d: true,
            ..model.clone()
        };
        let text = Tensor::<2, Int>::from_data(TensorData::new(vec![1i64, 5, 6, 2], [1, 4]), &dev);
        let img = Tensor::<3>::random(
            [1, c.image_tokens(), c.patch_dim()],
            Distribution::Normal(0.0, 1.0),
            &dev,
        );
        let logits = |m: &Umm, image: Option<Tensor<3>>| {
            m.forward(UmmInput {
                text: text.clone(),
                und_image: image,
                gen_image: None,
            })
            .logits
            .to_data()
            .try_to_vec::<f32>()
            .unwrap()
        };
        let gap = |a: Vec<f32>, b: Vec<f32>| {
            a.iter()
                .zip(&b)
                .map(|(x, y)| (x - y).abs())
                .fold(0.0, f32::max)
        };
        assert!(
            gap(
                logits(&model, Some(img.clone())),
                logits(&on, Some(img.clone()))
            ) > 1e-3
        );
        // Text alone: nothing to code.
        assert_eq!(gap(logits(&model, None), logits(&on, None)), 0.0);
    }
}
