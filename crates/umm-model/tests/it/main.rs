//! umm-model integration tests on the default CPU backend (burn's `flex`).

mod checkpoint;
mod model;
