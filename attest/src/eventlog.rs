//! The measured-launch event log (pure Rust): one JSON object per line,
//! `{"pcr":14,"digest":"<sha256 hex>","description":"…"}`, in the order the
//! digests were extended.
//!
//! The log is not trusted: a verifier replays it (each PCR starts at 32 zero
//! bytes, `new = SHA-256(old ‖ digest)`) and compares the result with the
//! quoted PCR values, so a log that does not describe what was measured is
//! caught, never believed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};

use crate::pcr::{PcrValues, MAX_PCR_INDEX};

/// The suffix of the event log's file name: it lives next to the data
/// directory (`/var/lib/zonevault` → `/var/lib/zonevault.launch-events.jsonl`),
/// not in it, because the launcher measures before `init` creates it.
pub const EVENT_LOG_SUFFIX: &str = ".launch-events.jsonl";

/// The event log of the appliance whose data directory is `data_dir`.
pub fn path_for(data_dir: &Path) -> PathBuf {
    let mut name = data_dir
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_else(|| "zonevault".into());
    name.push(EVENT_LOG_SUFFIX);
    data_dir.with_file_name(name)
}

/// One extension of one PCR.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Event {
    /// The PCR extended (sha256 bank).
    pub pcr: u8,
    /// The digest extended into it, hex.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    #[serde(serialize_with = "hex_ser", deserialize_with = "hex_de")]
    pub digest: [u8; 32],
    /// What was measured, for people.
    pub description: String,
}

/// Why an event log could not be read.
#[derive(Debug, thiserror::Error)]
pub enum EventLogError {
    /// A line is not a valid event.
    #[error("event log line {line}: {source}")]
    Line {
        /// 1-based line number.
        line: usize,
        /// Why it did not parse.
        source: serde_json::Error,
    },
    /// An event names a PCR that does not exist.
    #[error("event log line {line}: PCR {pcr} does not exist")]
    NoSuchPcr {
        /// 1-based line number.
        line: usize,
        /// The index given.
        pcr: u8,
    },
}

/// `SHA-256(old ‖ digest)`: what TPM2_PCR_Extend does in the sha256 bank.
pub fn extend(old: &[u8; 32], digest: &[u8; 32]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(old);
    h.update(digest);
    h.finalize().into()
}

/// Parses JSON lines (blank lines ignored).
pub fn parse_lines(text: &str) -> Result<Vec<Event>, EventLogError> {
    let mut events = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let event: Event = serde_json::from_str(line).map_err(|source| EventLogError::Line {
            line: i + 1,
            source,
        })?;
        if event.pcr > MAX_PCR_INDEX {
            return Err(EventLogError::NoSuchPcr {
                line: i + 1,
                pcr: event.pcr,
            });
        }
        events.push(event);
    }
    Ok(events)
}

/// One event as its JSON line, newline included.
pub fn to_line(event: &Event) -> String {
    // An Event is plain strings and numbers: serializing it cannot fail.
    let mut line = serde_json::to_string(event).unwrap_or_default();
    line.push('\n');
    line
}

/// The value of every PCR the log mentions, replayed from zeros.
pub fn replay(events: &[Event]) -> PcrValues {
    let mut values: BTreeMap<u8, [u8; 32]> = BTreeMap::new();
    for event in events {
        let slot = values.entry(event.pcr).or_insert([0u8; 32]);
        *slot = extend(slot, &event.digest);
    }
    let mut out = PcrValues::new();
    for (pcr, value) in values {
        out.insert(pcr, value);
    }
    out
}

fn hex_ser<S: Serializer>(v: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
    hex::encode(v).serialize(s)
}

fn hex_de<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
    let text = String::deserialize(d)?;
    let mut out = [0u8; 32];
    hex::decode_to_slice(&text, &mut out).map_err(serde::de::Error::custom)?;
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn replays_from_zero_and_roundtrips() {
        let a = Event {
            pcr: 14,
            digest: [1; 32],
            description: "binary".into(),
        };
        let b = Event {
            pcr: 14,
            digest: [2; 32],
            description: "config".into(),
        };
        let text = to_line(&a) + &to_line(&b);
        let parsed = parse_lines(&text).unwrap();
        assert_eq!(parsed, vec![a, b]);
        let want = extend(&extend(&[0; 32], &[1; 32]), &[2; 32]);
        assert_eq!(replay(&parsed).get(14), Some(&want));
        assert!(parse_lines("{\"pcr\":30,\"digest\":\"00\",\"description\":\"\"}").is_err());
        assert!(parse_lines("not json").is_err());
    }
}
