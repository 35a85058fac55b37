//! reward-global: the global half of SRUM's self-reward (DESIGN.md section 1, step 4).
//!
//! The model is asked, about the whole image, the question it was pretrained to answer for
//! whole prompts, `does this image show : <prompt> ?`, and the global score is read off its
//! next-token distribution at `<ans>`:
//!
//! `g = (P(yes) - P(no)) / (P(yes) + P(no))`, in [-1, 1]
//!
//! (the two probabilities renormalised to the yes/no choice: +1 when the model is sure the
//! image shows the prompt, -1 when it is sure it does not, 0 when it cannot tell). Reasoning
//! prompts ("a cross the colour of a carrot") reach the model as written, so inferring what
//! they mean is the model's own job. As in the reference, a sample whose global score is
//! exactly 0 carries no signal and may be dropped ([`keep`]).
//!
//! **Invariant:** nothing here depends on the benchmark oracle or reads a scene's ground truth.

use burn::prelude::*;
use compworld::Image;
use reward_local::Result;
use reward_local::region::check_input;
use umm_model::understand::{prompt_match_question, yes_no};
use umm_model::{Tokenizer, Umm, UmmConfig};

/// `g` from the model's probabilities of "yes" and "no" (0 when both are 0).
pub fn score_from(p_yes: f32, p_no: f32) -> f32 {
    let s = p_yes + p_no;
    if s <= 0.0 {
        0.0
    } else {
        ((p_yes - p_no) / s).clamp(-1.0, 1.0)
    }
}

/// Whether a sample with global score `g` is kept for training (the reference drops g = 0).
pub fn keep(g: f32) -> bool {
    g != 0.0
}

/// The global score of each `(image, prompt)`, asked in batches. Images must be at the model's
/// resolution; prompts must be non-empty and in its vocabulary.
pub fn global_scores(
    model: &Umm,
    cfg: &UmmConfig,
    tok: &dyn Tokenizer,
    items: &[(&Image, &str)],
    device: &Device,
) -> Result<Vec<f32>> {
    for (img, prompt) in items {
        check_input(cfg, tok, img, prompt)?;
    }
    let questions: Vec<(String, Image)> = items
        .iter()
        .map(|(img, p)| (prompt_match_question(p), (*img).clone()))
        .collect();
    Ok(yes_no(model, cfg, tok, &questions, device)?
        .into_iter()
        .map(|(y, n)| score_from(y, n))
        .collect())
}
