//! Does a checkpoint's answer depend on the image? For presence questions asked about images
//! that do and do not show the object, prints P(yes) and how far the answer's logits move when
//! the image is replaced by zeros. A model that has learnt to ignore the image gives the same
//! P(yes) for both images of a question (this is how the tiny preset's failure on whole-scene
//! questions was found: trained on presence questions alone, it answered from the wording).
//!
//! `cargo run --release -p trainer --example image_sensitivity -- <checkpoint.safetensors | fresh>`

use burn::prelude::*;
use burn::tensor::activation::log_softmax;
use compworld::{Prompt, Rng, sample_scene};
use trainer::data::{images_tensor, question_ids, question_image};
use umm_model::{Tokenizer, Umm, UmmConfig, UmmInput, WordTokenizer, checkpoint, patchify};

fn main() -> anyhow::Result<()> {
    let arg = std::env::args().nth(1).ok_or_else(|| {
        anyhow::anyhow!("usage: image_sensitivity <checkpoint.safetensors | fresh>")
    })?;
    let dev = Device::flex();
    let (model, cfg) = if arg == "fresh" {
        let c = UmmConfig::tiny();
        (trainer::init::seeded(Umm::init(&c, &dev), 0), c)
    } else {
        let (m, meta) = checkpoint::load(std::path::Path::new(&arg), &dev)?;
        (m, meta.config)
    };
    let tok = WordTokenizer::compworld();
    let yes = tok.id("yes").expect("yes is a word") as usize;
    let mut rng = Rng::new(3);
    // Presence, then position: the same object moved to the left and to the right edge (x = 7
    // and 25 units), asked whether it is on the left. A model that reads where the named object
    // lies gives the two different answers.
    let cases = [
        ("a large green circle", None, "is there a green circle ?"),
        ("a large red square", None, "is there a green circle ?"),
        ("a large green square", None, "is there a green square ?"),
        ("a small blue cross", None, "is there a green square ?"),
        ("a green circle", Some(7.0), "is the circle on the left ?"),
        ("a green circle", Some(25.0), "is the circle on the left ?"),
        ("a red square", Some(7.0), "is the square on the left ?"),
        ("a red square", Some(25.0), "is the square on the left ?"),
    ];
    for (shown, x, asked) in cases {
        let p = Prompt::parse(shown)?;
        let mut scene = sample_scene(&p.meaning, &p.text, &mut rng)?;
        if let Some(x) = x {
            scene.objects[0].x = x;
        }
        let shown = match x {
            Some(x) => format!("{shown} at x {x}"),
            None => shown.to_string(),
        };
        let img = question_image(Some(&scene), None, cfg.resolution);
        let ids: Vec<i64> = question_ids(&tok, asked)?
            .into_iter()
            .map(i64::from)
            .collect();
        let n = ids.len();
        let text = Tensor::<2, Int>::from_data(TensorData::new(ids, [1, n]), &dev);
        let patches = patchify(images_tensor(&[&img], &dev), cfg.patch);
        let logits = |und: Tensor<3>| {
            model
                .forward(UmmInput {
                    text: text.clone(),
                    und_image: Some(und),
                    gen_image: None,
                })
                .logits
                .slice_dim(1, n - 1..n)
        };
        let (with, without) = (logits(patches.clone()), logits(patches.zeros_like()));
        let moved = (with.clone() - without).abs().max().into_scalar::<f32>();
        let p_yes: Vec<f32> = log_softmax(with, 2).exp().to_data().try_to_vec().unwrap();
        println!(
            "shown {shown:<22} asked {asked:<28} P(yes) {:.3}   logits move {moved:.3} without the image",
            p_yes[yes]
        );
    }
    Ok(())
}
