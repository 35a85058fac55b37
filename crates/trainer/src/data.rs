//! Pretraining data, drawn on the fly from compworld by seed: generation pairs (prompt, rendered
//! scene) and understanding examples (question, image, answer).
//!
//! What the model never trains on:
//! - the text of any dev, val or test prompt (the frozen splits of seed
//!   [`EVAL_SPLIT_SEED`]), in generation prompts and in prompt-match questions alike;
//! - in generation, any held-out attribute-object pair (`compworld::splits::is_held_out`), so the
//!   unseen half of the evaluation splits measures compositional generalisation. Understanding
//!   examples may show those pairs: real unified models see far more understanding data than
//!   hard generation data, and SRUM's premise is that understanding knows more.
//!
//! The mixture ([`MixConfig`]) gives generation a smaller share of complex and reasoning prompts
//! than of simple ones; understanding sees every category.

use std::collections::{BTreeMap, HashSet};

use burn::prelude::*;
use burn::tensor::TensorData;
use compworld::generate::single_object;
use compworld::splits::{is_held_out, make_splits};
use compworld::violation::ViolationKind;
use compworld::vqa::{QaKind, QaStyle, example_styled, prompt_match_pair_styled};
use compworld::{Category, Image, Prompt, Rng, Scene, generate, render, sample_scene};
use serde::{Deserialize, Serialize};
use umm_model::tokenizer::{BOS, EOS, PAD};
use umm_model::{Tokenizer, UmmConfig, patchify};

use crate::{Error, Result};

/// Seed of the frozen prompt splits under `datasets/splits/` whose dev/val/test prompts
/// training must never see.
pub const EVAL_SPLIT_SEED: u64 = 2026;

pub use umm_model::understand::{
    REGION_QUESTION, images_tensor, prompt_match_question, question_ids,
};

/// The data mixture. Weights are relative (they need not sum to one); a missing name weighs 0.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MixConfig {
    /// Weight of each prompt source in generation pairs: `single` (one object, "a striped red
    /// circle") or a compworld category name (`color`, ..., `composite`).
    pub gen_sources: BTreeMap<String, f32>,
    /// Weight of each kind of understanding question: `presence`, `attribute`, `count`,
    /// `relation`, `prompt_match`, `region`, `knowledge`, `caption`, `position` (absent from
    /// the shipped recipes: the step below relations, see `compworld::vqa::QaKind::Position`).
    pub und_kinds: BTreeMap<String, f32>,
    /// Probability that a generation prompt is replaced by the empty prompt, which trains the
    /// unconditional branch that classifier-free guidance needs.
    pub text_dropout: f32,
    /// Draw prompt-match questions in pairs: the true render (yes) and a one-constraint
    /// violation of the same prompt (no), side by side in the batch. Otherwise each is drawn
    /// alone, yes or no with equal chance.
    pub paired_match: bool,
    /// Scenes of understanding questions hold at most this many objects (1 to 6; 6, the
    /// default, allows every scene). Smaller values make the questions easier: a curriculum
    /// knob for probes.
    #[serde(default = "all_objects")]
    pub und_max_objects: usize,
    /// Curriculum: over the first this many steps the cap on objects per understanding scene
    /// rises from 1 to `und_max_objects` (0: no curriculum). A knob for probes. Questions that
    /// compare the question with the image ("is there a red circle ?") have no answer in the
    /// wording or in the image alone; trained on presence alone, the tiny model learnt them on
    /// one-object scenes after about 600 steps and not on full scenes in 1,000. In the full
    /// mixture a 1,500-step ramp did not carry over (2,500-step probe: presence 0.52).
    #[serde(default)]
    pub und_objects_ramp_steps: usize,
    /// Presence questions about present and absent objects are worded alike (shape always,
    /// colour 70%, size 30%), so the wording alone does not answer them
    /// (`compworld::vqa::QaStyle`). `false`, also when the key is absent, is the older wording,
    /// in which about 75% of the questions are answered by their words alone.
    #[serde(default)]
    pub presence_alike: bool,
    /// Weight of each kind of one-constraint violation among the prompt-match negatives:
    /// `colour_swap`, `shape_change`, `size_change`, `texture_change`, `relation_flip`,
    /// `count_off_by_one`, `object_missing`. For each prompt the kinds that apply are tried in
    /// a random order drawn by these weights (`compworld::vqa::prompt_match_pair_weighted`);
    /// a kind not listed, or weighted 0, is never used. Empty (the default, and every shipped
    /// recipe): uniform over the kinds that apply, the same draw as the evaluation's.
    #[serde(default)]
    pub violation_kinds: BTreeMap<String, f32>,
}

fn all_objects() -> usize {
    compworld::scene::MAX_OBJECTS
}

impl Default for MixConfig {
    fn default() -> Self {
        let gen_sources = [
            ("single", 3.0),
            ("color", 1.0),
            ("shape", 1.0),
            ("texture", 1.0),
            ("spatial", 1.0),
            ("3d_spatial", 0.5),
            ("non_spatial", 0.5),
            ("numeracy", 0.5),
            ("complex", 0.25),
            ("knowledge", 0.25),
            ("arithmetic", 0.15),
            ("geometry", 0.25),
            ("composite", 0.25),
        ];
        let und_kinds = [
            ("presence", 1.0),
            ("attribute", 1.0),
            ("count", 1.0),
            ("relation", 1.0),
            ("prompt_match", 3.0),
            ("region", 2.0),
            ("knowledge", 0.3),
            ("caption", 1.0),
        ];
        let to_map = |xs: &[(&str, f32)]| xs.iter().map(|(k, w)| (k.to_string(), *w)).collect();
        MixConfig {
            gen_sources: to_map(&gen_sources),
            und_kinds: to_map(&und_kinds),
            text_dropout: 0.1,
            paired_match: true,
            und_max_objects: all_objects(),
            und_objects_ramp_steps: 0,
            presence_alike: false,
            violation_kinds: BTreeMap::new(),
        }
    }
}

