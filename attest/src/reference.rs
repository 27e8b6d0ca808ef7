//! Reference PCR values (pure Rust): what a regulator expects a genuine
//! appliance to quote, as written by `zonevault-launch reference`.
//!
//! The file is JSON: `{"bank":"sha256","selection":[0,2,4,7,11],
//! "pcrs":{"0":"<hex>",…},"sources":{"0":"firmware",…,"11":"launcher"},
//! "launcher_pcr":11}`. Firmware values come from the platform (on swtpm,
//! their reset values); the launcher value is recomputed from the release
//! artifacts.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::pcr::{PcrSelection, PcrValues};

/// The application PCR the measured launcher extends.
///
/// PCR 11: in the PC Client profile PCRs 8–15 belong to the operating
/// system; 11 is not resettable at locality 0 (unlike 16 and 23, which any
/// process could reset and refill with forged values), and the appliance's
/// boot chain leaves it at zero (systemd-stub would use it only for unified
/// kernel images, which the appliance does not boot). PCR 14 was the other
/// candidate, but shim extends it with the MOK lists on every boot, so it
/// never starts at zero. `zonevault-launch --pcr` overrides it.
pub const LAUNCHER_PCR: u8 = 11;

/// Where an expected value comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// The platform firmware and boot chain.
    Firmware,
    /// The measured launcher (recomputable from the release artifacts).
    Launcher,
}

/// Why a reference file was rejected.
#[derive(Debug, thiserror::Error)]
pub enum ReferenceError {
    /// Not valid JSON of the expected shape.
    #[error("reference: {0}")]
    Json(#[from] serde_json::Error),
    /// Only the sha256 bank is supported.
    #[error("reference: bank {0:?} is not supported (only sha256)")]
    Bank(String),
    /// The values do not match the selection.
    #[error("reference: the expected values do not match the selection")]
    Values,
}

/// Expected PCR values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reference {
    /// Always `sha256`.
    pub bank: String,
    /// The PCRs judged.
    pub selection: PcrSelection,
    /// Their expected values.
    pub pcrs: PcrValues,
    /// Where each value comes from.
    #[serde(default)]
    pub sources: BTreeMap<u8, Source>,
    /// The PCR the launcher extends, if the reference covers it.
    #[serde(default)]
    pub launcher_pcr: Option<u8>,
}

impl Reference {
    /// Builds a reference from values; the selection is their indices.
    pub fn new(
        pcrs: PcrValues,
        sources: BTreeMap<u8, Source>,
        launcher_pcr: Option<u8>,
    ) -> Option<Reference> {
        let selection = PcrSelection::new(pcrs.iter().map(|(i, _)| i)).ok()?;
        Some(Reference {
            bank: "sha256".into(),
            selection,
            pcrs,
            sources,
            launcher_pcr,
        })
    }

    /// Parses and checks a reference file's text.
    pub fn parse(text: &str) -> Result<Reference, ReferenceError> {
        let reference: Reference = serde_json::from_str(text)?;
        if reference.bank != "sha256" {
            return Err(ReferenceError::Bank(reference.bank));
        }
        if !reference.pcrs.covers_exactly(&reference.selection) {
            return Err(ReferenceError::Values);
        }
        Ok(reference)
    }

    /// Pretty JSON with a final newline.
    pub fn to_json(&self) -> String {
        // Plain strings, numbers and maps with integer keys: cannot fail.
        let mut s = serde_json::to_string_pretty(self).unwrap_or_default();
        s.push('\n');
        s
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn roundtrips_and_checks_coverage() {
        let mut pcrs = PcrValues::new();
        pcrs.insert(0, [0; 32]);
        pcrs.insert(LAUNCHER_PCR, [1; 32]);
        let sources = BTreeMap::from([(0, Source::Firmware), (LAUNCHER_PCR, Source::Launcher)]);
        let r = Reference::new(pcrs, sources, Some(LAUNCHER_PCR)).unwrap();
        let text = r.to_json();
        assert!(text.contains("\"launcher\""), "{text}");
        assert_eq!(Reference::parse(&text).unwrap(), r);
        let bad = text.replace("\"selection\": [\n    0,", "\"selection\": [\n    1,");
        assert!(Reference::parse(&bad).is_err(), "{bad}");
    }
}
