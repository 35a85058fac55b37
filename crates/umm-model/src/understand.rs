//! Asking the model about images: the question format, images in the model's pixel space,
//! greedy answers and yes/no probabilities. Training, evaluation and the self-rewards all ask
//! through here, so they ask the same way.

use burn::prelude::*;
use burn::tensor::TensorData;
use burn::tensor::activation::softmax;
use compworld::Image;

use crate::tokenizer::{ANS, BOS, EOS};
use crate::{Error, Result, Tokenizer, Umm, UmmConfig, UmmInput, patchify};

/// Questions answered per forward pass.
const BATCH: usize = 64;

/// The question that asks whether an image shows a prompt.
pub fn prompt_match_question(prompt: &str) -> String {
    format!("does this image show : {prompt} ?")
}

/// The question asked about a region crop.
pub const REGION_QUESTION: &str = "what is this ?";

/// `[BOS] question <ans>`: what the model reads before it answers.
pub fn question_ids(tok: &dyn Tokenizer, question: &str) -> Result<Vec<u32>> {
    let mut ids = vec![BOS];
    ids.extend(tok.encode(question)?);
    ids.push(ANS);
    Ok(ids)
}

/// Images `[batch, 3, side, side]` in the model's pixel space, `2 x - 1` (so values are
/// centred like the unit-normal noise of the flow).
pub fn images_tensor(images: &[&Image], device: &Device) -> Tensor<4> {
    let side = images.first().map_or(0, |i| i.width);
    let data: Vec<f32> = images
        .iter()
        .flat_map(|i| i.to_chw())
        .map(|v| 2.0 * v - 1.0)
        .collect();
    Tensor::from_data(TensorData::new(data, [images.len(), 3, side, side]), device)
}

fn check_sizes(cfg: &UmmConfig, questions: &[(String, Image)]) -> Result<()> {
    let r = cfg.resolution;
    match questions
        .iter()
        .find(|(_, i)| i.width != r || i.height != r)
    {
        Some((q, i)) => Err(Error::Config(format!(
            "image for \"{q}\" is {}x{}, the model reads {r}x{r}",
            i.width, i.height
        ))),
        None => Ok(()),
    }
}

/// Greedy answers (at most `max_tokens` words, up to EOS) to questions about images.
pub fn answer(
    model: &Umm,
    cfg: &UmmConfig,
    tok: &dyn Tokenizer,
    questions: &[(String, Image)],
    max_tokens: usize,
    device: &Device,
) -> Result<Vec<String>> {
    Ok(
        answer_steps(model, cfg, tok, questions, max_tokens, false, device)?
            .into_iter()
            .map(|a| a.text)
            .collect(),
    )
}

/// A greedy answer with the model's next-token distribution at each of its steps.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoredAnswer {
    /// The answer's words.
    pub text: String,
    /// The token ids the model chose, up to (not including) EOS.
    pub ids: Vec<u32>,
    /// `probs[i]`: the softmax over the vocabulary from which `ids[i]` was chosen.
    pub probs: Vec<Vec<f32>>,
}

/// [`answer`] that also keeps, for each answer word, the distribution it was chosen from
/// (what else the model would have said, and how likely).
pub fn answer_with_probs(
    model: &Umm,
    cfg: &UmmConfig,
    tok: &dyn Tokenizer,
    questions: &[(String, Image)],
    max_tokens: usize,
    device: &Device,
) -> Result<Vec<ScoredAnswer>> {
    answer_steps(model, cfg, tok, questions, max_tokens, true, device)
}

