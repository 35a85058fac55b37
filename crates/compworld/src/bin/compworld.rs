//! `compworld`: look at the world, and regenerate the frozen prompt splits.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use compworld::{Category, Rng, caption, generate, render, sample_scene};

#[derive(Parser, Debug)]
#[command(
    name = "compworld",
    about = "The compworld synthetic world: prompts, scenes, splits"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Sample random prompts, render a scene for each, and write PNGs plus an index.tsv.
    Render {
        /// Category name (color, shape, texture, spatial, 3d_spatial, numeracy, non_spatial,
        /// complex, knowledge, arithmetic, geometry, composite) or "all".
        #[arg(long, default_value = "all")]
        category: String,
        /// Prompts per category.
        #[arg(short, long, default_value_t = 8)]
        n: usize,
        /// Random seed.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Resolution in pixels (32 or 64).
        #[arg(long, default_value_t = 32)]
        resolution: usize,
        /// Output folder (created).
        #[arg(long, default_value = "out/compworld")]
        out: PathBuf,
    },
    /// Render one prompt given as text (several scenes, different seeds).
    Prompt {
        /// The prompt, in the compworld grammar.
        text: String,
        /// Number of scenes.
        #[arg(short, long, default_value_t = 4)]
        n: usize,
        /// Random seed.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Resolution in pixels (32 or 64).
        #[arg(long, default_value_t = 32)]
        resolution: usize,
        /// Output folder (created).
        #[arg(long, default_value = "out/compworld-prompt")]
        out: PathBuf,
    },
    /// Regenerate the frozen train/dev/val/test prompt splits (byte for byte from the seed).
    Splits {
        /// Seed of the committed splits is 2026.
        #[arg(long, default_value_t = 2026)]
        seed: u64,
        /// Output folder.
        #[arg(long, default_value = "datasets/splits")]
        out: PathBuf,
    },
}

fn check_resolution(r: usize) -> Result<()> {
    if r != 32 && r != 64 {
        bail!("resolution must be 32 or 64, got {r}");
    }
    Ok(())
}

fn main() -> std::process::ExitCode {
    // One line per error (with its causes), whatever RUST_BACKTRACE says.
    match run(Cli::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.cmd {
        Cmd::Render {
            category,
            n,
            seed,
            resolution,
            out,
        } => {
            check_resolution(resolution)?;
            let cats: Vec<Category> = if category == "all" {
                Category::ALL.to_vec()
            } else {
                vec![Category::from_name(&category)?]
            };
            std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
            let mut index = String::from("file\tcategory\tprompt\tcaption\n");
            let mut images = Vec::new();
            for cat in cats {
                let mut rng = Rng::derive(seed, cat.name());
                for i in 0..n {
                    let p = generate(cat, &mut rng);
                    let scene = sample_scene(&p.meaning, &p.text, &mut rng)?;
                    let file = format!("{}_{i:03}.png", cat.name());
                    let img = render(&scene, resolution);
                    img.save_png(&out.join(&file))?;
                    images.push(img);
                    index.push_str(&format!(
                        "{file}\t{cat}\t{}\t{}\n",
                        p.text,
                        caption(&scene).text
                    ));
                }
            }
            std::fs::write(out.join("index.tsv"), index)?;
            // One row per category, for people to look at.
            compworld::render::contact_sheet(&images, n, 256 / resolution)
                .save_png(&out.join("sheet.png"))?;
            println!(
                "wrote {} images, index.tsv and sheet.png to {}",
                images.len(),
                out.display()
            );
        }
        Cmd::Prompt {
            text,
            n,
            seed,
            resolution,
            out,
        } => {
            check_resolution(resolution)?;
            let p = compworld::Prompt::parse(&text)?;
            println!("category: {}", p.category);
            for c in p.meaning.constraints() {
                println!("  {}", p.meaning.describe(&c));
            }
            std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
            let mut rng = Rng::new(seed);
            for i in 0..n {
                let scene = sample_scene(&p.meaning, &p.text, &mut rng)?;
                render(&scene, resolution).save_png(&out.join(format!("{i:03}.png")))?;
            }
            println!("wrote {n} images to {}", out.display());
        }
        Cmd::Splits { seed, out } => {
            let s = compworld::splits::make_splits(seed);
            s.write(&out)?;
            for (k, name) in compworld::splits::SPLIT_NAMES.iter().enumerate() {
                let unseen = s.splits[k].iter().filter(|e| e.unseen).count();
                println!("{name}: {} prompts ({unseen} unseen)", s.splits[k].len());
            }
        }
    }
    Ok(())
}
