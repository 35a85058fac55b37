//! scene-oracle integration tests: hand-made scenes with the expected scores written out, and
//! a small run of the oracle check.

mod check;
mod scoring;