fn answer_steps(
    model: &Umm,
    cfg: &UmmConfig,
    tok: &dyn Tokenizer,
    questions: &[(String, Image)],
    max_tokens: usize,
    keep_probs: bool,
    device: &Device,
) -> Result<Vec<ScoredAnswer>> {
    check_sizes(cfg, questions)?;
    let mut out = Vec::with_capacity(questions.len());
    for chunk in questions.chunks(BATCH) {
        let images: Vec<&Image> = chunk.iter().map(|(_, i)| i).collect();
        let patches = patchify(images_tensor(&images, device), cfg.patch);
        let mut rows = chunk
            .iter()
            .map(|(q, _)| question_ids(tok, q))
            .collect::<Result<Vec<_>>>()?;
        let prefix: Vec<usize> = rows.iter().map(Vec::len).collect();
        let mut probs: Vec<Vec<Vec<f32>>> = vec![Vec::new(); chunk.len()];
        let mut done = vec![false; chunk.len()];
        for _ in 0..max_tokens {
            // The model has positions for `max_text_len` tokens: stop before a row outgrows them.
            if rows.iter().map(Vec::len).max().unwrap_or(0) >= cfg.max_text_len {
                break;
            }
            let text = crate::sampler::pad_rows(&rows, device);
            let len = text.dims()[1];
            let logits = model
                .forward(UmmInput {
                    text,
                    und_image: Some(patches.clone()),
                    gen_image: None,
                })
                .logits; // [b, len, vocab]
            let vocab = logits.dims()[2];
            let p: Option<Vec<f32>> = keep_probs.then(|| {
                softmax(logits.clone(), 2)
                    .reshape([chunk.len() * len * vocab])
                    .to_data()
                    .try_to_vec::<f32>()
                    .expect("f32 probabilities")
            });
            let next: Vec<i64> = logits
                .argmax(2)
                .reshape([chunk.len() * len])
                .to_data()
                .convert::<i64>()
                .try_to_vec::<i64>()
                .expect("int ids");
            for (i, row) in rows.iter_mut().enumerate() {
                if done[i] {
                    continue;
                }
                let at = i * len + row.len() - 1;
                let id = next[at] as u32;
                if let Some(p) = &p
                    && id != EOS
                {
                    probs[i].push(p[at * vocab..(at + 1) * vocab].to_vec());
                }
                row.push(id);
                done[i] = id == EOS;
            }
            if done.iter().all(|&d| d) {
                break;
            }
        }
        for ((row, p), probs) in rows.iter().zip(prefix).zip(probs) {
            let ids: Vec<u32> = row[p..].iter().copied().take_while(|&i| i != EOS).collect();
            out.push(ScoredAnswer {
                text: tok.decode(&ids)?,
                probs,
                ids,
            });
        }
    }
    Ok(out)
}

/// For each yes/no question, the model's probabilities of answering "yes" and "no" (the
/// softmax over the whole vocabulary at `<ans>`, so the two need not sum to one).
pub fn yes_no(
    model: &Umm,
    cfg: &UmmConfig,
    tok: &dyn Tokenizer,
    questions: &[(String, Image)],
    device: &Device,
) -> Result<Vec<(f32, f32)>> {
    let [yes, no] = ["yes", "no"].map(|w| word_id(tok, w));
    let (yes, no) = (yes?, no?);
    Ok(first_word_probs(model, cfg, tok, questions, device)?
        .into_iter()
        .map(|p| (p[yes], p[no]))
        .collect())
}

/// The most words a prompt-match answer may have: 1 ("yes"), or with reasons
/// ([`UmmConfig::prompt_match_rationale`]) as many as the model has positions.
pub fn prompt_match_max_tokens(cfg: &UmmConfig) -> usize {
    if cfg.prompt_match_rationale {
        cfg.max_text_len
    } else {
        1
    }
}

/// For each `(prompt, image)`, the model's probabilities of "yes" and "no" as its answer to
/// [`prompt_match_question`]. A model that answers with reasons
/// ([`UmmConfig::prompt_match_rationale`]) first writes them greedily, and the probabilities
/// are those of its verdict, the word after its last `:` (after its last word when it wrote
/// no `:`; both 0 when it wrote nothing); otherwise they are read at `<ans>`, as [`yes_no`].
pub fn prompt_match_yes_no(
    model: &Umm,
    cfg: &UmmConfig,
    tok: &dyn Tokenizer,
    items: &[(&str, &Image)],
    device: &Device,
) -> Result<Vec<(f32, f32)>> {
    let questions: Vec<(String, Image)> = items
        .iter()
        .map(|(p, img)| (prompt_match_question(p), (*img).clone()))
        .collect();
    if !cfg.prompt_match_rationale {
        return yes_no(model, cfg, tok, &questions, device);
    }
    answer_with_probs(
        model,
        cfg,
        tok,
        &questions,
        prompt_match_max_tokens(cfg),
        device,
    )?
    .iter()
    .map(|a| verdict_yes_no(tok, a))
    .collect()
}

