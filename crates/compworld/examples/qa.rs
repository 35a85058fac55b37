//! Print a few understanding examples of every kind.
//!
//! cargo run --release -p compworld --example qa

use compworld::Rng;
use compworld::vqa::{QaKind, example};

fn main() {
    let mut rng = Rng::new(1);
    for kind in QaKind::ALL {
        for _ in 0..3 {
            let ex = example(kind, &mut rng);
            println!("{kind:?}: {} -> {}", ex.question, ex.answer);
        }
    }
}
