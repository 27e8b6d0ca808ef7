//! The recipient fingerprint carried by generalized columns: a keyed
//! choice between two equivalent generalizations of the same value.
//!
//! Ranges (amounts) and bands (ages) are cut into cells of the policy's
//! width `w`. Cells are paired (`2j`, `2j + 1`); for each pair a bit keyed
//! by the grant's pseudonymization key, the recipient's identity and the
//! column says whether the pair is released as two cells of width `w` or
//! merged into one cell of width `2w`. So:
//! - no value is ever released finer than the policy says, and every
//!   boundary stays on a multiple of `w` (two colluding recipients who
//!   intersect their ranges learn nothing finer than `w`);
//! - nothing fake is added: every released range contains its value;
//! - each distinct pair a leaked file shows reveals one bit, which a file
//!   made for another recipient matches with probability ½; row order,
//!   row subsets and other columns do not matter (see `crate::trace`).
//!
//! Dates, districts and grid cells have no equivalent variant here; they
//! carry no fingerprint. Pseudonym tokens, keyed per grant, carry the
//! strongest one.

use super::apply::PseudonymKey;
use super::prf::Prf;

/// HMAC label of the per-recipient fingerprint key.
const FINGERPRINT_LABEL: &[u8] = b"zonevault/v1/fingerprint-cells/";

/// The key of one recipient's generalization choices under one grant.
/// No `Debug`, `Clone` or `Serialize`; ring's key schedule does not
/// zeroize, so drop it when the extract (or the trace) ends.
pub struct FingerprintKey(Prf);

impl FingerprintKey {
    /// HMAC-SHA256 under the grant's pseudonymization key of the label and
    /// the recipient's identity.
    pub fn new(grant: &PseudonymKey, recipient: &str) -> Self {
        let tag = zeroize::Zeroizing::new(
            grant
                .hmac_key()
                .tag(&[FINGERPRINT_LABEL, recipient.as_bytes()]),
        );
        FingerprintKey(Prf::new(tag.as_slice()))
    }

    /// Whether cells `2 * pair` and `2 * pair + 1` of width `width` of
    /// column `column` are released merged.
    pub fn merged(&self, column: &str, width: u64, pair: i64) -> bool {
        let (width, pair) = (width.to_le_bytes(), pair.to_le_bytes());
        let parts: [&[u8]; 4] = [column.as_bytes(), &[0x1f], &width, &pair];
        self.0.tag(&parts)[0] & 1 == 1
    }

    /// The released cell of base cell `cell` (of width `width`): `(first
    /// cell, number of cells)`, either `(cell, 1)` or the merged pair
    /// `(2j, 2)`.
    pub fn cell(&self, column: &str, width: u64, cell: i64) -> (i64, i64) {
        let pair = cell.div_euclid(2);
        if self.merged(column, width, pair) {
            (pair * 2, 2)
        } else {
            (cell, 1)
        }
    }
}

/// Where a column's released cells come from: the policy's plain cells,
/// or a recipient's keyed choices.
#[derive(Clone, Copy)]
pub(super) struct Cells<'a> {
    /// The recipient's key and the column's name, if fingerprinted.
    pub key: Option<(&'a FingerprintKey, &'a str)>,
}

impl Cells<'_> {
    /// `(first cell, number of cells)` released for base cell `cell`.
    pub fn of(&self, width: u64, cell: i64) -> (i64, i64) {
        match self.key {
            Some((key, column)) => key.cell(column, width, cell),
            None => (cell, 1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::desensitize::grant_key;
    use crate::keys::MasterKey;

    fn key(grant: &str, recipient: &str) -> FingerprintKey {
        let root = MasterKey::from_bytes(&[3; 32]).unwrap().pseudonym_root();
        FingerprintKey::new(&grant_key(&root, grant), recipient)
    }

    #[test]
    fn choices_are_keyed_balanced_and_never_finer() {
        let (a, b) = (key("g-1", "r"), key("g-2", "r"));
        let c = key("g-1", "other");
        fn bits(k: &FingerprintKey) -> impl Iterator<Item = bool> + '_ {
            (0..2000).map(|j| k.merged("amount", 1000, j))
        }
        let merged = bits(&a).filter(|m| *m).count();
        assert!((850..1150).contains(&merged), "{merged}");
        let same = |x: &FingerprintKey, y: &FingerprintKey| {
            bits(x).zip(bits(y)).filter(|(p, q)| p == q).count()
        };
        assert!((850..1150).contains(&same(&a, &b)));
        assert!((850..1150).contains(&same(&a, &c)));
        assert_eq!(same(&a, &key("g-1", "r")), 2000);
        for cell in -50..50 {
            let (first, n) = a.cell("amount", 1000, cell);
            assert!(first <= cell && cell < first + n);
            assert!(n == 1 || (n == 2 && first % 2 == 0));
        }
        let plain = Cells { key: None };
        assert_eq!(plain.of(1000, 7), (7, 1));
    }
}
