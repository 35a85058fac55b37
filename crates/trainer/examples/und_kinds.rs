//! Accuracy of a checkpoint on each kind of understanding question, drawn from the training
//! distribution (not a held-out measure: a diagnostic of what the model has learned).
//!
//! `cargo run --release -p trainer --example und_kinds -- <checkpoint.safetensors> [n] [--presence-alike] [--kinds relation,count]`
//!
//! `--presence-alike` draws presence questions worded alike for present and absent objects
//! (`mix.presence_alike`), where the wording alone gives no answer.
//!
//! Answers are compared whole: for a model that answers prompt matches with reasons
//! (`prompt_match_rationale`) the `prompt_match` line is the share of answers whose reasons and
//! verdict are all right; `srum eval-und` gives the verdict's accuracy on a split.

use burn::prelude::*;
use compworld::Rng;
use compworld::vqa::QaKind;
use trainer::data::{DataStream, MixConfig};
use trainer::eval::answer;
use umm_model::{WordTokenizer, checkpoint};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let n: usize = args.get(2).map_or(Ok(128), |s| s.parse())?;
    let presence_alike = args.iter().any(|a| a == "--presence-alike");
    // `--kinds a,b`: only these kinds (names as printed).
    let only: Option<Vec<String>> = args
        .iter()
        .position(|a| a == "--kinds")
        .and_then(|i| args.get(i + 1))
        .map(|s| s.split(',').map(str::to_string).collect());
    let dev = Device::flex();
    let (model, meta) = checkpoint::load(std::path::Path::new(&args[1]), &dev)?;
    let tok = WordTokenizer::compworld();
    for kind in QaKind::ALL {
        let name = format!("{kind:?}").to_lowercase();
        let name = if name == "promptmatch" {
            "prompt_match".to_string()
        } else {
            name
        };
        if only.as_ref().is_some_and(|o| !o.contains(&name)) {
            continue;
        }
        let mix = MixConfig {
            und_kinds: [(name.clone(), 1.0)].into_iter().collect(),
            presence_alike,
            ..MixConfig::default()
        };
        let ex = DataStream::new(&mix, meta.config.resolution, Rng::new(77))?
            .with_max_text_len(meta.config.max_text_len)
            .with_rationale(meta.config.prompt_match_rationale)
            .und_examples(n);
        let qs: Vec<_> = ex
            .iter()
            .map(|e| (e.question.clone(), e.image.clone()))
            .collect();
        let got = answer(&model, &meta.config, &tok, &qs, 40, &dev)?;
        let right = got.iter().zip(&ex).filter(|(g, e)| **g == e.answer).count();
        let yes = ex.iter().filter(|e| e.answer == "yes").count();
        println!(
            "{name:<13} {:.3}  ({} of {n}; {yes} answers are yes)   e.g. {:?} -> {:?} (want {:?})",
            right as f64 / n as f64,
            right,
            ex[0].question,
            got[0],
            ex[0].answer
        );
    }
    Ok(())
}
