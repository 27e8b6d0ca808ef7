//! The server's configuration file (`zonevault serve --config FILE`).
//!
//! A TOML file parsed once into a typed [`Config`]; unknown keys are refused
//! with their name, and every relative path is resolved against the file's
//! own directory so a configuration can be moved with the files it names.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Why a configuration file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The configuration file.
        path: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// The file is not valid TOML or has unknown, missing or mistyped keys.
    #[error("config file {path}: {message}")]
    Parse {
        /// The configuration file.
        path: PathBuf,
        /// What the parser found wrong, naming the key.
        message: String,
    },
    /// A key has a value of the right type that is still unusable.
    #[error("config file {path}: key `{key}`: {problem}")]
    Invalid {
        /// The configuration file.
        path: PathBuf,
        /// The offending key.
        key: &'static str,
        /// What is wrong with its value.
        problem: String,
    },
}

/// The TLS material of the mTLS listener.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// Server certificate chain (PEM).
    pub cert: PathBuf,
    /// Server private key (PEM).
    pub key: PathBuf,
    /// CA bundle that client certificates must chain to (PEM).
    pub client_ca: PathBuf,
    /// Optional certificate revocation list (PEM or DER), reloaded on SIGHUP.
    pub crl: Option<PathBuf>,
}

/// The whole configuration of `zonevault serve`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The appliance's data directory (created by `zonevault init`).
    pub data_dir: PathBuf,
    /// The TPM's TCTI string, e.g. `device:/dev/tpmrm0`.
    pub tpm: String,
    /// The socket address the mTLS API listens on.
    pub listen: SocketAddr,
    /// The SPIFFE trust domain of client identities.
    #[serde(default = "default_trust_domain")]
    pub trust_domain: String,
    /// The regulator organization that supervises zones with no clear owner.
    #[serde(default = "default_bureau")]
    pub bureau: String,
    /// The largest dataset import body accepted, in bytes (default 64 GiB).
    #[serde(default = "default_max_import_bytes")]
    pub max_import_bytes: u64,
    /// Working days the provider has to respond to a quality ticket, per
    /// dimension (`[quality_sla]`: accuracy, relevance, completeness,
    /// timeliness; defaults 5, 10, 5, 3).
    #[serde(default)]
    pub quality_sla: vault::governance::quality::Sla,
    /// Security-monitoring thresholds (`[monitoring]`; see
    /// [`vault::monitor::Thresholds`] for the keys and defaults).
    #[serde(default)]
    pub monitoring: vault::monitor::Thresholds,
    /// TLS material.
    pub tls: TlsConfig,
}

fn default_trust_domain() -> String {
    "zonevault.local".to_owned()
}

fn default_bureau() -> String {
    "bjeit".to_owned()
}

fn default_max_import_bytes() -> u64 {
    64 << 30
}

impl Config {
    /// Reads and parses a configuration file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Parses configuration text; `path` names the file in errors and
    /// anchors relative paths.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let mut config: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.message().to_owned(),
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        config.resolve_paths(base);
        config.validate(path)?;
        Ok(config)
    }

    fn resolve_paths(&mut self, base: &Path) {
        let resolve = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        resolve(&mut self.data_dir);
        resolve(&mut self.tls.cert);
        resolve(&mut self.tls.key);
        resolve(&mut self.tls.client_ca);
        if let Some(crl) = self.tls.crl.as_mut() {
            resolve(crl);
        }
    }

    fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        let invalid = |key, problem: &str| ConfigError::Invalid {
            path: path.to_owned(),
            key,
            problem: problem.to_owned(),
        };
        if self.tpm.trim().is_empty() {
            return Err(invalid("tpm", "must name a TCTI, e.g. device:/dev/tpmrm0"));
        }
        if self.trust_domain.is_empty() || self.trust_domain.contains('/') {
            return Err(invalid("trust_domain", "must be a bare domain name"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
data_dir = "data"
tpm = "swtpm:host=127.0.0.1,port=2321"
listen = "127.0.0.1:8443"
[tls]
cert = "tls/cert.pem"
key = "/etc/zonevault/key.pem"
client_ca = "ca.pem"
"#;

    #[test]
    fn parses_and_resolves_relative_paths() {
        let c = Config::parse(GOOD, Path::new("/etc/zv/config.toml")).unwrap();
        assert_eq!(c.data_dir, Path::new("/etc/zv/data"));
        assert_eq!(c.tls.cert, Path::new("/etc/zv/tls/cert.pem"));
        assert_eq!(c.tls.key, Path::new("/etc/zonevault/key.pem"));
        assert_eq!(c.listen.port(), 8443);
        assert!(c.tls.crl.is_none());
        assert_eq!(c.trust_domain, "zonevault.local");
    }

    #[test]
    fn quality_sla_defaults_and_overrides() {
        let c = Config::parse(GOOD, Path::new("c.toml")).unwrap();
        assert_eq!(c.quality_sla, vault::governance::quality::Sla::default());
        let text = GOOD.replace("[tls]", "[quality_sla]\ntimeliness = 0\n[tls]");
        let c = Config::parse(&text, Path::new("c.toml")).unwrap();
        assert_eq!((c.quality_sla.timeliness, c.quality_sla.accuracy), (0, 5));
        let text = GOOD.replace("[tls]", "[quality_sla]\nspeed = 1\n[tls]");
        let err = Config::parse(&text, Path::new("c.toml")).unwrap_err();
        assert!(err.to_string().contains("speed"), "{err}");
    }

    #[test]
    fn unknown_key_is_refused_by_name() {
        let text = format!("colour = \"blue\"\n{GOOD}");
        let err = Config::parse(&text, Path::new("c.toml")).unwrap_err();
        assert!(err.to_string().contains("unknown field `colour`"), "{err}");
        let text = GOOD.replace("client_ca", "client_ca_bundle");
        let err = Config::parse(&text, Path::new("c.toml")).unwrap_err();
        assert!(err.to_string().contains("client_ca_bundle"), "{err}");
    }

    #[test]
    fn missing_and_bad_values_are_named() {
        let err = Config::parse(&GOOD.replace("listen", "#"), Path::new("c.toml")).unwrap_err();
        assert!(err.to_string().contains("listen"), "{err}");
        let text = GOOD.replace("127.0.0.1:8443", "not-an-address");
        let err = Config::parse(&text, Path::new("c.toml")).unwrap_err();
        assert!(err.to_string().contains("c.toml"), "{err}");
        let text = GOOD.replace("swtpm:host=127.0.0.1,port=2321", " ");
        let err = Config::parse(&text, Path::new("c.toml")).unwrap_err();
        assert!(err.to_string().contains("`tpm`"), "{err}");
    }
}