/// The probabilities of "yes" and "no" as the verdict of an answer with reasons: at the word
/// after its last `:`, or at its last word when it has no `:`; `(0, 0)` when there is no such
/// word (the answer ends at the `:`, or is empty).
pub fn verdict_yes_no(tok: &dyn Tokenizer, a: &ScoredAnswer) -> Result<(f32, f32)> {
    let [yes, no, colon] = [
        word_id(tok, "yes")?,
        word_id(tok, "no")?,
        word_id(tok, ":")?,
    ];
    let at = a
        .ids
        .iter()
        .rposition(|&i| i as usize == colon)
        .map_or(a.ids.len().saturating_sub(1), |c| c + 1);
    Ok(a.probs.get(at).map_or((0.0, 0.0), |p| (p[yes], p[no])))
}

/// The id of `w` as an index into a distribution over the vocabulary.
pub fn word_id(tok: &dyn Tokenizer, w: &str) -> Result<usize> {
    tok.id(w)
        .map(|i| i as usize)
        .ok_or_else(|| Error::Config(format!("the tokenizer has no '{w}'")))
}

/// For each question, the model's distribution over the vocabulary for the first word of its
/// answer: the softmax of the logits at `<ans>`, one forward pass per batch.
pub fn first_word_probs(
    model: &Umm,
    cfg: &UmmConfig,
    tok: &dyn Tokenizer,
    questions: &[(String, Image)],
    device: &Device,
) -> Result<Vec<Vec<f32>>> {
    check_sizes(cfg, questions)?;
    let mut out = Vec::with_capacity(questions.len());
    for chunk in questions.chunks(BATCH) {
        let images: Vec<&Image> = chunk.iter().map(|(_, i)| i).collect();
        let rows = chunk
            .iter()
            .map(|(q, _)| question_ids(tok, q))
            .collect::<Result<Vec<_>>>()?;
        let ends: Vec<usize> = rows.iter().map(|r| r.len() - 1).collect();
        let text = crate::sampler::pad_rows(&rows, device);
        let [b, len] = text.dims();
        let logits = model
            .forward(UmmInput {
                text,
                und_image: Some(patchify(images_tensor(&images, device), cfg.patch)),
                gen_image: None,
            })
            .logits; // [b, len, vocab]
        let vocab = logits.dims()[2];
        let p: Vec<f32> = softmax(logits, 2)
            .reshape([b * len * vocab])
            .to_data()
            .try_to_vec::<f32>()
            .expect("f32 probabilities");
        for (i, &e) in ends.iter().enumerate() {
            let at = (i * len + e) * vocab;
            out.push(p[at..at + vocab].to_vec());
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::WordTokenizer;

    #[test]
    fn the_verdict_is_read_after_the_last_colon() {
        let tok = WordTokenizer::compworld();
        let id = |w: &str| tok.id(w).unwrap();
        let v = tok.vocab_size();
        // A distribution putting `y` on "yes" and `n` on "no".
        let dist = |y: f32, n: f32| {
            let mut p = vec![0.0; v];
            p[id("yes") as usize] = y;
            p[id("no") as usize] = n;
            p
        };
        let scored = |words: &str, probs: Vec<Vec<f32>>| ScoredAnswer {
            text: words.into(),
            ids: words.split(' ').map(id).collect(),
            probs,
        };
        let a = scored(
            "circle no : yes",
            vec![
                dist(0.0, 0.0),
                dist(0.1, 0.8),
                dist(0.0, 0.0),
                dist(0.7, 0.2),
            ],
        );
        assert_eq!(verdict_yes_no(&tok, &a).unwrap(), (0.7, 0.2));
        // No reasons: the last word.
        let a = scored("yes", vec![dist(0.6, 0.3)]);
        assert_eq!(verdict_yes_no(&tok, &a).unwrap(), (0.6, 0.3));
        // Cut off at the colon, or nothing said: no verdict.
        let a = scored(
            "circle yes :",
            vec![dist(0.0, 0.0), dist(0.9, 0.1), dist(0.0, 0.0)],
        );
        assert_eq!(verdict_yes_no(&tok, &a).unwrap(), (0.0, 0.0));
        let empty = ScoredAnswer {
            text: String::new(),
            ids: vec![],
            probs: vec![],
        };
        assert_eq!(verdict_yes_no(&tok, &empty).unwrap(), (0.0, 0.0));
    }
}