/// A generation source.
#[derive(Debug, Clone, Copy, PartialEq)]
enum GenSource {
    Single,
    Category(Category),
}

fn qa_kind_name(k: QaKind) -> &'static str {
    match k {
        QaKind::Presence => "presence",
        QaKind::Attribute => "attribute",
        QaKind::Count => "count",
        QaKind::Relation => "relation",
        QaKind::PromptMatch => "prompt_match",
        QaKind::Region => "region",
        QaKind::Knowledge => "knowledge",
        QaKind::Caption => "caption",
        QaKind::Position => "position",
    }
}

impl MixConfig {
    fn gen_table(&self) -> Result<Vec<(GenSource, f32)>> {
        let mut table = Vec::new();
        for (name, &w) in &self.gen_sources {
            let source = if name == "single" {
                GenSource::Single
            } else {
                GenSource::Category(Category::from_name(name).map_err(|_| {
                    Error::Config(format!(
                        "unknown generation source '{name}' in [mix.gen_sources] (expected \
                         'single' or a category: {})",
                        category_names()
                    ))
                })?)
            };
            table.push((source, w));
        }
        weights_ok(&table, "mix.gen_sources")?;
        Ok(table)
    }

    fn und_table(&self) -> Result<Vec<(QaKind, f32)>> {
        let mut table = Vec::new();
        for (name, &w) in &self.und_kinds {
            let kind = QaKind::ALL
                .into_iter()
                .find(|k| qa_kind_name(*k) == name)
                .ok_or_else(|| {
                    let names: Vec<_> = QaKind::ALL.into_iter().map(qa_kind_name).collect();
                    Error::Config(format!(
                        "unknown question kind '{name}' in [mix.und_kinds] (expected one of: {})",
                        names.join(", ")
                    ))
                })?;
            table.push((kind, w));
        }
        weights_ok(&table, "mix.und_kinds")?;
        Ok(table)
    }

    /// The prompt-match negatives' violation weights (empty: uniform).
    fn violation_table(&self) -> Result<Vec<(ViolationKind, f32)>> {
        let mut table = Vec::new();
        for (name, &w) in &self.violation_kinds {
            let kind = ViolationKind::ALL
                .iter()
                .copied()
                .find(|k| k.name() == name)
                .ok_or_else(|| {
                    let names: Vec<_> = ViolationKind::ALL.iter().map(|k| k.name()).collect();
                    Error::Config(format!(
                        "unknown violation kind '{name}' in [mix.violation_kinds] (expected one of: {})",
                        names.join(", ")
                    ))
                })?;
            table.push((kind, w));
        }
        if !table.is_empty() {
            weights_ok(&table, "mix.violation_kinds")?;
        }
        Ok(table)
    }

    /// Checks names, weights and the dropout probability.
    pub fn validate(&self) -> Result<()> {
        self.gen_table()?;
        self.und_table()?;
        self.violation_table()?;
        if !(0.0..1.0).contains(&self.text_dropout) {
            return Err(Error::Config(format!(
                "mix.text_dropout = {} must be in [0, 1)",
                self.text_dropout
            )));
        }
        if !(1..=compworld::scene::MAX_OBJECTS).contains(&self.und_max_objects) {
            return Err(Error::Config(format!(
                "mix.und_max_objects = {} must be in 1..={}",
                self.und_max_objects,
                compworld::scene::MAX_OBJECTS
            )));
        }
        Ok(())
    }
}

fn category_names() -> String {
    let names: Vec<_> = Category::ALL.iter().map(|c| c.name()).collect();
    names.join(", ")
}

fn weights_ok<T>(table: &[(T, f32)], what: &str) -> Result<()> {
    if table.iter().any(|(_, w)| !w.is_finite() || *w < 0.0) {
        return Err(Error::Config(format!(
            "{what}: weights must be finite and >= 0"
        )));
    }
    if table.iter().map(|(_, w)| w).sum::<f32>() <= 0.0 {
        return Err(Error::Config(format!(
            "{what}: at least one weight must be > 0"
        )));
    }
    Ok(())
}

fn pick_weighted<T: Copy>(table: &[(T, f32)], rng: &mut Rng) -> T {
    let w: Vec<f32> = table.iter().map(|(_, w)| *w).collect();
    table[rng.weighted_index(&w)].0
}

/// A generation pair.
#[derive(Debug, Clone)]
pub struct GenExample {
    /// The prompt, or "" when text dropout removed it.
    pub prompt: String,
    pub image: Image,
}

/// An understanding example: the model reads `question`, looks at `image` and should answer.
#[derive(Debug, Clone)]
pub struct UndExample {
    pub kind: QaKind,
    pub question: String,
    pub answer: String,
    pub image: Image,
    /// The scene the image shows (none for text-only questions), and the crop box in units
    /// when the image is a region of it: what the auxiliary patch-word targets are read from.
    pub scene: Option<Scene>,
    pub region: Option<[f32; 4]>,
}

/// The image an understanding question is about: the render, or a region of it cut out and
/// resized to the canvas; a blank canvas for text-only questions.
pub fn question_image(scene: Option<&Scene>, region: Option<[f32; 4]>, resolution: usize) -> Image {
    let Some(scene) = scene else {
        return render(&Scene::default(), resolution);
    };
    let img = render(scene, resolution);
    match region {
        Some(b) => crop_region(&img, b, resolution),
        None => img,
    }
}

/// The crop of a region question: box `b` (canvas units) cut from `img` and resized to
/// `resolution` pixels a side.
pub fn crop_region(img: &Image, b: [f32; 4], resolution: usize) -> Image {
    let k = img.width as f32 / compworld::world::CANVAS_UNITS;
    img.crop_resize(b.map(|v| v * k), resolution)
}

