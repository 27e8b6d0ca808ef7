//! Measurements: the digests of the release artifacts, the launcher PCR
//! they produce, and the event log that explains it.
//!
//! The launcher extends two events into one PCR, in this order: the
//! `zonevault` binary, then its configuration file. The log lives next to
//! the data directory ([`attest::eventlog::path_for`]). Measured launch
//! happens once per boot: if the PCR is at its reset value (all zeros) the
//! log is started afresh; otherwise the events are appended, the PCR moves
//! on, and it no longer matches the reference until the next boot (a
//! relaunch without a reboot is visible, by design).

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use attest::eventlog::{extend, path_for, to_line, Event};
use attest::reference::Source;
use attest::{PcrValues, Reference};
use sha2::{Digest, Sha256};

/// A measurement or event-log step failed; each variant names its file.
#[derive(Debug, thiserror::Error)]
pub enum MeasureError {
    /// A file could not be read or written.
    #[error("cannot access {}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The configuration file is not valid TOML or lacks `data_dir`.
    #[error("{}: {problem}", path.display())]
    Config {
        /// The configuration file.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> MeasureError + '_ {
    move |source| MeasureError::Io {
        path: path.to_owned(),
        source,
    }
}

/// SHA-256 of a file's bytes, streamed.
pub fn file_digest(path: &Path) -> Result<[u8; 32], MeasureError> {
    let mut file = std::fs::File::open(path).map_err(io(path))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = file.read(&mut buf).map_err(io(path))?;
        if n == 0 {
            return Ok(hasher.finalize().into());
        }
        hasher.update(&buf[..n]);
    }
}

/// The two launch events for `binary` and `config`, in extension order.
pub fn launch_events(pcr: u8, binary: &Path, config: &Path) -> Result<Vec<Event>, MeasureError> {
    Ok(vec![
        Event {
            pcr,
            digest: file_digest(binary)?,
            description: format!("zonevault binary {}", binary.display()),
        },
        Event {
            pcr,
            digest: file_digest(config)?,
            description: format!("zonevault config {}", config.display()),
        },
    ])
}

/// The launcher PCR after `events`, from the reset value (zeros).
pub fn launcher_value(events: &[Event]) -> [u8; 32] {
    events
        .iter()
        .fold([0u8; 32], |value, e| extend(&value, &e.digest))
}

/// The reference file: `base` (firmware values, e.g. read from a machine
/// in its known-good state) plus the launcher PCR recomputed from
/// `events`.
pub fn reference(pcr: u8, events: &[Event], base: &PcrValues) -> Option<Reference> {
    let mut pcrs = base.clone();
    let mut sources = BTreeMap::new();
    for (index, _) in base.iter() {
        sources.insert(index, Source::Firmware);
    }
    pcrs.insert(pcr, launcher_value(events));
    sources.insert(pcr, Source::Launcher);
    Reference::new(pcrs, sources, Some(pcr))
}

/// What the launcher needs from the server's configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaunchConfig {
    /// `data_dir`, resolved against the file's directory.
    pub data_dir: PathBuf,
    /// `tpm`, the TCTI.
    pub tpm: String,
}

impl LaunchConfig {
    /// Reads `data_dir` and `tpm` from the TOML file at `path`.
    pub fn read(path: &Path) -> Result<LaunchConfig, MeasureError> {
        let text = std::fs::read_to_string(path).map_err(io(path))?;
        let bad = |problem: String| MeasureError::Config {
            path: path.to_owned(),
            problem,
        };
        let value: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| bad(e.message().to_owned()))?;
        let key = |name: &str| {
            value
                .get(name)
                .and_then(toml::Value::as_str)
                .map(str::to_owned)
                .ok_or_else(|| bad(format!("key `{name}` is missing or not a string")))
        };
        let data_dir = PathBuf::from(key("data_dir")?);
        let data_dir = if data_dir.is_relative() {
            path.parent().unwrap_or(Path::new(".")).join(data_dir)
        } else {
            data_dir
        };
        Ok(LaunchConfig {
            data_dir,
            tpm: key("tpm")?,
        })
    }

    /// The event log file.
    pub fn event_log(&self) -> PathBuf {
        path_for(&self.data_dir)
    }
}

/// Appends `event` to the log at `path` and syncs it (truncating first if
/// `fresh`), before the PCR is extended: a log line without its extension
/// fails verification, it never hides one.
pub fn record(path: &Path, event: &Event, fresh: bool) -> Result<(), MeasureError> {
    let mut file = OpenOptions::new()
        .create(true)
        .append(!fresh)
        .write(true)
        .truncate(fresh)
        .open(path)
        .map_err(io(path))?;
    file.write_all(to_line(event).as_bytes())
        .map_err(io(path))?;
    file.sync_all().map_err(io(path))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn reference_replays_the_events() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("zonevault");
        let cfg = dir.path().join("config.toml");
        std::fs::write(&bin, b"binary").unwrap();
        std::fs::write(&cfg, "data_dir = \"data\"\ntpm = \"device:/dev/tpmrm0\"\n").unwrap();
        let events = launch_events(11, &bin, &cfg).unwrap();
        let d1: [u8; 32] = Sha256::digest(b"binary").into();
        assert_eq!(events[0].digest, d1);
        let mut base = PcrValues::new();
        base.insert(0, [0; 32]);
        let r = reference(11, &events, &base).unwrap();
        assert_eq!(r.selection.indices(), &[0, 11]);
        assert_eq!(r.pcrs.get(11), attest::eventlog::replay(&events).get(11));
        assert_eq!(r.sources.get(&11), Some(&Source::Launcher));

        let config = LaunchConfig::read(&cfg).unwrap();
        assert_eq!(config.data_dir, dir.path().join("data"));
        record(&config.event_log(), &events[0], true).unwrap();
        record(&config.event_log(), &events[1], false).unwrap();
        let text = std::fs::read_to_string(config.event_log()).unwrap();
        assert_eq!(attest::eventlog::parse_lines(&text).unwrap(), events);
        record(&config.event_log(), &events[1], true).unwrap();
        let text = std::fs::read_to_string(config.event_log()).unwrap();
        assert_eq!(text.lines().count(), 1);
    }
}
