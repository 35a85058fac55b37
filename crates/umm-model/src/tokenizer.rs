//! Text tokenizer: a closed word-level vocabulary over compworld's prompt language plus the
//! words of the understanding questions and answers, and a few special tokens.
//!
//! The model only sees ids through the [`Tokenizer`] trait, so a subword tokenizer for a real
//! model can replace [`WordTokenizer`] without touching model code.

use std::collections::HashMap;

use crate::{Error, Result};

/// Turns text into token ids and back.
pub trait Tokenizer {
    /// Number of distinct ids (the embedding table's size).
    fn vocab_size(&self) -> usize;
    /// Ids of a text; an unknown word is an error naming it.
    fn encode(&self, text: &str) -> Result<Vec<u32>>;
    /// Text of ids (special tokens are written as themselves).
    fn decode(&self, ids: &[u32]) -> Result<String>;
    /// Id of one token, if it exists.
    fn id(&self, token: &str) -> Option<u32>;
}

/// Special tokens, ids 0..SPECIALS.len() in this order.
pub const SPECIALS: [&str; 6] = ["<pad>", "<bos>", "<eos>", "<und>", "<gen>", "<ans>"];
/// Padding id.
pub const PAD: u32 = 0;
/// Beginning of text.
pub const BOS: u32 = 1;
/// End of text.
pub const EOS: u32 = 2;
/// Ends a question: what comes after it is the answer (see the attention mask in
/// [`crate::model`]).
pub const ANS: u32 = 5;

/// Words of understanding questions and answers that the prompt language lacks.
pub const QA_WORDS: &[&str] = &[
    "?", ":", "is", "are", "there", "does", "do", "this", "image", "region", "show", "shows",
    "what", "which", "how", "many", "yes", "no", "zero", "seven", "eight", "nine", "ten",
    "nothing", "size", "texture", "other", "score", "good", "bad", "neutral",
];

/// The closed word-level tokenizer of compworld.
#[derive(Debug, Clone)]
pub struct WordTokenizer {
    words: Vec<String>,
    index: HashMap<String, u32>,
}

impl Default for WordTokenizer {
    fn default() -> Self {
        Self::compworld()
    }
}

impl WordTokenizer {
    /// Specials, then the prompt vocabulary, then the question/answer words (sorted, unique):
    /// the same ids on every machine.
    pub fn compworld() -> Self {
        let mut rest: Vec<&str> = compworld::prompt::vocabulary();
        rest.extend(QA_WORDS);
        rest.sort_unstable();
        rest.dedup();
        let words: Vec<String> = SPECIALS
            .iter()
            .chain(rest.iter())
            .map(|w| w.to_string())
            .collect();
        let index = words
            .iter()
            .enumerate()
            .map(|(i, w)| (w.clone(), i as u32))
            .collect();
        WordTokenizer { words, index }
    }

    /// Splits text into tokens: lowercase words, with `?` and `:` as tokens of their own and
    /// other punctuation dropped (as compworld's own prompt tokenizer does).
    pub fn pieces(text: &str) -> Vec<String> {
        let spaced = text.replace('?', " ? ").replace(':', " : ");
        spaced
            .split_whitespace()
            .map(|w| {
                if w == "?" || w == ":" {
                    w.to_string()
                } else {
                    w.trim_matches(|c: char| ".,;!\"'".contains(c))
                        .to_lowercase()
                }
            })
            .filter(|w| !w.is_empty())
            .collect()
    }
}

impl Tokenizer for WordTokenizer {
    fn vocab_size(&self) -> usize {
        self.words.len()
    }

    fn encode(&self, text: &str) -> Result<Vec<u32>> {
        Self::pieces(text)
            .into_iter()
            .map(|w| {
                self.index
                    .get(&w)
                    .copied()
                    .ok_or_else(|| Error::UnknownWord {
                        word: w.clone(),
                        text: text.to_string(),
                    })
            })
            .collect()
    }

    fn decode(&self, ids: &[u32]) -> Result<String> {
        let words: Result<Vec<&str>> = ids
            .iter()
            .map(|&i| {
                self.words
                    .get(i as usize)
                    .map(String::as_str)
                    .ok_or(Error::BadTokenId(i, self.words.len()))
            })
            .collect();
        Ok(words?.join(" "))
    }

    fn id(&self, token: &str) -> Option<u32> {
        self.index.get(token).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_generated_prompt_round_trips() {
        let tok = WordTokenizer::compworld();
        let mut rng = compworld::Rng::new(2);
        for cat in compworld::Category::ALL {
            for _ in 0..100 {
                let p = compworld::generate(*cat, &mut rng);
                let ids = tok.encode(&p.text).unwrap();
                assert!(ids.iter().all(|&i| i as usize >= SPECIALS.len()));
                assert_eq!(tok.decode(&ids).unwrap(), p.text);
            }
        }
    }

    #[test]
    fn questions_tokenize_and_specials_are_fixed() {
        let tok = WordTokenizer::compworld();
        let ids = tok.encode("Does this image show: a red circle?").unwrap();
        assert_eq!(
            tok.decode(&ids).unwrap(),
            "does this image show : a red circle ?"
        );
        assert_eq!(
            (tok.id("<pad>"), tok.id("<bos>"), tok.id("<eos>")),
            (Some(PAD), Some(BOS), Some(EOS))
        );
        // Ids are a function of the vocabulary alone: pinned so that checkpoints stay valid.
        assert_eq!(tok.vocab_size(), 115);
        assert_eq!(tok.id("yes"), Some(113));
    }

    #[test]
    fn every_understanding_question_and_answer_tokenizes() {
        use compworld::vqa::{QaKind, example};
        let tok = WordTokenizer::compworld();
        let mut rng = compworld::Rng::new(3);
        for _ in 0..200 {
            for kind in QaKind::ALL {
                let ex = example(kind, &mut rng);
                tok.encode(&ex.question).unwrap();
                tok.encode(&ex.answer).unwrap();
            }
        }
    }

    #[test]
    fn unknown_words_and_ids_are_errors() {
        let tok = WordTokenizer::compworld();
        let e = tok.encode("is there a unicorn?").unwrap_err().to_string();
        assert!(e.contains("'unicorn'"), "{e}");
        assert!(
            tok.decode(&[9999])
                .unwrap_err()
                .to_string()
                .contains("9999")
        );
    }
}