/// An endless, seeded stream of training examples.
#[derive(Debug, Clone)]
pub struct DataStream {
    rng: Rng,
    gen_table: Vec<(GenSource, f32)>,
    und_table: Vec<(QaKind, f32)>,
    violation_table: Vec<(ViolationKind, f32)>,
    text_dropout: f32,
    paired_match: bool,
    style: QaStyle,
    und_max_objects: usize,
    und_objects_ramp_steps: usize,
    /// The training step the next batch is for (drives the curriculum).
    step: usize,
    resolution: usize,
    /// Texts of the dev, val and test prompts.
    excluded: HashSet<String>,
    /// Longest text (in words plus the three special tokens) an example may have.
    max_text_len: usize,
}

impl DataStream {
    /// A stream over `mix` at `resolution` pixels, starting from `rng`'s state.
    pub fn new(mix: &MixConfig, resolution: usize, rng: Rng) -> Result<Self> {
        mix.validate()?;
        let excluded = make_splits(EVAL_SPLIT_SEED).splits[1..]
            .iter()
            .flatten()
            .map(|e| e.prompt.text.clone())
            .collect();
        Ok(DataStream {
            rng,
            gen_table: mix.gen_table()?,
            und_table: mix.und_table()?,
            violation_table: mix.violation_table()?,
            text_dropout: mix.text_dropout,
            paired_match: mix.paired_match,
            style: QaStyle {
                presence_alike: mix.presence_alike,
                prompt_match_rationale: false,
            },
            und_max_objects: mix.und_max_objects,
            und_objects_ramp_steps: mix.und_objects_ramp_steps,
            step: 0,
            resolution,
            excluded,
            max_text_len: usize::MAX,
        })
    }

    /// Drops understanding examples longer than `n` tokens (BOS, question, `<ans>`, answer,
    /// EOS), so every example fits the model.
    pub fn with_max_text_len(mut self, n: usize) -> Self {
        self.max_text_len = n;
        self
    }

    /// Prompt-match answers with their reasons (`compworld::vqa::rationale`), as a model whose
    /// config sets `prompt_match_rationale` answers.
    pub fn with_rationale(mut self, on: bool) -> Self {
        self.style.prompt_match_rationale = on;
        self
    }

    /// Tells the stream which training step the next batches are for (the curriculum of
    /// [`MixConfig::und_objects_ramp_steps`] depends on it).
    pub fn set_step(&mut self, step: usize) {
        self.step = step;
    }

    /// The most objects an understanding scene may hold at the current step.
    pub fn und_object_cap(&self) -> usize {
        let (max, ramp) = (self.und_max_objects, self.und_objects_ramp_steps);
        if ramp == 0 || self.step >= ramp {
            max
        } else {
            1 + (max - 1) * self.step / ramp
        }
    }

    /// The random state (saved in checkpoints so a resumed run continues the same stream).
    pub fn rng_state(&self) -> [u64; 4] {
        self.rng.state()
    }

    /// Continues the stream from a saved random state.
    pub fn set_rng_state(&mut self, state: [u64; 4]) {
        self.rng = Rng::from_state(state);
    }

    /// Whether a prompt may be used as a generation target.
    pub fn gen_allowed(&self, p: &Prompt) -> bool {
        !is_held_out(p) && !self.excluded.contains(&p.text)
    }

    /// Whether a prompt may appear in understanding data.
    pub fn und_allowed(&self, p: &Prompt) -> bool {
        !self.excluded.contains(&p.text)
    }

    /// The next `n` generation pairs.
    pub fn gen_examples(&mut self, n: usize) -> Vec<GenExample> {
        (0..n)
            .map(|_| {
                loop {
                    let p = match pick_weighted(&self.gen_table, &mut self.rng) {
                        GenSource::Single => single_object(&mut self.rng),
                        GenSource::Category(c) => generate(c, &mut self.rng),
                    };
                    if !self.gen_allowed(&p) {
                        continue;
                    }
                    let Ok(scene) = sample_scene(&p.meaning, &p.text, &mut self.rng) else {
                        continue;
                    };
                    let prompt = if self.rng.chance(self.text_dropout) {
                        String::new()
                    } else {
                        p.text
                    };
                    break GenExample {
                        prompt,
                        image: render(&scene, self.resolution),
                    };
                }
            })
            .collect()
    }

    /// The next `n` understanding examples.
    pub fn und_examples(&mut self, n: usize) -> Vec<UndExample> {
        let excluded = &self.excluded;
        let max_objects = self.und_object_cap();
        let accept =
            |p: &Prompt| !excluded.contains(&p.text) && p.meaning.object_count() <= max_objects;
        let words = |s: &str| s.split_whitespace().count();
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            let kind = pick_weighted(&self.und_table, &mut self.rng);
            // Prompt matches come in pairs (true render, one-constraint violation) when the
            // mixture asks for it and the batch has room for both.
            let drawn = if kind == QaKind::PromptMatch && self.paired_match && out.len() + 2 <= n {
                let (yes, no) = prompt_match_pair_styled(
                    &mut self.rng,
                    &accept,
                    &self.violation_table,
                    self.style,
                );
                std::iter::once(yes).chain(no).collect()
            } else {
                vec![example_styled(kind, &mut self.rng, &accept, self.style)]
            };
            for ex in drawn {
                if words(&ex.question) + words(&ex.answer) + 3 > self.max_text_len {
                    continue;
                }
                out.push(UndExample {
                    kind: ex.kind,
                    image: question_image(ex.scene.as_ref(), ex.region, self.resolution),
                    question: ex.question,
                    answer: ex.answer,
                    scene: ex.scene,
                    region: ex.region,
                });
            }
        }
        out
    }
}

