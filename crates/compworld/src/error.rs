//! The crate's error type.

/// Everything that can go wrong in compworld. Messages are one line and name the culprit.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A prompt contains a word outside the closed vocabulary.
    #[error("unknown word '{word}' in prompt \"{prompt}\"")]
    UnknownWord { word: String, prompt: String },
    /// A prompt uses known words in an order the grammar does not accept.
    #[error("cannot parse prompt \"{prompt}\": {msg}")]
    Parse { prompt: String, msg: String },
    /// An unknown category name.
    #[error("unknown category '{0}' (expected one of: {1})")]
    UnknownCategory(String, String),
    /// No scene satisfying the prompt could be placed on the canvas.
    #[error("no scene satisfies \"{0}\": {1}")]
    Unsatisfiable(String, String),
    /// A malformed or unsupported image.
    #[error("{0}")]
    Image(String),
    /// A file could not be read or written.
    #[error("{0}")]
    Io(String),
    /// A malformed split file.
    #[error("{path}:{line}: {msg}")]
    Split {
        path: String,
        line: usize,
        msg: String,
    },
}

/// Result with the crate's error.
pub type Result<T> = std::result::Result<T, Error>;
