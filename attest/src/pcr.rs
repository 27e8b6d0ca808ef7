//! PCR selections and values in the sha256 bank (pure Rust, no TPM needed).
//!
//! Owns parsing a configured selection ("0,2,4,7"), the value map a policy
//! is sealed against, and the software computation of a PolicyPCR digest,
//! so the verifier and the measured launcher can reason about PCRs without
//! libtss2.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};

/// The highest PCR index a selection may name (PC Client TPMs have 24 PCRs).
pub const MAX_PCR_INDEX: u8 = 23;

/// TPM_CC_PolicyPCR, as hashed into a policy digest.
const TPM_CC_POLICY_PCR: u32 = 0x0000_017f;
/// TPM_ALG_SHA256.
const TPM_ALG_SHA256: u16 = 0x000b;
/// Octets in a PCR bitmap for 24 PCRs (`sizeofSelect`).
const SIZE_OF_SELECT: u8 = 3;

/// Why a PCR selection was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectionError {
    /// The selection named no PCR at all.
    #[error("PCR selection is empty")]
    Empty,
    /// A token was not a decimal number.
    #[error("PCR selection: {token:?} is not a PCR index")]
    NotANumber {
        /// The offending token, as written.
        token: String,
    },
    /// A number outside 0..=23.
    #[error("PCR selection: {token:?} is out of range (PCR indices are 0..={MAX_PCR_INDEX})")]
    OutOfRange {
        /// The offending token, as written.
        token: String,
    },
}

/// A non-empty, sorted, deduplicated set of sha256-bank PCR indices (0..=23).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PcrSelection(Vec<u8>);

impl PcrSelection {
    /// Builds a selection from indices in any order, with duplicates allowed.
    pub fn new(indices: impl IntoIterator<Item = u8>) -> Result<PcrSelection, SelectionError> {
        let mut v: Vec<u8> = indices.into_iter().collect();
        if let Some(bad) = v.iter().find(|i| **i > MAX_PCR_INDEX) {
            return Err(SelectionError::OutOfRange {
                token: bad.to_string(),
            });
        }
        v.sort_unstable();
        v.dedup();
        if v.is_empty() {
            return Err(SelectionError::Empty);
        }
        Ok(PcrSelection(v))
    }

    /// The selected indices, ascending.
    pub fn indices(&self) -> &[u8] {
        &self.0
    }

    /// Is `index` selected?
    pub fn contains(&self, index: u8) -> bool {
        self.0.binary_search(&index).is_ok()
    }

    /// The marshalled TPML_PCR_SELECTION (one sha256 bank, 3-octet bitmap).
    pub fn to_tpml_bytes(&self) -> Vec<u8> {
        let mut bitmap = [0u8; SIZE_OF_SELECT as usize];
        for i in &self.0 {
            bitmap[usize::from(i / 8)] |= 1 << (i % 8);
        }
        let mut out = Vec::with_capacity(10);
        out.extend_from_slice(&1u32.to_be_bytes());
        out.extend_from_slice(&TPM_ALG_SHA256.to_be_bytes());
        out.push(SIZE_OF_SELECT);
        out.extend_from_slice(&bitmap);
        out
    }
}

impl FromStr for PcrSelection {
    type Err = SelectionError;

    /// Parses a comma-separated list such as `"0,2,4,7"` (spaces allowed).
    fn from_str(s: &str) -> Result<PcrSelection, SelectionError> {
        let mut indices = Vec::new();
        for raw in s.split(',') {
            let token = raw.trim();
            if token.is_empty() && s.trim().is_empty() {
                return Err(SelectionError::Empty);
            }
            if token.is_empty() || !token.bytes().all(|b| b.is_ascii_digit()) {
                return Err(SelectionError::NotANumber {
                    token: token.to_owned(),
                });
            }
            match token.parse::<u8>() {
                Ok(i) if i <= MAX_PCR_INDEX => indices.push(i),
                _ => {
                    return Err(SelectionError::OutOfRange {
                        token: token.to_owned(),
                    })
                }
            }
        }
        PcrSelection::new(indices)
    }
}

impl fmt::Display for PcrSelection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.iter().map(u8::to_string).collect();
        f.write_str(&parts.join(","))
    }
}

impl Serialize for PcrSelection {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl<'de> Deserialize<'de> for PcrSelection {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<PcrSelection, D::Error> {
        let v = Vec::<u8>::deserialize(d)?;
        PcrSelection::new(v).map_err(serde::de::Error::custom)
    }
}

/// PCR values of the sha256 bank, by index. Serialized as `{"7": "<hex>"}`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PcrValues(BTreeMap<u8, [u8; 32]>);

impl PcrValues {
    /// An empty map.
    pub fn new() -> PcrValues {
        PcrValues::default()
    }

    /// Sets the value of PCR `index`.
    pub fn insert(&mut self, index: u8, value: [u8; 32]) {
        self.0.insert(index, value);
    }

    /// The value of PCR `index`, if present.
    pub fn get(&self, index: u8) -> Option<&[u8; 32]> {
        self.0.get(&index)
    }

    /// `(index, value)` pairs in ascending index order.
    pub fn iter(&self) -> impl Iterator<Item = (u8, &[u8; 32])> {
        self.0.iter().map(|(i, v)| (*i, v))
    }