/// A batch of generation pairs on the device.
#[derive(Debug, Clone)]
pub struct GenBatch {
    /// `[BOS] prompt [EOS]`, padded: `[batch, len]`.
    pub text: Tensor<2, Int>,
    /// Clean patches in model space, `[batch, tokens, patch_dim]`.
    pub x0: Tensor<3>,
    /// Unit-normal noise of the same shape (drawn on the CPU from the stream's seed).
    pub noise: Tensor<3>,
    /// Flow times in (0, 1), `[batch]`.
    pub t: Tensor<1>,
}

/// Token ids `[BOS] words.. [EOS]`.
fn encode_line(tok: &dyn Tokenizer, text: &str) -> Result<Vec<u32>> {
    let mut ids = vec![BOS];
    ids.extend(tok.encode(text)?);
    ids.push(EOS);
    Ok(ids)
}

/// Rows padded with [`PAD`], refused when longer than the model's text window.
fn pad_rows(rows: &[Vec<u32>], max_len: usize, device: &Device) -> Result<Tensor<2, Int>> {
    let len = rows.iter().map(Vec::len).max().unwrap_or(1);
    if len > max_len {
        return Err(Error::Config(format!(
            "a text of {len} tokens exceeds the model's max_text_len = {max_len}"
        )));
    }
    Ok(umm_model::sampler::pad_rows(rows, device))
}

/// Builds a generation batch; noise and times come from `rng`. Times are uniform in (0, 1]:
/// the sampler starts at pure noise (t = 1), where the layout is decided, so that end of the
/// path must be trained as much as the middle (a logit-normal draw, as in SD3, left it nearly
/// untrained here and gave scattered patches).
pub fn gen_batch(
    tok: &dyn Tokenizer,
    cfg: &UmmConfig,
    examples: &[GenExample],
    rng: &mut Rng,
    device: &Device,
) -> Result<GenBatch> {
    gen_batch_focused(tok, cfg, examples, rng, None, device)
}

/// Extra draws of flow times in a window: a fraction `share` of a batch's times is drawn
/// uniformly from `[lo, hi]` instead of from (0, 1] (see `TrainConfig::gen_t_focus`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TimeFocus {
    pub share: f32,
    pub lo: f32,
    pub hi: f32,
}

impl TimeFocus {
    /// The focus a configuration's `share` and `[lo, hi]` describe; none at `share = 0`.
    pub fn from_config(share: f32, [lo, hi]: [f32; 2]) -> Option<TimeFocus> {
        (share > 0.0).then_some(TimeFocus { share, lo, hi })
    }

    /// Whether a configuration's focus is well formed: `share` in [0, 1], `0 < lo < hi <= 1`.
    pub fn valid(share: f32, [lo, hi]: [f32; 2]) -> bool {
        (0.0..=1.0).contains(&share) && 0.0 < lo && lo < hi && hi <= 1.0
    }

    /// One flow time: from the window with probability `share`, else `otherwise(rng)`. Without
    /// a focus no extra number is drawn, so the stream is exactly `otherwise`'s.
    pub fn draw(
        focus: Option<TimeFocus>,
        rng: &mut Rng,
        otherwise: impl FnOnce(&mut Rng) -> f32,
    ) -> f32 {
        match focus {
            Some(f) if rng.range_f32(0.0, 1.0) < f.share => rng.range_f32(f.lo, f.hi),
            _ => otherwise(rng),
        }
    }
}

/// [`gen_batch`] with a [`TimeFocus`]; `None` draws exactly what [`gen_batch`] draws.
pub fn gen_batch_focused(
    tok: &dyn Tokenizer,
    cfg: &UmmConfig,
    examples: &[GenExample],
    rng: &mut Rng,
    focus: Option<TimeFocus>,
    device: &Device,
) -> Result<GenBatch> {
    let rows = examples
        .iter()
        .map(|e| encode_line(tok, &e.prompt))
        .collect::<Result<Vec<_>>>()?;
    let text = pad_rows(&rows, cfg.max_text_len, device)?;
    let images: Vec<&Image> = examples.iter().map(|e| &e.image).collect();
    let x0 = patchify(images_tensor(&images, device), cfg.patch);
    let (b, n, d) = (examples.len(), cfg.image_tokens(), cfg.patch_dim());
    let noise: Vec<f32> = (0..b * n * d).map(|_| rng.normal()).collect();
    let t: Vec<f32> = (0..b)
        .map(|_| TimeFocus::draw(focus, rng, |r| r.range_f32(1e-3, 1.0)))
        .collect();
    Ok(GenBatch {
        text,
        x0,
        noise: Tensor::from_data(TensorData::new(noise, [b, n, d]), device),
        t: Tensor::from_data(TensorData::new(t, [b]), device),
    })
}

/// A batch of understanding examples on the device.
#[derive(Debug, Clone)]
pub struct UndBatch {
    /// `[BOS] question <ans> answer [EOS]`, padded: `[batch, len]`.
    pub text: Tensor<2, Int>,
    /// Patches of the image asked about, `[batch, tokens, patch_dim]`.
    pub image: Tensor<3>,
    /// The token each position should predict next, `[batch, len]`.
    pub targets: Tensor<2, Int>,
    /// Where the next token is part of the answer (or its closing EOS): `1 / n` for an answer
    /// of `n` tokens (EOS included), so every example's weights sum to 1; else 0.
    pub mask: Tensor<2>,
    /// Auxiliary patch-word targets: for every image token, the colour, shape, texture and
    /// size words of the front-most object under the patch centre, `[batch, image_tokens]` each
    /// ([`PAD`] where no object is).
    pub patch_colour: Tensor<2, Int>,
    pub patch_shape: Tensor<2, Int>,
    pub patch_texture: Tensor<2, Int>,
    pub patch_size: Tensor<2, Int>,
    /// 1 where a patch centre lies on an object, else 0, `[batch, image_tokens]`.
    pub patch_mask: Tensor<2>,
    /// [`UndBatch::patch_mask`] on whole images, 0 on region crops (a crop resized to the
    /// canvas does not show the object's size).
    pub patch_size_mask: Tensor<2>,
    /// Side words of the object under each patch on whole images: `left` or `right` (`top` or
    /// `bottom`) when the object's centre lies at least 4 units from the vertical (horizontal)
    /// centre line, [`PAD`] otherwise, `[batch, image_tokens]` each.
    pub patch_side_x: Tensor<2, Int>,
    pub patch_side_y: Tensor<2, Int>,
    /// 1 where [`UndBatch::patch_side_x`] (`patch_side_y`) names a side, else 0.
    pub patch_side_x_mask: Tensor<2>,
    pub patch_side_y_mask: Tensor<2>,
}

