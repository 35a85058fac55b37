//! compworld integration tests: frozen splits, rendering, PNG input and output, captions.

mod io;
mod render;
mod splits;
