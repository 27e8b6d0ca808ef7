//! A bounded sample of the pseudonym tokens an extract released (or a
//! leaked file holds), chosen by the tokens themselves so that two samples
//! of overlapping files pick the same tokens.
//!
//! A token is 64 bits of HMAC output; it is *at level L* when its low `L`
//! bits are zero (probability 2^-L). A sketch keeps every distinct token at
//! its level; when it outgrows its capacity, its level goes up by one and
//! the tokens below it are dropped. Any token of a file at the sketch's
//! level is in the sketch, whatever the row order and whichever rows were
//! kept, so a 10% subset of a 1M-row extract still shows hundreds of
//! sampled tokens. A token made under another key lands in a sketch of
//! `s` tokens at level `L` with probability `s / 2^(64 - L)`.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

/// Most tokens kept for one extract (128 KiB stored).
pub const EXTRACT_CAPACITY: usize = 16 * 1024;

/// Letters of the token alphabet, one per 4 bits (`a` = 0 … `p` = 15).
const DIGITS: usize = 16;

/// A level-sampled set of tokens; see the module documentation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenSketch {
    level: u32,
    capacity: usize,
    tokens: HashSet<u64>,
}

/// Why stored sketch bytes are unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("stored token sketch is malformed")]
pub struct SketchError;

impl TokenSketch {
    /// An empty sketch at level 0 keeping at most `capacity` tokens.
    pub fn new(capacity: usize) -> Self {
        Self {
            level: 0,
            capacity: capacity.max(1),
            tokens: HashSet::new(),
        }
    }

    /// The sampling level: tokens with fewer trailing zero bits are not kept.
    pub fn level(&self) -> u32 {
        self.level
    }

    /// Tokens kept.
    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    /// Whether no token is kept.
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// Adds a token (its 64-bit value), raising the level while over capacity.
    pub fn insert(&mut self, token: u64) {
        if !at_level(token, self.level) {
            return;
        }
        self.tokens.insert(token);
        while self.tokens.len() > self.capacity {
            self.level += 1;
            let level = self.level;
            self.tokens.retain(|&t| at_level(t, level));
        }
    }

    /// Adds `cell` if it is a pseudonym token; whether it was one.
    pub fn observe(&mut self, cell: &str) -> bool {
        match parse_token(cell) {
            Some(t) => {
                self.insert(t);
                true
            }
            None => false,
        }
    }

    /// Whether `token` is kept.
    pub fn contains(&self, token: u64) -> bool {
        self.tokens.contains(&token)
    }

    /// The kept tokens at `level` or above.
    pub fn at(&self, level: u32) -> impl Iterator<Item = u64> + '_ {
        self.tokens
            .iter()
            .copied()
            .filter(move |&t| at_level(t, level))
    }

    /// Storage form: the level byte, then the tokens in ascending order,
    /// 8 bytes little-endian each.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut tokens: Vec<u64> = self.tokens.iter().copied().collect();
        tokens.sort_unstable();
        let mut out = Vec::with_capacity(1 + 8 * tokens.len());
        out.push(u8::try_from(self.level).unwrap_or(u8::MAX));
        tokens
            .iter()
            .for_each(|t| out.extend_from_slice(&t.to_le_bytes()));
        out
    }

    /// The sketch stored by [`Self::to_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, SketchError> {
        let (&level, rest) = bytes.split_first().ok_or(SketchError)?;
        if level > 64 || rest.len() % 8 != 0 {
            return Err(SketchError);
        }
        let tokens: HashSet<u64> = rest
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().unwrap_or_default()))
            .collect();
        let level = u32::from(level);
        if tokens.iter().any(|&t| !at_level(t, level)) {
            return Err(SketchError);
        }
        Ok(Self {
            level,
            capacity: tokens.len().max(EXTRACT_CAPACITY),
            tokens,
        })
    }
}

/// Whether `token` has at least `level` trailing zero bits.
pub fn at_level(token: u64, level: u32) -> bool {
    token.trailing_zeros() >= level
}

/// The 64-bit value of a pseudonym token `PREFIX-` + 16 letters `a`–`p`
/// (the prefix: 1 to 5 ASCII capitals), or `None`.
pub fn parse_token(cell: &str) -> Option<u64> {
    let (prefix, digits) = cell.trim().split_once('-')?;
    let prefix_ok =
        (1..=5).contains(&prefix.len()) && prefix.bytes().all(|b| b.is_ascii_uppercase());
    if !prefix_ok || digits.len() != DIGITS {
        return None;
    }
    digits.bytes().try_fold(0u64, |acc, b| match b {
        b'a'..=b'p' => Some((acc << 4) | u64::from(b - b'a')),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_parse_exactly() {
        assert_eq!(parse_token("RID-aaaaaaaaaaaaaaab"), Some(1));
        assert_eq!(parse_token("NAME-paaaaaaaaaaaaaaa"), Some(15 << 60));
        for bad in [
            "RID-aaaaaaaaaaaaaaa",
            "RID-aaaaaaaaaaaaaaaq",
            "rid-aaaaaaaaaaaaaaaa",
            "TOOLONG-aaaaaaaaaaaaaaaa",
            "-aaaaaaaaaaaaaaaa",
            "138****5678",
        ] {
            assert_eq!(parse_token(bad), None, "{bad}");
        }
    }

    #[test]
    fn level_rises_with_volume_and_keeps_every_token_at_level() {
        let mut s = TokenSketch::new(100);
        let tokens: Vec<u64> = (1..=10_000u64)
            .map(|i| i.wrapping_mul(0x9E37_79B9_7F4A_7C15))
            .collect();
        tokens.iter().for_each(|&t| s.insert(t));
        assert!(s.len() <= 100 && s.level() > 0);
        let expected = tokens.iter().filter(|&&t| at_level(t, s.level())).count();
        assert_eq!(s.len(), expected);
        // Any subset's sampled tokens are all in the sketch.
        assert!(tokens
            .iter()
            .step_by(10)
            .filter(|&&t| at_level(t, s.level()))
            .all(|&t| s.contains(t)));
        let back = TokenSketch::from_bytes(&s.to_bytes()).unwrap();
        assert_eq!((back.level(), back.len()), (s.level(), s.len()));
        assert!(TokenSketch::from_bytes(&[65]).is_err());
        assert!(TokenSketch::from_bytes(&[1, 1, 0, 0, 0, 0, 0, 0, 0]).is_err());
        assert!(TokenSketch::from_bytes(&[]).is_err());
    }
}
