//! The benchmark crates' error type.

/// Everything that can go wrong in a benchmark run. Messages are one line and name the file,
/// line or prompt at fault.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file or folder could not be read or written.
    #[error("{0}")]
    Io(String),
    /// A malformed input file (prompt list, metadata, result file).
    #[error("{path}:{line}: {msg}")]
    Parse {
        path: String,
        line: usize,
        msg: String,
    },
    /// Nothing to benchmark: an empty prompt file or category.
    #[error("{0}")]
    Empty(String),
    /// A folder of images does not hold what the benchmark needs.
    #[error("{0}")]
    Layout(String),
    /// The generator failed.
    #[error("generator: {0}")]
    Generator(String),
}

/// Result with the crate's error.
pub type Result<T> = std::result::Result<T, Error>;

impl From<compworld::Error> for Error {
    fn from(e: compworld::Error) -> Self {
        Error::Io(e.to_string())
    }
}

/// `Error::Io` naming what was being done to which path.
pub(crate) fn io(what: &str, path: &std::path::Path, e: impl std::fmt::Display) -> Error {
    Error::Io(format!("{what} {}: {e}", path.display()))
}