/// The front-most object under the centre of every `patch x patch` cell of a
/// `resolution`-pixel image of `scene` (row-major, patchify order), or of the crop `region`
/// (units) resized to the canvas.
pub fn patch_objects(
    scene: &Scene,
    region: Option<[f32; 4]>,
    resolution: usize,
    patch: usize,
) -> Vec<Option<&compworld::Object>> {
    let side = resolution / patch;
    let units = compworld::world::CANVAS_UNITS;
    let [x0, y0, x1, y1] = region.unwrap_or([0.0, 0.0, units, units]);
    (0..side * side)
        .map(|k| {
            let (fx, fy) = (
                ((k % side) as f32 + 0.5) / side as f32,
                ((k / side) as f32 + 0.5) / side as f32,
            );
            scene.object_at(x0 + fx * (x1 - x0), y0 + fy * (y1 - y0))
        })
        .collect()
}

/// Builds an understanding batch.
pub fn und_batch(
    tok: &dyn Tokenizer,
    cfg: &UmmConfig,
    examples: &[UndExample],
    device: &Device,
) -> Result<UndBatch> {
    let mut rows = Vec::new();
    let mut targets = Vec::new();
    let mut masks: Vec<Vec<f32>> = Vec::new();
    for e in examples {
        let mut ids = question_ids(tok, &e.question)?;
        let prefix = ids.len();
        ids.extend(tok.encode(&e.answer)?);
        ids.push(EOS);
        // Position i predicts token i + 1; the answer starts at `prefix`.
        let tgt: Vec<u32> = ids[1..].iter().copied().chain([PAD]).collect();
        // Each example weighs the same whatever its answer's length: a caption's dozen
        // tokens would otherwise outweigh the one-word answers, most of the loss would be
        // spent on captions, and the yes/no questions the benchmarks ask would starve.
        let answer_tokens = ids.len() - prefix; // the answer words and EOS
        let mask = (0..ids.len())
            .map(|i| {
                if i + 1 >= prefix && i + 1 < ids.len() {
                    1.0 / answer_tokens as f32
                } else {
                    0.0
                }
            })
            .collect();
        rows.push(ids);
        targets.push(tgt);
        masks.push(mask);
    }
    let text = pad_rows(&rows, cfg.max_text_len, device)?;
    let targets = pad_rows(&targets, cfg.max_text_len, device)?;
    let len = text.dims()[1];
    let mask: Vec<f32> = masks
        .iter()
        .flat_map(|m| m.iter().copied().chain(std::iter::repeat(0.0)).take(len))
        .collect();
    let images: Vec<&Image> = examples.iter().map(|e| &e.image).collect();
    let n = cfg.image_tokens();
    let word = |w: &str| {
        tok.id(w)
            .map(i64::from)
            .ok_or_else(|| Error::Config(format!("the word '{w}' is not in the vocabulary")))
    };
    let (mut colour, mut shape, mut on) = (Vec::new(), Vec::new(), Vec::new());
    let (mut texture, mut size, mut size_on) = (Vec::new(), Vec::new(), Vec::new());
    let (mut side_x, mut side_y) = (Vec::new(), Vec::new());
    let (mut side_x_on, mut side_y_on) = (Vec::new(), Vec::new());
    for e in examples {
        let whole = if e.region.is_none() { 1.0f32 } else { 0.0 };
        let objects = match &e.scene {
            Some(s) => patch_objects(s, e.region, cfg.resolution, cfg.patch),
            None => vec![None; n],
        };
        for o in objects {
            match o {
                Some(o) => {
                    colour.push(word(o.colour.word())?);
                    shape.push(word(o.shape.word())?);
                    texture.push(word(o.texture.word())?);
                    size.push(word(o.size.word())?);
                    on.push(1.0f32);
                    size_on.push(whole);
                    let (sx, sy) = compworld::vqa::object_sides(o);
                    for (side, ids, mask) in [
                        (sx, &mut side_x, &mut side_x_on),
                        (sy, &mut side_y, &mut side_y_on),
                    ] {
                        match side.filter(|_| whole > 0.0) {
                            Some(w) => {
                                ids.push(word(w)?);
                                mask.push(1.0f32);
                            }
                            None => {
                                ids.push(i64::from(PAD));
                                mask.push(0.0);
                            }
                        }
                    }
                }
                None => {
                    for v in [
                        &mut colour,
                        &mut shape,
                        &mut texture,
                        &mut size,
                        &mut side_x,
                        &mut side_y,
                    ] {
                        v.push(i64::from(PAD));
                    }
                    for v in [&mut on, &mut size_on, &mut side_x_on, &mut side_y_on] {
                        v.push(0.0);
                    }
                }
            }
        }
    }
    let b = examples.len();
    let ints = |v: Vec<i64>| Tensor::<2, Int>::from_data(TensorData::new(v, [b, n]), device);
    Ok(UndBatch {
        text,
        image: patchify(images_tensor(&images, device), cfg.patch),
        targets,
        mask: Tensor::from_data(TensorData::new(mask, [b, len]), device),
        patch_colour: ints(colour),
        patch_shape: ints(shape),
        patch_texture: ints(texture),
        patch_size: ints(size),
        patch_mask: Tensor::from_data(TensorData::new(on, [b, n]), device),
        patch_size_mask: Tensor::from_data(TensorData::new(size_on, [b, n]), device),
        patch_side_x: ints(side_x),
        patch_side_y: ints(side_y),
        patch_side_x_mask: Tensor::from_data(TensorData::new(side_x_on, [b, n]), device),
        patch_side_y_mask: Tensor::from_data(TensorData::new(side_y_on, [b, n]), device),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use umm_model::WordTokenizer;

    #[test]
    fn generation_data_never_shows_evaluation_prompts_or_held_out_pairs() {
        let mut s = DataStream::new(&MixConfig::default(), 32, Rng::new(3)).unwrap();
        let splits = make_splits(EVAL_SPLIT_SEED);
        let eval: HashSet<String> = splits.splits[1..]
            .iter()
            .flatten()
            .map(|e| e.prompt.text.clone())
            .collect();
        assert!(eval.len() > 1000);
        let mut dropped = 0;
        for e in s.gen_examples(600) {
            if e.prompt.is_empty() {
                dropped += 1;
                continue;
            }
            assert!(!eval.contains(&e.prompt), "{}", e.prompt);
            assert!(
                !is_held_out(&Prompt::parse(&e.prompt).unwrap()),
                "{}",
                e.prompt
            );
        }
        // Text dropout at 0.1: 60 expected; a broken dropout gives 0 or 600.
        assert!((30..100).contains(&dropped), "{dropped}");
        for e in s.und_examples(300) {
            if e.kind == QaKind::PromptMatch {
                let p = e.question["does this image show : ".len()..].trim_end_matches(" ?");
                assert!(!eval.contains(p), "{p}");
            }
        }
    }

    #[test]
    fn focused_times_fall_in_the_window_in_their_share() {
        let tok = WordTokenizer::compworld();
        let cfg = UmmConfig::micro();
        let dev = Device::flex();
        let mut s = DataStream::new(&MixConfig::default(), 32, Rng::new(3)).unwrap();
        let ex = s.gen_examples(400);
        let times = |focus| {
            let b = gen_batch_focused(&tok, &cfg, &ex, &mut Rng::new(9), focus, &dev).unwrap();
            b.t.to_data().try_to_vec::<f32>().unwrap()
        };
        let window = |share| TimeFocus {
            share,
            lo: 0.7,
            hi: 0.8,
        };
        // No focus draws exactly what gen_batch draws.
        let plain = gen_batch(&tok, &cfg, &ex, &mut Rng::new(9), &dev).unwrap();
        assert_eq!(plain.t.to_data().try_to_vec::<f32>().unwrap(), times(None));
        assert!(
            times(Some(window(1.0)))
                .iter()
                .all(|t| (0.7..=0.8).contains(t))
        );
        // Share 0.5: the window (10% of (0, 1]) holds about 0.5 + 0.5 * 0.1 of the times.
        let inside = times(Some(window(0.5)))
            .iter()
            .filter(|t| (0.7..=0.8).contains(*t))
            .count() as f64
            / 400.0;
        assert!((inside - 0.55).abs() < 0.07, "{inside}");
    }

    #[test]
    fn prompt_matches_come_as_yes_no_pairs_about_the_same_prompt() {
        let mix = MixConfig {
            und_kinds: [("prompt_match".to_string(), 1.0)].into_iter().collect(),
            ..MixConfig::default()
        };
        let ex = DataStream::new(&mix, 32, Rng::new(9))
            .unwrap()
            .und_examples(200);
        let yes = ex.iter().filter(|e| e.answer == "yes").count();
        let no = ex.iter().filter(|e| e.answer == "no").count();
        assert_eq!(yes + no, 200);
        // Nearly every prompt has a violation, so the answers are close to balanced.
        assert!(no >= 90 && yes >= 100, "yes {yes} no {no}");
        let pairs = ex
            .windows(2)
            .filter(|w| w[0].answer == "yes" && w[1].answer == "no")
            .filter(|w| w[0].question == w[1].question && w[0].image.data != w[1].image.data)
            .count();
        // Every 'no' follows the 'yes' of its prompt (but perhaps a last unpaired one, drawn
        // when the batch had room for one example only).
        assert!(pairs + 1 >= no, "{pairs} pairs, {no} no");
    }

    #[test]
    fn a_stream_with_reasons_draws_the_same_images_and_answers_with_rationales() {
        let mix = MixConfig {
            und_kinds: [("prompt_match".to_string(), 1.0)].into_iter().collect(),
            ..MixConfig::default()
        };
        let draw = |reasons: bool| {
            DataStream::new(&mix, 32, Rng::new(9))
                .unwrap()
                .with_max_text_len(48)
                .with_rationale(reasons)
                .und_examples(100)
        };
        let (plain, reasoned) = (draw(false), draw(true));
        for (p, r) in plain.iter().zip(&reasoned) {
            assert_eq!((&p.question, &p.image.data), (&r.question, &r.image.data));
            // The verdict is the plain answer; a "yes" gives no broken constraint, a "no" one.
            assert_eq!(compworld::vqa::verdict(&r.answer), p.answer, "{}", r.answer);
            let reasons = compworld::vqa::reasons(&r.answer).unwrap();
            let broken = reasons.split(' ').any(|w| w == "no");
            assert_eq!(broken, p.answer == "no", "{}", r.answer);
        }
    }

    #[test]
    fn violation_weights_reach_the_stream_and_bad_names_are_refused() {
        let objects = |e: &UndExample| e.scene.as_ref().unwrap().objects.len();
        let fewer = |violation_kinds: BTreeMap<String, f32>| {
            let mix = MixConfig {
                und_kinds: [("prompt_match".to_string(), 1.0)].into_iter().collect(),
                violation_kinds,
                ..MixConfig::default()
            };
            let ex = DataStream::new(&mix, 32, Rng::new(9))
                .unwrap()
                .und_examples(120);
            let pairs: Vec<_> = ex
                .windows(2)
                .filter(|w| w[0].answer == "yes" && w[1].answer == "no")
                .map(|w| objects(&w[1]) < objects(&w[0]))
                .collect();
            (pairs.iter().filter(|f| **f).count(), pairs.len())
        };
        // Only removals: every negative has fewer objects than its true render.
        let (f, n) = fewer([("object_missing".to_string(), 1.0)].into_iter().collect());
        assert!(n >= 40 && f == n, "{f} of {n}");
        // The default draw also swaps colours and changes shapes, which keep the count.
        let (f, n) = fewer(BTreeMap::new());
        assert!(n >= 40 && f < n * 2 / 3, "{f} of {n}");
        let bad = MixConfig {
            violation_kinds: [("colour_change".to_string(), 1.0)].into_iter().collect(),
            ..MixConfig::default()
        };
        let err = bad.validate().unwrap_err().to_string();
        assert!(
            err.contains("unknown violation kind 'colour_change'") && err.contains("colour_swap"),
            "{err}"
        );
        let zero = MixConfig {
            violation_kinds: [("colour_swap".to_string(), 0.0)].into_iter().collect(),
            ..MixConfig::default()
        };
        assert!(zero.validate().is_err());
    }

    #[test]
    fn understanding_loss_mask_covers_the_answer_and_eos_only() {
        let tok = WordTokenizer::compworld();
        let ex = UndExample {
            kind: QaKind::Count,
            question: "how many circles ?".into(),
            answer: "two".into(),
            image: Image::filled(32, 32, [1.0; 3]),
            scene: None,
            region: None,
        };
        let b = und_batch(&tok, &UmmConfig::micro(), &[ex], &Device::flex()).unwrap();
        let ids: Vec<i64> = b.text.to_data().convert::<i64>().try_to_vec().unwrap();
        let tg: Vec<i64> = b.targets.to_data().convert::<i64>().try_to_vec().unwrap();
        let m: Vec<f32> = b.mask.to_data().try_to_vec().unwrap();
        // [BOS] how many circles ? <ans> two [EOS]: the model predicts "two" at <ans> and
        // EOS at "two".
        assert_eq!(ids.len(), 8);
        assert_eq!(m, vec![0., 0., 0., 0., 0., 0.5, 0.5, 0.]);
        assert_eq!(tg[5], i64::from(tok.id("two").unwrap()));
        assert_eq!(tg[6], i64::from(EOS));
        assert_eq!(ids[5], i64::from(tok.id("<ans>").unwrap()));
    }

    /// A micro-config batch of region questions about `scene`, one per entry of `regions`
    /// (`None`: the whole image).
    fn region_batch(scene: &Scene, regions: &[Option<[f32; 4]>]) -> UndBatch {
        let ex: Vec<UndExample> = regions
            .iter()
            .map(|&region| UndExample {
                kind: QaKind::Region,
                question: "what is this ?".into(),
                answer: "red circle".into(),
                image: question_image(Some(scene), region, 32),
                scene: Some(scene.clone()),
                region,
            })
            .collect();
        und_batch(
            &WordTokenizer::compworld(),
            &UmmConfig::micro(),
            &ex,
            &Device::flex(),
        )
        .unwrap()
    }

    #[test]
    fn patch_word_targets_name_the_object_under_each_patch() {
        use compworld::{Colour, Object, Shape, Size, Texture};
        let tok = WordTokenizer::compworld();
        let circle = Object {
            shape: Shape::Circle,
            colour: Colour::Red,
            texture: Texture::Solid,
            size: Size::Large,
            x: 16.0,
            y: 16.0,
        };
        let scene = Scene {
            objects: vec![circle],
        };
        // 32 px, 4 px patches: 8 x 8 tokens.
        let b = region_batch(&scene, &[None, Some(circle.bbox())]);
        let ints =
            |t: &Tensor<2, Int>| -> Vec<i64> { t.to_data().convert::<i64>().try_to_vec().unwrap() };
        let (colour, shape) = (ints(&b.patch_colour), ints(&b.patch_shape));
        let (texture, size) = (ints(&b.patch_texture), ints(&b.patch_size));
        let on: Vec<f32> = b.patch_mask.to_data().try_to_vec().unwrap();
        let size_on: Vec<f32> = b.patch_size_mask.to_data().try_to_vec().unwrap();
        let id = |w: &str| i64::from(tok.id(w).unwrap());
        let pad = i64::from(PAD);
        for k in 0..128 {
            if on[k] == 1.0 {
                assert_eq!(
                    (colour[k], shape[k], texture[k], size[k]),
                    (id("red"), id("circle"), id("plain"), id("large")),
                    "patch {k}"
                );
            } else {
                assert_eq!(
                    (on[k], colour[k], shape[k], texture[k], size[k]),
                    (0.0, pad, pad, pad, pad)
                );
            }
            // The size is named on the whole image only: the crop fills the canvas whatever
            // the object's size.
            let whole = k < 64;
            assert_eq!(size_on[k], if whole { on[k] } else { 0.0 }, "patch {k}");
        }
        // Whole image: a disc of radius 6.5 units covers about 8 of the 4x4-unit patches,
        // among them the centre (row 3, column 3 has its centre at (14, 14)), not the corner.
        let whole: f32 = on[..64].iter().sum();
        assert!((6.0..=12.0).contains(&whole), "{whole}");
        assert_eq!((on[3 * 8 + 3], on[0]), (1.0, 0.0));
        // The crop of the object's box fills the canvas: about pi/4 of its patches.
        let crop: f32 = on[64..].iter().sum();
        assert!((44.0..=56.0).contains(&crop), "{crop}");
        assert_eq!((on[64], on[64 + 3 * 8 + 3]), (0.0, 1.0));
    }

    #[test]
    fn side_words_name_where_each_object_lies_on_whole_images_only() {
        use compworld::{Colour, Object, Shape, Size, Texture};
        let tok = WordTokenizer::compworld();
        let at = |shape, x: f32, y: f32| Object {
            shape,
            colour: Colour::Red,
            texture: Texture::Solid,
            size: Size::Small,
            x,
            y,
        };
        // A circle on the top left, a square right of centre on the middle row (too close to
        // the horizontal centre line for top or bottom).
        let scene = Scene {
            objects: vec![at(Shape::Circle, 6.0, 6.0), at(Shape::Square, 26.0, 17.0)],
        };
        let b = region_batch(&scene, &[None, Some([0.0, 0.0, 16.0, 16.0])]);
        let ints =
            |t: &Tensor<2, Int>| -> Vec<i64> { t.to_data().convert::<i64>().try_to_vec().unwrap() };
        let floats = |t: &Tensor<2>| -> Vec<f32> { t.to_data().try_to_vec().unwrap() };
        let (sx, sy) = (ints(&b.patch_side_x), ints(&b.patch_side_y));
        let (xon, yon) = (floats(&b.patch_side_x_mask), floats(&b.patch_side_y_mask));
        let shape = ints(&b.patch_shape);
        let id = |w: &str| i64::from(tok.id(w).unwrap());
        let pad = i64::from(PAD);
        let (mut circles, mut squares) = (0, 0);
        for k in 0..64 {
            if shape[k] == id("circle") {
                circles += 1;
                assert_eq!(
                    (sx[k], sy[k], xon[k], yon[k]),
                    (id("left"), id("top"), 1.0, 1.0)
                );
            } else if shape[k] == id("square") {
                squares += 1;
                assert_eq!((sx[k], sy[k], xon[k], yon[k]), (id("right"), pad, 1.0, 0.0));
            } else {
                assert_eq!((sx[k], sy[k], xon[k], yon[k]), (pad, pad, 0.0, 0.0));
            }
        }
        assert!(circles > 0 && squares > 0);
        // On a crop the canvas is not the scene: no sides, although the circle fills it.
        assert!(shape[64..].contains(&id("circle")));
        assert!(xon[64..].iter().chain(&yon[64..]).all(|&v| v == 0.0));
    }

    #[test]
    fn long_and_short_answers_weigh_the_same() {
        let tok = WordTokenizer::compworld();
        let ex = |question: &str, answer: &str| UndExample {
            kind: QaKind::Caption,
            question: question.into(),
            answer: answer.into(),
            image: Image::filled(32, 32, [1.0; 3]),
            scene: None,
            region: None,
        };
        let b = und_batch(
            &tok,
            &UmmConfig::micro(),
            &[
                ex("is there a red circle ?", "yes"),
                ex(
                    "what does this image show ?",
                    "a small red circle on the left of a large blue square",
                ),
            ],
            &Device::flex(),
        )
        .unwrap();
        let m: Vec<f32> = b.mask.to_data().try_to_vec().unwrap();
        let len = m.len() / 2;
        let rows: Vec<f32> = m.chunks(len).map(|r| r.iter().sum()).collect();
        assert!(
            (rows[0] - 1.0).abs() < 1e-6 && (rows[1] - 1.0).abs() < 1e-6,
            "{rows:?}"
        );
        // The caption spreads its weight over its 12 words and EOS.
        assert_eq!(m[len..].iter().filter(|&&w| w > 0.0).count(), 13);
    }

    #[test]
    fn mixture_names_are_checked() {
        let mut m = MixConfig::default();
        m.gen_sources.insert("colour".into(), 1.0);
        let e = m.validate().unwrap_err().to_string();
        assert!(e.contains("unknown generation source 'colour'"), "{e}");
        let mut m = MixConfig::default();
        m.und_kinds.insert("regions".into(), 1.0);
        assert!(m.validate().unwrap_err().to_string().contains("'regions'"));
        let mut m = MixConfig::default();
        m.und_kinds.values_mut().for_each(|w| *w = 0.0);
        assert!(m.validate().unwrap_err().to_string().contains("> 0"));
        let m = MixConfig {
            und_max_objects: 7,
            ..MixConfig::default()
        };
        let e = m.validate().unwrap_err().to_string();
        assert!(
            e.contains("mix.und_max_objects = 7 must be in 1..=6"),
            "{e}"
        );
    }

    #[test]
    fn the_curriculum_starts_with_one_object_scenes() {
        let mix = MixConfig {
            und_kinds: [("prompt_match".to_string(), 1.0)].into_iter().collect(),
            und_objects_ramp_steps: 100,
            ..MixConfig::default()
        };
        let mut s = DataStream::new(&mix, 32, Rng::new(4)).unwrap();
        let objects = |s: &mut DataStream| -> Vec<usize> {
            s.und_examples(40)
                .iter()
                .map(|e| {
                    let text = e.question.trim_start_matches("does this image show : ");
                    let text = text.trim_end_matches(" ?");
                    Prompt::parse(text).unwrap().meaning.object_count()
                })
                .collect()
        };
        assert_eq!(s.und_object_cap(), 1);
        assert!(objects(&mut s).iter().all(|&n| n == 1));
        s.set_step(50);
        assert_eq!(s.und_object_cap(), 3);
        assert!(objects(&mut s).iter().all(|&n| n <= 3));
        s.set_step(100);
        assert_eq!(s.und_object_cap(), 6);
        // After the ramp, crowded scenes come back.
        assert!(objects(&mut s).iter().any(|&n| n >= 4));
    }
}