    /// Does this map hold exactly the selected PCRs?
    pub fn covers_exactly(&self, sel: &PcrSelection) -> bool {
        self.0.keys().copied().eq(sel.indices().iter().copied())
    }

    /// Indices of `sel` whose value differs between `self` and `other`
    /// (a PCR missing from either side counts as different).
    pub fn changed(&self, other: &PcrValues, sel: &PcrSelection) -> Vec<u8> {
        sel.indices()
            .iter()
            .copied()
            .filter(|i| match (self.get(*i), other.get(*i)) {
                (Some(a), Some(b)) => a != b,
                _ => true,
            })
            .collect()
    }

    /// The PolicyPCR digest a TPM computes for `sel` at these values, starting
    /// from an empty policy: `SHA256(0^32 ‖ TPM_CC_PolicyPCR ‖ TPML_PCR_SELECTION ‖ pcrDigest)`.
    /// `None` if a selected PCR has no value here.
    pub fn policy_digest(&self, sel: &PcrSelection) -> Option<[u8; 32]> {
        let mut pcr_digest = Sha256::new();
        for i in sel.indices() {
            pcr_digest.update(self.get(*i)?);
        }
        let mut policy = Sha256::new();
        policy.update([0u8; 32]);
        policy.update(TPM_CC_POLICY_PCR.to_be_bytes());
        policy.update(sel.to_tpml_bytes());
        policy.update(pcr_digest.finalize());
        Some(policy.finalize().into())
    }
}

impl Serialize for PcrValues {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let hexed: BTreeMap<u8, String> =
            self.0.iter().map(|(i, v)| (*i, hex::encode(v))).collect();
        hexed.serialize(s)
    }
}

impl<'de> Deserialize<'de> for PcrValues {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<PcrValues, D::Error> {
        use serde::de::Error;
        let hexed = BTreeMap::<u8, String>::deserialize(d)?;
        let mut out = PcrValues::new();
        for (i, h) in hexed {
            if i > MAX_PCR_INDEX {
                return Err(D::Error::custom(format!("PCR {i} is out of range")));
            }
            let mut value = [0u8; 32];
            hex::decode_to_slice(&h, &mut value)
                .map_err(|e| D::Error::custom(format!("PCR {i}: {e}")))?;
            out.insert(i, value);
        }
        Ok(out)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<PcrSelection, SelectionError> {
        s.parse()
    }

    #[test]
    fn parses_sorts_and_dedups() {
        assert_eq!(parse("7,0, 4,2,7").unwrap().indices(), &[0, 2, 4, 7]);
        assert_eq!(parse("23").unwrap().indices(), &[23]);
        assert_eq!(parse("0,2,4,7").unwrap().to_string(), "0,2,4,7");
    }

    #[test]
    fn parse_errors_name_the_bad_token() {
        assert_eq!(parse(""), Err(SelectionError::Empty));
        assert_eq!(parse("  "), Err(SelectionError::Empty));
        let err = parse("0,x7").unwrap_err();
        assert_eq!(err, SelectionError::NotANumber { token: "x7".into() });
        assert!(err.to_string().contains("\"x7\""), "{err}");
        assert_eq!(
            parse("1,24"),
            Err(SelectionError::OutOfRange { token: "24".into() })
        );
        assert_eq!(
            parse("300"),
            Err(SelectionError::OutOfRange {
                token: "300".into()
            })
        );
        assert_eq!(
            parse("-1"),
            Err(SelectionError::NotANumber { token: "-1".into() })
        );
        assert_eq!(
            parse("0,,7"),
            Err(SelectionError::NotANumber { token: "".into() })
        );
        assert_eq!(
            parse("0,7,"),
            Err(SelectionError::NotANumber { token: "".into() })
        );
    }

    #[test]
    fn tpml_bytes_match_the_tpm_encoding() {
        let sel = parse("0,7,16").unwrap();
        assert_eq!(
            sel.to_tpml_bytes(),
            [0, 0, 0, 1, 0, 0x0b, 3, 0x81, 0x00, 0x01]
        );
    }

    #[test]
    fn values_roundtrip_through_json_as_hex() {
        let mut v = PcrValues::new();
        v.insert(7, [0xab; 32]);
        let json = serde_json::to_string(&v).unwrap();
        assert_eq!(json, format!("{{\"7\":\"{}\"}}", "ab".repeat(32)));
        assert_eq!(serde_json::from_str::<PcrValues>(&json).unwrap(), v);
        assert!(serde_json::from_str::<PcrValues>("{\"7\":\"abcd\"}").is_err());
        assert!(serde_json::from_str::<PcrSelection>("[24]").is_err());
    }

    #[test]
    fn changed_names_differing_and_missing_pcrs() {
        let sel = parse("0,7,16").unwrap();
        let mut a = PcrValues::new();
        let mut b = PcrValues::new();
        for i in [0, 7, 16] {
            a.insert(i, [0; 32]);
            b.insert(i, [0; 32]);
        }
        assert!(a.changed(&b, &sel).is_empty());
        b.insert(7, [1; 32]);
        assert_eq!(a.changed(&b, &sel), vec![7]);
        assert!(a.covers_exactly(&sel));
    }
}
